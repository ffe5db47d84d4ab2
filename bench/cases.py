"""The one registry of operations and their peers, shared by ``python -m bench``
and the pytest-benchmark suite.

An :class:`Op` names a fastdiv function, the kinds of its inputs (see
:func:`bench.data.make_input`) and its peers: the same quantity computed the
way a user would without fastdiv. A :class:`Peer` builds, from the input
arrays, a zero-argument callable to time; its library is imported only when
the peer is used, and a peer whose library is not installed is left out.

Ops whose fastdiv function does not exist yet (``hasattr(fastdiv, name)`` is
False) are left out too, so new functions join the bench by an entry here.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

import fastdiv

Thunk = Callable[[], object]


@dataclass(frozen=True)
class Peer:
    """Another library's way to compute an op.

    Parameters
    ----------
    name : str
        Shown in the table, e.g. ``"scipy rel_entr.sum"``.
    library : str
        The top-level module it needs (``"scipy"``, ``"numpy"``, ``"torch"``,
        ``"sklearn"``).
    make : callable
        ``make(arrays, threads) -> thunk``: prepares anything that must not be
        timed (e.g. tensors sharing the arrays' memory) and returns the call.
    mean : bool
        The peer returns the mean over rows instead of one value per row
        (scikit-learn's ``log_loss``); the gate compares it with the mean.
    max_n : int, optional
        The longest row the peer is run on: one that builds a (rows, n)
        one-hot matrix or label table per call is left out of longer rows.
    """

    name: str
    library: str
    make: Callable[[Sequence[np.ndarray], int], Thunk]
    mean: bool = False
    max_n: int | None = None

    def available(self) -> bool:
        return importlib.util.find_spec(self.library) is not None

    def handles(self, n: int) -> bool:
        """Whether rows of length ``n`` are within the peer's reach."""
        return self.max_n is None or n <= self.max_n


@dataclass(frozen=True)
class Op:
    """One fastdiv function on one kind of input, and its peers.

    ``label`` tells variants apart (``softmax_cross_entropy[grad]``);
    ``kwargs`` are fixed keyword arguments of the fastdiv call;
    ``baseline`` names the SciPy peer that speed-ups are measured against;
    ``elementwise`` ops return an array of the input's shape (they write as
    much as they read, which the read-only floor does not count);
    ``broadcast`` ops also run on broadcast sizes (second operand ``(n,)``).
    """

    label: str
    function: str
    inputs: tuple[str, ...]
    peers: tuple[Peer, ...]
    baseline: str
    kwargs: dict = field(default_factory=dict)
    elementwise: bool = False
    broadcast: bool = False

    def available(self) -> bool:
        return hasattr(fastdiv, self.function)

    def make(self, arrays: Sequence[np.ndarray]) -> Thunk:
        """The fastdiv call on ``arrays``, on whatever backend is selected."""
        function = getattr(fastdiv, self.function)
        kwargs = self.kwargs
        return lambda: function(*arrays, **kwargs)

    def supports(self, size) -> bool:
        """Whether the op runs on ``size`` (a broadcast size needs a second operand to share)."""
        return self.broadcast or not size.broadcast

    def available_peers(self) -> list[Peer]:
        return [peer for peer in self.peers if peer.available()]


# --- helpers the peers share -------------------------------------------------


def _scipy_special():
    import scipy.special

    return scipy.special


def _torch(threads: int):
    import torch

    torch.set_num_threads(threads)
    return torch


def _tensors(torch, arrays):
    return [torch.from_numpy(np.ascontiguousarray(a)) for a in arrays]


def _rows(z: np.ndarray) -> np.ndarray:
    return np.arange(z.shape[0])


# --- the peers, per op ----------------------------------------------------------


def _entropy_peers() -> tuple[Peer, ...]:
    def scipy_entr(arrays, threads):
        sp = _scipy_special()
        (p,) = arrays
        return lambda: sp.entr(p).sum(-1)

    def scipy_stats(arrays, threads):
        import scipy.stats

        (p,) = arrays
        return lambda: scipy.stats.entropy(p, axis=-1)

    def numpy_formula(arrays, threads):
        (p,) = arrays
        return lambda: -(p * np.log(p)).sum(-1)

    def torch_entr(arrays, threads):
        torch = _torch(threads)
        (p,) = _tensors(torch, arrays)
        return lambda: torch.special.entr(p).sum(-1)

    return (
        Peer("scipy entr.sum", "scipy", scipy_entr),
        Peer("scipy.stats.entropy", "scipy", scipy_stats),
        Peer("numpy -p*log(p)", "numpy", numpy_formula),
        Peer("torch entr.sum", "torch", torch_entr),
    )


def _cross_entropy_peers() -> tuple[Peer, ...]:
    def scipy_xlogy(arrays, threads):
        sp = _scipy_special()
        p, q = arrays
        return lambda: -sp.xlogy(p, q).sum(-1)

    def numpy_formula(arrays, threads):
        p, q = arrays
        return lambda: -(p * np.log(q)).sum(-1)

    def torch_xlogy(arrays, threads):
        torch = _torch(threads)
        p, q = _tensors(torch, arrays)
        return lambda: -torch.special.xlogy(p, q).sum(-1)

    return (
        Peer("scipy -xlogy.sum", "scipy", scipy_xlogy),
        Peer("numpy -p*log(q)", "numpy", numpy_formula),
        Peer("torch -xlogy.sum", "torch", torch_xlogy),
    )


def _kl_peers() -> tuple[Peer, ...]:
    def scipy_rel_entr(arrays, threads):
        sp = _scipy_special()
        p, q = arrays
        return lambda: sp.rel_entr(p, q).sum(-1)

    def scipy_stats(arrays, threads):
        import scipy.stats

        p, q = arrays
        return lambda: scipy.stats.entropy(p, q, axis=-1)

    def numpy_formula(arrays, threads):
        p, q = arrays
        return lambda: (p * np.log(p / q)).sum(-1)

    def torch_kl_div(arrays, threads):
        torch = _torch(threads)
        p, q = _tensors(torch, arrays)
        kl_div = torch.nn.functional.kl_div
        return lambda: kl_div(q.log().expand_as(p), p, reduction="none").sum(-1)

    return (
        Peer("scipy rel_entr.sum", "scipy", scipy_rel_entr),
        Peer("scipy.stats.entropy", "scipy", scipy_stats),
        Peer("numpy p*log(p/q)", "numpy", numpy_formula),
        Peer("torch kl_div", "torch", torch_kl_div),
    )


def _js_peers() -> tuple[Peer, ...]:
    def scipy_jensenshannon(arrays, threads):
        from scipy.spatial.distance import jensenshannon

        p, q = arrays
        return lambda: jensenshannon(p, q, axis=-1) ** 2

    def numpy_formula(arrays, threads):
        p, q = arrays

        def js():
            m = 0.5 * (p + q)
            return 0.5 * ((p * np.log(p / m)).sum(-1) + (q * np.log(q / m)).sum(-1))

        return js

    def torch_kl_div(arrays, threads):
        torch = _torch(threads)
        p, q = _tensors(torch, arrays)
        kl_div = torch.nn.functional.kl_div

        def js():
            log_m = (0.5 * (p + q)).log().expand_as(p)
            both = kl_div(log_m, p, reduction="none") + kl_div(log_m, q, reduction="none")
            return 0.5 * both.sum(-1)

        return js

    return (
        Peer("scipy jensenshannon**2", "scipy", scipy_jensenshannon),
        Peer("numpy formula", "numpy", numpy_formula),
        Peer("torch kl_div x2", "torch", torch_kl_div),
    )


def _rel_entr_peers() -> tuple[Peer, ...]:
    def scipy_rel_entr(arrays, threads):
        sp = _scipy_special()
        p, q = arrays
        return lambda: sp.rel_entr(p, q)

    def numpy_formula(arrays, threads):
        p, q = arrays
        return lambda: p * np.log(p / q)

    def torch_kl_div(arrays, threads):
        torch = _torch(threads)
        p, q = _tensors(torch, arrays)
        kl_div = torch.nn.functional.kl_div
        return lambda: kl_div(q.log().expand_as(p), p, reduction="none")

    return (
        Peer("scipy rel_entr", "scipy", scipy_rel_entr),
        Peer("numpy p*log(p/q)", "numpy", numpy_formula),
        Peer("torch kl_div", "torch", torch_kl_div),
    )


def _entr_peers() -> tuple[Peer, ...]:
    def scipy_entr(arrays, threads):
        sp = _scipy_special()
        (p,) = arrays
        return lambda: sp.entr(p)

    def numpy_formula(arrays, threads):
        (p,) = arrays
        return lambda: -p * np.log(p)

    def torch_entr(arrays, threads):
        torch = _torch(threads)
        (p,) = _tensors(torch, arrays)
        return lambda: torch.special.entr(p)

    return (
        Peer("scipy entr", "scipy", scipy_entr),
        Peer("numpy -p*log(p)", "numpy", numpy_formula),
        Peer("torch entr", "torch", torch_entr),
    )


def _logsumexp_peers() -> tuple[Peer, ...]:
    def scipy_logsumexp(arrays, threads):
        sp = _scipy_special()
        (a,) = arrays
        return lambda: sp.logsumexp(a, axis=-1)

    def numpy_formula(arrays, threads):
        (a,) = arrays

        def lse():
            m = a.max(axis=-1, keepdims=True)
            return m[:, 0] + np.log(np.exp(a - m).sum(-1))

        return lse

    def torch_logsumexp(arrays, threads):
        torch = _torch(threads)
        (a,) = _tensors(torch, arrays)
        return lambda: torch.logsumexp(a, -1)

    return (
        Peer("scipy logsumexp", "scipy", scipy_logsumexp),
        Peer("numpy max+log(sum(exp))", "numpy", numpy_formula),
        Peer("torch logsumexp", "torch", torch_logsumexp),
    )


def _log_softmax_peers() -> tuple[Peer, ...]:
    def scipy_log_softmax(arrays, threads):
        sp = _scipy_special()
        (z,) = arrays
        return lambda: sp.log_softmax(z, axis=-1)

    def torch_log_softmax(arrays, threads):
        torch = _torch(threads)
        (z,) = _tensors(torch, arrays)
        return lambda: torch.log_softmax(z, -1)

    return (
        Peer("scipy log_softmax", "scipy", scipy_log_softmax),
        Peer("torch log_softmax", "torch", torch_log_softmax),
    )


def _softmax_peers() -> tuple[Peer, ...]:
    def scipy_softmax(arrays, threads):
        sp = _scipy_special()
        (z,) = arrays
        return lambda: sp.softmax(z, axis=-1)

    def torch_softmax(arrays, threads):
        torch = _torch(threads)
        (z,) = _tensors(torch, arrays)
        return lambda: torch.softmax(z, -1)

    return (
        Peer("scipy softmax", "scipy", scipy_softmax),
        Peer("torch softmax", "torch", torch_softmax),
    )


def _softmax_ce_index_peers() -> tuple[Peer, ...]:
    def scipy_formula(arrays, threads):
        sp = _scipy_special()
        z, t = arrays
        rows = _rows(z)
        return lambda: sp.logsumexp(z, axis=-1) - z[rows, t]

    def torch_cross_entropy(arrays, threads):
        torch = _torch(threads)
        z, t = _tensors(torch, arrays)
        cross_entropy = torch.nn.functional.cross_entropy
        return lambda: cross_entropy(z, t, reduction="none")

    def sklearn_log_loss(arrays, threads):
        from sklearn.metrics import log_loss

        sp = _scipy_special()
        z, t = arrays
        labels = np.arange(z.shape[-1])
        return lambda: log_loss(t, sp.softmax(z, axis=-1), labels=labels)

    return (
        Peer("scipy logsumexp-z[t]", "scipy", scipy_formula),
        Peer("torch cross_entropy", "torch", torch_cross_entropy),
        # log_loss one-hot encodes the labels: minutes and GiBs for one row of 2**25
        Peer("sklearn log_loss(softmax)", "sklearn", sklearn_log_loss, mean=True, max_n=1 << 16),
    )


def _softmax_ce_grad_peers() -> tuple[Peer, ...]:
    def scipy_formula(arrays, threads):
        sp = _scipy_special()
        z, t = arrays
        rows = _rows(z)

        def loss_and_grad():
            lse = sp.logsumexp(z, axis=-1, keepdims=True)
            grad = np.exp(z - lse)
            grad[rows, t] -= 1
            return lse[:, 0] - z[rows, t], grad

        return loss_and_grad

    def torch_autograd(arrays, threads):
        torch = _torch(threads)
        z, t = _tensors(torch, arrays)
        z = z.clone().requires_grad_(True)
        cross_entropy = torch.nn.functional.cross_entropy

        def loss_and_grad():
            loss = cross_entropy(z, t, reduction="none")
            (grad,) = torch.autograd.grad(loss.sum(), z)
            return loss.detach(), grad

        return loss_and_grad

    return (
        Peer("scipy logsumexp+exp", "scipy", scipy_formula),
        Peer("torch cross_entropy+grad", "torch", torch_autograd),
    )


def _softmax_ce_prob_peers() -> tuple[Peer, ...]:
    def scipy_formula(arrays, threads):
        sp = _scipy_special()
        z, p = arrays
        return lambda: -(p * sp.log_softmax(z, axis=-1)).sum(-1)

    def torch_cross_entropy(arrays, threads):
        torch = _torch(threads)
        z, p = _tensors(torch, arrays)
        cross_entropy = torch.nn.functional.cross_entropy
        return lambda: cross_entropy(z, p.expand_as(z), reduction="none")

    return (
        Peer("scipy -p*log_softmax", "scipy", scipy_formula),
        Peer("torch cross_entropy", "torch", torch_cross_entropy),
    )


def _kl_logits_peers() -> tuple[Peer, ...]:
    def scipy_formula(arrays, threads):
        sp = _scipy_special()
        a, b = arrays

        def kl():
            log_p = sp.log_softmax(a, axis=-1)
            return (np.exp(log_p) * (log_p - sp.log_softmax(b, axis=-1))).sum(-1)

        return kl

    def torch_kl_div(arrays, threads):
        torch = _torch(threads)
        a, b = _tensors(torch, arrays)
        kl_div = torch.nn.functional.kl_div

        def kl():
            log_p = torch.log_softmax(a, -1)
            log_q = torch.log_softmax(b, -1).expand_as(log_p)
            return kl_div(log_q, log_p, reduction="none", log_target=True).sum(-1)

        return kl

    return (
        Peer("scipy log_softmax formula", "scipy", scipy_formula),
        Peer("torch kl_div(log_softmax)", "torch", torch_kl_div),
    )


def _bce_peers() -> tuple[Peer, ...]:
    def scipy_xlogy(arrays, threads):
        sp = _scipy_special()
        p, q = arrays
        return lambda: -(sp.xlogy(p, q) + sp.xlogy(1 - p, 1 - q)).sum(-1)

    def numpy_formula(arrays, threads):
        p, q = arrays
        return lambda: -(p * np.log(q) + (1 - p) * np.log1p(-q)).sum(-1)

    def torch_bce(arrays, threads):
        torch = _torch(threads)
        p, q = _tensors(torch, arrays)
        bce = torch.nn.functional.binary_cross_entropy
        return lambda: bce(q.expand_as(p), p, reduction="none").sum(-1)

    return (
        Peer("scipy xlogy formula", "scipy", scipy_xlogy),
        Peer("numpy formula", "numpy", numpy_formula),
        Peer("torch binary_cross_entropy", "torch", torch_bce),
    )


def _bce_logits_peers() -> tuple[Peer, ...]:
    def scipy_log_expit(arrays, threads):
        sp = _scipy_special()
        z, y = arrays
        return lambda: -(y * sp.log_expit(z) + (1 - y) * sp.log_expit(-z)).sum(-1)

    def numpy_formula(arrays, threads):
        z, y = arrays
        return lambda: (np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z)))).sum(-1)

    def torch_bce(arrays, threads):
        torch = _torch(threads)
        z, y = _tensors(torch, arrays)
        bce = torch.nn.functional.binary_cross_entropy_with_logits
        return lambda: bce(z, y.expand_as(z), reduction="none").sum(-1)

    return (
        Peer("scipy log_expit formula", "scipy", scipy_log_expit),
        Peer("numpy formula", "numpy", numpy_formula),
        Peer("torch bce_with_logits", "torch", torch_bce),
    )


#: Every op the bench knows, in table order. Ops missing from fastdiv are skipped.
REGISTRY: tuple[Op, ...] = (
    Op("kl_divergence", "kl_divergence", ("p", "q"), _kl_peers(), "scipy rel_entr.sum",
       broadcast=True),
    Op("entropy", "entropy", ("p",), _entropy_peers(), "scipy entr.sum"),
    Op("cross_entropy", "cross_entropy", ("p", "q"), _cross_entropy_peers(), "scipy -xlogy.sum",
       broadcast=True),
    Op("js_divergence", "js_divergence", ("p", "q"), _js_peers(), "scipy jensenshannon**2",
       broadcast=True),
    Op("rel_entr", "rel_entr", ("p", "q"), _rel_entr_peers(), "scipy rel_entr",
       elementwise=True, broadcast=True),
    Op("entr", "entr", ("p",), _entr_peers(), "scipy entr", elementwise=True),
    Op("logsumexp", "logsumexp", ("z",), _logsumexp_peers(), "scipy logsumexp"),
    Op("log_softmax", "log_softmax", ("z",), _log_softmax_peers(), "scipy log_softmax",
       elementwise=True),
    Op("softmax", "softmax", ("z",), _softmax_peers(), "scipy softmax", elementwise=True),
    Op("softmax_cross_entropy", "softmax_cross_entropy", ("z", "t"), _softmax_ce_index_peers(),
       "scipy logsumexp-z[t]"),
    Op("softmax_cross_entropy[grad]", "softmax_cross_entropy", ("z", "t"),
       _softmax_ce_grad_peers(), "scipy logsumexp+exp", kwargs={"return_grad": True}),
    Op("softmax_cross_entropy[prob]", "softmax_cross_entropy", ("z", "q"),
       _softmax_ce_prob_peers(), "scipy -p*log_softmax"),
    Op("kl_divergence_logits", "kl_divergence_logits", ("z", "z2"), _kl_logits_peers(),
       "scipy log_softmax formula", broadcast=True),
    Op("binary_cross_entropy", "binary_cross_entropy", ("y", "u"), _bce_peers(),
       "scipy xlogy formula", broadcast=True),
    Op("binary_cross_entropy_with_logits", "binary_cross_entropy_with_logits", ("z", "y"),
       _bce_logits_peers(), "scipy log_expit formula", broadcast=True),
)


def known_ops() -> list[str]:
    """Labels of every op in the registry, available in fastdiv or not."""
    return [op.label for op in REGISTRY]


def select_ops(labels: Sequence[str] | None = None) -> list[Op]:
    """The registry's ops that fastdiv provides, optionally only ``labels``.

    Parameters
    ----------
    labels : sequence of str, optional
        Op labels or fastdiv function names; a function name selects all its
        variants. ``None`` selects every available op.

    Returns
    -------
    list of Op
        In registry order.

    Raises
    ------
    ValueError
        If a label names no op in the registry.

    Examples
    --------
    >>> [op.label for op in select_ops(["kl_divergence", "entropy"])]
    ['kl_divergence', 'entropy']
    """
    available = [op for op in REGISTRY if op.available()]
    if labels is None:
        return available
    unknown = [
        label for label in labels
        if not any(label in (op.label, op.function) for op in REGISTRY)
    ]
    if unknown:
        raise ValueError(f"unknown op(s) {', '.join(unknown)}; known: {', '.join(known_ops())}")
    return [op for op in available if op.label in labels or op.function in labels]
