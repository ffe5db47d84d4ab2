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
