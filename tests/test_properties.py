"""Mathematical properties, checked with hypothesis on bounded generated batches."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import fastdiv

# Per test, not a global profile: other test modules keep their own settings.
bounded = settings(max_examples=60, deadline=None)

LOG2 = float(np.log(2))
DTYPES = st.sampled_from([np.float64, np.float32])


@st.composite
def weight_batches(draw, min_value=0.0, dtype=np.float64, shape=None):
    """(rows, n) non-negative weights in [min_value, 1]; every row has a positive sum."""
    if shape is None:
        shape = draw(st.tuples(st.integers(1, 6), st.integers(1, 24)))
    zero_or_value = st.one_of(
        st.just(0.0) if min_value == 0 else st.just(min_value),
        st.floats(min_value, 1.0, width=32),
    )
    w = draw(hnp.arrays(np.float64, shape, elements=zero_or_value)).astype(dtype)
    w[w.sum(axis=-1) == 0, 0] = 1.0
    return w


@st.composite
def distribution_pairs(draw, q_min=0.0):
    dtype = draw(DTYPES)
    p = draw(weight_batches(dtype=dtype))
    q = draw(weight_batches(min_value=q_min, dtype=dtype, shape=p.shape))
    return p / p.sum(-1, keepdims=True), q / q.sum(-1, keepdims=True)


def _tol(dtype):
    # float32 results are rounded float64 sums: one float32 rounding plus slack.
    return 4e-7 if dtype == np.float32 else 1e-13


@bounded
@given(distribution_pairs())
def test_kl_is_nonnegative(pq):
    p, q = pq
    # Rounded to float32, p and q need not sum to exactly 1; Gibbs' inequality
    # for positive measures, KL(p || q) >= sum(p) - sum(q), still holds.
    mass_gap = p.astype(np.float64).sum(-1) - q.astype(np.float64).sum(-1)
    slack = 1e-14 if p.dtype == np.float64 else 1e-6  # float32 terms, float32 result
    assert (fastdiv.kl_divergence(p, q) >= np.minimum(mass_gap, 0) - slack).all()
    assert (fastdiv.kl_divergence(p, q, normalize=True) >= -1e-14).all()


@bounded
@given(weight_batches(), DTYPES)
def test_divergence_of_p_from_itself_is_exactly_zero(w, dtype):
    p = (w / w.sum(-1, keepdims=True)).astype(dtype)
    for normalize, x in ((False, p), (True, w.astype(dtype))):
        assert (fastdiv.kl_divergence(x, x.copy(), normalize=normalize) == 0).all()
        assert (fastdiv.js_divergence(x, x.copy(), normalize=normalize) == 0).all()
    np.testing.assert_allclose(
        fastdiv.cross_entropy(p, p), fastdiv.entropy(p), rtol=_tol(dtype), atol=1e-300
    )


@bounded
@given(distribution_pairs(q_min=2.0**-10))
def test_cross_entropy_is_kl_plus_entropy(pq):
    p, q = pq
    h_pq = fastdiv.cross_entropy(p, q).astype(np.float64)
    kl = fastdiv.kl_divergence(p, q).astype(np.float64)
    h_p = fastdiv.entropy(p).astype(np.float64)
    tol = _tol(p.dtype) * (np.abs(h_pq) + np.abs(kl) + np.abs(h_p)) + 1e-15
    assert (np.abs(h_pq - (kl + h_p)) <= tol).all()


@bounded
@given(distribution_pairs())
def test_js_is_symmetric_and_bounded(pq):
    p, q = pq
    js = fastdiv.js_divergence(p, q, normalize=True)
    np.testing.assert_allclose(
        js, fastdiv.js_divergence(q, p, normalize=True), rtol=_tol(p.dtype), atol=1e-15
    )
    assert (js >= 0).all()
    assert (js <= LOG2 * (1 + _tol(p.dtype))).all()
    assert (fastdiv.js_divergence(p, q, normalize=True, base=2) <= 1 + _tol(p.dtype)).all()


@bounded
@given(weight_batches(), st.integers(-3, 3))
def test_normalize_is_invariant_to_scaling_by_powers_of_two(w, k):
    scaled = w * 2.0**k  # exact, so the normalised inputs are identical
    for name in ("entropy", "kl_divergence", "cross_entropy", "js_divergence"):
        func = getattr(fastdiv, name)
        args = (w,) if name == "entropy" else (w, w[::-1].copy())
        args_scaled = (scaled,) if name == "entropy" else (scaled, w[::-1].copy() * 2.0**-k)
        np.testing.assert_array_equal(
            func(*args, normalize=True), func(*args_scaled, normalize=True)
        )


@bounded
@given(distribution_pairs(), st.sampled_from([2, 10, 0.5, 7.25]))
def test_base_divides_by_log_base(pq, base):
    p, q = pq
    np.testing.assert_allclose(
        fastdiv.kl_divergence(p, q, base=base),
        (fastdiv.kl_divergence(p, q).astype(np.float64) / np.log(base)).astype(p.dtype),
        rtol=_tol(p.dtype),
        atol=1e-300,
    )


# --- results independent of how the batch is laid out ---------------------------------------


def _assert_same(a, b, dtype):
    np.testing.assert_allclose(a, b, rtol=_tol(dtype), atol=1e-15)


NAMES = st.sampled_from(["entropy", "cross_entropy", "kl_divergence", "js_divergence"])


def _call(name, p, q, **kwargs):
    func = getattr(fastdiv, name)
    return func(p, **kwargs) if name == "entropy" else func(p, q, **kwargs)


@bounded
@given(distribution_pairs(), NAMES)
def test_transposed_input_with_axis_zero(pq, name):
    p, q = pq
    _assert_same(_call(name, p.T, q.T, axis=0), _call(name, p, q), p.dtype)
    _assert_same(
        _call(name, np.asfortranarray(p), np.asfortranarray(q)), _call(name, p, q), p.dtype
    )


@bounded
@given(distribution_pairs(), NAMES, st.data())
def test_splitting_the_batch(pq, name, data):
    p, q = pq
    k = data.draw(st.integers(0, p.shape[0]))
    parts = np.concatenate([_call(name, p[:k], q[:k]), _call(name, p[k:], q[k:])])
    _assert_same(parts, _call(name, p, q), p.dtype)


@bounded
@given(distribution_pairs(), NAMES)
def test_broadcast_q_equals_materialised_q(pq, name):
    p, q = pq
    row = q[0]
    _assert_same(_call(name, p, row), _call(name, p, np.tile(row, (p.shape[0], 1))), p.dtype)
    _assert_same(_call(name, row, q), _call(name, np.tile(row, (q.shape[0], 1)), q), q.dtype)


@bounded
@given(distribution_pairs(), NAMES, st.integers(1, 3))
def test_batch_reshaped_into_more_axes(pq, name, copies):
    p, q = pq
    p3 = np.stack([p] * copies)  # (copies, rows, n)
    q3 = np.stack([q] * copies)
    flat = _call(name, p, q)
    _assert_same(_call(name, p3, q3), np.stack([flat] * copies), p.dtype)
    moved = _call(name, np.moveaxis(p3, -1, 0), np.moveaxis(q3, -1, 0), axis=0)
    _assert_same(moved, np.stack([flat] * copies), p.dtype)


@bounded
@given(distribution_pairs(), NAMES)
def test_where_mask_equals_dropping_the_elements(pq, name):
    p, q = pq
    keep = np.ones(p.shape[-1], dtype=bool)
    keep[::2] = False
    if not keep.any():
        keep[0] = True
    masked = _call(name, p, q, where=keep, normalize=True)
    _assert_same(masked, _call(name, p[:, keep], q[:, keep], normalize=True), p.dtype)
