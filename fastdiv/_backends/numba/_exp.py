"""Vectorisable ``exp`` for float32 and float64 Numba code.

Like :mod:`fastdiv._backends.numba._math`'s ``log``, this is branch-free
arithmetic on bit patterns, so LLVM vectorises the loops that call it (the pip
build of llvmlite has no vector math library; ``np.exp`` in a loop stays a
scalar libm call).

Method: ``x = k log(2) + r`` with ``k`` the nearest integer to ``x / log(2)``
(found by adding and subtracting ``1.5 * 2**52``, which rounds to an integer
in one addition), ``r`` computed in two parts (Cody and Waite) so it is exact
to far below an ulp, ``|r| <= log(2) / 2``. Then
``exp(r) = 1 + (r + r**2 Q(r))`` with ``Q`` a polynomial fitted to
``(exp(r) - 1 - r) / r**2`` at Chebyshev nodes (relative error of the fit
below 2e-17 for float64, 1e-8 for float32). The result is scaled by
``2**k`` as ``2**k1 * 2**k2`` with ``k1 + k2 = k``, so overflow to ``inf`` and
gradual underflow to subnormals and 0 come out of the multiplications. The
input is clamped first (every value beyond the clamp gives the same ``inf``
or 0), and NaN is restored by a select. Within 1 ulp (tests compare with
``math.exp``); ``exp(0) == 1`` exactly.

``exp_term`` is the hot-loop variant for ``x <= 0``, for the terms of a sum
whose largest term is ``exp(0) = 1`` (log-sum-exp, softmax): a result below
the smallest normal number is 0, which lets it scale by ``2**k`` with one
integer addition to the exponent field (``k`` read straight from the bits of
the shifted ``x / log(2)``) and skip the overflow clamp; its polynomial is
evaluated in Estrin's scheme (short dependency chains), and ``1 + r`` is
rounded with its error carried along. It is the Cython backend's
``fdl_exp_kernel_d`` / ``fdl_expf_nonpos`` method and coefficients, so the two
backends agree. ``exp_term_not_nan`` leaves out the select that keeps NaN, for
loops whose inputs cannot be NaN (an exp against a block max that is not NaN).

These functions must not be compiled with the ``reassoc`` fast-math flag:
it would fold the rounding trick ``(t + shift) - shift`` to ``t``. They get
``MATH`` options (``contract`` only); a loop that calls them is compiled with
the same options and sums its results in a separate ``SUM`` function.

Examples
--------
>>> import numba, numpy as np
>>> from fastdiv._backends.numba import _exp
>>> @numba.njit
... def f(x):
...     return _exp.exp(x)
>>> float(f(np.float64(1.0)))
2.718281828459045
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from fastdiv._backends.numba._cache import jit
from fastdiv._backends.numba._math import _by_float_type, fma
from fastdiv._backends.numba._options import MATH

# width of the integer type, exponent shift, exponent bias
_LAYOUT = {types.float64: (64, 52, 1023), types.float32: (32, 23, 127)}


@intrinsic
def _scales(typingctx, k):
    """``(2**k1, 2**k2)`` with ``k1 = k >> 1``, ``k2 = k - k1``, for an integral float ``k``.

    Each factor stays a normal number for every ``k`` that the clamped
    input of :func:`exp` produces.
    """
    if k not in _LAYOUT:
        return None
    width, shift, bias = _LAYOUT[k]

    def codegen(context, builder, signature, args):
        ity = ir.IntType(width)
        fty = context.get_value_type(k)
        ki = builder.fptosi(args[0], ity)
        k1 = builder.ashr(ki, ity(1))
        k2 = builder.sub(ki, k1)
        s1 = builder.bitcast(builder.shl(builder.add(k1, ity(bias)), ity(shift)), fty)
        s2 = builder.bitcast(builder.shl(builder.add(k2, ity(bias)), ity(shift)), fty)
        return context.make_tuple(builder, signature.return_type, [s1, s2])

    return types.UniTuple(k, 2)(k), codegen


@jit(MATH)
def _one_plus(a, b, one):
    """``1 + a + b`` for ``|b| <~ |a| < 1/2``, rounded once (two exact error terms).

    Rounding ``a + b`` first and then ``1 + (a + b)`` would cost up to a whole
    ulp of a result below 1.
    """
    s = a + b
    e = (a - s) + b  # the rounding error of a + b (Fast2Sum)
    y = one + s
    return y + (((one - y) + s) + e)


# bits of the shifter 1.5 * 2**52 (float32: 1.5 * 2**23): for an integer k,
# bits(k + shifter) - bits(shifter) == k
_SHIFTER_BITS = {types.float64: 0x4338000000000000, types.float32: 0x4B400000}


@intrinsic
def _times_pow2_shifted(typingctx, y, k_shifted):
    """``y * 2**k`` by adding ``k`` to the exponent field, ``k_shifted = k + shifter``.

    ``k`` is read from the bits of ``k_shifted`` (no float-to-int conversion);
    only for a normal result.
    """
    if y not in _LAYOUT or k_shifted != y:
        return None
    width, shift, _ = _LAYOUT[y]
    base = _SHIFTER_BITS[y]

    def codegen(context, builder, signature, args):
        ity = ir.IntType(width)
        k = builder.sub(builder.bitcast(args[1], ity), ity(base))
        bits = builder.add(builder.bitcast(args[0], ity), builder.shl(k, ity(shift)))
        return builder.bitcast(bits, context.get_value_type(y))

    return y(y, k_shifted), codegen


# -- float64 -------------------------------------------------------------------

_LOG2E = 1.4426950408889634
_SHIFT = 1.5 * 2.0**52
_LN2_HI = 6.93147180369123816490e-01  # 32 significant bits: k * _LN2_HI is exact
_LN2_LO = 1.90821492927058770002e-10
_LOW = -746.0  # exp(x) rounds to 0 below about -745.13
_HIGH = 710.0  # and overflows above about 709.78
_Q0 = 0.5000000000000001
_Q1 = 0.16666666666666669
_Q2 = 0.041666666666624164
_Q3 = 0.008333333333330065
_Q4 = 0.0013888888917196719
_Q5 = 0.00019841269863040545
_Q6 = 2.4801521322368692e-05
_Q7 = 2.7557268480310024e-06
_Q8 = 2.7620075879983367e-07
_Q9 = 2.5100375832561234e-08


@jit(MATH)
def exp64(x):
    """``exp(x)`` of a float64, vectorisable, within 1 ulp."""
    xc = x if x > _LOW else _LOW  # NaN goes to _LOW here and is restored below
    xc = xc if xc < _HIGH else _HIGH
    k = (xc * _LOG2E + _SHIFT) - _SHIFT
    r_hi = xc - k * _LN2_HI  # exact
    r_lo = -k * _LN2_LO
    r = r_hi + r_lo
    q = _Q9 * r + _Q8
    q = q * r + _Q7
    q = q * r + _Q6
    q = q * r + _Q5
    q = q * r + _Q4
    q = q * r + _Q3
    q = q * r + _Q2
    q = q * r + _Q1
    q = q * r + _Q0
    y = _one_plus(r_hi, r * r * q + r_lo, 1.0)
    s1, s2 = _scales(k)
    y = (y * s1) * s2
    return y if x == x else x


_TERM_FLUSH = -707.5  # below this exp(x) < 2**-1020 is flushed to 0
_LN2_HI_TERM = float.fromhex("0x1.62e42fefa0000p-1")  # 37 significant bits
_LN2_LO_TERM = float.fromhex("0x1.cf79abc9e3b3ap-40")
# exp(r) = 1 + r + r**2 P(r), P of degree 10 on |r| <= log(2) / 2 (error below 2**-59)
_E0, _E1, _E2, _E3, _E4, _E5, _E6, _E7, _E8, _E9, _E10 = (float.fromhex(h) for h in (
    "0x1p-1", "0x1.5555555555557p-3", "0x1.5555555555556p-5", "0x1.11111111100d3p-7",
    "0x1.6c16c16c162cfp-10", "0x1.a01a01abeccc3p-13", "0x1.a01a01a6db488p-16",
    "0x1.71de02225a2f3p-19", "0x1.27e4db5bb725ap-22", "0x1.af4e092e1705bp-26",
    "0x1.1f7315649f2d7p-29"))


@jit(MATH)
def exp_term_not_nan64(x):
    """``exp(x)`` for ``x <= 0`` as a term of a sum with a term ``>= 1``: results below
    ``2**-1020`` are 0 (they cannot change such a sum); otherwise within 1 ulp. ``x`` must
    not be NaN (a NaN with a payload may come out finite)."""
    flush = x < _TERM_FLUSH
    xc = 0.0 if flush else x  # keeps the exponent arithmetic in range
    k_shifted = fma(xc, _LOG2E, _SHIFT)
    k = k_shifted - _SHIFT
    r = fma(-k, _LN2_LO_TERM, fma(-k, _LN2_HI_TERM, xc))
    r2 = r * r
    r4 = r2 * r2
    low = fma(r2, fma(r, _E3, _E2), fma(r, _E1, _E0))
    mid = fma(r2, fma(r, _E7, _E6), fma(r, _E5, _E4))
    high = fma(r2, _E10, fma(r, _E9, _E8))
    p = fma(r4 * r4, high, fma(r4, mid, low))
    s = 1.0 + r
    y = _times_pow2_shifted(s + fma(r2, p, (1.0 - s) + r), k_shifted)
    return 0.0 if flush else y


# -- float32 -------------------------------------------------------------------

_F32 = np.float32
_LOG2E32 = _F32(1.4426950408889634)
_SHIFT32 = _F32(1.5 * 2.0**23)
_LN2_HI32 = _F32(0.693145751953125)  # 16 significant bits
_LN2_LO32 = _F32(1.428606765330187e-06)
_LOW32 = _F32(-104.0)  # exp(x) rounds to 0 below about -103.97
_HIGH32 = _F32(89.0)  # and overflows above about 88.72
_ONE32 = _F32(1.0)
_P0 = _F32(0.5)
_P1 = _F32(0.1666657702559799)
_P2 = _F32(0.041666554662050534)
_P3 = _F32(0.008363173074513711)
_P4 = _F32(0.001392617611993558)


@jit(MATH)
def exp32(x):
    """``exp(x)`` of a float32, vectorisable, within 1 float32 ulp."""
    xc = x if x > _LOW32 else _LOW32
    xc = xc if xc < _HIGH32 else _HIGH32
    k = (xc * _LOG2E32 + _SHIFT32) - _SHIFT32
    r_hi = xc - k * _LN2_HI32
    r_lo = -k * _LN2_LO32
    r = r_hi + r_lo
    q = _P4 * r + _P3
    q = q * r + _P2
    q = q * r + _P1
    q = q * r + _P0
    y = _one_plus(r_hi, r * r * q + r_lo, _ONE32)
    s1, s2 = _scales(k)
    y = (y * s1) * s2
    return y if x == x else x


_TERM_FLUSH32 = _F32(-86.5)  # exp(-86.5) is still a normal float32
_LN2_HI_TERM32 = _F32(float.fromhex("0x1.62e4p-1"))  # 15 significant bits
_LN2_LO_TERM32 = _F32(float.fromhex("0x1.7f7d1cp-20"))
# exp(r) = 1 + r + r**2 P(r), P of degree 4 (error below 2**-27 of the result)
_F0, _F1, _F2, _F3, _F4 = (_F32(float.fromhex(h)) for h in (
    "0x1p-1", "0x1.5554dcp-3", "0x1.55551ap-5", "0x1.120b90p-7", "0x1.6d112cp-10"))
_ZERO32 = _F32(0.0)


@jit(MATH)
def exp_term_not_nan32(x):
    """``exp(x)`` for ``x <= 0``, not NaN, as a term of a sum with a term ``>= 1`` (see
    :func:`exp_term_not_nan64`)."""
    flush = x < _TERM_FLUSH32
    xc = _ZERO32 if flush else x
    k_shifted = fma(xc, _LOG2E32, _SHIFT32)
    k = k_shifted - _SHIFT32
    r = fma(-k, _LN2_LO_TERM32, fma(-k, _LN2_HI_TERM32, xc))
    r2 = r * r
    p = fma(r2, fma(r2, _F4, fma(r, _F3, _F2)), fma(r, _F1, _F0))
    s = _ONE32 + r
    y = _times_pow2_shifted(s + fma(r2, p, (_ONE32 - s) + r), k_shifted)
    return _ZERO32 if flush else y


# -- generic entry point -----------------------------------------------------------


def exp(x):
    """``exp(x)``; in jitted code the vectorisable float32/float64 version."""
    return np.exp(x)


_by_float_type(exp, exp64, exp32)


def exp_term_not_nan(x):
    """``exp_term(x)`` for an ``x`` that is not NaN, one select cheaper; in jitted code
    vectorisable."""
    return np.exp(x)


_by_float_type(exp_term_not_nan, exp_term_not_nan64, exp_term_not_nan32)


@jit(MATH)
def exp_term(x):
    """``exp(x)`` for ``x <= 0``, tiny results flushed to 0 (:func:`exp_term_not_nan`), and
    NaN stays NaN; float32 or float64, vectorisable."""
    return exp_term_not_nan(x) if x == x else x
