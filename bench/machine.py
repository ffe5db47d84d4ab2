"""What the numbers were measured on: CPU, SIMD path, threads, library versions."""

from __future__ import annotations

import os
import platform
from importlib import metadata

from bench import floor
from fastdiv import _config

PEER_LIBRARIES = ("scipy", "torch", "scikit-learn", "matplotlib", "rich", "pytest-benchmark")


def cpu_model(cpuinfo: str = "/proc/cpuinfo") -> str:
    """The CPU's model name from ``/proc/cpuinfo``, else what ``platform`` knows.

    Examples
    --------
    >>> isinstance(cpu_model(), str)
    True
    """
    try:
        with open(cpuinfo) as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_flags(cpuinfo: str = "/proc/cpuinfo") -> list[str]:
    """The SIMD-related CPU flags (avx2, fma, avx512*) from ``/proc/cpuinfo``."""
    try:
        with open(cpuinfo) as info:
            for line in info:
                if line.startswith("flags"):
                    flags = line.split(":", 1)[1].split()
                    return sorted(f for f in flags if f.startswith(("avx", "fma", "sse4")))
    except OSError:
        pass
    return []


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def describe(threads: int) -> dict:
    """The machine and software the run used.

    Parameters
    ----------
    threads : int
        The thread count the run gives fastdiv and its peers.

    Returns
    -------
    dict
        ``cpu``, ``cpu_flags``, ``cpus`` (available to this process),
        ``threads``, ``simd`` (per fastdiv backend, where it says),
        ``floor`` (what the floor's sum runs on, :func:`bench.floor.method`),
        ``versions`` and ``fastdiv`` (:func:`fastdiv._config.config_info`).
    """
    try:
        info = _config.config_info()
    except Exception as error:  # a broken backend must not stop the bench
        info = {"error": f"{type(error).__name__}: {error}"}
    simd = {
        name: next((str(v) for k, v in details.items() if "simd" in k.lower()), None)
        for name, details in info.get("backends", {}).items()
        if details.get("available")
    }
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:
        cpus = os.cpu_count()
    versions = dict(info.get("versions", {}))
    versions.update({dist: _version(dist) for dist in PEER_LIBRARIES})
    return {
        "cpu": cpu_model(),
        "cpu_flags": cpu_flags(),
        "cpus": cpus,
        "threads": threads,
        "simd": simd,
        "floor": floor.method(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": versions,
        "fastdiv": info,
    }
