"""Packaging metadata that can rot silently: extras, package data, wheel selectors, flags."""

from __future__ import annotations

import ast
import fnmatch
import re
from pathlib import Path

import pytest

try:
    import tomllib
except ImportError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = ROOT / "pyproject.toml"
pytestmark = pytest.mark.skipif(
    not PYPROJECT.exists(), reason="needs the source tree (not an installed wheel alone)"
)


@pytest.fixture(scope="module")
def project():
    with PYPROJECT.open("rb") as f:
        return tomllib.load(f)


def _names(requirements):
    return {re.split(r"[<>=!~;\[ ]", r, maxsplit=1)[0].lower() for r in requirements}


def test_runtime_dependencies(project):
    assert _names(project["project"]["dependencies"]) == {"numpy", "numba"}


def test_extras(project):
    extras = project["project"]["optional-dependencies"]
    assert {"pytest", "pytest-xdist", "hypothesis", "scipy", "mpmath",
            "pytest-benchmark"} <= _names(extras["test"])  # xdist: the README's `-n auto`
    assert {"scipy", "matplotlib", "rich"} <= _names(extras["bench"])


def test_kernel_sources_ship_in_sdist_and_wheel(project):
    patterns = project["tool"]["setuptools"]["package-data"]["*"]
    kernel_dir = ROOT / "fastdiv" / "_backends" / "cython"
    sources = [p for p in kernel_dir.iterdir() if p.suffix in (".h", ".pxd", ".pyx")]
    assert any(p.suffix == ".h" for p in sources)
    for path in sources:
        assert any(fnmatch.fnmatch(path.name, pat) for pat in patterns), path.name
    manifest = ROOT / "MANIFEST.in"
    assert manifest.exists() and "*.h" in manifest.read_text()


def test_build_requirements(project):
    assert {"setuptools", "cython"} <= _names(project["build-system"]["requires"])


def _selected(identifier, cibw):
    build = cibw["build"].split()
    skip = cibw["skip"].split()
    return any(fnmatch.fnmatch(identifier, b) for b in build) and not any(
        fnmatch.fnmatch(identifier, s) for s in skip
    )


@pytest.mark.parametrize(
    "identifier, wanted",
    [
        ("cp310-manylinux_x86_64", True),
        ("cp313-manylinux_aarch64", True),
        ("cp315-macosx_arm64", True),
        ("cp312-macosx_x86_64", True),
        ("cp314-win_amd64", True),
        ("cp39-manylinux_x86_64", False),  # older than numba supports
        ("cp312-musllinux_x86_64", False),  # numba has no musllinux wheels
        ("cp314t-manylinux_x86_64", False),  # nor free-threaded ones
        ("cp312-manylinux_i686", False),
        ("cp312-win32", False),
        ("pp310-manylinux_x86_64", False),
    ],
)
def test_cibuildwheel_selectors(project, identifier, wanted):
    assert _selected(identifier, project["tool"]["cibuildwheel"]) is wanted


def test_requires_python_matches_oldest_wheel(project):
    oldest = min(re.findall(r"cp3(\d+)-", project["tool"]["cibuildwheel"]["build"]), key=int)
    assert project["project"]["requires-python"] == f">=3.{oldest}"


def test_wheel_tests_require_the_extension(project):
    cibw = project["tool"]["cibuildwheel"]
    assert cibw["test-environment"]["FASTDIV_REQUIRE_CYTHON"] == "1"
    for path in re.findall(r"tests/\S+\.py", cibw["test-command"]):
        assert (ROOT / path).exists(), path


def test_build_flags_stay_portable():
    """Wheels must run on any CPU of their architecture and see NaN and inf."""
    tree = ast.parse((ROOT / "setup.py").read_text())
    flags = {
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
        and node.value.startswith(("-", "/"))
    }
    assert "-O3" in flags or "-O2" in flags  # the literals are where we look
    assert not {f for f in flags if f.startswith(("-march=native", "-mtune=native"))}
    assert not {f for f in flags if "fast-math" in f or f == "-Ofast" or f == "/fp:fast"}
