"""Properties of the logit-space functions, on generated logits (selected backend).

Logits are bounded (|z| <= 200) so no example is discarded; the edge values
are covered by the table tests in test_logits.py and test_logits_losses.py.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import fastdiv

LOGITS = arrays(
    np.float64,
    st.tuples(st.integers(1, 4), st.integers(1, 12)),
    elements=st.floats(-200, 200, allow_nan=False, allow_infinity=False),
)
SETTINGS = settings(max_examples=60, deadline=None)


@SETTINGS
@given(LOGITS, st.floats(-500, 500))
def test_logsumexp_shifts_with_its_input(z, shift):
    np.testing.assert_allclose(
        fastdiv.logsumexp(z + shift), fastdiv.logsumexp(z) + shift, rtol=1e-12, atol=1e-10
    )
    assert np.all(fastdiv.logsumexp(z) >= z.max(axis=-1))


@SETTINGS
@given(LOGITS)
def test_softmax_is_a_distribution_and_log_softmax_its_log(z):
    p = fastdiv.softmax(z)
    assert np.all(p >= 0)
    np.testing.assert_allclose(p.sum(axis=-1), 1.0, rtol=1e-14)
    np.testing.assert_allclose(np.exp(fastdiv.log_softmax(z)), p, rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(
        fastdiv.log_softmax(z), z - fastdiv.logsumexp(z, keepdims=True), rtol=1e-12, atol=1e-12
    )


@SETTINGS
@given(LOGITS, st.data())
def test_cross_entropy_is_logsumexp_minus_target_logit(z, data):
    rows, n = z.shape
    target = np.array(data.draw(st.lists(st.integers(0, n - 1), min_size=rows, max_size=rows)))
    loss = fastdiv.softmax_cross_entropy(z, target)
    assert np.all(loss >= 0)
    expected = fastdiv.logsumexp(z) - z[np.arange(z.shape[0]), target]
    np.testing.assert_allclose(loss, expected, rtol=1e-12, atol=1e-12)


@SETTINGS
@given(LOGITS, st.data(), st.floats(0.1, 10))
def test_kl_is_cross_entropy_minus_entropy(a, data, temperature):
    b = data.draw(arrays(np.float64, a.shape, elements=st.floats(-200, 200)))
    kl, kl_grad = fastdiv.kl_divergence_logits(a, b, temperature=temperature, return_grad=True)
    assert np.all(kl >= 0)
    assert np.array_equal(fastdiv.kl_divergence_logits(a, a, temperature=temperature), np.zeros(a.shape[0]))
    p = fastdiv.softmax(a / temperature)
    ce, ce_grad = fastdiv.softmax_cross_entropy(b / temperature, p, return_grad=True)
    scale = np.abs(a).max() / temperature + np.abs(b).max() / temperature + 1.0
    np.testing.assert_allclose(ce - kl, fastdiv.entropy(p), rtol=1e-12, atol=1e-13 * scale)
    # gradients are O(1) before the 1/T factor: an ulp of them is 1.1e-16 / T
    np.testing.assert_allclose(kl_grad, ce_grad / temperature, rtol=1e-12, atol=1e-15 / temperature)


@SETTINGS
@given(LOGITS)
def test_batch_layout_does_not_change_rows(z):
    target = np.zeros(z.shape[0], dtype=int)
    whole = fastdiv.softmax_cross_entropy(z, target, return_grad=True)
    transposed = fastdiv.softmax_cross_entropy(np.ascontiguousarray(z.T), target, axis=0, return_grad=True)
    np.testing.assert_array_equal(whole[0], transposed[0])
    np.testing.assert_array_equal(whole[1], transposed[1].T)
    rows = np.array([fastdiv.logsumexp(row) for row in z])  # one row at a time
    np.testing.assert_allclose(rows, fastdiv.logsumexp(z), rtol=5e-16, atol=1e-300)
