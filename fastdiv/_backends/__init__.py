"""Backend registry and the kernel contract every backend implements.

A backend is a module exposing the kernel functions below with exactly these
signatures. ``fastdiv._prepare`` is the only caller; it guarantees every
precondition listed here, so kernels validate nothing.

Reductions (one distribution per row)::

    entropy(p, where, normalize, out, num_threads)
    cross_entropy(p, q, where, normalize, out, num_threads)
    kl_divergence(p, q, where, normalize, out, num_threads)
    js_divergence(p, q, where, normalize, out, num_threads)

Elementwise (SciPy drop-ins)::

    rel_entr(p, q, out, num_threads)
    entr(p, out, num_threads)

Optional: ``info() -> dict`` with backend details for ``show_config``
(e.g. the SIMD path or the threading layer).

Preconditions guaranteed by ``_prepare``:

* ``p`` and ``q`` are 2-D arrays of shape ``(rows, n)`` and one dtype,
  ``float32`` or ``float64`` (``reference`` also receives ``longdouble``).
  The inner stride is the item size (or ``n <= 1``); the row stride is any
  value, including 0 (a broadcast row) -- kernels must not assume
  C-contiguity and must not write to ``p`` or ``q``.
* ``where`` is ``None`` or a ``uint8`` array of shape ``(rows, n)`` with inner
  stride 1 and any row stride; elements where it is 0 are left out of every
  sum (including the sums used by ``normalize``).
* ``normalize`` is a bool: divide each row of ``p`` (and ``q``) by its own
  (masked) sum before the divergence, as ``scipy.stats.entropy`` does.
* Reductions write one value per row into ``out``: a C-contiguous 1-D
  ``float64`` array of length ``rows`` (``longdouble`` for ``longdouble``
  input). Results are in nats; ``_prepare`` applies ``base`` and casts.
  Rows with ``n == 0`` (or fully masked) give 0.
* Elementwise kernels write into ``out``: a C-contiguous array of shape
  ``(rows, n)`` and the dtype of ``p``. ``out`` may be the same memory as
  ``p`` or ``q`` (in-place use), element for element.
* ``num_threads`` is the number of threads the kernel may use (>= 1).

Per-element semantics (SciPy's, written out in README.md):

* ``kl_divergence`` sums ``rel_entr(p, q)``; ``entropy`` sums ``entr(p)``;
  ``cross_entropy`` sums ``-xlogy(p, q)``.
* ``js_divergence`` is ``0.5 * sum(rel_entr(p, m) + rel_entr(q, m))`` with
  ``m = (p + q) / 2``, clipped below at 0 (never negative, never NaN from
  rounding). NaN in p or q gives NaN; a negative p or q gives +inf.
* Accuracy: ``rel_entr`` terms use ``p * log1p((p - q) / q)`` when
  ``0.5 < p/q < 2``, ``p * (log(p) - log(q))`` when ``p/q`` is not a finite
  normal number, ``p * log(p/q)`` otherwise.
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

#: Backend names in order of preference for the default choice.
BACKEND_NAMES = ("cython", "numba", "reference")

_MODULES = {
    "cython": "fastdiv._backends.cython",
    "numba": "fastdiv._backends.numba",
    "reference": "fastdiv._backends.reference",
}

# What must be importable for a backend to work; checked without importing it.
_REQUIREMENTS = {
    "cython": "fastdiv._backends.cython._kernels",
    "numba": "numba",
    "reference": "numpy",
}

_loaded: dict[str, ModuleType] = {}


class BackendUnavailableError(ImportError):
    """Raised when a backend is requested that cannot be used here."""


def is_available(name: str) -> bool:
    """Whether backend ``name`` can be loaded, decided without importing it."""
    if name not in _MODULES:
        return False
    if name in _loaded:
        return True
    try:
        return importlib.util.find_spec(_REQUIREMENTS[name]) is not None
    except (ImportError, ValueError):
        return False


def available_backends() -> list[str]:
    """Names of the backends usable in this installation, best first.

    Returns
    -------
    list of str
        A subset of ``("cython", "numba", "reference")``; ``"reference"``
        is always present.

    Examples
    --------
    >>> import fastdiv
    >>> "reference" in fastdiv.available_backends()
    True
    """
    return [name for name in BACKEND_NAMES if is_available(name)]


def check_name(name: str) -> str:
    """Return ``name`` if it names a known backend, else raise ``ValueError``."""
    if name not in _MODULES:
        raise ValueError(
            f"unknown backend {name!r}; choose one of {', '.join(BACKEND_NAMES)}"
        )
    return name


def load(name: str) -> ModuleType:
    """Import backend ``name`` (once) and return its module."""
    module = _loaded.get(name)
    if module is not None:
        return module
    check_name(name)
    if not is_available(name):
        raise BackendUnavailableError(
            f"backend {name!r} is not available here; available: "
            f"{', '.join(available_backends())}"
        )
    module = importlib.import_module(_MODULES[name])
    _loaded[name] = module
    return module
