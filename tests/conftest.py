"""Shared helpers for the fastdiv test suite: edge values, comparisons, config isolation."""

from __future__ import annotations

import numpy as np
import pytest

from fastdiv import _config

#: Edge values of the semantics grid, per dtype (each list has the same roles, in order).
EDGE_VALUES = {
    np.dtype(np.float64): [
        0.0, -0.0, 1e-320, np.finfo(np.float64).tiny, 1e-300, 0.3, 1.0, 2.0,
        1e300, np.finfo(np.float64).max, np.inf, -np.inf, -1.0, np.nan,
    ],
    np.dtype(np.float32): [
        0.0, -0.0, 1e-45, np.finfo(np.float32).tiny, 1e-30, 0.3, 1.0, 2.0,
        1e30, np.finfo(np.float32).max, np.inf, -np.inf, -1.0, np.nan,
    ],
}


def edge_grid(dtype):
    """Every ordered pair of edge values, as two flat arrays of ``dtype``."""
    values = np.array(EDGE_VALUES[np.dtype(dtype)], dtype=dtype)
    p, q = np.meshgrid(values, values, indexing="ij")
    return p.ravel(), q.ravel()


def log_ratio_edge_rows(dtype, background, n=600, seed=12):
    """Rows of ``n`` elements, each holding one (p, q) pair from around the range
    of the one-division log(p / q) of the compiled KL kernels (q in
    [2^-1021, 2^1022) for float64, [2^-125, 2^126) for float32; p a positive
    normal number or +0) and around every special value, so that its block
    takes the bit-checked fast path first. ``background``: "random" values, or
    "zeros" in p (terms 0), so that a row's sum is its pair's term alone."""
    info = np.finfo(dtype)
    lo, hi = dtype(2.0 ** (info.minexp + 1)), dtype(2.0 ** (info.maxexp - 2))
    down, up = dtype(0), dtype(np.inf)
    qs = [0, info.smallest_subnormal, info.tiny, np.nextafter(lo, down), lo,
          np.nextafter(lo, up), 0.3, np.nextafter(hi, down), hi, info.max, np.inf, -0.0, -1.0,
          np.nan]
    ps = [0, -0.0, info.smallest_subnormal, info.tiny, 1.6 * info.tiny, 1.9 * lo, 0.3,
          1.5 * hi / 2, info.max, -0.5, np.inf, np.nan]
    pairs = np.array([(a, b) for a in ps for b in qs], dtype=dtype)
    rng = np.random.default_rng(seed)
    rows = np.arange(len(pairs))
    p = rng.random((len(pairs), n)).astype(dtype)
    if background == "zeros":
        p[:] = 0
    q = rng.random((len(pairs), n)).astype(dtype)
    cols = rng.integers(0, n, len(pairs))
    p[rows, cols], q[rows, cols] = pairs[:, 0], pairs[:, 1]
    return p, q


def ulp_rtol(dtype, ulps=4):
    """A relative tolerance of ``ulps`` units in the last place of ``dtype``."""
    return ulps * float(np.finfo(dtype).eps)


def assert_special_equal(actual, expected):
    """NaN, +inf and -inf where ``expected`` has them, and only there."""
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    for name, test in (
        ("NaN", np.isnan),
        ("+inf", lambda a: np.isposinf(a)),
        ("-inf", lambda a: np.isneginf(a)),
    ):
        mismatch = test(actual) != test(expected)
        assert not mismatch.any(), (
            f"{name} pattern differs at {np.argwhere(mismatch).tolist()}: "
            f"got {actual[mismatch]}, expected {expected[mismatch]}"
        )


def assert_close_or_special(actual, expected, rtol, atol=0.0, context=None):
    """Special values exactly; zeros exactly (either sign); finite values within ``rtol``."""
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert_special_equal(actual, expected)
    finite = np.isfinite(expected)
    zero = finite & (expected == 0)
    assert (actual[zero] == 0).all(), (
        f"expected exact zeros, got {actual[zero]}" + (f" ({context})" if context else "")
    )
    err = np.abs(actual[finite] - expected[finite])
    bound = rtol * np.abs(expected[finite]) + atol
    bad = err > bound
    if bad.any():
        where = np.flatnonzero(finite)[bad]
        detail = "" if context is None else f" for {[context[i] for i in where[:5]]}"
        raise AssertionError(
            f"{bad.sum()} values off by more than rtol={rtol}{detail}: "
            f"got {actual[finite][bad][:5]}, expected {expected[finite][bad][:5]}"
        )


@pytest.fixture
def restore_config():
    """Undo ``set_backend`` / ``set_num_threads`` done inside a test."""
    saved = (_config._global_backend, _config._num_threads)
    yield
    _config._global_backend, _config._num_threads = saved
