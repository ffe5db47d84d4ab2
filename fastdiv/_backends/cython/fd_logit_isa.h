/*
 * The logit-space row kernels of ONE instruction set: the vector exp, then
 * fd_logit_rows.h for double and for float. fd_logits.h includes this file
 * once per instruction set with FD_ISA, FD_TARGET, FDL_FMA and FDL_FMAF
 * defined, and undefines them afterwards. No include guard on purpose.
 */
#include "fd_simd_exp.h"

#define FDL_T double
#define FDL_TS f64
#define FDL_T_IS_DOUBLE 1
#include "fd_logit_rows.h"
#undef FDL_T
#undef FDL_TS
#undef FDL_T_IS_DOUBLE

#define FDL_T float
#define FDL_TS f32
#define FDL_T_IS_DOUBLE 0
#include "fd_logit_rows.h"
#undef FDL_T
#undef FDL_TS
#undef FDL_T_IS_DOUBLE

#undef FD_ISA
#undef FD_TARGET
#undef FDL_FMA
#undef FDL_FMAF
