"""The installation under test is the one we meant to build."""

import os

import pytest

import fastdiv

requires_cython = pytest.mark.skipif(
    os.environ.get("FASTDIV_REQUIRE_CYTHON") != "1",
    reason="set FASTDIV_REQUIRE_CYTHON=1 where the extension must be built (CI does)",
)


@requires_cython
def test_cython_extension_is_built():
    assert "cython" in fastdiv.available_backends()


@requires_cython
def test_cython_is_the_default_backend():
    if os.environ.get("FASTDIV_BACKEND"):
        pytest.skip("FASTDIV_BACKEND overrides the default")
    assert fastdiv.available_backends()[0] == "cython"
