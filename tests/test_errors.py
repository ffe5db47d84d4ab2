"""Bad input: a clear exception naming the problem, with ``out`` and the inputs untouched."""

from __future__ import annotations

import numpy as np
import pytest

import fastdiv

PAIR_REDUCTIONS = [fastdiv.cross_entropy, fastdiv.kl_divergence, fastdiv.js_divergence]
ALL_REDUCTIONS = [fastdiv.entropy, *PAIR_REDUCTIONS]


def _call(func, p, q, **kwargs):
    return func(p, **kwargs) if func is fastdiv.entropy else func(p, q, **kwargs)


def _untouched(arrays):
    """Copies to compare against after a failing call."""
    return [(a, a.copy()) for a in arrays]


def _assert_untouched(saved):
    for array, copy in saved:
        np.testing.assert_array_equal(array, copy)


@pytest.fixture
def pq():
    rng = np.random.default_rng(20)
    return rng.random((3, 4)), rng.random((3, 4))


@pytest.mark.parametrize("func", PAIR_REDUCTIONS)
def test_broadcast_failure_names_both_shapes(func):
    p, q, out = np.ones((2, 3)), np.ones((2, 4)), np.full(2, 5.0)
    saved = _untouched([p, q, out])
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(2, 4\)"):
        func(p, q, out=out)
    _assert_untouched(saved)


def test_elementwise_broadcast_failure_names_both_shapes():
    with pytest.raises(ValueError, match=r"\(3,\).*\(4,\)"):
        fastdiv.rel_entr(np.ones(3), np.ones(4))


@pytest.mark.parametrize("func", ALL_REDUCTIONS)
@pytest.mark.parametrize("axis", [2, -3, (0, 5)], ids=repr)
def test_bad_axis_is_axis_error_naming_axis_and_ndim(func, pq, axis):
    p, q = pq
    out = np.full(3, 5.0)
    saved = _untouched([p, q, out])
    with pytest.raises(np.exceptions.AxisError, match="dimension 2") as info:
        _call(func, p, q, axis=axis, out=out)
    assert "axis" in str(info.value)
    _assert_untouched(saved)


def test_repeated_axis_raises_value_error(pq):
    with pytest.raises(ValueError, match="repeated axis"):
        fastdiv.entropy(pq[0], axis=(0, 0))


@pytest.mark.parametrize("func", ALL_REDUCTIONS)
def test_complex_input_is_type_error_naming_the_dtype(func, pq):
    p, q = pq
    with pytest.raises(TypeError, match="complex"):
        _call(func, p.astype(complex), q)
    if func is not fastdiv.entropy:
        with pytest.raises(TypeError, match="q has complex dtype"):
            func(p, q.astype(np.complex64))
    with pytest.raises(TypeError, match="complex"):
        fastdiv.entr(p.astype(complex))
    with pytest.raises(TypeError, match="complex"):
        fastdiv.rel_entr(p, q.astype(complex))


@pytest.mark.parametrize("value", [np.array(["a", "b"]), np.array([0.5, None]), [1, "x"]])
def test_non_numeric_input_is_type_error(value):
    with pytest.raises(TypeError, match="dtype"):
        fastdiv.entropy(value)


@pytest.mark.parametrize("func", ALL_REDUCTIONS)
def test_out_of_wrong_shape_names_both_shapes(func, pq):
    p, q = pq
    out = np.full(4, 5.0)
    saved = _untouched([p, q, out])
    with pytest.raises(ValueError, match=r"\(4,\).*\(3,\)"):
        _call(func, p, q, out=out)
    with pytest.raises(ValueError, match=r"\(3, 1\)"):
        _call(func, p, q, out=np.zeros(3), keepdims=True)
    _assert_untouched(saved)


@pytest.mark.parametrize("func", ALL_REDUCTIONS)
@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.bool_])
def test_out_of_integer_dtype_is_type_error(func, pq, dtype):
    p, q = pq
    out = np.full(3, 5, dtype=dtype)
    saved = _untouched([p, q, out])
    with pytest.raises(TypeError, match=np.dtype(dtype).name):
        _call(func, p, q, out=out)
    _assert_untouched(saved)


def test_out_of_float32_for_longdouble_is_allowed_same_kind(pq):
    p, q = pq
    out = np.zeros(3, np.float32)
    fastdiv.kl_divergence(p.astype(np.longdouble), q, out=out)
    np.testing.assert_allclose(out, fastdiv.kl_divergence(p, q), rtol=1e-6)


def test_out_must_be_an_ndarray(pq):
    with pytest.raises(TypeError, match="list"):
        fastdiv.entropy(pq[0], out=[0.0, 0.0, 0.0])


def test_read_only_out_raises(pq):
    out = np.zeros(3)
    out.setflags(write=False)
    with pytest.raises(ValueError, match="read-only"):
        fastdiv.entropy(pq[0], out=out)


def test_elementwise_out_errors(pq):
    p, q = pq
    out = np.full((3, 4), 5.0)
    saved = _untouched([p, q, out])
    with pytest.raises(ValueError, match=r"\(4, 3\).*\(3, 4\)"):
        fastdiv.rel_entr(p, q, out=out.T.copy())
    with pytest.raises(TypeError, match="int64"):
        fastdiv.rel_entr(p, q, out=np.zeros((3, 4), np.int64))
    with pytest.raises(TypeError, match="int64"):
        fastdiv.entr(p, out=np.zeros((3, 4), np.int64))
    with pytest.raises(ValueError):
        fastdiv.rel_entr(p, q[:, :1], out=np.zeros((3, 1)))  # out would need broadcasting
    _assert_untouched(saved)


@pytest.mark.parametrize("base", [1, 1.0, 0, -2, np.inf, np.nan])
def test_bad_base_is_value_error(pq, base):
    p, q = pq
    out = np.full(3, 5.0)
    saved = _untouched([p, q, out])
    with pytest.raises(ValueError, match="base"):
        fastdiv.kl_divergence(p, q, base=base, out=out)
    _assert_untouched(saved)


@pytest.mark.parametrize("base", ["2", True, [2]])
def test_non_numeric_base_is_type_error(pq, base):
    with pytest.raises(TypeError, match="base"):
        fastdiv.entropy(pq[0], base=base)


def test_where_must_be_boolean(pq):
    p, q = pq
    out = np.full(3, 5.0)
    saved = _untouched([p, q, out])
    with pytest.raises(TypeError, match="where.*int64"):
        fastdiv.kl_divergence(p, q, where=np.ones((3, 4), dtype=np.int64), out=out)
    _assert_untouched(saved)


def test_where_that_does_not_broadcast_names_both_shapes(pq):
    p, q = pq
    with pytest.raises(ValueError, match=r"where has shape \(3,\).*\(3, 4\)"):
        fastdiv.kl_divergence(p, q, where=np.ones(3, dtype=bool))
    with pytest.raises(ValueError, match=r"\(2, 3, 4\)"):
        fastdiv.kl_divergence(p, q, where=np.ones((2, 3, 4), dtype=bool))


@pytest.mark.parametrize("axis", [1.0, "0", (0, 1.5), [0.0]], ids=repr)
def test_non_integer_axis_is_type_error_naming_axis(pq, axis):
    with pytest.raises(TypeError, match="axis must be an int"):
        fastdiv.entropy(pq[0], axis=axis)
