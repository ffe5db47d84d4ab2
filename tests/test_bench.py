"""The bench's own logic: argument parsing, the correctness gate, the JSON file,
``--compare`` arithmetic, timing loops, the floor and the memory probe."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

import fastdiv

pytest.importorskip("scipy")

from bench import SCHEMA, cases, cli, compare, data, gate, memory, runner, store, timing  # noqa: E402
from bench import floor as floor_module  # noqa: E402
from bench.floor import Floor  # noqa: E402

KL = next(op for op in cases.REGISTRY if op.label == "kl_divergence")
TINY = data.parse_size("tiny")


# --- argument parsing -----------------------------------------------------------


def test_defaults_cover_every_available_op_and_the_issue_sizes():
    options = cli.parse_args([])
    settings = options.settings
    assert [op.label for op in settings.ops] == [op.label for op in cases.select_ops()]
    assert [s.name for s in settings.sizes] == list(data.DEFAULT_SIZES)
    assert settings.dtypes == ["float32", "float64"]
    assert settings.repeat == 7
    assert "reference" in settings.backends
    assert options.out.name == "bench-results"
    assert options.compare is None


def test_quick_uses_small_sizes_and_few_repeats():
    options = cli.parse_args(["--quick"])
    settings = options.settings
    assert [s.name for s in settings.sizes] == list(data.QUICK_SIZES)
    assert settings.repeat == 3
    assert max(s.elements for s in settings.sizes) <= 2**21
    assert not options.first_call
    compiled = [b for b in fastdiv.available_backends() if b != "reference"]
    assert settings.backends == (compiled or ["reference"])


def test_first_call_measurement_needs_numba():
    assert not cli.parse_args(["--backend", "reference"]).first_call
    assert not cli.parse_args(["--backend", "reference", "--first-call"]).first_call
    if "numba" in fastdiv.available_backends():
        assert cli.parse_args([]).first_call
        assert cli.parse_args(["--quick", "--first-call"]).first_call
        assert not cli.parse_args(["--no-first-call"]).first_call


def test_explicit_flags_override_quick(tmp_path):
    old = store.save(store.build([], {}, {}), tmp_path / "old.json")
    options = cli.parse_args([
        "--quick", "--ops", "kl_divergence,entropy", "--dtype", "float32",
        "--backend", "reference", "--sizes", "tiny,512x64/b", "--threads", "1",
        "--repeat", "5", "--out", str(tmp_path), "--compare", str(old),
    ])
    settings = options.settings
    assert [op.label for op in settings.ops] == ["kl_divergence", "entropy"]
    assert settings.dtypes == ["float32"]
    assert settings.backends == ["reference"]
    assert [(s.rows, s.n, s.broadcast) for s in settings.sizes] == [(32, 10, False), (512, 64, True)]
    assert (settings.threads, settings.repeat) == (1, 5)
    assert options.out == tmp_path
    assert options.compare == old


@pytest.mark.parametrize("argv", [
    ["--ops", "no_such_op"],
    ["--dtype", "float16"],
    ["--backend", "fortran"],
    ["--sizes", "12by7"],
    ["--sizes", "0x10"],
    ["--threads", "0"],
    ["--repeat", "-1"],
    ["--compare", "/nonexistent/old.json"],
])
def test_bad_arguments_exit_with_usage_error(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.parse_args(argv)
    assert exit_info.value.code == 2
    assert "error" in capsys.readouterr().err


def test_size_specs():
    assert data.parse_size("large") == data.Size("large", 1024, 32768)
    size = data.parse_size("7x3/b")
    assert (size.rows, size.n, size.broadcast, size.spec) == (7, 3, True, "7x3/b")
    assert data.parse_size("xlarge").dtypes == ("float32",)


def test_select_ops_by_function_name_selects_every_variant():
    selected = cases.select_ops(["kl_divergence"])
    assert [op.label for op in selected] == ["kl_divergence"]
    for op in cases.REGISTRY:
        assert op.baseline in [peer.name for peer in op.peers], op.label


# --- generated data -----------------------------------------------------------


def test_inputs_are_deterministic_and_valid():
    size = data.parse_size("16x50/b")
    first = data.InputCache(size, np.float32)
    second = data.InputCache(size, np.float32)
    (p, q), by_row = first.operands(("p", "q"))
    np.testing.assert_array_equal(p, second.get("p"))
    assert p.dtype == np.float32 and p.shape == (16, 50) and q.shape == (50,)
    assert by_row == [True, False]
    np.testing.assert_allclose(p.sum(-1), 1, rtol=1e-5)
    t = first.get("t")
    assert t.dtype == np.int64 and t.shape == (16,) and t.min() >= 0 and t.max() < 50
    assert not np.array_equal(first.get("p"), first.get("q", shared_row=False))


# --- the correctness gate -------------------------------------------------------


def _settings(**changes):
    values = dict(ops=[KL], dtypes=["float64"], sizes=[TINY], backends=["reference"],
                  threads=1, repeat=3, min_repeat_s=1e-4, budget_s=0.05)
    values.update(changes)
    return runner.Settings(**values)


def _candidate(name, make, mean=False):
    return runner.Candidate(name, "peer", "test", make, mean)


def _run_one(candidate, size=TINY, dtype="float64"):
    case = runner.Case(KL, dtype, size, [candidate])
    return runner.run(_settings(dtypes=[dtype], sizes=[size]), [case])[0]


def _scipy_kl(arrays):
    from scipy.special import rel_entr

    p, q = arrays
    return lambda: rel_entr(p, q).sum(-1)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_a_correct_kernel_is_timed(dtype):
    record = _run_one(_candidate("right", _scipy_kl), dtype=dtype)
    assert record["status"] == "ok"
    assert record["median_s"] > 0 and record["bytes_per_s"] > 0
    assert record["floor_s"] > 0 and record["floor_ratio"] > 0
    assert record["gate_error"] <= gate.RTOL[dtype]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("factor", [1.001, 0.999])
def test_a_wrong_kernel_is_failed_and_never_timed(dtype, factor):
    def wrong(arrays):
        right = _scipy_kl(arrays)
        return lambda: right() * factor

    record = _run_one(_candidate("wrong", wrong), dtype=dtype)
    assert record["status"] == "FAILED"
    assert "relative error" in record["detail"]
    assert "median_s" not in record and record.get("speedup") is None


def test_a_kernel_wrong_on_one_row_only_is_failed():
    def one_bad_row(arrays):
        right = _scipy_kl(arrays)

        def call():
            out = right()
            out[-1] += 0.5
            return out

        return call

    assert _run_one(_candidate("bad last row", one_bad_row))["status"] == "FAILED"


@pytest.mark.parametrize("result", [
    lambda n: np.zeros(n + 1),           # wrong shape
    lambda n: np.full(n, np.nan),        # NaN where the reference is finite
    lambda n: (np.zeros(n), np.zeros(n)),  # two outputs where one is expected
])
def test_malformed_results_are_failed(result):
    record = _run_one(_candidate("malformed", lambda arrays: lambda: result(len(arrays[0]))))
    assert record["status"] == "FAILED"


def test_a_kernel_that_raises_is_failed_and_the_run_goes_on():
    def raises(arrays):
        def call():
            raise RuntimeError("kernel exploded")

        return call

    case = runner.Case(KL, "float64", TINY, [_candidate("boom", raises), _candidate("ok", _scipy_kl)])
    boom, ok = runner.run(_settings(), [case])
    assert boom["status"] == "FAILED" and "kernel exploded" in boom["detail"]
    assert ok["status"] == "ok"


def test_a_kernel_that_fails_while_timed_is_failed():
    def fails_later(arrays):
        right = _scipy_kl(arrays)
        calls = itertools.count()

        def call():
            if next(calls) >= 2:  # the gate and the memory probe pass
                raise MemoryError("only now")
            return right()

        return call

    case = runner.Case(KL, "float64", TINY, [_candidate("flaky", fails_later)])
    # min_repeat_s=0: the memory probe's time stands in for calibration calls
    (record,) = runner.run(_settings(min_repeat_s=0.0), [case])
    assert record["status"] == "FAILED"
    assert record["detail"] == "while timed: MemoryError: only now"
    assert "median_s" not in record


def test_an_unavailable_backend_is_failed():
    record = _run_one(runner.Candidate("fastdiv[nope]", "fastdiv", "nope", KL.make))
    assert record["status"] == "FAILED"
    assert "nope" in record["detail"]


def test_a_mean_reducing_peer_is_checked_against_the_mean():
    def mean_kl(arrays):
        per_row = _scipy_kl(arrays)
        return lambda: float(per_row().mean())

    assert _run_one(_candidate("mean", mean_kl, mean=True))["status"] == "ok"

    def wrong_mean(arrays):
        per_row = _scipy_kl(arrays)
        return lambda: float(per_row().mean() * 1.01)

    assert _run_one(_candidate("wrong mean", wrong_mean, mean=True))["status"] == "FAILED"


def test_gate_checks_broadcast_and_sampled_rows():
    size = data.parse_size("3000x8/b")
    rows = gate.sample_rows(size.rows, size.n)
    assert rows[0] == 0 and rows[-1] == size.rows - 1 and len(rows) == gate.SAMPLE_ROWS
    assert _run_one(_candidate("right", _scipy_kl), size=size)["status"] == "ok"


def test_reference_is_not_timed_on_large_sizes():
    big = data.parse_size(f"{runner.REFERENCE_TIMING_MAX_ELEMENTS // 100 + 1}x100")
    candidate = runner.Candidate("fastdiv[reference]", "fastdiv", "reference", KL.make)
    assert _run_one(candidate, size=big)["status"] == "skipped"


def test_speedup_and_floor_ratio_arithmetic():
    records = [
        {"impl": "scipy", "status": "ok", "median_s": 0.5},
        {"impl": "fast", "status": "ok", "median_s": 0.01},
        {"impl": "broken", "status": "FAILED"},
    ]
    runner.fill_ratios(records, "scipy", floor_s=0.004)
    scipy_, fast, broken = records
    assert scipy_["speedup"] == pytest.approx(1.0)
    assert fast["speedup"] == pytest.approx(50.0)
    assert fast["floor_ratio"] == pytest.approx(2.5)
    assert "speedup" not in broken and broken["floor_s"] == 0.004


def test_no_speedup_without_a_timed_baseline():
    records = [{"impl": "scipy", "status": "FAILED"}, {"impl": "fast", "status": "ok", "median_s": 1.0}]
    runner.fill_ratios(records, "scipy", floor_s=None)
    assert records[1]["speedup"] is None and records[1]["floor_ratio"] is None


# --- the JSON file ------------------------------------------------------------------


def _reject_constant(name):
    raise ValueError(f"non-standard JSON constant {name}")


def test_json_file_has_the_documented_schema(tmp_path):
    status = cli.main([
        "--ops", "kl_divergence,entropy", "--sizes", "tiny,16x8/b", "--dtype", "float64",
        "--backend", "reference", "--repeat", "3", "--no-plot",
        "--out", str(tmp_path),
    ])
    assert status == 0
    assert not (tmp_path / "results.partial.jsonl").exists()  # only kept when interrupted
    document = json.loads((tmp_path / "results.json").read_text(), parse_constant=_reject_constant)
    assert set(store.TOP_KEYS) <= set(document)
    assert document["schema"] == SCHEMA
    assert document["settings"]["ops"] == ["kl_divergence", "entropy"]
    machine = document["machine"]
    for key in ("cpu", "cpus", "threads", "simd", "versions", "fastdiv"):
        assert key in machine
    assert machine["versions"]["numpy"] == np.__version__
    records = document["results"]
    # kl on two sizes (one broadcast), entropy on the unbroadcast size only
    assert {(r["op"], r["shape"]) for r in records} == {
        ("kl_divergence", "32x10"), ("kl_divergence", "16x8/b"), ("entropy", "32x10")}
    for record in records:
        assert set(store.RECORD_KEYS) <= set(record)
        if record["status"] == "ok":
            assert set(store.TIMED_KEYS) <= set(record)
    impls = {r["impl"] for r in records}
    assert {"fastdiv[reference]", "scipy rel_entr.sum", "scipy entr.sum"} <= impls
    assert all(r["status"] == "ok" for r in records)


def test_load_rejects_other_json(tmp_path):
    path = tmp_path / "other.json"
    path.write_text(json.dumps({"results": []}))
    with pytest.raises(ValueError, match="not a fastdiv bench results file"):
        store.load(path)


def test_save_writes_valid_json_for_non_finite_and_numpy_values(tmp_path):
    document = store.build([{"x": np.float64(np.inf), "y": np.int64(3)}], {}, {})
    text = store.save(document, tmp_path / "r.json").read_text()
    loaded = json.loads(text, parse_constant=_reject_constant)
    assert loaded["results"] == [{"x": None, "y": 3}]


# --- --compare ----------------------------------------------------------------------


def _record(impl="fastdiv[x]", status="ok", median=1.0, floor=0.5, shape="8x8"):
    return {"op": "kl_divergence", "dtype": "float64", "shape": shape, "impl": impl,
            "status": status, "median_s": median if status == "ok" else None, "floor_s": floor}


@pytest.mark.parametrize(("old", "new", "ratio", "flag"), [
    (1.0, 1.5, 1.5, compare.REGRESSION),
    (1.0, 1.2, 1.2, compare.SAME),
    (2.0, 1.0, 0.5, compare.FASTER),
    (1.0, 0.9, 0.9, compare.SAME),
])
def test_compare_ratio_and_flag(old, new, ratio, flag):
    row = compare.compare_record(_record(median=old), _record(median=new), tolerance=0.25)
    assert row["ratio"] == pytest.approx(ratio)
    assert row["flag"] == flag
    assert (row["old_s"], row["new_s"]) == (old, new)


def test_compare_floor_normalised_ratio_cancels_a_slower_machine():
    old = _record(median=1.0, floor=0.5)
    new = _record(median=2.0, floor=1.0)  # everything twice as slow, kernel included
    row = compare.compare_record(old, new, tolerance=0.25)
    assert row["ratio"] == pytest.approx(2.0)
    assert row["floor_ratio_change"] == pytest.approx(1.0)


def test_compare_status_changes_and_unmatched_records():
    old = [_record("a"), _record("b", status="FAILED"), _record("gone")]
    new = [_record("a", status="FAILED"), _record("b"), _record("new")]
    result = compare.compare_runs(old, new, tolerance=0.25)
    flags = {row["impl"]: row["flag"] for row in result["rows"]}
    assert flags == {"a": compare.BROKEN, "b": compare.FIXED, "new": compare.NEW,
                     "gone": compare.GONE}
    assert result["regressions"] == 1


def test_compare_matches_on_shape_not_order():
    old = [_record(shape="8x8", median=1.0), _record(shape="16x16", median=4.0)]
    new = [_record(shape="16x16", median=4.0), _record(shape="8x8", median=3.0)]
    result = compare.compare_runs(old, new, tolerance=0.25)
    assert [row["ratio"] for row in result["rows"]] == pytest.approx([1.0, 3.0])
    assert result["regressions"] == 1


def test_main_with_compare_writes_the_comparison(tmp_path):
    argv = ["--ops", "entropy", "--sizes", "tiny", "--dtype", "float64", "--backend",
            "reference", "--repeat", "3", "--no-plot"]
    assert cli.main(argv + ["--out", str(tmp_path / "old")]) == 0
    old_path = tmp_path / "old" / "results.json"
    old = store.load(old_path)
    for record in old["results"]:
        if record["status"] == "ok":
            record["median_s"] /= 10  # pretend the earlier run was ten times faster
    store.save(old, old_path)
    assert cli.main(argv + ["--out", str(tmp_path / "new"), "--compare", str(old_path)]) == 0
    comparison = store.load(tmp_path / "new" / "results.json")["comparison"]
    timed = [row for row in comparison["rows"] if row["ratio"] is not None]
    assert timed and all(row["flag"] == compare.REGRESSION for row in timed)
    assert comparison["regressions"] == len(timed)


# --- the terminal report ---------------------------------------------------------------


def test_table_shows_failed_rows_without_numbers():
    from bench import report

    ok = {"dtype": "float64", "shape": "8x8", "impl": "fastdiv[x]", "status": "ok",
          "median_s": 2e-3, "speedup": 12.0, "bytes_per_s": 4e9, "floor_ratio": 1.25,
          "peak_bytes": 2048}
    failed = {"dtype": "float32", "shape": "8x8/b", "impl": "fastdiv[y]", "status": "FAILED",
              "detail": "relative error 0.01 > 0.0001"}
    assert report.table_rows([ok, failed]) == [
        ("f64 8x8", "fastdiv[x]", "2.0 ms", "12.0x", "4.0", "1.25x", "2.0 KiB", "ok"),
        ("f32 8x8/b", "fastdiv[y]", "-", "-", "-", "-", "-",
         "FAILED: relative error 0.01 > 0.0001"),
    ]


@pytest.mark.parametrize("name", [
    "cases", "cli", "compare", "data", "firstcall", "floor", "gate", "machine", "memory",
    "plot", "report", "runner", "store", "timing",
])
def test_docstring_examples(name):
    import doctest
    import importlib

    module = importlib.import_module(f"bench.{name}")
    failed, _ = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert failed == 0


# --- timing, floor, memory ------------------------------------------------------------


def _fake_clock(step):
    ticks = itertools.count()
    return lambda: next(ticks) * step


def test_measure_loops_short_calls_and_limits_slow_ones():
    # each clock read advances one step: a call looks like one step long, so it is looped
    step = 2.0**-20
    fast = timing.measure(lambda: None, repeat=5, min_repeat_s=1e-4, clock=_fake_clock(step))
    assert fast.loops == int(1e-4 / step) and len(fast.times) == 5
    assert fast.median == pytest.approx(step / fast.loops)
    # each read advances 1 s: 7 repeats would exceed a 2 s budget, but 3 is the minimum
    slow = timing.measure(lambda: None, repeat=7, budget_s=2.0, clock=_fake_clock(1.0))
    assert slow.loops == 1 and len(slow.times) == timing.MIN_REPEATS
    # a known estimate replaces the calibration call: every call is a timed repeat
    calls = []
    timed = timing.measure(lambda: calls.append(1), repeat=4, min_repeat_s=0.5, budget_s=10,
                           estimate_s=1.0, clock=_fake_clock(1.0))
    assert len(calls) == len(timed.times) == 4


def test_interleaved_timing_goes_round_robin():
    order = []
    calls = [lambda: order.append("a"), lambda: order.append("b")]
    plans = [timing.Plan(loops=2, repeats=2), timing.Plan(loops=1, repeats=3)]
    timings = timing.measure_interleaved(calls, plans, clock=_fake_clock(1.0))
    assert order == ["a", "a", "b", "b", "a", "a", "b"]  # a: the first and the last round
    assert [len(t.times) for t in timings] == [2, 3]
    assert timings[0].median == pytest.approx(0.5)  # one clock step per repeat of two calls


def test_interleaved_timing_spreads_a_call_with_fewer_repeats_over_the_rounds():
    """A slow peer with 3 repeats among candidates with 7 runs in rounds 0, 3 and 6. It
    once ran in rounds 0 to 2 only: a JS case then set fastdiv's median, taken in a slow
    spell of the machine in the later rounds, against SciPy's from the quick first ones."""
    order = []
    calls = [lambda: order.append("fast"), lambda: order.append("slow")]
    plans = [timing.Plan(loops=1, repeats=7), timing.Plan(loops=1, repeats=3)]
    timing.measure_interleaved(calls, plans, clock=_fake_clock(1.0))
    # a round runs "fast" then, if scheduled, "slow"
    slow_rounds = [order[:i].count("fast") - 1 for i, name in enumerate(order) if name == "slow"]
    assert slow_rounds == [0, 3, 6]


@pytest.mark.parametrize("summed_by", ["stream_sum", "numpy"])
@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_floor_streams_every_element_once(threads, dtype, summed_by, monkeypatch):
    if summed_by == "numpy":
        monkeypatch.setattr(floor_module, "_stream_sum", None)
    elif floor_module.method() != "stream_sum":
        pytest.skip("the Cython extension is not built")
    assert floor_module.method() == summed_by
    rng = np.random.default_rng(0)
    big = rng.random((3, 70_000)).astype(dtype)
    other = rng.random((3, 70_000)).astype(dtype)
    row = rng.random(70_000).astype(dtype)
    floor = Floor(threads=threads)
    try:
        expected = big.sum(dtype=np.float64) + other.sum(dtype=np.float64) + row.sum(dtype=np.float64)
        assert floor.stream([big, other, row]) == pytest.approx(expected, rel=1e-6)
        assert floor.time([big], repeat=3, budget_s=0.1).median > 0
    finally:
        floor.close()


def test_peak_memory_sees_temporaries_and_not_preexisting_arrays():
    keep = np.ones(2_000_000)
    assert memory.peak_extra_bytes(lambda: keep.sum()) < 1_000_000
    # a freed 16 MB temporary still counts
    assert memory.peak_extra_bytes(lambda: float((keep * 2).sum())) >= 16_000_000


def test_a_peer_is_left_out_of_rows_longer_than_it_handles():
    """scikit-learn's log_loss one-hot encodes its labels: a (1, 2**25) case once ran for
    many minutes in it, so the full bench never finished."""
    op = next(op for op in cases.REGISTRY if op.label == "softmax_cross_entropy")
    sklearn_peer = next(p for p in op.peers if p.library == "sklearn")
    assert sklearn_peer.handles(1000) and not sklearn_peer.handles(1 << 25)
    short_names = [c.name for c in runner.candidates(op, [], 1, n=1000)]
    long_names = [c.name for c in runner.candidates(op, [], 1, n=1 << 25)]
    assert sklearn_peer.name not in long_names
    assert set(long_names) <= set(short_names)
    if sklearn_peer.available():
        assert sklearn_peer.name in short_names
