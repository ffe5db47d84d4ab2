"""Backend selection, thread count, show_config, and a cheap ``import fastdiv``."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

import fastdiv
from fastdiv import _backends

ROOT = Path(__file__).resolve().parents[1]


def _run_python(code: str, **env_changes) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("FASTDIV_BACKEND", "OMP_NUM_THREADS")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.update(env_changes)
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )


def test_available_backends():
    names = fastdiv.available_backends()
    assert names[-1] == "reference"
    assert set(names) <= {"cython", "numba", "reference"}
    assert names == [n for n in ("cython", "numba", "reference") if n in names]  # best first


def test_set_backend_and_get_backend(restore_config):
    fastdiv.set_backend("reference")
    assert fastdiv.get_backend() == "reference"
    assert fastdiv.entropy([0.5, 0.5]) == pytest.approx(0.6931471805599453, rel=1e-15)


@pytest.mark.parametrize("name", ["scipy", "", "Reference"])
def test_unknown_backend_is_value_error_listing_choices(name, restore_config):
    before = fastdiv.get_backend()
    with pytest.raises(ValueError, match="cython, numba, reference"):
        fastdiv.set_backend(name)
    with pytest.raises(ValueError, match="unknown backend"):
        with fastdiv.use_backend(name):
            pass
    assert fastdiv.get_backend() == before


def test_unavailable_backend_is_import_error(monkeypatch, restore_config):
    monkeypatch.setitem(_backends._REQUIREMENTS, "numba", "no_such_module_for_fastdiv")
    monkeypatch.delitem(_backends._loaded, "numba", raising=False)
    assert "numba" not in fastdiv.available_backends()
    with pytest.raises(ImportError, match="not available"):
        fastdiv.set_backend("numba")
    with pytest.raises(_backends.BackendUnavailableError):
        with fastdiv.use_backend("numba"):
            pass


def test_use_backend_restores_on_exit_and_on_error(restore_config):
    fastdiv.set_backend("reference")
    other = fastdiv.available_backends()[0]
    with fastdiv.use_backend(other) as name:
        assert name == other and fastdiv.get_backend() == other
        with fastdiv.use_backend("reference"):
            assert fastdiv.get_backend() == "reference"
        assert fastdiv.get_backend() == other
    assert fastdiv.get_backend() == "reference"
    with pytest.raises(RuntimeError):
        with fastdiv.use_backend(other):
            raise RuntimeError("boom")
    assert fastdiv.get_backend() == "reference"


def test_use_backend_is_thread_local(restore_config):
    fastdiv.set_backend("reference")
    seen = {}
    entered, release = threading.Event(), threading.Event()

    def worker():
        with fastdiv.use_backend("reference"):
            seen["inside"] = fastdiv.get_backend()
            entered.set()
            release.wait(10)

    def other_thread():
        seen["other"] = fastdiv.get_backend()

    candidates = [n for n in fastdiv.available_backends() if n != "reference"]
    if not candidates:
        pytest.skip("needs a second backend")
    fastdiv.set_backend(candidates[-1])  # global choice: not reference
    thread = threading.Thread(target=worker)
    thread.start()
    entered.wait(10)
    assert fastdiv.get_backend() == candidates[-1]  # main thread unaffected
    probe = threading.Thread(target=other_thread)
    probe.start()
    probe.join()
    release.set()
    thread.join()
    assert seen == {"inside": "reference", "other": candidates[-1]}


def test_set_backend_applies_to_other_threads(restore_config):
    fastdiv.set_backend("reference")
    seen = []
    thread = threading.Thread(target=lambda: seen.append(fastdiv.get_backend()))
    thread.start()
    thread.join()
    assert seen == ["reference"]


def test_fastdiv_backend_environment_variable():
    result = _run_python(
        "import fastdiv; print(fastdiv.get_backend()); "
        "print(float(fastdiv.entropy([0.5, 0.5], base=2)))",
        FASTDIV_BACKEND="reference",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["reference", "1.0"]


def test_fastdiv_backend_environment_variable_is_validated():
    result = _run_python("import fastdiv; fastdiv.get_backend()", FASTDIV_BACKEND="nope")
    assert result.returncode != 0
    assert "unknown backend 'nope'" in result.stderr


def test_default_backend_is_the_best_available():
    result = _run_python("import fastdiv; print(fastdiv.get_backend())")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == fastdiv.available_backends()[0]


def test_import_does_not_import_numba_or_compile():
    code = (
        "import sys, fastdiv; "
        "fastdiv.available_backends(); fastdiv.get_backend(); fastdiv.get_num_threads(); "
        "print('numba' in sys.modules)"
    )
    result = _run_python(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_reference_backend_never_imports_numba():
    code = (
        "import sys, fastdiv; fastdiv.kl_divergence([[0.5, 0.5]], [0.25, 0.75]); "
        "print('numba' in sys.modules)"
    )
    result = _run_python(code, FASTDIV_BACKEND="reference")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_num_threads(restore_config):
    assert fastdiv.get_num_threads() >= 1
    fastdiv.set_num_threads(3)
    assert fastdiv.get_num_threads() == 3
    fastdiv.set_num_threads(None)
    assert fastdiv.get_num_threads() >= 1


def test_set_num_threads_accepts_numpy_integers(restore_config):
    import numpy as np

    fastdiv.set_num_threads(np.int64(3))
    assert fastdiv.get_num_threads() == 3 and type(fastdiv.get_num_threads()) is int


@pytest.mark.parametrize("bad", [0, -1, 1.5, "2", True])
def test_set_num_threads_validates(bad, restore_config):
    fastdiv.set_num_threads(2)
    with pytest.raises(ValueError, match="positive int"):
        fastdiv.set_num_threads(bad)
    assert fastdiv.get_num_threads() == 2


def test_num_threads_default_follows_omp_num_threads():
    result = _run_python("import fastdiv; print(fastdiv.get_num_threads())", OMP_NUM_THREADS="3")
    assert result.stdout.strip() == "3"
    result = _run_python("import fastdiv; print(fastdiv.get_num_threads())")
    assert int(result.stdout) == len(os.sched_getaffinity(0))


def test_results_do_not_depend_on_num_threads(restore_config):
    import numpy as np

    rng = np.random.default_rng(60)
    p, q = rng.random((300, 500)), rng.random((300, 500))
    fastdiv.set_num_threads(1)
    one = fastdiv.kl_divergence(p, q, normalize=True)
    fastdiv.set_num_threads(2)
    np.testing.assert_allclose(fastdiv.kl_divergence(p, q, normalize=True), one, rtol=1e-13)


def test_show_config(capsys, restore_config):
    fastdiv.set_backend("reference")
    fastdiv.set_num_threads(2)
    fastdiv.show_config()
    text = capsys.readouterr().out
    assert text.startswith("fastdiv ")
    assert "selected backend: reference" in text
    assert "threads: 2" in text
    assert "backend reference: available" in text
    for name in ("cython", "numba"):
        assert f"backend {name}: " in text
    import numpy as np

    assert f"numpy {np.__version__}" in text


def test_show_config_survives_a_backend_that_fails_to_load(monkeypatch, capsys, restore_config):
    monkeypatch.setitem(_backends._MODULES, "numba", "fastdiv._no_such_backend_module")
    monkeypatch.setitem(_backends._REQUIREMENTS, "numba", "numpy")  # looks available
    monkeypatch.delitem(_backends._loaded, "numba", raising=False)
    fastdiv.set_backend("reference")
    fastdiv.show_config()
    text = capsys.readouterr().out
    assert "backend numba: not available (ModuleNotFoundError" in text
    assert "backend reference: available" in text
