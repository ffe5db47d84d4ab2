"""The pytest-benchmark suite: ``pytest bench/ --benchmark-only``.

Generated from the same registry as ``python -m bench`` (:mod:`bench.cases`):
one benchmark per op, dtype, size and candidate (each fastdiv backend and each
installed peer), grouped by op, dtype and size so that fastdiv and its peers
sit side by side. Every benchmark first checks its result against the
reference backend, so the suite doubles as a smoke test.

Environment variables choose what runs:
``FASTDIV_BENCH_SIZES`` (default ``tiny,medium,wide``; presets or ``ROWSxN[/b]``),
``FASTDIV_BENCH_DTYPES`` (default ``float32,float64``),
``FASTDIV_BENCH_OPS`` (default: every op fastdiv has).
"""

from __future__ import annotations

import os

import pytest

import fastdiv
from bench import cases, data, gate, runner


def _env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


SIZES = [data.parse_size(s) for s in _env_list("FASTDIV_BENCH_SIZES", "tiny,medium,wide")]
DTYPES = _env_list("FASTDIV_BENCH_DTYPES", "float32,float64")
OPS = cases.select_ops(_env_list("FASTDIV_BENCH_OPS", "") or None)


def _params():
    threads = fastdiv.get_num_threads()
    for op in OPS:
        for dtype in DTYPES:
            for size in SIZES:
                if dtype not in size.dtypes or not op.supports(size):
                    continue
                for candidate in runner.candidates(op, fastdiv.available_backends(), threads):
                    if (
                        candidate.library == "reference"
                        and size.elements > runner.REFERENCE_TIMING_MAX_ELEMENTS
                    ):
                        continue
                    yield pytest.param(
                        op, dtype, size, candidate,
                        id=f"{op.label}-{dtype}-{size.spec}-{candidate.name}",
                    )


@pytest.fixture(scope="module")
def inputs():
    """Inputs of the size and dtype in use, kept while consecutive tests share them."""
    held: dict = {}

    def get(size: data.Size, dtype: str) -> data.InputCache:
        if (size, dtype) not in held:
            held.clear()
            held[(size, dtype)] = data.InputCache(size, dtype)
        return held[(size, dtype)]

    return get


@pytest.mark.parametrize(("op", "dtype", "size", "candidate"), list(_params()))
def test_benchmark(benchmark, inputs, op, dtype, size, candidate):
    benchmark.group = f"{op.label} {dtype} {size.spec}"
    benchmark.extra_info.update(impl=candidate.name, op=op.label, dtype=dtype, shape=size.spec)
    arrays, by_row = inputs(size, dtype).operands(op.inputs)
    rows = gate.sample_rows(size.rows, size.n)
    expected = gate.reference_outputs(op, gate.take_rows(arrays, by_row, rows))
    with candidate.active():
        call = candidate.make(arrays)
        if candidate.mean:
            sample = candidate.make(gate.take_rows(arrays, by_row, rows))()
            verdict = gate.check_mean(sample, expected, dtype)
        else:
            verdict = gate.check_rows(call(), expected, rows, dtype)
        assert verdict.ok, f"{candidate.name} disagrees with the reference: {verdict.detail}"
        benchmark(call)
