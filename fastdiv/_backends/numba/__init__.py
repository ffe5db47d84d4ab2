"""The Numba backend: parallel JIT kernels behind the kernel contract.

Imported only when the backend is first used (``import fastdiv`` does not
import Numba). Kernels compile on their first call and are cached on disk;
see :mod:`fastdiv._backends.numba._options` for the switches.

The functions here only lay the prepared operands out for the kernels (see
:mod:`fastdiv._backends.numba._kernels` for the ``flat, start, step`` form)
and call them; the contract is in :mod:`fastdiv._backends`.

Examples
--------
>>> import numpy as np
>>> from fastdiv._backends import numba as nb
>>> out = np.empty(1)
>>> nb.entropy(np.array([[0.5, 0.5]]), None, False, out, 1)
>>> round(float(out[0]), 12)
0.69314718056
"""

from __future__ import annotations

import numba
import numpy as np
from numpy.lib.stride_tricks import as_strided

from fastdiv._backends.numba import _options

_options.prefer_thread_safe_layer()

from fastdiv._backends.numba import _kernels  # noqa: E402  (after the layer choice)

# The reductions round float32 results into a float32 ``out`` themselves (see
# ``fastdiv._backends``): each row's float64 sum is stored once, inf beyond range.
FLOAT32_RESULTS = True

_SERIAL_BELOW = _options.SERIAL_BELOW
_NO_MASK = _kernels.NO_MASK


def _flat(rows_view: np.ndarray):
    """``(flat, start, step)``: a read-only 1-D view over the rows, without a copy.

    Row ``i`` of ``rows_view`` is ``flat[start + i * step:][:n]``. Copies only
    when the row stride is not a whole number of items or the data is not
    aligned (e.g. a field of a packed structured array).
    """
    rows, n = rows_view.shape
    itemsize = rows_view.itemsize
    if rows == 0 or n == 0:
        return _read_only(np.zeros(1, dtype=rows_view.dtype)), 0, 0
    stride = rows_view.strides[0] if rows > 1 else 0
    # Fast paths (as_strided costs microseconds): C-contiguous rows, one broadcast row.
    if stride == n * itemsize and rows_view.flags.c_contiguous:
        flat = rows_view.ravel()  # a new view object (2-D in): its flag is ours to set
        flat.setflags(write=False)
        return flat, 0, n
    if stride == 0 and (n == 1 or rows_view.strides[1] == itemsize):
        return _read_only(rows_view[0]), 0, 0
    if stride % itemsize or rows_view.ctypes.data % itemsize:
        rows_view = np.ascontiguousarray(rows_view)
        stride = n * itemsize if rows > 1 else 0
    step = stride // itemsize
    if step >= 0:
        first, start = rows_view[0], 0
    else:
        first, start = rows_view[rows - 1], (rows - 1) * -step
    extent = start + (rows - 1) * step + n if step >= 0 else start + n
    flat = as_strided(first, shape=(extent,), strides=(itemsize,), writeable=False)
    return flat, start, step


def _read_only(view: np.ndarray) -> np.ndarray:
    """``view`` marked read-only: one compiled signature serves every input."""
    if view.flags.writeable:
        view = view.view()
        view.setflags(write=False)
    return view


def _threads(num_threads: int) -> int:
    return max(1, min(int(num_threads), _options.max_threads()))


def _mask(where):
    """``(flat, start, step, has_mask)`` of a ``where`` mask (a dummy when None)."""
    if where is None:
        return _NO_MASK, 0, 0, False
    return (*_flat(where), True)


def _launch(kernel, args, rows, n, num_threads):
    """Call ``kernel(*args, threads)``: serial for small inputs, else on Numba's pool."""
    threads = 1 if rows * n < _SERIAL_BELOW else _threads(num_threads)
    if threads == 1:
        kernel(*args, 1)
        return
    with _options.launch_guard():
        numba.set_num_threads(threads)
        kernel(*args, threads)


def _reduce(kernel, small_kernel, p, q, where, normalize, out, num_threads):
    # C-contiguous, aligned, writeable rows (flags.carray: most inputs) need no views,
    # and give one compiled signature per dtype; the rest take the flat, read-only
    # form below
    if (where is None and not normalize and p.size < _SERIAL_BELOW and p.flags.carray
            and (q is None or q.flags.carray)):
        small_kernel(p, p if q is None else q, out)
        return
    rows, n = p.shape
    pf, p0, ps = _flat(p)
    qf, q0, qs = (pf, p0, ps) if q is None else _flat(q)
    mf, m0, ms, has_mask = _mask(where)
    args = (pf, p0, ps, qf, q0, qs, mf, m0, ms, has_mask, bool(normalize), rows, n, out)
    _launch(kernel, args, rows, n, num_threads)


def _elementwise(kernel, contiguous_kernel, p, q, out, num_threads):
    rows, n = p.shape
    # as in _reduce: C-contiguous arrays need no views and give one signature per dtype
    if p.flags.carray and out.flags.carray and (q is None or q.flags.carray):
        _launch(contiguous_kernel, (p, p if q is None else q, out), rows, n, num_threads)
        return
    pf, p0, ps = _flat(p)
    qf, q0, qs = (pf, p0, ps) if q is None else _flat(q)
    _launch(kernel, (pf, p0, ps, qf, q0, qs, rows, n, out.reshape(-1)), rows, n, num_threads)


def narrow_to_float32(values, out):
    """``out[:] = values`` from float64 to float32 (1-D, one length); beyond float32's
    range gives ``inf`` without NumPy's overflow warning (see ``fastdiv._backends``).

    Examples
    --------
    >>> import numpy as np
    >>> from fastdiv._backends import numba as nb
    >>> out = np.empty(2, dtype=np.float32)
    >>> nb.narrow_to_float32(np.array([0.5, 1e300]), out)
    >>> out
    array([0.5, inf], dtype=float32)
    """
    _kernels.narrow(values, out)


def entropy(p, where, normalize, out, num_threads):
    """Row entropies ``-sum(p log p)`` into ``out`` (see ``fastdiv._backends``)."""
    _reduce(_kernels.entropy, _kernels.entropy_small, p, None, where, normalize, out, num_threads)


def cross_entropy(p, q, where, normalize, out, num_threads):
    """Row cross-entropies ``-sum(xlogy(p, q))`` into ``out``."""
    _reduce(_kernels.cross_entropy, _kernels.cross_entropy_small, p, q, where, normalize, out, num_threads)


def kl_divergence(p, q, where, normalize, out, num_threads):
    """Row KL divergences ``sum(rel_entr(p, q))`` into ``out``."""
    _reduce(_kernels.kl_divergence, _kernels.kl_divergence_small, p, q, where, normalize, out, num_threads)


def js_divergence(p, q, where, normalize, out, num_threads):
    """Row Jensen-Shannon divergences into ``out`` (halved, clipped below at 0)."""
    _reduce(_kernels.js_divergence, _kernels.js_divergence_small, p, q, where, normalize, out, num_threads)


def rel_entr(p, q, out, num_threads):
    """Elementwise ``scipy.special.rel_entr(p, q)`` into ``out``."""
    _elementwise(_kernels.rel_entr, _kernels.rel_entr_contiguous, p, q, out, num_threads)


def entr(p, out, num_threads):
    """Elementwise ``scipy.special.entr(p)`` into ``out``."""
    _elementwise(_kernels.entr, _kernels.entr_contiguous, p, None, out, num_threads)


def info() -> dict:
    """Details for ``show_config``: threading layer, thread limit, cache directory."""
    cache = _kernels.kl_divergence._cache
    cache_dir = getattr(cache, "cache_path", None) if _options.CACHE else None
    return {
        "threading layer": _options.threading_layer(),
        "max threads": _options.max_threads(),
        "cache dir": cache_dir or "off",
        "math": "bit-pattern log/log1p (SIMD), fastmath contract+reassoc",
    }


# The logit-space kernels (fastdiv.logits); imported last, as they use the helpers above.
from fastdiv._backends.numba._logit_api import (  # noqa: E402
    binary_cross_entropy,
    binary_cross_entropy_with_logits,
    kl_divergence_logits,
    log_softmax,
    logsumexp,
    softmax,
    softmax_cross_entropy,
    softmax_cross_entropy_probs,
)
