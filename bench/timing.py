"""Median wall time of calls, after warm-up, interleaved so that calls compared
with each other see the same machine.

Short calls are looped so that one repeat lasts at least ``min_repeat_s``
(the time per call is the repeat's time divided by the loop count; the loop
count comes from the quickest of up to three calls, so one call delayed by a
busy machine does not leave a microsecond call unlooped); long calls get fewer
repeats so that one measurement stays within ``budget_s``, but never fewer
than three.

:func:`measure_interleaved` times several calls round-robin (one repeat of
each, then the next round): when other processes load the machine for a
while, every candidate of a case pays for it alike, so their ratios hold.
A call with fewer repeats than the others (a slow peer) runs in rounds spread
from the first to the last (:func:`rounds`), not in the first rounds only: a
slow spell in the later rounds then reaches its median as it reaches theirs.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

MIN_REPEATS = 3

Clock = Callable[[], float]


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


@dataclass(frozen=True)
class Plan:
    """How to time one call: ``repeats`` repeats of ``loops`` calls each."""

    loops: int
    repeats: int


def calibrate(
    call: Callable[[], object],
    *,
    repeat: int = 7,
    min_repeat_s: float = 0.01,
    budget_s: float = 3.0,
    estimate_s: float | None = None,
    clock: Clock = time.perf_counter,
) -> Plan:
    """Choose loops and repeats for a warm ``call`` (see the module docstring).

    Parameters
    ----------
    call : callable
        A zero-argument function, already warm.
    repeat : int
        Number of repeats wanted; fewer (but at least 3) when the call is slow.
    min_repeat_s : float
        Shortest repeat: quick calls are looped to reach it.
    budget_s : float
        Time one measurement may take in all.
    estimate_s : float, optional
        The time of an earlier warm call; when it is at least
        ``min_repeat_s`` it stands in for the calibration calls.
    clock : callable
        The clock, in seconds.

    Returns
    -------
    Plan

    Examples
    --------
    >>> calibrate(lambda: None, repeat=5, estimate_s=2.0, budget_s=3.0)
    Plan(loops=1, repeats=3)
    """
    single = estimate_s if estimate_s is not None and estimate_s >= min_repeat_s else None
    for _ in range(0 if single is not None else 3):
        start = clock()
        call()
        elapsed = clock() - start
        single = elapsed if single is None else min(single, elapsed)
        if single >= min_repeat_s:
            break
    loops = 1
    if single < min_repeat_s:
        loops = min(1_000_000, max(1, int(min_repeat_s / max(single, 1e-9))))
    per_repeat = single * loops
    repeats = max(MIN_REPEATS, min(repeat, int(budget_s / max(per_repeat, 1e-9))))
    return Plan(loops, repeats)


def _one_repeat(call: Callable[[], object], loops: int, clock: Clock) -> float:
    start = clock()
    for _ in range(loops):
        call()
    return (clock() - start) / loops


def rounds(repeats: int, total: int) -> frozenset[int]:
    """The rounds, numbered from 0, in which a call of ``repeats`` repeats runs among
    ``total`` rounds: the first, the last, and evenly spaced ones between (rounded
    half up).

    Parameters
    ----------
    repeats : int
        The call's repeats, at most ``total``.
    total : int
        The number of rounds.

    Returns
    -------
    frozenset of int

    Examples
    --------
    >>> sorted(rounds(3, 7)), sorted(rounds(7, 7)), sorted(rounds(1, 7))
    ([0, 3, 6], [0, 1, 2, 3, 4, 5, 6], [0])
    """
    if repeats <= 1:
        return frozenset(range(repeats))
    span, gaps = total - 1, repeats - 1
    # i * span / gaps rounded half up, in integers: distinct rounds since span >= gaps
    return frozenset((2 * i * span + gaps) // (2 * gaps) for i in range(repeats))


def measure_interleaved(
    calls: Sequence[Callable[[], object]],
    plans: Sequence[Plan],
    clock: Clock = time.perf_counter,
    contexts: Sequence[Callable[[], contextlib.AbstractContextManager]] | None = None,
) -> list[Timing]:
    """Time ``calls`` round-robin: one repeat of each per round.

    Parameters
    ----------
    calls : sequence of callable
        Warm zero-argument functions.
    plans : sequence of Plan
        One per call (from :func:`calibrate`); a call drops out of the rounds
        once it has its repeats.
    clock : callable
    contexts : sequence of callable, optional
        One per call: a context manager factory entered around each repeat,
        outside the clock (e.g. selecting a fastdiv backend).

    Returns
    -------
    list of Timing or Exception
        One per call, in order; the exception a call raised while it was
        timed, if it raised (it is then left out of later rounds).

    Examples
    --------
    >>> plans = [Plan(loops=10, repeats=3), Plan(loops=1, repeats=5)]
    >>> [len(t.times) for t in measure_interleaved([lambda: 1, lambda: 2], plans)]
    [3, 5]
    """
    contexts = contexts or [contextlib.nullcontext] * len(calls)
    times: list[list[float]] = [[] for _ in calls]
    errors: dict[int, Exception] = {}
    total = max((plan.repeats for plan in plans), default=0)
    schedule = [rounds(plan.repeats, total) for plan in plans]
    for round_ in range(total):
        for index, (call, plan, context) in enumerate(zip(calls, plans, contexts)):
            if round_ in schedule[index] and index not in errors:
                try:
                    with context():
                        times[index].append(_one_repeat(call, plan.loops, clock))
                except Exception as error:  # reported by the caller, the others go on
                    errors[index] = error
    return [
        errors[index] if index in errors
        else Timing(statistics.median(t), min(t), tuple(t), plan.loops)
        for index, (t, plan) in enumerate(zip(times, plans))
    ]


def measure(call: Callable[[], object], *, clock: Clock = time.perf_counter, **options) -> Timing:
    """Time one warm ``call``: :func:`calibrate` (``options``) then its repeats.

    Examples
    --------
    >>> timing = measure(lambda: sum(range(100)), repeat=3, min_repeat_s=1e-3)
    >>> timing.median > 0 and len(timing.times) == 3
    True
    """
    plan = calibrate(call, clock=clock, **options)
    timing = measure_interleaved([call], [plan], clock)[0]
    if isinstance(timing, Exception):
        raise timing
    return timing
