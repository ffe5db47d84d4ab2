"""Per-element terms of every divergence, SciPy's edge values included.

Each function takes one element of ``p`` (and of ``q``) in the input's own
precision (float32 or float64), does its logarithms in that precision, and
returns the term as float64, the type every sum accumulates in. Branches are
plain conditional expressions that LLVM turns into selects, so loops over
these functions vectorise.

``rel_entr_fast`` covers every input except a positive pair whose ratio
``p / q`` over- or underflows; it flags those, and the caller adds
``rel_entr_slow`` for them (rare, so it stays out of the SIMD loop).

Examples
--------
>>> import numpy as np
>>> from fastdiv._backends.numba import _terms
>>> _terms.rel_entr_fast(np.float64(0.5), np.float64(0.25))
(0.34657359027997264, False)
"""

from __future__ import annotations

import numpy as np
from numba import njit

from fastdiv._backends.numba._math import fma, half, huge, log, log1p, tiny
from fastdiv._backends.numba._options import MATH

_INF = np.inf
_NAN = np.nan


@njit(**MATH)
def rel_entr_fast(x, y):
    """``rel_entr(x, y)`` and whether it still needs :func:`rel_entr_slow`.

    For positive ``x``, ``y`` with a normal ratio ``r = x / y`` the term is
    ``x log(r) + (x - r y)``: the second part, exact through one FMA, is
    ``x`` times the rounding error of ``r`` to first order, so the term keeps
    full relative accuracy even when ``x`` and ``y`` agree to many digits.

    Returns
    -------
    (float64, bool)
        The term (0.0 where the slow form is needed) and that flag.
    """
    r = x / y
    term = x * log(r) + fma(-r, y, x)
    positive = (x > 0) & (y > 0)
    ratio_ok = (r >= tiny(r)) & (r <= huge(r))
    fast = positive & ratio_ok
    if x == 0 and y >= 0:
        special = 0.0
    elif x != x or y != y:
        special = _NAN
    else:  # negative input, or x > 0 with y == 0
        special = _INF
    value = np.float64(term) if fast else (0.0 if positive else special)
    return value, positive & (ratio_ok == False)  # noqa: E712 (elementwise not)


@njit(**MATH)
def rel_entr_slow(x, y):
    """``x (log x - log y)`` in float64, for positive ``x``, ``y`` whose ratio is not normal."""
    x = np.float64(x)
    y = np.float64(y)
    return x * (log(x) - log(y))


@njit(**MATH)
def rel_entr_needs_slow(x, y):
    """Whether :func:`rel_entr_fast` left this pair to :func:`rel_entr_slow`."""
    r = x / y
    return (x > 0) & (y > 0) & ((r >= tiny(r)) & (r <= huge(r)) == False)  # noqa: E712


@njit(**MATH)
def entr(x):
    """``scipy.special.entr``: ``-x log x``; 0 at 0; ``-inf`` below 0; NaN stays NaN."""
    term = np.float64(-x * log(x))
    if x > 0:
        return term
    if x == 0:
        return 0.0
    return _NAN if x != x else -_INF


@njit(**MATH)
def neg_xlogy(x, y):
    """``-scipy.special.xlogy(x, y)``: 0 where ``x == 0`` unless ``y`` is NaN."""
    term = np.float64(-x * log(y))
    return 0.0 if (x == 0) & (y == y) else term


@njit(**MATH)
def js(x, y):
    """``rel_entr(x, m) + rel_entr(y, m)``, ``m = (x + y) / 2``, as ``reference.js_terms``.

    With ``t = (x - y) / (x + y)``, ``x / m = 1 + t`` and ``y / m = 1 - t``;
    ``|t| <= 1`` for non-negative input, so ``log1p`` is accurate everywhere.
    """
    total = x + y
    diff = x - y
    if total - total != 0:  # inf (or NaN): halve first so the sum stays finite
        h = half(x)
        diff = x * h - y * h
        total = x * h + y * h
    t = diff / total
    x_term = 0.0 if x == 0 else np.float64(x * log1p(t))
    y_term = 0.0 if y == 0 else np.float64(y * log1p(-t))
    if x != x or y != y:
        return _NAN
    if x < 0 or y < 0:
        return _INF
    return x_term + y_term
