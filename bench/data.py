"""Generated inputs: batch shapes and deterministic arrays of each input kind.

A shape is written ``ROWSxN`` (``1024x32768``); a trailing ``/b`` broadcasts
the second operand as one row of shape ``(N,)`` (``1024x32768/b``). Named
presets cover the cases of the bench issue.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Size:
    """A batch of ``rows`` distributions of length ``n``.

    ``broadcast`` means the second operand is one shared row of shape ``(n,)``
    (stride 0 inside the kernels); ``dtypes`` limits the preset to some dtypes.
    """

    name: str
    rows: int
    n: int
    broadcast: bool = False
    dtypes: tuple[str, ...] = ("float32", "float64")

    @property
    def spec(self) -> str:
        return f"{self.rows}x{self.n}" + ("/b" if self.broadcast else "")

    @property
    def elements(self) -> int:
        return self.rows * self.n

    @property
    def label(self) -> str:
        return self.spec if self.name == self.spec else f"{self.name} {self.spec}"


PRESETS = {
    size.name: size
    for size in (
        Size("tiny", 32, 10),
        Size("medium", 256, 1000),
        Size("wide", 64, 32768),
        Size("large", 1024, 32768),
        Size("xlarge", 2048, 32768, dtypes=("float32",)),
        Size("long", 1, 2**25),
        Size("short", 2**20, 8),
        Size("broadcast", 1024, 32768, broadcast=True),
        Size("bcast-medium", 256, 1000, broadcast=True),
    )
}

#: The full run: every case of the bench issue.
DEFAULT_SIZES = ("tiny", "medium", "large", "xlarge", "long", "short", "broadcast")
#: ``--quick``: small enough to finish in under a minute on two busy cores.
QUICK_SIZES = ("tiny", "medium", "wide", "bcast-medium")


def parse_size(text: str) -> Size:
    """A preset name or a ``ROWSxN[/b]`` spec as a :class:`Size`.

    Parameters
    ----------
    text : str
        ``"large"``, ``"512x4096"`` or ``"512x4096/b"``.

    Returns
    -------
    Size

    Raises
    ------
    ValueError
        If ``text`` is neither a preset nor a valid spec.

    Examples
    --------
    >>> parse_size("512x4096/b")
    Size(name='512x4096/b', rows=512, n=4096, broadcast=True, dtypes=('float32', 'float64'))
    >>> parse_size("tiny").spec
    '32x10'
    """
    text = text.strip()
    if text in PRESETS:
        return PRESETS[text]
    body, _, suffix = text.partition("/")
    rows, sep, n = body.lower().partition("x")
    if sep and rows.isdigit() and n.isdigit() and suffix in ("", "b") and int(rows) > 0 and int(n) > 0:
        return Size(text, int(rows), int(n), broadcast=suffix == "b")
    raise ValueError(
        f"unknown size {text!r}: use a preset ({', '.join(PRESETS)}) or ROWSxN, "
        "optionally with /b for a broadcast second operand"
    )


def _rng(kind: str, size: Size, dtype: np.dtype) -> np.random.Generator:
    key = [zlib.crc32(kind.encode()), size.rows, size.n, int(size.broadcast), dtype.itemsize]
    return np.random.default_rng(key)


def make_input(kind: str, size: Size, dtype, *, shared_row: bool = False) -> np.ndarray:
    """A deterministic array of one input kind.

    Parameters
    ----------
    kind : str
        ``"p"``, ``"q"``: probabilities, each row sums to 1 (normalised
        exponentials, i.e. Dirichlet(1) rows); ``"z"``, ``"z2"``: logits
        (normal, standard deviation 2); ``"t"``: integer class indices of
        shape ``(rows,)``; ``"y"``: targets uniform in [0, 1); ``"u"``:
        probabilities uniform in (0, 1), rows not normalised.
    size : Size
    dtype : dtype
        float32 or float64 (``"t"`` is always int64).
    shared_row : bool
        Return one row of shape ``(n,)`` (the broadcast operand).

    Returns
    -------
    ndarray
        C-contiguous, ``(rows, n)`` or ``(n,)`` (``(rows,)`` for ``"t"``).

    Examples
    --------
    >>> p = make_input("p", parse_size("tiny"), np.float64)
    >>> p.shape, bool(np.allclose(p.sum(-1), 1))
    ((32, 10), True)
    """
    dtype = np.dtype(dtype)
    rng = _rng(kind + ("/row" if shared_row else ""), size, dtype)
    shape = (size.n,) if shared_row else (size.rows, size.n)
    if kind == "t":
        return rng.integers(0, size.n, size=size.rows, dtype=np.int64)
    if kind in ("p", "q"):
        weights = rng.standard_exponential(shape, dtype=dtype)
        weights += np.finfo(dtype).eps  # no exact zeros: naive peers would give NaN
        weights /= weights.sum(axis=-1, keepdims=True)
        return weights
    if kind in ("z", "z2"):
        logits = rng.standard_normal(shape, dtype=dtype)
        logits *= 2
        return logits
    if kind == "y":
        return rng.random(shape, dtype=dtype)
    if kind == "u":
        probs = rng.random(shape, dtype=dtype)
        probs *= 0.998
        probs += 0.001
        return probs
    raise ValueError(f"unknown input kind {kind!r}")


class InputCache:
    """Inputs of one size and dtype, generated once and shared by every op.

    Examples
    --------
    >>> cache = InputCache(parse_size("tiny"), np.float32)
    >>> cache.get("p") is cache.get("p")
    True
    """

    def __init__(self, size: Size, dtype):
        self.size = size
        self.dtype = np.dtype(dtype)
        self._arrays: dict[tuple[str, bool], np.ndarray] = {}

    def get(self, kind: str, shared_row: bool = False) -> np.ndarray:
        key = (kind, shared_row)
        if key not in self._arrays:
            self._arrays[key] = make_input(kind, self.size, self.dtype, shared_row=shared_row)
        return self._arrays[key]

    def operands(self, kinds: tuple[str, ...]) -> tuple[list[np.ndarray], list[bool]]:
        """The arrays for an op's input kinds, and which of them are indexed by row.

        With a broadcast size the second operand is one shared row of shape
        ``(n,)``; it is not indexed by row.
        """
        arrays, by_row = [], []
        for position, kind in enumerate(kinds):
            shared = self.size.broadcast and position == 1
            arrays.append(self.get(kind, shared))
            by_row.append(not shared)
        return arrays, by_row
