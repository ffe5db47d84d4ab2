"""The one place that turns user input into kernel input, and kernel output into results.

Public functions call a ``prepare_*`` function, run one backend kernel on the
prepared operands, and return ``job.finish()``; the divergences leave those
three steps to :func:`run_reduction` and :func:`run_elementwise`, which take
plain inputs to the kernel without a job. Everything a user can get wrong is
checked here, before any kernel runs, so a failing call leaves ``out`` and the
inputs untouched.
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

_FLOAT32 = np.dtype(np.float32)
_FLOAT64 = np.dtype(np.float64)
_KERNEL_DTYPES = (_FLOAT32, _FLOAT64)


def _as_array(value, name: str) -> np.ndarray:
    array = np.asarray(value)
    if array.dtype.kind == "c":
        raise TypeError(f"{name} has complex dtype {array.dtype}; complex input is not supported")
    if array.dtype.kind not in "biuf":
        raise TypeError(f"{name} has dtype {array.dtype}; expected real numbers")
    return array


def compute_dtype(arrays, inputs=None) -> np.dtype:
    """The floating dtype the kernels see for these inputs.

    Booleans and integers become float64, float16 becomes float32, float32,
    float64 and longdouble stay as they are; mixed inputs promote as NumPy does.
    Where ``inputs`` (the values before conversion) holds a Python scalar, it
    promotes weakly as in NumPy 2, so ``rel_entr(float32_array, 0.5)`` stays float32.
    """
    first = arrays[0].dtype
    if (first is _FLOAT64 or first is _FLOAT32) and all(a.dtype == first for a in arrays[1:]):
        if inputs is None or all(isinstance(v, np.ndarray) for v in inputs):
            return first
    if inputs is not None:
        arrays = [
            value if isinstance(value, (int, float)) and not isinstance(value, np.generic) else array
            for value, array in zip(inputs, arrays)
        ]
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
    shape = arrays[0].shape
    if all(a.shape == shape for a in arrays[1:]):
        return shape
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
    if type(axis) is int and -ndim <= axis < ndim:  # the common case, without NumPy's checks
        return (axis % ndim,)
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
    if reduced == (ndim - 1,):  # the last axis: rows are the leading axes, in order
        rows = math.prod(shape[:-1])
        result_shape = shape[:-1] + (1,) if keepdims else shape[:-1]
        return tuple(range(ndim)), rows, shape[-1], result_shape
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
    if order != tuple(range(array.ndim)):
        array = array.transpose(order)
    if array.shape != (rows, n):
        array = array.reshape(rows, n)
    if n > 1 and array.strides[1] != array.itemsize:
        array = np.ascontiguousarray(array)
    return array


def _plain_rows(inputs):
    """``((rows, n) views, shape)`` when the inputs need no conversion, else None.

    Plain means: ndarrays of one native float32/float64 dtype and one shape
    (at least 1-D) whose last axis has unit stride, so each is its own
    kernel operand after at most a reshape of the leading axes.
    """
    first = inputs[0]
    if type(first) is not np.ndarray:
        return None
    dtype, shape = first.dtype, first.shape
    if not (dtype is _FLOAT64 or dtype is _FLOAT32) or not shape:
        return None
    itemsize = dtype.itemsize
    for array in inputs:
        if array is not first and (
                type(array) is not np.ndarray or array.dtype is not dtype or array.shape != shape):
            return None
        if array.strides[-1] != itemsize and shape[-1] > 1:
            return None
    if len(shape) == 2:
        return tuple(inputs), shape
    rows_shape = (math.prod(shape[:-1]), shape[-1])
    return tuple(array.reshape(rows_shape) for array in inputs), shape


def _row_operands(arrays, dtype, shape, order, rows: int, n: int) -> tuple[np.ndarray, ...]:
    """Each array cast to ``dtype``, broadcast to ``shape``, as (rows, n) views."""
    operands = []
    for array in arrays:
        array = array.astype(dtype, copy=False)
        if array.shape != shape:
            array = np.broadcast_to(array, shape)
        operands.append(_rows(array, order, rows, n))
    return tuple(operands)


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


def _narrow(values, dtype, backend):
    """The float64 kernel results ``values`` (1-D, contiguous) cast to ``dtype``.

    A value beyond ``dtype``'s range becomes ``inf``, as the kernels promise,
    without NumPy's overflow warning: through the backend's
    ``narrow_to_float32`` where it has one (``np.errstate`` alone costs about
    a microsecond, a fifth of a small call), else under ``np.errstate``.
    """
    narrow = getattr(backend, "narrow_to_float32", None)
    if narrow is not None and dtype is _FLOAT32 and values.dtype is _FLOAT64 and values.ndim == 1:
        result = np.empty(len(values), _FLOAT32)
        narrow(values, result)
        return result
    with np.errstate(over="ignore"):
        return values.astype(dtype)


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
    normalize: bool = False

    def finish(self):
        """Apply ``base``, cast, reshape, and fill ``out`` (or return a new result)."""
        return _reduction_result(self.acc, self.result_shape, self.result_dtype, self.base,
                                 self.backend, self.out)


def _reduction_result(acc, shape, dtype, base, backend, out):
    """The kernel's row results ``acc`` in ``base``, cast to ``dtype``, in ``shape``, in
    ``out`` if given."""
    if base is not None:
        acc /= np.log(acc.dtype.type(base))
    if acc.dtype is not dtype:
        acc = _narrow(acc, dtype, backend)
    if acc.shape != shape:
        acc = acc.reshape(shape)
    return _deliver(acc, out)


def _acc_dtype(backend, dtype, base, float32_out_ok):
    """The dtype of a reduction's kernel output: float64 (longdouble for longdouble), or
    float32 for float32 operands when the backend rounds into it itself (its
    ``FLOAT32_RESULTS``; see ``fastdiv._backends``) and no ``base`` is applied after.
    :func:`run_reduction`'s plain path writes this rule out for float32 and float64:
    change both together."""
    # vars(): getattr with a default costs half a microsecond when the attribute is missing
    if dtype is _FLOAT32 and float32_out_ok and base is None \
            and vars(backend).get("FLOAT32_RESULTS", False):
        return _FLOAT32
    return _FLOAT64 if dtype in _KERNEL_DTYPES else dtype


def prepare_reduction(
    inputs, names, axis=-1, where=None, keepdims=False, out=None, base=None, normalize=False,
    float32_out_ok=False,
):
    """Validate and lay out the inputs of a reduction over ``axis``.

    Parameters
    ----------
    inputs : sequence of array_like
        ``(p,)`` or ``(p, q)``.
    names : sequence of str
        Their names, for error messages.
    axis, where, keepdims, out, base, normalize
        As in the public reductions.
    float32_out_ok : bool
        The caller's kernel is one of the four divergence reductions, which a
        backend with ``FLOAT32_RESULTS`` may give a float32 ``acc``.

    Returns
    -------
    ReductionJob
    """
    arrays = [_as_array(a, name) for a, name in zip(inputs, names)]
    dtype = compute_dtype(arrays, inputs)
    shape = _broadcast_shape(arrays, names)
    mask = _where_mask(where, shape)
    base = _check_base(base)
    order, rows, n, result_shape = _axis_layout(shape, axis, keepdims)
    _check_out(out, result_shape, dtype)

    operands = _row_operands(arrays, dtype, shape, order, rows, n)
    where_rows = _where_rows(mask, order, rows, n)
    backend = _backend_for(dtype)
    return ReductionJob(
        backend=backend,
        operands=operands,
        where=where_rows,
        acc=np.empty(rows, dtype=_acc_dtype(backend, dtype, base, float32_out_ok)),
        num_threads=_config.get_num_threads(),
        result_shape=result_shape,
        result_dtype=dtype,
        base=base,
        out=out,
        normalize=bool(normalize),
    )


def run_reduction(kernel, inputs, names, axis=-1, where=None, keepdims=False, out=None, base=None,
                  normalize=False):
    """Run the backend's reduction ``kernel`` on ``inputs`` and return the result.

    The inputs are prepared (:func:`prepare_reduction`), the kernel of the
    selected backend runs once, and its row results are shaped
    (``ReductionJob.finish``). Plain inputs (:func:`_plain_rows`) reduced
    over the last axis without ``where``, ``out`` or ``keepdims`` need no
    layout and go to the kernel without a job: the most common call, and
    for a (32, 10) input a quarter of its time.

    Parameters
    ----------
    kernel : str
        ``"entropy"``, ``"cross_entropy"``, ``"kl_divergence"`` or
        ``"js_divergence"``: a reduction of the kernel contract.
    inputs, names, axis, where, keepdims, out, base, normalize
        As in :func:`prepare_reduction`.

    Returns
    -------
    ndarray or scalar
        One value per row, or ``out``.

    Examples
    --------
    >>> from fastdiv._prepare import run_reduction
    >>> run_reduction("entropy", ([[0.5, 0.5], [1.0, 0.0]],), ("p",), base=2)
    array([1., 0.])
    """
    if axis == -1 and where is None and out is None and not keepdims:
        plain = _plain_rows(inputs)
        if plain is not None:
            operands, shape = plain
            backend, dtype = _config.backend_module(), operands[0].dtype
            if base is not None:
                base = _check_base(base)
            # _acc_dtype's choice, written out for float32 and float64 (a tenth of a small
            # call); getattr's default is slow only for the reference backend
            own = dtype is _FLOAT64 or (base is None
                                        and getattr(backend, "FLOAT32_RESULTS", False))
            acc = np.empty(len(operands[0]), dtype if own else _FLOAT64)
            getattr(backend, kernel)(*operands, None, bool(normalize), acc,
                                     _config.get_num_threads())
            if base is None and acc.dtype is dtype and len(shape) == 2:
                return acc  # the result as it is (a tenth of a small call less)
            return _reduction_result(acc, shape[:-1], dtype, base, backend, None)
    job = prepare_reduction(inputs, names, axis, where, keepdims, out, base, normalize,
                            float32_out_ok=True)
    getattr(job.backend, kernel)(*job.operands, job.where, job.normalize, job.acc,
                                 job.num_threads)
    return job.finish()


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
        result = self.target
        if result.shape != self.shape:
            result = result.reshape(self.shape)
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
    dtype = compute_dtype(arrays, inputs)
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


def run_elementwise(kernel, inputs, names, out=None):
    """Run the backend's elementwise ``kernel`` on ``inputs`` and return the result.

    As :func:`run_reduction`: plain inputs (:func:`_plain_rows`) without
    ``out`` go to the kernel without a job.

    Parameters
    ----------
    kernel : str
        ``"rel_entr"`` or ``"entr"``: an elementwise function of the kernel
        contract.
    inputs, names, out
        As in :func:`prepare_elementwise`.

    Returns
    -------
    ndarray or scalar
        The terms in the broadcast shape of the inputs, or ``out``.

    Examples
    --------
    >>> from fastdiv._prepare import run_elementwise
    >>> run_elementwise("entr", ([0.5, 0.25],), ("p",))
    array([0.34657359, 0.34657359])
    """
    if out is None:
        plain = _plain_rows(inputs)
        if plain is not None:
            operands, shape = plain
            target = np.empty(operands[0].shape, operands[0].dtype)
            getattr(_config.backend_module(), kernel)(*operands, target,
                                                      _config.get_num_threads())
            return target if len(shape) == 2 else target.reshape(shape)
    job = prepare_elementwise(inputs, names, out)
    getattr(job.backend, kernel)(*job.operands, job.target, job.num_threads)
    return job.finish()


# -- Logit space (fastdiv.logits) ---------------------------------------------------------


def _with_kernel(backend: ModuleType, name: str) -> ModuleType:
    """``backend`` if it implements kernel ``name``, else the reference backend.

    A compiled backend that lacks a logit-space kernel still serves these
    functions: the call goes to the reference backend, which computes float32
    in float64 and so never loses precision.
    """
    if getattr(backend, name, None) is not None:
        return backend
    return _backends.load("reference")


def _from_rows(values: np.ndarray, shape, order) -> np.ndarray:
    """A (rows, n) kernel output back in ``shape`` with the original axis order."""
    if order == tuple(range(len(order))):  # the rows ran over the last axis
        return values.reshape(shape)
    permuted = values.reshape(tuple(shape[ax] for ax in order))
    inverse = sorted(range(len(order)), key=order.__getitem__)  # argsort of order
    return permuted.transpose(inverse)


def _scalar_or_array(result: np.ndarray):
    return result[()] if result.ndim == 0 else result


def _check_real(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    return float(value)


def _check_label_smoothing(value) -> float:
    smoothing = _check_real(value, "label_smoothing")
    if not 0.0 <= smoothing <= 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1], got {value!r}")
    return smoothing


def _check_temperature(value) -> float:
    temperature = _check_real(value, "temperature")
    if not (temperature > 0 and math.isfinite(temperature)):
        raise ValueError(f"temperature must be positive and finite, got {value!r}")
    return temperature


@dataclass
class LogsumexpJob(ReductionJob):
    """A reduction job that also returns the sign of each sum (``return_sign``)."""

    sign: np.ndarray | None = None

    def finish(self):
        """The result as :meth:`ReductionJob.finish`, paired with the sign if asked for."""
        value = super().finish()
        if self.sign is None:
            return value
        sign = self.sign.astype(self.result_dtype, copy=False).reshape(self.result_shape)
        return value, _scalar_or_array(sign)


def prepare_logsumexp(a, b=None, axis=-1, where=None, keepdims=False, out=None, return_sign=False):
    """Validate and lay out the input of :func:`fastdiv.logsumexp`.

    ``a`` and ``b`` are made at least 1-D first, as SciPy does. The job's
    ``operands`` are ``(a, b)`` with ``b`` None when not given; its ``sign`` is
    a (rows,) buffer when ``return_sign`` is true, else None.

    Returns
    -------
    LogsumexpJob
    """
    inputs, names = [np.atleast_1d(_as_array(a, "a"))], ["a"]
    if b is not None:
        inputs.append(np.atleast_1d(_as_array(b, "b")))
        names.append("b")
    job = prepare_reduction(inputs, names, axis, where, keepdims, out)
    fields = dict(vars(job))
    fields["backend"] = _with_kernel(job.backend, "logsumexp")
    fields["operands"] = job.operands if b is not None else (job.operands[0], None)
    sign = np.empty_like(job.acc) if return_sign else None
    return LogsumexpJob(**fields, sign=sign)


@dataclass
class RowMapJob:
    """Prepared input of a map from rows to rows (``softmax``, ``log_softmax``)."""

    backend: ModuleType
    operands: tuple[np.ndarray, ...]
    target: np.ndarray
    num_threads: int
    shape: tuple[int, ...]
    order: tuple[int, ...]
    out: np.ndarray | None

    def finish(self):
        """The result in the input's shape, or ``out`` once it holds it."""
        result = _from_rows(self.target, self.shape, self.order)
        if self.out is None:
            return _scalar_or_array(result)
        if not np.shares_memory(result, self.out):
            np.copyto(self.out, result, casting="same_kind")
        return self.out


def prepare_row_map(kernel: str, z, axis=-1, out=None) -> RowMapJob:
    """Validate and lay out the input of a row map over ``axis``.

    The kernel writes straight into ``out`` when ``axis`` already holds the
    last axes and ``out`` is C-contiguous in the result dtype.
    """
    z = _as_array(z, "z")
    dtype = compute_dtype([z])
    shape = z.shape
    order, rows, n, _ = _axis_layout(shape, axis)
    _check_out(out, shape, dtype)
    operands = _row_operands([z], dtype, shape, order, rows, n)
    last_axes = order == tuple(range(len(shape)))
    if out is not None and last_axes and _writes_in_place(out, dtype, operands):
        target = out.reshape(rows, n)
    else:
        target = np.empty((rows, n), dtype=dtype)
    return RowMapJob(
        backend=_with_kernel(_backend_for(dtype), kernel),
        operands=operands,
        target=target,
        num_threads=_config.get_num_threads(),
        shape=tuple(shape),
        order=order,
        out=out,
    )


@dataclass
class LossJob:
    """Prepared input of a per-row loss with an optional gradient over each row."""

    backend: ModuleType
    operands: tuple[np.ndarray, ...]
    where: np.ndarray | None
    loss: np.ndarray
    grad: np.ndarray | None
    num_threads: int
    result_shape: tuple[int, ...]
    result_dtype: np.dtype
    shape: tuple[int, ...]
    order: tuple[int, ...]
    label_smoothing: float = 0.0
    temperature: float = 1.0
    class_indices: bool = False

    def finish(self):
        """``loss`` shaped and cast, or ``(loss, grad)`` when the gradient was asked for."""
        loss = self.loss
        if loss.dtype != self.result_dtype:
            loss = _narrow(loss, self.result_dtype, self.backend)
        loss = loss.reshape(self.result_shape)
        loss = _scalar_or_array(loss)
        if self.grad is None:
            return loss
        return loss, _scalar_or_array(_from_rows(self.grad, self.shape, self.order))


def _loss_job(arrays, names, axis, where, return_grad) -> LossJob:
    dtype = compute_dtype(arrays)
    shape = _broadcast_shape(arrays, names)
    mask = _where_mask(where, shape)
    order, rows, n, result_shape = _axis_layout(shape, axis)
    acc_dtype = np.float64 if dtype in _KERNEL_DTYPES else dtype
    return LossJob(
        backend=_backend_for(dtype),
        operands=_row_operands(arrays, dtype, shape, order, rows, n),
        where=_where_rows(mask, order, rows, n),
        loss=np.empty(rows, dtype=acc_dtype),
        grad=np.empty((rows, n), dtype=dtype) if return_grad else None,
        num_threads=_config.get_num_threads(),
        result_shape=result_shape,
        result_dtype=dtype,
        shape=tuple(shape),
        order=order,
    )


def _position(flat_index: int, shape) -> tuple[int, ...]:
    return tuple(int(i) for i in np.unravel_index(flat_index, shape))


def _class_index_rows(target: np.ndarray, job: LossJob, axis, ignore_index) -> np.ndarray:
    """Validated class indices as a (rows,) ``intp`` array, -1 on ignored rows."""
    if target.shape != job.result_shape:
        raise ValueError(
            f"integer target (class indices) has shape {target.shape}, but it must have "
            f"the logits' shape {job.shape} without axis {axis!r}: {job.result_shape}"
            + ("; for probability targets pass a floating array"
               if target.shape == job.shape else "")
        )
    n = job.operands[0].shape[1]
    indices = target.reshape(-1)
    if ignore_index is None:
        ignored = np.zeros(indices.shape, dtype=bool)
    else:
        ignored = indices == ignore_index
    valid = ~ignored
    bad = valid & ((indices < 0) | (indices >= n))
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"target holds class index {indices[first]} at position "
            f"{_position(first, job.result_shape)}, outside [0, {n}): the logits have "
            f"{n} classes along axis {axis!r}"
            + ("" if ignore_index is None else f" (ignore_index is {ignore_index})")
        )
    rows = np.full(indices.shape, -1, dtype=np.intp)
    rows[valid] = indices[valid]
    if job.where is not None:
        kept_rows = np.flatnonzero(valid)
        masked = job.where[kept_rows, rows[kept_rows]] == 0
        if masked.any():
            first = int(kept_rows[np.flatnonzero(masked)[0]])
            raise ValueError(
                f"target class {indices[first]} at position "
                f"{_position(first, job.result_shape)} is masked out by where"
            )
    return rows


def prepare_softmax_cross_entropy(
    logits, target, axis=-1, label_smoothing=0.0, ignore_index=None, where=None, return_grad=False
) -> LossJob:
    """Validate and lay out the input of :func:`fastdiv.softmax_cross_entropy`.

    An integer ``target`` holds class indices: ``operands`` is ``(z, indices)``
    with ``indices`` a (rows,) ``intp`` array, -1 on rows equal to
    ``ignore_index``, and ``class_indices`` is true. Any other real ``target``
    holds probabilities, broadcast against the logits: ``operands`` is
    ``(z, p)``.
    """
    logits = _as_array(logits, "logits")
    target = np.asarray(target)
    smoothing = _check_label_smoothing(label_smoothing)
    if ignore_index is not None and (
        isinstance(ignore_index, bool) or not isinstance(ignore_index, (int, np.integer))
    ):
        raise TypeError(f"ignore_index must be an int or None, got {ignore_index!r}")

    if target.dtype.kind in "iu":
        job = _loss_job([logits], ["logits"], axis, where, return_grad)
        job.operands = (job.operands[0], _class_index_rows(target, job, axis, ignore_index))
        job.class_indices = True
        kernel = "softmax_cross_entropy"
    else:
        target = _as_array(target, "target")
        if ignore_index is not None:
            raise ValueError(
                "ignore_index applies to integer class targets only; "
                f"target has dtype {target.dtype}"
            )
        batch_shape = _axis_layout(logits.shape, axis)[3]
        try:
            np.broadcast_shapes(logits.shape, target.shape)
        except ValueError:
            if target.shape == batch_shape:
                raise ValueError(
                    f"target has the shape of class indices {target.shape} but dtype "
                    f"{target.dtype}; class indices must be integers, probability targets "
                    f"must have the logits' shape {logits.shape}"
                ) from None
        job = _loss_job([logits, target], ["logits", "target"], axis, where, return_grad)
        kernel = "softmax_cross_entropy_probs"
    job.label_smoothing = smoothing
    job.backend = _with_kernel(job.backend, kernel)
    return job


def prepare_kl_divergence_logits(
    logits_p, logits_q, axis=-1, temperature=1.0, where=None, return_grad=False
) -> LossJob:
    """Validate and lay out the input of :func:`fastdiv.kl_divergence_logits`."""
    temperature = _check_temperature(temperature)
    arrays = [_as_array(logits_p, "logits_p"), _as_array(logits_q, "logits_q")]
    job = _loss_job(arrays, ["logits_p", "logits_q"], axis, where, return_grad)
    job.temperature = temperature
    job.backend = _with_kernel(job.backend, "kl_divergence_logits")
    return job


def prepare_binary_cross_entropy(p, q, axis=-1, where=None, keepdims=False, out=None):
    """Validate and lay out the input of :func:`fastdiv.binary_cross_entropy`."""
    job = prepare_reduction((p, q), ("p", "q"), axis, where, keepdims, out)
    job.backend = _with_kernel(job.backend, "binary_cross_entropy")
    return job


def prepare_binary_cross_entropy_with_logits(
    logits, target, pos_weight=None, axis=-1, where=None, keepdims=False, out=None
):
    """Validate and lay out the input of :func:`fastdiv.binary_cross_entropy_with_logits`.

    ``operands`` is ``(z, t, pos_weight)``, ``pos_weight`` None when not given.
    """
    inputs, names = [logits, target], ["logits", "target"]
    if pos_weight is not None:
        inputs.append(pos_weight)
        names.append("pos_weight")
    job = prepare_reduction(inputs, names, axis, where, keepdims, out)
    job.backend = _with_kernel(job.backend, "binary_cross_entropy_with_logits")
    if pos_weight is None:
        job.operands = (*job.operands, None)
    return job
