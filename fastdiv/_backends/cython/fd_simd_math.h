/*
 * Vectorisable log and exact residuals for ONE instruction set.
 *
 * fd_kernels.h includes this file once per instruction set, with
 *   FD_ISA       name suffix (baseline, avx2, avx512),
 *   FD_INLINE    "static inline, always inlined, compiled for FD_ISA",
 *   FD_HAVE_FMA  1 when the target has a fused multiply-add instruction.
 * No include guard on purpose.
 *
 * log(x) is written on bit patterns with selects instead of branches so that
 * GCC vectorises the loops that call it. Method (Tang / fdlibm style):
 *   x = 2^k * m with m in [sqrt(2)/2, sqrt(2)),  f = m - 1 (exact),
 *   s = f / (2 + f),  log(1 + f) = 2 atanh(s) = f - s (f - R(s^2)), R a
 *   polynomial; log(x) = k ln2_hi + (f + (s (R - f) + k ln2_lo)), where with
 *   FMA the small part s (R - f) + k ln2_lo is rounded once (without FMA,
 *   fdlibm's order: f - (hfsq - s (hfsq + R)), hfsq = f^2 / 2).
 * The coefficients of R are our own Chebyshev fits (mpmath.chebyfit of
 * (2 atanh(s)/s - 2) / z, z = s^2 in [0, (3 - 2 sqrt 2)^2]): degree 6 in z
 * for double (error of R below 2^-57), degree 3 for float (below 2^-35).
 * Subnormals are scaled into the normal range first; 0, negatives, inf and
 * NaN are fixed up by selects at the end.
 */

/* ---------------------------------------------------------------- double */

/* log(xs) - k_shift * ln2 for xs a positive normal finite number. */
FD_INLINE double FD_N(fd_log_core_d)(double xs, double k_shift)
{
    const uint64_t ix = fd_bits_d(xs);
    /* k + 1024, where ix - bits(sqrt(2)/2) = k * 2^52 + (mantissa offset) */
    const uint64_t kb = (ix - 0x3fe6a09e667f3bcdULL + 0x4000000000000000ULL) >> 52;
    const double m = fd_from_bits_d(ix - (kb << 52) + 0x4000000000000000ULL);
    /* kb < 2^51, so adding it to the bits of 1.5 * 2^52 adds it to the value */
    const double k = fd_from_bits_d(0x4338000000000000ULL + kb) - (0x1.8p52 + 1024.0) - k_shift;

    const double f = m - 1.0;
    const double s = f / (2.0 + f);
    const double z = s * s;
    const double w = z * z;
    /* R(z) = z (c1 + c2 z + ... + c7 z^6) in Estrin's scheme (short dependency
     * chains: the loops calling log are bound by its latency) */
    const double c12 = FD_FMA(z, 0x1.99999999952e2p-2, 0x1.5555555555558p-1);
    const double c34 = FD_FMA(z, 0x1.c71c62e5800a1p-3, 0x1.2492492df148dp-2);
    const double c56 = FD_FMA(z, 0x1.39fe606542ddep-3, 0x1.7462b4ab2ef6bp-3);
    const double c567 = FD_FMA(w, 0x1.2b584aae78a57p-3, c56);
    const double r = z * FD_FMA(w * w, c567, FD_FMA(w, c34, c12));
#if FD_HAVE_FMA
    /* log(1 + f) = f - s (f - R), the small part rounded once by the FMA */
    return FD_FMA(k, FD_LN2_HI_D, f + FD_FMA(s, r - f, k * FD_LN2_LO_D));
#else
    const double hfsq = 0.5 * f * f;
    return k * FD_LN2_HI_D - ((hfsq - (s * (hfsq + r) + k * FD_LN2_LO_D)) - f);
#endif
}

/*
 * R(z), z = s^2, of 2 atanh(s) = 2s + s R(z) on z in [0, 0.04]: the
 * polynomial of the one-division log of a ratio (fd_simd_kernels.h,
 * log_ratio), our own Chebyshev fit (mpmath.chebyfit of (2 atanh(s)/s - 2) / z),
 * degree 7 in z for double (error below 2^-60 of the log), degree 3 for float.
 */
FD_INLINE double FD_N(fd_ratio_poly_d)(double z)
{
    const double w = z * z;
    const double c01 = FD_FMA(z, 0x1.9999999999f17p-2, 0x1.5555555555555p-1);
    const double c23 = FD_FMA(z, 0x1.c71c72df580fcp-3, 0x1.24924923de6edp-2);
    const double c45 = FD_FMA(z, 0x1.3b29d0452d426p-3, 0x1.745cac43cc003p-3);
    const double c67 = FD_FMA(z, 0x1.169c38cc826bep-3, 0x1.0e8c55b42945fp-3);
    return z * FD_FMA(w * w, FD_FMA(w, c67, c45), FD_FMA(w, c23, c01));
}

/* log(x) for x a positive normal finite number; anything else gives garbage. */
FD_INLINE double FD_N(fd_log_normal_d)(double x)
{
    return FD_N(fd_log_core_d)(x, 0.0);
}

/* log(x) for every x: subnormals scaled first, special values by selects. */
FD_INLINE double FD_N(fd_log_d)(double x)
{
    const int tiny = x < 0x1p-1022;               /* also 0 and negatives */
    const double y = FD_N(fd_log_core_d)(tiny ? x * 0x1p54 : x, tiny ? 54.0 : 0.0);
    const int regular = (x > 0.0) & (x < FD_INF_D);
    const double special = (x == 0.0) ? -FD_INF_D : ((x < 0.0) ? FD_NAN_D : x);
    return regular ? y : special;
}

/* a - r * b, exact whenever the true residual is representable (no over- or underflow). */
FD_INLINE double FD_N(fd_resid_d)(double a, double r, double b)
{
#if FD_HAVE_FMA
    return __builtin_fma(-r, b, a);
#else
    /* Dekker's exact product; needs |r|, |b| < 2^995 (see FD_RESID_SAFE_D). */
    const double split = 134217729.0;            /* 2^27 + 1 */
    double t = r * split;
    const double rh = t - (t - r), rl = r - rh;
    t = b * split;
    const double bh = t - (t - b), bl = b - bh;
    const double h = r * b;
    const double l = ((rh * bh - h) + rh * bl + rl * bh) + rl * bl;
    return (a - h) - l;
#endif
}

/* ----------------------------------------------------------------- float */

FD_INLINE float FD_N(fd_log_core_f)(float xs, float k_shift)
{
    const uint32_t ix = fd_bits_f(xs);
    const uint32_t kb = (ix - 0x3f3504f3u + 0x40000000u) >> 23;      /* k + 128 */
    const float m = fd_from_bits_f(ix - (kb << 23) + 0x40000000u);
    const float k = (float)(int32_t)kb - 128.0f - k_shift;

    const float f = m - 1.0f;
    const float s = f / (2.0f + f);
    const float z = s * s;
    const float w = z * z;
    /* R(z) = z (c1 + c2 z + c3 z^2 + c4 z^3), Estrin's scheme */
    const float r = z * FD_FMAF(w, FD_FMAF(z, 0x1.ddced8p-3f, 0x1.245c44p-2f),
                                FD_FMAF(z, 0x1.9999ecp-2f, 0x1.555556p-1f));
#if FD_HAVE_FMA
    return FD_FMAF(k, FD_LN2_HI_F, f + FD_FMAF(s, r - f, k * FD_LN2_LO_F));
#else
    const float hfsq = 0.5f * f * f;
    return k * FD_LN2_HI_F - ((hfsq - (s * (hfsq + r) + k * FD_LN2_LO_F)) - f);
#endif
}

FD_INLINE float FD_N(fd_ratio_poly_f)(float z)
{
    return z * FD_FMAF(z * z, FD_FMAF(z, 0x1.e6587ap-3f, 0x1.242ce0p-2f),
                       FD_FMAF(z, 0x1.999a6ap-2f, 0x1.555556p-1f));
}

FD_INLINE float FD_N(fd_log_normal_f)(float x)
{
    return FD_N(fd_log_core_f)(x, 0.0f);
}

FD_INLINE float FD_N(fd_log_f)(float x)
{
    const int tiny = x < 0x1p-126f;
    const float y = FD_N(fd_log_core_f)(tiny ? x * 0x1p25f : x, tiny ? 25.0f : 0.0f);
    const int regular = (x > 0.0f) & (x < FD_INF_F);
    const float special = (x == 0.0f) ? -FD_INF_F : ((x < 0.0f) ? FD_NAN_F : x);
    return regular ? y : special;
}

/* a - r * b exactly (float); without FMA the double product is exact. */
FD_INLINE float FD_N(fd_resid_f)(float a, float r, float b)
{
#if FD_HAVE_FMA
    return __builtin_fmaf(-r, b, a);
#else
    return (float)((double)a - (double)r * (double)b);
#endif
}
