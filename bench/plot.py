"""The PNG: speed-up against SciPy versus size, one panel per op, one line per
fastdiv backend and dtype (matplotlib, Agg; skipped when it is not installed)."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path


def save(document: dict, path: Path) -> Path | None:
    """Plot the fastdiv rows of a results document into ``path``.

    Returns
    -------
    Path or None
        ``path``, or None when matplotlib is missing or nothing was timed
        against a SciPy baseline.
    """
    if importlib.util.find_spec("matplotlib") is None:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in document["results"]
            if r["kind"] == "fastdiv" and r["status"] == "ok" and r.get("speedup")]
    if not rows:
        return None
    shapes = list(dict.fromkeys(r["shape"] for r in document["results"]))
    ops = list(dict.fromkeys(r["op"] for r in rows))
    columns = min(3, len(ops))
    lines = math.ceil(len(ops) / columns)
    figure, axes = plt.subplots(lines, columns, figsize=(5.5 * columns, 3.8 * lines),
                                squeeze=False)
    for ax, op in zip(axes.flat, ops):
        series: dict[tuple[str, str], list[tuple[int, float]]] = {}
        for r in rows:
            if r["op"] == op:
                series.setdefault((r["impl"], r["dtype"]), []).append(
                    (shapes.index(r["shape"]), r["speedup"]))
        for (impl, dtype), points in sorted(series.items()):
            points.sort()
            ax.plot([x for x, _ in points], [y for _, y in points],
                    marker="o" if dtype == "float64" else "s",
                    linestyle="-" if dtype == "float64" else "--",
                    label=f"{impl.removeprefix('fastdiv[').rstrip(']')} {dtype}")
        ax.axhline(1.0, color="grey", linewidth=0.8)
        ax.set_yscale("log")
        ax.set_title(op)
        ax.set_xticks(range(len(shapes)), shapes, rotation=30, ha="right", fontsize=7)
        ax.set_ylabel("speed-up vs SciPy")
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(ops):]:
        ax.set_visible(False)
    machine = document["machine"]
    figure.suptitle(f"fastdiv vs SciPy on {machine['cpu']}, {machine['threads']} threads "
                    "(above 1: faster than SciPy)")
    figure.tight_layout(rect=(0, 0, 1, 0.97))
    path = Path(path)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
