"""Entropy, cross-entropy, KL and Jensen-Shannon divergences, and SciPy's elementwise terms.

Every reduction runs over ``axis`` (the last by default: one distribution per
row, leading axes are the batch) in one fused pass of the selected backend.
"""

from __future__ import annotations

from fastdiv._prepare import run_elementwise, run_reduction

_REDUCTION_PARAMETERS = """\
axis : int, tuple of int or None, optional
        Axis or axes that hold one distribution; ``None`` reduces over all
        axes. Default ``-1``.
    base : float, optional
        Logarithm base of the result; ``None`` (default) gives nats, ``2``
        gives bits.
    normalize : bool, optional
        Divide each distribution by its sum first (over the elements that
        ``where`` keeps), as :func:`scipy.stats.entropy` does. Default False.
    where : array_like of bool, optional
        Elements to include; ``False`` elements are left out of every sum
        (NumPy's ``where=`` meaning), e.g. the padding of a ragged batch.
        Broadcast against the inputs.
    keepdims : bool, optional
        Keep the reduced axes with length one, as NumPy reductions do.
    out : ndarray, optional
        Array of the result's shape to write into; its dtype must hold the
        result under ``same_kind`` casting."""

_RETURNS = """\
ndarray or scalar
        One value per distribution: the input's shape without ``axis``
        (a NumPy scalar when nothing is left), or ``out``. float32 for
        float32 and float16 input, float64 for float64, integer and
        boolean input, longdouble for longdouble input."""


def _fill_doc(func):
    func.__doc__ = func.__doc__.replace("{parameters}", _REDUCTION_PARAMETERS).replace(
        "{returns}", _RETURNS
    )
    return func


@_fill_doc
def entropy(p, axis=-1, *, base=None, normalize=False, where=None, keepdims=False, out=None):
    """Shannon entropy ``H(p) = -sum(p * log(p))`` over ``axis``.

    Parameters
    ----------
    p : array_like
        Probabilities (or unnormalised weights with ``normalize=True``).
    {parameters}

    Returns
    -------
    {returns}

    Notes
    -----
    Terms follow :func:`scipy.special.entr`: ``0 log 0 = 0``, a negative
    element gives ``-inf``, NaN propagates.

    Examples
    --------
    >>> import fastdiv
    >>> float(fastdiv.entropy([0.5, 0.25, 0.25], base=2))
    1.5
    >>> fastdiv.entropy([[1, 1], [1, 3]], normalize=True)
    array([0.69314718, 0.56233514])
    """
    return run_reduction("entropy", (p,), ("p",), axis, where, keepdims, out, base, normalize)


@_fill_doc
def cross_entropy(p, q, axis=-1, *, base=None, normalize=False, where=None, keepdims=False, out=None):
    """Cross-entropy ``H(p, q) = -sum(p * log(q))`` over ``axis``.

    ``H(p, q) = KL(p || q) + H(p)``: with ``p`` fixed, minimising the
    cross-entropy over ``q`` minimises the KL divergence.

    Parameters
    ----------
    p : array_like
        Target probabilities.
    q : array_like
        Model probabilities, broadcast against ``p``.
    {parameters}

    Returns
    -------
    {returns}

    Notes
    -----
    Terms are ``-scipy.special.xlogy(p, q)``: 0 where ``p == 0`` (unless
    ``q`` is NaN), ``+inf`` where ``p > 0`` and ``q == 0``, NaN where ``q < 0``
    and ``p != 0``.

    Examples
    --------
    >>> import fastdiv
    >>> round(float(fastdiv.cross_entropy([0.5, 0.5], [0.25, 0.75], base=2)), 12)
    1.207518749639
    """
    return run_reduction("cross_entropy", (p, q), ("p", "q"), axis, where, keepdims, out, base,
                         normalize)


@_fill_doc
def kl_divergence(p, q, axis=-1, *, base=None, normalize=False, where=None, keepdims=False, out=None):
    """Kullback-Leibler divergence ``KL(p || q) = sum(p * log(p / q))`` over ``axis``.

    Not symmetric: ``KL(p || q) != KL(q || p)`` in general.

    Parameters
    ----------
    p : array_like
        Probabilities of the reference distribution.
    q : array_like
        Probabilities of the approximating distribution, broadcast against ``p``.
    {parameters}

    Returns
    -------
    {returns}

    Notes
    -----
    Terms follow :func:`scipy.special.rel_entr`: ``0 log(0/q) = 0`` for
    ``q >= 0``, ``+inf`` for ``p > 0, q == 0`` and for negative input, NaN
    propagates. Each term is computed in a stable form (``log1p`` when ``p``
    and ``q`` are close, ``log p - log q`` when ``p / q`` would overflow or
    underflow), so near-identical distributions keep their digits.

    Examples
    --------
    >>> import fastdiv
    >>> round(float(fastdiv.kl_divergence([0.5, 0.5], [0.25, 0.75], base=2)), 12)
    0.207518749639
    >>> import numpy as np
    >>> p = np.array([[0.2, 0.8], [0.5, 0.5]])
    >>> fastdiv.kl_divergence(p, [0.5, 0.5])  # q broadcast to every row
    array([0.19274476, 0.        ])
    """
    return run_reduction("kl_divergence", (p, q), ("p", "q"), axis, where, keepdims, out, base,
                         normalize)


@_fill_doc
def js_divergence(p, q, axis=-1, *, base=None, normalize=False, where=None, keepdims=False, out=None):
    """Jensen-Shannon divergence ``(KL(p || m) + KL(q || m)) / 2``, ``m = (p + q) / 2``.

    With ``normalize=True`` it equals
    ``scipy.spatial.distance.jensenshannon(p, q, axis=axis, base=base) ** 2``.
    Symmetric, bounded by ``log(2)``, never negative and never NaN from
    rounding (SciPy's can be: scipy/scipy#20083).

    Parameters
    ----------
    p, q : array_like
        The two distributions, broadcast against each other.
    {parameters}

    Returns
    -------
    {returns}

    Examples
    --------
    >>> import fastdiv
    >>> float(fastdiv.js_divergence([1.0, 0.0], [0.0, 1.0], base=2))
    1.0
    """
    return run_reduction("js_divergence", (p, q), ("p", "q"), axis, where, keepdims, out, base,
                         normalize)


def rel_entr(p, q, out=None):
    """Elementwise relative entropy ``p * log(p / q)``; a drop-in for SciPy's.

    Parameters
    ----------
    p, q : array_like
        Inputs, broadcast against each other.
    out : ndarray, optional
        Where to write the result (may be ``p`` or ``q`` itself).

    Returns
    -------
    ndarray or scalar
        ``scipy.special.rel_entr(p, q)``: ``p log(p/q)`` for ``p, q > 0``,
        0 for ``p == 0, q >= 0``, ``+inf`` otherwise, NaN if either is NaN;
        computed in the accurate forms described in :func:`kl_divergence`.

    Examples
    --------
    >>> import fastdiv
    >>> fastdiv.rel_entr([0.5, 0.0, 0.5], [0.25, 0.5, 0.0])
    array([0.34657359, 0.        ,        inf])
    """
    return run_elementwise("rel_entr", (p, q), ("p", "q"), out)


def entr(p, out=None):
    """Elementwise entropy term ``-p * log(p)``; a drop-in for SciPy's.

    Parameters
    ----------
    p : array_like
        Input.
    out : ndarray, optional
        Where to write the result (may be ``p`` itself).

    Returns
    -------
    ndarray or scalar
        ``scipy.special.entr(p)``: ``-p log p`` for ``p > 0``, 0 at 0,
        ``-inf`` for ``p < 0``, NaN for NaN.

    Examples
    --------
    >>> import fastdiv
    >>> fastdiv.entr([0.5, 0.0, -1.0])
    array([0.34657359, 0.        ,       -inf])
    """
    return run_elementwise("entr", (p,), ("p",), out)
