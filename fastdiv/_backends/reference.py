"""Plain NumPy backend: readable, exact on SciPy's edge cases, the test oracle.

Every compiled backend must agree with this module. It favours clarity over
speed and memory: it builds full ``(rows, n)`` temporaries. ``float32`` input
is computed in ``float64`` (the most accurate oracle); ``longdouble`` is
computed in ``longdouble``.
"""

from __future__ import annotations

import numpy as np


def _working(a: np.ndarray) -> np.ndarray:
    """The array in the precision the reference computes in."""
    return a.astype(np.float64) if a.dtype == np.float32 else a


def _normalized(a: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    with np.errstate(all="ignore"):
        total = np.sum(a, axis=1, keepdims=True, where=True if mask is None else mask)
        return a / total


def _operands(p, q, where, normalize):
    mask = None if where is None else where.astype(bool)
    p = _working(p)
    q = None if q is None else _working(q)
    if normalize:
        p = _normalized(p, mask)
        q = None if q is None else _normalized(q, mask)
    return p, q, mask


def rel_entr_terms(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """``scipy.special.rel_entr`` with the accurate forms near and far from 1."""
    with np.errstate(all="ignore"):
        ratio = p / q
        near_one = (ratio > 0.5) & (ratio < 2.0)
        normal = np.isfinite(ratio) & (ratio >= np.finfo(p.dtype).tiny)
        positive = np.select(
            [near_one, normal],
            [p * np.log1p((p - q) / q), p * np.log(ratio)],
            default=p * (np.log(p) - np.log(q)),
        )
        return np.select(
            [np.isnan(p) | np.isnan(q), (p > 0) & (q > 0), (p == 0) & (q >= 0)],
            [np.nan, positive, 0.0],
            default=np.inf,
        ).astype(p.dtype, copy=False)


def entr_terms(p: np.ndarray) -> np.ndarray:
    """``scipy.special.entr``: ``-p log p``, 0 at 0, ``-inf`` for ``p < 0``."""
    with np.errstate(all="ignore"):
        return np.select(
            [np.isnan(p), p > 0, p == 0], [np.nan, -p * np.log(p), 0.0], default=-np.inf
        ).astype(p.dtype, copy=False)


def neg_xlogy_terms(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """``-scipy.special.xlogy(p, q)``: 0 where ``p == 0`` and ``q`` is not NaN."""
    with np.errstate(all="ignore"):
        return np.where((p == 0) & ~np.isnan(q), 0.0, -p * np.log(q)).astype(
            p.dtype, copy=False
        )


def js_terms(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Half of ``rel_entr(p, m) + rel_entr(q, m)`` with ``m = (p + q) / 2``, stably.

    With ``t = (p - q) / (p + q)`` (``|t| <= 1`` for non-negative inputs),
    ``p / m = 1 + t`` and ``q / m = 1 - t``. ``log1p(t)`` is accurate while
    ``1 + t >= 0.5``; below that ``log(p / m)`` is (no cancellation), and when
    ``p / m`` underflows, ``log(p) - log(m)``. Each element is halved before
    the sum, so a sum of terms near the float maximum does not overflow.

    For ``|t| < 0.5`` the two terms, each of order ``m * t``, cancel down to
    ``m * t**2``; there the element is ``m * f(t)`` with
    ``f(t) = (1 + t) log1p(t) + (1 - t) log1p(-t) = 2 t atanh(t) + log1p(-t**2)``,
    whose two parts cancel by at most half, so near-identical ``p`` and ``q``
    keep their digits (every element is >= 0: the sum is well conditioned).
    """
    with np.errstate(all="ignore"):
        total = p + q
        overflow = np.isinf(total)
        # (half_diff, total) are (p - q, p + q), or both halved where p + q overflows.
        half_diff = np.where(overflow, 0.5 * p - 0.5 * q, p - q)
        total = np.where(overflow, 0.5 * p + 0.5 * q, total)
        m_scale = np.where(overflow, 1.0, 2.0)  # m == total / m_scale
        log_m = np.log(total) - np.log(m_scale)
        t = half_diff / total
        tiny = np.finfo(p.dtype).tiny

        def log_ratio(x, x_over_total, s):  # log(x / m), with s = +-t
            ratio = m_scale * x_over_total
            return np.select(
                [s >= -0.5, ratio >= tiny],
                [np.log1p(s), np.log(ratio)],
                default=np.log(x) - log_m,
            )

        p_term = np.where(p == 0, 0.0, p * log_ratio(p, p / total, t))
        q_term = np.where(q == 0, 0.0, q * log_ratio(q, q / total, -t))
        far = 0.5 * (p_term + q_term)
        near = 0.5 * (total / m_scale) * (2 * t * np.arctanh(t) + np.log1p(-t * t))
        terms = np.where(np.abs(t) < 0.5, near, far)
        return np.select(
            [np.isnan(p) | np.isnan(q), (p < 0) | (q < 0)], [np.nan, np.inf], default=terms
        ).astype(p.dtype, copy=False)


def _reduce(terms: np.ndarray, mask: np.ndarray | None, out: np.ndarray) -> None:
    with np.errstate(all="ignore"):  # sums overflow to inf like SciPy's values, silently
        out[...] = np.sum(terms, axis=1, where=True if mask is None else mask, dtype=out.dtype)


def entropy(p, where, normalize, out, num_threads):
    p, _, mask = _operands(p, None, where, normalize)
    _reduce(entr_terms(p), mask, out)


def cross_entropy(p, q, where, normalize, out, num_threads):
    p, q, mask = _operands(p, q, where, normalize)
    _reduce(neg_xlogy_terms(p, q), mask, out)


def kl_divergence(p, q, where, normalize, out, num_threads):
    p, q, mask = _operands(p, q, where, normalize)
    _reduce(rel_entr_terms(p, q), mask, out)


def js_divergence(p, q, where, normalize, out, num_threads):
    p, q, mask = _operands(p, q, where, normalize)
    _reduce(js_terms(p, q), mask, out)
    with np.errstate(invalid="ignore"):
        np.maximum(out, 0.0, out=out, where=~np.isnan(out))


def rel_entr(p, q, out, num_threads):
    with np.errstate(over="ignore"):  # float32 results beyond its range become inf
        out[...] = rel_entr_terms(_working(p), _working(q))


def entr(p, out, num_threads):
    with np.errstate(over="ignore"):
        out[...] = entr_terms(_working(p))


def info() -> dict:
    """Details for ``show_config``."""
    return {"kernels": "NumPy (temporaries, single pass per formula)"}


# -- Logit space ----------------------------------------------------------------------------
#
# Shapes are (rows, n); per-row quantities are kept as (rows, 1) columns so that
# they broadcast against the rows. Every kernel works on the kept elements only
# (``where`` true); masked elements take no part in any max, sum or count.


def _kept(where, shape) -> np.ndarray:
    return np.ones(shape, dtype=bool) if where is None else where.astype(bool)


def log_sum_exp_parts(z: np.ndarray, kept: np.ndarray, weight: np.ndarray | None = None):
    """The pieces of ``log|sum(weight * exp(z))|`` over the kept elements of each row.

    With ``top`` the row max (NaN if a kept element is NaN, ``-inf`` for a row
    with nothing kept) and ``shift = top`` where it is finite, else 0 (SciPy's
    ``log_softmax`` convention), ``S = sum(weight * exp(z - shift))``.
    When ``top`` is finite the terms at the max (each exactly its weight) are
    summed apart as ``head`` and the others as ``tail``; then
    ``log|S| = log|head| + log1p(tail / head)``, which keeps the digits of a
    sum close to its head (SciPy's ``logsumexp`` does the same; a sum below
    zero uses ``log1p(-tail / head - 2)``). Otherwise, and when ``head`` is 0,
    ``log|S|`` is the plain ``log|sum|``.

    Returns
    -------
    top, shift, log_sum, sign, total : ndarray, each (rows, 1)
        ``sign`` is the sign of ``S`` (0 for an empty sum, NaN for NaN);
        ``total`` is ``S`` itself.
    """
    w = np.ones_like(z) if weight is None else weight
    with np.errstate(all="ignore"):
        top = np.max(z, axis=1, keepdims=True, initial=-np.inf, where=kept)
        finite = np.isfinite(top)
        shift = np.where(finite, top, 0.0)
        at_top = kept & finite & (z == top)
        head = np.sum(w, axis=1, keepdims=True, where=at_top)
        tail = np.sum(w * np.exp(z - shift), axis=1, keepdims=True, where=kept & ~at_top)
        ratio = tail / head
        below = ratio < -1
        log_sum = np.log(np.abs(head)) + np.log1p(np.where(below, -ratio - 2, ratio))
        sign = np.sign(head) * np.sign(ratio + 1)
        plain = head == 0
        log_sum = np.where(plain, np.log(np.abs(tail)), log_sum)
        sign = np.where(plain, np.sign(tail), sign)
    return top, shift, log_sum, sign, head + tail


def logsumexp(a, b, where, out, sign_out, num_threads):
    a = _working(a)
    kept = _kept(where, a.shape)
    weight = None
    if b is not None:
        weight = _working(b)
        kept &= weight != 0  # a zero weight drops its term, even an inf or NaN one
    _, shift, log_sum, sign, _ = log_sum_exp_parts(a, kept, weight)
    result, sign = (shift + log_sum)[:, 0], sign[:, 0]
    if sign_out is None:
        result = np.where(sign < 0, np.nan, result)
    else:
        sign_out[...] = sign
    out[...] = result


def log_softmax(z, out, num_threads):
    z = _working(z)
    _, shift, log_sum, _, _ = log_sum_exp_parts(z, _kept(None, z.shape))
    with np.errstate(all="ignore"):
        out[...] = (z - shift) - log_sum


def softmax(z, out, num_threads):
    z = _working(z)
    with np.errstate(all="ignore"):
        e = np.exp(z - np.max(z, axis=1, keepdims=True, initial=-np.inf))
        out[...] = e / np.sum(e, axis=1, keepdims=True)


def _cross_entropy_rows(z, q, kept, total_q, skip, loss_out, grad_out):
    """Loss ``sum(q * (log S - (z - top)))`` and gradient ``total_q * softmax(z) - q``.

    ``q`` is the (smoothed) target, 0 on masked elements; ``total_q`` its row
    sum. Rows flagged in ``skip`` (ignored) and rows with nothing kept give
    loss 0 and gradient 0; rows whose max is not finite give NaN.
    """
    top, _, log_sum, _, total = log_sum_exp_parts(z, kept)
    with np.errstate(all="ignore"):
        terms = np.where(kept & (q != 0), q * (top - z), 0.0)
        loss = np.sum(terms, axis=1, keepdims=True) + total_q * log_sum
        usable = np.isfinite(top)
        empty = ~kept.any(axis=1, keepdims=True)
        loss = np.select([skip | empty, usable], [0.0, loss], default=np.nan)
        loss_out[...] = loss[:, 0]
        if grad_out is not None:
            grad = np.where(usable, total_q * np.exp(z - top) / total - q, np.nan)
            grad_out[...] = np.where(kept & ~skip, grad, 0.0)


def softmax_cross_entropy(z, target, label_smoothing, where, loss_out, grad_out, num_threads):
    z = _working(z)
    kept = _kept(where, z.shape)
    classes = np.sum(kept, axis=1, keepdims=True)
    labelled = np.flatnonzero(target >= 0)
    onehot = np.zeros(z.shape, dtype=bool)
    onehot[labelled, target[labelled]] = True
    with np.errstate(all="ignore"):
        q = (1 - label_smoothing) * onehot + label_smoothing / classes
    q = np.where(kept, q, 0.0)
    skip = (target < 0)[:, None]
    _cross_entropy_rows(z, q, kept, 1.0, skip, loss_out, grad_out)


def softmax_cross_entropy_probs(z, p, label_smoothing, where, loss_out, grad_out, num_threads):
    z, p = _working(z), _working(p)
    kept = _kept(where, z.shape)
    classes = np.sum(kept, axis=1, keepdims=True)
    with np.errstate(all="ignore"):
        q = np.where(kept, (1 - label_smoothing) * p + label_smoothing / classes, 0.0)
        total_q = np.sum(q, axis=1, keepdims=True)
    skip = np.zeros((z.shape[0], 1), dtype=bool)
    _cross_entropy_rows(z, q, kept, total_q, skip, loss_out, grad_out)


def kl_divergence_logits(a, b, temperature, where, loss_out, grad_out, num_threads):
    x, y = _working(a) / temperature, _working(b) / temperature
    kept = _kept(where, x.shape)
    x_top, _, x_log_sum, _, x_total = log_sum_exp_parts(x, kept)
    y_top, _, y_log_sum, _, y_total = log_sum_exp_parts(y, kept)
    with np.errstate(all="ignore"):
        ex, ey = np.exp(x - x_top), np.exp(y - y_top)
        # log p - log q = (x - x_top) - (y - y_top) + (log Sy - log Sx); an element
        # whose p underflows to 0 adds 0 (0 log 0 = 0), also against a q of 0.
        terms = np.where(kept & (ex != 0), ex * ((x - x_top) - (y - y_top)), 0.0)
        kl = np.sum(terms, axis=1, keepdims=True) / x_total + (y_log_sum - x_log_sum)
        kl = np.maximum(kl, 0.0)  # rounding may dip below 0; NaN stays NaN
        usable = np.isfinite(x_top) & np.isfinite(y_top)
        empty = ~kept.any(axis=1, keepdims=True)
        loss_out[...] = np.select([empty, usable], [0.0, kl], default=np.nan)[:, 0]
        if grad_out is not None:
            grad = np.where(usable, (ey / y_total - ex / x_total) / temperature, np.nan)
            grad_out[...] = np.where(kept, grad, 0.0)


def binary_cross_entropy_terms(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """``-(xlogy(p, q) + xlog1py(1 - p, -q))``: 0 where a coefficient is 0."""
    with np.errstate(all="ignore"):
        not_p = 1 - p
        negative = np.where((not_p == 0) & ~np.isnan(q), 0.0, -not_p * np.log1p(-q))
        return neg_xlogy_terms(p, q) + negative


def softplus(x: np.ndarray) -> np.ndarray:
    """``log(1 + exp(x))`` without overflow: ``max(x, 0) + log1p(exp(-|x|))``."""
    with np.errstate(all="ignore"):
        return np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))


def binary_cross_entropy_logit_terms(z, t, pos_weight) -> np.ndarray:
    """``pos_weight * t * softplus(-z) + (1 - t) * softplus(z)``: 0 where a coefficient is 0."""
    positive = t if pos_weight is None else pos_weight * t
    negative = 1 - t
    with np.errstate(all="ignore"):
        pos_term = np.where((positive == 0) & ~np.isnan(z), 0.0, positive * softplus(-z))
        neg_term = np.where((negative == 0) & ~np.isnan(z), 0.0, negative * softplus(z))
        return pos_term + neg_term


def binary_cross_entropy(p, q, where, out, num_threads):
    mask = None if where is None else where.astype(bool)
    _reduce(binary_cross_entropy_terms(_working(p), _working(q)), mask, out)


def binary_cross_entropy_with_logits(z, t, pos_weight, where, out, num_threads):
    mask = None if where is None else where.astype(bool)
    pos_weight = None if pos_weight is None else _working(pos_weight)
    terms = binary_cross_entropy_logit_terms(_working(z), _working(t), pos_weight)
    _reduce(terms, mask, out)
