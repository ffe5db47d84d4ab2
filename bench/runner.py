"""Runs every case: gate, memory, timing, floor; returns one record per candidate.

A case is an op on one dtype and one size. Its candidates are the chosen
fastdiv backends and the op's installed peers. Each candidate, in turn:

1. is called once on the full batch and its sampled rows are checked against
   the reference backend (this call is also the warm-up: Numba compiles here);
   a mismatch or an exception makes the record ``FAILED`` and nothing is timed;
2. is called once more under the memory probe (a second warm-up), and its
   loop and repeat counts are chosen.

Then the candidates that passed and the read-bandwidth floor on the same
arrays are timed round-robin (:func:`bench.timing.measure_interleaved`), and
speed-ups against the op's SciPy baseline are filled in.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

import fastdiv
from bench import gate
from bench.cases import Op, Peer
from bench.data import InputCache, Size
from bench.floor import Floor
from bench.memory import peak_extra_bytes
from bench.timing import Plan, calibrate, measure_interleaved

#: The reference backend is timed only up to this many elements (it is slow
#: and builds full temporaries); above it, it still serves as the gate.
REFERENCE_TIMING_MAX_ELEMENTS = 2**18

OK, FAILED, SKIPPED = "ok", "FAILED", "skipped"


@dataclass
class Settings:
    """What to run and how long to measure. ``cli.parse_args`` builds one."""

    ops: list[Op]
    dtypes: list[str]
    sizes: list[Size]
    backends: list[str]
    threads: int
    repeat: int = 7
    min_repeat_s: float = 0.01
    budget_s: float = 3.0
    peers: bool = True


@dataclass(frozen=True)
class Candidate:
    """Something to time on a case: a fastdiv backend or a peer."""

    name: str
    kind: str  # "fastdiv" or "peer"
    library: str  # the backend name, or the peer's library
    make: Callable[[Sequence[np.ndarray]], Callable[[], object]]
    mean: bool = False

    @contextlib.contextmanager
    def active(self) -> Iterator[None]:
        """Select this candidate's backend (for fastdiv) for the enclosed calls."""
        if self.kind != "fastdiv":
            yield
            return
        previous = fastdiv.get_backend()
        fastdiv.set_backend(self.library)
        try:
            yield
        finally:
            fastdiv.set_backend(previous)


def candidates(
    op: Op, backends: Sequence[str], threads: int, peers: bool = True, n: int | None = None
) -> list[Candidate]:
    """The fastdiv backends, then the installed peers that handle rows of length ``n``."""
    found = [Candidate(f"fastdiv[{name}]", "fastdiv", name, op.make) for name in backends]
    if peers:
        found += [
            _peer_candidate(peer, threads)
            for peer in op.available_peers()
            if n is None or peer.handles(n)
        ]
    return found


def _peer_candidate(peer: Peer, threads: int) -> Candidate:
    return Candidate(
        peer.name, "peer", peer.library, lambda arrays: peer.make(arrays, threads), peer.mean
    )


@dataclass
class Case:
    """One op on one dtype and size, with its candidates."""

    op: Op
    dtype: str
    size: Size
    candidates: list[Candidate] = field(default_factory=list)


def plan(settings: Settings) -> list[Case]:
    """Every case the settings ask for, in run order (dtype, size, op)."""
    cases = []
    for dtype in settings.dtypes:
        for size in settings.sizes:
            if dtype not in size.dtypes:
                continue
            for op in settings.ops:
                if op.supports(size):
                    found = candidates(
                        op, settings.backends, settings.threads, settings.peers, size.n
                    )
                    cases.append(Case(op, dtype, size, found))
    return cases


def _record(case: Case, candidate: Candidate, arrays) -> dict:
    read = int(sum(a.nbytes for a in arrays))
    return {
        "op": case.op.label,
        "dtype": case.dtype,
        "size": case.size.name,
        "shape": case.size.spec,
        "rows": case.size.rows,
        "n": case.size.n,
        "broadcast": case.size.broadcast,
        "impl": candidate.name,
        "kind": candidate.kind,
        "library": candidate.library,
        "status": None,
        "detail": "",
        "bytes_read": read,
        "elementwise": case.op.elementwise,
    }


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}".splitlines()[0][:200]


@dataclass
class Prepared:
    """A candidate after the gate: its record, and for one that passed, the
    call to time and how (``plan``)."""

    candidate: Candidate
    record: dict
    call: Callable[[], object] | None = None
    plan: Plan | None = None


def prepare_candidate(
    case: Case, candidate: Candidate, arrays, by_row, sample_rows, expected, settings: Settings
) -> Prepared:
    """Gate, memory probe and timing plan of one candidate; never raises.

    Parameters
    ----------
    case : Case
    candidate : Candidate
    arrays : list of ndarray
        The full inputs; ``by_row`` says which are indexed by row.
    sample_rows : ndarray
        The rows the gate checks; ``expected`` is the reference on them
        (a list of outputs), or an exception if the reference failed.
    settings : Settings

    Returns
    -------
    Prepared
        ``record["status"]`` is ``"FAILED"`` (with ``detail``) or
        ``"skipped"``, or still None with ``call`` and ``plan`` set when the
        candidate is to be timed. ``first_call_s`` is the gate call's time
        (Numba compiles there unless its cache is warm).
    """
    record = _record(case, candidate, arrays)
    prepared = Prepared(candidate, record)
    if (
        candidate.kind == "fastdiv"
        and candidate.library == "reference"
        and case.size.elements > REFERENCE_TIMING_MAX_ELEMENTS
    ):
        record.update(status=SKIPPED, detail="reference is timed on small sizes only")
        return prepared
    if isinstance(expected, BaseException):
        record.update(status=FAILED, detail=f"no reference result: {_describe(expected)}")
        return prepared
    try:
        with candidate.active():
            call = candidate.make(arrays)
            started = time.perf_counter()
            if candidate.mean:
                sample = gate.take_rows(arrays, by_row, sample_rows)
                verdict = gate.check_mean(candidate.make(sample)(), expected, case.dtype)
            else:
                verdict = gate.check_rows(call(), expected, sample_rows, case.dtype)
            record["first_call_s"] = time.perf_counter() - started
            record["gate_error"] = verdict.error
            if not verdict.ok:
                record.update(status=FAILED, detail=verdict.detail)
                return prepared
            started = time.perf_counter()
            record["peak_bytes"] = peak_extra_bytes(call)
            prepared.plan = calibrate(
                call,
                repeat=settings.repeat,
                min_repeat_s=settings.min_repeat_s,
                budget_s=settings.budget_s,
                estimate_s=time.perf_counter() - started,
            )
            prepared.call = call
    except Exception as error:  # a broken backend or peer is reported, never fatal
        record.update(status=FAILED, detail=_describe(error))
    return prepared


def time_case(prepared: Sequence[Prepared], floor_call, settings: Settings) -> float | None:
    """Time the gated candidates and the floor round-robin; fills the records.

    Returns
    -------
    float or None
        The floor's median time (None if the floor failed).
    """
    timed = [p for p in prepared if p.call is not None]
    floor_calls, floor_plans = [], []
    try:
        floor_call()  # warm-up (compiles the floor kernel for this dtype once)
        floor_plans.append(calibrate(
            floor_call, repeat=settings.repeat, min_repeat_s=settings.min_repeat_s,
            budget_s=settings.budget_s,
        ))
        floor_calls.append(floor_call)
    except Exception:  # no floor: ratios to it are left out, the rest goes on
        pass
    timings = measure_interleaved(
        [p.call for p in timed] + floor_calls,
        [p.plan for p in timed] + floor_plans,
        contexts=[p.candidate.active for p in timed] + [contextlib.nullcontext] * len(floor_calls),
    )
    for p, timing in zip(timed, timings):
        if isinstance(timing, Exception):
            p.record.update(status=FAILED, detail=f"while timed: {_describe(timing)}")
            continue
        p.record.update(timing.as_dict(), status=OK)
        p.record["bytes_per_s"] = p.record["bytes_read"] / timing.median
    floor_timing = timings[len(timed):]
    if not floor_timing or isinstance(floor_timing[0], Exception):
        return None
    return floor_timing[0].median


def fill_ratios(records: list[dict], baseline: str, floor_s: float | None) -> None:
    """Add ``baseline``, ``floor_s``, and for timed records ``speedup`` (the
    baseline's median time over the record's) and ``floor_ratio`` (the
    record's median time over the floor), in place."""
    base = next((r for r in records if r["impl"] == baseline and r["status"] == OK), None)
    for record in records:
        record["baseline"] = baseline
        record["floor_s"] = floor_s
        if record["status"] != OK:
            continue
        record["speedup"] = base["median_s"] / record["median_s"] if base else None
        record["floor_ratio"] = record["median_s"] / floor_s if floor_s else None


def run(
    settings: Settings,
    cases: Sequence[Case] | None = None,
    on_step: Callable[[str], None] | None = None,
    on_case: Callable[[list[dict]], None] | None = None,
) -> list[dict]:
    """Run ``cases`` (default: :func:`plan`), calling ``on_step`` before each
    step and ``on_case`` with the records of each finished case.

    Returns
    -------
    list of dict
        One record per case and candidate, see :func:`prepare_candidate`,
        with, for the timed ones, ``median_s``, ``min_s``, ``times_s``,
        ``loops``, ``bytes_per_s``, ``speedup`` (against the op's SciPy
        baseline) and ``floor_ratio``; and ``floor_s`` for every record.
    """
    cases = plan(settings) if cases is None else cases
    on_step = on_step or (lambda description: None)
    fastdiv.set_num_threads(settings.threads)
    records: list[dict] = []
    floor = Floor(settings.threads)
    try:
        inputs = None
        for case in cases:
            if inputs is None or (inputs.size, inputs.dtype) != (case.size, np.dtype(case.dtype)):
                inputs = None  # free the previous size's arrays first
                inputs = InputCache(case.size, case.dtype)
            arrays, by_row = inputs.operands(case.op.inputs)
            sample_rows = gate.sample_rows(case.size.rows, case.size.n)
            try:
                expected = gate.reference_outputs(
                    case.op, gate.take_rows(arrays, by_row, sample_rows)
                )
            except Exception as error:
                expected = error
            title = f"{case.op.label} {case.dtype} {case.size.spec}"
            prepared = []
            for candidate in case.candidates:
                on_step(f"{title} {candidate.name}")
                prepared.append(prepare_candidate(
                    case, candidate, arrays, by_row, sample_rows, expected, settings
                ))
            on_step(f"{title} timing")
            floor_s = time_case(prepared, lambda: floor.stream(arrays), settings)
            found = [p.record for p in prepared]
            fill_ratios(found, case.op.baseline, floor_s)
            records += found
            if on_case is not None:
                on_case(found)
    finally:
        floor.close()
    return records


def steps(cases: Sequence[Case]) -> int:
    """How many times :func:`run` calls ``on_step`` for ``cases``."""
    return sum(len(case.candidates) + 1 for case in cases)
