"""``python -m bench``: argument parsing and the main program."""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import fastdiv
from bench import cases, data
from bench.runner import Settings

DEFAULT_OUT = "bench-results"


@dataclass
class Options:
    """Everything ``python -m bench`` was asked to do."""

    settings: Settings
    out: Path
    compare: Path | None
    tolerance: float
    first_call: bool
    plot: bool
    quick: bool


def _csv(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=(
            "Time fastdiv's backends beside SciPy, NumPy, PyTorch and scikit-learn "
            "(those installed) on generated distributions, after checking every "
            "result against fastdiv's reference backend."
        ),
        epilog=(
            f"Sizes: {', '.join(data.PRESETS)} or ROWSxN, with /b for a broadcast "
            f"second operand. Ops: {', '.join(cases.known_ops())}."
        ),
    )
    parser.add_argument("--quick", action="store_true",
                        help="small sizes, few repeats, compiled backends only, no "
                             "first-call measurement: under a minute on two cores")
    parser.add_argument("--ops", type=_csv, metavar="OP,...",
                        help="ops to run (default: every op fastdiv has)")
    parser.add_argument("--dtype", type=_csv, metavar="DTYPE,...",
                        help="float32, float64 or both (default)")
    parser.add_argument("--backend", type=_csv, metavar="NAME,...",
                        help="fastdiv backends (default: every available one; with --quick "
                             "the compiled ones)")
    parser.add_argument("--sizes", type=_csv, metavar="SIZE,...",
                        help=f"default: {','.join(data.DEFAULT_SIZES)}; "
                             f"--quick: {','.join(data.QUICK_SIZES)}")
    parser.add_argument("--threads", type=int, metavar="N",
                        help="threads for fastdiv, PyTorch and the floor "
                             "(default: fastdiv.get_num_threads())")
    parser.add_argument("--repeat", type=int, metavar="N",
                        help="timed repeats per measurement (default 7, --quick 3)")
    parser.add_argument("--out", type=Path, default=Path(DEFAULT_OUT), metavar="DIR",
                        help=f"folder for results.json and speedup.png (default {DEFAULT_OUT}/); "
                             "results.partial.jsonl holds the records of a run cut short")
    parser.add_argument("--compare", type=Path, metavar="OLD.json",
                        help="show time ratios against an earlier run and flag regressions")
    parser.add_argument("--tolerance", type=float, default=0.25, metavar="FRACTION",
                        help="--compare flags a slowdown beyond this fraction (default 0.25)")
    parser.add_argument("--no-peers", action="store_true", help="time fastdiv only")
    parser.add_argument("--first-call", action=argparse.BooleanOptionalAction, default=None,
                        help="measure Numba's first-call time with a cold and a warm cache "
                             "in fresh processes (default: on, off with --quick)")
    parser.add_argument("--no-plot", action="store_true", help="write no PNG")
    return parser


def _default_backends(quick: bool) -> list[str]:
    """Every available backend; with ``--quick`` the compiled ones only, if any
    (the reference backend still checks every result)."""
    available = fastdiv.available_backends()
    compiled = [name for name in available if name != "reference"]
    return compiled if quick and compiled else available


def parse_args(argv: list[str] | None = None) -> Options:
    """Parse the command line into :class:`Options`; exits with a message on bad input.

    Examples
    --------
    >>> options = parse_args(["--quick", "--ops", "kl_divergence", "--dtype", "float32"])
    >>> options.settings.dtypes, options.settings.repeat
    (['float32'], 3)
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        ops = cases.select_ops(args.ops)
        sizes = [data.parse_size(s) for s in (args.sizes or
                 (data.QUICK_SIZES if args.quick else data.DEFAULT_SIZES))]
    except ValueError as error:
        parser.error(str(error))
    if args.ops and not ops:
        parser.error(f"fastdiv has none of the ops {', '.join(args.ops)} yet")
    dtypes = args.dtype or ["float32", "float64"]
    bad = [d for d in dtypes if d not in ("float32", "float64")]
    if bad:
        parser.error(f"unknown dtype(s) {', '.join(bad)}; choose float32, float64")
    backends = args.backend or _default_backends(args.quick)
    bad = [b for b in backends if b not in fastdiv._backends.BACKEND_NAMES]
    if bad:
        parser.error(f"unknown backend(s) {', '.join(bad)}; "
                     f"choose from {', '.join(fastdiv._backends.BACKEND_NAMES)}")
    if args.compare is not None:
        from bench import store

        try:
            store.load(args.compare)
        except (OSError, ValueError) as error:
            parser.error(f"--compare: {error}")
    threads = args.threads if args.threads is not None else fastdiv.get_num_threads()
    repeat = args.repeat if args.repeat is not None else (3 if args.quick else 7)
    if threads < 1 or repeat < 1:
        parser.error("--threads and --repeat must be positive")
    settings = Settings(
        ops=ops,
        dtypes=dtypes,
        sizes=sizes,
        backends=backends,
        threads=threads,
        repeat=repeat,
        min_repeat_s=0.002 if args.quick else 0.02,
        budget_s=0.2 if args.quick else 3.0,
        peers=not args.no_peers,
    )
    return Options(
        settings=settings,
        out=args.out,
        compare=args.compare,
        tolerance=args.tolerance,
        first_call=(not args.quick if args.first_call is None else args.first_call)
        and "numba" in backends,
        plot=not args.no_plot,
        quick=args.quick,
    )


def main(argv: list[str] | None = None) -> int:
    """Run the bench; returns the process exit status (0 unless it could not run)."""
    from bench import compare, firstcall, machine, plot, report, runner, store

    options = parse_args(argv)
    settings = options.settings
    started = time.perf_counter()
    console = report.console()
    planned = runner.plan(settings)
    console.print(report.heading(settings, len(planned)))
    missing = [op.label for op in cases.REGISTRY if not op.available()]
    if missing:
        console.print(f"Not in this fastdiv yet, so not run: {', '.join(missing)}")
    options.out.mkdir(parents=True, exist_ok=True)
    partial = options.out / "results.partial.jsonl"  # survives an interrupted run
    with partial.open("w") as log, report.progress(console, runner.steps(planned)) as advance:
        records = runner.run(settings, planned, on_step=advance,
                             on_case=lambda found: store.append_lines(log, found))
    first_calls = None
    if options.first_call:
        console.print("Numba first-call times (fresh processes, cold then warm cache)...")
        first_calls = firstcall.measure_first_calls(
            [op.label for op in settings.ops], settings.dtypes, settings.threads
        )
    comparison = None
    if options.compare is not None:
        comparison = compare.compare_runs(
            store.load(options.compare)["results"], records, options.tolerance
        )
    elapsed = time.perf_counter() - started
    document = store.build(
        records,
        machine.describe(settings.threads),
        settings={**store.describe_settings(settings), "quick": options.quick,
                  "command": ["python", "-m", "bench", *(sys.argv[1:] if argv is None else argv)]},
        first_calls=first_calls,
        comparison=comparison,
        elapsed_s=elapsed,
    )
    json_path = store.save(document, options.out / "results.json")
    partial.unlink()
    report.print_results(console, document)
    if comparison is not None:
        report.print_comparison(console, comparison, options.tolerance)
    written = [json_path]
    if options.plot:
        png = plot.save(document, options.out / "speedup.png")
        if png is not None:
            written.append(png)
    console.print(f"Done in {elapsed:.1f} s. Wrote {', '.join(str(p) for p in written)}")
    return 0
