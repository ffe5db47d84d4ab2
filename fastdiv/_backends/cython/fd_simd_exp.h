/*
 * Vectorisable exp and log1p for ONE instruction set (fastdiv's logit kernels).
 *
 * fd_logits.h includes this file once per instruction set, after fd_kernels.h
 * (which provides fd_bits_d, FD_N, FD_INLINE and the vector log fd_log_d of
 * fd_simd_math.h), with FD_ISA, FD_TARGET, FD_HAVE_FMA and FDL_FMA defined.
 * No include guard on purpose.
 *
 * exp(x), branch-free on bit patterns:
 *   x is clamped to [-1100, 1100] (NaN passes through the comparisons),
 *   k = round(x / ln2) by the 1.5 * 2^52 shifter trick,
 *   r = (x - k ln2_hi) - k ln2_lo with |r| <= ln2 / 2 (ln2_hi has 37
 *   significant bits, so k ln2_hi is exact for |k| < 2^16 and the first
 *   subtraction is exact),
 *   exp(r) = 1 + (r + r^2 P(r)) with P a degree-10 fit of
 *   (exp(r) - 1 - r) / r^2 on [-0.3467, 0.3467] (our own: mpmath.chebyfit,
 *   error below 2^-59),
 *   exp(x) = exp(r) * 2^k1 * 2^k2, k1 = floor(k / 2), k2 = k - k1: both
 *   factors are normal numbers for every clamped x, so overflow gives +inf,
 *   deep underflow 0, and a subnormal result is rounded once.
 * No select is needed for inf (-> inf), -inf (-> 0) or NaN (-> NaN).
 */

/*
 * exp(r) for x = k ln2 + r, with *kb_out = k + 2048, for x already clamped to
 * [-1100, 1100] (or NaN); the callers scale by 2^k. short_poly (a
 * compile-time constant) selects the degree-6 fit, relative error 2^-38, for
 * the float32 kernels, which compute in double and round once to float
 * (2^-24), so the shorter polynomial changes no float32 result beyond that
 * rounding. Both polynomials are evaluated in Estrin's scheme: the loop is
 * bound by the latency of one long Horner chain otherwise.
 */
FD_INLINE double FD_N(fdl_exp_reduced)(double x, const int short_poly, uint64_t *kb_out)
{
    const double shifter = 0x1.8p52 + 2048.0;    /* bits: 0x4338... + 2048 + k */
    const double kd_shifted = FDL_FMA(x, 0x1.71547652b82fep0, shifter);
    *kb_out = fd_bits_d(kd_shifted) - 0x4338000000000000ULL;   /* k + 2048 > 0 */
    const double k = kd_shifted - shifter;
    const double hi = FDL_FMA(-k, 0x1.62e42fefa0000p-1, x);
    const double r = FDL_FMA(-k, 0x1.cf79abc9e3b3ap-40, hi);
    const double r2 = r * r, r4 = r2 * r2;
    if (short_poly) {
        const double a0 = FDL_FMA(r, 0x1.555555675a7dfp-3, 0.5);
        const double a1 = FDL_FMA(r, 0x1.1110c61e50f27p-7, 0x1.5555555c8a024p-5);
        const double a2 = FDL_FMA(r, 0x1.a151a41f36204p-13, 0x1.6c16857b3af8ep-10);
        const double b0 = FDL_FMA(r2, a1, a0);
        const double b1 = FDL_FMA(r2, 0x1.a11341e452c9dp-16, a2);
        return 1.0 + FDL_FMA(r2, FDL_FMA(r4, b1, b0), r);
    }
    const double a0 = FDL_FMA(r, 0x1.5555555555557p-3, 0.5);
    const double a1 = FDL_FMA(r, 0x1.11111111100d3p-7, 0x1.5555555555556p-5);
    const double a2 = FDL_FMA(r, 0x1.a01a01abeccc3p-13, 0x1.6c16c16c162cfp-10);
    const double a3 = FDL_FMA(r, 0x1.71de02225a2f3p-19, 0x1.a01a01a6db488p-16);
    const double a4 = FDL_FMA(r, 0x1.af4e092e1705bp-26, 0x1.27e4db5bb725ap-22);
    const double b0 = FDL_FMA(r2, a1, a0);
    const double b1 = FDL_FMA(r2, a3, a2);
    const double b2 = FDL_FMA(r2, 0x1.1f7315649f2d7p-29, a4);
    const double p = FDL_FMA(r4 * r4, b2, FDL_FMA(r4, b1, b0));
    /* 1 + r + r^2 p with the rounding error of 1 + r carried along (Fast2Sum):
     * only the last addition rounds at the scale of the result */
    const double s = 1.0 + r;
    return s + FDL_FMA(r2, p, (1.0 - s) + r);
}

/* exp(x) for x already clamped to [-1100, 1100] (or NaN): exp(r) times 2^k
 * as two normal factors, so overflow, underflow and subnormals round once. */
FD_INLINE double FD_N(fdl_exp_core)(double x, const int short_poly)
{
    uint64_t kb;
    const double y = FD_N(fdl_exp_reduced)(x, short_poly, &kb);
    /* 2^k1 and 2^k2 as bit patterns: k1 + 1023 = (kb >> 1) - 1, k2 + 1023 = kb - (kb >> 1) - 1 */
    const uint64_t half = kb >> 1;
    const double s1 = fd_from_bits_d((half - 1) << 52);
    const double s2 = fd_from_bits_d((kb - half - 1) << 52);
    return (y * s1) * s2;
}

/* exp(x) for every double x, within 1 ulp. */
FD_INLINE double FD_N(fd_exp_d)(double x)
{
    x = x < -1100.0 ? -1100.0 : x;
    x = x > 1100.0 ? 1100.0 : x;
    return FD_N(fdl_exp_core)(x, 0);
}

/* exp(x) for x <= 0, -inf or NaN (anything else gives garbage): the kernels'
 * exp of z - max, one clamp cheaper. */
FD_INLINE double FD_N(fdl_exp_nonpos_d)(double x)
{
    x = x < -1100.0 ? -1100.0 : x;
    return FD_N(fdl_exp_core)(x, 0);
}

/*
 * The double kernels' exp(z - max), for x <= 0, -inf or NaN: as fd_exp_d
 * for results of 2^-1021 and up, but results below (x < -707.7, far beneath
 * the rounding of any sum that holds the max's exp(0) = 1) are flushed to 0,
 * which lets 2^k be added to the exponent bits directly: four operations
 * fewer per element than the two normal factors of fdl_exp_core.
 */
FD_INLINE double FD_N(fdl_exp_kernel_d)(double x)
{
    const int flush = x < -707.5;
    uint64_t kb;
    /* x = 0 where flushed keeps the bit arithmetic in range */
    const double y = FD_N(fdl_exp_reduced)(flush ? 0.0 : x, 0, &kb);
    const double scaled = fd_from_bits_d(fd_bits_d(y) + ((kb - 2048) << 52));
    return flush ? 0.0 : scaled;
}

/* The same to a relative 2^-38, for the float32 kernels. */
FD_INLINE double FD_N(fdl_exp_nonpos_f32_d)(double x)
{
    x = x < -1100.0 ? -1100.0 : x;
    return FD_N(fdl_exp_core)(x, 1);
}

/*
 * exp(x) in float arithmetic for float x <= 0, -inf or NaN (anything else
 * gives garbage), within 1 float ulp: the exp of the float32 kernels' hot
 * loops (their sums stay in double), twice the lanes of a double exp. Same
 * method as fdl_exp_core: k = round(x / ln2) (ln2_hi has 15 significant bits),
 * exp(r) = 1 + r + r^2 P(r), P a degree-4 fit (mpmath.chebyfit, error below
 * 2^-27 of the result), Fast2Sum for 1 + r, 2^k in two normal factors.
 */
FD_INLINE float FD_N(fdl_expf_nonpos)(float x)
{
    const float shifter = 0x1.8p23f + 256.0f;     /* bits: 0x4b40... + 256 + k */
    x = x < -110.0f ? -110.0f : x;
    const float kd_shifted = FDL_FMAF(x, 0x1.715476p+0f, shifter);
    const uint32_t kb = fd_bits_f(kd_shifted) - 0x4b400000u;         /* k + 256 > 0 */
    const float k = kd_shifted - shifter;
    const float hi = FDL_FMAF(-k, 0x1.62e4p-1f, x);
    const float r = FDL_FMAF(-k, 0x1.7f7d1cp-20f, hi);
    const float r2 = r * r;
    const float a0 = FDL_FMAF(r, 0x1.5554dcp-3f, 0.5f);
    const float a1 = FDL_FMAF(r, 0x1.120b90p-7f, 0x1.55551ap-5f);
    const float p = FDL_FMAF(r2, FDL_FMAF(r2, 0x1.6d112cp-10f, a1), a0);
    const float s = 1.0f + r;
    const float y = s + FDL_FMAF(r2, p, (1.0f - s) + r);
    const uint32_t half = kb >> 1;
    const float s1 = fd_from_bits_f((half - 1) << 23);
    const float s2 = fd_from_bits_f((kb - half - 1) << 23);
    return (y * s1) * s2;
}

/*
 * log1p(u) for every double u: with v = 1 + u rounded, log1p(u) =
 * log(v) + (u - (v - 1)) / v to first order in the rounding error of v
 * (exact correction term); special values (u <= -1, inf, NaN) by selects.
 */
FD_INLINE double FD_N(fdl_log1p_d)(double u)
{
    const double v = 1.0 + u;
    const double corr = (u - (v - 1.0)) / v;
    const double y = FD_N(fd_log_d)(v) + corr;
    /* v = 0 (u = -1): -inf; v = inf: inf; v < 0 or NaN: NaN, all from log(v) */
    return ((v > 0.0) & (v < FD_INF_D)) ? y : FD_N(fd_log_d)(v);
}
