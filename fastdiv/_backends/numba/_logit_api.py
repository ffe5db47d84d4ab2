"""The Numba backend's logit-space kernels behind the kernel contract.

These functions only lay the prepared operands out (``flat, start, step``, see
:mod:`fastdiv._backends.numba._kernels`) and call the kernels of
:mod:`fastdiv._backends.numba._logits`; the contract, with every
precondition, is in :mod:`fastdiv._backends` ("Logit space").

Examples
--------
>>> import numpy as np
>>> from fastdiv._backends.numba import _logit_api
>>> out = np.empty(1)
>>> _logit_api.logsumexp(np.array([[0.0, 0.0]]), None, None, out, None, 1)
>>> round(float(out[0]), 12)
0.69314718056
"""

from __future__ import annotations

import numpy as np

from fastdiv._backends.numba import _flat, _launch, _mask
from fastdiv._backends.numba import _logits

__all__ = [
    "logsumexp",
    "log_softmax",
    "softmax",
    "softmax_cross_entropy",
    "softmax_cross_entropy_probs",
    "kl_divergence_logits",
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
]

_NO_TARGET = np.zeros(1, dtype=np.intp)


def _grad_target(grad_out, like):
    """``(flat grad, has_grad)``: a dummy of ``like``'s dtype when no gradient is asked."""
    if grad_out is None:
        return np.empty(1, dtype=like.dtype), False
    return grad_out.reshape(-1), True


def logsumexp(a, b, where, out, sign_out, num_threads):
    """``log|sum(b * exp(a))|`` per row into ``out``, its sign into ``sign_out`` (if given)."""
    rows, n = a.shape
    af, a0, as_ = _flat(a)
    bf, b0, bs = (af, 0, 0) if b is None else _flat(b)
    mf, m0, ms, has_mask = _mask(where)
    signs = out if sign_out is None else sign_out
    args = (af, a0, as_, bf, b0, bs, b is not None, mf, m0, ms, has_mask, rows, n, out, signs,
            sign_out is not None)
    _launch(_logits.logsumexp, args, rows, n, num_threads)


def _row_map(kernel, z, out, num_threads):
    rows, n = z.shape
    zf, z0, zs = _flat(z)
    _launch(kernel, (zf, z0, zs, rows, n, out.reshape(-1)), rows, n, num_threads)


def log_softmax(z, out, num_threads):
    """``log(softmax(z))`` of every row into ``out`` (may be ``z``'s own memory)."""
    _row_map(_logits.log_softmax_rows, z, out, num_threads)


def softmax(z, out, num_threads):
    """``softmax(z)`` of every row into ``out`` (may be ``z``'s own memory)."""
    _row_map(_logits.softmax_rows, z, out, num_threads)


def _cross_entropy(z, p, target, label_smoothing, where, loss_out, grad_out, num_threads):
    rows, n = z.shape
    zf, z0, zs = _flat(z)
    pf, p0, ps = (zf, 0, 0) if p is None else _flat(p)
    mf, m0, ms, has_mask = _mask(where)
    grad, has_grad = _grad_target(grad_out, z)
    args = (zf, z0, zs, pf, p0, ps, p is not None, target, float(label_smoothing), mf, m0, ms,
            has_mask, rows, n, loss_out, grad, has_grad)
    _launch(_logits.softmax_cross_entropy, args, rows, n, num_threads)


def softmax_cross_entropy(z, target, label_smoothing, where, loss_out, grad_out, num_threads):
    """Softmax cross-entropy per row against class indices ``target`` (``-1``: ignored row)."""
    _cross_entropy(z, None, target, label_smoothing, where, loss_out, grad_out, num_threads)


def softmax_cross_entropy_probs(z, p, label_smoothing, where, loss_out, grad_out, num_threads):
    """Softmax cross-entropy per row against target probabilities ``p``."""
    _cross_entropy(z, p, _NO_TARGET, label_smoothing, where, loss_out, grad_out, num_threads)


def kl_divergence_logits(a, b, temperature, where, loss_out, grad_out, num_threads):
    """``KL(softmax(a / T) || softmax(b / T))`` per row; gradient with respect to ``b``."""
    rows, n = a.shape
    af, a0, as_ = _flat(a)
    bf, b0, bs = _flat(b)
    mf, m0, ms, has_mask = _mask(where)
    grad, has_grad = _grad_target(grad_out, a)
    args = (af, a0, as_, bf, b0, bs, float(temperature), mf, m0, ms, has_mask, rows, n,
            loss_out, grad, has_grad)
    _launch(_logits.kl_divergence_logits, args, rows, n, num_threads)


def _binary(kernel, p, q, w, where, out, num_threads):
    rows, n = p.shape
    pf, p0, ps = _flat(p)
    qf, q0, qs = _flat(q)
    wf, w0, ws = (pf, 0, 0) if w is None else _flat(w)
    mf, m0, ms, has_mask = _mask(where)
    args = (pf, p0, ps, qf, q0, qs, wf, w0, ws, w is not None, mf, m0, ms, has_mask, rows, n, out)
    _launch(kernel, args, rows, n, num_threads)


def binary_cross_entropy(p, q, where, out, num_threads):
    """Row sums of ``-(xlogy(p, q) + xlog1py(1 - p, -q))`` into ``out``."""
    _binary(_logits.bce_rows, p, q, None, where, out, num_threads)


def binary_cross_entropy_with_logits(z, t, pos_weight, where, out, num_threads):
    """Row sums of ``w t softplus(-z) + (1 - t) softplus(z)`` into ``out``."""
    _binary(_logits.bce_logits_rows, z, t, pos_weight, where, out, num_threads)
