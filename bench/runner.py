"""Runs every case: gate, memory, timing, floor; returns one record per candidate.

A case is an op on one dtype and one size. Its candidates are the chosen
fastdiv backends and the op's installed peers. Each candidate, in turn:

1. is called once on the full batch and its sampled rows are checked against
   the reference backend (this call is also the warm-up: Numba compiles here);
   a mismatch or an exception makes the record ``FAILED`` and nothing is timed;
2. is called once more under the memory probe (a second warm-up);
3. is timed (:func:`bench.timing.measure`).

Then the floor for the case's arrays is measured, and speed-ups against the
op's SciPy baseline are filled in.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

import fastdiv
from bench import gate
from bench.cases import Op, Peer
from bench.data import InputCache, Size
from bench.floor import Floor
from bench.memory import peak_extra_bytes
from bench.timing import measure

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


def candidates(op: Op, backends: Sequence[str], threads: int, peers: bool = True) -> list[Candidate]:
    """The fastdiv backends, then the installed peers, for ``op``."""
    found = [Candidate(f"fastdiv[{name}]", "fastdiv", name, op.make) for name in backends]
    if peers:
        found += [_peer_candidate(peer, threads) for peer in op.available_peers()]
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
                    found = candidates(op, settings.backends, settings.threads, settings.peers)
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
    }


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}".splitlines()[0][:200]


def run_candidate(
    case: Case, candidate: Candidate, arrays, by_row, sample_rows, expected, settings: Settings
) -> dict:
    """Gate, memory and timing of one candidate; never raises.

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
    dict
        The record: ``status`` is ``"ok"`` (with ``median_s`` etc.),
        ``"FAILED"`` (with ``detail``) or ``"skipped"``.
    """
    record = _record(case, candidate, arrays)
    if (
        candidate.kind == "fastdiv"
        and candidate.library == "reference"
        and case.size.elements > REFERENCE_TIMING_MAX_ELEMENTS
    ):
        record.update(status=SKIPPED, detail="reference is timed on small sizes only")
        return record
    if isinstance(expected, BaseException):
        record.update(status=FAILED, detail=f"no reference result: {_describe(expected)}")
        return record
    try:
        with candidate.active():
            call = candidate.make(arrays)
            if candidate.mean:
                sample = gate.take_rows(arrays, by_row, sample_rows)
                verdict = gate.check_mean(candidate.make(sample)(), expected, case.dtype)
            else:
                verdict = gate.check_rows(call(), expected, sample_rows, case.dtype)
            record["gate_error"] = verdict.error
            if not verdict.ok:
                record.update(status=FAILED, detail=verdict.detail)
                return record
            record["peak_bytes"] = peak_extra_bytes(call)
            timing = measure(
                call,
                repeat=settings.repeat,
                min_repeat_s=settings.min_repeat_s,
                budget_s=settings.budget_s,
            )
    except Exception as error:  # a broken backend or peer is reported, never fatal
        record.update(status=FAILED, detail=_describe(error))
        return record
    record.update(timing.as_dict(), status=OK)
    record["bytes_per_s"] = record["bytes_read"] / timing.median
    return record


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
) -> list[dict]:
    """Run ``cases`` (default: :func:`plan`), calling ``on_step`` before each step.

    Returns
    -------
    list of dict
        One record per case and candidate, see :func:`run_candidate`, plus
        ``speedup`` (against the op's SciPy baseline), ``floor_s`` and
        ``floor_ratio``.
    """
    cases = plan(settings) if cases is None else cases
    on_step = on_step or (lambda description: None)
    fastdiv.set_num_threads(settings.threads)
    records: list[dict] = []
    floor = Floor(settings.threads)
    try:
        inputs, floors = None, {}
        for case in cases:
            if inputs is None or (inputs.size, inputs.dtype) != (case.size, np.dtype(case.dtype)):
                inputs, floors = None, {}  # free the previous size's arrays first
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
            found = []
            for candidate in case.candidates:
                on_step(f"{title} {candidate.name}")
                found.append(
                    run_candidate(
                        case, candidate, arrays, by_row, sample_rows, expected, settings
                    )
                )
            on_step(f"{title} floor")
            key = tuple(id(a) for a in arrays)
            if key not in floors:
                floors[key] = floor.time(
                    arrays,
                    repeat=settings.repeat,
                    min_repeat_s=settings.min_repeat_s,
                    budget_s=settings.budget_s,
                ).median
            fill_ratios(found, case.op.baseline, floors[key])
            records += found
    finally:
        floor.close()
    return records


def steps(cases: Sequence[Case]) -> int:
    """How many times :func:`run` calls ``on_step`` for ``cases``."""
    return sum(len(case.candidates) + 1 for case in cases)
