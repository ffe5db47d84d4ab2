/*
 * Row kernels for ONE instruction set and ONE (storage, compute) type pair.
 *
 * fd_kernels.h includes this file for every instruction set and, inside
 * each, three times: double/double, float/float and float/double (the last
 * for normalize=True and the elementwise functions on float32, where
 * float64 arithmetic is worth its cost). Macros set by the includer:
 *   FD_T   storage type of p and q      FD_C   type the terms are computed in
 *   FD_NT(name)                         name with ISA and type suffix
 *   FD_C_F64                            1 when FD_C is double
 *   FD_VECTOR_MINMAX                    1 when the instruction set has vector
 *                                       unsigned integer min and max
 *   FD_NATIVE_MINMAX64                  1 when it has them for 64-bit lanes
 *                                       (and a 64-bit arithmetic shift)
 * Terms are always summed in double; KL terms with FD_C double carry per-lane
 * Fast2Sum compensation (KL terms of near-identical rows cancel strongly).
 * No include guard on purpose.
 */

#if FD_C_F64
#define FD_LOG FD_N(fd_log_d)
#define FD_FLAG int64_t
#define FD_UBITS uint64_t
#define FD_SBITS int64_t
#define FD_C_BITS fd_bits_d
#define FD_C_FROM_BITS fd_from_bits_d
#define FD_C_MANT 52                          /* mantissa bits */
#define FD_C_LN2_HI FD_LN2_HI_D
#define FD_C_LN2_LO FD_LN2_LO_D
#define FD_RATIO_POLY FD_N(fd_ratio_poly_d)
#define FD_C_MIN_BITS 0x0010000000000000ULL   /* bits of FD_C_MIN and FD_C_MAX */
#define FD_C_MAX_BITS 0x7fefffffffffffffULL
#define FD_RATIO_Q_MIN_BITS 0x0020000000000000ULL   /* log_ratio's q: [2^-1021, 2^1022) */
#define FD_RATIO_Q_SPAN (0x7fd0000000000000ULL - 1 - FD_RATIO_Q_MIN_BITS)
#define FD_LOG_NORMAL FD_N(fd_log_normal_d)
#define FD_RESID FD_N(fd_resid_d)
#define FD_FMA_C FD_FMA
#define FD_C_MIN 0x1p-1022
#define FD_C_MAX 1.7976931348623157e308
#define FD_C_INF FD_INF_D
#define FD_C_NAN FD_NAN_D
#if FD_HAVE_FMA
#define FD_RESID_SAFE(r, b) 1
#else
#define FD_RESID_SAFE(r, b) (((r) < 0x1p995) & ((b) < 0x1p995))
#endif
#define FD_KL_BIT_CHECKED FD_NATIVE_MINMAX64
#else
#define FD_LOG FD_N(fd_log_f)
#define FD_FLAG int32_t
#define FD_UBITS uint32_t
#define FD_SBITS int32_t
#define FD_C_BITS fd_bits_f
#define FD_C_FROM_BITS fd_from_bits_f
#define FD_C_MANT 23
#define FD_C_LN2_HI FD_LN2_HI_F
#define FD_C_LN2_LO FD_LN2_LO_F
#define FD_RATIO_POLY FD_N(fd_ratio_poly_f)
#define FD_C_MIN_BITS 0x00800000u
#define FD_C_MAX_BITS 0x7f7fffffu
#define FD_RATIO_Q_MIN_BITS 0x01000000u           /* log_ratio's q: [2^-125, 2^126) */
#define FD_RATIO_Q_SPAN (0x7e800000u - 1 - FD_RATIO_Q_MIN_BITS)
#define FD_LOG_NORMAL FD_N(fd_log_normal_f)
#define FD_RESID FD_N(fd_resid_f)
#define FD_FMA_C FD_FMAF
#define FD_C_MIN 0x1p-126f
#define FD_C_MAX 3.40282347e38f
#define FD_C_INF FD_INF_F
#define FD_C_NAN FD_NAN_F
#define FD_RESID_SAFE(r, b) 1
#define FD_KL_BIT_CHECKED FD_VECTOR_MINMAX
#endif

/* ------------------------------------------------------- per-element terms */

/* scipy.special.entr: -x log x; 0 at 0; -inf below 0; NaN stays NaN. */
FD_INLINE FD_C FD_NT(entr_term)(FD_C x)
{
    const FD_C t = -x * FD_LOG(x);
    return x > 0 ? t : (x == 0 ? (FD_C)0 : (x < 0 ? -FD_C_INF : x));
}

/* -scipy.special.xlogy(p, q): 0 where p == 0 and q is not NaN. */
FD_INLINE FD_C FD_NT(xent_term)(FD_C p, FD_C q)
{
    const FD_C t = -(p * FD_LOG(q));
    return ((p == 0) & (q == q)) ? (FD_C)0 : t;
}

/*
 * log(p / q) with one division instead of two (p / q, then the log's own):
 * p' = p 2^-K, K the integer nearest to the difference of the bit patterns
 * (in units of the exponent field), so that p' / q lies in [2/3, 3/2]; then
 * log(p / q) = K ln2 + 2 atanh(s), s = (p' - q) / (p' + q), where p' - q is
 * exact (Sterbenz) and 2 atanh(s) = 2s + s R(s^2) (FD_RATIO_POLY). Within
 * 2 ulp for p a positive normal number and q in [2^-1021, 2^1022) (float:
 * [2^-125, 2^126); FD_RATIO_Q_MIN_BITS), where p' is normal and p' + q
 * finite; p = +0 gives a finite value (any finite value: the caller
 * multiplies it by p).
 */
FD_INLINE FD_C FD_NT(log_ratio)(FD_C p, FD_C q)
{
    /* unsigned arithmetic: defined for every input, even those the caller rejects */
    const FD_UBITS bp = FD_C_BITS(p);
    const FD_UBITS half = (FD_UBITS)1 << (FD_C_MANT - 1);
    const FD_SBITS k = (FD_SBITS)(bp - FD_C_BITS(q) + half) >> FD_C_MANT;
    const FD_C ps = FD_C_FROM_BITS(bp - ((FD_UBITS)k << FD_C_MANT));
    const FD_C s = (ps - q) / (ps + q);
    const FD_C kc = (FD_C)k;
    const FD_C small = FD_FMA_C(s, FD_RATIO_POLY(s * s), kc * FD_C_LN2_LO);
    return FD_FMA_C(kc, FD_C_LN2_HI, (s + s) + small);
}

/*
 * rel_entr fast path: with r = p/q rounded and e = p - r q exact,
 * p log(p/q) = p log(r) + e up to second order in e/p (relative 2^-106), and
 * log(r) is relatively accurate near r = 1, so nearly equal p and q keep all
 * their digits. Valid for p > 0 with r a finite normal number, and for the
 * p == 0 <= q zeros (0). Every other input (NaN, negatives, q == 0, a ratio
 * that over- or underflows) gives -inf, a value no valid input gives: a
 * mark for kl_exact, found by the block sum turning non-finite, so the loop
 * carries no flag of its own.
 */
FD_INLINE FD_C FD_NT(kl_fast)(FD_C p, FD_C q)
{
    const FD_C r = p / q;
    const FD_C t = FD_FMA_C(p, FD_LOG_NORMAL(r), FD_RESID(p, r, q));
    const int fast = (p > 0) & (r >= FD_C_MIN) & (r <= FD_C_MAX) & FD_RESID_SAFE(r, q);
    return fast ? t : (((p == 0) & (q >= 0)) ? (FD_C)0 : -FD_C_INF);
}

/* rel_entr with every SciPy edge case; scalar, for blocks kl_fast marks. */
static FD_TARGET FD_C FD_NT(kl_exact)(FD_C p, FD_C q)
{
    if (p != p || q != q)
        return FD_C_NAN;
    if (p > 0 && q > 0) {
        const FD_C r = p / q;
        if (r >= FD_C_MIN && r <= FD_C_MAX && FD_RESID_SAFE(r, q))
            return FD_FMA_C(p, FD_LOG_NORMAL(r), FD_RESID(p, r, q));
#if FD_C_F64 && !FD_HAVE_FMA
        /* q too large for Dekker's product: the residual of p and q scaled by
         * 2^-128 (exact), scaled back; log p - log q would cancel near p = q */
        if (r >= FD_C_MIN && r < 0x1p995)
            return FD_FMA_C(p, FD_LOG_NORMAL(r),
                            FD_RESID(p * 0x1p-128, r, q * 0x1p-128) * 0x1p128);
#endif
        return p * (FD_LOG(p) - FD_LOG(q));
    }
    if (p == 0 && q >= 0)
        return 0;
    return FD_C_INF;
}

/*
 * (rel_entr(p, m) + rel_entr(q, m)) / 2, m = (p + q) / 2: the JS term, halved
 * per element like the reference so that sums near the float maximum do not
 * overflow. With S = p + q = s + lo exactly (two-sum) and r = 2p / s,
 * e = 2p - r s exact: p log(2p / S) = p log(r) + (e - r lo) / 2 to second
 * order. r need not be correctly rounded (the residual e carries its error),
 * so the fast form takes r = 2p (1 / s): one division for both halves and t
 * (divisions are the slowest instructions of the loop). Valid (js_fast_ok) for finite
 * p, q >= 0 whose sum is 0 or normal and below half the largest number (so
 * 2p and 2q do not overflow and 1 / s is finite).
 */
FD_INLINE FD_C FD_NT(js_half_term)(FD_C a, FD_C s, FD_C lo, FD_C r)
{
    const FD_C a2 = a + a;
    const FD_C t = (FD_C)0.5 * FD_FMA_C(a, FD_LOG_NORMAL(r), (FD_C)0.5 * (FD_RESID(a2, r, s) - r * lo));
    return a == 0 ? (FD_C)0 : t;
}

/*
 * The halves above cancel by (p + q) / |p - q| when p ~ q. There, with
 * t = (p - q) / (p + q) (p - q exact), the element is
 * (p + q) / 4 * ((1 + t) log1p(t) + (1 - t) log1p(-t))
 * = (p + q) / 4 * sum_k t^2k / (k (2k - 1)), a sum of positive terms; for
 * |t| < 1/4 twelve terms reach double precision and six float precision.
 */
FD_INLINE FD_C FD_NT(js_series)(FD_C t)
{
    const FD_C u = t * t;
#if FD_C_F64
    FD_C acc = FD_FMA_C(u, (FD_C)(1.0 / 276), (FD_C)(1.0 / 231));
    acc = FD_FMA_C(u, acc, (FD_C)(1.0 / 190));
    acc = FD_FMA_C(u, acc, (FD_C)(1.0 / 153));
    acc = FD_FMA_C(u, acc, (FD_C)(1.0 / 120));
    acc = FD_FMA_C(u, acc, (FD_C)(1.0 / 91));
    acc = FD_FMA_C(u, acc, (FD_C)(1.0 / 66));
#else
    FD_C acc = (FD_C)(1.0 / 66);
#endif
    acc = FD_FMA_C(u, acc, (FD_C)(1.0 / 45));
    acc = FD_FMA_C(u, acc, (FD_C)(1.0 / 28));
    acc = FD_FMA_C(u, acc, (FD_C)(1.0 / 15));
    acc = FD_FMA_C(u, acc, (FD_C)(1.0 / 6));
    acc = FD_FMA_C(u, acc, (FD_C)1);
    return u * acc;
}

FD_INLINE int FD_NT(js_near)(FD_C t)
{
    return (t < (FD_C)0.25) & (t > (FD_C)-0.25);
}

FD_INLINE FD_C FD_NT(js_fast)(FD_C p, FD_C q)
{
    const FD_C s = p + q;
    const FD_C inv = (FD_C)1 / s;
    const FD_C bb = s - p;
    const FD_C lo = (p - (s - bb)) + (q - bb);
    const FD_C far = FD_NT(js_half_term)(p, s, lo, (p + p) * inv)
                     + FD_NT(js_half_term)(q, s, lo, (q + q) * inv);
    /* t = (p - q) / s to within the division's rounding: one step of Newton's
     * correction on the product (p - q is exact where t is used, |t| < 1/4) */
    const FD_C t0 = (p - q) * inv;
    const FD_C t = FD_FMA_C(inv, FD_RESID(p - q, t0, s), t0);
    return FD_NT(js_near)(t) ? (FD_C)0.25 * s * FD_NT(js_series)(t) : far;
}

/* Also rejects a ratio 2p / s below the normal range (log_normal needs normal). */
FD_INLINE int FD_NT(js_fast_ok)(FD_C p, FD_C q)
{
    const FD_C s = p + q;
    const FD_C inv = (FD_C)1 / s;    /* the same expressions as js_fast's: computed once */
    const int p_ok = (p == 0) | ((p + p) * inv >= FD_C_MIN);
    const int q_ok = (q == 0) | ((q + q) * inv >= FD_C_MIN);
    return (p >= 0) & (q >= 0) & (s <= (FD_C)0.5 * FD_C_MAX) & ((s >= FD_C_MIN) | (s == 0))
           & FD_RESID_SAFE(s, s) & p_ok & q_ok;
}

/* One half of js_fast, also where 2a / s is subnormal or 0. Needs 0 <= a <= s finite. */
static FD_TARGET FD_C FD_NT(js_half_exact)(FD_C a, FD_C s, FD_C lo)
{
    if (a == 0)
        return 0;
    const FD_C r = (a + a) / s;
    if (r >= FD_C_MIN)
        return FD_NT(js_half_term)(a, s, lo, r);
    return (FD_C)0.5 * (a * ((FD_LOG(a) - FD_LOG(s)) + (FD_C)0.6931471805599453));
}

static FD_TARGET FD_C FD_NT(js_exact)(FD_C p, FD_C q)
{
    if (p != p || q != q)
        return FD_C_NAN;
    if (p < 0 || q < 0)
        return FD_C_INF;
    if (p == FD_C_INF || q == FD_C_INF)
        return FD_C_NAN;            /* as the reference: the log1p argument is NaN */
    FD_C scale = 1;
    if (!((p + q <= (FD_C)0.5 * FD_C_MAX) && FD_RESID_SAFE(p + q, p + q))) {
        /* the terms are homogeneous of degree 1: scale huge inputs down */
        scale = (FD_C)0x1p64;
        p *= (FD_C)0x1p-64;
        q *= (FD_C)0x1p-64;
    }
    const FD_C s = p + q;
    const FD_C t = (p - q) / s;
    if (p > 0 && q > 0 && FD_NT(js_near)(t))
        return scale * ((FD_C)0.25 * s * FD_NT(js_series)(t));
    const FD_C bb = s - p;
    const FD_C lo = (p - (s - bb)) + (q - bb);
    return scale * (FD_NT(js_half_exact)(p, s, lo) + FD_NT(js_half_exact)(q, s, lo));
}

/* Every edge case, scalar: the term of reduction `op`. */
static FD_TARGET FD_C FD_NT(term_exact)(int op, FD_C p, FD_C q)
{
    switch (op) {
    case FD_OP_ENTROPY: return FD_NT(entr_term)(p);
    case FD_OP_CROSS_ENTROPY: return FD_NT(xent_term)(p, q);
    case FD_OP_KL: return FD_NT(kl_exact)(p, q);
    default: return FD_NT(js_exact)(p, q);
    }
}

/* ------------------------------------------------------------- reductions */

/*
 * The term of reduction op for one element (0 where masked, keep == 0) in
 * the vector loops: KL (kl_fast marks what it cannot take with -inf, leaving
 * *ok alone), JS (clears *ok when the element needs more), and entropy and
 * cross-entropy with every value handled by selects (block_map's full = 1).
 * op and masked are compile-time constants after inlining.
 */
FD_INLINE FD_C FD_NT(fast_term)(const int op, const int masked, FD_C x, FD_C y,
                                unsigned char keep, FD_FLAG *ok)
{
    FD_C t;
    if (op == FD_OP_ENTROPY) {
        t = FD_NT(entr_term)(x);
    } else if (op == FD_OP_CROSS_ENTROPY) {
        t = FD_NT(xent_term)(x, y);
    } else if (op == FD_OP_KL) {
        t = FD_NT(kl_fast)(x, y);   /* -inf marks an element for kl_exact */
    } else {
        t = FD_NT(js_fast)(x, y);
        *ok = FD_NT(js_fast_ok)(x, y);
    }
    if (masked) {
        t = keep ? t : (FD_C)0;
        *ok = *ok | !keep;
    }
    return t;
}

/* Elements of FD_T in FD_GROUP_LINES cache lines: block_map's unit of work. */
#define FD_GROUP_T (FD_GROUP_LINES * FD_CACHE_LINE / (int)sizeof(FD_T))

/*
 * Asks for the FD_GROUP_LINES cache lines FD_PREFETCH_AHEAD bytes past a.
 * That address may lie past the end of the array (a prefetch never faults),
 * so it is computed as an integer: pointer arithmetic out of the array would
 * be undefined.
 */
FD_INLINE void FD_NT(prefetch_group)(const FD_T *a)
{
    for (int k = 0; k < FD_GROUP_LINES; k++)
        FD_PREFETCH((const void *)((uintptr_t)a + FD_PREFETCH_AHEAD + k * FD_CACHE_LINE));
}

/*
 * block_map's terms of elements first .. first + count - 1 (count at most
 * FD_GROUP_T), lane j of the checks taking element first + j. Called with
 * count = FD_GROUP_T for whole groups, a constant after inlining, so that the
 * vector loop has no remainder to branch on.
 */
FD_INLINE void FD_NT(map_group)(const int op, const int masked, const int scaled,
                                const int bit_checked, const FD_T *pb, const FD_T *qb,
                                const unsigned char *wb, ptrdiff_t first, ptrdiff_t count,
                                FD_C sp, FD_C sq, FD_C *tb, FD_UBITS lo_ok, FD_FLAG *bad_l,
                                FD_UBITS *hi_l, FD_UBITS *lo_l, FD_UBITS *span_l)
{
    (void)lo_ok;
    FD_PRAGMA_SIMD()
    for (ptrdiff_t j = 0; j < count; j++) {
        const ptrdiff_t i = first + j;
        FD_C x = (FD_C)pb[i], y = (FD_C)qb[i];
        if (scaled) {
            x /= sp;
            y /= sq;
        }
        if (bit_checked) {
            FD_UBITS b_hi, b_lo;   /* the patterns checked from above and from below */
            if (op == FD_OP_ENTROPY) {
                if (masked)
                    x = wb[i] ? x : (FD_C)1;
                b_hi = FD_C_BITS(x);
                b_lo = b_hi - 1;
                tb[i] = -x * FD_LOG_NORMAL(x);
            } else if (op == FD_OP_CROSS_ENTROPY) {
                if (masked) {
                    x = wb[i] ? x : (FD_C)0;
                    y = wb[i] ? y : (FD_C)1;
                }
                b_hi = b_lo = FD_C_BITS(y);
                tb[i] = -(x * FD_LOG_NORMAL(y));
            } else {
                if (masked) {
                    x = wb[i] ? x : (FD_C)1;
                    y = wb[i] ? y : (FD_C)1;
                }
                b_hi = FD_C_BITS(x);
                b_lo = b_hi - 1;
                /* q's range for the log of the ratio, below it wraps to the top */
                const FD_UBITS b_q = FD_C_BITS(y) - FD_RATIO_Q_MIN_BITS;
                span_l[j] = b_q > span_l[j] ? b_q : span_l[j];
                tb[i] = x * FD_NT(log_ratio)(x, y);
            }
#if FD_VECTOR_MINMAX
            hi_l[j] = b_hi > hi_l[j] ? b_hi : hi_l[j];
            lo_l[j] = b_lo < lo_l[j] ? b_lo : lo_l[j];
#else
            bad_l[j] |= (FD_FLAG)((b_hi > FD_C_MAX_BITS) | (b_lo < lo_ok));
#endif
        } else {
            FD_FLAG ok = 1;
            tb[i] = FD_NT(fast_term)(op, masked, x, y, masked ? wb[i] : 1, &ok);
            bad_l[j] |= !ok;
        }
    }
}

/*
 * The terms of one block of m elements into tb (0 where masked). op, masked,
 * scaled and full are compile-time constants after inlining.
 * scaled divides p by sp and q by sq (the row sums; division, not a
 * reciprocal, so that a one-hot row normalises to exactly 1 as in SciPy).
 * full = 0 is the fast path; the return value flags a kept element that
 * needs more (KL: a -inf mark in tb instead). Entropy and cross-entropy take
 * the log without special-value handling there: -x log x and -(p log q) are
 * right for x or q a positive normal number (and -x log x for x = +0, where
 * the log of the bits of 0 is finite), which the loop checks on bit patterns
 * as unsigned integers: negatives, inf and NaN lie above the pattern of the
 * largest number, subnormals and 0 below the smallest normal's. Where the
 * instruction set has vector integer min and max (FD_VECTOR_MINMAX), that is
 * one max and one min per element instead of a flag. Where it has them for
 * its lanes (FD_KL_BIT_CHECKED), KL is checked the same way and takes
 * p log(p / q) by log_ratio (one division, no select): right for p a
 * positive normal number or +0 and q in log_ratio's range, whose offset
 * from the range's start wraps to the top below it. Elsewhere KL takes
 * kl_fast, whose compares and selects cost more on AVX-512 (they go through
 * mask registers) than the whole bit check. A masked element becomes x = 1
 * (entropy), p = 0, q = 1 (cross-entropy) or p = q = 1 (KL): its term is 0.
 * The loop only maps, in FD_C lanes, so float32 terms run at the full float
 * width; the float64 sums are a second loop over tb, which stays in L1.
 * It runs a group of FD_GROUP_LINES cache lines of p at a time (map_group),
 * and on the fast path first asks for the lines FD_PREFETCH_AHEAD bytes
 * ahead of the group (prefetch_group): a few prefetches between the vector
 * instructions, where a whole block's at once arrived late (see
 * FD_PREFETCH_AHEAD). So that the vector loop over a group needs no
 * horizontal reduction, its checks are per lane (hi_l, ...), reduced once at
 * the end.
 */
FD_INLINE FD_FLAG FD_NT(block_map)(const int op, const int masked, const int scaled,
                                   const int full, const FD_T *pb, const FD_T *qb,
                                   const unsigned char *wb, ptrdiff_t m, FD_C sp, FD_C sq,
                                   FD_C *tb)
{
    const int bit_checked = !full && (op == FD_OP_ENTROPY || op == FD_OP_CROSS_ENTROPY
                                      || (op == FD_OP_KL && FD_KL_BIT_CHECKED));
    /* entropy and KL check bits(x) - 1 from below, so that 0 wraps to the top */
    const FD_UBITS lo_ok =
        (op == FD_OP_ENTROPY || op == FD_OP_KL) ? FD_C_MIN_BITS - 1 : FD_C_MIN_BITS;
    /* per lane of a group; flags as wide as FD_C: no lane repacking in the loop */
    FD_FLAG bad_l[FD_GROUP_T];
    FD_UBITS hi_l[FD_GROUP_T], lo_l[FD_GROUP_T], span_l[FD_GROUP_T];
    for (int j = 0; j < FD_GROUP_T; j++) {
        bad_l[j] = 0;
        hi_l[j] = span_l[j] = 0;
        lo_l[j] = ~(FD_UBITS)0;
    }
    const ptrdiff_t whole = m - m % FD_GROUP_T;
    for (ptrdiff_t first = 0; first < whole; first += FD_GROUP_T) {
        if (!full) {
            FD_NT(prefetch_group)(pb + first);
            if (op != FD_OP_ENTROPY)
                FD_NT(prefetch_group)(qb + first);
        }
        FD_NT(map_group)(op, masked, scaled, bit_checked, pb, qb, wb, first, FD_GROUP_T, sp, sq,
                         tb, lo_ok, bad_l, hi_l, lo_l, span_l);
    }
    if (whole < m)
        FD_NT(map_group)(op, masked, scaled, bit_checked, pb, qb, wb, whole, m - whole, sp, sq,
                         tb, lo_ok, bad_l, hi_l, lo_l, span_l);
    FD_FLAG bad = 0;
    for (int j = 0; j < FD_GROUP_T; j++) {
        bad |= bad_l[j];
        if (bit_checked)
            bad |= (hi_l[j] > FD_C_MAX_BITS) | (lo_l[j] < lo_ok)
                   | (op == FD_OP_KL && span_l[j] > FD_RATIO_Q_SPAN);
    }
    return bad;
}

/* One block, one element at a time, every edge case (term_exact): KL and JS. */
static FD_TARGET void FD_NT(block_exact)(int op, const FD_T *pb, const FD_T *qb,
                                         const unsigned char *wb, ptrdiff_t m, int scaled,
                                         FD_C sp, FD_C sq, double *s_out, double *c_out)
{
    double s = 0.0, c = 0.0;
    for (ptrdiff_t i = 0; i < m; i++) {
        if (wb && !wb[i])
            continue;
        FD_C x = (FD_C)pb[i], y = (FD_C)qb[i];
        if (scaled) {
            x /= sp;
            y /= sq;
        }
        fd_neumaier_add(&s, &c, (double)FD_NT(term_exact)(op, x, y));
    }
    *s_out = s;
    *c_out = c;
}

/* Whether the lanes of reduction op carry compensation (see lanes_add). */
FD_INLINE int FD_NT(compensated)(const int op)
{
    return FD_C_F64 && (op == FD_OP_KL);
}

/*
 * tb[0:m] added to the FD_LANES running float64 sums lanes[]: one vector add
 * per FD_LANES / (doubles per vector) terms, with that many independent add
 * chains, and no horizontal sum per block. KL terms of near-identical rows
 * cancel strongly, so with a double compute type (compensate) each lane
 * carries the rounding errors of its adds in comps[] (Fast2Sum: exact
 * whenever the lane's exponent is at least the term's, nearly always past a
 * lane's first terms, and within an ulp of the lane otherwise; half the cost
 * of Knuth's two-sum). The other terms have one sign (JS always, entropy and
 * cross-entropy for probabilities). tb[m:] up to the next multiple of
 * FD_LANES is zeroed (tb holds FD_BLOCK, a multiple of FD_LANES).
 */
FD_INLINE void FD_NT(lanes_add)(const int compensate, FD_C *tb, ptrdiff_t m, double *lanes,
                                double *comps)
{
    const ptrdiff_t padded = (m + FD_LANES - 1) / FD_LANES * FD_LANES;
    for (ptrdiff_t i = m; i < padded; i++)
        tb[i] = 0;
    for (ptrdiff_t i = 0; i < padded; i += FD_LANES) {
        FD_PRAGMA_SIMD()
        for (int k = 0; k < FD_LANES; k++) {
            const double t = (double)tb[i + k];
            if (compensate) {
                const double sum = lanes[k] + t;
                comps[k] += t - (sum - lanes[k]);
                lanes[k] = sum;
            } else {
                lanes[k] += t;
            }
        }
    }
}

/*
 * The sum of the lanes (pairwise; with compensate, each add an exact
 * two-sum whose error joins comps) as (*s, *c); the lanes are reset.
 */
FD_INLINE void FD_NT(lanes_total)(const int compensate, double *lanes, double *comps,
                                  double *s, double *c)
{
    for (int width = FD_LANES / 2; width >= 1; width /= 2) {
        FD_PRAGMA_SIMD()
        for (int k = 0; k < width; k++) {
            const double a = lanes[k], b = lanes[k + width];
            const double sum = a + b;
            if (compensate) {
                const double bb = sum - a;
                comps[k] += comps[k + width] + ((a - (sum - bb)) + (b - bb));
            }
            lanes[k] = sum;
        }
    }
    *s = lanes[0];
    *c = compensate ? comps[0] : 0.0;
    for (int k = 0; k < FD_LANES; k++)
        lanes[k] = comps[k] = 0.0;
}

/*
 * Folds the lanes, which hold the terms of elements first .. end - 1, into
 * (*total, *comp). A kl_fast mark (-inf) makes their sum non-finite (so does
 * a true overflow): those blocks are then summed again element by element.
 */
FD_INLINE void FD_NT(lanes_fold)(const int op, const int scaled, const FD_T *p, const FD_T *q,
                                 const unsigned char *w, ptrdiff_t first, ptrdiff_t end,
                                 FD_C sp, FD_C sq, double *lanes, double *comps,
                                 double *total, double *comp)
{
    double s, c;
    FD_NT(lanes_total)(FD_NT(compensated)(op), lanes, comps, &s, &c);
    if (op == FD_OP_KL && !(s - s == 0)) {
        for (ptrdiff_t b = first; b < end; b += FD_BLOCK) {
            const ptrdiff_t m = (end - b < FD_BLOCK) ? end - b : FD_BLOCK;
            FD_NT(block_exact)(op, p + b, q + b, w ? w + b : 0, m, scaled, sp, sq, &s, &c);
            fd_neumaier_add(total, comp, s);
            *comp += c;
        }
        return;
    }
    fd_neumaier_add(total, comp, s);
    *comp += c;
}

/*
 * Adds the terms of p[0:n] (and q) to acc = {sum, compensation}, block by
 * block. The terms of a block go to running lane sums (lanes_add), folded
 * into acc every FD_LANE_BLOCKS blocks (lanes_fold), so that each lane adds
 * as many terms as a vector accumulator over one block did. A JS block with
 * an element its fast form cannot take is summed element by element.
 */
FD_INLINE void FD_NT(reduce_body)(const int op, const int masked, const int scaled,
                                  const FD_T *p, const FD_T *q, const unsigned char *w,
                                  ptrdiff_t n, FD_C sp, FD_C sq, double *acc)
{
    double total = acc[0], comp = acc[1];
    FD_C tb[FD_BLOCK];
    double lanes[FD_LANES] = {0.0}, comps[FD_LANES] = {0.0};
    ptrdiff_t first = 0;   /* the first element in the lanes */
    int pending = 0;       /* blocks in the lanes */
    if (op == FD_OP_ENTROPY)
        q = p;
    if (!masked)
        w = 0;
    for (ptrdiff_t start = 0; start < n; start += FD_BLOCK) {
        const ptrdiff_t m = (n - start < FD_BLOCK) ? n - start : FD_BLOCK;
        const FD_T *pb = p + start, *qb = q + start;
        const unsigned char *wb = masked ? w + start : 0;
        const int bad = FD_NT(block_map)(op, masked, scaled, 0, pb, qb, wb, m, sp, sq, tb);
        if (bad && op == FD_OP_JS) {
            double s, c;
            FD_NT(block_exact)(op, pb, qb, wb, m, scaled, sp, sq, &s, &c);
            fd_neumaier_add(&total, &comp, s);
            comp += c;
            continue;
        }
        if (bad)   /* entropy, cross-entropy: the terms with every value handled */
            FD_NT(block_map)(op, masked, scaled, 1, pb, qb, wb, m, sp, sq, tb);
        if (pending == 0)
            first = start;
        FD_NT(lanes_add)(FD_NT(compensated)(op), tb, m, lanes, comps);
        if (++pending == FD_LANE_BLOCKS) {
            FD_NT(lanes_fold)(op, scaled, p, q, w, first, start + m, sp, sq, lanes, comps,
                              &total, &comp);
            pending = 0;
        }
    }
    if (pending)
        FD_NT(lanes_fold)(op, scaled, p, q, w, first, n, sp, sq, lanes, comps, &total, &comp);
    acc[0] = total;
    acc[1] = comp;
}

#define FD_DEFINE_REDUCTION(fname, op)                                                        \
    static FD_TARGET void FD_NT(fname)(const void *p, const void *q, const unsigned char *w, \
                                       ptrdiff_t n, int mode, double sp, double sq,           \
                                       double *acc)                                           \
    {                                                                                         \
        const FD_T *pt = (const FD_T *)p, *qt = (const FD_T *)q;                              \
        if (mode == FD_SCALE_DIVIDE) {                                                        \
            if (w)                                                                            \
                FD_NT(reduce_body)(op, 1, 1, pt, qt, w, n, (FD_C)sp, (FD_C)sq, acc);          \
            else                                                                              \
                FD_NT(reduce_body)(op, 0, 1, pt, qt, w, n, (FD_C)sp, (FD_C)sq, acc);          \
        } else {                                                                              \
            if (w)                                                                            \
                FD_NT(reduce_body)(op, 1, 0, pt, qt, w, n, 1, 1, acc);                        \
            else                                                                              \
                FD_NT(reduce_body)(op, 0, 0, pt, qt, w, n, 1, 1, acc);                        \
        }                                                                                     \
    }

FD_DEFINE_REDUCTION(entropy, FD_OP_ENTROPY)
FD_DEFINE_REDUCTION(cross_entropy, FD_OP_CROSS_ENTROPY)
FD_DEFINE_REDUCTION(kl_divergence, FD_OP_KL)
FD_DEFINE_REDUCTION(js_divergence, FD_OP_JS)

/* Row sums for normalize: sums[0:2] for p, sums[2:4] for q (if q), Neumaier. */
FD_INLINE void FD_NT(sums_body)(const int masked, const FD_T *p, const unsigned char *w,
                                ptrdiff_t n, double *acc)
{
    for (ptrdiff_t start = 0; start < n; start += FD_BLOCK) {
        const ptrdiff_t m = (n - start < FD_BLOCK) ? n - start : FD_BLOCK;
        double s = 0.0;
        FD_PRAGMA_SIMD(reduction(+ : s))
        for (ptrdiff_t i = 0; i < m; i++) {
            const double x = (double)p[start + i];
            s += masked ? (w[start + i] ? x : 0.0) : x;
        }
        fd_neumaier_add(&acc[0], &acc[1], s);
    }
}

static FD_TARGET void FD_NT(sums)(const void *p, const void *q, const unsigned char *w,
                                  ptrdiff_t n, double *acc)
{
    if (w) {
        FD_NT(sums_body)(1, (const FD_T *)p, w, n, acc);
        if (q)
            FD_NT(sums_body)(1, (const FD_T *)q, w, n, acc + 2);
    } else {
        FD_NT(sums_body)(0, (const FD_T *)p, w, n, acc);
        if (q)
            FD_NT(sums_body)(0, (const FD_T *)q, w, n, acc + 2);
    }
}

/*
 * The sum of p[0:n], with nothing else to compute: one load and one add per
 * vector, so that the loop waits on memory, not on arithmetic, and its time
 * is the read-bandwidth floor bench compares the kernels with. The lanes add
 * in FD_T (widening float32 to float64 per element slowed the loop by half on
 * an Intel Xeon) over runs of FD_STREAM_RUN elements, each run's lanes then
 * added into a float64 total.
 */
static FD_TARGET double FD_NT(stream_sum)(const void *p, ptrdiff_t n)
{
    const FD_T *pt = (const FD_T *)p;
    const ptrdiff_t whole = n - n % FD_LANES;
    double total = 0.0;
    ptrdiff_t i = 0;
    while (i < whole) {
        const ptrdiff_t end = (whole - i < FD_STREAM_RUN) ? whole : i + FD_STREAM_RUN;
        FD_T lanes[FD_LANES] = {0};
        for (; i < end; i += FD_LANES) {
            FD_PRAGMA_SIMD()
            for (int k = 0; k < FD_LANES; k++)
                lanes[k] += pt[i + k];
        }
        for (int k = 0; k < FD_LANES; k++)
            total += (double)lanes[k];
    }
    for (; i < n; i++)
        total += (double)pt[i];
    return total;
}

/* --------------------------------------------------------------- short rows */

/* Whether tb[0:m] holds a kl_fast mark (-inf). */
FD_INLINE int FD_NT(has_kl_marks)(const FD_C *tb, ptrdiff_t m)
{
    FD_FLAG marked = 0;
    FD_PRAGMA_SIMD(reduction(| : marked))
    for (ptrdiff_t i = 0; i < m; i++)
        marked |= tb[i] == -FD_C_INF;
    return marked != 0;
}

/*
 * Terms of m elements into tb (0 where masked), at full SIMD width across row
 * boundaries; a block with an element the fast KL / JS forms cannot take is
 * redone element by element (term_exact). Each term depends on its element
 * only, so a row gets the same terms wherever it sits in a batch.
 */
FD_INLINE void FD_NT(map_terms)(const int op, const int masked, const FD_T *pb, const FD_T *qb,
                                const unsigned char *wb, ptrdiff_t m, FD_C *tb)
{
    if (FD_NT(block_map)(op, masked, 0, 1, pb, qb, wb, m, 1, 1, tb)
            || (op == FD_OP_KL && FD_NT(has_kl_marks)(tb, m)))
        for (ptrdiff_t i = 0; i < m; i++)
            tb[i] = (masked && !wb[i]) ? (FD_C)0 : FD_NT(term_exact)(op, (FD_C)pb[i], (FD_C)qb[i]);
}

/*
 * Rows of n <= FD_SHORT_N elements. Calling the row kernel once per row costs
 * more than a short row's work and leaves most SIMD lanes idle, so the terms
 * of a group of rows are computed in one vector loop (map_terms) over one
 * contiguous run (the rows themselves when contiguous, else copies), and each
 * row's terms summed in order with two-sum compensation.
 */
FD_INLINE void FD_NT(short_rows_body)(const int op, const int masked, const char *p,
                                      ptrdiff_t ps, const char *q, ptrdiff_t qs,
                                      const unsigned char *w, ptrdiff_t ws, ptrdiff_t rows,
                                      ptrdiff_t n, double *out)
{
    FD_T pb[FD_BLOCK], qb[FD_BLOCK];
    unsigned char wb[FD_BLOCK];
    FD_C tb[FD_BLOCK];
    const ptrdiff_t per_group = FD_BLOCK / n;
    const size_t row_bytes = (size_t)n * sizeof(FD_T);
    for (ptrdiff_t first = 0; first < rows; first += per_group) {
        const ptrdiff_t count = (rows - first < per_group) ? rows - first : per_group;
        const FD_T *pg = (const FD_T *)fd_rows_run(p, ps, row_bytes, first, count, pb);
        const FD_T *qg = (op == FD_OP_ENTROPY)
                             ? pg : (const FD_T *)fd_rows_run(q, qs, row_bytes, first, count, qb);
        const unsigned char *wg =
            masked ? (const unsigned char *)fd_rows_run((const char *)w, ws, (size_t)n, first,
                                                        count, wb)
                   : 0;
        FD_NT(map_terms)(op, masked, pg, qg, wg, count * n, tb);
        for (ptrdiff_t j = 0; j < count; j++) {
            double s = 0.0, c = 0.0;
            for (ptrdiff_t k = 0; k < n; k++)
                fd_two_sum_add(&s, &c, (double)tb[j * n + k]);
            out[first + j] = fd_row_result(op, s, c);
        }
    }
}

#define FD_DEFINE_SHORT_ROWS(fname, op)                                                        \
    static FD_TARGET void FD_NT(fname)(const char *p, ptrdiff_t ps, const char *q,             \
                                       ptrdiff_t qs, const unsigned char *w, ptrdiff_t ws,     \
                                       ptrdiff_t rows, ptrdiff_t n, double *out)               \
    {                                                                                          \
        if (w)                                                                                 \
            FD_NT(short_rows_body)(op, 1, p, ps, q, qs, w, ws, rows, n, out);                  \
        else                                                                                   \
            FD_NT(short_rows_body)(op, 0, p, ps, q, qs, w, ws, rows, n, out);                  \
    }

FD_DEFINE_SHORT_ROWS(entropy_short, FD_OP_ENTROPY)
FD_DEFINE_SHORT_ROWS(cross_entropy_short, FD_OP_CROSS_ENTROPY)
FD_DEFINE_SHORT_ROWS(kl_divergence_short, FD_OP_KL)
FD_DEFINE_SHORT_ROWS(js_divergence_short, FD_OP_JS)

/* ------------------------------------------------------------ elementwise */

/* out may be p or q itself (element for element): every loop reads element
 * i before it writes element i, which `omp simd` keeps true. */
static FD_TARGET void FD_NT(entr_map)(const void *p, const void *q, void *out, ptrdiff_t n)
{
    const FD_T *pt = (const FD_T *)p;
    FD_T *o = (FD_T *)out;
    (void)q;
    FD_PRAGMA_SIMD()
    for (ptrdiff_t i = 0; i < n; i++)
        o[i] = (FD_T)FD_NT(entr_term)((FD_C)pt[i]);
}

static FD_TARGET void FD_NT(rel_entr_map)(const void *p, const void *q, void *out, ptrdiff_t n)
{
    const FD_T *pt = (const FD_T *)p, *qt = (const FD_T *)q;
    FD_T *o = (FD_T *)out;
    FD_C buf[FD_BLOCK];
    for (ptrdiff_t start = 0; start < n; start += FD_BLOCK) {
        const ptrdiff_t m = (n - start < FD_BLOCK) ? n - start : FD_BLOCK;
        FD_PRAGMA_SIMD()
        for (ptrdiff_t i = 0; i < m; i++)
            buf[i] = FD_NT(kl_fast)((FD_C)pt[start + i], (FD_C)qt[start + i]);
        if (FD_NT(has_kl_marks)(buf, m))
            for (ptrdiff_t i = 0; i < m; i++)
                buf[i] = FD_NT(kl_exact)((FD_C)pt[start + i], (FD_C)qt[start + i]);
        FD_PRAGMA_SIMD()
        for (ptrdiff_t i = 0; i < m; i++)
            o[start + i] = (FD_T)buf[i];
    }
}

/* The vector log itself, so that the tests can measure it. */
static FD_TARGET void FD_NT(log_map)(const void *p, const void *q, void *out, ptrdiff_t n)
{
    const FD_T *pt = (const FD_T *)p;
    FD_T *o = (FD_T *)out;
    (void)q;
    FD_PRAGMA_SIMD()
    for (ptrdiff_t i = 0; i < n; i++)
        o[i] = (FD_T)FD_LOG((FD_C)pt[i]);
}

static const fd_kernel_set FD_NT(kernel_set) = {
    {FD_NT(entropy), FD_NT(cross_entropy), FD_NT(kl_divergence), FD_NT(js_divergence)},
    FD_NT(sums),
    {FD_NT(entr_map), FD_NT(rel_entr_map), FD_NT(log_map)},
    {FD_NT(entropy_short), FD_NT(cross_entropy_short), FD_NT(kl_divergence_short),
     FD_NT(js_divergence_short)},
    FD_NT(stream_sum),
};

#undef FD_LOG
#undef FD_FLAG
#undef FD_UBITS
#undef FD_KL_BIT_CHECKED
#undef FD_RATIO_Q_MIN_BITS
#undef FD_RATIO_Q_SPAN
#undef FD_SBITS
#undef FD_C_FROM_BITS
#undef FD_C_MANT
#undef FD_C_LN2_HI
#undef FD_C_LN2_LO
#undef FD_RATIO_POLY
#undef FD_C_BITS
#undef FD_C_MIN_BITS
#undef FD_C_MAX_BITS
#undef FD_LOG_NORMAL
#undef FD_RESID
#undef FD_FMA_C
#undef FD_C_MIN
#undef FD_C_MAX
#undef FD_C_INF
#undef FD_C_NAN
#undef FD_RESID_SAFE
#undef FD_DEFINE_REDUCTION
#undef FD_DEFINE_SHORT_ROWS
#undef FD_GROUP_T
