/*
 * fastdiv row kernels: one C source compiled for several instruction sets,
 * chosen at run time.
 *
 * fd_simd_math.h (log, exact residuals) and fd_simd_kernels.h (the row
 * loops) are included once per instruction set below, under a function
 * attribute that compiles them for that set, with name suffixes; within
 * each set fd_simd_kernels.h is included once per type pair, so float and
 * double come from the same source. fd_table(isa) hands _kernels.pyx the
 * function pointers of one set; fd_cpu_supports(isa) says whether this CPU
 * can run it.
 *
 * Build flags this file relies on (setup.py): -O3 -fno-math-errno
 * -fno-trapping-math -ffp-contract=off and -fopenmp-simd (or -fopenmp), and
 * never -ffast-math (it would make every NaN test constant-false).
 */
#ifndef FASTDIV_FD_KERNELS_H
#define FASTDIV_FD_KERNELS_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

enum { FD_OP_ENTROPY = 0, FD_OP_CROSS_ENTROPY = 1, FD_OP_KL = 2, FD_OP_JS = 3 };
enum { FD_MAP_ENTR = 0, FD_MAP_REL_ENTR = 1, FD_MAP_LOG = 2 };
enum { FD_SCALE_NONE = 0, FD_SCALE_DIVIDE = 1 };
enum { FD_ISA_BASELINE = 0, FD_ISA_AVX2 = 1, FD_ISA_AVX512 = 2, FD_ISA_COUNT = 3 };

/* Elements per block: the unit of the KL / JS edge-case check. */
#define FD_BLOCK 256
/* Running float64 sums of a row's terms (a multiple of every vector width, a
 * divisor of FD_BLOCK), folded into the row's sum every FD_LANE_BLOCKS blocks. */
#define FD_LANES 32
#define FD_LANE_BLOCKS 4
/* How far ahead the reductions prefetch their inputs, in bytes, and in groups
 * of how many cache lines (block_map asks for a group's lines before it
 * computes the group). Measured on an Intel Xeon (Emerald Rapids) VM, two
 * threads, inputs from memory, medians of 4 interleaved C-harness runs,
 * before (entropy alone prefetched, a block of 256 elements at a time) ->
 * after: float32 2048 x 32768 entropy 22.3 -> 20.1 ms, cross-entropy 29.8 ->
 * 23.5, KL 30.8 -> 25.0; float64 1024 x 32768 entropy 26.2 -> 21.2,
 * cross-entropy 29.1 -> 23.0, KL 32.0 -> 22.3. In cache, unchanged. A whole
 * block's lines at once made float64 two-stream reductions slower (64 lines,
 * four times a core's line fill buffers); groups of one line cost float32
 * about 10% in cache; 4096 bytes ahead was no better. */
#ifndef FD_PREFETCH_AHEAD
#define FD_PREFETCH_AHEAD 2048
#endif
#ifndef FD_GROUP_LINES
#define FD_GROUP_LINES 4
#endif
/* Elements per run of stream_sum's lanes (a multiple of FD_LANES): each lane
 * adds 128 of them in the storage type before they join a float64 total. */
#define FD_STREAM_RUN 4096
/* Bytes of one cache line (x86-64 and most ARM cores): one prefetch each. */
#define FD_CACHE_LINE 64

/* Reduction over one row segment: adds to acc = {sum, compensation}.
 * mode FD_SCALE_DIVIDE (normalize): p and q are divided by sp and sq. */
typedef void (*fd_reduce_fn)(const void *p, const void *q, const unsigned char *w,
                             ptrdiff_t n, int mode, double sp, double sq, double *acc);
/* Row-segment sums for normalize: acc[0:2] for p, acc[2:4] for q (q may be NULL). */
typedef void (*fd_sums_fn)(const void *p, const void *q, const unsigned char *w,
                           ptrdiff_t n, double *acc);
/* The plain sum of p[0:n] (no terms): what bench times as the read-bandwidth floor. */
typedef double (*fd_stream_fn)(const void *p, ptrdiff_t n);
/* Elementwise over one row segment; q is ignored by entr. */
typedef void (*fd_map_fn)(const void *p, const void *q, void *out, ptrdiff_t n);

/* Rows no longer than FD_SHORT_N elements (see fd_simd_kernels.h's short_rows):
 * out[i] = the reduction of row i, rows * n elements at any row strides
 * (bytes; q and w may be NULL). */
#define FD_SHORT_N 16
typedef void (*fd_short_fn)(const char *p, ptrdiff_t ps, const char *q, ptrdiff_t qs,
                            const unsigned char *w, ptrdiff_t ws, ptrdiff_t rows,
                            ptrdiff_t n, double *out);

typedef struct {
    fd_reduce_fn reduce[4];   /* indexed by FD_OP_* */
    fd_sums_fn sums;
    fd_map_fn map[3];         /* indexed by FD_MAP_*; FD_MAP_LOG is for tests */
    fd_short_fn short_rows[4];   /* indexed by FD_OP_* */
    fd_stream_fn stream_sum;
} fd_kernel_set;

typedef struct {
    const char *name;
    const fd_kernel_set *f64;        /* double in, double math */
    const fd_kernel_set *f32;        /* float in, float math (sums in double) */
    const fd_kernel_set *f32_wide;   /* float in, double math */
} fd_isa_table;

/* ------------------------------------------------------------ shared bits */

#if defined(__GNUC__) || defined(__clang__)
#define FD_ALWAYS_INLINE __attribute__((always_inline)) inline
#define FD_DO_PRAGMA(x) _Pragma(#x)
#define FD_PRAGMA_SIMD(clauses) FD_DO_PRAGMA(omp simd clauses)
#define FD_INF_D __builtin_inf()
#define FD_NAN_D __builtin_nan("")
#define FD_INF_F __builtin_inff()
#define FD_NAN_F __builtin_nanf("")
#define FD_PREFETCH(address) __builtin_prefetch((address), 0, 3)
#else
#define FD_ALWAYS_INLINE __forceinline
#define FD_PRAGMA_SIMD(clauses)
#define FD_INF_D ((double)INFINITY)
#define FD_NAN_D ((double)NAN)
#define FD_INF_F ((float)INFINITY)
#define FD_NAN_F ((float)NAN)
#define __builtin_fma fma
#define __builtin_fmaf fmaf
#define FD_PREFETCH(address) ((void)(address))   /* a hint: leaving it out is correct */
#endif

#ifndef FD_X86_DISPATCH   /* -DFD_X86_DISPATCH=0 builds the portable path only */
#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
#define FD_X86_DISPATCH 1
#else
#define FD_X86_DISPATCH 0
#endif
#endif

static inline uint64_t fd_bits_d(double x) { uint64_t u; memcpy(&u, &x, sizeof u); return u; }
static inline double fd_from_bits_d(uint64_t u) { double x; memcpy(&x, &u, sizeof x); return x; }
static inline uint32_t fd_bits_f(float x) { uint32_t u; memcpy(&u, &x, sizeof u); return u; }
static inline float fd_from_bits_f(uint32_t u) { float x; memcpy(&x, &u, sizeof x); return x; }

/* log(2) in two parts for k log(2) in the logs: the low bits of hi are zero, so k hi is exact */
#define FD_LN2_HI_D 0x1.62e42fefa3000p-1    /* low 12 bits zero */
#define FD_LN2_LO_D 2.8235290563031577e-13
#define FD_LN2_HI_F 0x1.62e4p-1f            /* low 9 bits zero */
#define FD_LN2_LO_F 0x1.7f7d1cp-20f

/* Scalar Neumaier step: (s, c) += x. */
static inline void fd_neumaier_add(double *s, double *c, double x)
{
    const double t = *s + x;
    *c += (fabs(*s) >= fabs(x)) ? ((*s - t) + x) : ((x - t) + *s);
    *s = t;
}

/* Knuth's two-sum step: (s, c) += x with the rounding error of s + x exactly
 * in c. Branch-free, unlike fd_neumaier_add, whose magnitude test GCC may
 * compile to a branch that random data mispredicts: for hot scalar loops. */
static inline void fd_two_sum_add(double *s, double *c, double x)
{
    const double sum = *s + x;
    const double bb = sum - *s;
    *c += (*s - (sum - bb)) + (x - bb);
    *s = sum;
}

/* A row's result from its Neumaier pair (sum, compensation). An infinite sum
 * makes the compensation NaN (inf - inf), so it is then left out; JS is
 * clipped below at 0 (rounding only: NaN fails the test and stays). */
static inline double fd_row_result(int op, double total, double compensation)
{
    if (total - total == 0.0)
        total += compensation;
    if (op == FD_OP_JS && total < 0.0)
        total = 0.0;
    return total;
}

/* Rows first .. first + count - 1 of src (row stride `stride` bytes, rows of
 * row_bytes) as one contiguous run: in place when the rows are contiguous,
 * else copied into buf. */
static inline const void *fd_rows_run(const char *src, ptrdiff_t stride, size_t row_bytes,
                                      ptrdiff_t first, ptrdiff_t count, void *buf)
{
    if (stride == (ptrdiff_t)row_bytes)
        return src + first * stride;
    for (ptrdiff_t j = 0; j < count; j++)
        memcpy((char *)buf + j * row_bytes, src + (first + j) * stride, row_bytes);
    return buf;
}

#define FD_CAT2(a, b) a##_##b
#define FD_CAT(a, b) FD_CAT2(a, b)
#define FD_N(name) FD_CAT(name, FD_ISA)
#define FD_NT(name) FD_CAT(FD_N(name), FD_TS)

/* Instantiates fd_simd_math.h and the three type pairs of fd_simd_kernels.h
 * for the instruction set named by FD_ISA / FD_TARGET / FD_HAVE_FMA. */
#define FD_INLINE static FD_ALWAYS_INLINE FD_TARGET

/* ------------------------------------------------ baseline (every machine) */

#define FD_ISA baseline
#define FD_TARGET
#if defined(__FP_FAST_FMA) && defined(__FP_FAST_FMAF)
#define FD_HAVE_FMA 1
#else
#define FD_HAVE_FMA 0
#endif
#define FD_VECTOR_MINMAX 0
#define FD_NATIVE_MINMAX64 0
#include "fd_simd_isa.h"
#undef FD_ISA
#undef FD_TARGET
#undef FD_HAVE_FMA
#undef FD_VECTOR_MINMAX
#undef FD_NATIVE_MINMAX64

#if FD_X86_DISPATCH
#ifdef __clang__
#define FD_WIDE_VECTORS
#else
#define FD_WIDE_VECTORS ",prefer-vector-width=512"
#endif

/* ------------------------------------------------------------- AVX2 + FMA */

#define FD_ISA avx2
#define FD_TARGET __attribute__((target("avx2,fma,bmi,bmi2")))
#define FD_HAVE_FMA 1
#define FD_VECTOR_MINMAX 1
#define FD_NATIVE_MINMAX64 0
#include "fd_simd_isa.h"
#undef FD_ISA
#undef FD_TARGET
#undef FD_HAVE_FMA
#undef FD_VECTOR_MINMAX
#undef FD_NATIVE_MINMAX64

/* ---------------------------------------------------------------- AVX-512 */

#define FD_ISA avx512
#define FD_TARGET \
    __attribute__((target("avx512f,avx512dq,avx512vl,avx512bw,avx2,fma,bmi,bmi2" FD_WIDE_VECTORS)))
#define FD_HAVE_FMA 1
#define FD_VECTOR_MINMAX 1
#define FD_NATIVE_MINMAX64 1
#include "fd_simd_isa.h"
#undef FD_ISA
#undef FD_TARGET
#undef FD_HAVE_FMA
#undef FD_VECTOR_MINMAX
#undef FD_NATIVE_MINMAX64
#endif /* FD_X86_DISPATCH */

/* ------------------------------------------------------------- dispatch */

static const fd_isa_table fd_tables[FD_ISA_COUNT] = {
    {"baseline", &kernel_set_baseline_f64, &kernel_set_baseline_f32,
     &kernel_set_baseline_f32w},
#if FD_X86_DISPATCH
    {"avx2", &kernel_set_avx2_f64, &kernel_set_avx2_f32, &kernel_set_avx2_f32w},
    {"avx512", &kernel_set_avx512_f64, &kernel_set_avx512_f32, &kernel_set_avx512_f32w},
#endif
};

/* The kernels of instruction set `isa`, or NULL when it was not compiled in. */
static inline const fd_isa_table *fd_table(int isa)
{
    if (isa < 0 || isa >= FD_ISA_COUNT || fd_tables[isa].name == NULL)
        return NULL;
    return &fd_tables[isa];
}

/* Whether this CPU (and OS) can run the kernels of `isa`. */
static inline int fd_cpu_supports(int isa)
{
    if (fd_table(isa) == NULL)
        return 0;
#if FD_X86_DISPATCH
    __builtin_cpu_init();
    if (isa == FD_ISA_AVX2)
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")
               && __builtin_cpu_supports("bmi") && __builtin_cpu_supports("bmi2");
    if (isa == FD_ISA_AVX512)
        return fd_cpu_supports(FD_ISA_AVX2) && __builtin_cpu_supports("avx512f")
               && __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl")
               && __builtin_cpu_supports("avx512bw");
#endif
    return isa == FD_ISA_BASELINE;
}

static inline int fd_openmp_enabled(void)
{
#ifdef _OPENMP
    return 1;
#else
    return 0;
#endif
}

static inline int fd_omp_max_threads(void)
{
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

#endif /* FASTDIV_FD_KERNELS_H */
