"""Accuracy against mpmath, including near-identical distributions (SciPy gh-20710).

The exact value is the divergence of the floating-point inputs as given,
computed in 60-digit arithmetic. A sum of terms of both signs (KL of
near-identical distributions) cannot be computed to better than
``eps * sum(|terms|)``, so that is the scale of the bound there; sums of
terms of one sign (entropy, cross-entropy and JS of probabilities) must be
accurate relative to the result itself.

Every test runs on each compiled backend that is available (the reference
backend is the plain NumPy oracle of the conformance tests).
"""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest
import scipy.special as sc

import fastdiv

mpmath.mp.dps = 60
EPS64 = float(np.finfo(np.float64).eps)
EPS32 = float(np.finfo(np.float32).eps)


@pytest.fixture(
    autouse=True,
    params=[name for name in fastdiv.available_backends() if name != "reference"],
)
def compiled_backend(request):
    with fastdiv.use_backend(request.param):
        yield request.param


def _mp(values):
    return [mpmath.mpf(float(v)) for v in np.ravel(values)]


def exact_kl_terms(p, q):
    return [a * mpmath.log(a / b) if a > 0 else mpmath.mpf(0) for a, b in zip(_mp(p), _mp(q))]


def exact_js(p, q):
    total = mpmath.mpf(0)
    for a, b in zip(_mp(p), _mp(q)):
        m = (a + b) / 2
        total += sum((x * mpmath.log(x / m) for x in (a, b) if x > 0), mpmath.mpf(0))
    return total / 2


def near_identical(rng, n, rel, dtype=np.float64):
    p = rng.random(n)
    p /= p.sum()
    q = p * (1 + rel * rng.standard_normal(n))
    q /= q.sum()
    return p.astype(dtype), q.astype(dtype)


def random_distributions(rng, n, dtype=np.float64):
    p, q = rng.dirichlet(np.full(n, 0.5)), rng.dirichlet(np.full(n, 0.5))
    return p.astype(dtype), q.astype(dtype)


def _abs_err(value, exact):
    return abs(mpmath.mpf(float(value)) - exact)


# --- elementwise terms: each must be good to a few ulp -------------------------------------


@pytest.mark.parametrize("rel", [1e-2, 1e-6, 1e-9, 1e-13])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_rel_entr_terms_near_identical_are_correctly_rounded_to_few_ulp(rel, dtype):
    rng = np.random.default_rng(30)
    p, q = near_identical(rng, 200, rel, dtype)
    result = fastdiv.rel_entr(p, q)
    exact = exact_kl_terms(p, q)
    eps = float(np.finfo(dtype).eps)
    assert all(r == 0 for r, e in zip(result, exact) if e == 0)
    worst = max(
        (float(abs(mpmath.mpf(float(r)) - e) / abs(e)) for r, e in zip(result, exact) if e != 0),
        default=0.0,
    )
    assert worst <= 2 * eps, f"worst relative error {worst:.2e} ({worst / eps:.1f} ulp)"


def test_rel_entr_terms_where_ratio_over_or_underflows():
    p = np.array([4.0, 1e-300, 1e300, 5e-324, 1.0, 1e-310])
    q = np.array([2.22e-308, 1e10, 1e-10, 1.0, 5e-324, 3.0])
    result = fastdiv.rel_entr(p, q)
    for r, e in zip(result, exact_kl_terms(p, q)):
        assert np.isfinite(r)
        assert abs(mpmath.mpf(float(r)) - e) <= 2 * EPS64 * abs(e) + 5e-324


# --- reductions ---------------------------------------------------------------------------


@pytest.mark.parametrize("rel", [1e-3, 1e-6, 1e-9, 1e-12])
def test_kl_divergence_near_identical(rel):
    rng = np.random.default_rng(31)
    for _ in range(4):
        p, q = near_identical(rng, 300, rel)
        terms = exact_kl_terms(p, q)
        exact = mpmath.fsum(terms)
        scale = float(mpmath.fsum(abs(t) for t in terms))
        ours = _abs_err(fastdiv.kl_divergence(p, q), exact)
        scipy_err = _abs_err(sc.rel_entr(p, q).sum(), exact)
        bound = (4 + math.log2(p.size)) * EPS64 * scale
        assert ours <= bound, f"error {float(ours):.2e} > {bound:.2e}"
        assert ours <= scipy_err + 4 * EPS64 * scale  # no worse than SciPy (gh-20710)


@pytest.mark.parametrize("rel", [1e-3, 1e-6])
def test_kl_divergence_float32_is_float64_accumulated(rel):
    """float32 terms may be computed in float32 math, but they are summed in float64."""
    rng = np.random.default_rng(32)
    ours_total = scipy_total = 0
    for _ in range(4):
        p, q = near_identical(rng, 1000, rel, np.float32)
        terms = exact_kl_terms(p, q)
        exact = mpmath.fsum(terms)
        scale = float(mpmath.fsum(abs(t) for t in terms))
        result = fastdiv.kl_divergence(p, q)
        assert result.dtype == np.float32
        ours = _abs_err(result, exact)
        # One float32 rounding of the result, a couple of float32 ulp per term, and no
        # float32 summation error (that would be ~log2(n) ulp per term).
        assert ours <= EPS32 * abs(exact) + 2 * EPS32 * scale
        ours_total += ours
        scipy_total += _abs_err(sc.rel_entr(p, q).sum(), exact)
    assert ours_total <= scipy_total  # no worse than SciPy, over the trials


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("n", [2, 17, 1000])
def test_kl_divergence_random_distributions(dtype, n):
    rng = np.random.default_rng(33 + n)
    for _ in range(3):
        p, q = random_distributions(rng, n, dtype)
        terms = exact_kl_terms(p, q)
        exact = mpmath.fsum(terms)
        scale = float(mpmath.fsum(abs(t) for t in terms))
        # float32 terms may be computed in float32 math (see test_conformance): an ulp of
        # each term, which for terms of both signs is not an ulp of the sum
        rounding = float(np.finfo(dtype).eps) * scale if dtype == np.float32 else 0
        assert _abs_err(fastdiv.kl_divergence(p, q), exact) <= (
            rounding + (4 + math.log2(n)) * EPS64 * scale
        )


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("n", [3, 1000, 20000])
def test_entropy_relative_accuracy(dtype, n):
    rng = np.random.default_rng(34 + n)
    p = rng.dirichlet(np.full(n, 0.3)).astype(dtype)
    exact = mpmath.fsum(-a * mpmath.log(a) for a in _mp(p) if a > 0)
    eps = float(np.finfo(dtype).eps)
    err = _abs_err(fastdiv.entropy(p), exact) / exact
    assert err <= (eps if dtype == np.float32 else 0) + (4 + math.log2(n)) * EPS64


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("n", [3, 1000])
def test_cross_entropy_relative_accuracy(dtype, n):
    rng = np.random.default_rng(35 + n)
    p, q = random_distributions(rng, n, dtype)
    exact = mpmath.fsum(-a * mpmath.log(b) for a, b in zip(_mp(p), _mp(q)) if a > 0)
    eps = float(np.finfo(dtype).eps)
    err = _abs_err(fastdiv.cross_entropy(p, q), exact) / exact
    assert err <= (eps if dtype == np.float32 else 0) + (4 + math.log2(n)) * EPS64


def test_entropy_normalize_matches_exact_normalized_value():
    rng = np.random.default_rng(36)
    w = rng.random(500) * 1e6
    total = mpmath.fsum(_mp(w))
    exact = -mpmath.fsum((a / total) * mpmath.log(a / total) for a in _mp(w))
    err = _abs_err(fastdiv.entropy(w, normalize=True), exact) / exact
    assert err <= 16 * EPS64


@pytest.mark.parametrize("rel", [1e-2, 1e-5, 1e-9])
def test_js_divergence_near_identical_keeps_relative_accuracy(rel):
    """Every JS term is >= 0, so the sum is well conditioned even when p ~ q."""
    rng = np.random.default_rng(37)
    p, q = near_identical(rng, 200, rel)
    exact = exact_js(p, q)
    err = _abs_err(fastdiv.js_divergence(p, q), exact) / exact
    assert err <= 32 * EPS64, f"relative error {float(err):.2e}"


def test_js_divergence_terms_across_ratios():
    """One-element rows with p / q from 1e-300 to 1e300, through both forms' switch-over."""
    ratios = np.concatenate([np.geomspace(1e-300, 1e300, 61), np.linspace(0.2, 5, 97)])
    p, q = ratios * 0.7, np.full(ratios.shape, 0.7)
    result = fastdiv.js_divergence(p[:, None], q[:, None])
    for r, a, b in zip(result, p, q):
        exact = exact_js([a], [b])
        if exact == 0:
            assert r == 0
        else:
            assert _abs_err(r, exact) <= 8 * EPS64 * exact, (a, b, float(r), float(exact))


def test_js_divergence_subnormal_pairs():
    """Pairs whose sum is subnormal (its reciprocal overflows) or just above the normal
    threshold: one-element rows, within a few subnormal steps of the exact value."""
    tiny = np.finfo(np.float64).tiny
    p = np.array([1e-320, 3e-320, 7e-321, 1e-310, 2e-308, 0.6 * tiny, 1.5 * tiny])
    q = np.array([1e-320, 5e-321, 4e-320, 3e-311, 5e-320, 0.7 * tiny, 0.2 * tiny])
    result = fastdiv.js_divergence(p[:, None], q[:, None])
    step = np.nextafter(0.0, 1.0)
    for r, a, b in zip(result, p, q):
        exact = exact_js([a], [b])
        assert _abs_err(r, exact) <= 8 * EPS64 * exact + 8 * step, (a, b, float(r), float(exact))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_js_divergence_random_distributions(dtype):
    rng = np.random.default_rng(38)
    for _ in range(3):
        p, q = random_distributions(rng, 500, dtype)
        exact = exact_js(p, q)
        eps = float(np.finfo(dtype).eps) if dtype == np.float32 else 0.0
        err = _abs_err(fastdiv.js_divergence(p, q), exact) / exact
        assert err <= eps + 32 * EPS64
