"""The read-bandwidth floor: the time a plain parallel sum needs to stream an
op's input arrays once, measured on the same arrays in the same run.

No kernel that reads its inputs can beat this time by much, so ``time /
floor`` says how far a kernel is from the machine's limit. Each array is cut
into one contiguous piece per thread (so one long row uses every thread too).
The sum is the Cython extension's ``stream_sum`` (one SIMD load and add per
vector, OpenMP threads) when the extension is built, else NumPy's pairwise
sum over the pieces in a thread pool (NumPy releases the GIL while it sums).
NumPy's sum can fall short of memory speed: on an Intel Xeon VM it streamed
two 256 MiB arrays in 31-39 ms where ``stream_sum`` took 18-20 ms, which
would make kernels look faster than the memory allows. Small arrays are
summed on one thread, as the kernels do. (A Numba ``prange`` sum was tried
first: it ran 4-5x slower than NumPy's sums.)
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from bench.timing import Timing, measure

try:
    from fastdiv._backends.cython import stream_sum as _stream_sum
except ImportError:  # no compiled extension: NumPy's sum
    _stream_sum = None

#: Arrays smaller than this are summed on one thread, as the kernels do: a
#: parallel launch would measure the thread pool's wake-up, not bandwidth.
SERIAL_MAX = 1 << 17

#: The dtypes ``stream_sum`` takes; others go to NumPy.
_STREAMED = (np.dtype(np.float32), np.dtype(np.float64))


def method() -> str:
    """What the floor's sum runs on: the extension's loop, or NumPy's sum.

    Examples
    --------
    >>> method() in ("stream_sum", "numpy")
    True
    """
    return "numpy" if _stream_sum is None else "stream_sum"


def _flat(a: np.ndarray) -> np.ndarray:
    return a.reshape(-1) if a.flags.c_contiguous else np.ascontiguousarray(a).reshape(-1)


class Floor:
    """Streams arrays once with ``threads`` threads; :meth:`time` measures it.

    Parameters
    ----------
    threads : int
        Threads for the parallel sum (the same count the kernels get).

    Examples
    --------
    >>> floor = Floor(threads=2)
    >>> a = np.ones((4, 1000))
    >>> float(floor.stream([a, a]))
    8000.0
    """

    def __init__(self, threads: int):
        self.threads = threads
        self._pool = ThreadPoolExecutor(threads)

    def stream(self, arrays: Sequence[np.ndarray]) -> float:
        """Sum every element of ``arrays``, the largest ones in one piece per thread."""
        flat = [_flat(a) for a in arrays]
        largest = max(a.size for a in flat)
        big = [a for a in flat if a.size == largest and a.dtype.kind == "f"]
        rest = [a for a in flat if not any(a is b for b in big)]
        total = sum(float(a.sum()) for a in rest)
        threads = 1 if largest < SERIAL_MAX else self.threads
        if _stream_sum is not None and all(a.dtype in _STREAMED for a in big):
            return total + _stream_sum(big, threads)
        if threads == 1:
            return total + sum(float(a.sum()) for a in big)
        pieces = [piece for a in big for piece in np.array_split(a, self.threads)]
        return total + float(sum(self._pool.map(np.sum, pieces)))

    def time(self, arrays: Sequence[np.ndarray], **measure_options) -> Timing:
        """Median time to stream ``arrays`` once (after one warm-up pass)."""
        self.stream(arrays)
        return measure(lambda: self.stream(arrays), **measure_options)

    def close(self) -> None:
        self._pool.shutdown()
