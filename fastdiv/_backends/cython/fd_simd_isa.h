/*
 * Everything compiled for ONE instruction set: the math, then the kernels for
 * each (storage, compute) type pair. Included by fd_kernels.h once per set,
 * with FD_ISA, FD_TARGET and FD_HAVE_FMA defined. No include guard on purpose.
 */

#if FD_HAVE_FMA
#define FD_FMA(a, b, c) __builtin_fma((a), (b), (c))
#define FD_FMAF(a, b, c) __builtin_fmaf((a), (b), (c))
#else
#define FD_FMA(a, b, c) ((a) * (b) + (c))
#define FD_FMAF(a, b, c) ((a) * (b) + (c))
#endif

#include "fd_simd_math.h"

#define FD_T double
#define FD_C double
#define FD_C_F64 1
#define FD_TS f64
#include "fd_simd_kernels.h"
#undef FD_T
#undef FD_C
#undef FD_C_F64
#undef FD_TS

#define FD_T float
#define FD_C float
#define FD_C_F64 0
#define FD_TS f32
#include "fd_simd_kernels.h"
#undef FD_T
#undef FD_C
#undef FD_C_F64
#undef FD_TS

#define FD_T float
#define FD_C double
#define FD_C_F64 1
#define FD_TS f32w
#include "fd_simd_kernels.h"
#undef FD_T
#undef FD_C
#undef FD_C_F64
#undef FD_TS

#undef FD_FMA
#undef FD_FMAF
