"""Tests specific to the Cython backend: its vector log, every SIMD path, layouts, threads.

The generic conformance suite (tests/test_conformance.py) checks every backend
against ``reference`` through the public API; this module checks what only
this backend has: the hand-written ``log`` (ulp error), the run-time SIMD
dispatch (every path this CPU supports gives the same results), the kernel
contract called directly with awkward layouts, the chunking of long rows and
its independence of the thread count, and concurrent calls.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from conftest import assert_close_or_special, edge_grid, log_ratio_edge_rows, ulp_rtol

kernels = pytest.importorskip(
    "fastdiv._backends.cython._kernels", reason="the Cython extension is not built"
)
import fastdiv  # noqa: E402
from fastdiv._backends import cython as backend  # noqa: E402
from fastdiv._backends import reference  # noqa: E402

PATHS = kernels._simd_paths()
DTYPES = [np.float64, np.float32]
REDUCTIONS = ["entropy", "cross_entropy", "kl_divergence", "js_divergence"]
#: Relative tolerance of a row result against the reference (float32 terms
#: are computed in float32 arithmetic, summed in float64).
RTOL = {np.float64: 1e-13, np.float32: 2e-6}
#: Absolute tolerance for sums of ~3000 terms of size ~1 that cancel.
ATOL_SUM = {np.float64: 1e-15, np.float32: 1e-9}


@pytest.fixture(params=PATHS)
def simd(request):
    """Run the test on one SIMD path, then return to the default choice."""
    kernels._set_simd(request.param)
    yield request.param
    kernels._set_simd(None)


def _reduce(name, p, q, where=None, normalize=False, threads=2, module=backend):
    """Call a reduction kernel; the result rounded to the input dtype, as the API returns it."""
    out = np.empty(p.shape[0])
    args = (p,) if name == "entropy" else (p, q)
    getattr(module, name)(*args, where, normalize, out, threads)
    with np.errstate(over="ignore"):
        return out.astype(p.dtype)


def _check(actual, expected, rtol, atol=0.0, label=""):
    """assert_close_or_special, naming the case on failure."""
    try:
        assert_close_or_special(actual, expected, rtol=rtol, atol=atol)
    except AssertionError as error:
        raise AssertionError(f"{label}: {error}") from None


def _ulps(actual, expected, dtype):
    """Distance in units of the last place of ``dtype`` (NaN/inf pairs must match)."""
    actual = actual.astype(np.float64)
    expected = expected.astype(np.float64)
    spacing = np.spacing(np.abs(expected).astype(dtype)).astype(np.float64)
    return np.abs(actual - expected) / spacing


# ------------------------------------------------------------------------ log


def _positive_doubles(count, seed):
    """Random positive doubles: uniform bit patterns (every binade, subnormals
    included) plus a share of subnormals and values near 1."""
    rng = np.random.default_rng(seed)
    bits = rng.integers(1, 0x7FF0000000000000, count, dtype=np.uint64)
    x = bits.view(np.float64)
    x[: count // 20] = rng.integers(1, 1 << 52, count // 20, dtype=np.uint64).view(np.float64)
    x[count // 20 : count // 10] = 1.0 + rng.uniform(-0.3, 0.42, count // 20)
    return x


def test_log_is_within_one_ulp_of_math_log(simd):
    x = _positive_doubles(1_000_000, seed=1)
    got = np.empty_like(x)
    kernels._log(x.reshape(1000, 1000), got.reshape(1000, 1000))
    expected = np.array([math.log(v) for v in x])
    assert _ulps(got, expected, np.float64).max() <= 1.0


def test_float32_log_is_within_one_ulp_of_rounded_float64_log(simd):
    rng = np.random.default_rng(2)
    x = rng.integers(1, 0x7F800000, 1_000_000, dtype=np.uint32).view(np.float32)
    got = np.empty_like(x)
    kernels._log(x.reshape(1000, 1000), got.reshape(1000, 1000))
    expected = np.log(x.astype(np.float64)).astype(np.float32)
    assert _ulps(got, expected, np.float32).max() <= 1.0


@pytest.mark.parametrize("dtype", DTYPES)
def test_log_special_values_are_exact(simd, dtype):
    x = np.array([[1.0, 0.0, -0.0, np.inf, np.nan, -1.0, -np.inf, 2.0]], dtype=dtype)
    got = np.empty_like(x)
    kernels._log(x, got)
    np.testing.assert_array_equal(
        got[0], np.array([0.0, -np.inf, -np.inf, np.inf, np.nan, np.nan, np.nan, math.log(2)], dtype=dtype)
    )


# ------------------------------------------------------------- SIMD dispatch


def test_info_names_the_path_and_threads():
    info = backend.info()
    assert info["simd"] in PATHS
    assert info["simd paths"] == PATHS
    assert isinstance(info["openmp"], bool)
    assert info["max threads"] >= 1


def test_set_simd_rejects_unknown_names():
    with pytest.raises(ValueError, match="unknown SIMD path"):
        kernels._set_simd("sse9")
    kernels._set_simd(None)


@pytest.mark.parametrize("path", PATHS)
def test_environment_forces_the_path_at_first_use(path):
    code = (
        "import os, numpy as np\n"
        "import fastdiv._backends.cython as b\n"
        f"os.environ['FASTDIV_SIMD'] = {path!r}\n"  # read at first use, not at import
        "print(b.info()['simd'])\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "FASTDIV_SIMD"}
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == path


def test_environment_with_a_bad_path_fails_on_first_use():
    code = (
        "import numpy as np, fastdiv\n"
        "fastdiv.set_backend('cython')\n"
        "fastdiv.kl_divergence([0.5, 0.5], [0.5, 0.5])\n"
    )
    env = dict(os.environ, FASTDIV_SIMD="sse9")
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert result.returncode != 0
    assert "unknown SIMD path 'sse9'" in result.stderr


def _all_results(dtype):
    """Every kernel on one awkward batch (edges, zeros, near-identical rows)."""
    rng = np.random.default_rng(3)
    p = rng.random((9, 3000)).astype(dtype)
    q = rng.random((9, 3000)).astype(dtype)
    p[0, ::7] = 0
    q[1, ::5] = 0
    q[2] = p[2] * (1 + 1e-6 * rng.standard_normal(3000)).astype(dtype)
    ep, eq = edge_grid(dtype)
    p[3, : ep.size], q[3, : eq.size] = ep, eq
    where = rng.random(p.shape) < 0.8
    results = {}
    for name in REDUCTIONS:
        for normalize in (False, True):
            results[name, normalize] = _reduce(name, p, q, where.view(np.uint8), normalize)
    for name, args in (("rel_entr", (p, q)), ("entr", (p,))):
        out = np.empty_like(p)
        getattr(backend, name)(*args, out, 2)
        results[name] = out
    return results


@pytest.mark.parametrize("dtype", DTYPES)
def test_every_simd_path_gives_the_same_results(dtype):
    by_path = {}
    try:
        for path in PATHS:
            kernels._set_simd(path)
            by_path[path] = _all_results(dtype)
    finally:
        kernels._set_simd(None)
    first, *others = PATHS
    for path in others:
        for key, expected in by_path[first].items():
            actual = by_path[path][key]
            # FMA vs separate rounding and the vector width change the last bits
            # of terms and the order of the sum; the near-identical row cancels
            _check(actual, expected, rtol=RTOL[dtype], atol=ATOL_SUM[dtype],
                   label=f"{path} vs {first}: {key}")


def test_fma_paths_agree_bitwise_elementwise():
    fma_paths = [path for path in PATHS if path != "baseline"]
    if len(fma_paths) < 2:
        pytest.skip("fewer than two FMA paths on this CPU")
    by_path = {}
    try:
        for path in fma_paths:
            kernels._set_simd(path)
            by_path[path] = _all_results(np.float64)
    finally:
        kernels._set_simd(None)
    for name in ("rel_entr", "entr"):
        np.testing.assert_array_equal(by_path[fma_paths[0]][name], by_path[fma_paths[1]][name])


# ---------------------------------------------------------- semantics, edges


@pytest.mark.parametrize("dtype", DTYPES)
def test_edge_grid_matches_reference_elementwise(simd, dtype):
    p, q = (a.reshape(1, -1) for a in edge_grid(dtype))
    for name, args in (("rel_entr", (p, q)), ("entr", (p,))):
        got, expected = np.empty_like(p), np.empty_like(p)
        getattr(backend, name)(*args, got, 1)
        getattr(reference, name)(*args, expected, 1)
        _check(got, expected, rtol=ulp_rtol(dtype), atol=1e-320, label=name)


@pytest.mark.parametrize("name", REDUCTIONS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_edge_grid_matches_reference_per_element(simd, name, dtype):
    """One element per row: every special value reaches the sum on its own."""
    p, q = (a.reshape(-1, 1) for a in edge_grid(dtype))
    _check(
        _reduce(name, p, q), _reduce(name, p, q, module=reference),
        rtol=ulp_rtol(dtype), atol=1e-320, label=name,
    )


@pytest.mark.parametrize("name", REDUCTIONS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_edge_values_inside_long_rows(simd, name, dtype):
    """Edge values scattered in long rows take the per-block slow path."""
    rng = np.random.default_rng(4)
    ep, eq = edge_grid(dtype)
    p = rng.random((ep.size, 1000)).astype(dtype)
    q = rng.random((ep.size, 1000)).astype(dtype)
    cols = rng.integers(0, 1000, ep.size)
    p[np.arange(ep.size), cols] = ep
    q[np.arange(ep.size), cols] = eq
    _check(
        _reduce(name, p, q), _reduce(name, p, q, module=reference),
        rtol=RTOL[dtype], atol=1e-300, label=name,
    )


@pytest.mark.parametrize("background", ["zeros", "random"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_kl_at_the_edges_of_the_log_ratio_range(simd, dtype, background):
    """Each pair sits in a long row, so its block takes the bit-checked fast path
    first; the pairs outside the range must leave it. Next to p = 0 (terms 0)
    the row's sum is the pair's term alone, however small."""
    p, q = log_ratio_edge_rows(dtype, background)
    for normalize in (False, True):
        with np.errstate(all="ignore"):
            expected = _reduce("kl_divergence", p, q, normalize=normalize, module=reference)
        _check(_reduce("kl_divergence", p, q, normalize=normalize), expected,
               rtol=RTOL[dtype], label=f"normalize={normalize}")


# ----------------------------------------------------------------- layouts


def _layouts(dtype):
    rng = np.random.default_rng(5)
    base_p = rng.random((12, 700)).astype(dtype)
    base_q = rng.random((12, 700)).astype(dtype)
    wide = rng.random((12, 1500)).astype(dtype)
    yield "contiguous", base_p, base_q
    yield "row stride", wide[:, 100:800], base_q
    yield "broadcast q", base_p, np.broadcast_to(base_q[3], base_p.shape)
    yield "broadcast p", np.broadcast_to(base_p[2], base_q.shape), base_q
    yield "negative row stride", base_p[::-1], base_q[::-2].repeat(2, axis=0)
    yield "read-only", _read_only(base_p), _read_only(base_q)
    yield "single column", base_p[:, :1], base_q[:, :1]
    yield "empty rows", base_p[:, :0], base_q[:, :0]
    yield "no rows", base_p[:0], base_q[:0]


def _read_only(a):
    a = a.copy()
    a.flags.writeable = False
    return a


@pytest.mark.parametrize("normalize", [False, True])
@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("name", REDUCTIONS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_layouts_masks_and_normalize_match_reference(name, dtype, masked, normalize):
    for layout, p, q in _layouts(dtype):
        where = None
        if masked:
            mask = np.random.default_rng(6).random(p.shape) < 0.7
            where = np.broadcast_to(mask[:1], p.shape) if layout == "broadcast q" else mask
            where = where.view(np.uint8)
        got = _reduce(name, p, q, where, normalize)
        expected = _reduce(name, p, q, where, normalize, module=reference)
        _check(got, expected, rtol=RTOL[dtype], label=layout)


def _short_layouts(dtype, n):
    """Batches of rows of ``n`` elements (the short-row kernels): several groups
    of FD_BLOCK elements and several units of 2048 rows, in every layout."""
    rng = np.random.default_rng(n)
    rows = 5000
    p = rng.random((rows, n)).astype(dtype)
    q = rng.random((rows, n)).astype(dtype)
    wide = rng.random((rows, n + 5)).astype(dtype)
    yield "contiguous", p, q
    yield "row stride", wide[:, 2:n + 2], q
    yield "broadcast q", p, np.broadcast_to(q[7], p.shape)
    yield "negative row stride", p[::-1], q


@pytest.mark.parametrize("n", [1, 3, 8, 10, 16])
@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("name", REDUCTIONS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_short_rows_match_reference(simd, name, dtype, masked, n):
    ep, eq = edge_grid(dtype)
    for layout, p, q in _short_layouts(dtype, n):
        p = p.copy()  # edge values at a few places, so some groups take the exact path
        spots = np.random.default_rng(1).integers(0, p.size, ep.size)
        p.reshape(-1)[spots] = ep
        where = None
        if masked:
            where = (np.random.default_rng(2).random(p.shape) < 0.7).view(np.uint8)
        got = _reduce(name, p, q, where)
        # float32 terms are float32 arithmetic: rows of terms ~1 that cancel keep ~n ulps
        atol = n * float(np.finfo(dtype).eps)
        _check(got, _reduce(name, p, q, where, module=reference), rtol=RTOL[dtype],
               atol=atol, label=f"{layout}, n={n}")
        assert np.array_equal(got, _reduce(name, p, q, where, threads=1), equal_nan=True)


@pytest.mark.parametrize("name", REDUCTIONS)
def test_short_row_result_does_not_depend_on_its_batch(name):
    """A row gives the same bits alone and at any place in a batch."""
    rng = np.random.default_rng(9)
    p, q = rng.random((300, 10)), rng.random((300, 10))
    batch = _reduce(name, p, q)
    for row in (0, 25, 26, 299):
        alone = _reduce(name, p[row:row + 1], q[row:row + 1])
        assert alone[0] == batch[row] or (np.isnan(alone[0]) and np.isnan(batch[row]))


def test_near_identical_kl_keeps_its_digits_in_short_rows():
    """Compensated per-row sums: tiny KL of near-identical short rows to ~1e-15."""
    mpmath = pytest.importorskip("mpmath")
    rng = np.random.default_rng(10)
    p = rng.random((50, 12))
    p /= p.sum(1, keepdims=True)
    q = p * (1 + 1e-7 * rng.standard_normal(p.shape))
    got = _reduce("kl_divergence", p, q)
    mpmath.mp.dps = 50
    for row in range(50):
        exact = mpmath.fsum(mpmath.mpf(a) * mpmath.log(mpmath.mpf(a) / mpmath.mpf(b))
                            for a, b in zip(p[row], q[row]))
        assert abs(got[row] - float(exact)) <= 1e-12 * abs(float(exact))


def test_narrow_to_float32_rejects_what_it_cannot_read():
    """The rounding itself is checked for every backend in test_conformance.py."""
    values = np.zeros(4)
    with pytest.raises(ValueError, match="contiguous 1-D"):
        kernels.narrow_to_float32(values, np.empty(3, dtype=np.float32))
    with pytest.raises(ValueError, match="contiguous 1-D"):
        kernels.narrow_to_float32(np.zeros(4, dtype=np.float32), np.empty(4, dtype=np.float32))


@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("dtype", DTYPES)
def test_stream_sum_adds_every_element_once(simd, dtype, threads):
    """bench's floor: lengths around the lane count and the float32 run length."""
    rng = np.random.default_rng(1)
    arrays = [rng.random(n).astype(dtype) for n in (0, 1, 31, 32, 33, 4095, 4097, 100_003)]
    expected = math.fsum(float(x) for a in arrays for x in a)
    assert kernels.stream_sum(arrays, threads) == pytest.approx(expected, rel=1e-6)
    empty = kernels.stream_sum([], threads)
    assert empty == 0.0 and isinstance(empty, float)


def test_stream_sum_rejects_what_it_cannot_read():
    with pytest.raises(ValueError, match="contiguous 1-D"):
        kernels.stream_sum([np.ones((2, 3))], 1)
    with pytest.raises(ValueError, match="contiguous 1-D"):
        kernels.stream_sum([np.ones(6)[::2]], 1)
    with pytest.raises(TypeError, match="float32 or float64"):
        kernels.stream_sum([np.ones(6, dtype=np.int64)], 1)


@pytest.mark.parametrize("dtype", DTYPES)
def test_elementwise_in_place(dtype):
    rng = np.random.default_rng(7)
    p = rng.random((5, 999)).astype(dtype)
    q = rng.random((5, 999)).astype(dtype)
    expected = np.empty_like(p)
    reference.rel_entr(p, q, expected, 1)
    backend.rel_entr(p, q, q, 2)  # out is q itself
    _check(q, expected, rtol=ulp_rtol(dtype))
    expected = np.empty_like(p)
    reference.entr(p, expected, 1)
    backend.entr(p, p, 2)
    _check(p, expected, rtol=ulp_rtol(dtype))


def test_awkward_normalisation_sums():
    """Sums that are subnormal, huge, zero or infinite divide like the reference."""
    p = np.array([[1e-320, 3e-320], [1e308, 1.5e308], [0.0, 0.0], [np.inf, 1.0], [1.0, 3.0]])
    q = np.array([[2e-320, 2e-320], [1.2e308, 1e308], [1.0, 1.0], [1.0, 1.0], [0.0, 0.0]])
    for name in REDUCTIONS:
        _check(
            _reduce(name, p, q, normalize=True),
            _reduce(name, p, q, normalize=True, module=reference),
            rtol=1e-12, label=name,
        )


# ------------------------------------------------------------------ accuracy


def test_near_identical_kl_keeps_its_digits():
    """KL of p and q = p (1 + 1e-9 noise): relative error near 1e-12, where the
    naive p log(p / q) sum is wrong in most of its digits (SciPy gh-20710)."""
    import mpmath

    rng = np.random.default_rng(8)
    p = rng.random((1, 2000))
    q = p * (1 + 1e-9 * rng.standard_normal(p.shape))
    got = _reduce("kl_divergence", p, q)[0]
    with mpmath.workdps(60):
        exact = float(mpmath.fsum(
            mpmath.mpf(a) * mpmath.log(mpmath.mpf(a) / mpmath.mpf(b)) for a, b in zip(p[0], q[0])
        ))
    naive = float(np.sum(p * np.log(p / q)))
    assert abs(got - exact) <= 1e-10 * abs(exact)
    assert abs(got - exact) < abs(naive - exact)


@pytest.mark.parametrize("delta", [1e-1, 1e-3, 1e-5])
def test_float32_js_keeps_its_digits_near_identical_rows(simd, delta):
    """float32 JS runs in float32 arithmetic; near p = q it switches to a series
    of positive terms, so it stays within float32 rounding of the float64 value."""
    rng = np.random.default_rng(12)
    p = rng.random((50, 1000)).astype(np.float32)
    q = (p * (1 + delta * rng.standard_normal(p.shape))).astype(np.float32)
    got = np.empty(50)
    expected = np.empty(50)
    backend.js_divergence(p, q, None, False, got, 2)
    reference.js_divergence(p, q, None, False, expected, 2)
    np.testing.assert_allclose(got, expected, rtol=1e-6)


# ------------------------------------------------------------------ threads


@pytest.mark.parametrize("shape", [(1, 1 << 21), (3, 300_001), (40, 5000)])
@pytest.mark.parametrize("name", REDUCTIONS)
def test_results_do_not_depend_on_the_thread_count(name, shape):
    """Work units (rows, or chunks of long rows) are fixed by the shape alone."""
    rng = np.random.default_rng(9)
    p = rng.random(shape)
    q = rng.random(shape)
    where = (rng.random(shape) < 0.9).view(np.uint8)
    one = _reduce(name, p, q, where, True, threads=1)
    for threads in (2, 3, 7):
        np.testing.assert_array_equal(_reduce(name, p, q, where, True, threads=threads), one)
    _check(
        one, _reduce(name, p, q, where, True, module=reference), rtol=1e-12, label=name
    )


def test_long_float32_row_matches_reference():
    rng = np.random.default_rng(10)
    p = rng.random((1, 1 << 21)).astype(np.float32)
    q = rng.random((1, 1 << 21)).astype(np.float32)
    for name in REDUCTIONS:
        _check(
            _reduce(name, p, q), _reduce(name, p, q, module=reference), rtol=1e-6, label=name
        )


def test_concurrent_calls_from_python_threads():
    rng = np.random.default_rng(11)
    batches = [(rng.random((64, 4096)), rng.random((64, 4096))) for _ in range(8)]
    expected = [_reduce("kl_divergence", p, q) for p, q in batches]

    def work(i):
        p, q = batches[i % len(batches)]
        return i % len(batches), _reduce("kl_divergence", p, q)

    with ThreadPoolExecutor(max_workers=4) as pool:
        for i, got in pool.map(work, range(48)):
            np.testing.assert_array_equal(got, expected[i])


def test_public_api_uses_this_backend(restore_config):
    fastdiv.set_backend("cython")
    fastdiv.set_num_threads(2)
    p = np.array([[0.2, 0.3, 0.5]])
    q = np.array([[0.1, 0.6, 0.3]])
    np.testing.assert_allclose(
        fastdiv.kl_divergence(p, q), np.sum(p * np.log(p / q), axis=-1), rtol=1e-15
    )
