"""The read-bandwidth floor: the time a plain parallel sum needs to stream an
op's input arrays once, measured on the same arrays in the same run.

No kernel that reads its inputs can beat this time by much, so ``time /
floor`` says how far a kernel is from the machine's limit. The sum is a Numba
``prange`` loop over fixed chunks of the flattened arrays (so one long row
uses every thread too), compiled once per dtype; without Numba, NumPy sums of
contiguous pieces run in a thread pool (NumPy releases the GIL while it sums).
Small arrays are summed by NumPy on one thread.
"""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from bench.timing import Timing, measure

CHUNK = 1 << 16  # elements per parallel task
#: Arrays smaller than this are summed on one thread, as the kernels do: a
#: parallel launch would measure the thread pool's wake-up, not bandwidth.
SERIAL_MAX = 1 << 17


@functools.cache
def _numba_kernels():
    import numba

    @numba.njit(parallel=True, fastmath={"reassoc"}, cache=True)
    def sum_one(a, chunk):
        count = (a.size + chunk - 1) // chunk
        partial = np.zeros(count)
        for c in numba.prange(count):
            total = 0.0
            for i in range(c * chunk, min(a.size, (c + 1) * chunk)):
                total += a[i]
            partial[c] = total
        return partial.sum()

    @numba.njit(parallel=True, fastmath={"reassoc"}, cache=True)
    def sum_two(a, b, chunk):
        count = (a.size + chunk - 1) // chunk
        partial = np.zeros(count)
        for c in numba.prange(count):
            total = 0.0
            for i in range(c * chunk, min(a.size, (c + 1) * chunk)):
                total += a[i] + b[i]
            partial[c] = total
        return partial.sum()

    return numba, sum_one, sum_two


def _flat(a: np.ndarray) -> np.ndarray:
    return a.reshape(-1) if a.flags.c_contiguous else np.ascontiguousarray(a).reshape(-1)


class Floor:
    """Streams arrays once with ``threads`` threads; :meth:`time` measures it.

    Parameters
    ----------
    threads : int
        Threads for the parallel sum (the same count the kernels get).
    engine : {"auto", "numba", "numpy"}
        ``"auto"`` uses Numba when it is installed.

    Examples
    --------
    >>> floor = Floor(threads=2, engine="numpy")
    >>> a = np.ones((4, 1000))
    >>> float(floor.stream([a, a]))
    8000.0
    """

    def __init__(self, threads: int, engine: str = "auto"):
        if engine == "auto":
            engine = "numba" if importlib.util.find_spec("numba") else "numpy"
        self.engine = engine
        self.threads = threads
        self._pool = ThreadPoolExecutor(threads) if engine == "numpy" else None

    def stream(self, arrays: Sequence[np.ndarray]) -> float:
        """Sum every element of ``arrays``; big arrays of equal size are read together."""
        flat = [_flat(a) for a in arrays]
        largest = max(a.size for a in flat)
        big = [a for a in flat if a.size == largest and a.dtype.kind == "f"]
        rest = [a for a in flat if not any(a is b for b in big)]
        total = sum(float(a.sum()) for a in rest)
        if largest < SERIAL_MAX:
            return total + sum(float(a.sum()) for a in big)
        if self.engine == "numba":
            return total + self._numba_sum(big)
        return total + self._numpy_sum(big)

    def _numba_sum(self, big: list[np.ndarray]) -> float:
        numba, sum_one, sum_two = _numba_kernels()
        numba.set_num_threads(min(self.threads, numba.config.NUMBA_NUM_THREADS))
        total = 0.0
        while len(big) >= 2 and big[0].dtype == big[1].dtype:
            total += sum_two(big[0], big[1], CHUNK)
            big = big[2:]
        for a in big:
            total += sum_one(a, CHUNK)
        return total

    def _numpy_sum(self, big: list[np.ndarray]) -> float:
        pieces = [piece for a in big for piece in np.array_split(a, self.threads)]
        return float(sum(self._pool.map(np.sum, pieces)))

    def time(self, arrays: Sequence[np.ndarray], **measure_options) -> Timing:
        """Median time to stream ``arrays`` once (after one warm-up pass)."""
        self.stream(arrays)
        return measure(lambda: self.stream(arrays), **measure_options)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
