"""The read-bandwidth floor: the time a plain parallel sum needs to stream an
op's input arrays once, measured on the same arrays in the same run.

No kernel that reads its inputs can beat this time by much, so ``time /
floor`` says how far a kernel is from the machine's limit. Each array is cut
into one contiguous piece per thread (so one long row uses every thread too)
and NumPy's SIMD pairwise sum streams the pieces in a thread pool (NumPy
releases the GIL while it sums). Small arrays are summed on one thread, as the
kernels do. (A Numba ``prange`` sum was tried first: on this machine it ran
4-5x slower than these NumPy sums, so it overstated the floor.)
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from bench.timing import Timing, measure

#: Arrays smaller than this are summed on one thread, as the kernels do: a
#: parallel launch would measure the thread pool's wake-up, not bandwidth.
SERIAL_MAX = 1 << 17


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
        if largest < SERIAL_MAX or self.threads == 1:
            return total + sum(float(a.sum()) for a in big)
        pieces = [piece for a in big for piece in np.array_split(a, self.threads)]
        return total + float(sum(self._pool.map(np.sum, pieces)))

    def time(self, arrays: Sequence[np.ndarray], **measure_options) -> Timing:
        """Median time to stream ``arrays`` once (after one warm-up pass)."""
        self.stream(arrays)
        return measure(lambda: self.stream(arrays), **measure_options)

    def close(self) -> None:
        self._pool.shutdown()
