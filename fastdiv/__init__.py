"""fastdiv: fast, accurate entropy, cross-entropy and divergences over batches of distributions."""

from fastdiv._backends import available_backends
from fastdiv._config import (
    get_backend,
    get_num_threads,
    set_backend,
    set_num_threads,
    show_config,
    use_backend,
)
from fastdiv.divergences import (
    cross_entropy,
    entr,
    entropy,
    js_divergence,
    kl_divergence,
    rel_entr,
)
from fastdiv.logits import (
    binary_cross_entropy,
    binary_cross_entropy_with_logits,
    kl_divergence_logits,
    log_softmax,
    logsumexp,
    softmax,
    softmax_cross_entropy,
)

__version__ = "0.1.0.dev0"

__all__ = [
    "available_backends",
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
    "kl_divergence_logits",
    "log_softmax",
    "logsumexp",
    "softmax",
    "softmax_cross_entropy",
    "cross_entropy",
    "entr",
    "entropy",
    "get_backend",
    "get_num_threads",
    "js_divergence",
    "kl_divergence",
    "rel_entr",
    "set_backend",
    "set_num_threads",
    "show_config",
    "use_backend",
]
