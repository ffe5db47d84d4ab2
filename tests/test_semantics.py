"""Values on SciPy's edge cases: every pair of the edge grid, float32 and float64.

SciPy decides the special values (0, inf, NaN and their signs); mpmath decides the
finite values, since SciPy's own finite values lose digits where ``p / q`` is near
1 or over/underflows. Every term is checked through the elementwise function and
through the matching reduction on one-element rows.
"""

from __future__ import annotations

import warnings

import mpmath
import numpy as np
import pytest
import scipy.special as sc
import scipy.stats
from scipy.spatial.distance import jensenshannon

import fastdiv
from conftest import EDGE_VALUES, assert_close_or_special, edge_grid, ulp_rtol

DTYPES = [np.float32, np.float64]
mpmath.mp.dps = 60


def _round(value: mpmath.mpf, dtype) -> float:
    with np.errstate(over="ignore"):
        return float(np.asarray(float(value)).astype(dtype))


def _finite(x) -> bool:
    return bool(np.isfinite(x))


def expected_rel_entr(p, q, dtype):
    """SciPy's rel_entr, with finite positive pairs recomputed in mpmath."""
    with np.errstate(all="ignore"):
        expected = sc.rel_entr(p, q).astype(np.float64)
    for i, (a, b) in enumerate(zip(p, q)):
        if _finite(a) and _finite(b) and a > 0 and b > 0:
            x, y = mpmath.mpf(float(a)), mpmath.mpf(float(b))
            expected[i] = _round(x * mpmath.log(x / y), dtype)
    return expected


def expected_entr(p, dtype):
    with np.errstate(all="ignore"):
        expected = sc.entr(p).astype(np.float64)
    for i, a in enumerate(p):
        if _finite(a) and a > 0:
            x = mpmath.mpf(float(a))
            expected[i] = _round(-x * mpmath.log(x), dtype)
    return expected


def expected_neg_xlogy(p, q, dtype):
    with np.errstate(all="ignore"):
        expected = -sc.xlogy(p, q).astype(np.float64)
    for i, (a, b) in enumerate(zip(p, q)):
        if _finite(a) and _finite(b) and a != 0 and b > 0:
            x, y = mpmath.mpf(float(a)), mpmath.mpf(float(b))
            expected[i] = _round(-x * mpmath.log(y), dtype)
    return expected


def expected_js(p, q, dtype):
    """Half of rel_entr(p, m) + rel_entr(q, m); NaN for NaN or inf, +inf for negatives."""
    expected = np.empty(p.shape, dtype=np.float64)
    for i, (a, b) in enumerate(zip(p, q)):
        if np.isnan(a) or np.isnan(b):
            expected[i] = np.nan
        elif a < 0 or b < 0:
            expected[i] = np.inf
        elif np.isinf(a) or np.isinf(b):
            expected[i] = np.nan
        else:
            x, y = mpmath.mpf(float(a)), mpmath.mpf(float(b))
            m = (x + y) / 2
            terms = [t * mpmath.log(t / m) for t in (x, y) if t > 0]
            expected[i] = _round(sum(terms, mpmath.mpf(0)) / 2, dtype)
    return expected


def _labels(p, q=None):
    return [f"p={a!r}" if q is None else f"p={a!r}, q={b!r}" for a, b in zip(p, p if q is None else q)]


def _atol(dtype):
    # Subnormal results carry fewer digits than normal ones, and float32 kernels may
    # round subnormal intermediates (e.g. m = (p + q) / 2) a few times.
    return 16 * float(np.finfo(dtype).smallest_subnormal)


@pytest.mark.parametrize("dtype", DTYPES)
def test_rel_entr_edge_grid(dtype):
    p, q = edge_grid(dtype)
    expected = expected_rel_entr(p, q, dtype)
    result = fastdiv.rel_entr(p, q)
    assert result.dtype == dtype
    assert_close_or_special(result, expected, ulp_rtol(dtype), _atol(dtype), _labels(p, q))


@pytest.mark.parametrize("dtype", DTYPES)
def test_kl_divergence_one_element_rows_edge_grid(dtype):
    p, q = edge_grid(dtype)
    expected = expected_rel_entr(p, q, dtype)
    result = fastdiv.kl_divergence(p[:, None], q[:, None])
    assert result.dtype == dtype and result.shape == p.shape
    assert_close_or_special(result, expected, ulp_rtol(dtype), _atol(dtype), _labels(p, q))


@pytest.mark.parametrize("dtype", DTYPES)
def test_entr_edge_values(dtype):
    p = np.array(EDGE_VALUES[np.dtype(dtype)], dtype=dtype)
    expected = expected_entr(p, dtype)
    result = fastdiv.entr(p)
    assert result.dtype == dtype
    assert_close_or_special(result, expected, ulp_rtol(dtype), _atol(dtype), _labels(p))
    assert_close_or_special(
        fastdiv.entropy(p[:, None]), expected, ulp_rtol(dtype), _atol(dtype), _labels(p)
    )


@pytest.mark.parametrize("dtype", DTYPES)
def test_cross_entropy_one_element_rows_edge_grid(dtype):
    p, q = edge_grid(dtype)
    expected = expected_neg_xlogy(p, q, dtype)
    result = fastdiv.cross_entropy(p[:, None], q[:, None])
    assert result.dtype == dtype
    assert_close_or_special(result, expected, ulp_rtol(dtype), _atol(dtype), _labels(p, q))


@pytest.mark.parametrize("dtype", DTYPES)
def test_js_divergence_one_element_rows_edge_grid(dtype):
    p, q = edge_grid(dtype)
    expected = expected_js(p, q, dtype)
    result = fastdiv.js_divergence(p[:, None], q[:, None])
    assert result.dtype == dtype
    assert_close_or_special(result, expected, ulp_rtol(dtype), _atol(dtype), _labels(p, q))


@pytest.mark.parametrize("dtype", DTYPES)
def test_scipy_agrees_on_special_values(dtype):
    """Our oracle only replaces finite values: SciPy's specials stand as they are."""
    p, q = edge_grid(dtype)
    with np.errstate(all="ignore"):
        assert_close_or_special(
            fastdiv.rel_entr(p, q), sc.rel_entr(p, q), rtol=np.inf, atol=np.inf
        )
        assert_close_or_special(
            fastdiv.cross_entropy(p[:, None], q[:, None]), -sc.xlogy(p, q), np.inf, np.inf
        )


def test_ratio_overflow_is_avoided():
    # 4 / 2.22e-308 overflows float64; the term itself is a modest number.
    result = fastdiv.rel_entr(4.0, 2.22e-308)
    exact = 4 * mpmath.log(mpmath.mpf(4) / mpmath.mpf(2.22e-308))
    assert result == pytest.approx(float(exact), rel=1e-15)
    assert fastdiv.kl_divergence([4.0], [2.22e-308]) == pytest.approx(float(exact), rel=1e-15)
    tiny = np.float32(1e-44)
    exact32 = 3 * mpmath.log(mpmath.mpf(3) / mpmath.mpf(float(tiny)))
    assert fastdiv.rel_entr(np.float32(3), tiny) == pytest.approx(float(exact32), rel=1e-6)


# --- scipy.stats.entropy and scipy.spatial.distance.jensenshannon -------------------------


def _random_batch(rng, shape, zeros=True):
    x = rng.random(shape)
    if zeros:
        x[rng.random(shape) < 0.2] = 0.0
    return x


@pytest.mark.parametrize("base", [None, 2, np.e, 10])
@pytest.mark.parametrize("axis", [-1, 0, 1])
def test_entropy_matches_scipy_stats(base, axis):
    rng = np.random.default_rng(1)
    p = _random_batch(rng, (7, 9)) + 0.01
    expected = scipy.stats.entropy(p, base=base, axis=axis)
    np.testing.assert_allclose(
        fastdiv.entropy(p, axis=axis, base=base, normalize=True), expected, rtol=1e-13
    )


@pytest.mark.parametrize("base", [None, 2, 3.5])
@pytest.mark.parametrize("axis", [-1, 0])
def test_kl_divergence_matches_scipy_stats(base, axis):
    rng = np.random.default_rng(2)
    p = _random_batch(rng, (6, 11))
    q = _random_batch(rng, (6, 11), zeros=False) + 0.01
    expected = scipy.stats.entropy(p, q, base=base, axis=axis)
    np.testing.assert_allclose(
        fastdiv.kl_divergence(p, q, axis=axis, base=base, normalize=True), expected, rtol=1e-12
    )


def test_kl_divergence_normalize_with_zero_q_is_inf_like_scipy():
    p, q = np.array([0.5, 0.5]), np.array([1.0, 0.0])
    assert fastdiv.kl_divergence(p, q, normalize=True) == scipy.stats.entropy(p, q) == np.inf


def test_unnormalized_kl_is_sum_of_rel_entr():
    rng = np.random.default_rng(3)
    p, q = rng.random((4, 8)) * 3, rng.random((4, 8)) * 3
    np.testing.assert_allclose(
        fastdiv.kl_divergence(p, q), sc.rel_entr(p, q).sum(-1), rtol=1e-13
    )
    np.testing.assert_allclose(fastdiv.entropy(p), sc.entr(p).sum(-1), rtol=1e-13)
    np.testing.assert_allclose(
        fastdiv.cross_entropy(p, q), -sc.xlogy(p, q).sum(-1), rtol=1e-13
    )


@pytest.mark.parametrize("base", [None, 2, 10])
@pytest.mark.parametrize("axis", [-1, 0])
def test_js_divergence_matches_scipy_jensenshannon_squared(base, axis):
    rng = np.random.default_rng(4)
    p, q = _random_batch(rng, (5, 12)), _random_batch(rng, (5, 12))
    p[0, 0] = q[0, 0] = 1.0  # keep every row and column non-empty
    p[:, 1] = q[:, 1] = p[1, :] = q[1, :] = 0.5
    expected = jensenshannon(p, q, axis=axis, base=base) ** 2
    np.testing.assert_allclose(
        fastdiv.js_divergence(p, q, axis=axis, base=base, normalize=True),
        expected,
        rtol=1e-12,
        atol=1e-15,
    )


def test_js_divergence_is_not_nan_where_scipy_takes_sqrt_of_negative():
    # scipy/scipy#20083: for (nearly) equal p and q SciPy's sum rounds below 0.
    rng = np.random.default_rng(5)
    p = rng.random((2000, 7))
    q = p * (1 + 1e-16 * rng.standard_normal(p.shape))
    with np.errstate(invalid="ignore"):
        scipy_js = jensenshannon(p, q, axis=1)
    assert np.isnan(scipy_js).any(), "test data no longer triggers scipy#20083"
    ours = fastdiv.js_divergence(p, q, normalize=True)
    assert not np.isnan(ours).any()
    assert (ours >= 0).all()
    assert (ours < 1e-25).all()


def test_js_divergence_bounds_and_disjoint_support():
    assert fastdiv.js_divergence([1.0, 0.0], [0.0, 1.0]) == pytest.approx(np.log(2), rel=1e-15)
    assert fastdiv.js_divergence([1.0, 0.0], [0.0, 1.0], base=2) == pytest.approx(1.0, rel=1e-15)
    assert fastdiv.js_divergence([0.3, 0.7], [0.3, 0.7]) == 0.0


def test_js_divergence_huge_inputs_do_not_overflow():
    big = np.finfo(np.float64).max
    result = fastdiv.js_divergence([big, 0.0], [0.0, big])
    assert result == pytest.approx(big * np.log(2), rel=1e-14)
    assert fastdiv.js_divergence([big], [big]) == 0.0


def test_entropy_normalize_of_zero_row_is_nan_like_scipy():
    with np.errstate(invalid="ignore"):
        expected = scipy.stats.entropy([0.0, 0.0])
    assert np.isnan(expected)
    assert np.isnan(fastdiv.entropy([0.0, 0.0], normalize=True))


@pytest.mark.parametrize("dtype", DTYPES)
def test_edge_values_raise_no_warnings(dtype):
    """Like SciPy's ufuncs, overflow to inf and NaN input give values, not warnings."""
    p, q = edge_grid(dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fastdiv.rel_entr(p, q)
        fastdiv.entr(p)
        for func in (fastdiv.kl_divergence, fastdiv.cross_entropy, fastdiv.js_divergence):
            func(p[:, None], q[:, None])
            func(p.reshape(14, 14), q.reshape(14, 14), normalize=True)
        fastdiv.entropy(p[:, None])
        fastdiv.entropy(p.reshape(14, 14), normalize=True)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [3, 14, 1000])
def test_rows_mixing_edge_values_match_summed_scipy_terms(dtype, n):
    """Specials inside longer rows: inf + finite is inf, inf - inf is NaN, as np.sum says."""
    rng = np.random.default_rng(n)
    values = np.array(EDGE_VALUES[np.dtype(dtype)], dtype=dtype)
    p = rng.random((40, n)).astype(dtype)
    q = rng.random((40, n)).astype(dtype) + dtype(0.01)
    for row in range(40):  # a few edge values at random places in every row
        k = rng.integers(1, 4)
        p[row, rng.integers(0, n, k)] = rng.choice(values, k)
        q[row, rng.integers(0, n, k)] = rng.choice(values, k)
    p64, q64 = p.astype(np.float64), q.astype(np.float64)
    with np.errstate(all="ignore"):
        cases = {
            "kl_divergence": sc.rel_entr(p64, q64),
            "cross_entropy": -sc.xlogy(p64, q64),
            "entropy": sc.entr(p64),
        }
    for name, terms in cases.items():
        with np.errstate(all="ignore"):
            expected = terms.sum(-1).astype(dtype)
            scale = np.abs(terms).sum(-1)
            assert (~np.isfinite(expected)).any() and np.isfinite(expected).any()
        func = getattr(fastdiv, name)
        result = func(p) if name == "entropy" else func(p, q)
        # A float32 term beyond float32's range is inf in float32 math (as in SciPy's
        # float32 loops) but finite in the float64 reference: either sum is right.
        with np.errstate(invalid="ignore"):
            clear = ~((np.abs(terms) > np.finfo(dtype).max) & np.isfinite(terms)).any(-1)
        result, expected, scale = result[clear], expected[clear], scale[clear]
        assert np.array_equal(np.isnan(result), np.isnan(expected)), name
        assert np.array_equal(np.isposinf(result), np.isposinf(expected)), name
        assert np.array_equal(np.isneginf(result), np.isneginf(expected)), name
        finite = np.isfinite(expected)
        err = np.abs(result[finite].astype(np.float64) - expected[finite])
        with np.errstate(over="ignore"):  # an inf bound: huge finite values, any is fine
            bound = 4 * float(np.finfo(dtype).eps) * (scale[finite] + np.abs(expected[finite]))
        assert (err <= bound + 1e-300).all(), (name, err, bound)
