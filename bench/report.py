"""What the terminal shows: a heading, a progress bar, one table per op, the
Numba first-call times and the ``--compare`` ratios.

Uses ``rich`` when it is installed, plain text otherwise.
"""

from __future__ import annotations

import contextlib
import importlib.util
import sys
import time
from collections.abc import Callable, Iterator

import fastdiv

HAVE_RICH = importlib.util.find_spec("rich") is not None

COLUMNS = ("case", "impl", "time", "vs SciPy", "GB/s", "x floor", "peak mem", "status")
_SHORT_DTYPE = {"float32": "f32", "float64": "f64"}


def format_seconds(seconds: float | None) -> str:
    """``1.2 us``, ``35.0 ms``, ``1.40 s``.

    Examples
    --------
    >>> format_seconds(3.5e-6), format_seconds(0.0123), format_seconds(2.0)
    ('3.5 us', '12.3 ms', '2.00 s')
    """
    if seconds is None:
        return "-"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f} us"
    if seconds < 1:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds:.2f} s"


def format_bytes(count: float | None) -> str:
    """``512 B``, ``3.0 KiB``, ``256.0 MiB``, ``1.5 GiB``."""
    if count is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if count < 1024 or unit == "GiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return "-"


def _ratio(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}x"


def table_rows(records: list[dict]) -> list[tuple[str, ...]]:
    """The cells of an op's table, one tuple per record (see :data:`COLUMNS`)."""
    rows = []
    for r in records:
        if r["status"] == "ok":
            status = "ok"
            cells = (
                format_seconds(r["median_s"]),
                _ratio(r.get("speedup")),
                f"{r['bytes_per_s'] / 1e9:.1f}",
                _ratio(r.get("floor_ratio"), 2),
                format_bytes(r.get("peak_bytes")),
            )
        else:
            status = r["status"] + (f": {r['detail']}" if r.get("detail") else "")
            cells = ("-",) * 5
        case = f"{_SHORT_DTYPE.get(r['dtype'], r['dtype'])} {r['shape']}"
        rows.append((case, r["impl"], *cells, status))
    return rows


def by_op(records: list[dict]) -> dict[str, list[dict]]:
    """Records grouped by op (first-seen order), sorted by dtype, then size order."""
    sizes: dict[str, int] = {}
    groups: dict[str, list[dict]] = {}
    for record in records:
        sizes.setdefault(record["shape"], len(sizes))
        groups.setdefault(record["op"], []).append(record)
    for group in groups.values():
        group.sort(key=lambda r: (r["dtype"], sizes[r["shape"]]))
    return groups


class _PlainConsole:
    def print(self, *items) -> None:
        for item in items:
            print(item if isinstance(item, str) else str(item))


def console():
    """A ``rich`` console, or a stand-in that prints plain text."""
    if HAVE_RICH:
        from rich.console import Console

        # markup off: names such as "fastdiv[numba]" are text, not style tags
        terminal = Console(markup=False, highlight=False)
        return terminal if terminal.is_terminal else Console(width=160, markup=False,
                                                             highlight=False)
    return _PlainConsole()


def heading(settings, case_count: int) -> str:
    from bench.machine import cpu_model

    return (
        f"fastdiv {fastdiv.__version__} bench: {case_count} cases, "
        f"backends {', '.join(settings.backends)}, {settings.threads} threads, "
        f"dtypes {', '.join(settings.dtypes)}; CPU: {cpu_model()}"
    )


@contextlib.contextmanager
def progress(console_, total: int) -> Iterator[Callable[[str], None]]:
    """A progress bar; yields ``step(description)``, called before each step.

    Outside a terminal (a CI log, a pipe) it prints a plain line to stderr at
    most every 15 seconds instead.
    """
    if not HAVE_RICH or not getattr(console_, "is_terminal", False):
        yield _plain_progress(total)
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("{task.description:<60}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn())
    with Progress(*columns, console=console_, transient=True) as bar:
        task = bar.add_task("starting", total=total)
        started = [False]

        def step(description: str) -> None:
            if started[0]:
                bar.advance(task)
            started[0] = True
            bar.update(task, description=description[:60])

        yield step
        bar.update(task, completed=total)


def _plain_progress(total: int, every_s: float = 15.0) -> Callable[[str], None]:
    started = time.monotonic()
    state = {"done": 0, "last": started}

    def step(description: str) -> None:
        now = time.monotonic()
        if now - state["last"] >= every_s:
            state["last"] = now
            print(f"[{state['done']}/{total}, {now - started:.0f} s] {description}",
                  file=sys.stderr, flush=True)
        state["done"] += 1

    return step


def _print_table(console_, title: str, columns, rows, right=()) -> None:
    if HAVE_RICH:
        from rich import box
        from rich.table import Table
        from rich.text import Text

        table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD)
        for column in columns:
            table.add_column(column, justify="right" if column in right else "left",
                             no_wrap=column != "status")
        previous = None
        for row in rows:
            group = row[0]
            if previous is not None and group != previous:
                table.add_section()
            previous = group
            style = "red" if "FAILED" in row[-1] else ("dim" if row[-1].startswith("skipped") else None)
            if row[2].startswith("fastdiv") and style is None:
                style = "bold"
            table.add_row(*(Text(cell) for cell in row), style=style)
        console_.print(table)
        return
    widths = [max(len(c), *(len(r[i]) for r in rows)) if rows else len(c)
              for i, c in enumerate(columns)]
    console_.print(title)
    console_.print("  ".join(c.ljust(w) for c, w in zip(columns, widths)))
    for row in rows:
        console_.print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)))
    console_.print("")


def print_results(console_, document: dict) -> None:
    """The tables of a results document: one per op, then the first-call times."""
    right = ("time", "vs SciPy", "GB/s", "x floor", "peak mem")
    for op, records in by_op(document["results"]).items():
        baseline = records[0].get("baseline", "")
        title = f"{op}  (vs SciPy = time of '{baseline}' / time)"
        if records[0].get("elementwise"):
            title += "; elementwise: writes as much as it reads, the floor only reads"
        _print_table(console_, title, COLUMNS, table_rows(records), right)
    print_summary(console_, document["results"])
    first = document.get("first_calls")
    if first:
        print_first_calls(console_, first)
    compile_s: dict[str, float] = {}
    for r in document["results"]:
        if r["kind"] == "fastdiv" and r.get("first_call_s"):
            compile_s[r["impl"]] = compile_s.get(r["impl"], 0.0) + r["first_call_s"]
    if compile_s:
        spent = ", ".join(f"{impl} {seconds:.1f} s" for impl, seconds in compile_s.items())
        console_.print(f"First calls (the gate; Numba compiles there unless cached), "
                       f"never in the timings: {spent}")
    machine = document["machine"]
    simd = ", ".join(f"{k}: {v}" for k, v in machine.get("simd", {}).items() if v) or "-"
    console_.print(f"CPU {machine['cpu']} ({machine['cpus']} CPUs), threads {machine['threads']}, "
                   f"SIMD {simd}, floor summed by {machine.get('floor', 'numpy')}")


def summary_rows(records: list[dict]) -> list[tuple[str, ...]]:
    """Per op and dtype, the fastdiv rows of the largest unbroadcast batch."""
    rows = []
    for op, group in by_op(records).items():
        for dtype in dict.fromkeys(r["dtype"] for r in group):
            candidates = [r for r in group if r["dtype"] == dtype and not r["broadcast"]]
            if not candidates:
                continue
            largest = max(candidates, key=lambda r: r["rows"] * r["n"])["shape"]
            for r in candidates:
                if r["shape"] == largest and r["kind"] == "fastdiv" and r["status"] != "skipped":
                    ok = r["status"] == "ok"
                    rows.append((f"{_SHORT_DTYPE.get(dtype, dtype)} {largest}", op, r["impl"],
                                 format_seconds(r.get("median_s")) if ok else "-",
                                 _ratio(r.get("speedup")) if ok else "-",
                                 _ratio(r.get("floor_ratio"), 2) if ok else "-",
                                 "ok" if ok else f"{r['status']}: {r['detail']}"))
    return rows


def print_summary(console_, records: list[dict]) -> None:
    """The headline: fastdiv on the largest batch of each op and dtype."""
    rows = summary_rows(records)
    if rows:
        columns = ("case", "op", "impl", "time", "vs SciPy", "x floor", "status")
        _print_table(console_, "Summary: fastdiv on the largest batch of each op", columns,
                     rows, right=("time", "vs SciPy", "x floor"))


def print_first_calls(console_, first: dict) -> None:
    """Numba first-call times, cold and warm cache."""
    cold, warm = first.get("cold", {}), first.get("warm", {})
    if "error" in cold or "error" in warm:
        console_.print(f"Numba first call: FAILED: {cold.get('error') or warm.get('error')}")
        return
    rows = [("import backend", format_seconds(cold.get("import_backend_s")),
             format_seconds(warm.get("import_backend_s")), "-")]
    for key, cold_op in cold.get("ops", {}).items():
        warm_op = warm.get("ops", {}).get(key, {})
        if "error" in cold_op or "error" in warm_op:
            rows.append((key, "FAILED", cold_op.get("error") or warm_op.get("error"), "-"))
            continue
        rows.append((key, format_seconds(cold_op["first_s"]), format_seconds(warm_op.get("first_s")),
                     format_seconds(warm_op.get("second_s"))))
    columns = ("numba op/dtype", "first call, cold cache", "first call, warm cache", "second call")
    _print_table(console_, f"Numba first-call time on {first.get('size')} (fresh processes)",
                 columns, rows, right=columns[1:])


def print_comparison(console_, comparison: dict, tolerance: float) -> None:
    """The fastdiv rows of a ``--compare`` and every flagged row."""
    rows = []
    unmatched = {"new": 0, "gone": 0}
    for row in comparison["rows"]:
        if row["flag"] in unmatched:
            unmatched[row["flag"]] += 1
            continue
        if not row["impl"].startswith("fastdiv") and not row["flag"]:
            continue
        case = f"{_SHORT_DTYPE.get(row['dtype'], row['dtype'])} {row['shape']}"
        rows.append((case, row["impl"] or "", row["op"] or "",
                     format_seconds(row["old_s"]), format_seconds(row["new_s"]),
                     _ratio(row["ratio"], 2), _ratio(row["floor_ratio_change"], 2), row["flag"]))
    columns = ("case", "impl", "op", "old", "new", "new/old", "vs floor new/old", "status")
    title = (f"Against the earlier run: {comparison['regressions']} regression(s) "
             f"(slower by more than {tolerance:.0%}, or newly FAILED); "
             f"{unmatched['new']} record(s) only in this run, {unmatched['gone']} only in the "
             "earlier one (in the JSON)")
    _print_table(console_, title, columns, rows, right=columns[3:7])
