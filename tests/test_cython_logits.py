"""Tests specific to the Cython logit-space kernels: the vector exp, every SIMD
path, the kernel contract called directly with awkward layouts, threads.

tests/test_logits_conformance.py checks every backend against ``reference``
through the public API; this module checks what only this backend has: its
hand-written ``exp`` (ulp error, special values), the run-time SIMD dispatch
of ``_logit_kernels`` (every path this CPU supports gives the same results)
and its driver (stride-0 and strided rows, masks, scratch rows per thread).
"""

from __future__ import annotations

import numpy as np
import pytest

from test_logits import edge_logits

logit_kernels = pytest.importorskip(
    "fastdiv._backends.cython._logit_kernels", reason="the Cython extension is not built"
)
import fastdiv  # noqa: E402
from fastdiv._backends import reference  # noqa: E402
from fastdiv._backends.cython import _kernels  # noqa: E402

PATHS = _kernels._simd_paths()
DTYPES = [np.float64, np.float32]
inf, nan = np.inf, np.nan


@pytest.fixture(params=PATHS)
def simd(request):
    """Run the test on one SIMD path, then return to the default choice."""
    logit_kernels._set_simd(request.param)
    yield request.param
    logit_kernels._set_simd(None)


def _exp(x):
    x = np.ascontiguousarray(x).reshape(1, -1)
    out = np.empty_like(x)
    logit_kernels._exp(x, out)
    return out[0]


def _ulps(actual, x):
    """Error of ``actual`` against ``exp(x)`` in long double, in units of the
    last place of the correctly rounded double result."""
    exact = np.exp(x.astype(np.longdouble))
    rounded = exact.astype(np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        spacing = np.spacing(np.abs(rounded)).astype(np.longdouble)
        return np.asarray(np.abs(actual.astype(np.longdouble) - exact) / spacing, np.float64)


# ------------------------------------------------------------------------ exp


def test_exp_within_one_ulp(simd):
    if np.finfo(np.longdouble).nmant < 60:
        pytest.skip("long double is not extended precision here")
    rng = np.random.default_rng(7)
    x = np.concatenate([
        rng.uniform(-745.2, 709.78, 600_000),   # every result binade, subnormals included
        rng.uniform(-1.0, 1.0, 200_000),
        rng.uniform(-40.0, 0.0, 200_000),       # the kernels' exp(z - max)
        np.ldexp(rng.uniform(-1, 1, 1000), -rng.integers(0, 1070, 1000)),  # tiny |x|
    ])
    got = _exp(x)
    finite = np.isfinite(got)
    assert finite.all(), x[~finite][:5]
    ulps = _ulps(got, x)
    worst = np.argmax(ulps)
    assert ulps.max() <= 1.0, (x[worst], got[worst], ulps[worst])


def test_exp_special_values(simd):
    x = np.array([0.0, -0.0, inf, -inf, nan, 709.78, 709.79, 1e300, -1e300,
                  -745.13, -745.14, -708.5, 1e-300, -1e-300, 5e-324])
    with np.errstate(over="ignore"):
        expected = np.exp(x)
    got = _exp(x)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
    exact = ~np.isfinite(expected) | (expected == 0) | (np.abs(x) < 1e-200)
    np.testing.assert_array_equal(got[exact], expected[exact])
    np.testing.assert_allclose(got[~exact], expected[~exact], rtol=4e-16)


def test_float32_exp_within_one_float_ulp(simd):
    """The float32 kernels' exp (float arithmetic, arguments z - max <= 0)."""
    rng = np.random.default_rng(8)
    x = np.concatenate([rng.uniform(-104.0, 0.0, 400_000), rng.uniform(-1.0, 0.0, 100_000),
                        np.array([0.0, -0.0, -inf, -87.3, -103.9, -104.0, -200.0])])
    x = x.astype(np.float32)
    got = _exp(x)
    assert got.dtype == np.float32
    exact = np.exp(x.astype(np.float64))
    spacing = np.spacing(exact.astype(np.float32)).astype(np.float64)
    ulps = np.abs(got.astype(np.float64) - exact) / spacing
    worst = np.argmax(ulps)
    assert ulps.max() <= 1.0, (x[worst], got[worst], exact[worst], ulps[worst])
    np.testing.assert_array_equal(_exp(np.array([0.0, -inf, nan], np.float32)),
                                  np.array([1.0, 0.0, nan], np.float32))


# ------------------------------------------------------------- SIMD paths agree


def _all_kernels(dtype, rng):
    """Results of every logit kernel on awkward inputs, as a flat list of arrays."""
    z = np.concatenate([edge_logits(rng, dtype),
                        (rng.standard_normal((5, 7)) * 4).astype(dtype)])
    big = (rng.standard_normal((40, 3001)) * 5).astype(dtype)
    mask = rng.random(big.shape) < 0.7
    target = rng.integers(0, big.shape[1], big.shape[0])
    target[::7] = -1
    mask[np.arange(big.shape[0]), target] = True
    p = rng.random(big.shape).astype(dtype)
    results = []
    with np.errstate(all="ignore"):
        for a in (z, big):
            results.append(fastdiv.logsumexp(a))
            results.extend(fastdiv.logsumexp(a, b=np.linspace(-1, 2, a.shape[1]).astype(dtype),
                                             return_sign=True))
            results.append(fastdiv.log_softmax(a))
            results.append(fastdiv.softmax(a))
        results.extend(fastdiv.softmax_cross_entropy(big, target, ignore_index=-1,
                                                     label_smoothing=0.1, where=mask,
                                                     return_grad=True))
        results.extend(fastdiv.softmax_cross_entropy(big, p, return_grad=True))
        results.extend(fastdiv.kl_divergence_logits(big, big[::-1], temperature=2.0,
                                                    where=mask, return_grad=True))
        results.append(fastdiv.binary_cross_entropy(p, p[::-1]))
        results.append(fastdiv.binary_cross_entropy_with_logits(big, p, pos_weight=p[0]))
    return results


@pytest.mark.parametrize("dtype", DTYPES)
def test_every_simd_path_agrees(dtype):
    per_path = {}
    try:
        with fastdiv.use_backend("cython"):
            for path in PATHS:
                logit_kernels._set_simd(path)
                per_path[path] = _all_kernels(dtype, np.random.default_rng(11))
    finally:
        logit_kernels._set_simd(None)
    first = per_path[PATHS[0]]
    rtol = 1e-13 if dtype == np.float64 else 1e-6
    for path, results in per_path.items():
        for got, expected in zip(results, first):
            np.testing.assert_allclose(np.asarray(got, np.float64),
                                       np.asarray(expected, np.float64),
                                       rtol=rtol, atol=rtol, equal_nan=True,
                                       err_msg=f"{path} vs {PATHS[0]}")


def test_set_simd_rejects_unknown_and_unsupported_paths():
    with pytest.raises(ValueError, match="unknown SIMD path"):
        logit_kernels._set_simd("sse9")
    for name in ("baseline", "avx2", "avx512"):
        if name not in PATHS:
            with pytest.raises(RuntimeError, match="not supported"):
                logit_kernels._set_simd(name)
    assert logit_kernels._set_simd(None) == (PATHS[-1] if not _env_simd() else _env_simd())


def _env_simd():
    import os

    return os.environ.get("FASTDIV_SIMD", "").strip().lower() or None


# --------------------------------------------- the contract, called directly


def _call_both(name, args, *, rows, n, dtype, grad=False, row_out=False):
    """Call kernel ``name`` of both backends with fresh outputs; returns both."""
    results = []
    for module in (logit_kernels, reference):
        if row_out:
            out = (np.empty((rows, n), dtype),)
        elif grad:
            out = (np.empty(rows), np.empty((rows, n), dtype))
        else:
            out = (np.empty(rows),)
        with np.errstate(all="ignore"):
            getattr(module, name)(*args(out), 2)
        results.append(out)
    return results


@pytest.mark.parametrize("dtype", DTYPES)
def test_stride_zero_and_strided_rows(dtype):
    """A broadcast row (stride 0) and rows with a gap reach the kernels without copies."""
    rng = np.random.default_rng(3)
    base = (rng.standard_normal((60, 2 * 2000)) * 3).astype(dtype)
    z = base[:, :2000]                                            # row stride 2 * n
    assert z.strides[0] == 2 * 2000 * z.itemsize
    row = (rng.standard_normal(2000) * 3).astype(dtype)
    broadcast = np.broadcast_to(row, z.shape)                     # row stride 0
    assert broadcast.strides[0] == 0
    for a, b in ((z, broadcast), (broadcast, z)):
        ours, ref = _call_both("kl_divergence_logits",
                               lambda out: (a, b, 1.5, None, *out), rows=60, n=2000,
                               dtype=dtype, grad=True)
        np.testing.assert_allclose(ours[0], ref[0], rtol=1e-12 if dtype == np.float64 else 1e-6)
        np.testing.assert_allclose(ours[1], ref[1], atol=1e-14 if dtype == np.float64 else 2e-7)
        ours, ref = _call_both("logsumexp", lambda out: (a, b, None, *out, None),
                               rows=60, n=2000, dtype=dtype)
        np.testing.assert_allclose(ours[0], ref[0], rtol=1e-13 if dtype == np.float64 else 1e-7)


def test_softmax_in_place_and_ignored_rows_unread():
    rng = np.random.default_rng(4)
    z = rng.standard_normal((64, 1000)) * 3
    expected = np.empty_like(z)
    reference.softmax(z, expected, 1)
    in_place = z.copy()
    logit_kernels.softmax(in_place, in_place, 2)
    np.testing.assert_allclose(in_place, expected, atol=1e-15)
    # an ignored row's logits are never read: NaN there changes nothing
    z[::2] = nan
    target = np.where(np.arange(64) % 2 == 0, -1, 3).astype(np.intp)
    loss, grad = np.empty(64), np.empty_like(z)
    logit_kernels.softmax_cross_entropy(z, target, 0.0, None, loss, grad, 2)
    assert (loss[::2] == 0).all() and (grad[::2] == 0).all()
    assert np.isfinite(loss[1::2]).all()


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_results_do_not_depend_on_threads(threads):
    rng = np.random.default_rng(5)
    z = (rng.standard_normal((257, 3000)) * 4).astype(np.float32)
    target = rng.integers(0, 3000, 257).astype(np.intp)
    results = []
    for count in (1, threads):
        loss, grad = np.empty(257), np.empty_like(z)
        logit_kernels.softmax_cross_entropy(z, target, 0.1, None, loss, grad, count)
        results.append((loss, grad))
    np.testing.assert_array_equal(results[0][0], results[1][0])
    np.testing.assert_array_equal(results[0][1], results[1][1])


def test_kernels_reject_bad_buffers():
    z = np.zeros((3, 4))
    with pytest.raises(TypeError, match="float32 or float64"):
        logit_kernels.logsumexp(z.astype(np.int64), None, None, np.empty(3), None, 1)
    with pytest.raises(ValueError, match="unit inner stride"):
        logit_kernels.logsumexp(np.zeros((3, 8))[:, ::2], None, None, np.empty(3), None, 1)
    with pytest.raises(ValueError, match="one value per row"):
        logit_kernels.logsumexp(z, None, None, np.empty(2), None, 1)
    with pytest.raises(TypeError, match="one dtype"):
        logit_kernels.kl_divergence_logits(z, z.astype(np.float32), 1.0, None, np.empty(3),
                                           None, 1)


@pytest.mark.parametrize("path", PATHS)
def test_fastdiv_simd_environment_variable_is_honoured(path):
    import os
    import subprocess
    import sys

    code = ("from fastdiv._backends.cython import _logit_kernels as k; import numpy as np; "
            "k.logsumexp(np.zeros((2, 3)), None, None, np.empty(2), None, 1); print(k._simd())")
    env = {**os.environ, "FASTDIV_SIMD": path}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                            text=True, check=True)
    assert result.stdout.strip() == path


@pytest.mark.parametrize("dtype", DTYPES)
def test_long_rows_of_logsumexp_run_in_pieces(dtype):
    """Few rows of >= 2 * 65536 elements are split across threads; the
    pieces' maxima differ, and special values sit in a late piece."""
    rng = np.random.default_rng(9)
    a = (rng.standard_normal((3, 300_001)) * 4).astype(dtype)
    a[0, 200_000] = 40.0                    # the max in the last-but-one piece
    a[1, 250_000] = nan                     # NaN after an ordinary start
    a[2, 290_000] = inf
    a[2, 10] = nan                          # NaN wins over +inf from another piece
    b = rng.uniform(-1, 2, a.shape).astype(dtype)
    mask = rng.random(a.shape) < 0.9
    rtol = 1e-13 if dtype == np.float64 else 4e-7
    for kwargs in ({}, {"b": b, "return_sign": True}, {"where": mask}):
        results = []
        for threads in (1, 2):
            out, sign = np.empty(3), np.empty(3) if kwargs.get("return_sign") else None
            with np.errstate(all="ignore"):
                logit_kernels.logsumexp(a, kwargs.get("b"), kwargs.get("where"), out, sign, threads)
            results.append((out, sign))
        np.testing.assert_array_equal(results[0][0], results[1][0])
        expected, expected_sign = np.empty(3), np.empty(3)
        with np.errstate(all="ignore"):
            reference.logsumexp(a, kwargs.get("b"), kwargs.get("where"), expected,
                                expected_sign if kwargs.get("return_sign") else None, 1)
        np.testing.assert_allclose(results[0][0], expected, rtol=rtol, equal_nan=True)
        if kwargs.get("return_sign"):
            np.testing.assert_array_equal(results[0][1], expected_sign)
