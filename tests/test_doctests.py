"""The examples in fastdiv's docstrings run and print what they say."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import fastdiv

# Backend packages under construction may not import yet; conformance tests cover them.
_OPTIONAL = ("fastdiv._backends.cython", "fastdiv._backends.numba")


def _module_names():
    names = ["fastdiv"]
    for info in pkgutil.walk_packages(fastdiv.__path__, prefix="fastdiv."):
        names.append(info.name)
    return sorted(names)


@pytest.mark.parametrize("name", _module_names())
def test_docstring_examples(name, restore_config):
    try:
        module = importlib.import_module(name)
    except ImportError as error:
        if name.startswith(_OPTIONAL):
            pytest.skip(f"{name} does not import here: {error}")
        raise
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for test in finder.find(module, name, globs={}):
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} docstring example(s) failed in {name}"
