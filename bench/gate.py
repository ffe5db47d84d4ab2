"""Correctness before speed: a result is compared with the reference backend
on a subsample of rows before it is timed.

The tolerance is loose enough for a SciPy float32 sum over 2^25 terms and
tight enough to catch a wrong kernel: a relative error, measured against the
largest magnitude in the sample, of 1e-4 for float32 and 1e-8 for float64.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

import fastdiv

#: Relative tolerance per dtype of the inputs.
RTOL = {"float32": 1e-4, "float64": 1e-8}

#: At most this many elements in the rows the reference computes.
SAMPLE_ELEMENTS = 2**18
#: At most this many rows in the sample.
SAMPLE_ROWS = 64


@dataclass(frozen=True)
class Verdict:
    """The gate's answer: ``ok``, the worst relative error, and why not ok."""

    ok: bool
    error: float
    detail: str = ""


def sample_rows(rows: int, n: int) -> np.ndarray:
    """Indices of the rows the gate checks: first, last and evenly spaced between.

    Parameters
    ----------
    rows, n : int
        The batch shape.

    Returns
    -------
    ndarray of int
        Sorted, unique; at least one row, at most :data:`SAMPLE_ROWS`, and
        about :data:`SAMPLE_ELEMENTS` elements in all when rows are long.

    Examples
    --------
    >>> sample_rows(1024, 32768)
    array([   0,  146,  292,  438,  585,  731,  877, 1023])
    """
    count = max(1, min(rows, SAMPLE_ROWS, SAMPLE_ELEMENTS // max(n, 1)))
    return np.unique(np.linspace(0, rows - 1, count).round().astype(np.intp))


def take_rows(arrays: Sequence[np.ndarray], by_row: Sequence[bool], rows: np.ndarray):
    """The inputs restricted to ``rows`` (shared, broadcast rows are kept whole)."""
    return [a[rows] if indexed else a for a, indexed in zip(arrays, by_row)]


def as_outputs(result) -> list[np.ndarray]:
    """A call's result as a list of NumPy arrays (tuples split, tensors converted)."""
    parts = result if isinstance(result, tuple) else (result,)
    converted = []
    for part in parts:
        if hasattr(part, "detach"):  # a torch tensor
            part = part.detach().cpu().numpy()
        converted.append(np.asarray(part))
    return converted


def reference_outputs(op, arrays: Sequence[np.ndarray]) -> list[np.ndarray]:
    """What fastdiv's ``reference`` backend gives for ``op`` on ``arrays``."""
    with fastdiv.use_backend("reference"):
        return as_outputs(op.make(arrays)())


def compare(got: Sequence[np.ndarray], expected: Sequence[np.ndarray], dtype: str) -> Verdict:
    """Whether ``got`` matches ``expected`` within the gate's tolerance.

    Parameters
    ----------
    got, expected : sequence of ndarray
        Outputs, component by component (a loss and a gradient, say).
    dtype : {"float32", "float64"}
        The inputs' dtype, which sets the tolerance.

    Returns
    -------
    Verdict

    Examples
    --------
    >>> compare([np.array([1.0, 2.0])], [np.array([1.0, 2.0])], "float64").ok
    True
    >>> compare([np.array([1.0, 2.02])], [np.array([1.0, 2.0])], "float64").ok
    False
    """
    rtol = RTOL[dtype]
    if len(got) != len(expected):
        return Verdict(False, np.inf, f"{len(got)} outputs, expected {len(expected)}")
    worst = 0.0
    for index, (g, e) in enumerate(zip(got, expected)):
        if g.shape != e.shape:
            return Verdict(False, np.inf, f"output {index} has shape {g.shape}, expected {e.shape}")
        g = g.astype(np.float64)
        e = e.astype(np.float64)
        same_special = (np.isnan(g) & np.isnan(e)) | (np.isinf(e) & (g == e))
        if not np.all(same_special | (np.isfinite(g) & np.isfinite(e))):
            bad = int(np.count_nonzero(~(same_special | (np.isfinite(g) & np.isfinite(e)))))
            return Verdict(False, np.inf, f"{bad} non-finite values where the reference differs")
        finite = np.isfinite(e)
        if not finite.any():
            continue
        scale = float(np.max(np.abs(e[finite]))) or 1.0
        error = float(np.max(np.abs(g[finite] - e[finite]))) / scale
        worst = max(worst, error)
    if worst > rtol:
        return Verdict(False, worst, f"relative error {worst:.2g} > {rtol:g}")
    return Verdict(True, worst)


def check_rows(result, expected: Sequence[np.ndarray], rows: np.ndarray, dtype: str) -> Verdict:
    """Compare the sampled ``rows`` of a full-batch ``result`` with ``expected``."""
    try:
        got = [out[rows] if out.ndim else out for out in as_outputs(result)]
    except IndexError as error:
        return Verdict(False, np.inf, f"result has the wrong shape: {error}")
    return compare(got, expected, dtype)


def check_mean(result, expected: Sequence[np.ndarray], dtype: str) -> Verdict:
    """Compare a peer's mean over the sampled rows with the reference's mean."""
    return compare(as_outputs(result)[:1], [np.asarray(expected[0].mean())], dtype)
