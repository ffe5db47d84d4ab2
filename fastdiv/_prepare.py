"""The one place that turns user input into kernel input, and kernel output into results.

Public functions call :func:`prepare_reduction` or :func:`prepare_elementwise`,
run one backend kernel on the prepared operands, and return ``job.finish()``.
Everything a user can get wrong is checked here, before any kernel runs, so a
failing call leaves ``out`` and the inputs untouched.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from types import ModuleType

import numpy as np

from fastdiv import _backends, _config

try:
    from numpy.lib.array_utils import normalize_axis_tuple
except ImportError:  # NumPy < 2.0
    from numpy.core.numeric import normalize_axis_tuple

_KERNEL_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def _as_array(value, name: str) -> np.ndarray:
    array = np.asarray(value)
    if array.dtype.kind == "c":
        raise TypeError(f"{name} has complex dtype {array.dtype}; complex input is not supported")
    if array.dtype.kind not in "biuf":
        raise TypeError(f"{name} has dtype {array.dtype}; expected real numbers")
    return array


def compute_dtype(arrays) -> np.dtype:
    """The floating dtype the kernels see for these inputs.

    Booleans and integers become float64, float16 becomes float32, float32,
    float64 and longdouble stay as they are; mixed inputs promote as NumPy does.
    """
    dtype = np.result_type(*arrays)
    if dtype.kind in "biu":
        return np.dtype(np.float64)
    if dtype == np.float16:
        return np.dtype(np.float32)
    return dtype


def _backend_for(dtype: np.dtype) -> ModuleType:
    if dtype in _KERNEL_DTYPES:
        return _config.backend_module()
    return _backends.load("reference")  # longdouble: never lose precision silently


def _broadcast_shape(arrays, names) -> tuple[int, ...]:
    try:
        return np.broadcast_shapes(*(a.shape for a in arrays))
    except ValueError:
        shapes = ", ".join(f"{n} has shape {a.shape}" for n, a in zip(names, arrays))
        raise ValueError(f"operands could not be broadcast together: {shapes}") from None


def _where_mask(where, shape) -> np.ndarray | None:
    if where is None or where is True:
        return None
    mask = np.asarray(where)
    if mask.dtype != np.bool_:
        raise TypeError(f"where must be a boolean array, got dtype {mask.dtype}")
    try:
        return np.broadcast_to(mask, shape)
    except ValueError:
        raise ValueError(
            f"where has shape {mask.shape}, which does not broadcast to the inputs' shape {shape}"
        ) from None


def _reduced_axes(axis, ndim: int) -> tuple[int, ...]:
    """``axis`` (int, tuple of int or None) as a tuple of non-negative axes."""
    if axis is None:
        return tuple(range(ndim))
    try:
        return normalize_axis_tuple(axis, ndim, "axis")
    except TypeError:
        raise TypeError(f"axis must be an int, a tuple of ints or None, got {axis!r}") from None


def _axis_layout(shape, axis, keepdims=False):
    """How a reduction over ``axis`` of an array of ``shape`` is laid out in rows.

    Returns
    -------
    order : tuple of int
        Axis permutation that puts the kept axes first and the reduced ones last.
    rows, n : int
        Number of rows (kept elements) and row length (reduced elements).
    result_shape : tuple of int
        Shape of one value per row, with ``keepdims`` applied.
    """
    ndim = len(shape)
    reduced = _reduced_axes(axis, ndim)
    kept = tuple(ax for ax in range(ndim) if ax not in reduced)
    order = kept + tuple(sorted(reduced))
    rows = math.prod(shape[ax] for ax in kept)
    n = math.prod(shape[ax] for ax in reduced)
    if keepdims:
        result_shape = tuple(1 if ax in reduced else shape[ax] for ax in range(ndim))
    else:
        result_shape = tuple(shape[ax] for ax in kept)
    return order, rows, n, result_shape


def _rows(array: np.ndarray, order, rows: int, n: int) -> np.ndarray:
    """``array`` as a (rows, n) view with unit inner stride; copies only if it must."""
    array = array.transpose(order).reshape(rows, n)
    if n > 1 and array.strides[1] != array.itemsize:
        array = np.ascontiguousarray(array)
    return array


def _row_operands(arrays, dtype, shape, order, rows: int, n: int) -> tuple[np.ndarray, ...]:
    """Each array cast to ``dtype``, broadcast to ``shape``, as (rows, n) views."""
    return tuple(
        _rows(np.broadcast_to(a.astype(dtype, copy=False), shape), order, rows, n) for a in arrays
    )


def _where_rows(mask, order, rows: int, n: int) -> np.ndarray | None:
    """The broadcast ``where`` mask as the kernels' (rows, n) ``uint8`` view (or None)."""
    return None if mask is None else _rows(mask, order, rows, n).view(np.uint8)


def _check_out(out, shape, dtype) -> None:
    if out is None:
        return
    if not isinstance(out, np.ndarray):
        raise TypeError(f"out must be a numpy.ndarray, got {type(out).__name__}")
    if out.shape != tuple(shape):
        raise ValueError(f"out has shape {out.shape}, but the result has shape {tuple(shape)}")
    if not np.can_cast(dtype, out.dtype, casting="same_kind"):
        raise TypeError(
            f"out has dtype {out.dtype}, which cannot hold the {dtype} result "
            "(casting rule 'same_kind')"
        )
    if not out.flags.writeable:
        raise ValueError("out is read-only")


def _check_base(base) -> float | None:
    if base is None:
        return None
    if not isinstance(base, (int, float, np.integer, np.floating)) or isinstance(base, bool):
        raise TypeError(f"base must be a real number or None, got {base!r}")
    if not (base > 0 and base != 1 and math.isfinite(base)):
        raise ValueError(f"base must be positive, finite and not 1, got {base!r}")
    return float(base)


def _deliver(result: np.ndarray, out: np.ndarray | None):
    if out is not None:
        np.copyto(out, result, casting="same_kind")
        return out
    return result[()] if result.ndim == 0 else result


@dataclass
class ReductionJob:
    """Prepared input of one reduction and what ``finish`` needs to shape its result."""

    backend: ModuleType
    operands: tuple[np.ndarray, ...]
    where: np.ndarray | None
    acc: np.ndarray
    num_threads: int
    result_shape: tuple[int, ...]
    result_dtype: np.dtype
    base: float | None
    out: np.ndarray | None

    def finish(self):
        """Apply ``base``, cast, reshape, and fill ``out`` (or return a new result)."""
        if self.base is not None:
            self.acc /= np.log(self.acc.dtype.type(self.base))
        with np.errstate(over="ignore"):  # a float32 result beyond its range is inf
            result = self.acc.astype(self.result_dtype, copy=False).reshape(self.result_shape)
        return _deliver(result, self.out)


def prepare_reduction(inputs, names, axis=-1, where=None, keepdims=False, out=None, base=None):
    """Validate and lay out the inputs of a reduction over ``axis``.

    Parameters
    ----------
    inputs : sequence of array_like
        ``(p,)`` or ``(p, q)``.
    names : sequence of str
        Their names, for error messages.
    axis, where, keepdims, out, base
        As in the public reductions.

    Returns
    -------
    ReductionJob
    """
    arrays = [_as_array(a, name) for a, name in zip(inputs, names)]
    dtype = compute_dtype(arrays)
    shape = _broadcast_shape(arrays, names)
    mask = _where_mask(where, shape)
    base = _check_base(base)
    order, rows, n, result_shape = _axis_layout(shape, axis, keepdims)
    _check_out(out, result_shape, dtype)

    operands = _row_operands(arrays, dtype, shape, order, rows, n)
    where_rows = _where_rows(mask, order, rows, n)
    acc_dtype = np.float64 if dtype in _KERNEL_DTYPES else dtype
    return ReductionJob(
        backend=_backend_for(dtype),
        operands=operands,
        where=where_rows,
        acc=np.empty(rows, dtype=acc_dtype),
        num_threads=_config.get_num_threads(),
        result_shape=result_shape,
        result_dtype=dtype,
        base=base,
        out=out,
    )


@dataclass
class ElementwiseJob:
    """Prepared input of an elementwise function and where its kernel writes."""

    backend: ModuleType
    operands: tuple[np.ndarray, ...]
    target: np.ndarray
    num_threads: int
    shape: tuple[int, ...]
    out: np.ndarray | None

    def finish(self):
        """Return the result, or ``out`` once it holds the result."""
        result = self.target.reshape(self.shape)
        if self.out is None:
            return result[()] if result.ndim == 0 else result
        if not np.shares_memory(result, self.out):
            np.copyto(self.out, result, casting="same_kind")
        return self.out


def _writes_in_place(out: np.ndarray, dtype, operands) -> bool:
    """Whether the kernel may write straight into ``out``.

    It may when ``out`` has the right dtype, is C-contiguous, and overlaps no
    operand except element for element (as in ``rel_entr(p, q, out=p)``).
    """
    if out.dtype != dtype or not out.flags.c_contiguous:
        return False
    for operand in operands:
        if np.may_share_memory(out, operand):
            same_layout = (
                operand.__array_interface__["data"][0] == out.__array_interface__["data"][0]
                and operand.strides == out.reshape(operand.shape).strides
            )
            if not same_layout:
                return False
    return True


def prepare_elementwise(inputs, names, out=None):
    """Validate and lay out the inputs of an elementwise function.

    Returns
    -------
    ElementwiseJob
    """
    arrays = [_as_array(a, name) for a, name in zip(inputs, names)]
    dtype = compute_dtype(arrays)
    shape = _broadcast_shape(arrays, names)
    _check_out(out, shape, dtype)
    n = shape[-1] if shape else 1
    rows = math.prod(shape[:-1]) if shape else 1
    order = tuple(range(len(shape)))
    operands = tuple(
        _rows(np.broadcast_to(a.astype(dtype, copy=False), shape), order, rows, n) for a in arrays
    )
    if out is not None and _writes_in_place(out, dtype, operands):
        target = out.reshape(rows, n)
    else:
        target = np.empty((rows, n), dtype=dtype)
    return ElementwiseJob(
        backend=_backend_for(dtype),
        operands=operands,
        target=target,
        num_threads=_config.get_num_threads(),
        shape=tuple(shape),
        out=out,
    )
