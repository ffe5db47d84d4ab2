"""Every available backend against ``reference``, on many layouts, dtypes and edge arrays.

A new backend joins these tests by being registered in ``fastdiv._backends``.

Tolerance, with ``scale = sum(|terms|)`` over each reduced row (in float64):
float64 input ``|res - ref| <= 1e-12 * scale + tiny``; float32 input, which the
reference computes in float64 while a compiled backend may compute its terms in
float32 math, ``|res - ref| <= 2e-6 * scale + tiny`` (``tiny`` covers subnormal
results). NaN and +-inf must match exactly.

With ``normalize=True`` each normalised element may differ by an ulp between
backends (``p / s`` or ``p * (1 / s)``), which moves a term by up to about
``ulp * (|term| + p + q)``: the scale adds ``sum(p) + sum(q)`` of the normalised
inputs. Cases that must be exact (one-hot rows, ``KL(p, p)``) are tested apart.
"""

from __future__ import annotations

import concurrent.futures
import zlib
from dataclasses import dataclass, field

import numpy as np
import pytest

import fastdiv
from fastdiv._backends import reference as ref
from conftest import assert_special_equal, edge_grid

BACKENDS = fastdiv.available_backends()
REDUCTIONS = ["entropy", "cross_entropy", "kl_divergence", "js_divergence"]
DTYPES = [np.float64, np.float32]
RTOL = {np.dtype(np.float64): 1e-12, np.dtype(np.float32): 2e-6}
TINY = {np.dtype(np.float64): 1e-300, np.dtype(np.float32): 1e-40}


@dataclass
class Case:
    """Inputs of one conformance check; ``make(rng, dtype)`` returns ``(p, q)``."""

    name: str
    make: object
    kwargs: dict = field(default_factory=dict)
    threads: tuple = (None,)


def _dist(rng, shape, zeros=0.1):
    x = rng.random(shape)
    x[rng.random(shape) < zeros] = 0.0
    return x


def _pair(rng, p_shape, q_shape):
    """p with some zeros, q positive: finite divergences, so values get compared."""
    return _dist(rng, p_shape), _dist(rng, q_shape, zeros=0.0) + 1e-3


def _edge_rows(rng, dtype):
    p, q = edge_grid(dtype)
    return p.reshape(14, 14), q.reshape(14, 14)


def _edge_shuffled(rng, dtype):
    p, q = edge_grid(dtype)
    order = rng.permutation(p.size)
    return np.concatenate([p[order], p]).reshape(28, 14), np.concatenate([q[order], q]).reshape(28, 14)


def _near_identical(rng, dtype):
    p = _dist(rng, (40, 200), zeros=0.0)
    p /= p.sum(-1, keepdims=True)
    q = p * (1 + 1e-9 * rng.standard_normal(p.shape))
    return p, q / q.sum(-1, keepdims=True)


def _extreme_ratios(rng, dtype):
    info = np.finfo(dtype)
    exponents = rng.integers(int(np.log10(info.tiny)), int(np.log10(info.max)), (20, 30))
    p = 10.0 ** exponents.astype(np.float64) * rng.random((20, 30))
    q = 10.0 ** rng.permutation(exponents.ravel()).reshape(20, 30) * rng.random((20, 30))
    return p, q


def _masked_specials(rng, dtype):
    p, q = _pair(rng, (6, 10), (6, 10))
    p[:, 7], q[:, 8], p[:, 9] = np.nan, np.inf, -1.0
    return p, q


_LONG_MASKED = (6, 2000)
_HIDDEN_COLUMNS = np.arange(3, 2000, 97)  # a few in every block of the compiled kernels


def _masked_specials_long(rng, dtype):
    """Long rows (the vector fast paths) with NaN, inf, negative, subnormal and zero values
    where the mask hides them, and +0 / -0.0 where it does not."""
    p, q = _pair(rng, _LONG_MASKED, _LONG_MASKED)
    specials = np.array([np.nan, np.inf, -1.0, 1e-310, 0.0, -0.0, 3e38])
    for k, col in enumerate(_HIDDEN_COLUMNS):
        p[:, col] = specials[k % specials.size]
        q[:, col] = specials[(k + 3) % specials.size]
    p[:, 1], p[:, 2] = 0.0, -0.0
    return p, q


def _hidden_mask():
    mask = np.ones(_LONG_MASKED[1], dtype=bool)
    mask[_HIDDEN_COLUMNS] = False
    return mask


def _strided(rng, dtype):
    p, q = _pair(rng, (24, 60), (24, 60))
    return p.astype(dtype)[::2, ::3], q.astype(dtype)[::2, ::3]


def _negative_strides(rng, dtype):
    p, q = _pair(rng, (12, 17), (12, 17))
    return p.astype(dtype)[::-1, ::-1], q.astype(dtype)[::-1, ::-1]


def _fortran(rng, dtype):
    p, q = _pair(rng, (15, 21), (15, 21))
    return np.asfortranarray(p.astype(dtype)), np.asfortranarray(q.astype(dtype))


def _mask(shape, density, seed):
    return np.random.default_rng(seed).random(shape) < density


def _all_false_rows():
    mask = _mask((9, 13), 0.7, 3)
    mask[[0, 4, 8]] = False
    return mask


CASES = [
    Case("small (32, 10)", lambda r, d: _pair(r, (32, 10), (32, 10))),
    Case("one long row", lambda r, d: _pair(r, (1, 100_003), (1, 100_003)),
         threads=(1, 2)),
    Case("few long rows", lambda r, d: _pair(r, (3, 40_001), (3, 40_001)),
         threads=(1, 2)),
    Case("many short rows", lambda r, d: _pair(r, (5000, 7), (5000, 7)),
         threads=(1, 2)),
    Case("zeros in p and q", lambda r, d: (_dist(r, (40, 12), 0.3), _dist(r, (40, 12), 0.3))),
    Case("n = 1", lambda r, d: _pair(r, (50, 1), (50, 1))),
    Case("n = 2, odd sizes", lambda r, d: _pair(r, (33, 2), (33, 2))),
    Case("1-D", lambda r, d: _pair(r, 1001, 1001)),
    Case("empty batch", lambda r, d: (np.zeros((0, 8)), np.zeros((0, 8)))),
    Case("empty rows", lambda r, d: (np.zeros((5, 0)), np.zeros((5, 0)))),
    Case("broadcast q row", lambda r, d: _pair(r, (64, 33), 33)),
    Case("broadcast p row", lambda r, d: _pair(r, 33, (64, 33))),
    Case("broadcast q column", lambda r, d: _pair(r, (64, 33), (64, 1))),
    Case("3-D broadcast", lambda r, d: _pair(r, (4, 1, 19), (1, 6, 19))),
    Case("axis 0 (transposed rows)", lambda r, d: _pair(r, (33, 64), (33, 64)),
         {"axis": 0}),
    Case("axis tuple", lambda r, d: _pair(r, (4, 5, 6), (4, 5, 6)),
         {"axis": (0, 2)}),
    Case("axis None", lambda r, d: _pair(r, (7, 9), (7, 9)), {"axis": None}),
    Case("strided", _strided),
    Case("negative strides", _negative_strides),
    Case("Fortran order", _fortran),
    Case("edge grid rows", _edge_rows),
    Case("edge grid shuffled", _edge_shuffled),
    Case("near-identical", _near_identical),
    Case("extreme ratios", _extreme_ratios),
    Case("unnormalised weights", lambda r, d: (r.random((20, 50)) * 1e3, r.random((20, 50)))),
    Case("where", lambda r, d: _pair(r, (9, 13), (9, 13)),
         {"where": _mask((9, 13), 0.6, 1)}),
    Case("where broadcast", lambda r, d: _pair(r, (9, 13), (9, 13)),
         {"where": _mask((13,), 0.6, 2)}),
    Case("where all-false rows", lambda r, d: _pair(r, (9, 13), (9, 13)),
         {"where": _all_false_rows()}),
    Case("where hides specials", _masked_specials,
         {"where": np.arange(10) < 7}),
    Case("where hides specials in long rows", _masked_specials_long, {"where": _hidden_mask()}),
    Case("where on long rows", lambda r, d: _pair(r, (2, 30_000), (2, 30_000)),
         {"where": _mask((2, 30_000), 0.5, 4)}, threads=(1, 2)),
]


def _inputs(case, dtype):
    rng = np.random.default_rng(zlib.crc32(case.name.encode()))  # same data in every run
    with np.errstate(all="ignore"):
        p, q = case.make(rng, dtype)
        return np.asarray(p).astype(dtype, copy=False), np.asarray(q).astype(dtype, copy=False)


def _term_scale(name, p, q, axis, where, normalize, keepdims=False):
    """sum(|terms|) per reduced row, in float64 (the tolerance scale)."""
    p, q = p.astype(np.float64), q.astype(np.float64)
    if name != "entropy":
        p, q = np.broadcast_arrays(p, q)
    mask = True if where is None else np.broadcast_to(where, p.shape)
    with np.errstate(all="ignore"):
        if normalize:
            p = p / np.sum(p, axis=axis, keepdims=True, where=mask)
            q = q / np.sum(q, axis=axis, keepdims=True, where=mask)
        if name == "entropy":
            terms = ref.entr_terms(p)
        elif name == "cross_entropy":
            terms = ref.neg_xlogy_terms(p, q)
        elif name == "kl_divergence":
            terms = ref.rel_entr_terms(p, q)
        else:
            m = (p + q) / 2
            terms = 0.5 * (np.abs(ref.rel_entr_terms(p, m)) + np.abs(ref.rel_entr_terms(q, m)))
        scale = np.sum(np.abs(terms), axis=axis, where=mask, keepdims=keepdims)
        if normalize:
            masses = np.abs(p) if name == "entropy" else np.abs(p) + np.abs(q)
            scale = scale + np.sum(masses, axis=axis, where=mask, keepdims=keepdims)
        return scale


def _call(name, p, q, **kwargs):
    func = getattr(fastdiv, name)
    return func(p, **kwargs) if name == "entropy" else func(p, q, **kwargs)


def assert_conforms(result, expected, scale, dtype):
    result = np.asarray(result)
    expected = np.asarray(expected)
    assert result.shape == expected.shape and result.dtype == expected.dtype
    assert_special_equal(result, expected)
    finite = np.isfinite(expected)
    err = np.abs(result[finite].astype(np.float64) - expected[finite].astype(np.float64))
    bound = RTOL[np.dtype(dtype)] * np.broadcast_to(scale, expected.shape)[finite]
    bound = bound + TINY[np.dtype(dtype)]
    bad = ~(err <= bound)
    assert not bad.any(), (
        f"{bad.sum()} of {bad.size} values differ: got {result[finite][bad][:4]}, "
        f"reference {expected[finite][bad][:4]} (allowed {bound[bad][:4]})"
    )


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("normalize", [False, True], ids=["raw", "normalize"])
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("name", REDUCTIONS)
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_reduction_conforms(backend, case, name, dtype, normalize, restore_config):
    p, q = _inputs(case, dtype)
    p_copy, q_copy = p.copy(), q.copy()
    kwargs = dict(case.kwargs, normalize=normalize)
    with fastdiv.use_backend("reference"):
        expected = _call(name, p, q, **kwargs)
    scale = _term_scale(name, p, q, kwargs.get("axis", -1), kwargs.get("where"), normalize)
    for threads in case.threads:
        fastdiv.set_num_threads(threads)
        with fastdiv.use_backend(backend):
            result = _call(name, p, q, **kwargs)
        assert_conforms(result, expected, scale, dtype)
    np.testing.assert_array_equal(p, p_copy)
    np.testing.assert_array_equal(q, q_copy)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("name", REDUCTIONS)
def test_reduction_out_keepdims_base_conform(backend, name, dtype):
    rng = np.random.default_rng(50)
    p, q = (a.astype(dtype) for a in _pair(rng, (6, 5, 40), (6, 5, 40)))
    kwargs = dict(axis=(0, 2), keepdims=True, base=2, where=_mask((5, 40), 0.8, 5))
    with fastdiv.use_backend("reference"):
        expected = _call(name, p, q, **kwargs)
    out = np.full(expected.shape, -1.0, dtype=np.float64)
    with fastdiv.use_backend(backend):
        assert _call(name, p, q, out=out, **kwargs) is out
    scale = _term_scale(name, p, q, (0, 2), kwargs["where"], False, keepdims=True) / np.log(2)
    assert_conforms(out.astype(dtype), expected, scale, dtype)


ELEMENTWISE_CASES = [
    case for case in CASES if not case.kwargs and case.name not in ("near-identical",)
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("name", ["rel_entr", "entr"])
@pytest.mark.parametrize("case", ELEMENTWISE_CASES, ids=lambda c: c.name)
def test_elementwise_conforms(backend, case, name, dtype, restore_config):
    p, q = _inputs(case, dtype)
    args = (p, q) if name == "rel_entr" else (p,)
    func = getattr(fastdiv, name)
    with fastdiv.use_backend("reference"):
        expected = func(*args)
    for threads in case.threads:
        fastdiv.set_num_threads(threads)
        with fastdiv.use_backend(backend):
            result = func(*args)
        assert_conforms(result, expected, np.abs(expected.astype(np.float64)), dtype)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_elementwise_in_place_conforms(backend, dtype):
    rng = np.random.default_rng(51)
    p, q = (a.astype(dtype) for a in _pair(rng, (50, 31), (50, 31)))
    with fastdiv.use_backend("reference"):
        want_rel, want_entr = fastdiv.rel_entr(p, q), fastdiv.entr(p)
    with fastdiv.use_backend(backend):
        q_buffer, p_buffer = q.copy(), p.copy()
        fastdiv.rel_entr(p, q_buffer, out=q_buffer)
        fastdiv.entr(p_buffer, out=p_buffer)
    assert_conforms(q_buffer, want_rel, np.abs(want_rel.astype(np.float64)), dtype)
    assert_conforms(p_buffer, want_entr, np.abs(want_entr.astype(np.float64)), dtype)


@pytest.mark.parametrize("backend", BACKENDS)
def test_concurrent_calls_from_python_threads(backend):
    """Several Python threads at once get the same results as one thread."""
    rng = np.random.default_rng(52)
    p, q = _pair(rng, (64, 5000), (64, 5000))
    with fastdiv.use_backend(backend):
        want = fastdiv.kl_divergence(p, q, normalize=True)

    def work(_):
        with fastdiv.use_backend(backend):
            return fastdiv.kl_divergence(p, q, normalize=True)

    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(work, range(8)))
    for result in results:
        np.testing.assert_array_equal(result, want)


@pytest.mark.parametrize("backend", BACKENDS)
def test_longdouble_goes_to_reference(backend):
    p = np.array([[0.25, 0.75]], dtype=np.longdouble)
    with fastdiv.use_backend("reference"):
        expected = fastdiv.kl_divergence(p, p[:, ::-1])
    with fastdiv.use_backend(backend):
        result = fastdiv.kl_divergence(p, p[:, ::-1])
    assert result.dtype == np.longdouble
    np.testing.assert_array_equal(result, expected)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_normalize_is_exact_where_scipy_is(backend, dtype):
    """One-hot rows have entropy exactly 0, and KL(p, p) = JS(p, p) = 0, after normalising."""
    rng = np.random.default_rng(53)
    one_hot = np.zeros((40, 9), dtype=dtype)
    one_hot[np.arange(40), rng.integers(0, 9, 40)] = rng.random(40) * 10 + 0.1
    w = (rng.random((40, 9)) * 10).astype(dtype)
    single = (rng.random((40, 1)) * 10 + 0.1).astype(dtype)
    with fastdiv.use_backend(backend):
        assert (fastdiv.entropy(one_hot, normalize=True) == 0).all()
        assert (fastdiv.entropy(single, normalize=True) == 0).all()
        for func in (fastdiv.kl_divergence, fastdiv.js_divergence):
            assert (func(w, w.copy(), normalize=True) == 0).all()
            assert (func(single, single * 3, normalize=True) == 0).all()
            assert (func(one_hot, one_hot * 2, normalize=True) == 0).all()


@pytest.mark.parametrize("backend", BACKENDS)
def test_narrow_to_float32_rounds_and_overflows_to_inf_silently(backend):
    """The optional kernel that rounds float64 results to float32 (see fastdiv._backends)."""
    import warnings

    from fastdiv._backends import load

    narrow = getattr(load(backend), "narrow_to_float32", None)
    if narrow is None:
        pytest.skip(f"{backend} has no narrow_to_float32")
    values = np.array([0.1, -1e300, 1e300, np.nan, 3.4028235e38, -0.0])
    out = np.empty(values.size, dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        narrow(values, out)
    with np.errstate(over="ignore"):
        np.testing.assert_array_equal(out, values.astype(np.float32))
    assert np.signbit(out[-1])


def _float32_results_backend(backend):
    """Select ``backend`` if it rounds float32 results in its kernels, else skip."""
    from fastdiv._backends import load

    if not vars(load(backend)).get("FLOAT32_RESULTS", False):
        pytest.skip(f"{backend} has no FLOAT32_RESULTS")
    fastdiv.set_backend(backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_float32_results_beyond_range_are_inf_without_warnings(backend, restore_config):
    import warnings

    _float32_results_backend(backend)
    p = np.array([[3e38, 3e38], [0.5, 0.5]], dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = fastdiv.entropy(p)
    assert result.dtype == np.float32
    assert result[0] == -np.inf and np.isclose(result[1], np.log(2))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", REDUCTIONS)
@pytest.mark.parametrize("shape, masked", [((32, 10), False), ((33, 5), True),
                                           ((6, 3000), True), ((3, 140_000), False)],
                         ids=["small", "short rows", "masked", "long rows"])
def test_float32_results_rounded_in_the_kernel_match_rounding_after(backend, name, shape,
                                                                     masked, restore_config):
    """Float32 results come from the kernel (FLOAT32_RESULTS) when no base follows; with
    base=e they are rounded afterwards from the float64 row sums: the same bits."""
    from fastdiv._prepare import prepare_reduction

    _float32_results_backend(backend)
    fastdiv.set_num_threads(2)
    rng = np.random.default_rng(11)
    p = rng.random(shape).astype(np.float32)
    q = rng.random(shape).astype(np.float32) + np.float32(1e-3)
    p[0, :2] = 3e38  # beyond float32's range once summed: inf either way
    where = rng.random(shape) < 0.8 if masked else None
    func = getattr(fastdiv, name)
    args = (p,) if name == "entropy" else (p, q)
    job = prepare_reduction(args, ("p", "q")[:len(args)], where=where, float32_out_ok=True)
    assert job.acc.dtype == np.float32  # the kernel rounds; the job does not
    in_kernel = func(*args, where=where)
    after = func(*args, where=where, base=np.e)
    assert in_kernel.dtype == after.dtype == np.float32
    np.testing.assert_array_equal(in_kernel.view(np.uint32), after.view(np.uint32))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name, base", [(name, base) for name in REDUCTIONS for base in (None, 2)]
                         + [("rel_entr", None), ("entr", None)])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(7,), (5, 7), (2, 3, 7)], ids=["1-D", "2-D", "3-D"])
def test_plain_inputs_skip_the_job_with_the_same_result(backend, name, base, dtype, shape,
                                                         restore_config):
    """Plain arrays (no where, out, keepdims) go to the kernel without a job
    (``run_reduction``, ``run_elementwise``); the prepared path, which ``where=True``
    (reductions) or ``out`` (elementwise) takes, gives the same bits, dtype, shape and
    type (a NumPy scalar for 1-D reductions)."""
    fastdiv.set_backend(backend)
    rng = np.random.default_rng(3)
    p, q = (rng.random(shape).astype(dtype) for _ in range(2))
    func = getattr(fastdiv, name)
    args = (p,) if name in ("entropy", "entr") else (p, q)
    if name in ("rel_entr", "entr"):
        plain, prepared = func(*args), func(*args, out=np.empty(shape, dtype))
    else:
        plain, prepared = func(*args, base=base), func(*args, base=base, where=True)
    assert type(plain) is type(prepared)
    assert plain.dtype == prepared.dtype == dtype and plain.shape == prepared.shape
    np.testing.assert_array_equal(plain, prepared, strict=True)
