/*
 * fastdiv's logit-space row kernels (logsumexp, softmax, cross-entropies),
 * one C source compiled for several instruction sets and chosen at run time,
 * exactly like the divergence kernels of fd_kernels.h, whose shared pieces
 * (bit casts, FD_N naming, FD_INLINE, the per-ISA vector log of
 * fd_simd_math.h) this header reuses.
 *
 * Per instruction set: fd_simd_exp.h (vector exp, log1p), then
 * fd_logit_rows.h for double and for float storage (both compute in
 * double). fdl_table(isa, is_float) hands _logit_kernels.pyx one set of
 * function pointers; whether the CPU runs a set is fd_cpu_supports(isa)'s
 * answer, asked through fastdiv._backends.cython._kernels._simd_paths().
 *
 * Build flags as fd_kernels.h (never -ffast-math: the kernels test for NaN).
 */
#ifndef FASTDIV_FD_LOGITS_H
#define FASTDIV_FD_LOGITS_H

#include "fd_kernels.h"

/* One row per call; n elements, unit stride; w NULL or a uint8 mask. */
typedef struct {
    void (*logsumexp)(const void *a, const void *b, const unsigned char *w, ptrdiff_t n,
                      int want_sign, double *out, double *sign);
    /* logsumexp of a long row in pieces: stats {max, head, tail} per piece,
     * merged by fdl_lse_merge, then the result (the whole row for a non-finite max) */
    void (*lse_stats)(const void *a, const void *b, const unsigned char *w, ptrdiff_t n,
                      double *stats);
    void (*lse_from_stats)(const void *a, const void *b, const unsigned char *w, ptrdiff_t n,
                           const double *stats, int want_sign, double *out, double *sign);
    void (*log_softmax)(const void *z, void *out, ptrdiff_t n);
    void (*softmax)(const void *z, void *out, ptrdiff_t n, double *ebuf);
    void (*softmax_cross_entropy)(const void *z, ptrdiff_t target, double eps,
                                  const unsigned char *w, ptrdiff_t n, double *loss,
                                  void *grad, double *ebuf);
    void (*softmax_cross_entropy_probs)(const void *z, const void *p, double eps,
                                        const unsigned char *w, ptrdiff_t n, double *loss,
                                        void *grad, double *ebuf);
    void (*kl_divergence_logits)(const void *a, const void *b, double temp,
                                 const unsigned char *w, ptrdiff_t n, double *loss,
                                 void *grad, double *ebuf);
    void (*binary_cross_entropy)(const void *p, const void *q, const unsigned char *w,
                                 ptrdiff_t n, double *out);
    void (*binary_cross_entropy_with_logits)(const void *z, const void *t, const void *pw,
                                             const unsigned char *w, ptrdiff_t n, double *out);
    void (*exp_map)(const void *x, void *out, ptrdiff_t n);
} fdl_kernel_set;


static inline int fdl_finite(double x) { return x - x == 0.0; }

/* log(head + tail) for head >= 1 the count of terms at the max: keeps the
 * digits of a sum close to head (log1p of the ratio). */
static inline double fdl_log_sum(double head, double tail)
{
    return log(head) + log1p(tail / head);
}

/* Elements per block of the one-pass log-sum-exp (fd_logit_rows.h, online_lse). */
#define FDL_BLOCK 1024

/* The factor that brings the stored exps of `block` to the row max M. */
static inline double fdl_block_factor(const double *block_max, ptrdiff_t block, double m)
{
    const double mb = block_max[block];
    return mb == m ? 1.0 : (mb == -FD_INF_D ? 0.0 : exp(mb - m));
}

/* logsumexp from the row's max m (finite), head (the weights of the terms at
 * m) and tail (the other weighted exps): the contract's head/tail form. */
static inline void fdl_lse_finish(double m, double head, double tail, int weighted,
                                  double *out, double *sign)
{
    if (!weighted) {            /* head >= 1, tail >= 0 */
        *out = m + fdl_log_sum(head, tail);
        *sign = 1.0;
        return;
    }
    if (head == 0) {
        *out = m + log(fabs(tail));
        *sign = tail > 0 ? 1.0 : (tail < 0 ? -1.0 : (tail == 0 ? 0.0 : tail));
        return;
    }
    const double r = tail / head;
    *out = m + log(fabs(head)) + (r < -1 ? log1p(-r - 2) : log1p(r));
    const double sh = head > 0 ? 1.0 : (head < 0 ? -1.0 : head);
    const double sr = r + 1 > 0 ? 1.0 : (r + 1 < 0 ? -1.0 : (r + 1 == 0 ? 0.0 : r));
    *sign = sh * sr;
}

/* Merges the stats {max, head, tail} of `pieces` consecutive pieces of a row
 * into `merged`: a NaN max wins, then +inf; the pieces below the row max
 * join the tail, scaled by exp(m_piece - max). */
static void fdl_lse_merge(const double *stats, ptrdiff_t pieces, double *merged)
{
    double m = -FD_INF_D, head = 0.0, tail = 0.0;
    int nan = 0;
    for (ptrdiff_t i = 0; i < pieces; i++) {
        const double mi = stats[3 * i];
        nan |= mi != mi;
        m = mi > m ? mi : m;
    }
    if (nan || !fdl_finite(m)) {
        merged[0] = nan ? FD_NAN_D : m;
        merged[1] = merged[2] = 0.0;
        return;
    }
    for (ptrdiff_t i = 0; i < pieces; i++) {
        const double mi = stats[3 * i], hi = stats[3 * i + 1], ti = stats[3 * i + 2];
        if (mi == m) {
            head += hi;
            tail += ti;
        } else if (mi > -FD_INF_D) {
            tail += (hi + ti) * exp(mi - m);
        }
    }
    merged[0] = m;
    merged[1] = head;
    merged[2] = tail;
}

/* ------------------------------------------------ baseline (every machine) */

#define FD_ISA baseline
#define FD_TARGET
#if defined(__FP_FAST_FMA) && defined(__FP_FAST_FMAF)
#define FDL_FMA(a, b, c) __builtin_fma((a), (b), (c))
#define FDL_FMAF(a, b, c) __builtin_fmaf((a), (b), (c))
#else
#define FDL_FMA(a, b, c) ((a) * (b) + (c))
#define FDL_FMAF(a, b, c) ((a) * (b) + (c))
#endif
#include "fd_logit_isa.h"

#if FD_X86_DISPATCH
/* ------------------------------------------------------------- AVX2 + FMA */

#define FD_ISA avx2
#define FD_TARGET __attribute__((target("avx2,fma,bmi,bmi2")))
#define FDL_FMA(a, b, c) __builtin_fma((a), (b), (c))
#define FDL_FMAF(a, b, c) __builtin_fmaf((a), (b), (c))
#include "fd_logit_isa.h"

/* ---------------------------------------------------------------- AVX-512 */

#define FD_ISA avx512
#define FD_TARGET \
    __attribute__((target("avx512f,avx512dq,avx512vl,avx512bw,avx2,fma,bmi,bmi2" FD_WIDE_VECTORS)))
#define FDL_FMA(a, b, c) __builtin_fma((a), (b), (c))
#define FDL_FMAF(a, b, c) __builtin_fmaf((a), (b), (c))
#include "fd_logit_isa.h"
#endif /* FD_X86_DISPATCH */

/* ------------------------------------------------------------- dispatch */

static const fdl_kernel_set *const fdl_tables[FD_ISA_COUNT][2] = {
    {&logit_set_baseline_f64, &logit_set_baseline_f32},
#if FD_X86_DISPATCH
    {&logit_set_avx2_f64, &logit_set_avx2_f32},
    {&logit_set_avx512_f64, &logit_set_avx512_f32},
#endif
};

/* The logit kernels of instruction set `isa` for float (is_float) or double
 * storage, or NULL when that set was not compiled in. */
static const fdl_kernel_set *fdl_table(int isa, int is_float)
{
    if (isa < 0 || isa >= FD_ISA_COUNT)
        return NULL;
    return fdl_tables[isa][is_float ? 1 : 0];
}

#endif /* FASTDIV_FD_LOGITS_H */
