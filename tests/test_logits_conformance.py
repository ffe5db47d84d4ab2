"""Every backend's logit-space kernels against ``reference``, on edge rows and layouts.

A compiled backend joins by being registered in ``fastdiv._backends``; until it
defines a logit kernel, ``_prepare`` routes that call to ``reference`` (tested
below), so these checks pass trivially and start to bite when the kernel lands.

Tolerance, per row, with ``spread`` the largest finite ``|logit|`` of the row
(the kernels subtract and add back the max) and ``log(n)``:
``|res - ref| <= rtol * (|ref| + spread + log(n + 1)) + tiny``, ``rtol = 1e-13``
for float64 and ``4e-7`` for float32 (computed in float64, rounded once).
Probabilities and gradients: ``atol = 1e-14`` (float64), ``2e-7`` (float32), times
``max(1, |sum(target)|)`` for the gradient of unnormalised probability targets.
NaN and +-inf must match exactly.
"""

from __future__ import annotations

import concurrent.futures
import types

import numpy as np
import pytest

import fastdiv
from fastdiv import _prepare
from fastdiv._backends import reference
from conftest import assert_special_equal
from test_logits import edge_logits

COMPILED = [name for name in fastdiv.available_backends() if name != "reference"]
DTYPES = [np.float64, np.float32]
RTOL = {np.dtype(np.float64): 1e-13, np.dtype(np.float32): 4e-7}
ATOL = {np.dtype(np.float64): 1e-14, np.dtype(np.float32): 2e-7}
inf, nan = np.inf, np.nan

pytestmark = pytest.mark.skipif(not COMPILED, reason="no compiled backend available")


@pytest.fixture(params=COMPILED)
def backend(request):
    return request.param


def run(backend, func, *args, **kwargs):
    with fastdiv.use_backend(backend), np.errstate(all="ignore"):
        return getattr(fastdiv, func)(*args, **kwargs)


def _row_scale(logits, result_shape):
    logits = np.asarray(logits, dtype=np.float64)
    finite = np.where(np.isfinite(logits), np.abs(logits), 0.0)
    spread = finite.max(axis=-1) if logits.shape[-1] else np.zeros(logits.shape[:-1])
    return np.broadcast_to(spread + np.log(logits.shape[-1] + 1.0), result_shape)


def assert_conforms(got, expected, dtype, scale=None, unit=1.0):
    got, expected = np.asarray(got), np.asarray(expected)
    assert got.dtype == expected.dtype == np.dtype(dtype)
    assert got.shape == expected.shape
    got64, exp64 = got.astype(np.float64), expected.astype(np.float64)
    assert_special_equal(got64, exp64)
    finite = np.isfinite(exp64)
    if scale is None:
        bound = np.broadcast_to(ATOL[np.dtype(dtype)] * unit, exp64.shape)
    else:
        bound = RTOL[np.dtype(dtype)] * (np.abs(exp64) + scale) + 1e-300
    with np.errstate(invalid="ignore"):
        err = np.abs(np.where(finite, got64 - exp64, 0.0))
    bad = err > bound
    assert not bad.any(), f"got {got64[bad][:5]}, reference {exp64[bad][:5]}"


def compare(backend, func, dtype, args, kwargs, scale_from=None, grad=False):
    got = run(backend, func, *args, **kwargs)
    expected = run("reference", func, *args, **kwargs)
    got_first = got[0] if isinstance(got, tuple) else got
    exp_first = expected[0] if isinstance(expected, tuple) else expected
    scale = None if scale_from is None else _row_scale(scale_from, np.shape(exp_first))
    assert_conforms(got_first, exp_first, dtype, scale)
    if isinstance(got, tuple):
        # the sign of logsumexp, or a gradient; a gradient sum(q) * softmax - q
        # of unnormalised targets is as large as sum(q), so its bound scales with it
        assert_conforms(got[1], expected[1], dtype, unit=_gradient_unit(args, kwargs))


def _gradient_unit(args, kwargs):
    """``max(1, |sum(target)|)`` per row for probability targets, else 1."""
    if len(args) < 2 or np.asarray(args[1]).dtype.kind != "f" or kwargs.get("where") is not None:
        return 1.0
    target = np.broadcast_to(np.asarray(args[1], np.float64), np.shape(args[0]))
    with np.errstate(invalid="ignore", over="ignore"):
        total = np.abs(np.nansum(target, axis=-1, keepdims=True))
    return np.maximum(1.0, np.where(np.isfinite(total), total, 1.0))


def _inputs(rng, dtype):
    """(name, logits) pairs: edge rows and random rows of several sizes and layouts."""
    big = rng.standard_normal((24, 1200)) * 8
    big[3, 10] = nan
    big[5] = -inf
    big[7, 20] = inf
    return [
        ("edge", edge_logits(rng, dtype)),
        ("random", big.astype(dtype)),
        ("strided", big.astype(dtype)[::3, ::2]),
        ("transposed", np.ascontiguousarray(big[:, :40].T).astype(dtype).T),
        ("one long row", (rng.standard_normal((1, 100_003)) * 3).astype(dtype)),
        ("n=1", rng.standard_normal((5, 1)).astype(dtype)),
    ]


@pytest.mark.parametrize("dtype", DTYPES)
def test_logsumexp_conforms(backend, dtype):
    rng = np.random.default_rng(40)
    for name, a in _inputs(rng, dtype):
        b = rng.standard_normal(a.shape).astype(dtype)
        b[rng.random(a.shape) < 0.2] = 0.0
        mask = rng.random(a.shape) < 0.8
        row_b = rng.uniform(0.5, 2, a.shape[-1]).astype(dtype)  # row stride 0
        for kwargs in (
            {},
            {"return_sign": True},
            {"b": b, "return_sign": True},
            {"b": b},
            {"b": row_b},
            {"where": mask},
            {"where": mask, "b": b, "return_sign": True},
        ):
            compare(backend, "logsumexp", dtype, (a,), kwargs, scale_from=a)
    empty = np.zeros((3, 0), dtype)
    compare(backend, "logsumexp", dtype, (empty,), {"return_sign": True}, scale_from=empty)


@pytest.mark.parametrize("func", ["log_softmax", "softmax"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_row_maps_conform(backend, func, dtype):
    rng = np.random.default_rng(41)
    for name, z in _inputs(rng, dtype):
        if func == "softmax":
            compare(backend, func, dtype, (z,), {})
        else:
            got, expected = run(backend, func, z), run("reference", func, z)
            assert_conforms(got, expected, dtype, _row_scale(z, z.shape[:-1])[..., None])
    z = (rng.standard_normal((30, 300)) * 5).astype(dtype)
    expected = run("reference", func, z)
    in_place = z.copy()
    run(backend, func, in_place, out=in_place)
    scale = None if func == "softmax" else _row_scale(z, z.shape[:-1])[..., None]
    assert_conforms(in_place, expected, dtype, scale)


def _class_targets(rng, z):
    target = rng.integers(0, z.shape[-1], z.shape[:-1])
    ignored = rng.random(target.shape) < 0.1
    return np.where(ignored, -100, target)


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_cross_entropy_conforms(backend, dtype):
    rng = np.random.default_rng(42)
    for name, z in _inputs(rng, dtype):
        target = _class_targets(rng, z)
        p = rng.random(z.shape).astype(dtype)
        p[rng.random(z.shape) < 0.3] = 0.0
        mask = rng.random(z.shape) < 0.8
        mask[np.arange(z.shape[0])[:, None], np.where(target < 0, 0, target)[:, None]] = True
        for eps in (0.0, 0.1):
            for return_grad in (False, True):
                common = {"label_smoothing": eps, "return_grad": return_grad}
                compare(backend, "softmax_cross_entropy", dtype, (z, target),
                        {**common, "ignore_index": -100}, scale_from=z)
                compare(backend, "softmax_cross_entropy", dtype, (z, target),
                        {**common, "ignore_index": -100, "where": mask}, scale_from=z)
                compare(backend, "softmax_cross_entropy", dtype, (z, p), common, scale_from=z)
                compare(backend, "softmax_cross_entropy", dtype, (z, p[0]), common, scale_from=z)
    every_row_ignored = np.full(edge_logits(rng, dtype).shape[0], -1)
    compare(backend, "softmax_cross_entropy", dtype, (edge_logits(rng, dtype), every_row_ignored),
            {"ignore_index": -1, "return_grad": True})


@pytest.mark.parametrize("dtype", DTYPES)
def test_kl_divergence_logits_conforms(backend, dtype):
    rng = np.random.default_rng(43)
    for name, a in _inputs(rng, dtype):
        b = (np.asarray(a, np.float64) + rng.standard_normal(a.shape)).astype(dtype)
        b[rng.random(a.shape) < 0.05] = -inf
        mask = rng.random(a.shape) < 0.8
        both = np.maximum(np.where(np.isfinite(a), np.abs(a), 0), np.where(np.isfinite(b), np.abs(b), 0))
        for kwargs in ({}, {"temperature": 2.5}, {"where": mask}, {"temperature": 0.5, "where": mask}):
            scale = both / kwargs.get("temperature", 1.0)
            for return_grad in (False, True):
                compare(backend, "kl_divergence_logits", dtype, (a, b),
                        {**kwargs, "return_grad": return_grad}, scale_from=scale)
        compare(backend, "kl_divergence_logits", dtype, (a, a), {"return_grad": True}, scale_from=a)


@pytest.mark.parametrize("dtype", DTYPES)
def test_binary_cross_entropies_conform(backend, dtype):
    rng = np.random.default_rng(44)
    edges = np.array([0.0, 1e-30, 0.3, 0.5, 1.0 - 1e-7, 1.0, -0.5, 1.5, inf, -inf, nan], dtype)
    p, q = (g.reshape(11, 11) for g in np.meshgrid(edges, edges, indexing="ij"))
    compare(backend, "binary_cross_entropy", dtype, (p, q), {}, scale_from=np.zeros_like(p))
    big_p, big_q = rng.random((2, 64, 3000)).astype(dtype)
    compare(backend, "binary_cross_entropy", dtype, (big_p, big_q), {}, scale_from=np.zeros_like(big_p))
    compare(backend, "binary_cross_entropy", dtype, (big_p[:, ::2], big_q[0, ::2]),
            {"where": rng.random(1500) < 0.5}, scale_from=np.zeros_like(big_p[:, ::2]))

    logits = np.array([0.0, 1e-8, 3.0, -3.0, 40.0, -40.0, 80.0, -80.0, inf, -inf, nan], dtype)
    targets = np.array([0.0, 0.25, 0.5, 1.0, 1.5, -0.5, 0.0, 1.0, 1.0, 0.0, 0.5], dtype)
    z, t = (g.reshape(11, 11) for g in np.meshgrid(logits, targets, indexing="ij"))
    weight = np.linspace(0.0, 3.0, 11).astype(dtype)
    for kwargs in ({}, {"pos_weight": weight}):
        compare(backend, "binary_cross_entropy_with_logits", dtype, (z, t), kwargs, scale_from=z)
    big_z = (rng.standard_normal((64, 3000)) * 10).astype(dtype)
    compare(backend, "binary_cross_entropy_with_logits", dtype, (big_z, big_p),
            {"pos_weight": rng.random(3000).astype(dtype)}, scale_from=big_z)


@pytest.mark.parametrize("threads", [1, 2])
def test_thread_counts_agree(backend, threads, restore_config):
    rng = np.random.default_rng(45)
    z = rng.standard_normal((300, 700)) * 4
    target = rng.integers(0, 700, 300)
    expected = run("reference", "softmax_cross_entropy", z, target, return_grad=True)
    fastdiv.set_num_threads(threads)
    got = run(backend, "softmax_cross_entropy", z, target, return_grad=True)
    assert_conforms(got[0], expected[0], np.float64, _row_scale(z, (300,)))
    assert_conforms(got[1], expected[1], np.float64)
    assert_conforms(run(backend, "logsumexp", z), run("reference", "logsumexp", z), np.float64,
                    _row_scale(z, (300,)))


def test_concurrent_calls_from_python_threads(backend):
    rng = np.random.default_rng(46)
    inputs = [rng.standard_normal((200, 800)) * 3 for _ in range(4)]
    serial = [run(backend, "logsumexp", a) for a in inputs]

    def work(i):
        return run(backend, "logsumexp", inputs[i % 4])

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        results = list(pool.map(work, range(16)))
    for i, result in enumerate(results):
        np.testing.assert_array_equal(result, serial[i % 4])


def test_missing_kernel_routes_to_reference():
    partial = types.ModuleType("partial_backend")
    partial.logsumexp = lambda *args: None
    assert _prepare._with_kernel(partial, "logsumexp") is partial
    assert _prepare._with_kernel(partial, "softmax_cross_entropy") is reference


def test_longdouble_stays_on_reference():
    z = np.linspace(-3, 3, 12, dtype=np.longdouble).reshape(3, 4)
    got = fastdiv.logsumexp(z)
    assert got.dtype == np.longdouble
    loss, grad = fastdiv.softmax_cross_entropy(z, [0, 1, 2], return_grad=True)
    assert loss.dtype == grad.dtype == np.longdouble
    np.testing.assert_allclose(np.float64(got), fastdiv.logsumexp(np.float64(z)), rtol=1e-15)
