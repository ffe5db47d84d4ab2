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
(e.g. the SIMD path or the threading layer), and
``narrow_to_float32(values, out)``: ``out[:] = values`` from a contiguous 1-D
float64 array to a float32 one, overflow to ``inf`` without a warning (what
``_prepare`` otherwise does with ``astype`` under ``np.errstate``, slower).
``FLOAT32_RESULTS = True``: the four reductions also take a float32 ``out``
for float32 operands and round each row's float64 result into it once
(beyond float32's range: ``inf``, without a warning); ``_prepare`` then hands
them one when no ``base`` follows, and skips its own rounding (a microsecond
of a small call).

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
  input; float32 for float32 input to a backend with ``FLOAT32_RESULTS``).
  Results are in nats; ``_prepare`` applies ``base`` and casts.
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
  Accurate form (``reference.js_terms``): halve each element before the
  sum; with ``t = (p - q) / (p + q)``, use ``m * (2 t atanh(t) + log1p(-t**2))``
  for ``|t| < 0.5`` (every element >= 0, so the sum keeps its digits when p
  and q are nearly equal), ``log(p / m)`` further out, and ``log p - log m``
  when ``p / m`` underflows.
* Accuracy: ``rel_entr`` terms use ``p * log1p((p - q) / q)`` when
  ``0.5 < p/q < 2``, ``p * (log(p) - log(q))`` when ``p/q`` is not a finite
  normal number, ``p * log(p/q)`` otherwise.

Logit space (one set of logits per row; ``fastdiv.logits``)::

    logsumexp(a, b, where, out, sign_out, num_threads)
    log_softmax(z, out, num_threads)
    softmax(z, out, num_threads)
    softmax_cross_entropy(z, target, label_smoothing, where, loss_out, grad_out, num_threads)
    softmax_cross_entropy_probs(z, p, label_smoothing, where, loss_out, grad_out, num_threads)
    kl_divergence_logits(a, b, temperature, where, loss_out, grad_out, num_threads)
    binary_cross_entropy(p, q, where, out, num_threads)
    binary_cross_entropy_with_logits(z, t, pos_weight, where, out, num_threads)

Until a compiled backend defines one of these names, ``_prepare._with_kernel``
sends that call to ``reference`` (``getattr(backend, name, None)`` is None);
every backend is meant to define all eight.

Preconditions, besides the ones above (they hold for every ``(rows, n)``
operand here: ``a``, ``b``, ``z``, ``p``, ``q``, ``t``, ``pos_weight``):

* ``b`` (``logsumexp``) and ``pos_weight`` are ``None`` or ``(rows, n)``
  operands like the others.
* ``out`` of ``logsumexp`` and the two binary cross-entropies, and
  ``loss_out``, are C-contiguous ``(rows,)`` ``float64`` arrays
  (``longdouble`` for ``longdouble`` input); ``sign_out`` is ``None`` or one
  more such array.
* ``out`` of ``log_softmax`` and ``softmax`` is a C-contiguous ``(rows, n)``
  array of ``z``'s dtype; it may be ``z``'s own memory, element for element
  (read ``z[r, j]`` before writing ``out[r, j]``, never re-read ``z`` after).
* ``grad_out`` is ``None`` (loss only: compute no gradient) or a C-contiguous
  ``(rows, n)`` array of ``z``'s dtype (``a``'s for ``kl_divergence_logits``)
  that shares memory with no operand; the kernel writes every element.
* ``target`` is a C-contiguous ``(rows,)`` ``intp`` array. ``target[r]`` is
  a class in ``[0, n)`` that ``where`` keeps, or ``-1``: an ignored row, whose
  loss and gradient row are 0 whatever its logits hold (do not read them).
* ``label_smoothing`` is a float in ``[0, 1]``; ``temperature`` a finite float
  ``> 0``.
* ``where`` as above: a masked element takes part in no max, sum or count.

Semantics per row. ``kept`` is ``where`` (and, in ``logsumexp``, ``b != 0``:
a zero weight drops its term even where ``a`` is inf or NaN). ``M`` is the
max over kept elements: NaN if a kept element is NaN (the ``x > m ? x : m``
idiom drops NaN: track it explicitly), ``-inf`` if nothing is kept. For a
finite ``M``, ``c`` is the number of kept elements equal to ``M`` and
``s = sum(exp(z - M))`` over the other kept ones, so ``S = c + s`` and
``L = log(S)`` is computed as ``log(c) + log1p(s / c)`` (keeps the digits of
a sum close to ``c``; a result like ``logsumexp([0, -46])`` needs it).

* ``logsumexp``: for a finite ``M``, ``head = sum(b)`` over the kept
  elements equal to ``M`` (``c`` without ``b``), ``tail = sum(b * exp(a - M))``
  over the others, ``r = tail / head``; ``out = M + log|head| + log1p(r)`` when
  ``r >= -1``, ``M + log|head| + log1p(-r - 2)`` when ``r < -1``, and
  ``sign = sign(head) * sign(r + 1)``; when ``head == 0``,
  ``out = M + log|tail|``, ``sign = sign(tail)``. When ``M`` is not finite
  (``+inf``, ``-inf``, NaN or nothing kept) ``out = log|sum(b * exp(a))|`` and
  ``sign`` its sign, in IEEE arithmetic: ``-inf`` with sign 0 for an empty or
  all ``-inf`` row; ``+inf`` with the sign of the ``+inf`` terms' weights, NaN
  if both signs meet; NaN with sign NaN for NaN. With ``sign_out`` None,
  ``out`` is NaN where ``sign < 0``; otherwise ``sign_out`` gets the sign
  (``+1``, ``-1``, ``0`` or NaN).
* ``log_softmax``: ``out = (z - M) - L`` for a finite ``M``; otherwise
  (SciPy's convention) ``out = z - log(sum(exp(z)))``: a ``+inf`` row gives NaN
  at ``+inf`` and ``-inf`` elsewhere, an all ``-inf`` row NaN, NaN spreads.
* ``softmax``: ``out = exp(z - M) / sum(exp(z - M))`` with ``M`` as is, so a
  row holding ``+inf``, NaN or only ``-inf`` is all NaN (SciPy's values).
* ``softmax_cross_entropy`` / ``_probs``: with ``C`` the number of kept
  elements and ``e = label_smoothing``, the target is
  ``q = (1 - e) * onehot(target) + e / C``, resp. ``q = (1 - e) * p + e / C``,
  on kept elements, and ``Q = sum(q)`` (exactly 1 for class indices).
  ``loss = sum(q * (M - z)) + Q * L``, summing only kept elements with
  ``q != 0`` (so a ``-inf`` logit with ``q == 0`` adds 0, not NaN; with
  ``e == 0`` and class indices the loss is ``M - z[target] + L``);
  ``grad = Q * exp(z - M) / S - q`` on kept elements, 0 on masked ones.
  A row with ``M`` not finite gives loss NaN and NaN gradient on its kept
  elements; a row with nothing kept and an ignored row give loss 0 and
  gradient 0.
* ``kl_divergence_logits``: ``x = a / T``, ``y = b / T`` (``a * (1 / T)`` is
  fine), ``ex = exp(x - Mx)``, ``ey = exp(y - My)``, ``Sx``, ``Sy``, ``Lx``,
  ``Ly`` as above; ``loss = sum(ex * ((x - Mx) - (y - My))) / Sx + (Ly - Lx)``
  summing only kept elements with ``ex != 0`` (``0 log 0 = 0``, also against
  ``y = -inf``), then clipped below at 0 (NaN stays NaN);
  ``grad = (ey / Sy - ex / Sx) / T`` on kept elements, 0 on masked ones.
  NaN loss and gradient (kept elements) when ``Mx`` or ``My`` is not finite;
  loss 0 and gradient 0 for a row with nothing kept. Equal logits give
  exactly 0. No ``T**2`` factor.
* ``binary_cross_entropy`` sums ``-(xlogy(p, q) + xlog1py(1 - p, -q))``:
  ``xlogy(0, q) = 0`` unless ``q`` is NaN, ``xlog1py(0, y) = 0`` unless ``y``
  is NaN; no clamping (``q == 0`` with ``p > 0`` gives ``+inf``).
* ``binary_cross_entropy_with_logits`` sums
  ``w * t * softplus(-z) + (1 - t) * softplus(z)`` (``w = pos_weight``, 1 if
  None), ``softplus(x) = max(x, 0) + log1p(exp(-|x|))`` with NaN kept through
  the max; a term whose coefficient (``w * t`` or ``1 - t``) is 0 is 0 unless
  ``z`` is NaN.
* Float32 input is accumulated in float64; the reference computes it wholly
  in float64, compiled kernels may evaluate max and ``exp`` in float32
  arithmetic (the float32 speed depends on it). Results match ``reference``
  within the conformance tolerance, special values exactly.
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
