"""``--compare OLD.json``: this run's times against an earlier run's.

Records are matched on (op, dtype, shape, impl). For each match, ``ratio`` is
new median time / old median time (above 1: slower now), and
``floor_ratio_change`` the same for the time relative to each run's own floor,
which cancels a machine that is busier or slower as a whole. A ratio above
``1 + tolerance`` is a regression; a case that passed the gate before and
fails it now is one too.
"""

from __future__ import annotations

from collections.abc import Sequence

KEY_FIELDS = ("op", "dtype", "shape", "impl")

REGRESSION, FASTER, BROKEN, FIXED, SAME, NEW, GONE = (
    "REGRESSION", "faster", "newly FAILED", "fixed", "", "new", "gone",
)


def _key(record: dict) -> tuple:
    return tuple(record.get(field) for field in KEY_FIELDS)


def _timed(record: dict | None) -> bool:
    return bool(record) and record.get("status") == "ok" and bool(record.get("median_s"))


def compare_record(old: dict | None, new: dict | None, tolerance: float) -> dict:
    """One row of the comparison.

    Parameters
    ----------
    old, new : dict or None
        The matching records of the two runs (None where a run lacks it).
    tolerance : float
        Fraction of slowdown tolerated before a regression is flagged.

    Returns
    -------
    dict
        The key fields, ``old_s``, ``new_s``, ``ratio``, ``floor_ratio_change``
        and ``flag``.

    Examples
    --------
    >>> old = {"op": "kl", "dtype": "float64", "shape": "8x8", "impl": "x",
    ...        "status": "ok", "median_s": 1.0, "floor_s": 0.5}
    >>> new = dict(old, median_s=1.5, floor_s=0.5)
    >>> row = compare_record(old, new, tolerance=0.25)
    >>> row["ratio"], row["flag"]
    (1.5, 'REGRESSION')
    """
    source = new or old
    row = {field: source.get(field) for field in KEY_FIELDS}
    row.update(old_s=None, new_s=None, ratio=None, floor_ratio_change=None)
    if old is None:
        row["flag"] = NEW
        return row
    if new is None:
        row["flag"] = GONE
        return row
    if _timed(old):
        row["old_s"] = old["median_s"]
    if _timed(new):
        row["new_s"] = new["median_s"]
    if _timed(old) and _timed(new):
        row["ratio"] = new["median_s"] / old["median_s"]
        if old.get("floor_s") and new.get("floor_s"):
            row["floor_ratio_change"] = (new["median_s"] / new["floor_s"]) / (
                old["median_s"] / old["floor_s"]
            )
        if row["ratio"] > 1 + tolerance:
            row["flag"] = REGRESSION
        elif row["ratio"] < 1 / (1 + tolerance):
            row["flag"] = FASTER
        else:
            row["flag"] = SAME
    elif _timed(old) and new.get("status") == "FAILED":
        row["flag"] = BROKEN
    elif old.get("status") == "FAILED" and _timed(new):
        row["flag"] = FIXED
    else:
        row["flag"] = SAME
    return row


def compare_runs(old: Sequence[dict], new: Sequence[dict], tolerance: float = 0.25) -> dict:
    """Compare two runs' records.

    Returns
    -------
    dict
        ``tolerance``, ``rows`` (see :func:`compare_record`; records in both
        runs, then new ones, then ones only the old run had) and
        ``regressions`` (how many rows are flagged ``REGRESSION`` or
        ``newly FAILED``).
    """
    old_by_key = {_key(record): record for record in old}
    new_keys = {_key(record) for record in new}
    rows = [compare_record(old_by_key.get(_key(record)), record, tolerance) for record in new]
    rows += [compare_record(record, None, tolerance) for record in old if _key(record) not in new_keys]
    regressions = sum(row["flag"] in (REGRESSION, BROKEN) for row in rows)
    return {"tolerance": tolerance, "rows": rows, "regressions": regressions}
