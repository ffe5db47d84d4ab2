"""Tests specific to the Numba backend: its math, layouts, threads, caching and laziness.

The generic conformance suite (``test_conformance.py``) runs every backend
against ``reference``; these tests look at what only the Numba backend has:
the bit-pattern ``log``, the ``flat, start, step`` layout with any row stride,
the serial / row-parallel / chunked paths, concurrent calls from Python
threads, the on-disk cache with its read-only fallback, and the lazy import.
"""

from __future__ import annotations

import concurrent.futures
import math
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import scipy.special

from conftest import (
    assert_close_or_special,
    assert_special_equal,
    edge_grid,
    log_ratio_edge_rows,
)

pytest.importorskip("numba")

import llvmlite.binding  # noqa: E402
import numba  # noqa: E402

import fastdiv  # noqa: E402
from fastdiv._backends import numba as nb  # noqa: E402
from fastdiv._backends import reference as ref  # noqa: E402
from fastdiv._backends.numba import _math, _options, _terms  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
REDUCTIONS = ["entropy", "cross_entropy", "kl_divergence", "js_divergence"]
DTYPES = [np.float64, np.float32]
RTOL = {np.dtype(np.float64): 1e-12, np.dtype(np.float32): 2e-6}
TINY = {np.dtype(np.float64): 1e-300, np.dtype(np.float32): 1e-40}  # subnormal results
_HOST_AVX512 = bool(llvmlite.binding.get_host_cpu_features().get("avx512f", False))


@numba.njit(error_model="numpy")
def _log_all(x, out):
    for i in range(x.size):
        out[i] = _math.log(x[i])


@numba.njit(error_model="numpy")
def _log1p_all(x, out):
    for i in range(x.size):
        out[i] = _math.log1p(x[i])


@numba.njit(error_model="numpy")
def _log_ratio_all(p, q, out):
    for i in range(p.size):
        out[i] = _math.log_ratio(p[i], q[i])


def _ulps(actual, expected, dtype):
    """|actual - expected| in units of the last place of ``expected`` (as ``dtype``)."""
    spacing = np.spacing(np.abs(expected).astype(dtype)).astype(np.float64)
    return np.abs(actual.astype(np.float64) - expected.astype(np.float64)) / spacing


# -- the vectorisable math ----------------------------------------------------------


def test_log_within_one_ulp_of_math_log_over_the_whole_range():
    rng = np.random.default_rng(1)
    # Uniform bit patterns: every binade from the smallest subnormal to the largest
    # finite number is equally likely.
    x = rng.integers(1, 0x7FF0000000000000, 1_000_000, dtype=np.int64).view(np.float64)
    x = np.concatenate([x, rng.uniform(0.5, 2.0, 100_000)])  # near 1: relative accuracy
    got = np.empty_like(x)
    _log_all(x, got)
    expected = np.array([math.log(v) for v in x])
    nonzero = expected != 0
    assert _ulps(got[nonzero], expected[nonzero], np.float64).max() <= 1.0
    assert (got[~nonzero] == 0).all()


def test_log_float32_within_one_ulp():
    rng = np.random.default_rng(2)
    x = rng.integers(1, 0x7F800000, 300_000, dtype=np.int32).view(np.float32)
    got = np.empty_like(x)
    _log_all(x, got)
    expected = np.log(x.astype(np.float64))
    nonzero = expected != 0
    assert _ulps(got[nonzero], expected[nonzero], np.float32).max() <= 1.0


@pytest.mark.parametrize("dtype", DTYPES)
def test_log_special_values_exact(dtype):
    x = np.array([1.0, 0.0, -0.0, np.inf, np.nan, -1.0, -np.inf], dtype=dtype)
    got = np.empty_like(x)
    _log_all(x, got)
    assert got[0] == 0.0 and not np.signbit(got[0])
    assert_special_equal(got[1:], [-np.inf, -np.inf, np.inf, np.nan, np.nan, np.nan])


@pytest.mark.skipif(np.finfo(np.longdouble).nmant <= 52, reason="needs an extended long double")
@pytest.mark.parametrize("dtype", DTYPES)
def test_log_ratio_within_two_ulp(dtype):
    """log(p / q) with one division (the KL blocks), on its whole range: p and q
    anywhere in it, and q = p (1 + d) for d down to the last bits.

    The reference takes the log of the long-double ratio (never log p - log q: two
    logs of about 700 cancel to a result near 0.2 with an error of 2 ulp of double)."""
    rng = np.random.default_rng(13)
    n, e = 200_000, (1020 if dtype == np.float64 else 124)
    p = np.ldexp(rng.random(2 * n) + 0.5, rng.integers(-e, e, 2 * n))
    q = np.ldexp(rng.random(2 * n) + 0.5, rng.integers(-e, e, 2 * n))
    q[n:] = p[n:] * (1 + (rng.random(n) - 0.5) * np.ldexp(1.0, -rng.integers(0, 52, n)))
    p, q = p.astype(dtype), q.astype(dtype)
    got = np.empty_like(p)
    _log_ratio_all(p, q, got)
    wide_p, wide_q = p.astype(np.longdouble), q.astype(np.longdouble)
    with np.errstate(divide="ignore"):
        exact = np.where(np.abs(wide_p / wide_q - 1) > 0.25, np.log(wide_p / wide_q),
                         np.log1p((wide_p - wide_q) / wide_q))
    nonzero = exact != 0
    assert (got[~nonzero] == 0).all()
    spacing = np.spacing(np.abs(exact[nonzero]).astype(dtype)).astype(np.longdouble)
    assert (np.abs(got[nonzero] - exact[nonzero]) / spacing).max() <= 2


@pytest.mark.parametrize("dtype", DTYPES)
def test_log1p_accurate_for_tiny_and_large_arguments(dtype):
    rng = np.random.default_rng(3)
    tiny = float(np.finfo(dtype).tiny)
    x = np.concatenate([
        rng.uniform(-1, 1, 100_000),
        np.exp(rng.uniform(np.log(tiny), 0, 50_000)) * rng.choice([-1, 1], 50_000),
        np.exp(rng.uniform(0, np.log(float(np.finfo(dtype).max)), 50_000)),
    ]).astype(dtype)
    x = x[x > -1]
    got = np.empty_like(x)
    _log1p_all(x, got)
    expected = np.log1p(x.astype(np.float64))  # float64 libm: a reference for both
    nonzero = (expected != 0) & np.isfinite(expected)
    limit = 1.5 if dtype == np.float32 else 2.0  # vs float64 libm: its error adds for float64
    assert _ulps(got[nonzero], expected[nonzero], dtype).max() <= limit


@pytest.mark.parametrize("dtype", DTYPES)
def test_log1p_special_values(dtype):
    x = np.array([0.0, -0.0, -1.0, np.inf, np.nan, -2.0], dtype=dtype)
    got = np.empty_like(x)
    _log1p_all(x, got)
    assert got[0] == 0 and not np.signbit(got[0]) and np.signbit(got[1])
    assert_special_equal(got[2:], [-np.inf, np.inf, np.nan, np.nan])


def test_term_loops_compile_to_simd():
    """The term functions must not block vectorisation (no libm call in the loop)."""

    @numba.njit(error_model="numpy", fastmath=_options.MATH_FASTMATH)
    def fill(p, q, out):
        for j in range(p.size):
            out[j] = _terms.rel_entr_fast(p[j], q[j])

    p = np.random.default_rng(4).random(64)
    fill(p, p, np.empty_like(p))
    asm = next(iter(fill.inspect_asm().values()))
    assert not re.search(r"\$log\b|\blog@PLT|call\w*\s+log\b", asm)  # no libm log call
    packed = [line for line in asm.splitlines() if "pd\t" in line and "mm" in line]
    assert any(op in line for line in packed for op in ("vfmadd", "vmulpd", "mulpd"))


@pytest.mark.parametrize("kind", ["entropy", "cross_entropy", "kl"])
def test_float32_term_loops_keep_float_width(kind):
    """The float32 entropy, cross-entropy and KL term loops, range checks included, run in
    32-bit lanes: the bit patterns must not be widened to 64-bit integers (which halved the
    float lanes), and the loop must be vectorised at all (the KL check once stopped that).

    Compiled afresh (no cache), so that its machine code can be read.
    """
    from fastdiv._backends.numba import _kernels

    fill = numba.njit(error_model="numpy", fastmath=_options.MATH_FASTMATH)(
        _kernels._fill.py_func)
    p = np.random.default_rng(6).random(300).astype(np.float32)
    fill(getattr(_kernels, kind.upper()), p, p, np.ones(300, np.uint8), True, np.empty_like(p))
    asm = next(iter(fill.inspect_asm().values()))
    assert re.search(r"vpm(ax|in)ud\s", asm)  # running extremes in unsigned 32-bit lanes
    assert not re.search(r"vpcmp\w*uq\s|vpmaxuq|vpminuq|vpmovzxdq", asm)


@pytest.mark.parametrize(
    "kind, dtype, has_mask",  # a compile each (seconds): the mask of JS, and each type
    [("js", np.float64, True), ("kl", np.float64, False), ("cross_entropy", np.float32, True),
     ("entropy", np.float32, True)])
def test_fill_returns_the_sum_of_the_terms_the_mask_keeps(kind, dtype, has_mask):
    """``_fill`` returns the sum of the terms it writes, of the elements the mask keeps,
    when it adds them up in its loop (float64; float32 cross-entropy and KL, a group at
    a time), else 0 (float32 entropy and JS: the caller sums the buffer); left-out
    elements count for nothing, whatever their values (JS)."""
    from fastdiv._backends.numba import _kernels

    rng = np.random.default_rng(9)
    n = 1000  # groups and a tail
    p, q = rng.random(n).astype(dtype), rng.random(n).astype(dtype)
    mask = (rng.random(n) < 0.6).astype(np.uint8) if has_mask else np.ones(n, np.uint8)
    for array in (p, q, mask):
        array.flags.writeable = False  # as the kernels pass them: their compiled copy
    buffer = np.empty(n, dtype)
    outside, total = _kernels._fill(getattr(_kernels, kind.upper()), p, q, mask, has_mask,
                                    buffer)
    assert not outside
    if dtype == np.float32 and kind in ("entropy", "js"):
        assert total == 0
        return
    kept = buffer[mask != 0].astype(np.float64)
    assert total == pytest.approx(math.fsum(kept), rel=1e-14, abs=1e-14)


@pytest.mark.skipif(not _HOST_AVX512, reason="needs a CPU with AVX-512")
@pytest.mark.parametrize(
    "kind, dtype",
    [("kl", np.float32), ("kl", np.float64), ("cross_entropy", np.float32)])
def test_term_loop_runs_512_bit_vectors_and_prefetches(kind, dtype):
    """On an AVX-512 CPU the term loop runs in 512-bit vectors (LLVM's own choice there is
    256; float64 sums in a float32 loop would halve them too) and prefetches its inputs:
    a group's lines of p and of q."""
    from fastdiv._backends.numba import _kernels

    fill = numba.njit(error_model="numpy", fastmath=_options.MATH_FASTMATH)(
        _kernels._fill.py_func)
    p = np.random.default_rng(7).random(1000).astype(dtype)
    fill(getattr(_kernels, kind.upper()), p, p, np.ones(p.size, np.uint8), False,
         np.empty_like(p))
    asm = next(iter(fill.inspect_asm().values()))
    suffix = "ps" if dtype == np.float32 else "pd"
    assert re.search(rf"vdiv{suffix}\s.*zmm", asm)  # the division of the log, 512 bits wide
    assert len(re.findall(r"prefetcht0\s", asm)) >= 2 * _options.GROUP_LINES


@pytest.mark.skipif(not _HOST_AVX512, reason="needs a CPU with AVX-512")
@pytest.mark.parametrize("kind", ["entropy", "cross_entropy", "kl"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_term_loop_keeps_its_running_extremes_in_whole_cache_lines(kind, dtype):
    """Compiled on its own, as a process that compiles the kernels (rather than loading
    them from the cache) runs it, the term loop keeps the range check's running extremes
    per lane on the stack, read and written once per group: they must sit in whole cache
    lines. At the stack's 16-byte alignment a 64-byte access could split two lines (it
    did: float32 entropy ran 25% slower in such a process than with the cached kernels,
    whose loop, optimised once more after linking, keeps them in registers)."""
    from fastdiv._backends.numba import _kernels

    fill = numba.njit(error_model="numpy", fastmath=_options.MATH_FASTMATH)(
        _kernels._fill.py_func)
    p = np.random.default_rng(8).random(1000).astype(dtype)
    fill(getattr(_kernels, kind.upper()), p, p, np.ones(p.size, np.uint8), False,
         np.empty_like(p))
    asm = next(iter(fill.inspect_asm().values()))
    offsets = [int(found or 0) for found in
               re.findall(r"vpm(?:ax|in)u[dq]\s+(-?\d*)\(%rsp\)", asm)]
    if offsets:  # in registers there is nothing to align
        assert re.search(r"and\w*\s+\$-(64|128|256), %rsp", asm)  # the frame is realigned
        assert all(offset % 64 == 0 for offset in offsets), offsets


# -- kernel semantics on edge values --------------------------------------------------


def _both(name, *arrays, where=None, normalize=False, threads=1):
    rows = arrays[0].shape[0]
    got, expected = np.empty(rows), np.empty(rows)
    getattr(nb, name)(*arrays, where, normalize, got, threads)
    getattr(ref, name)(*arrays, where, normalize, expected, threads)
    return got, expected


def _operands(name, p, q):
    return (p,) if name == "entropy" else (p, q)


def _scale(name, p, q, where=None):
    """sum(|terms|) per row: the scale of the rounding error of a sum."""
    p, q = p.astype(np.float64), q.astype(np.float64)
    with np.errstate(all="ignore"):
        terms = {
            "entropy": lambda: ref.entr_terms(p),
            "cross_entropy": lambda: ref.neg_xlogy_terms(p, q),
            "kl_divergence": lambda: ref.rel_entr_terms(p, q),
            "js_divergence": lambda: np.abs(ref.rel_entr_terms(p, (p + q) / 2))
            + np.abs(ref.rel_entr_terms(q, (p + q) / 2)),
        }[name]()
    return np.sum(np.abs(terms), axis=-1, where=True if where is None else where.astype(bool))


def _assert_matches(got, expected, scale, dtype, context=""):
    with np.errstate(over="ignore"):  # results are delivered in the input's dtype
        got = got.astype(dtype).astype(np.float64)
        expected = expected.astype(dtype).astype(np.float64)
    assert_special_equal(got, expected)
    finite = np.isfinite(expected)
    bound = RTOL[np.dtype(dtype)] * scale[finite] + TINY[np.dtype(dtype)]
    assert (np.abs(got[finite] - expected[finite]) <= bound).all(), (context, got, expected)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", REDUCTIONS)
def test_reductions_on_the_edge_grid_match_reference(name, dtype):
    p, q = edge_grid(dtype)
    p, q = p.reshape(14, 14), q.reshape(14, 14)
    # Each row alone too (one row holding only finite values keeps its value).
    for rows_p, rows_q in ((p, q), (p.T.copy(), q.T.copy())):
        got, expected = _both(name, *_operands(name, rows_p, rows_q))
        _assert_matches(got, expected, _scale(name, rows_p, rows_q), dtype)
    for i in range(p.size):  # every pair of edge values as a one-element row
        a, b = p.reshape(-1, 1)[i:i + 1], q.reshape(-1, 1)[i:i + 1]
        got, expected = _both(name, *_operands(name, a, b))
        _assert_matches(got, expected, _scale(name, a, b), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_elementwise_on_the_edge_grid_match_scipy(dtype):
    p, q = edge_grid(dtype)
    p, q = p.reshape(14, 14), q.reshape(14, 14)
    out = np.empty_like(p)
    nb.rel_entr(p, q, out, 1)
    with np.errstate(all="ignore"):
        expected = scipy.special.rel_entr(p.astype(np.float64), q.astype(np.float64))
    assert_close_or_special(out, expected.astype(dtype), rtol=4 * np.finfo(dtype).eps)
    nb.entr(p, out, 1)
    with np.errstate(all="ignore"):
        expected = scipy.special.entr(p.astype(np.float64))
    assert_close_or_special(out, expected.astype(dtype), rtol=4 * np.finfo(dtype).eps)


def test_elementwise_in_place():
    rng = np.random.default_rng(5)
    p, q = rng.random((40, 3000)), rng.random((40, 3000))
    p[0, :3] = [1e-300, 1e300, 0.0]
    q[0, :3] = [1e10, 1e-10, 0.0]  # ratio underflow, overflow: the slow form
    expected = np.empty_like(p)
    ref.rel_entr(p, q, expected, 1)
    nb.rel_entr(p, q, p, 2)  # out is p
    assert_close_or_special(p, expected, rtol=4 * np.finfo(np.float64).eps)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "layout", ["contiguous", "row stride", "broadcast q", "many short rows", "long row"])
def test_elementwise_layouts_match_scipy(dtype, layout):
    """Every path of the elementwise kernels: C-contiguous operands as one run of
    elements, strided and broadcast rows (buffers shared by the rows of a work item),
    items of many short strided rows, a long row cut into chunks; float64 with a ratio
    underflow and overflow (the slow form) somewhere inside (float32 input, computed in
    float64, cannot reach it)."""
    rng = np.random.default_rng(8)
    rows, n = {"many short rows": (40000, 3), "long row": (1, 300_000)}.get(layout, (300, 700))
    p = rng.random((rows, n + 5)).astype(dtype)[:, :n]  # row stride n + 5
    q = rng.random((rows, n)).astype(dtype)
    if dtype == np.float64:
        p[-1, n // 2:n // 2 + 2] = [1e-300, 1e300]
        q[:, n // 2:n // 2 + 2] = [1e10, 1e-10]
    if layout == "broadcast q":
        q = np.broadcast_to(q[0], (rows, n))
    elif layout in ("contiguous", "long row"):
        p = np.ascontiguousarray(p)
    with np.errstate(all="ignore"):
        expected = scipy.special.rel_entr(p.astype(np.float64), q.astype(np.float64))
        expected_entr = scipy.special.entr(p.astype(np.float64))
    for threads in (1, 2):
        out = np.empty((rows, n), dtype)
        nb.rel_entr(p, q, out, threads)
        assert_close_or_special(out, expected.astype(dtype), rtol=4 * np.finfo(dtype).eps)
        nb.entr(p, out, threads)
        assert_close_or_special(out, expected_entr.astype(dtype), rtol=4 * np.finfo(dtype).eps)


def test_borrowed_and_read_only_views():
    """The views the kernels take of their arguments: the caller's data, without a
    reference (``borrowed``), flat (``borrowed_flat``), or typed read-only."""
    from fastdiv._backends.numba._codegen import borrowed, borrowed_flat, read_only

    @numba.njit
    def use(a, b):
        flat = borrowed_flat(a)
        view = read_only(borrowed(b))
        return flat[1:].sum() + view[::2].sum(), flat.size

    @numba.njit
    def write(b):
        read_only(b)[0] = 1.0

    a, b = np.arange(12.0).reshape(3, 4), np.arange(5.0)
    assert use(a, b) == (a.ravel()[1:].sum() + b[::2].sum(), 12)
    with pytest.raises(numba.TypingError):
        write(b)


def test_claim_hands_out_every_item_once_across_threads():
    """Threads claiming items from one counter get each number exactly once, the way
    the parallel kernels share their work items."""
    from fastdiv._backends.numba._codegen import claim

    @numba.njit(parallel=True)
    def claim_all(items, threads, times_claimed):
        claimed = np.zeros(1, np.int64)
        for _ in numba.prange(threads):
            item = claim(claimed)
            while item < items:
                times_claimed[item] += 1
                item = claim(claimed)

    @numba.njit
    def claim_int32(counter):
        return claim(counter)

    times_claimed = np.zeros(100_000, np.int64)
    claim_all(times_claimed.size, 2, times_claimed)
    np.testing.assert_array_equal(times_claimed, 1)
    with pytest.raises(numba.TypingError):
        claim_int32(np.zeros(1, np.int32))


@pytest.mark.parametrize("dtype, unsigned", [(np.float64, np.uint64), (np.float32, np.uint32)])
def test_group_lanes_is_one_group_of_the_value_kept_across_groups(dtype, unsigned):
    """``group_lanes``: a group's length of ``value``, per-lane extremes carried from group
    to group (as the range check of the term loops keeps them)."""
    from fastdiv._backends.numba._codegen import group_lanes, group_size

    @numba.njit
    def lane_max(a, start_value):
        group = group_size(a)
        lanes = group_lanes(a, start_value)
        for start in range(0, a.size - a.size % group, group):
            for j in range(start, start + group):
                lanes[j - start] = max(lanes[j - start], unsigned(a[j]))
        return lanes.copy()

    a = np.arange(1, 1001, dtype=dtype)
    group = _options.GROUP_LINES * 64 // np.dtype(dtype).itemsize  # lines of 64 bytes
    whole = a.size - a.size % group
    expected = a[:whole].reshape(-1, group).max(axis=0).astype(unsigned)
    np.testing.assert_array_equal(lane_max(a, unsigned(0)), expected)
    np.testing.assert_array_equal(lane_max(a[:0], unsigned(7)), np.full(group, 7, unsigned))


# -- layouts: row strides, broadcast rows, masks, normalize -----------------------------


def _data(rng, shape, dtype, zeros=0.1):
    x = rng.random(shape)
    x[rng.random(shape) < zeros] = 0
    return x.astype(dtype)


def _layouts(rng, dtype):
    """(description, p, q) with every row layout the kernels accept."""
    big_p = _data(rng, (7, 300), dtype)
    big_q = _data(rng, (7, 300), dtype, zeros=0) + 1e-3
    yield "contiguous", big_p[:, :128], big_q[:, :128].copy()
    yield "both C-contiguous (the small-input path)", big_p[:, :128].copy(), big_q[:, :128].copy()
    read_only_p, read_only_q = big_p[:, :128].copy(), big_q[:, :128].copy()
    read_only_p.flags.writeable = read_only_q.flags.writeable = False
    yield "both C-contiguous, read-only", read_only_p, read_only_q
    yield "row stride > n", big_p[:, 10:138], big_q[:, 5:133]
    yield "negative row stride", big_p[::-1, :128], big_q[::-1, 7:135]
    yield "broadcast q (row stride 0)", big_p[:, :128], np.broadcast_to(big_q[0, :128], (7, 128))
    yield "broadcast p and q", np.broadcast_to(big_p[1, :128], (7, 128)), big_q[:, :128]
    yield "n == 1 with any stride", big_p[:, 3:4], big_q[:, ::300]
    # A row stride that is not a whole number of items and unaligned data: copied.
    raw = np.zeros(7 * 1001 + 128 * 8 + 16, dtype=np.uint8)
    odd = np.ndarray((7, 128), dtype=dtype, buffer=raw, offset=3,
                     strides=(1001, np.dtype(dtype).itemsize))
    odd[...] = big_p[:, :128]
    yield "odd row stride, unaligned", odd, big_q[:, :128]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", REDUCTIONS)
def test_layouts_match_reference(name, dtype):
    rng = np.random.default_rng(6)
    for description, p, q in _layouts(rng, dtype):
        got, expected = _both(name, *_operands(name, p, q))
        scale = _scale(name, np.asarray(p), np.asarray(q))
        _assert_matches(got, expected, scale, dtype, description)


@pytest.mark.parametrize("normalize", [False, True])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", REDUCTIONS)
def test_where_and_normalize_match_reference(name, dtype, normalize):
    rng = np.random.default_rng(7)
    p, q = _data(rng, (9, 2500), dtype), _data(rng, (9, 2500), dtype, zeros=0) + 1e-3
    p[2, 5] = np.nan  # hidden by the mask below
    where = rng.random((9, 2500)) < 0.7
    where[2, 5] = False
    where[4] = False  # a fully masked row gives 0
    strided = np.broadcast_to(where[3], where.shape)  # a broadcast mask row
    for mask in (where, strided):
        got, expected = _both(name, *_operands(name, p, q), where=mask.view(np.uint8),
                              normalize=normalize)
        scale = _scale(name, p, q, mask)
        if normalize:
            scale = scale + 2.0  # each normalised element may move by an ulp
        _assert_matches(got, expected, scale, dtype)
        if mask is where:
            assert got[4] == 0


@pytest.mark.parametrize("normalize", [False, True])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", REDUCTIONS)
@pytest.mark.parametrize("shape", [(1, 2**17 + 3), (3, 70_001), (300, 700)],
                         ids=["one long row", "few long rows", "many rows"])
def test_parallel_paths_match_serial_and_reference(name, dtype, normalize, shape):
    rng = np.random.default_rng(8)
    p, q = _data(rng, shape, dtype), _data(rng, shape, dtype, zeros=0) + 1e-3
    where = (rng.random(shape) < 0.9).view(np.uint8)
    operands = _operands(name, p, q)
    serial, parallel, expected = np.empty(shape[0]), np.empty(shape[0]), np.empty(shape[0])
    getattr(nb, name)(*operands, where, normalize, serial, 1)
    getattr(nb, name)(*operands, where, normalize, parallel, 2)
    getattr(ref, name)(*operands, where, normalize, expected, 1)
    scale = _scale(name, p, q, where) + (2.0 if normalize else 0.0)
    _assert_matches(serial, expected, scale, dtype)
    _assert_matches(parallel, expected, scale, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", REDUCTIONS)
@pytest.mark.parametrize("shape", [(40_000, 3), (9_000, 16), (2_000, 64), (300, 100)])
def test_short_row_groups_match_reference_on_any_thread_count(name, dtype, shape):
    """Short rows go to the short-row kernel in groups of whole rows, serial or in parallel."""
    rng = np.random.default_rng(12)
    p, q = _data(rng, shape, dtype), _data(rng, shape, dtype, zeros=0) + 1e-3
    where = (rng.random(shape) < 0.9).view(np.uint8)
    operands = _operands(name, p, q)
    for mask in (None, where):
        serial, parallel, expected = np.empty(shape[0]), np.empty(shape[0]), np.empty(shape[0])
        getattr(nb, name)(*operands, mask, False, serial, 1)
        getattr(nb, name)(*operands, mask, False, parallel, 2)
        getattr(ref, name)(*operands, mask, False, expected, 1)
        np.testing.assert_array_equal(serial, parallel)
        _assert_matches(parallel, expected, _scale(name, p, q, mask), dtype)


def test_row_parallel_results_do_not_depend_on_thread_count():
    rng = np.random.default_rng(9)
    p, q = rng.random((256, 1000)), rng.random((256, 1000))
    results = []
    for threads in (1, 2, 64):  # 64: more than Numba has, bounded quietly
        out = np.empty(256)
        nb.kl_divergence(p, q, None, False, out, threads)
        results.append(out)
    np.testing.assert_array_equal(results[0], results[1])
    np.testing.assert_array_equal(results[0], results[2])


@pytest.mark.parametrize("background", ["zeros", "random"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_kl_at_the_edges_of_the_log_ratio_range(dtype, background):
    """The bit-checked KL blocks (one-division log of the ratio) must leave every
    pair outside their range to the full forms; next to p = 0 a row's sum is
    its pair's term alone."""
    p, q = log_ratio_edge_rows(dtype, background)
    for normalize in (False, True):
        got, expected = np.empty(len(p)), np.empty(len(p))
        nb.kl_divergence(p, q, None, normalize, got, 2)
        with np.errstate(all="ignore"):
            ref.kl_divergence(p, q, None, normalize, expected, 2)
            got, expected = got.astype(dtype), expected.astype(dtype)
        assert_close_or_special(got, expected, rtol=RTOL[np.dtype(dtype)])


def test_near_identical_kl_no_worse_than_scipy():
    """gh-20710: with p ~ q the naive p log(p/q) loses every digit; the sum must not."""
    mpmath = pytest.importorskip("mpmath")
    mpmath.mp.dps = 50
    rng = np.random.default_rng(10)
    p = rng.random(200)
    p /= p.sum()
    for eps in (1e-6, 1e-9, 1e-12):
        q = p * (1 + eps * rng.standard_normal(200))
        exact = float(sum(mpmath.mpf(a) * mpmath.log(mpmath.mpf(a) / mpmath.mpf(b))
                          for a, b in zip(p, q)))
        out = np.empty(1)
        nb.kl_divergence(p[None], q[None], None, False, out, 1)
        ours = abs(out[0] - exact)
        scipy_err = abs(scipy.special.rel_entr(p, q).sum() - exact)
        assert ours <= max(scipy_err, 4e-16 * np.abs(scipy.special.rel_entr(p, q)).sum())


# -- threads --------------------------------------------------------------------------


def test_concurrent_calls_from_python_threads_give_the_same_results():
    rng = np.random.default_rng(11)
    arrays = [(rng.random((64, 4096)), rng.random((64, 4096))) for _ in range(4)]
    arrays.append((rng.random((2, 100_000)), rng.random((2, 100_000))))  # chunked path

    def run(pair):
        p, q = pair
        out = np.empty(p.shape[0])
        nb.kl_divergence(p, q, None, False, out, 2)
        return out

    expected = [run(pair) for pair in arrays]
    with concurrent.futures.ThreadPoolExecutor(max_workers=6) as pool:
        for _ in range(5):
            for got, want in zip(pool.map(run, arrays * 3), expected * 3):
                np.testing.assert_array_equal(got, want)


def test_info_reports_layer_threads_and_cache():
    info = nb.info()
    assert info["threading layer"] in {"omp", "tbb", "workqueue"}
    assert info["max threads"] == numba.config.NUMBA_NUM_THREADS
    assert info["cache dir"] == "off" or os.path.isabs(info["cache dir"])


# -- import laziness and the cache ------------------------------------------------------


def _run(code, env=None, cwd=REPO):
    full_env = dict(os.environ, **(env or {}))
    full_env["PYTHONPATH"] = str(cwd)
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], env=full_env, cwd=cwd,
        capture_output=True, text=True, timeout=600,
    )


def test_import_fastdiv_does_not_import_numba():
    result = _run("""
        import sys, fastdiv
        fastdiv.available_backends()
        assert "numba" not in sys.modules, "import fastdiv imported numba"
        with fastdiv.use_backend("reference"):
            fastdiv.entropy([0.5, 0.5])
        assert "numba" not in sys.modules
        print("ok")
    """)
    assert result.returncode == 0 and "ok" in result.stdout, result.stderr


def test_cache_can_be_switched_off():
    result = _run("""
        from fastdiv._backends import numba as nb
        print(nb.info()["cache dir"])
    """, env={"FASTDIV_NUMBA_CACHE": "0"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "off"


def test_read_only_package_caches_in_the_user_directory(tmp_path):
    """A read-only install falls back to $XDG_CACHE_HOME/numba (Numba's user cache)."""
    root = tmp_path
    shutil.copytree(REPO / "fastdiv", root / "fastdiv",
                    ignore=shutil.ignore_patterns("__pycache__", "*.so", "build"))
    package = root / "fastdiv" / "_backends" / "numba"
    if os.geteuid() == 0:
        # Permissions do not stop root: block the in-tree cache directory instead.
        (package / "__pycache__").write_text("not a directory")
    for path in sorted((root / "fastdiv").rglob("*"), reverse=True):
        path.chmod(0o555 if path.is_dir() else 0o444)
    (root / "fastdiv").chmod(0o555)
    cache_home = root / "cache"
    code = """
        from fastdiv._backends import numba as nb
        from fastdiv._backends.numba import _kernels
        print(nb.info()["cache dir"])
        print(_kernels._chunks_per_row(3, 100_000, 2))  # compiles and caches a small function
    """
    try:
        result = _run(code, env={"XDG_CACHE_HOME": str(cache_home), "NUMBA_CACHE_DIR": ""},
                      cwd=root)
    finally:
        for path in [root / "fastdiv", *(root / "fastdiv").rglob("*")]:
            if path.is_dir():
                path.chmod(0o755)
    assert result.returncode == 0, result.stderr
    cache_dir, chunks = result.stdout.split()
    assert cache_dir.startswith(str(cache_home)), cache_dir
    assert int(chunks) >= 2
    assert any(Path(cache_dir).glob("_kernels._chunks_per_row*.nbi"))
    assert not any((root / "fastdiv").rglob("*.nbi"))
