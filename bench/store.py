"""The JSON file: every figure of a run, the machine, and how it was run."""

from __future__ import annotations

import datetime
import json
import math
from pathlib import Path

from bench import SCHEMA

#: Keys every result record has, whatever its status.
RECORD_KEYS = (
    "op", "dtype", "size", "shape", "rows", "n", "broadcast", "impl", "kind", "library",
    "status", "detail", "bytes_read", "elementwise", "baseline", "floor_s",
)
#: Keys a record with status "ok" has in addition.
TIMED_KEYS = (
    "median_s", "min_s", "times_s", "loops", "bytes_per_s", "peak_bytes", "speedup",
    "floor_ratio", "gate_error", "first_call_s",
)
TOP_KEYS = ("schema", "created", "elapsed_s", "settings", "machine", "results",
            "first_calls", "comparison")


def describe_settings(settings) -> dict:
    """The :class:`bench.runner.Settings` as plain JSON values."""
    return {
        "ops": [op.label for op in settings.ops],
        "dtypes": list(settings.dtypes),
        "sizes": [size.spec if size.name == size.spec else size.name for size in settings.sizes],
        "backends": list(settings.backends),
        "threads": settings.threads,
        "repeat": settings.repeat,
        "min_repeat_s": settings.min_repeat_s,
        "budget_s": settings.budget_s,
        "peers": settings.peers,
    }


def build(records, machine, settings, first_calls=None, comparison=None, elapsed_s=None) -> dict:
    """The document :func:`save` writes (see :data:`TOP_KEYS`)."""
    return {
        "schema": SCHEMA,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "elapsed_s": elapsed_s,
        "settings": settings,
        "machine": machine,
        "results": records,
        "first_calls": first_calls,
        "comparison": comparison,
    }


def _plain(value):
    """NumPy scalars to Python numbers, non-finite floats to None (valid JSON)."""
    if hasattr(value, "item") and not isinstance(value, (list, dict)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def save(document: dict, path: Path) -> Path:
    """Write ``document`` as JSON to ``path``; returns ``path``."""
    path = Path(path)
    path.write_text(json.dumps(_plain(document), indent=1, default=str) + "\n")
    return path


def append_lines(stream, records) -> None:
    """Write ``records`` to an open text stream, one JSON object a line, and flush."""
    for record in records:
        stream.write(json.dumps(_plain(record), default=str) + "\n")
    stream.flush()


def load(path: Path) -> dict:
    """Read a results file written by :func:`save`.

    Raises
    ------
    ValueError
        If the file is not a fastdiv bench results file.
    """
    document = json.loads(Path(path).read_text())
    if not isinstance(document, dict) or document.get("schema") != SCHEMA:
        raise ValueError(f"{path} is not a fastdiv bench results file (schema {SCHEMA})")
    return document
