"""Numba backend, logit space: the vector ``exp``, the bit-pattern max, and kernel paths.

``test_logits_conformance.py`` compares every backend with ``reference`` on
small inputs. This file covers what is particular to the Numba kernels: the
accuracy of the hand-written ``exp``, the order-preserving keys behind the
vectorised max, and the paths that only long rows reach (several blocks,
online merging of block maxima, special values in a late block, the
parallel driver), each against ``reference``.
"""

from __future__ import annotations

import numpy as np
import pytest

numba = pytest.importorskip("numba")

import fastdiv  # noqa: E402
from fastdiv._backends.numba import _exp, _logit_api, _logits  # noqa: E402
from fastdiv._backends.numba._options import BLOCK, SERIAL_BELOW  # noqa: E402

inf, nan = np.inf, np.nan
DTYPES = [np.float64, np.float32]


@numba.njit
def _exp_all(x, out):
    for j in range(x.size):
        out[j] = _exp.exp(x[j])


@numba.njit
def _key_round_trip(x, out, keys):
    for j in range(x.size):
        keys[j] = _logits._key(x[j])
        out[j] = _logits._unkey(keys[j], x[j])


def _ulp_error(x, dtype):
    """Largest error of ``_exp.exp`` over ``x`` in ulps of the correctly rounded result."""
    x = x.astype(dtype)
    got = np.empty_like(x)
    _exp_all(x, got)
    exact = np.exp(x.astype(np.longdouble))
    with np.errstate(over="ignore"):
        rounded = exact.astype(dtype)
    finite = np.isfinite(rounded)
    ulp = np.spacing(np.abs(rounded[finite])).astype(np.longdouble)
    return float(np.max(np.abs(got[finite].astype(np.longdouble) - exact[finite]) / ulp))


@pytest.mark.skipif(np.finfo(np.longdouble).nmant <= 52, reason="needs an extended long double")
@pytest.mark.parametrize("dtype, low, high", [(np.float64, -745.2, 709.8),
                                              (np.float32, -104.0, 88.8)])
def test_exp_within_one_ulp(dtype, low, high):
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.uniform(low, high, 400_000), rng.uniform(-1, 1, 200_000),
                        rng.uniform(-40, 0, 200_000)])
    assert _ulp_error(x, dtype) <= 1.0


@numba.njit
def _exp_term_all(x, out):
    for j in range(x.size):
        out[j] = _exp.exp_term(x[j])


@pytest.mark.skipif(np.finfo(np.longdouble).nmant <= 52, reason="needs an extended long double")
@pytest.mark.parametrize("dtype, flush", [(np.float64, -707.5), (np.float32, -86.5)])
def test_exp_term_within_one_ulp_and_flushes_below_normal(dtype, flush):
    """The hot-loop exp: 1 ulp on [flush, 0]; 0 below; exact at 0; NaN and -inf kept apart."""
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.uniform(flush, 0, 300_000), rng.uniform(-1, 0, 100_000),
                        [0.0, -0.0, flush]]).astype(dtype)
    got = np.empty_like(x)
    _exp_term_all(x, got)
    exact = np.exp(x.astype(np.longdouble))
    ulp = np.spacing(exact.astype(dtype)).astype(np.longdouble)
    assert float(np.max(np.abs(got.astype(np.longdouble) - exact) / ulp)) <= 1.0
    assert got[-3] == 1 and got[-2] == 1
    assert (got >= np.finfo(dtype).tiny).all()  # nothing kept is subnormal
    edge = np.array([-inf, nan, flush - 0.5, -1e30], dtype=dtype)
    out = np.empty_like(edge)
    _exp_term_all(edge, out)
    assert out[0] == 0 and np.isnan(out[1]) and out[2] == 0 and out[3] == 0


@numba.njit
def _exp_term_not_nan_all(x, out):
    for j in range(x.size):
        out[j] = _exp.exp_term_not_nan(x[j])


@pytest.mark.parametrize("dtype", DTYPES)
def test_exp_term_not_nan_matches_exp_term_off_nan(dtype):
    """The variant without the NaN select gives exp_term's bits for every other input."""
    rng = np.random.default_rng(2)
    x = np.concatenate([rng.uniform(-800, 0, 100_000), rng.uniform(-1, 0, 100_000),
                        [0.0, -0.0, -inf, -1e30, -86.5, -707.5]]).astype(dtype)
    got, want = np.empty_like(x), np.empty_like(x)
    _exp_term_not_nan_all(x, got)
    _exp_term_all(x, want)
    np.testing.assert_array_equal(got.view(np.uint8), want.view(np.uint8))


@pytest.mark.parametrize("dtype", DTYPES)
def test_exp_special_values(dtype):
    info = np.finfo(dtype)
    big = np.log(info.max)  # exp overflows just above
    tiny = np.log(info.smallest_subnormal)  # and rounds to 0 just below
    x = np.array([0.0, -0.0, inf, -inf, nan, 1.0, -1.0, big * 0.999, big * 1.001, tiny + 0.1,
                  tiny - 1.0, 1e30, -1e30, np.log(info.tiny) - 3], dtype=dtype)
    got = np.empty_like(x)
    _exp_all(x, got)
    with np.errstate(over="ignore", under="ignore"):
        expected = np.exp(x.astype(np.longdouble)).astype(dtype)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
    with np.errstate(invalid="ignore"):
        near = np.abs(got - expected) <= np.spacing(expected)
    ok = np.isnan(expected) | (got == expected) | near
    assert ok.all(), (x[~ok], got[~ok], expected[~ok])
    assert got[0] == 1 and got[1] == 1  # exactly


@pytest.mark.parametrize("dtype", DTYPES)
def test_keys_order_like_floats(dtype):
    x = np.array([-inf, -1e30, -1.0, -np.finfo(dtype).smallest_subnormal, -0.0, 0.0,
                  np.finfo(dtype).smallest_subnormal, 1.0, 3e38, inf], dtype=dtype)
    back = np.empty_like(x)
    keys = np.empty(x.size, dtype=np.int64 if dtype == np.float64 else np.int32)
    _key_round_trip(x, back, keys)
    np.testing.assert_array_equal(back.view(keys.dtype), x.view(keys.dtype))  # bit for bit
    assert (np.diff(keys) > 0).all()


# -- long rows: several blocks, merged online -----------------------------------------


def _long_rows(dtype, rows=6, n=3 * BLOCK + 17):
    rng = np.random.default_rng(7)
    z = rng.standard_normal((rows, n)) * 20
    z[1, :BLOCK] = -inf  # a first block of -inf only
    z[2, -3] = z[2].max() + 50  # the max in the last block, far above the others
    z[3, [5, BLOCK + 5, 2 * BLOCK + 5]] = 70.0  # the max in three blocks at once
    z[4, 2 * BLOCK + 1] = nan  # NaN in a late block
    z[5, 3 * BLOCK] = inf  # +inf in the short last block
    return z.astype(dtype)


def _both(func, *args, **kwargs):
    with np.errstate(all="ignore"):
        with fastdiv.use_backend("reference"):
            expected = getattr(fastdiv, func)(*args, **kwargs)
        with fastdiv.use_backend("numba"):
            got = getattr(fastdiv, func)(*args, **kwargs)
    return got, expected


def _close(got, expected, dtype, atol):
    got, expected = np.asarray(got, np.float64), np.asarray(expected, np.float64)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
    np.testing.assert_array_equal(got[np.isinf(expected)], expected[np.isinf(expected)])
    rtol = 1e-13 if dtype == np.float64 else 4e-7
    np.testing.assert_allclose(got, expected, rtol=rtol, atol=atol)


@pytest.fixture
def numba_logits(monkeypatch):
    """The Numba backend with its logit kernels (also before the package exports them)."""
    module = fastdiv._backends.load("numba")
    for name in _logit_api.__all__:
        if getattr(module, name, None) is None:
            monkeypatch.setattr(module, name, getattr(_logit_api, name), raising=False)
    return module


@pytest.mark.parametrize("dtype", DTYPES)
def test_long_rows_logsumexp(numba_logits, dtype):
    z = _long_rows(dtype)
    b = np.random.default_rng(1).uniform(-1, 2, z.shape[-1]).astype(dtype)
    mask = np.random.default_rng(2).random(z.shape) < 0.7
    for kwargs in ({}, {"b": b, "return_sign": True}, {"where": mask}):
        got, expected = _both("logsumexp", z, **kwargs)
        if isinstance(got, tuple):
            _close(got[1], expected[1], dtype, 0)
            got, expected = got[0], expected[0]
        _close(got, expected, dtype, 1e-12)


@pytest.mark.parametrize("func", ["softmax", "log_softmax"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_long_rows_row_maps_in_place(numba_logits, func, dtype):
    z = _long_rows(dtype)
    expected = _both(func, z)[1]
    in_place = z.copy()
    with np.errstate(all="ignore"), fastdiv.use_backend("numba"):
        getattr(fastdiv, func)(in_place, out=in_place)
    _close(in_place, expected, dtype, 1e-12 if dtype == np.float64 else 1e-5)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("smoothing", [0.0, 0.2])
def test_long_rows_cross_entropy_and_gradient(numba_logits, dtype, smoothing):
    z = _long_rows(dtype)
    rows, n = z.shape
    target = np.array([2 * BLOCK + 3, -100, n - 3, BLOCK + 5, 0, 1])
    got, expected = _both("softmax_cross_entropy", z, target, ignore_index=-100,
                          label_smoothing=smoothing, return_grad=True)
    _close(got[0], expected[0], dtype, 1e-11)
    _close(got[1], expected[1], dtype, 1e-14 if dtype == np.float64 else 2e-7)
    p = np.random.default_rng(3).dirichlet(np.ones(n), rows).astype(dtype)
    got, expected = _both("softmax_cross_entropy", z, p, label_smoothing=smoothing,
                          return_grad=True)
    _close(got[0], expected[0], dtype, 1e-11)
    _close(got[1], expected[1], dtype, 1e-14 if dtype == np.float64 else 2e-7)


@pytest.mark.parametrize("dtype", DTYPES)
def test_long_rows_kl_divergence_logits(numba_logits, dtype):
    a = _long_rows(dtype)
    b = (a + np.random.default_rng(4).standard_normal(a.shape)).astype(dtype)
    got, expected = _both("kl_divergence_logits", a, b, temperature=2.0, return_grad=True)
    _close(got[0], expected[0], dtype, 1e-11)
    _close(got[1], expected[1], dtype, 1e-14 if dtype == np.float64 else 2e-7)
    with fastdiv.use_backend("numba"), np.errstate(all="ignore"):
        loss, grad = fastdiv.kl_divergence_logits(a[:4], a[:4], return_grad=True)
    assert (loss[[0, 2, 3]] == 0).all() and (grad[[0, 2, 3]] == 0).all()  # exactly


def test_logsumexp_keeps_the_tail_digits(numba_logits):
    z = np.full((2, 2 * BLOCK), -inf)
    z[:, 0] = 0.0
    z[0, BLOCK + 1] = -46.0  # the small term in another block than the max
    z[1, 1] = -46.0
    with fastdiv.use_backend("numba"):
        got = fastdiv.logsumexp(z)
    np.testing.assert_allclose(got, np.log1p(np.exp(-46.0)), rtol=1e-15)


@pytest.mark.parametrize("dtype", DTYPES)
def test_parallel_and_serial_paths_agree(numba_logits, dtype, restore_config):
    rng = np.random.default_rng(5)
    rows = 2 * SERIAL_BELOW // 1000 + 3
    z = (rng.standard_normal((rows, 1000)) * 5).astype(dtype)
    target = rng.integers(0, 1000, rows)
    labels = (rng.random(z.shape) < 0.5).astype(dtype)
    results = []
    for threads in (1, 2):
        fastdiv.set_num_threads(threads)
        with fastdiv.use_backend("numba"):
            results.append((fastdiv.logsumexp(z), fastdiv.softmax(z),
                            *fastdiv.softmax_cross_entropy(z, target, return_grad=True),
                            fastdiv.binary_cross_entropy_with_logits(z, labels)))
    for serial, parallel in zip(*results):
        np.testing.assert_array_equal(serial, parallel)


@pytest.mark.parametrize("dtype", DTYPES)
def test_broadcast_and_strided_operands_without_copies(numba_logits, dtype):
    rng = np.random.default_rng(6)
    base = (rng.standard_normal((8, 2 * BLOCK + 10)) * 4).astype(dtype)
    strided = base[::2, ::1]  # row stride twice the row length
    row = base[0]  # broadcast against strided: row stride 0
    for func, args in (("kl_divergence_logits", (strided, row)),
                       ("binary_cross_entropy_with_logits", (strided, (row > 0).astype(dtype))),
                       ("softmax_cross_entropy", (strided, np.abs(row) / np.abs(row).sum()))):
        got, expected = _both(func, *args)
        _close(got, expected, dtype, 1e-11)


def test_kernels_are_used(numba_logits):
    from fastdiv import _prepare

    for name in _logit_api.__all__:
        assert _prepare._with_kernel(numba_logits, name) is numba_logits



@pytest.mark.parametrize("dtype", DTYPES)
def test_few_long_rows_split_across_threads(numba_logits, dtype, restore_config):
    """Rows cut into chunks (fewer rows than threads): merged statistics, NaN and inf rows."""
    assert _logits._plan(2, 200_001, 2)[0] == 2  # this input takes the chunked path
    fastdiv.set_num_threads(2)
    rng = np.random.default_rng(8)
    a = (rng.standard_normal((2, 200_001)) * 4).astype(dtype)
    a[0, 150_000] = 40.0  # the max in a late chunk
    b = (a + rng.standard_normal(a.shape)).astype(dtype)
    mask = rng.random(a.shape) < 0.8
    target = np.array([150_000, 7])
    mask[np.arange(2), target] = True
    nan_row = a.copy()
    nan_row[1, 123_456] = nan
    for func, args, kwargs in (
        ("logsumexp", (a,), {"b": b, "where": mask, "return_sign": True}),
        ("logsumexp", (nan_row,), {}),
        ("softmax", (nan_row,), {}),
        ("log_softmax", (a,), {}),
        ("softmax_cross_entropy", (a, target), {"where": mask, "label_smoothing": 0.1,
                                                "return_grad": True}),
        ("softmax_cross_entropy", (nan_row, target), {"return_grad": True}),
        ("kl_divergence_logits", (a, b), {"where": mask, "return_grad": True}),
        ("binary_cross_entropy_with_logits", (a, (b > 0).astype(dtype)), {"where": mask}),
    ):
        got, expected = _both(func, *args, **kwargs)
        got = got if isinstance(got, tuple) else (got,)
        expected = expected if isinstance(expected, tuple) else (expected,)
        for g, e in zip(got, expected):
            _close(g, e, dtype, 1e-11 if dtype == np.float64 else 1e-5)


CALLS = {
    "logsumexp": lambda z, t: fastdiv.logsumexp(z),
    "log_softmax": lambda z, t: fastdiv.log_softmax(z),
    "softmax": lambda z, t: fastdiv.softmax(z),
    "softmax_cross_entropy": lambda z, t: fastdiv.softmax_cross_entropy(z, np.zeros(len(z), int)),
    "softmax_cross_entropy_probs": lambda z, t: fastdiv.softmax_cross_entropy(z, t),
    "kl_divergence_logits": lambda z, t: fastdiv.kl_divergence_logits(z, t),
    "binary_cross_entropy": lambda z, t: fastdiv.binary_cross_entropy(t, t),
    "binary_cross_entropy_with_logits": lambda z, t: fastdiv.binary_cross_entropy_with_logits(z, t),
}


@pytest.mark.parametrize("name", sorted(CALLS))
def test_a_second_call_compiles_nothing(numba_logits, monkeypatch, name):
    """A kernel that needs ``literally`` at its entry used to go through Numba's
    compiler on every call from Python (milliseconds for a (32, 10) softmax)."""
    rng = np.random.default_rng(0)
    z, t = rng.standard_normal((32, 10)), rng.random((32, 10))
    with fastdiv.use_backend("numba"):
        CALLS[name](z, t)  # compiles (or loads from the cache)
        compiles = []
        original = numba.core.dispatcher.Dispatcher._compile_for_args

        def counting(self, *args, **kwargs):
            compiles.append(self.py_func.__name__)
            return original(self, *args, **kwargs)

        monkeypatch.setattr(numba.core.dispatcher.Dispatcher, "_compile_for_args", counting)
        CALLS[name](z, t)
    assert compiles == []


@pytest.mark.parametrize("kind", [_logits.BCE, _logits.BCE_LOGITS], ids=["probs", "logits"])
def test_binary_cross_entropy_term_loops_compile_to_simd(kind):
    """The per-element loops of both BCE kinds vectorise (a scalar loop ran ~7x slower).

    Compiled afresh (no cache), so that its machine code can be read.
    """
    fill = numba.njit(error_model="numpy", fastmath={"contract"})(_logits._bce_fill.py_func)
    a = np.random.default_rng(5).random(300)
    fill(kind, a, a, a, False, np.empty_like(a))
    asm = next(iter(fill.inspect_asm().values()))
    packed = [line for line in asm.splitlines()
              if "pd\t" in line and ("ymm" in line or "zmm" in line)]
    assert any("vfmadd" in line for line in packed)
