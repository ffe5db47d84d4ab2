"""Per-element terms of every divergence, SciPy's edge values included.

Each function takes one element of ``p`` (and of ``q``) in the input's own
precision (float32 or float64) and returns the term in that precision; the
kernels sum terms in float64. Branches are conditional expressions on
comparisons combined with ``&``/``|`` (never ``and``/``or`` or if-chains),
which LLVM turns into selects, so loops over these functions vectorise.

KL and JS use fast forms that skip rare cases and mark them: ``rel_entr_fast``
and ``js`` with ``-inf`` (a value no valid input gives; the caller replaces them
with ``rel_entr_slow`` / ``js_slow``). A block whose sum is not finite is where
the caller looks. (Entropy and cross-entropy check their inputs per block
instead and fall back to ``entr`` / ``neg_xlogy``; see the kernels' ``_fill``.)

Examples
--------
>>> import numpy as np
>>> from fastdiv._backends.numba import _terms
>>> float(_terms.rel_entr_fast(np.float64(0.5), np.float64(0.25)))
0.34657359027997264
"""

from __future__ import annotations

import numpy as np

from fastdiv._backends.numba._cache import jit
from fastdiv._backends.numba._math import (
    fma,
    half,
    huge,
    like,
    log,
    log1p,
    log_normal,
    log_positive,
    tiny,
)
from fastdiv._backends.numba._options import TERM

_INF = np.inf
_NAN = np.nan
_TINY = np.finfo(np.float64).tiny


@jit(TERM)
def rel_entr_fast(x, y):
    """``rel_entr(x, y)``, or ``-inf`` where :func:`rel_entr_slow` is needed.

    For positive ``x``, ``y`` with a normal ratio ``r = x / y`` the term is
    ``x log(r) + (x - r y)``: the second part, exact through one FMA, is
    ``x`` times the rounding error of ``r`` to first order, so the term keeps
    full relative accuracy even when ``x`` and ``y`` agree to many digits.
    """
    r = x / y
    term = x * log_normal(r) + fma(-r, y, x)  # selected only where r is normal
    positive = (x > 0) & (y > 0)
    ratio_ok = (r >= tiny(r)) & (r <= huge(r))
    # Left over after NaN, 0 and the slow case: negative input, or x > 0 with
    # y == 0; both give +inf.
    special = _NAN if (x != x) | (y != y) else (0.0 if (x == 0) & (y >= 0) else _INF)
    special = -_INF if positive else special
    return term if positive & ratio_ok else like(x, special)


@jit(TERM)
def rel_entr_slow(x, y):
    """``x (log x - log y)`` in float64, for positive ``x``, ``y`` whose ratio is not normal."""
    x = np.float64(x)
    y = np.float64(y)
    return x * (log(x) - log(y))


@jit(TERM)
def entr(x):
    """``scipy.special.entr``: ``-x log x``; 0 at 0; ``-inf`` below 0; NaN stays NaN."""
    term = -x * log_positive(x)  # selected only for x > 0 (inf: -inf * finite = -inf)
    special = _NAN if x != x else (0.0 if x == 0 else -_INF)
    return term if x > 0 else like(x, special)


@jit(TERM)
def neg_xlogy(x, y):
    """``-scipy.special.xlogy(x, y)``: 0 where ``x == 0`` unless ``y`` is NaN."""
    term = -x * log(y)
    return like(x, 0.0) if (x == 0) & (y == y) else term


@jit(TERM)
def _js_half(a, s, lo, r):
    """``a log(2a / S) / 2`` for ``a >= 0`` and ``S = s + lo`` exactly (``lo`` the
    rounding error of the sum ``s``), given ``r``, ``2a / s`` to within an ulp or two.

    With ``e = 2a - r s`` (exact through one FMA), ``a log(2a / S) = a log(r) +
    (e - r lo) / 2`` to second order (``e`` carries the rounding error of ``r``), and
    ``log(r)`` is relatively accurate near ``r = 1``. Needs ``r`` normal and ``2a``
    finite.
    """
    h = half(a)
    a2 = a + a
    term = h * fma(a, log_normal(r), h * (fma(-r, s, a2) - r * lo))
    return like(a, 0.0) if a == 0 else term


@jit(TERM)
def _js_series(u):
    """``f(t) = (1 + t) log1p(t) + (1 - t) log1p(-t)`` from ``u = t * t <= 1/16``.

    ``f(t) = sum_k u**k / (k (2k - 1))``; 13 terms reach float64 precision.
    """
    poly = like(u, 1.0 / 325.0)
    for k in range(12, 0, -1):
        poly = poly * u + like(u, 1.0 / (k * (2 * k - 1)))
    return u * poly


@jit(TERM)
def js(x, y):
    """Half of ``rel_entr(x, m) + rel_entr(y, m)``, ``m = (x + y) / 2``, as ``reference.js_terms``.

    Far from ``x == y``: the two halves of :func:`_js_half` over the sum
    ``x + y`` split into its rounded value and rounding error (two-sum). Near
    it (``|t| < 1/4``, ``t = (x - y) / (x + y)``), where those halves cancel
    down to ``m t**2``: the series of :func:`_js_series`, every term positive.
    Returns ``-inf`` (a mark for :func:`js_slow`) where the fast forms do not
    hold: ``x + y`` beyond half the largest number or subnormal, or a ratio
    ``2x / (x + y)`` below the smallest normal number.
    """
    h = half(x)
    total = x + y
    back = total - x
    lo = (x - (total - back)) + (y - back)  # total + lo == x + y exactly
    # one division for both halves and t (divisions are the loop's slowest instructions)
    inv = like(x, 1.0) / total
    ratio_x = (x + x) * inv
    ratio_y = (y + y) * inv
    far = _js_half(x, total, lo, ratio_x) + _js_half(y, total, lo, ratio_y)
    diff = x - y  # exact where t is used (|t| < 1/4)
    t = diff * inv
    t = fma(inv, fma(-t, total, diff), t)  # one Newton step: t as if divided
    near = h * h * total * _js_series(t * t)
    value = near if abs(t) < like(x, 0.25) else far
    fast = (total <= h * huge(x)) & ((total == 0) | (total >= tiny(x)))
    fast = fast & ((x == 0) | (ratio_x >= tiny(x)))
    fast = fast & ((y == 0) | (ratio_y >= tiny(y)))
    value = value if fast else like(x, -_INF)
    nan = (x != x) | (y != y)
    special = like(x, _NAN) if nan else like(x, _INF)
    return special if nan | (x < 0) | (y < 0) else value


@jit(TERM)
def js_slow(x, y):
    """:func:`js` in float64 with ``log(x) - log(m)`` where ``x / m`` underflows."""
    x = np.float64(x)
    y = np.float64(y)
    total = x + y
    overflow = total - total != 0
    diff = 0.5 * x - 0.5 * y if overflow else x - y
    total = 0.5 * x + 0.5 * y if overflow else total
    scale = 1.0 if overflow else 2.0
    log_m = log(total) - log(scale)
    t = diff / total
    terms = 0.0
    for value, s in ((x, t), (y, -t)):
        ratio = scale * (value / total)
        if value == 0:
            continue
        if s >= -0.5:
            terms += value * log1p(s)
        elif ratio >= _TINY:
            terms += value * log(ratio)
        else:
            terms += value * (log(value) - log_m)
    return 0.5 * terms
