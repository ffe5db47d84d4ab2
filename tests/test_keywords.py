"""Every keyword, alone and in combination, against SciPy terms reduced by ``np.sum``."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import scipy.special as sc

import fastdiv

REDUCTIONS = ["entropy", "cross_entropy", "kl_divergence", "js_divergence"]


def terms(name, p, q=None):
    """SciPy's per-element terms of reduction ``name`` (float64)."""
    with np.errstate(all="ignore"):
        if name == "entropy":
            return sc.entr(p)
        if name == "cross_entropy":
            return -sc.xlogy(p, q)
        if name == "kl_divergence":
            return sc.rel_entr(p, q)
        m = (p + q) / 2
        return (sc.rel_entr(p, m) + sc.rel_entr(q, m)) / 2


def expected(name, p, q=None, axis=-1, where=True, keepdims=False, normalize=False):
    p = np.asarray(p, dtype=np.float64)
    q = None if q is None else np.asarray(q, dtype=np.float64)
    if q is not None:
        p, q = np.broadcast_arrays(p, q)
    if normalize:
        with np.errstate(all="ignore"):  # an all-masked row divides by 0
            p = p / np.sum(p, axis=axis, keepdims=True, where=where)
            q = None if q is None else q / np.sum(q, axis=axis, keepdims=True, where=where)
    return np.sum(terms(name, p, q), axis=axis, where=where, keepdims=keepdims)


def call(name, p, q=None, **kwargs):
    func = getattr(fastdiv, name)
    return func(p, **kwargs) if name == "entropy" else func(p, q, **kwargs)


@pytest.fixture
def pq():
    rng = np.random.default_rng(10)
    p = rng.random((3, 4, 5))
    q = rng.random((3, 4, 5)) + 0.05
    p[0, 1, 2] = 0.0
    return p, q


AXES = [-1, 0, 1, 2, -2, (0, 2), (2, 0), (-1, -3), (0, 1, 2), None, ()]


@pytest.mark.parametrize("name", REDUCTIONS)
@pytest.mark.parametrize("axis", AXES, ids=repr)
@pytest.mark.parametrize("keepdims", [False, True])
def test_axis_and_keepdims(pq, name, axis, keepdims):
    p, q = pq
    result = call(name, p, q, axis=axis, keepdims=keepdims)
    want = expected(name, p, q, axis=axis, keepdims=keepdims)
    assert np.shape(result) == want.shape
    np.testing.assert_allclose(result, want, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("name", REDUCTIONS)
@pytest.mark.parametrize("axis", [-1, 0, (0, 2), None], ids=repr)
def test_normalize_with_axis(pq, name, axis):
    p, q = pq
    result = call(name, p, q, axis=axis, normalize=True)
    np.testing.assert_allclose(
        result, expected(name, p, q, axis=axis, normalize=True), rtol=1e-12, atol=1e-15
    )


@pytest.mark.parametrize("name", REDUCTIONS)
@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("out_dtype", [np.float64, np.float32])
def test_out(pq, name, keepdims, out_dtype):
    p, q = pq
    want = expected(name, p, q, axis=1, keepdims=keepdims)
    out = np.full(want.shape, -7.0, dtype=out_dtype)
    result = call(name, p, q, axis=1, keepdims=keepdims, out=out)
    assert result is out
    np.testing.assert_allclose(out, want, rtol=1e-6 if out_dtype == np.float32 else 1e-13)


def test_out_non_contiguous(pq):
    p, q = pq
    buffer = np.zeros((4, 6))
    out = buffer[::2, ::2].T  # shape (3, 2): strided and transposed
    fastdiv.kl_divergence(p[:, :2], q[:, :2], out=out)
    np.testing.assert_allclose(out, expected("kl_divergence", p[:, :2], q[:, :2]), rtol=1e-13)
    assert (buffer[1::2] == 0).all() and (buffer[:, 1::2] == 0).all()


def test_out_zero_d_for_scalar_result():
    out = np.zeros(())
    result = fastdiv.entropy([0.5, 0.5], out=out)
    assert result is out
    assert out[()] == pytest.approx(np.log(2), rel=1e-15)


@pytest.mark.parametrize("name", REDUCTIONS)
@pytest.mark.parametrize(
    "where_shape", [(3, 4, 5), (4, 5), (5,), (3, 1, 5), (3, 4, 1)], ids=str
)
@pytest.mark.parametrize("normalize", [False, True])
def test_where_masks_and_broadcast_masks(pq, name, where_shape, normalize):
    p, q = pq
    rng = np.random.default_rng(11)
    where = rng.random(where_shape) < 0.6
    full = np.broadcast_to(where, p.shape)
    result = call(name, p, q, where=where, normalize=normalize)
    want = expected(name, p, q, where=full, normalize=normalize)
    np.testing.assert_allclose(result, want, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("name", REDUCTIONS)
@pytest.mark.parametrize("normalize", [False, True])
def test_all_false_rows_give_zero(pq, name, normalize):
    p, q = pq
    where = np.ones(p.shape, dtype=bool)
    where[1, 2] = False
    where[2] = False
    result = call(name, p, q, where=where, normalize=normalize)
    assert (result[1, 2] == 0) and (result[2] == 0).all()
    assert (result[0] != 0).all()


@pytest.mark.parametrize("name", REDUCTIONS)
def test_masked_out_specials_are_ignored(name):
    p = np.array([[0.5, 0.5, np.nan, -1.0, np.inf]])
    q = np.array([[0.25, 0.75, 1.0, np.nan, 0.0]])
    where = np.array([True, True, False, False, False])
    for normalize in (False, True):
        result = call(name, p, q, where=where, normalize=normalize)
        want = expected(name, p[:, :2], q[:, :2], normalize=normalize)
        np.testing.assert_allclose(result, want, rtol=1e-14)


def test_where_true_and_false_scalars(pq):
    p, q = pq
    np.testing.assert_array_equal(
        fastdiv.kl_divergence(p, q, where=True), fastdiv.kl_divergence(p, q)
    )
    np.testing.assert_array_equal(
        fastdiv.kl_divergence(p, q, where=False), np.zeros(p.shape[:-1])
    )


def test_where_with_axis_tuple(pq):
    p, q = pq
    where = np.random.default_rng(12).random(p.shape) < 0.5
    result = fastdiv.kl_divergence(p, q, axis=(0, 2), where=where, keepdims=True)
    want = expected("kl_divergence", p, q, axis=(0, 2), where=where, keepdims=True)
    np.testing.assert_allclose(result, want, rtol=1e-13)


@pytest.mark.parametrize("name", ["cross_entropy", "kl_divergence", "js_divergence"])
@pytest.mark.parametrize(
    "p_shape, q_shape",
    [((5,), (4, 5)), ((4, 5), (5,)), ((4, 5), (4, 1)), ((4, 1), (4, 5)), ((3, 1, 5), (1, 4, 5)),
     ((1,), (4, 5)), ((), (4, 5))],
    ids=str,
)
def test_broadcasting_p_against_q(name, p_shape, q_shape):
    rng = np.random.default_rng(13)
    p, q = rng.random(p_shape), rng.random(q_shape) + 0.1
    result = call(name, p, q)
    want = expected(name, p, q)
    assert result.shape == want.shape
    np.testing.assert_allclose(result, want, rtol=1e-13)
    materialised = call(name, *np.broadcast_arrays(p, q))
    np.testing.assert_allclose(result, materialised, rtol=1e-14, atol=1e-300)


def _layouts(a):
    """The same values of 2-D ``a`` in unusual memory layouts."""
    yield "C", np.ascontiguousarray(a)
    yield "F", np.asfortranarray(a)
    strided = np.zeros((a.shape[0] * 2, a.shape[1] * 3))
    strided[::2, ::3] = a
    yield "strided", strided[::2, ::3]
    reversed_ = np.ascontiguousarray(a[::-1, ::-1])
    yield "negative strides", reversed_[::-1, ::-1]
    yield "byte-swapped", a.astype(a.dtype.newbyteorder())
    readonly = a.copy()
    readonly.setflags(write=False)
    yield "read-only", readonly
    yield "transposed view", np.ascontiguousarray(a.T).T


@pytest.mark.parametrize("name", REDUCTIONS)
def test_memory_layouts(name):
    rng = np.random.default_rng(14)
    p, q = rng.random((6, 9)), rng.random((6, 9)) + 0.1
    want = expected(name, p, q)
    for (label_p, lp), (label_q, lq) in itertools.product(_layouts(p), _layouts(q)):
        result = call(name, lp, lq)
        np.testing.assert_allclose(
            result, want, rtol=1e-13, atol=1e-14, err_msg=f"p {label_p}, q {label_q}"
        )
    for label, lp in _layouts(p):
        np.testing.assert_allclose(
            call(name, lp, q, axis=0), expected(name, p, q, axis=0), rtol=1e-13, atol=1e-14,
            err_msg=label,
        )


@pytest.mark.parametrize("label_layout", list(_layouts(np.arange(12.0).reshape(3, 4) / 7)),
                         ids=lambda lt: lt[0])
def test_elementwise_layouts(label_layout):
    label, p = label_layout
    q = np.full((3, 4), 0.4)
    np.testing.assert_allclose(fastdiv.rel_entr(p, q), sc.rel_entr(p, q), rtol=1e-14)
    np.testing.assert_allclose(fastdiv.entr(p), sc.entr(p), rtol=1e-14)
    assert fastdiv.entr(p).flags.writeable


def test_zero_d_inputs():
    assert fastdiv.entropy(0.5, axis=None) == pytest.approx(sc.entr(0.5), rel=1e-15)
    assert fastdiv.kl_divergence(0.5, 0.25, axis=None) == pytest.approx(
        sc.rel_entr(0.5, 0.25), rel=1e-15
    )
    assert fastdiv.entropy(0.5, axis=()) == pytest.approx(sc.entr(0.5), rel=1e-15)
    result = fastdiv.rel_entr(0.5, 0.25)
    assert np.ndim(result) == 0 and isinstance(result, np.float64)
    assert fastdiv.entr(np.float32(0.5)).dtype == np.float32
    # Like np.sum(0.5, axis=-1): a 0-d array has no axis -1.
    with pytest.raises(np.exceptions.AxisError):
        fastdiv.entropy(0.5)


def test_reduction_returns_numpy_scalar_or_array():
    assert isinstance(fastdiv.entropy([0.5, 0.5]), np.float64)
    assert isinstance(fastdiv.entropy(np.array([0.5, 0.5], np.float32)), np.float32)
    assert isinstance(fastdiv.entropy([[0.5, 0.5]]), np.ndarray)
    assert fastdiv.entropy([0.5, 0.5], keepdims=True).shape == (1,)


@pytest.mark.parametrize("name", REDUCTIONS)
def test_empty_inputs_reduce_to_zero_like_np_sum(name):
    for shape, axis in [((0,), -1), ((3, 0), -1), ((0, 4), 0), ((2, 0, 3), (1, 2)), ((0,), None)]:
        p = np.zeros(shape)
        result = call(name, p, p, axis=axis)
        want = np.sum(p, axis=axis)
        assert np.shape(result) == np.shape(want)
        np.testing.assert_array_equal(result, want)
    batch = call(name, np.zeros((0, 5)), np.zeros((0, 5)))
    assert batch.shape == (0,) and batch.dtype == np.float64
    assert call(name, np.zeros((0, 5)), np.zeros((0, 5)), keepdims=True).shape == (0, 1)


def test_empty_elementwise():
    assert fastdiv.entr(np.zeros((0, 3))).shape == (0, 3)
    assert fastdiv.rel_entr(np.zeros((3, 0)), np.zeros((1, 0))).shape == (3, 0)
    assert fastdiv.rel_entr(np.zeros((3, 1)), np.zeros(0)).shape == (3, 0)


@pytest.mark.parametrize(
    "in_dtype, out_dtype",
    [(np.float32, np.float32), (np.float64, np.float64), (np.float16, np.float32),
     (np.int64, np.float64), (np.int8, np.float64), (np.uint16, np.float64),
     (np.bool_, np.float64), (np.longdouble, np.longdouble)],
    ids=lambda d: np.dtype(d).name,
)
def test_dtype_policy(in_dtype, out_dtype):
    p = np.array([[1, 0, 1, 1]], dtype=in_dtype)
    q = np.array([[1, 1, 1, 0]], dtype=in_dtype)
    for name in REDUCTIONS:
        assert call(name, p, q).dtype == out_dtype, name
    assert fastdiv.rel_entr(p, q).dtype == out_dtype
    assert fastdiv.entr(p).dtype == out_dtype


def test_mixed_dtypes_promote_as_numpy_does():
    p32 = np.array([0.5, 0.5], np.float32)
    q64 = np.array([0.25, 0.75])
    assert fastdiv.kl_divergence(p32, q64).dtype == np.float64
    assert fastdiv.kl_divergence(p32, np.array([1, 3], np.int8)).dtype == np.float32
    assert fastdiv.kl_divergence(p32, [0.25, 0.75]).dtype == np.float64
    assert fastdiv.rel_entr(np.float16(0.5), p32).dtype == np.float32


def test_python_scalars_promote_weakly_like_scipy():
    p32 = np.array([0.5, 0.25], np.float32)
    for q in (0.5, 2, True):
        assert fastdiv.rel_entr(p32, q).dtype == sc.rel_entr(p32, q).dtype == np.float32
        assert fastdiv.kl_divergence(p32, q).dtype == np.float32
    assert fastdiv.rel_entr(p32, np.float64(0.5)).dtype == np.float64  # NumPy scalar: strong
    assert fastdiv.rel_entr(0.5, 0.25).dtype == np.float64
    assert fastdiv.rel_entr(1, 2).dtype == np.float64
    assert fastdiv.entr(np.float16(0.5)).dtype == np.float32


def test_longdouble_is_computed_in_longdouble():
    if np.finfo(np.longdouble).eps >= np.finfo(np.float64).eps:
        pytest.skip("longdouble is float64 here")
    p = np.array([1 + 2 * np.finfo(np.longdouble).eps, 1.0], dtype=np.longdouble)
    q = np.array([1.0, 1.0], dtype=np.longdouble)
    # The first term is ~2 eps_ld: invisible in float64 but not in longdouble.
    terms = fastdiv.rel_entr(p, q)
    assert terms.dtype == np.longdouble and terms[0] > 0
    assert fastdiv.kl_divergence(p, q) == terms.sum()


def test_float32_accuracy_is_float64_accumulated():
    p = np.full(1_000_000, 1e-6, dtype=np.float32)
    result = fastdiv.entropy(p)
    exact = -np.float64(np.float32(1e-6)) * np.log(np.float64(np.float32(1e-6))) * 1e6
    assert result.dtype == np.float32
    assert result == pytest.approx(exact, rel=1e-6)


@pytest.mark.parametrize("target", ["p", "q"])
def test_rel_entr_in_place(target):
    rng = np.random.default_rng(15)
    p, q = rng.random((4, 5)), rng.random((4, 5))
    want = sc.rel_entr(p, q)
    buffers = {"p": p, "q": q}
    result = fastdiv.rel_entr(p, q, out=buffers[target])
    assert result is buffers[target]
    np.testing.assert_allclose(buffers[target], want, rtol=1e-14)


def test_entr_in_place_and_float32_out():
    p = np.linspace(0, 1, 11, dtype=np.float32)
    want = sc.entr(p)
    assert fastdiv.entr(p, out=p) is p
    np.testing.assert_allclose(p, want, rtol=1e-6)
    p64 = np.linspace(0, 1, 11)
    out32 = np.empty(11, np.float32)
    fastdiv.entr(p64, out=out32)
    np.testing.assert_allclose(out32, sc.entr(p64), rtol=1e-6)


def test_elementwise_out_overlapping_shifted_input():
    base = np.linspace(0.1, 1, 10)
    p = base[:-1]
    out = base[1:]  # overlaps p shifted by one element
    want = sc.rel_entr(p.copy(), 0.5)
    fastdiv.rel_entr(p, 0.5, out=out)
    np.testing.assert_allclose(out, want, rtol=1e-14)


def test_elementwise_out_broadcast_and_strided():
    p = np.linspace(0.1, 1, 5)
    q = np.array([[0.2], [0.7]])
    out = np.zeros((2, 10))[:, ::2]
    assert fastdiv.rel_entr(p, q, out=out) is out
    np.testing.assert_allclose(out, sc.rel_entr(p, q), rtol=1e-14)


def test_inputs_are_never_written():
    rng = np.random.default_rng(16)
    p, q = rng.random((5, 7)), rng.random((5, 7))
    p_copy, q_copy = p.copy(), q.copy()
    for name in REDUCTIONS:
        call(name, p, q, normalize=True)
        call(name, p, q, where=p > 0.3, normalize=True)
    fastdiv.rel_entr(p, q)
    fastdiv.entr(p)
    np.testing.assert_array_equal(p, p_copy)
    np.testing.assert_array_equal(q, q_copy)


def test_lists_and_scalars_are_accepted():
    assert fastdiv.kl_divergence([0.5, 0.5], [0.25, 0.75]) == pytest.approx(
        sc.rel_entr([0.5, 0.5], [0.25, 0.75]).sum(), rel=1e-15
    )
    np.testing.assert_allclose(fastdiv.kl_divergence([[0.5, 0.5]], 0.5), [0.0], atol=0)


@pytest.mark.parametrize("name", ["entropy", "cross_entropy", "kl_divergence", "js_divergence"])
@pytest.mark.parametrize("flag", [1, "yes", np.True_, 0, ""])
def test_normalize_reaches_the_kernel_as_a_bool(monkeypatch, name, flag):
    reference = fastdiv._backends.load("reference")
    seen = []
    kernel = getattr(reference, name)

    def spy(*args):
        seen.append(args[-3])  # (..., where, normalize, out, num_threads)
        return kernel(*args)

    monkeypatch.setattr(reference, name, spy)
    with fastdiv.use_backend("reference"):
        call(name, [[1.0, 3.0]], [[2.0, 2.0]], normalize=flag)
    assert seen == [bool(flag)] and type(seen[0]) is bool
