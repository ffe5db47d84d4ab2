"""Every Numba option the backend uses, in one place.

Importing this module imports Numba; only the backend package does that, and
only when the backend is first used.

Environment switches
--------------------
FASTDIV_NUMBA_CACHE
    ``0`` (or ``false``/``no``/``off``) compiles in memory only, without
    reading or writing the on-disk cache. Default: cache on.
NUMBA_CACHE_DIR
    Numba's own switch: where the cache goes. Without it Numba writes next to
    the package (``__pycache__``) and, when that is read-only, falls back to
    the user cache directory (``$XDG_CACHE_HOME/numba`` or ``~/.cache/numba``).
NUMBA_THREADING_LAYER, NUMBA_THREADING_LAYER_PRIORITY
    Numba's own switches; when the user sets neither, the backend prefers the
    thread-safe ``omp`` layer, then ``tbb``, then ``workqueue``.
"""

from __future__ import annotations

import os
import threading

import numba
from numba.core import config as numba_config
from numba.np.ufunc import parallel as numba_parallel

_OFF = {"0", "false", "no", "off"}

#: Whether compiled kernels are cached on disk.
CACHE = os.environ.get("FASTDIV_NUMBA_CACHE", "1").strip().lower() not in _OFF

# Fast-math flags that cannot turn a NaN or inf into anything else: ``contract``
# lets LLVM fuse a*b+c into one FMA; ``reassoc`` lets it split a sum into SIMD
# accumulators. Never 'nnan'/'ninf' (nor fastmath=True, which includes them):
# the kernels must see NaN and inf. Per-element math gets ``contract`` only,
# because reassociation would undo its carefully ordered error terms.
SUM_FASTMATH = {"contract", "reassoc"}
MATH_FASTMATH = {"contract"}

#: Options of the per-element math and term functions (inlined into kernels).
MATH = dict(nogil=True, cache=CACHE, error_model="numpy", fastmath=MATH_FASTMATH)
#: Options of the per-element term functions: inlined by Numba itself, because
#: LLVM's inliner gives up on them and a call in the loop blocks SIMD.
TERM = dict(MATH, inline="always")
#: Options of serial helpers that sum terms (block sums, row sums).
SUM = dict(nogil=True, cache=CACHE, error_model="numpy", fastmath=SUM_FASTMATH)
#: Options of the entry kernels: parallel over rows or row chunks.
KERNEL = dict(SUM, parallel=True)

#: Elements below which a call stays on the calling thread: a parallel launch
#: costs microseconds, more than the whole work of a small batch.
SERIAL_BELOW = 1 << 16
#: Elements of one chunk when a long row is split across threads.
CHUNK = 1 << 14
#: Elements summed with plain SIMD accumulators before a compensated add
#: (log-sum-exp and the other logit kernels).
BLOCK = 1 << 10
#: The same for the divergence kernels, whose blocks also go through a buffer
#: of terms: a block costs a fixed ~100 ns (calls, slices, checks), which
#: 4096 elements amortise (in cache, float32 terms ran 10-25% faster than at
#: 1024); the float64 buffer (32 KiB) stays in L1 or L2.
TERM_BLOCK = 1 << 12
#: Contiguous rows of at most this many elements (and any rows shorter than
#: TERM_BLOCK in a small batch) go to the short-row kernel, which computes the
#: terms of many rows in one SIMD loop, in groups of about SHORT_GROUP
#: elements of whole rows per work item.
SHORT_ROW = 64
SHORT_GROUP = 1 << 14
#: The term loops run in groups of this many 64-byte cache lines of their
#: input, and ask for each group's lines this many bytes ahead of it (see
#: ``_codegen.prefetch_group``). Measured on a 2-core Intel Xeon (AVX-512):
#: one prefetch per line spread between the groups' arithmetic, not a burst.
#: Two lines (LLVM unrolls a group's loop fully: two float64 vectors): in
#: cache, float32 terms ran ~10% faster than with four lines and float64 the
#: same; with one line LLVM did not vectorise the float64 loop at all.
GROUP_LINES = 2
PREFETCH_AHEAD = 2048

_LAYER_PRIORITY = ["omp", "tbb", "workqueue"]
_THREAD_SAFE_LAYERS = {"omp", "tbb"}
_launch_lock = threading.Lock()


def prefer_thread_safe_layer() -> None:
    """Ask Numba for ``omp``, then ``tbb``, then ``workqueue``, unless the user chose.

    Must run before the first parallel kernel of the process; it changes nothing
    once Numba's thread pool is running.
    """
    if numba_parallel._is_initialized:
        return
    if "NUMBA_THREADING_LAYER" in os.environ or "NUMBA_THREADING_LAYER_PRIORITY" in os.environ:
        return
    numba_config.THREADING_LAYER_PRIORITY = list(_LAYER_PRIORITY)


def threading_layer() -> str:
    """The threading layer in use, starting Numba's thread pool if needed."""
    numba_parallel._launch_threads()
    return numba.threading_layer()


def max_threads() -> int:
    """The most threads a kernel may use (Numba's ``NUMBA_NUM_THREADS``)."""
    return numba_config.NUMBA_NUM_THREADS


def launch_guard():
    """A lock when the threading layer cannot take concurrent launches, else a no-op.

    ``workqueue`` aborts the process when two Python threads launch parallel
    kernels at once; ``omp`` and ``tbb`` are safe.
    """
    if threading_layer() in _THREAD_SAFE_LAYERS:
        return _NO_LOCK
    return _launch_lock


class _NoLock:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


_NO_LOCK = _NoLock()
