"""logsumexp, log_softmax and softmax against SciPy, on every backend.

SciPy decides the values, including the special ones (rows of -inf, +inf and
NaN, spreads of 1e4, negative weights); mpmath decides where we keep digits
that SciPy loses. float32 input is compared with SciPy run on the same values
in float64: the kernels accumulate in float64 and round once.
"""

from __future__ import annotations

import warnings

import mpmath
import numpy as np
import pytest
import scipy.special as sc

import fastdiv
from conftest import assert_special_equal

BACKENDS = fastdiv.available_backends()
DTYPES = [np.float64, np.float32]
# float64: a few ulp of the result plus a few ulp of the largest logit (the max
# is subtracted and added back); float32: the result is rounded once.
RTOL = {np.dtype(np.float64): 1e-13, np.dtype(np.float32): 5e-7}
inf, nan = np.inf, np.nan


@pytest.fixture(params=BACKENDS)
def backend(request):
    with fastdiv.use_backend(request.param):
        yield request.param


def assert_matches(actual, expected, dtype, scale=None):
    """Same special values; finite values within rtol of the value and of ``scale``."""
    actual = np.asarray(actual)
    assert actual.dtype == np.dtype(dtype), (actual.dtype, dtype)
    actual, expected = actual.astype(np.float64), np.asarray(expected, dtype=np.float64)
    assert_special_equal(actual, expected)
    finite = np.isfinite(expected)
    rtol = RTOL[np.dtype(dtype)]
    bound = rtol * np.abs(expected)
    if scale is not None:
        bound = bound + rtol * np.broadcast_to(scale, expected.shape)
    bound += np.finfo(dtype).tiny
    with np.errstate(invalid="ignore"):
        err = np.abs(np.where(finite, actual - expected, 0.0))
    bad = err > bound
    assert not bad.any(), f"got {actual[bad][:5]}, expected {expected[bad][:5]}"


def scipy_call(func, *args, **kwargs):
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        return func(*args, **kwargs)


def edge_logits(rng, dtype):
    """Rows of random logits mixed with the awkward cases, as a (rows, 7) array."""
    rows = [
        rng.standard_normal(7),
        rng.standard_normal(7) * 30,
        rng.uniform(-1e4, 1e4, 7),  # a spread of 2e4: exp underflows for most
        np.full(7, 1e4),
        [0.0, -46.0, -inf, -inf, -inf, -inf, -inf],  # sum of exps = 1 + 1e-20
        [-inf] * 7,
        [inf, 1.0, 2.0, -inf, 0.0, 0.0, 0.0],
        [inf, inf, 0.0, 0.0, 0.0, 0.0, 0.0],
        [nan, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
        [-inf, nan, inf, 0.0, 0.0, 0.0, 0.0],
        [3.0, 3.0, 3.0, -inf, 1.0, 2.0, 3.0],  # the max several times
    ]
    if np.dtype(dtype) == np.float32:
        rows[2] = rng.uniform(-80, 80, 7)
        rows[3] = np.full(7, 80.0)
    return np.array(rows, dtype=dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("return_sign", [False, True])
def test_logsumexp_edge_rows(backend, dtype, return_sign):
    a = edge_logits(np.random.default_rng(0), dtype)
    got = fastdiv.logsumexp(a, return_sign=return_sign)
    expected = scipy_call(sc.logsumexp, a.astype(np.float64), axis=-1, return_sign=return_sign)
    if return_sign:
        assert_matches(got[1], expected[1], dtype)
        got, expected = got[0], expected[0]
    finite_max = np.where(np.isfinite(a), np.abs(a), 0).max(axis=-1)
    assert_matches(got, expected, dtype, scale=finite_max)


@pytest.mark.parametrize("dtype", DTYPES)
def test_logsumexp_weights_and_signs(backend, dtype):
    rng = np.random.default_rng(1)
    a = edge_logits(rng, dtype)
    weights = [
        rng.uniform(0.1, 2.0, a.shape),  # positive
        rng.standard_normal(a.shape),  # mixed signs: negative sums
        np.where(rng.random(a.shape) < 0.4, 0.0, 1.0) * rng.uniform(0.5, 1.5, a.shape),  # zeros
        np.array([1.0, -1.0, 0.5, 0, 0, 2, -3]),  # broadcast (n,)
    ]
    for b in weights:
        b = b.astype(dtype)
        finite_max = np.where(np.isfinite(a), np.abs(a), 0).max(axis=-1)
        for return_sign in (False, True):
            got = fastdiv.logsumexp(a, b=b, return_sign=return_sign)
            expected = scipy_call(
                sc.logsumexp, a.astype(np.float64), axis=-1, b=b.astype(np.float64),
                return_sign=return_sign,
            )
            if return_sign:
                assert_matches(got[1], expected[1], dtype)
                got, expected = got[0], expected[0]
            assert_matches(got, expected, dtype, scale=finite_max)


def test_logsumexp_zero_weight_drops_inf_and_nan(backend):
    a = np.array([[inf, 1.0, 2.0], [nan, 1.0, 2.0], [1.0, 2.0, 3.0]])
    b = np.array([[0.0, 1.0, 1.0], [0.0, 1.0, 1.0], [0.0, 0.0, 0.0]])
    expected = [np.logaddexp(1, 2), np.logaddexp(1, 2), -inf]
    np.testing.assert_allclose(fastdiv.logsumexp(a, b=b), expected, rtol=1e-15)
    np.testing.assert_allclose(scipy_call(sc.logsumexp, a, axis=-1, b=b), expected, rtol=1e-15)


@pytest.mark.parametrize(
    "a, b, expected, sign",
    [
        ([1.0, 2.0], [1.0, -1.0], np.log(np.e**2 - np.e), -1.0),
        ([1.0, 1.0], [1.0, -1.0], -inf, 0.0),  # exact cancellation
        ([inf, 0.0], [-1.0, 1.0], inf, -1.0),
        ([inf, inf], [1.0, -1.0], nan, nan),
        ([inf, 0.0], [2.0, -1.0], inf, 1.0),
        ([0.0, 0.0], [nan, 1.0], nan, nan),
    ],
)
def test_logsumexp_sign_table(backend, a, b, expected, sign):
    got, got_sign = fastdiv.logsumexp(a, b=b, return_sign=True)
    scipy_value, scipy_sign = scipy_call(sc.logsumexp, a, b=b, return_sign=True)
    for value in (got, scipy_value):
        np.testing.assert_allclose(value, expected, rtol=1e-15)
    np.testing.assert_equal([got_sign, scipy_sign], [sign, sign])
    alone = fastdiv.logsumexp(a, b=b)
    np.testing.assert_equal(np.isnan(alone), sign < 0 or np.isnan(sign))


def test_logsumexp_deliberate_differences_from_scipy(backend):
    # A sum of nothing is 0: sign 0 (SciPy: -1 for an empty array).
    value, sign = fastdiv.logsumexp(np.zeros((2, 0)), return_sign=True)
    np.testing.assert_equal(value, [-inf, -inf])
    np.testing.assert_equal(sign, [0.0, 0.0])
    # Large terms that cancel exactly: -inf (SciPy falls back to exp and gets NaN).
    value, sign = fastdiv.logsumexp([1000.0, 1000.0], b=[1.0, -1.0], return_sign=True)
    assert (value, sign) == (-inf, 0.0)
    # A zero weight drops its term also when the result is infinite (SciPy: NaN).
    assert fastdiv.logsumexp([inf, inf], b=[0.0, 1.0]) == inf
    assert fastdiv.logsumexp([inf, 1.0], b=[0.0, 0.0]) == -inf


@pytest.mark.parametrize("dtype", DTYPES)
def test_logsumexp_where_is_zero_weight(backend, dtype):
    rng = np.random.default_rng(2)
    a = edge_logits(rng, dtype)
    mask = rng.random(a.shape) < 0.7
    mask[3] = False  # a fully masked row
    got = fastdiv.logsumexp(a, where=mask)
    # SciPy drops zero-weight terms only while the result is finite: mask a too
    a_masked = np.where(mask, a.astype(np.float64), -inf)
    expected = scipy_call(sc.logsumexp, a_masked, axis=-1, b=mask.astype(np.float64))
    assert_matches(got, expected, dtype, scale=np.where(np.isfinite(a), np.abs(a), 0).max(-1))
    b = rng.standard_normal(a.shape).astype(dtype)
    got = fastdiv.logsumexp(a, b=b, where=mask, return_sign=True)
    expected = scipy_call(
        sc.logsumexp, a_masked, axis=-1, b=np.where(mask, b, 0.0), return_sign=True
    )
    assert_matches(got[1], expected[1], dtype)
    assert_matches(got[0], expected[0], dtype, scale=np.where(np.isfinite(a), np.abs(a), 0).max(-1))


@pytest.mark.parametrize("axis", [0, 1, -1, (0, 2), None])
@pytest.mark.parametrize("keepdims", [False, True])
def test_logsumexp_axes_and_layouts(backend, axis, keepdims):
    rng = np.random.default_rng(3)
    a = rng.standard_normal((5, 6, 7)) * 10
    layouts = [a, np.asfortranarray(a), a[:, ::2, :], np.broadcast_to(a[:1], (4, 6, 7))]
    for x in layouts:
        got = fastdiv.logsumexp(x, axis=axis, keepdims=keepdims)
        expected = sc.logsumexp(x, axis=axis, keepdims=keepdims)
        assert np.shape(got) == np.shape(expected)
        np.testing.assert_allclose(got, expected, rtol=1e-13)


def test_logsumexp_scalar_and_out(backend):
    assert fastdiv.logsumexp(5.0) == sc.logsumexp(5.0, axis=-1) == 5.0
    a = np.random.default_rng(4).standard_normal((3, 4))
    out = np.empty(3)
    assert fastdiv.logsumexp(a, out=out) is out
    np.testing.assert_allclose(out, sc.logsumexp(a, axis=-1), rtol=1e-14)
    out32 = np.empty(3, dtype=np.float32)
    fastdiv.logsumexp(a.astype(np.float32), out=out32)
    expected = sc.logsumexp(a.astype(np.float32).astype(np.float64), axis=-1)
    np.testing.assert_allclose(out32, expected, rtol=5e-7)


@pytest.mark.parametrize(
    "a",
    [[0.0, -46.0], [0.0, -700.0, -745.0], [1e-10, -40.0, -41.0], [-1e-20, -50.0]],
)
def test_logsumexp_keeps_digits_near_zero(backend, a):
    with mpmath.workdps(400):
        exact = mpmath.log(mpmath.fsum(mpmath.exp(mpmath.mpf(x)) for x in a))
    np.testing.assert_allclose(fastdiv.logsumexp(a), float(exact), rtol=4e-16)


@pytest.mark.parametrize("func", ["log_softmax", "softmax"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_edge_rows(backend, func, dtype):
    z = edge_logits(np.random.default_rng(5), dtype)
    got = getattr(fastdiv, func)(z)
    expected = scipy_call(getattr(sc, func), z.astype(np.float64), axis=-1)
    if func == "log_softmax":
        # values near 0 may differ by an ulp of 1: SciPy's log(1 + tiny) drops tiny
        scale = np.maximum(np.where(np.isfinite(z), np.abs(z), 0).max(-1, keepdims=True), 4.0)
    else:
        scale = 1.0
    assert_matches(got, expected, dtype, scale=scale)


def test_log_softmax_keeps_digits_near_zero(backend):
    got = fastdiv.log_softmax([0.0, -46.0])
    with mpmath.workdps(50):
        exact = -mpmath.log1p(mpmath.exp(-46))
    np.testing.assert_allclose(got[0], float(exact), rtol=4e-16)
    assert sc.log_softmax([0.0, -46.0])[0] == 0.0  # SciPy loses it


@pytest.mark.parametrize("func", ["log_softmax", "softmax"])
@pytest.mark.parametrize("axis", [0, 1, -1, (1, 2), None])
def test_softmax_axes_and_layouts(backend, func, axis):
    rng = np.random.default_rng(6)
    z = rng.standard_normal((4, 5, 6)) * 5
    for x in (z, np.asfortranarray(z), z[:, ::2, ::-1], np.broadcast_to(z[:, :1], (4, 5, 6))):
        got = getattr(fastdiv, func)(x, axis=axis)
        assert got.shape == x.shape
        np.testing.assert_allclose(got, getattr(sc, func)(x, axis=axis), rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("func", ["log_softmax", "softmax"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_out_and_in_place(backend, func, dtype):
    rng = np.random.default_rng(7)
    z = (rng.standard_normal((6, 9)) * 4).astype(dtype)
    expected = getattr(sc, func)(z.astype(np.float64), axis=-1)
    out = np.empty_like(z)
    assert getattr(fastdiv, func)(z, out=out) is out
    assert_matches(out, expected, dtype, scale=4.0)
    x = z.copy()
    assert getattr(fastdiv, func)(x, out=x) is x  # in place
    assert_matches(x, expected, dtype, scale=4.0)
    out_t = np.empty((9, 6), dtype=dtype).T  # not C-contiguous: written through a copy
    getattr(fastdiv, func)(z, out=out_t)
    assert_matches(out_t, expected, dtype, scale=4.0)
    out_cols = np.empty_like(z.T)
    getattr(fastdiv, func)(z.T, axis=0, out=out_cols)
    assert_matches(out_cols, expected.T, dtype, scale=4.0)


def test_scalar_input_of_row_maps(backend):
    assert fastdiv.log_softmax(3.0, axis=None) == 0.0
    assert fastdiv.softmax(3.0, axis=None) == 1.0


def test_softmax_is_gradient_of_logsumexp(backend):
    rng = np.random.default_rng(8)
    a = rng.standard_normal((3, 5)) * 3
    h = 1e-6
    numeric = np.empty_like(a)
    for j in range(a.shape[1]):
        step = np.zeros_like(a)
        step[:, j] = h
        numeric[:, j] = (fastdiv.logsumexp(a + step) - fastdiv.logsumexp(a - step)) / (2 * h)
    np.testing.assert_allclose(fastdiv.softmax(a), numeric, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(np.exp(fastdiv.log_softmax(a)), fastdiv.softmax(a), rtol=1e-14)
