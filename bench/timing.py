"""Median wall time of a call, after warm-up.

Short calls are looped so that one repeat lasts at least ``min_repeat_s``
(the time per call is the repeat's time divided by the loop count); long
calls get fewer repeats so that one measurement stays within ``budget_s``,
but never fewer than three.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

MIN_REPEATS = 3


@dataclass(frozen=True)
class Timing:
    """Seconds per call: the median and minimum of ``times`` (one per repeat)."""

    median: float
    minimum: float
    times: tuple[float, ...]
    loops: int

    def as_dict(self) -> dict:
        return {
            "median_s": self.median,
            "min_s": self.minimum,
            "times_s": list(self.times),
            "loops": self.loops,
        }


def measure(
    call: Callable[[], object],
    *,
    repeat: int = 7,
    min_repeat_s: float = 0.01,
    budget_s: float = 3.0,
    clock: Callable[[], float] = time.perf_counter,
) -> Timing:
    """Time ``call``, which must already be warm (compiled, caches touched).

    Parameters
    ----------
    call : callable
        A zero-argument function.
    repeat : int
        Number of repeats wanted; fewer (but at least 3) when the call is slow.
    min_repeat_s : float
        Shortest repeat: quick calls are looped to reach it.
    budget_s : float
        Time one measurement may take in all.
    clock : callable
        The clock, in seconds.

    Returns
    -------
    Timing

    Examples
    --------
    >>> timing = measure(lambda: sum(range(100)), repeat=3, min_repeat_s=1e-3)
    >>> timing.median > 0 and len(timing.times) == 3
    True
    """
    start = clock()
    call()
    single = clock() - start
    loops = 1
    if single < min_repeat_s:
        loops = min(1_000_000, max(1, int(min_repeat_s / max(single, 1e-9))))
    per_repeat = single * loops
    repeats = max(MIN_REPEATS, min(repeat, int(budget_s / max(per_repeat, 1e-9))))
    times = []
    for _ in range(repeats):
        start = clock()
        for _ in range(loops):
            call()
        times.append((clock() - start) / loops)
    return Timing(statistics.median(times), min(times), tuple(times), loops)
