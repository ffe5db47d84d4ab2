"""Functions of logits: log-sum-exp, (log-)softmax, and losses with their gradients.

Models emit logits, not probabilities. These functions take logits directly,
never overflow, never build a softmax the caller did not ask for, and return
the gradient with respect to the logits in the same pass when asked. Each
works over ``axis`` (the last by default: one set of logits per row, leading
axes are the batch) on the selected backend.
"""

from __future__ import annotations

from fastdiv._prepare import (
    prepare_binary_cross_entropy,
    prepare_binary_cross_entropy_with_logits,
    prepare_kl_divergence_logits,
    prepare_logsumexp,
    prepare_row_map,
    prepare_softmax_cross_entropy,
)


def logsumexp(a, axis=-1, *, b=None, keepdims=False, return_sign=False, where=None, out=None):
    """``log(sum(b * exp(a)))`` over ``axis``, without overflow or underflow.

    With an explicit ``axis`` this is a drop-in for
    :func:`scipy.special.logsumexp` (``b`` and ``return_sign`` included).

    Parameters
    ----------
    a : array_like
        Input.
    axis : int, tuple of int or None, optional
        Axis or axes to sum over; ``None`` sums over all axes. Default ``-1``
        (SciPy's default is ``None``).
    b : array_like, optional
        Weights of the terms ``exp(a)``, broadcast against ``a``; they may be
        negative (then see ``return_sign``). A term whose weight is 0 is left
        out, even where ``a`` is infinite or NaN.
    keepdims : bool, optional
        Keep the reduced axes with length one.
    return_sign : bool, optional
        Also return the sign of the sum. Without it a negative sum gives NaN.
    where : array_like of bool, optional
        Elements to include; ``False`` elements are left out of the sum.
        Broadcast against ``a``.
    out : ndarray, optional
        Array of the result's shape to write ``log|sum|`` into.

    Returns
    -------
    res : ndarray or scalar
        ``log|sum(b * exp(a))|``. A row with nothing to sum, or whose terms
        are all ``exp(-inf)``, gives ``-inf``; ``+inf`` in a row gives
        ``+inf`` (NaN if ``+inf`` terms of both signs meet); NaN propagates.
        float32 for float32 input, float64 for float64 and integer input.
    sgn : ndarray or scalar
        Only with ``return_sign``: the sign of the sum, ``+1``, ``-1``, or
        ``0`` for an empty or zero sum (NaN where ``res`` is NaN).

    See Also
    --------
    softmax : the gradient of ``logsumexp`` with respect to ``a``.

    Notes
    -----
    The row maximum ``m`` is subtracted before ``exp``; the terms equal to
    ``m`` are summed apart from the rest, and ``log1p`` of the ratio keeps
    the digits of a sum close to 1 (as SciPy does). Deliberate differences
    from SciPy, all where SciPy falls back to the naive sum: an empty row
    gives sign 0 (SciPy: -1), large terms that cancel exactly give ``-inf``
    (SciPy: NaN), and a zero weight drops its term also when the result is
    infinite (SciPy: NaN for ``a = [inf, inf], b = [0, 1]``).

    Examples
    --------
    >>> import numpy as np, fastdiv
    >>> float(fastdiv.logsumexp([1000.0, 1000.0]))  # 1000 + log(2)
    1000.6931471805599
    >>> fastdiv.logsumexp([[0.0, -np.inf], [-np.inf, -np.inf]])
    array([  0., -inf])
    >>> res, sgn = fastdiv.logsumexp([1.0, 2.0], b=[1.0, -1.0], return_sign=True)
    >>> round(float(res), 12), float(sgn)  # log(e**2 - e), negative sum
    (1.541324854613, -1.0)
    """
    job = prepare_logsumexp(a, b, axis, where, keepdims, out, return_sign)
    job.backend.logsumexp(*job.operands, job.where, job.acc, job.sign, job.num_threads)
    return job.finish()


def log_softmax(z, axis=-1, *, out=None):
    """``z - logsumexp(z)`` over ``axis``: the log-probabilities of the logits ``z``.

    Parameters
    ----------
    z : array_like
        Logits.
    axis : int, tuple of int or None, optional
        Axis or axes that hold one set of logits. Default ``-1``.
    out : ndarray, optional
        Array of ``z``'s shape to write into (may be ``z`` itself).

    Returns
    -------
    ndarray or scalar
        The values of :func:`scipy.special.log_softmax`, including its
        non-finite cases: a row holding ``+inf`` gives NaN there and ``-inf``
        elsewhere, an all ``-inf`` row gives NaN, NaN propagates to its row.
        Near the maximum the result keeps the digits that
        ``z - m - log(sum(exp(z - m)))`` loses.

    Examples
    --------
    >>> import fastdiv
    >>> fastdiv.log_softmax([1000.0, 1.0])
    array([   0., -999.])
    """
    job = prepare_row_map("log_softmax", z, axis, out)
    job.backend.log_softmax(*job.operands, job.target, job.num_threads)
    return job.finish()


def softmax(z, axis=-1, *, out=None):
    """``exp(z) / sum(exp(z))`` over ``axis``, computed without overflow.

    Parameters
    ----------
    z : array_like
        Logits.
    axis : int, tuple of int or None, optional
        Axis or axes that hold one set of logits. Default ``-1``.
    out : ndarray, optional
        Array of ``z``'s shape to write into (may be ``z`` itself).

    Returns
    -------
    ndarray or scalar
        The values of :func:`scipy.special.softmax`: ``exp(z - m) / sum(exp(z - m))``
        with ``m`` the row maximum; a row holding ``+inf``, NaN, or only ``-inf``
        gives NaN.

    Examples
    --------
    >>> import fastdiv
    >>> fastdiv.softmax([[0.0, 0.0], [1000.0, 1000.0 + 2.0 ** -40]])
    array([[0.5, 0.5],
           [0.5, 0.5]])
    """
    job = prepare_row_map("softmax", z, axis, out)
    job.backend.softmax(*job.operands, job.target, job.num_threads)
    return job.finish()


def softmax_cross_entropy(
    logits,
    target,
    axis=-1,
    *,
    label_smoothing=0.0,
    ignore_index=None,
    where=None,
    return_grad=False,
):
    """Cross-entropy of ``softmax(logits)`` against a target, one value per row.

    ``loss = -sum(q * log_softmax(logits))`` with ``q`` the (smoothed) target,
    as :func:`torch.nn.functional.cross_entropy` with ``reduction="none"``.

    Parameters
    ----------
    logits : array_like
        Unnormalised log-probabilities; ``axis`` holds the classes.
    target : array_like
        Either integer class indices, of the logits' shape without ``axis``
        (with a tuple ``axis``, indices into the flattened classes in C
        order), or probabilities (any non-integer dtype), broadcast against
        the logits.
    axis : int, tuple of int or None, optional
        Axis or axes of the classes. Default ``-1``.
    label_smoothing : float, optional
        ``eps`` in ``[0, 1]``: the target becomes ``(1 - eps) * target + eps / C``
        with ``C`` the number of classes (those ``where`` keeps), as PyTorch
        defines it. Default 0.
    ignore_index : int, optional
        Class index (integer targets only) whose rows give loss 0 and
        gradient 0 (no NaN, also when every row is ignored).
    where : array_like of bool, optional
        Classes to include, broadcast against the logits: the softmax runs
        over the kept classes only, masked ones get gradient 0. An integer
        target must be a kept class.
    return_grad : bool, optional
        Also return the gradient of each row's loss with respect to its logits.

    Returns
    -------
    loss : ndarray or scalar
        One value per row: the logits' (broadcast) shape without ``axis``.
        A row whose kept logits hold ``+inf`` or NaN, or are all ``-inf``,
        gives NaN; a row with no kept class gives 0.
    grad : ndarray
        Only with ``return_grad``: ``sum(q) * softmax(logits) - q`` in the
        logits' shape, i.e. ``softmax(logits) - q`` for targets that sum to 1.

    Raises
    ------
    ValueError
        For a class index outside ``[0, C)`` (other than ``ignore_index``) or
        masked out by ``where``, a target of the wrong shape, ``ignore_index``
        with probability targets, or ``label_smoothing`` outside ``[0, 1]``.

    Notes
    -----
    The loss is computed as ``sum(q * (m - z)) + sum(q) * log(sum(exp(z - m)))``
    with ``m`` the row maximum, whose terms are all non-negative for ``q >= 0``,
    so a small loss keeps its digits. A class with ``q == 0`` adds nothing, even
    where its logit is ``-inf``.

    Examples
    --------
    >>> import numpy as np, fastdiv
    >>> z = np.array([[2.0, 0.0, -1.0], [0.0, 0.0, 0.0]])
    >>> fastdiv.softmax_cross_entropy(z, [0, 2])
    array([0.16984602, 1.09861229])
    >>> loss, grad = fastdiv.softmax_cross_entropy(z, [0, -100], ignore_index=-100,
    ...                                            return_grad=True)
    >>> loss
    array([0.16984602, 0.        ])
    >>> grad.round(4)
    array([[-0.1562,  0.1142,  0.042 ],
           [ 0.    ,  0.    ,  0.    ]])
    >>> fastdiv.softmax_cross_entropy(z, [[0.5, 0.5, 0.0], [1.0, 0.0, 0.0]])
    array([1.16984602, 1.09861229])
    """
    job = prepare_softmax_cross_entropy(
        logits, target, axis, label_smoothing, ignore_index, where, return_grad
    )
    if job.class_indices:
        kernel = job.backend.softmax_cross_entropy
    else:
        kernel = job.backend.softmax_cross_entropy_probs
    kernel(*job.operands, job.label_smoothing, job.where, job.loss, job.grad, job.num_threads)
    return job.finish()


def kl_divergence_logits(
    logits_p, logits_q, axis=-1, *, temperature=1.0, where=None, return_grad=False
):
    """``KL(softmax(logits_p / T) || softmax(logits_q / T))`` per row, fused.

    The distillation loss: ``logits_p`` are the teacher's, ``logits_q`` the
    student's, ``T`` the temperature.

    Parameters
    ----------
    logits_p, logits_q : array_like
        Logits of the reference and the approximating distribution,
        broadcast against each other.
    axis : int, tuple of int or None, optional
        Axis or axes of the classes. Default ``-1``.
    temperature : float, optional
        ``T > 0``; both sets of logits are divided by it. Default 1.
    where : array_like of bool, optional
        Classes to include; both softmaxes run over the kept classes only.
    return_grad : bool, optional
        Also return the gradient with respect to ``logits_q``.

    Returns
    -------
    loss : ndarray or scalar
        ``sum(p * (log p - log q))`` per row, in nats, never negative. A row
        whose kept logits (either set) hold ``+inf`` or NaN, or are all
        ``-inf``, gives NaN; ``p > 0`` where ``q == 0`` gives ``+inf``; a row
        with no kept class gives 0.
    grad : ndarray
        Only with ``return_grad``: ``(softmax(logits_q / T) - softmax(logits_p / T)) / T``,
        the gradient of ``loss`` with respect to ``logits_q``, in the broadcast shape.

    Notes
    -----
    No ``T**2`` factor is applied. Hinton et al.'s distillation loss, as
    usually written in PyTorch, is ``T**2 * kl_divergence_logits(a, b,
    temperature=T)``; multiply the loss and the gradient by ``T**2`` yourself.

    With ``logits_p`` fixed, this loss and
    ``softmax_cross_entropy(logits_q / T, softmax(logits_p / T))`` differ by
    the entropy of ``p``, a constant, so their gradients with respect to the
    student logits are equal.

    Examples
    --------
    >>> import numpy as np, fastdiv
    >>> teacher = np.array([[2.0, 1.0, 0.0]])
    >>> float(fastdiv.kl_divergence_logits(teacher, teacher)[0])
    0.0
    >>> loss, grad = fastdiv.kl_divergence_logits(teacher, [[0.0, 0.0, 0.0]],
    ...                                           temperature=2.0, return_grad=True)
    >>> loss.round(6), grad.round(4)
    (array([0.078421]), array([[-0.0866,  0.0131,  0.0735]]))
    """
    job = prepare_kl_divergence_logits(logits_p, logits_q, axis, temperature, where, return_grad)
    job.backend.kl_divergence_logits(
        *job.operands, job.temperature, job.where, job.loss, job.grad, job.num_threads
    )
    return job.finish()


def binary_cross_entropy(p, q, axis=-1, *, where=None, keepdims=False, out=None):
    """Binary cross-entropy ``-sum(p log q + (1 - p) log(1 - q))`` over ``axis``.

    Target probabilities first, as in :func:`fastdiv.cross_entropy`.

    Parameters
    ----------
    p : array_like
        Target probabilities.
    q : array_like
        Predicted probabilities, broadcast against ``p``.
    axis : int, tuple of int or None, optional
        Axis or axes to sum over; ``None`` sums over all. Default ``-1``.
    where : array_like of bool, optional
        Elements to include; ``False`` elements are left out of the sum.
    keepdims : bool, optional
        Keep the reduced axes with length one.
    out : ndarray, optional
        Array of the result's shape to write into.

    Returns
    -------
    ndarray or scalar
        Terms are ``-(xlogy(p, q) + xlog1py(1 - p, -q))``: no clamping, a
        term with a zero coefficient is 0, ``q == 0`` with ``p > 0`` or
        ``q == 1`` with ``p < 1`` gives ``+inf``, ``q`` outside ``[0, 1]``
        gives NaN, NaN propagates.

    Examples
    --------
    >>> import fastdiv
    >>> round(float(fastdiv.binary_cross_entropy([1.0, 0.0, 0.5], [0.9, 0.0, 0.5])), 12)
    0.798507696218
    >>> float(fastdiv.binary_cross_entropy([1.0], [0.0]))  # PyTorch would clamp to 100
    inf
    """
    job = prepare_binary_cross_entropy(p, q, axis, where, keepdims, out)
    job.backend.binary_cross_entropy(*job.operands, job.where, job.acc, job.num_threads)
    return job.finish()


def binary_cross_entropy_with_logits(
    logits, target, axis=-1, *, pos_weight=None, where=None, keepdims=False, out=None
):
    """Binary cross-entropy of ``sigmoid(logits)`` against ``target``, summed over ``axis``.

    ``-sum(w t log(sigmoid(z)) + (1 - t) log(1 - sigmoid(z)))``, computed as
    ``sum(w t softplus(-z) + (1 - t) softplus(z))`` with
    ``softplus(x) = max(x, 0) + log1p(exp(-|x|))``: stable for every finite
    logit. Logits first, as in :func:`softmax_cross_entropy`.

    Parameters
    ----------
    logits : array_like
        Logits ``z``.
    target : array_like
        Target probabilities ``t``, broadcast against the logits.
    axis : int, tuple of int or None, optional
        Axis or axes to sum over; ``None`` sums over all. Default ``-1``.
    pos_weight : array_like, optional
        Weight ``w`` of the positive term, broadcast against the logits
        (PyTorch's ``pos_weight``, e.g. one value per class). Default 1.
    where : array_like of bool, optional
        Elements to include; ``False`` elements are left out of the sum.
    keepdims : bool, optional
        Keep the reduced axes with length one.
    out : ndarray, optional
        Array of the result's shape to write into.

    Returns
    -------
    ndarray or scalar
        The sum; a term with a zero coefficient is 0 (so ``z = +inf`` with
        ``t = 1`` adds 0), ``z = +inf`` with ``t < 1`` gives ``+inf``, NaN
        propagates.

    Examples
    --------
    >>> import fastdiv
    >>> z = [[800.0, -800.0], [0.0, 0.0]]
    >>> fastdiv.binary_cross_entropy_with_logits(z, [[1.0, 1.0], [1.0, 0.0]])
    array([800.        ,   1.38629436])
    """
    job = prepare_binary_cross_entropy_with_logits(
        logits, target, pos_weight, axis, where, keepdims, out
    )
    job.backend.binary_cross_entropy_with_logits(
        *job.operands, job.where, job.acc, job.num_threads
    )
    return job.finish()
