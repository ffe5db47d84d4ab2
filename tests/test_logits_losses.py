"""Losses from logits: softmax cross-entropy, KL from logits, binary cross-entropies.

References: PyTorch's definitions written as float64 NumPy formulas over
SciPy's ``log_softmax`` (PyTorch itself is not a test dependency), SciPy's
``rel_entr``, ``xlogy``, ``xlog1py`` and ``log_expit``, mpmath for digits
SciPy loses, and central finite differences for every gradient.
"""

from __future__ import annotations

import warnings

import mpmath
import numpy as np
import pytest
import scipy.special as sc

import fastdiv

BACKENDS = fastdiv.available_backends()
DTYPES = [np.float64, np.float32]
RTOL = {np.dtype(np.float64): 1e-12, np.dtype(np.float32): 5e-7}
inf, nan = np.inf, np.nan


@pytest.fixture(params=BACKENDS)
def backend(request):
    with fastdiv.use_backend(request.param):
        yield request.param


def quiet(func, *args, **kwargs):
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        return func(*args, **kwargs)


def torch_cross_entropy(z, target, eps=0.0, ignore_index=None):
    """PyTorch's ``cross_entropy(z, target, reduction="none", label_smoothing=eps)``."""
    logp = quiet(sc.log_softmax, z.astype(np.float64), axis=-1)
    n = z.shape[-1]
    target = np.asarray(target)
    if target.dtype.kind in "iu":
        ignored = np.zeros(target.shape, bool) if ignore_index is None else target == ignore_index
        safe = np.where(ignored, 0, target)
        picked = np.take_along_axis(logp, safe[..., None], axis=-1)[..., 0]
        smooth = logp.sum(-1) if eps else 0.0
        loss = -(1 - eps) * picked - eps / n * smooth
        return np.where(ignored, 0.0, loss)
    q = (1 - eps) * target + eps / n
    return quiet(lambda: -np.sum(np.where(q == 0, 0.0, q * logp), axis=-1))


def smoothed_target(target, n, eps=0.0):
    target = np.asarray(target)
    if target.dtype.kind in "iu":
        target = np.eye(n)[target]
    return (1 - eps) * target + eps / n


def finite_difference(loss, z, h=1e-6):
    """Central differences of ``loss(z).sum()`` with respect to every element of ``z``."""
    grad = np.empty_like(z)
    for index in np.ndindex(z.shape):
        step = np.zeros_like(z)
        step[index] = h
        grad[index] = (np.sum(loss(z + step)) - np.sum(loss(z - step))) / (2 * h)
    return grad


def close(actual, expected, dtype, atol=0.0):
    actual = np.asarray(actual)
    assert actual.dtype == np.dtype(dtype), (actual.dtype, dtype)
    np.testing.assert_allclose(actual, expected, rtol=RTOL[np.dtype(dtype)], atol=atol)


# -- softmax_cross_entropy -------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("eps", [0.0, 0.1, 1.0])
def test_cross_entropy_class_indices(backend, dtype, eps):
    rng = np.random.default_rng(10)
    z = (rng.standard_normal((12, 9)) * 3).astype(dtype)
    if np.dtype(dtype) == np.float64:
        z[0] = rng.uniform(-1e4, 1e4, 9)  # spread of 2e4
    target = rng.integers(0, 9, 12)
    loss, grad = fastdiv.softmax_cross_entropy(z, target, label_smoothing=eps, return_grad=True)
    close(loss, torch_cross_entropy(z, target, eps), dtype, atol=1e-12)
    expected_grad = sc.softmax(z.astype(np.float64), axis=-1) - smoothed_target(target, 9, eps)
    close(grad, expected_grad, dtype, atol=1e-7 if dtype == np.float32 else 1e-15)
    assert np.array_equal(fastdiv.softmax_cross_entropy(z, target, label_smoothing=eps), loss)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("eps", [0.0, 0.2])
def test_cross_entropy_probability_targets(backend, dtype, eps):
    rng = np.random.default_rng(11)
    z = (rng.standard_normal((7, 6)) * 4).astype(dtype)
    p = rng.random((7, 6))
    p[rng.random(p.shape) < 0.3] = 0.0
    p[0] = 0.0
    p[0, 2] = 1.0
    p = (p / p.sum(-1, keepdims=True)).astype(dtype)
    loss, grad = fastdiv.softmax_cross_entropy(z, p, label_smoothing=eps, return_grad=True)
    close(loss, torch_cross_entropy(z, p.astype(np.float64), eps), dtype, atol=1e-12)
    q = smoothed_target(p.astype(np.float64), 6, eps)
    expected_grad = q.sum(-1, keepdims=True) * sc.softmax(z.astype(np.float64), axis=-1) - q
    close(grad, expected_grad, dtype, atol=1e-7 if dtype == np.float32 else 1e-15)


def test_cross_entropy_matches_minus_log_softmax(backend):
    rng = np.random.default_rng(12)
    z = rng.standard_normal((5, 8)) * 10
    target = rng.integers(0, 8, 5)
    expected = -sc.log_softmax(z, axis=-1)[np.arange(5), target]
    np.testing.assert_allclose(fastdiv.softmax_cross_entropy(z, target), expected, rtol=1e-13)
    onehot = np.eye(8)[target]
    np.testing.assert_allclose(fastdiv.softmax_cross_entropy(z, onehot), expected, rtol=1e-13)


@pytest.mark.parametrize("eps", [0.0, 0.3])
@pytest.mark.parametrize("kind", ["indices", "probabilities", "unnormalised", "masked"])
def test_cross_entropy_gradient_is_derivative(backend, eps, kind):
    rng = np.random.default_rng(13)
    z = rng.standard_normal((3, 5)) * 2
    where = None
    if kind == "indices":
        target = np.array([0, 4, 2])
    else:
        target = rng.random((3, 5)) * (3.0 if kind == "unnormalised" else 1.0)
        if kind != "unnormalised":
            target /= target.sum(-1, keepdims=True)
    if kind == "masked":
        where = np.array([[1, 1, 0, 1, 1], [0, 1, 1, 1, 1], [1, 1, 1, 1, 0]], bool)
    kwargs = dict(label_smoothing=eps, where=where)
    _, grad = fastdiv.softmax_cross_entropy(z, target, return_grad=True, **kwargs)
    numeric = finite_difference(lambda x: fastdiv.softmax_cross_entropy(x, target, **kwargs), z)
    np.testing.assert_allclose(grad, numeric, atol=2e-8)
    if where is not None:
        assert (grad[~where] == 0).all()


def test_cross_entropy_ignore_index(backend):
    rng = np.random.default_rng(14)
    z = rng.standard_normal((6, 4))
    z[1] = nan  # an ignored row is not read
    target = np.array([1, -100, 3, -100, 0, 2])
    for eps in (0.0, 0.1):
        loss, grad = fastdiv.softmax_cross_entropy(
            z, target, ignore_index=-100, label_smoothing=eps, return_grad=True
        )
        np.testing.assert_allclose(loss, torch_cross_entropy(z, target, eps, ignore_index=-100), rtol=1e-13)
        assert (loss[[1, 3]] == 0).all() and (grad[[1, 3]] == 0).all()
        assert np.isfinite(grad).all()
    # ignore_index may be a real class: those rows are ignored too (PyTorch's rule)
    loss = fastdiv.softmax_cross_entropy(np.zeros((3, 4)), [2, 1, 2], ignore_index=2)
    np.testing.assert_allclose(loss, [0.0, np.log(4), 0.0], rtol=1e-15)


def test_cross_entropy_every_row_ignored(backend):
    z = np.array([[nan, 1.0], [inf, -inf]])
    loss, grad = fastdiv.softmax_cross_entropy(z, [-1, -1], ignore_index=-1, return_grad=True)
    assert np.array_equal(loss, [0.0, 0.0]) and np.array_equal(grad, np.zeros((2, 2)))
    loss32 = fastdiv.softmax_cross_entropy(z.astype(np.float32), np.array([7, 7], np.uint8), ignore_index=7)
    assert loss32.dtype == np.float32 and np.array_equal(loss32, [0.0, 0.0])


def test_cross_entropy_special_rows(backend):
    z = np.array(
        [
            [0.0, -inf, 1.0],  # -inf logit of another class: finite loss
            [-inf, 0.0, 1.0],  # -inf logit of the target: inf
            [inf, 0.0, 1.0],
            [nan, 0.0, 1.0],
            [-inf, -inf, -inf],
        ]
    )
    target = np.zeros(5, dtype=int)
    target[0] = 2
    loss, grad = quiet(fastdiv.softmax_cross_entropy, z, target, return_grad=True)
    assert np.isclose(loss[0], np.log1p(np.exp(-1.0))) and loss[1] == inf
    assert np.isnan(loss[2:]).all() and np.isnan(grad[2:]).all()
    np.testing.assert_allclose(grad[0], sc.softmax(z[0]) - [0, 0, 1], atol=1e-16)
    smoothed = fastdiv.softmax_cross_entropy(z[:1], target[:1], label_smoothing=0.1)
    assert smoothed[0] == inf  # the smoothed target puts mass on a class of probability 0
    # a zero probability on a -inf logit adds nothing
    assert np.isfinite(fastdiv.softmax_cross_entropy(z[0], [0.5, 0.0, 0.5]))


def test_cross_entropy_keeps_digits_of_small_loss(backend):
    with mpmath.workdps(50):
        exact = float(mpmath.log1p(mpmath.exp(-50)))
    got = fastdiv.softmax_cross_entropy([0.0, -50.0], 0)
    np.testing.assert_allclose(got, exact, rtol=4e-16)
    assert -sc.log_softmax([0.0, -50.0])[0] == 0.0  # the naive formula loses it


def test_cross_entropy_where(backend):
    rng = np.random.default_rng(15)
    z = rng.standard_normal((5, 7)) * 3
    mask = rng.random((5, 7)) < 0.6
    mask[:, 0] = True
    z_masked_nan = np.where(mask, z, nan)  # masked elements are never read
    target = np.zeros(5, dtype=int)
    p = rng.random((5, 7))
    for eps in (0.0, 0.2):
        loss_i, grad_i = fastdiv.softmax_cross_entropy(
            z_masked_nan, target, where=mask, label_smoothing=eps, return_grad=True
        )
        loss_p = fastdiv.softmax_cross_entropy(z_masked_nan, p, where=mask, label_smoothing=eps)
        for r in range(5):
            kept = mask[r]
            row_i = torch_cross_entropy(z[r, kept], np.array(0), eps)
            row_p = torch_cross_entropy(z[r, kept], p[r, kept], eps)
            np.testing.assert_allclose([loss_i[r], loss_p[r]], [row_i, row_p], rtol=1e-13)
            expected = sc.softmax(z[r, kept]) - smoothed_target(0, kept.sum(), eps)
            np.testing.assert_allclose(grad_i[r, kept], expected, atol=1e-15)
        assert (grad_i[~mask] == 0).all()
    # a row with no kept class (probability targets) gives 0
    empty = fastdiv.softmax_cross_entropy(z[:2], p[:2], where=np.zeros(7, bool), return_grad=True)
    assert np.array_equal(empty[0], [0.0, 0.0]) and (empty[1] == 0).all()


def test_cross_entropy_layouts(backend):
    rng = np.random.default_rng(16)
    z = rng.standard_normal((4, 6, 5))  # classes on axis 1
    target = rng.integers(0, 6, (4, 5))
    loss, grad = fastdiv.softmax_cross_entropy(z, target, axis=1, return_grad=True)
    moved = np.moveaxis(z, 1, -1)
    np.testing.assert_allclose(loss, torch_cross_entropy(moved, target), rtol=1e-13)
    assert grad.shape == z.shape
    np.testing.assert_allclose(
        np.moveaxis(grad, 1, -1), sc.softmax(moved, axis=-1) - np.eye(6)[target], atol=1e-15
    )
    p = rng.random(6)  # one target distribution for every row, broadcast
    p /= p.sum()
    loss, grad = fastdiv.softmax_cross_entropy(moved[:, ::2], p, return_grad=True)
    every_row = np.broadcast_to(p, moved[:, ::2].shape)
    np.testing.assert_allclose(loss, torch_cross_entropy(moved[:, ::2], every_row), rtol=1e-13)
    assert grad.shape == moved[:, ::2].shape
    single = fastdiv.softmax_cross_entropy([1.0, 2.0], 1)  # one row: a scalar
    assert np.ndim(single) == 0 and np.isclose(single, np.log1p(np.exp(-1.0)))


# -- kl_divergence_logits -----------------------------------------------------------------


def scipy_kl_logits(a, b, temperature=1.0):
    p = sc.softmax(np.asarray(a, np.float64) / temperature, axis=-1)
    q = sc.softmax(np.asarray(b, np.float64) / temperature, axis=-1)
    return sc.rel_entr(p, q).sum(-1)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("temperature", [1.0, 0.5, 4.0])
def test_kl_logits_vs_scipy(backend, dtype, temperature):
    rng = np.random.default_rng(20)
    a = (rng.standard_normal((9, 11)) * 3).astype(dtype)
    b = (rng.standard_normal((9, 11)) * 3).astype(dtype)
    loss, grad = fastdiv.kl_divergence_logits(a, b, temperature=temperature, return_grad=True)
    close(loss, scipy_kl_logits(a, b, temperature), dtype, atol=1e-14)
    p = sc.softmax(a.astype(np.float64) / temperature, axis=-1)
    q = sc.softmax(b.astype(np.float64) / temperature, axis=-1)
    close(grad, (q - p) / temperature, dtype, atol=1e-7 if dtype == np.float32 else 1e-15)
    assert (loss >= 0).all()


def test_kl_logits_properties(backend):
    rng = np.random.default_rng(21)
    a = rng.standard_normal((6, 8)) * 5
    assert np.array_equal(fastdiv.kl_divergence_logits(a, a), np.zeros(6))
    shifted = fastdiv.kl_divergence_logits(a, a + 100.0)  # softmax is shift-invariant
    assert np.all(shifted <= 1e-13) and np.all(shifted >= 0)
    loss, grad = fastdiv.kl_divergence_logits(a, a, return_grad=True)
    np.testing.assert_allclose(grad, 0.0, atol=1e-16)


def test_kl_logits_near_identical_keeps_absolute_accuracy(backend):
    rng = np.random.default_rng(22)
    a = rng.standard_normal((3, 6)) * 2
    b = a + 1e-7 * rng.standard_normal(a.shape)
    got = fastdiv.kl_divergence_logits(a, b)
    with mpmath.workdps(60):
        for r in range(3):
            x = [mpmath.mpf(float(v)) for v in a[r]]
            y = [mpmath.mpf(float(v)) for v in b[r]]
            lx = mpmath.log(mpmath.fsum(mpmath.exp(v) for v in x))
            ly = mpmath.log(mpmath.fsum(mpmath.exp(v) for v in y))
            exact = mpmath.fsum(mpmath.exp(u - lx) * ((u - lx) - (v - ly)) for u, v in zip(x, y))
            assert abs(got[r] - float(exact)) < 1e-15


def test_kl_logits_gradient_is_derivative(backend):
    rng = np.random.default_rng(23)
    a, b = rng.standard_normal((2, 3, 5)) * 2
    mask = np.array([1, 1, 0, 1, 1], bool)
    for temperature in (1.0, 3.0):
        for where in (None, mask):
            kwargs = dict(temperature=temperature, where=where)
            _, grad = fastdiv.kl_divergence_logits(a, b, return_grad=True, **kwargs)
            numeric = finite_difference(lambda x: fastdiv.kl_divergence_logits(a, x, **kwargs), b)
            np.testing.assert_allclose(grad, numeric, atol=2e-8)


def test_kl_logits_special_rows(backend):
    a = np.array([[-inf, 0, 1], [0, 1, 2], [-inf, 0, 1], [inf, 0, 0], [nan, 0, 0], [-inf, -inf, -inf]])
    b = np.array([[0, 0, 1], [-inf, 1, 2], [-inf, 0, 1], [0, 0, 0], [0, 0, 0], [0, 0, 0.0]])
    loss, grad = quiet(fastdiv.kl_divergence_logits, a, b, return_grad=True)
    np.testing.assert_allclose(loss[0], scipy_kl_logits(a[0], b[0]), rtol=1e-14)  # p = 0 adds 0
    assert loss[1] == inf  # p > 0 where q = 0
    assert loss[2] == 0.0
    assert np.isnan(loss[3:]).all() and np.isnan(grad[3:]).all()
    empty = fastdiv.kl_divergence_logits(a[:2], b[:2], where=np.zeros(3, bool), return_grad=True)
    assert np.array_equal(empty[0], [0.0, 0.0]) and (empty[1] == 0).all()


def test_kl_logits_layouts(backend):
    rng = np.random.default_rng(24)
    a = rng.standard_normal((3, 4, 5))
    b = rng.standard_normal((4, 5))  # broadcast student logits
    loss, grad = fastdiv.kl_divergence_logits(a, b, axis=(1, 2), return_grad=True)
    flat_a, flat_b = a.reshape(3, 20), np.broadcast_to(b.reshape(20), (3, 20))
    np.testing.assert_allclose(loss, scipy_kl_logits(flat_a, flat_b), rtol=1e-13)
    assert grad.shape == (3, 4, 5)
    expected = sc.softmax(flat_b, axis=-1) - sc.softmax(flat_a, axis=-1)
    np.testing.assert_allclose(grad.reshape(3, 20), expected, atol=1e-16)
    loss0 = fastdiv.kl_divergence_logits(a[:, ::-1].T, b[::-1].T[..., None], axis=0)
    assert loss0.shape == (4, 3)


@pytest.mark.parametrize("temperature", [1.0, 2.5])
@pytest.mark.parametrize("where", [None, "mask"])
def test_cross_entropy_and_kl_gradients_agree(backend, temperature, where):
    """With a fixed target p, CE and KL differ by H(p): equal gradients."""
    rng = np.random.default_rng(25)
    teacher = rng.standard_normal((6, 10)) * 3
    student = rng.standard_normal((6, 10)) * 3
    mask = None if where is None else rng.random((6, 10)) < 0.7
    kl, kl_grad = fastdiv.kl_divergence_logits(
        teacher, student, temperature=temperature, where=mask, return_grad=True
    )
    scaled = teacher / temperature
    p = fastdiv.softmax(scaled if mask is None else np.where(mask, scaled, -inf))
    ce, ce_grad = fastdiv.softmax_cross_entropy(student / temperature, p, where=mask, return_grad=True)
    np.testing.assert_allclose(kl_grad, ce_grad / temperature, rtol=1e-12, atol=1e-16)
    np.testing.assert_allclose(ce - kl, fastdiv.entropy(p, where=mask), rtol=1e-12)


# -- binary cross-entropies ----------------------------------------------------------------


def scipy_bce(p, q):
    return quiet(lambda: -(sc.xlogy(p, q) + sc.xlog1py(1 - p, -q)))


@pytest.mark.parametrize("dtype", DTYPES)
def test_binary_cross_entropy(backend, dtype):
    rng = np.random.default_rng(30)
    p = rng.random((5, 8)).astype(dtype)
    q = rng.random((5, 8)).astype(dtype)
    p[0, :4] = [0.0, 1.0, 0.0, 1.0]
    q[0, :4] = [0.0, 1.0, 1e-30, 1.0 - 1e-7]
    got = fastdiv.binary_cross_entropy(p, q)
    close(got, scipy_bce(p.astype(np.float64), q.astype(np.float64)).sum(-1), dtype)
    edges = np.array([0.0, 0.3, 1.0, -0.5, 1.5, nan])
    pp, qq = np.meshgrid(edges, edges, indexing="ij")
    got = fastdiv.binary_cross_entropy(pp[..., None], qq[..., None])
    expected = scipy_bce(pp, qq)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
    np.testing.assert_allclose(got[~np.isnan(got)], expected[~np.isnan(got)], rtol=1e-14)
    assert fastdiv.binary_cross_entropy([1.0], [0.0])[()] == inf  # no clamp at 100
    mask = rng.random((5, 8)) < 0.5
    np.testing.assert_allclose(
        fastdiv.binary_cross_entropy(p, q, where=mask, axis=None, keepdims=True),
        [[scipy_bce(p[mask].astype(np.float64), q[mask].astype(np.float64)).sum()]],
        rtol=RTOL[np.dtype(dtype)],
    )


def scipy_bce_logits(z, t, w=1.0):
    return quiet(lambda: -(w * t * sc.log_expit(z) + (1 - t) * sc.log_expit(-z)))


@pytest.mark.parametrize("dtype", DTYPES)
def test_binary_cross_entropy_with_logits(backend, dtype):
    rng = np.random.default_rng(31)
    z = (rng.standard_normal((6, 7)) * 5).astype(dtype)
    huge = 800.0 if dtype == np.float64 else 80.0  # exp overflows beyond
    z[0] = [huge, -huge, 1e4, -1e4, 40.0, -40.0, 0.0]
    t = rng.random((6, 7)).astype(dtype)
    w = rng.uniform(0.5, 3.0, 7).astype(dtype)  # one weight per class, broadcast
    expected = scipy_bce_logits(z.astype(np.float64), t.astype(np.float64)).sum(-1)
    close(fastdiv.binary_cross_entropy_with_logits(z, t), expected, dtype)
    expected_w = scipy_bce_logits(z.astype(np.float64), t.astype(np.float64), w.astype(np.float64)).sum(-1)
    close(fastdiv.binary_cross_entropy_with_logits(z, t, pos_weight=w), expected_w, dtype)
    assert np.isfinite(fastdiv.binary_cross_entropy_with_logits(z, t)).all()


def test_binary_cross_entropy_with_logits_special_values(backend):
    z = np.array([inf, inf, -inf, -inf, nan, 0.0])
    t = np.array([1.0, 0.5, 0.0, 1.0, 0.0, 0.0])
    got = fastdiv.binary_cross_entropy_with_logits(z[:, None], t[:, None])
    np.testing.assert_array_equal(got, [0.0, inf, 0.0, inf, nan, np.log(2)])
    # matches the probability form where both are defined
    zs = np.linspace(-15, 15, 13)  # 1 - expit(z) keeps ~9 digits here
    ts = np.linspace(0, 1, 13)
    np.testing.assert_allclose(
        fastdiv.binary_cross_entropy_with_logits(zs, ts, axis=None),
        fastdiv.binary_cross_entropy(ts, sc.expit(zs), axis=None),
        rtol=1e-8,
    )


# -- bad input -----------------------------------------------------------------------------


def test_bad_class_indices_name_the_value(backend):
    z = np.zeros((3, 4))
    with pytest.raises(ValueError, match=r"class index 7 at position \(1,\).*\[0, 4\)"):
        fastdiv.softmax_cross_entropy(z, [0, 7, 1])
    with pytest.raises(ValueError, match=r"class index -1 at position \(2,\)"):
        fastdiv.softmax_cross_entropy(z, [0, 1, -1])
    with pytest.raises(ValueError, match=r"class index -100"):
        fastdiv.softmax_cross_entropy(z, [0, 1, -100], ignore_index=-99)
    with pytest.raises(ValueError, match=r"target class 2 at position \(0,\) is masked out"):
        fastdiv.softmax_cross_entropy(z, [2, 1, 1], where=np.array([1, 1, 0, 1], bool))


def test_bad_targets(backend):
    z = np.zeros((3, 4))
    with pytest.raises(ValueError, match=r"shape \(2,\).*without axis -1: \(3,\)"):
        fastdiv.softmax_cross_entropy(z, [0, 1])
    with pytest.raises(ValueError, match="pass a floating array"):
        fastdiv.softmax_cross_entropy(z, np.zeros((3, 4), dtype=int))
    with pytest.raises(ValueError, match="class indices must be integers"):
        fastdiv.softmax_cross_entropy(z, np.array([0.0, 1.0, 2.0]))
    with pytest.raises(ValueError, match="could not be broadcast"):
        fastdiv.softmax_cross_entropy(z, np.zeros((2, 4)))
    with pytest.raises(ValueError, match="ignore_index applies to integer class targets"):
        fastdiv.softmax_cross_entropy(z, np.full((3, 4), 0.25), ignore_index=-100)
    with pytest.raises(TypeError, match="ignore_index"):
        fastdiv.softmax_cross_entropy(z, [0, 1, 2], ignore_index=1.5)
    with pytest.raises(TypeError, match="complex"):
        fastdiv.softmax_cross_entropy(z, np.zeros((3, 4), complex))
    for eps in (-0.1, 1.5, nan):
        with pytest.raises(ValueError, match="label_smoothing"):
            fastdiv.softmax_cross_entropy(z, [0, 1, 2], label_smoothing=eps)
    with pytest.raises(TypeError, match="label_smoothing"):
        fastdiv.softmax_cross_entropy(z, [0, 1, 2], label_smoothing="0.1")


def test_bad_temperature_and_operands(backend):
    a = np.zeros((2, 3))
    for temperature in (0.0, -1.0, inf, nan):
        with pytest.raises(ValueError, match="temperature"):
            fastdiv.kl_divergence_logits(a, a, temperature=temperature)
    with pytest.raises(ValueError, match=r"logits_p has shape \(2, 3\), logits_q has shape \(2,\)"):
        fastdiv.kl_divergence_logits(a, np.zeros(2))
    with pytest.raises(ValueError, match="pos_weight has shape"):
        fastdiv.binary_cross_entropy_with_logits(a, a, pos_weight=np.ones(2))
    with pytest.raises(TypeError, match="complex"):
        fastdiv.logsumexp(a.astype(complex))
    with pytest.raises(np.exceptions.AxisError):
        fastdiv.log_softmax(a, axis=2)


def test_errors_leave_out_and_inputs_untouched(backend):
    z = np.arange(12.0).reshape(3, 4)
    z_before = z.copy()
    out = np.full(3, 5.0)
    with pytest.raises(ValueError):
        fastdiv.logsumexp(z, where=np.ones(3, bool), out=out)
    with pytest.raises(TypeError):
        fastdiv.log_softmax(z, out=np.empty((3, 4), dtype=int))
    with pytest.raises(ValueError):
        fastdiv.softmax_cross_entropy(z, [0, 9, 1])
    assert np.array_equal(out, np.full(3, 5.0)) and np.array_equal(z, z_before)
