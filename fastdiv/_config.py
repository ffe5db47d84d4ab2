"""Run-time configuration: which backend runs the kernels, and how many threads."""

from __future__ import annotations

import contextlib
import functools
import contextvars
import os
import platform
import sys
from collections.abc import Iterator
from importlib import metadata

import numpy as np

from fastdiv import _backends

_ENV_BACKEND = "FASTDIV_BACKEND"

_global_backend: str | None = None  # set_backend(); None means "not chosen yet"
_scoped_backend: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "fastdiv_backend", default=None
)
_num_threads: int | None = None  # set_num_threads(); None means the default


def _default_backend() -> str:
    requested = os.environ.get(_ENV_BACKEND, "").strip().lower()
    if requested:
        _backends.check_name(requested)
        return requested
    return _backends.available_backends()[0]


def get_backend() -> str:
    """Name of the backend that runs kernels in the current context.

    Returns
    -------
    str
        The innermost ``use_backend`` name, else the ``set_backend`` name,
        else ``$FASTDIV_BACKEND``, else the best available backend
        (``cython``, then ``numba``, then ``reference``).

    Examples
    --------
    >>> import fastdiv
    >>> fastdiv.get_backend() in fastdiv.available_backends()
    True
    """
    global _global_backend
    scoped = _scoped_backend.get()
    if scoped is not None:
        return scoped
    if _global_backend is None:
        _global_backend = _default_backend()
    return _global_backend


def set_backend(name: str) -> None:
    """Choose the backend for all later calls (in every thread).

    Parameters
    ----------
    name : {"cython", "numba", "reference"}
        A name from :func:`available_backends`.

    Raises
    ------
    ValueError
        If ``name`` is not a backend name.
    ImportError
        If the backend is not available in this installation.

    Examples
    --------
    >>> import fastdiv
    >>> fastdiv.set_backend("reference")
    >>> fastdiv.get_backend()
    'reference'
    """
    global _global_backend
    _backends.load(name)
    _global_backend = name


@contextlib.contextmanager
def use_backend(name: str) -> Iterator[str]:
    """Context manager that runs the enclosed calls on backend ``name``.

    The choice is local to the current thread (and ``asyncio`` task) and is
    restored on exit, also when an exception leaves the block.

    Parameters
    ----------
    name : {"cython", "numba", "reference"}
        A name from :func:`available_backends`.

    Yields
    ------
    str
        ``name``.

    Examples
    --------
    >>> import numpy as np, fastdiv
    >>> with fastdiv.use_backend("reference"):
    ...     float(fastdiv.entropy([0.5, 0.5], base=2))
    1.0
    """
    _backends.load(name)
    token = _scoped_backend.set(name)
    try:
        yield name
    finally:
        _scoped_backend.reset(token)


def backend_module():
    """The module of the backend that runs kernels in the current context."""
    return _backends.load(get_backend())


@functools.cache
def _default_num_threads() -> int:
    # Read once, like the OpenMP runtime reads OMP_NUM_THREADS once.
    env = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    if env.isdigit() and int(env) > 0:
        return int(env)
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def get_num_threads() -> int:
    """Number of threads the compiled kernels may use.

    Returns
    -------
    int
        The value given to :func:`set_num_threads`, else ``$OMP_NUM_THREADS``,
        else the number of CPUs this process may run on.

    Examples
    --------
    >>> import fastdiv
    >>> fastdiv.get_num_threads() >= 1
    True
    """
    return _num_threads if _num_threads is not None else _default_num_threads()


def set_num_threads(n: int | None) -> None:
    """Set the number of threads the compiled kernels may use.

    Parameters
    ----------
    n : int or None
        A positive thread count, or ``None`` to return to the default
        (``$OMP_NUM_THREADS`` or the CPUs available to this process).

    Examples
    --------
    >>> import fastdiv
    >>> fastdiv.set_num_threads(1)
    >>> fastdiv.get_num_threads()
    1
    >>> fastdiv.set_num_threads(None)
    """
    global _num_threads
    if n is not None:
        if isinstance(n, (bool, np.bool_)) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"number of threads must be a positive int, got {n!r}")
        n = int(n)  # NumPy integers are fine too; store a plain int
    _num_threads = n


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def config_info() -> dict:
    """Everything :func:`show_config` prints, as a dict (used by bench too)."""
    backends = {}
    for name in _backends.BACKEND_NAMES:
        if not _backends.is_available(name):
            backends[name] = {"available": False}
            continue
        try:
            module = _backends.load(name)
            details = module.info() if hasattr(module, "info") else {}
        except Exception as error:  # a broken install must not break show_config
            backends[name] = {"available": False, "error": f"{type(error).__name__}: {error}"}
            continue
        backends[name] = {"available": True, **details}
    return {
        "selected backend": get_backend(),
        "threads": get_num_threads(),
        "backends": backends,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "machine": platform.machine(),
        "versions": {dist: _version(dist) for dist in ("fastdiv", "numpy", "numba", "scipy")},
    }


def show_config() -> None:
    """Print the backends, the chosen SIMD path, threads and library versions.

    Loading a backend to describe it may import Numba or the compiled
    extension; nothing is compiled.

    Examples
    --------
    >>> import fastdiv
    >>> fastdiv.show_config()  # doctest: +ELLIPSIS
    fastdiv ...
    """
    info = config_info()
    print(f"fastdiv {info['versions']['fastdiv']}")
    print(f"  selected backend: {info['selected backend']}")
    print(f"  threads: {info['threads']}")
    for name, details in info["backends"].items():
        if not details["available"]:
            reason = f" ({details['error']})" if "error" in details else ""
            print(f"  backend {name}: not available{reason}")
            continue
        extras = ", ".join(f"{k}={v}" for k, v in details.items() if k != "available")
        print(f"  backend {name}: available" + (f" ({extras})" if extras else ""))
    print(f"  python {info['python']} on {info['platform']}")
    for dist, version in info["versions"].items():
        if dist != "fastdiv":
            print(f"  {dist} {version}")
