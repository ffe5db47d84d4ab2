"""Vectorisable ``log``, ``log1p`` and ``fma`` for float32 and float64 Numba code.

The pip build of llvmlite has no vector math library, so ``np.log`` inside a
loop stays a scalar libm call and blocks SIMD. These functions are branch-free
arithmetic on bit patterns instead: LLVM vectorises loops that call them.

Method (the classic fdlibm scheme, written for SIMD): split ``x = 2**k * m``
with ``m`` in ``[sqrt(2)/2, sqrt(2))`` by integer arithmetic on the bits, so
``f = m - 1`` is exact; then ``log(1 + f) = 2 atanh(s)``, ``s = f / (2 + f)``,
from a short odd polynomial; ``k log(2)`` is added in two parts so large ``k``
loses nothing. Subnormals are scaled up first; 0, negative numbers, inf and
NaN are fixed up by selects at the end. The float64 ``log`` is within 1 ulp
(tests compare with ``math.log``); it is exact at 1, 0, inf and NaN.

``log``, ``log1p``, ``fma``, ``tiny`` and ``huge`` are generic: Numba picks the
float32 or float64 code from the argument type, so kernels are written once.

Examples
--------
>>> import numba, numpy as np
>>> from fastdiv._backends.numba import _math
>>> @numba.njit
... def f(x):
...     return _math.log(x)
>>> float(f(np.float64(np.e)))
1.0
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic, overload

from fastdiv._backends.numba._cache import jit
from fastdiv._backends.numba._options import MATH

# -- bit-pattern layout per float type -----------------------------------------

# name: (int bits, exponent shift, exponent bias, mantissa mask, bits of 1.0,
#        bits of sqrt(2)/2)
_LAYOUT = {
    types.float64: (64, 52, 1023, 0x000FFFFFFFFFFFFF, 0x3FF0000000000000, 0x3FE6A09E667F3BCD),
    types.float32: (32, 23, 127, 0x007FFFFF, 0x3F800000, 0x3F3504F3),
}


def _layout(fty):
    if fty not in _LAYOUT:
        raise TypeError(f"expected float32 or float64, got {fty}")
    return _LAYOUT[fty]


@intrinsic
def _split(typingctx, x):
    """``(k, m)`` with ``x = 2**k * m``, ``m`` in ``[sqrt(2)/2, sqrt(2))``, for normal ``x > 0``."""
    if x not in _LAYOUT:
        return None
    width, shift, bias, mant_mask, one_bits, sqrt_half_bits = _layout(x)

    def codegen(context, builder, signature, args):
        ity = ir.IntType(width)
        bits = builder.bitcast(args[0], ity)
        shifted = builder.add(bits, ity(one_bits - sqrt_half_bits))
        exponent = builder.sub(builder.ashr(shifted, ity(shift)), ity(bias))
        mantissa = builder.add(builder.and_(shifted, ity(mant_mask)), ity(sqrt_half_bits))
        fty = context.get_value_type(x)
        k = builder.sitofp(exponent, fty)
        m = builder.bitcast(mantissa, fty)
        return context.make_tuple(builder, signature.return_type, [k, m])

    return types.UniTuple(x, 2)(x), codegen


@intrinsic
def _exp2_int(typingctx, k):
    """``2.0**k`` for an integral float ``k`` in the normal exponent range."""
    if k not in _LAYOUT:
        return None
    width, shift, bias, _, _, _ = _layout(k)

    def codegen(context, builder, signature, args):
        ity = ir.IntType(width)
        exponent = builder.add(builder.fptosi(args[0], ity), ity(bias))
        return builder.bitcast(builder.shl(exponent, ity(shift)), context.get_value_type(k))

    return k(k), codegen


@intrinsic
def _fma(typingctx, a, b, c):
    if not (a in _LAYOUT and a == b == c):
        return None

    def codegen(context, builder, signature, args):
        return builder.fma(*args)

    return a(a, b, c), codegen


_UNSIGNED = {types.float64: types.uint64, types.float32: types.uint32}


@intrinsic
def bits(typingctx, x):
    """The bit pattern of float ``x`` as an unsigned integer of its width.

    As unsigned integers the patterns of the positive normal numbers lie
    between those of the smallest normal number and the largest finite one;
    0 and the subnormals lie below, inf, NaN and every negative number above.
    """
    if x not in _LAYOUT:
        return None
    width = _layout(x)[0]

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(width))

    return _UNSIGNED[x](x), codegen


@intrinsic
def bits_less_one(typingctx, x):
    """``bits(x) - 1`` in the same unsigned type (``x = +0`` wraps to the largest value)."""
    if x not in _LAYOUT:
        return None
    width = _layout(x)[0]

    def codegen(context, builder, signature, args):
        ity = ir.IntType(width)
        return builder.sub(builder.bitcast(args[0], ity), ity(1))

    return _UNSIGNED[x](x), codegen


def fma(a, b, c):
    """``a * b + c`` with one rounding (LLVM's ``llvm.fma``)."""
    return a * b + c  # pure-Python stand-in; jitted code uses the intrinsic


def _by_float_type(stub, impl64, impl32):
    """In jitted code, ``stub(x)`` is ``impl64(x)`` for a float64 ``x`` and ``impl32(x)`` for
    a float32 one: kernels call one name for both precisions."""

    @overload(stub, jit_options=MATH)
    def _typed(x):
        if x == types.float64:
            return lambda x: impl64(x)
        if x == types.float32:
            return lambda x: impl32(x)

    return stub


@overload(fma, jit_options=MATH)
def _fma_overload(a, b, c):
    if a in _LAYOUT and a == b == c:
        return lambda a, b, c: _fma(a, b, c)


# -- float64 -------------------------------------------------------------------

_LN2_HI = 6.93147180369123816490e-01  # log(2) rounded to 32 significant bits
_LN2_LO = 1.90821492927058770002e-10  # log(2) - _LN2_HI
# Minimax coefficients of (log(1+f) - 2s) / (2s) in z = s*s (fdlibm's Lg1..Lg7).
_LG1 = 6.666666666666735130e-01
_LG2 = 3.999999999940941908e-01
_LG3 = 2.857142874366239149e-01
_LG4 = 2.222219843214978396e-01
_LG5 = 1.818357216161805012e-01
_LG6 = 1.531383769920937332e-01
_LG7 = 1.479819860511658591e-01
_TINY64 = np.finfo(np.float64).tiny
_HUGE64 = np.finfo(np.float64).max
_TWO54 = 2.0**54
_INF = np.inf
_NAN = np.nan


@jit(MATH)
def _log1p_reduced64(k, f):
    """``k log(2) + log(1 + f)`` for ``f`` in ``[sqrt(2)/2 - 1, sqrt(2) - 1]``.

    ``log(1 + f) = f - s (f - R)``: ``R`` in Estrin's scheme (the loops that
    call log are bound by its latency), the small part ``s (R - f) + k
    log(2)_lo`` rounded once by an FMA, then ``f``, then ``k log(2)_hi``.
    """
    s = f / (2.0 + f)
    z = s * s
    w = z * z
    low = fma(w, fma(z, _LG4, _LG3), fma(z, _LG2, _LG1))
    high = fma(w, _LG7, fma(z, _LG6, _LG5))
    r = z * fma(w * w, high, low)
    return fma(k, _LN2_HI, f + fma(s, r - f, k * _LN2_LO))


@jit(MATH)
def log_normal64(x):
    """``log(x)`` for a positive, normal, finite float64 (anything else: garbage)."""
    k, m = _split(x)
    return _log1p_reduced64(k, m - 1.0)


@jit(MATH)
def log_positive64(x):
    """``log(x)`` for a positive float64, subnormals included; ``log(inf)`` is finite garbage."""
    subnormal = x < _TINY64
    k, m = _split(x * _TWO54 if subnormal else x)
    k = k - 54.0 if subnormal else k
    return _log1p_reduced64(k, m - 1.0)


@jit(MATH)
def log64(x):
    """Natural logarithm of a float64, vectorisable, within 1 ulp."""
    y = log_positive64(x)
    y = y if x < _INF else x  # +inf -> +inf, NaN stays NaN
    return y if x > 0.0 else (-_INF if x == 0.0 else _NAN)


@jit(MATH)
def log1p64(x):
    """``log(1 + x)`` of a float64, vectorisable, accurate for tiny ``x``."""
    u = 1.0 + x
    c = x - (u - 1.0)  # the rounding error of 1 + x (exact for x < 2**53)
    k, m = _split(u)
    f = (m - 1.0) + c * _exp2_int(-min(k, 1022.0))  # 2**-k stays normal
    y = _log1p_reduced64(k, f)
    y = y if x < _INF else x
    y = y if x != 0.0 else x  # keeps the sign of zero
    return y if x > -1.0 else (-_INF if x == -1.0 else _NAN)


# -- float32 -------------------------------------------------------------------

_F32 = np.float32
_LN2_HI32 = _F32(6.9313812256e-01)
_LN2_LO32 = _F32(9.0580006145e-06)
_LG1_32 = _F32(0.66666662693)  # fdlibm logf's coefficients
_LG2_32 = _F32(0.40000972152)
_LG3_32 = _F32(0.28498786688)
_LG4_32 = _F32(0.24279078841)
_HALF32 = _F32(0.5)
_ONE32 = _F32(1.0)
_TWO32 = _F32(2.0)
_ZERO32 = _F32(0.0)
_TWO25_32 = _F32(2.0**25)
_25_32 = _F32(25.0)
_126_32 = _F32(126.0)
_TINY32 = np.finfo(np.float32).tiny
_HUGE32 = np.finfo(np.float32).max
_INF32 = _F32(np.inf)
_NAN32 = _F32(np.nan)
_MONE32 = _F32(-1.0)


@jit(MATH)
def _log1p_reduced32(k, f):
    """:func:`_log1p_reduced64` for float32."""
    s = f / (_TWO32 + f)
    z = s * s
    w = z * z
    r = z * fma(w, fma(z, _LG4_32, _LG3_32), fma(z, _LG2_32, _LG1_32))
    return fma(k, _LN2_HI32, f + fma(s, r - f, k * _LN2_LO32))


@jit(MATH)
def log_normal32(x):
    """``log(x)`` for a positive, normal, finite float32 (anything else: garbage)."""
    k, m = _split(x)
    return _log1p_reduced32(k, m - _ONE32)


@jit(MATH)
def log_positive32(x):
    """``log(x)`` for a positive float32, subnormals included; ``log(inf)`` is finite garbage."""
    subnormal = x < _TINY32
    k, m = _split(x * _TWO25_32 if subnormal else x)
    k = k - _25_32 if subnormal else k
    return _log1p_reduced32(k, m - _ONE32)


@jit(MATH)
def log32(x):
    """Natural logarithm of a float32, vectorisable, within 1 float32 ulp."""
    y = log_positive32(x)
    y = y if x < _INF32 else x
    return y if x > _ZERO32 else (-_INF32 if x == _ZERO32 else _NAN32)


@jit(MATH)
def log1p32(x):
    """``log(1 + x)`` of a float32, vectorisable."""
    u = _ONE32 + x
    c = x - (u - _ONE32)
    k, m = _split(u)
    f = (m - _ONE32) + c * _exp2_int(-min(k, _126_32))
    y = _log1p_reduced32(k, f)
    y = y if x < _INF32 else x
    y = y if x != _ZERO32 else x
    return y if x > _MONE32 else (-_INF32 if x == _MONE32 else _NAN32)


# -- log of a ratio ---------------------------------------------------------------

# Chebyshev fits (mpmath.chebyfit) of (2 atanh(s)/s - 2) / z, z = s*s in [0, 0.04]: degree 7
# for float64 (error below 2^-60 of the log), degree 3 for float32.
_LR64 = tuple(float.fromhex(c) for c in (
    "0x1.5555555555555p-1", "0x1.9999999999f17p-2", "0x1.24924923de6edp-2",
    "0x1.c71c72df580fcp-3", "0x1.745cac43cc003p-3", "0x1.3b29d0452d426p-3",
    "0x1.0e8c55b42945fp-3", "0x1.169c38cc826bep-3"))
_LR32 = tuple(_F32(float.fromhex(c)) for c in (
    "0x1.555556p-1", "0x1.999a6ap-2", "0x1.242ce0p-2", "0x1.e6587ap-3"))
# bits of the smallest q log_ratio takes (2^-1021, 2^-125), and the span of q's bits above it
# (up to 2^1022, 2^126, exclusive)
_RATIO_Q = {
    types.float64: (0x0020000000000000, 0x7FD0000000000000 - 1 - 0x0020000000000000),
    types.float32: (0x01000000, 0x7E800000 - 1 - 0x01000000),
}


@intrinsic
def _ratio_split(typingctx, p, q):
    """``(k, p 2**-k)``: ``k`` (as a float) the integer nearest to the difference of the bit
    patterns in units of the exponent field, so that ``p 2**-k / q`` lies in ``[2/3, 3/2]``."""
    if p not in _LAYOUT or p != q:
        return None
    width, shift = _layout(p)[:2]

    def codegen(context, builder, signature, args):
        ity = ir.IntType(width)
        bp, bq = (builder.bitcast(v, ity) for v in args)
        k = builder.ashr(builder.add(builder.sub(bp, bq), ity(1 << (shift - 1))), ity(shift))
        scaled = builder.sub(bp, builder.shl(k, ity(shift)))
        fty = context.get_value_type(p)
        return context.make_tuple(builder, signature.return_type,
                                  [builder.sitofp(k, fty), builder.bitcast(scaled, fty)])

    return types.UniTuple(p, 2)(p, q), codegen


@intrinsic
def ratio_q_offset(typingctx, q):
    """``bits(q)`` minus the bits of the smallest ``q`` that :func:`log_ratio` takes,
    wrapping: at most the span of its range (``_RATIO_Q``) exactly where ``q`` is in it."""
    if q not in _RATIO_Q:
        return None
    width, start = _layout(q)[0], _RATIO_Q[q][0]

    def codegen(context, builder, signature, args):
        ity = ir.IntType(width)
        return builder.sub(builder.bitcast(args[0], ity), ity(start))

    return _UNSIGNED[q](q), codegen


@jit(MATH)
def _ratio_poly64(z):
    """``R(z)`` of ``2 atanh(s) = 2s + s R(s*s)`` (see ``_LR64``), Estrin's scheme."""
    c = _LR64
    w = z * z
    low = fma(w, fma(z, c[3], c[2]), fma(z, c[1], c[0]))
    high = fma(w, fma(z, c[7], c[6]), fma(z, c[5], c[4]))
    return z * fma(w * w, high, low)


@jit(MATH)
def _ratio_poly32(z):
    """:func:`_ratio_poly64` for float32 (``_LR32``)."""
    c = _LR32
    return z * fma(z * z, fma(z, c[3], c[2]), fma(z, c[1], c[0]))


def _ratio_poly(z):
    """In jitted code, :func:`_ratio_poly64` or :func:`_ratio_poly32` by the type of ``z``."""
    raise NotImplementedError


def _ln2_parts(x):
    """``(hi, lo)``: log(2) in two parts of ``x``'s type, ``k hi`` exact for integral ``k``."""
    raise NotImplementedError


_by_float_type(_ratio_poly, _ratio_poly64, _ratio_poly32)


@overload(_ln2_parts, jit_options=MATH)
def _ln2_parts_overload(x):
    if x == types.float64:
        return lambda x: (_LN2_HI, _LN2_LO)
    if x == types.float32:
        return lambda x: (_LN2_HI32, _LN2_LO32)


@jit(MATH)
def log_ratio(p, q):
    """``log(p / q)`` with one division, float32 or float64: ``k log(2) + 2 atanh(s)``,
    ``s = (p' - q) / (p' + q)`` with ``p' = p 2**-k`` (:func:`_ratio_split`; ``p' - q`` is
    exact). Within 2 ulp for a positive normal ``p`` and ``q`` in ``[2**-1021, 2**1022)``
    (float32: ``[2**-125, 2**126)``); finite for ``p = +0``."""
    k, scaled = _ratio_split(p, q)
    s = (scaled - q) / (scaled + q)
    hi, lo = _ln2_parts(k)
    return fma(k, hi, (s + s) + fma(s, _ratio_poly(s * s), k * lo))


# -- generic entry points --------------------------------------------------------


def log(x):
    """Natural logarithm; in jitted code the vectorisable float32/float64 version."""
    return np.log(x)


def log1p(x):
    """``log(1 + x)``; in jitted code the vectorisable float32/float64 version."""
    return np.log1p(x)


def tiny(x):
    """Smallest positive normal number of ``x``'s type."""
    return np.finfo(np.asarray(x).dtype).tiny


def huge(x):
    """Largest finite number of ``x``'s type."""
    return np.finfo(np.asarray(x).dtype).max


_by_float_type(log, log64, log32)


_by_float_type(log1p, log1p64, log1p32)


@overload(tiny, jit_options=MATH)
def _tiny_overload(x):
    if x == types.float64:
        return lambda x: _TINY64
    if x == types.float32:
        return lambda x: _TINY32


@overload(huge, jit_options=MATH)
def _huge_overload(x):
    if x == types.float64:
        return lambda x: _HUGE64
    if x == types.float32:
        return lambda x: _HUGE32



def half(x):
    """0.5 in ``x``'s type (a Python float literal would promote float32 to float64)."""
    return np.asarray(x).dtype.type(0.5)


@overload(half, jit_options=MATH)
def _half_overload(x):
    if x == types.float64:
        return lambda x: 0.5
    if x == types.float32:
        return lambda x: _HALF32


def like(x, value):
    """``value`` as a number of ``x``'s type (float32 stays float32 in jitted code)."""
    return np.asarray(x).dtype.type(value)


@overload(like, jit_options=MATH)
def _like_overload(x, value):
    if x == types.float64:
        return lambda x, value: np.float64(value)
    if x == types.float32:
        return lambda x, value: np.float32(value)


def log_normal(x):
    """``log(x)`` for positive, normal, finite ``x`` only; cheaper than :func:`log`."""
    return np.log(x)


def log_positive(x):
    """``log(x)`` for positive ``x`` (subnormals too) except inf; no special-value fix-ups."""
    return np.log(x)


_by_float_type(log_normal, log_normal64, log_normal32)


_by_float_type(log_positive, log_positive64, log_positive32)


def _bits_constant(value, fty):
    """The bit pattern of ``value`` as a float of type ``fty``, an unsigned NumPy scalar of
    its width (a constant that jitted code compares with :func:`bits` without promotion)."""
    as_float, as_int = (np.float64, np.uint64) if fty == types.float64 else (np.float32, np.uint32)
    return np.array(value, dtype=as_float).view(as_int)[()]


# per float type: bits of the smallest normal number, of the largest finite one, and the
# span of ratio_q_offset over log_ratio's range of q
_NORMAL_BITS = {
    fty: (_bits_constant(np.finfo(dt).tiny, fty), _bits_constant(np.finfo(dt).max, fty))
    for fty, dt in ((types.float64, np.float64), (types.float32, np.float32))
}
_RATIO_Q_SPAN = {fty: _bits_constant(0, fty).dtype.type(_RATIO_Q[fty][1]) for fty in _RATIO_Q}


def bit_limits(array):
    """Constants of the range checks on bit patterns, for an array of float32 or float64:
    ``(none, all, low_less_one, low, high, span)`` in the unsigned type of :func:`bits`:
    0, all bits set, the smallest normal number's bits less one and as they are, the
    largest finite number's bits, and the span of :func:`ratio_q_offset`."""
    raise NotImplementedError


@overload(bit_limits, inline="always")
def _bit_limits_overload(array):
    fty = getattr(array, "dtype", None)
    if fty in _NORMAL_BITS:
        low, high = _NORMAL_BITS[fty]
        unsigned = low.dtype.type
        limits = (unsigned(0), ~unsigned(0), low - unsigned(1), low, high, _RATIO_Q_SPAN[fty])
        return lambda array: limits

