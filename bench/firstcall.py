"""Numba's first-call (compile) time, with a cold and with a warm cache.

Each measurement runs in a fresh Python process with ``NUMBA_CACHE_DIR``
pointing at a temporary folder: the first process finds it empty (cold: every
kernel compiles), the second finds what the first wrote (warm: kernels load
from the cache). Each process reports, per op and dtype, the time of the first
call and of the second (steady-state) call, plus the time to import the
backend. Steady-state timings elsewhere in the bench never include this.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]

_CHILD = r"""
import json, sys, time
spec = json.loads(sys.argv[1])
report = {"ops": {}}
start = time.perf_counter()
import numpy as np
import fastdiv
from fastdiv import _backends
from bench import cases, data
report["import_fastdiv_s"] = time.perf_counter() - start
try:
    start = time.perf_counter()
    _backends.load("numba")
    fastdiv.set_backend("numba")
    report["import_backend_s"] = time.perf_counter() - start
except Exception as error:
    report["error"] = f"{type(error).__name__}: {error}"
    print(json.dumps(report))
    raise SystemExit(0)
fastdiv.set_num_threads(spec["threads"])
size = data.parse_size(spec["size"])
ops = {op.label: op for op in cases.REGISTRY}
for dtype in spec["dtypes"]:
    inputs = data.InputCache(size, dtype)
    for label in spec["ops"]:
        op = ops[label]
        call = op.make(inputs.operands(op.inputs)[0])
        key = f"{label}/{dtype}"
        try:
            start = time.perf_counter()
            call()
            first = time.perf_counter() - start
            start = time.perf_counter()
            call()
            report["ops"][key] = {"first_s": first, "second_s": time.perf_counter() - start}
        except Exception as error:
            report["ops"][key] = {"error": f"{type(error).__name__}: {error}"}
print(json.dumps(report))
"""


def _run_child(spec: dict, cache_dir: str, timeout_s: float) -> dict:
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    start = time.perf_counter()
    try:
        done = subprocess.run(
            [sys.executable, "-c", _CHILD, json.dumps(spec)],
            env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout_s,
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout_s:g} s"}
    wall = time.perf_counter() - start
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        return {"error": f"exit {done.returncode}: {tail[0]}"}
    report = json.loads(lines[-1])
    report["process_wall_s"] = wall
    return report


def measure_first_calls(
    ops: Sequence[str],
    dtypes: Sequence[str],
    threads: int,
    size: str = "medium",
    timeout_s: float = 600.0,
) -> dict:
    """First-call times of the Numba backend with a cold, then a warm cache.

    Parameters
    ----------
    ops : sequence of str
        Op labels from :mod:`bench.cases`.
    dtypes : sequence of str
    threads : int
    size : str
        The input size for the calls (a preset or ``ROWSxN``).
    timeout_s : float
        Limit per process.

    Returns
    -------
    dict
        ``{"cold": report, "warm": report}``, each report with
        ``import_backend_s``, ``process_wall_s`` and ``ops``:
        ``{"label/dtype": {"first_s", "second_s"}}`` (or ``"error"``).
    """
    spec = {"ops": list(ops), "dtypes": list(dtypes), "threads": threads, "size": size}
    with tempfile.TemporaryDirectory(prefix="fastdiv-numba-cache-") as cache_dir:
        cold = _run_child(spec, cache_dir, timeout_s)
        warm = _run_child(spec, cache_dir, timeout_s)
    return {"size": size, "cold": cold, "warm": warm}
