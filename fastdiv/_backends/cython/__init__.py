"""The Cython + OpenMP backend: fused SIMD row kernels, parallel over rows.

The compiled module ``_kernels`` implements the kernel contract of
:mod:`fastdiv._backends`; this package re-exports it. The SIMD path
(``baseline``, ``avx2``, ``avx512``) is chosen at the first kernel call: the
best the CPU runs, or the one named by ``$FASTDIV_SIMD``.
"""

from fastdiv._backends.cython._kernels import (
    cross_entropy,
    entr,
    entropy,
    info,
    js_divergence,
    kl_divergence,
    narrow_to_float32,
    rel_entr,
    stream_sum,
)
from fastdiv._backends.cython._logit_kernels import (
    binary_cross_entropy,
    binary_cross_entropy_with_logits,
    kl_divergence_logits,
    log_softmax,
    logsumexp,
    softmax,
    softmax_cross_entropy,
    softmax_cross_entropy_probs,
)

# The reductions round float32 results into a float32 ``out`` themselves (see
# ``fastdiv._backends``): each row's float64 sum is stored once, inf beyond range.
FLOAT32_RESULTS = True

__all__ = [
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
    "cross_entropy",
    "entr",
    "entropy",
    "info",
    "js_divergence",
    "kl_divergence",
    "kl_divergence_logits",
    "log_softmax",
    "logsumexp",
    "narrow_to_float32",
    "rel_entr",
    "softmax",
    "softmax_cross_entropy",
    "softmax_cross_entropy_probs",
    "stream_sum",
]
