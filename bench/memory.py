"""Peak extra memory of one call.

Two views, and the larger is reported: ``tracemalloc`` sees every NumPy
allocation exactly (freed temporaries included) but not memory that compiled
code or PyTorch allocates itself; the resident-set high-water mark (Linux:
reset through ``/proc/self/clear_refs``, read from ``VmHWM``) sees every page
the call touched, but not memory reused from the allocator's free lists.
The result the call returns counts as extra memory.
"""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable

_STATUS = "/proc/self/status"
_CLEAR_REFS = "/proc/self/clear_refs"


def _status_kib(field: str) -> int | None:
    try:
        with open(_STATUS) as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_rss_peak() -> bool:
    try:
        with open(_CLEAR_REFS, "w") as clear:
            clear.write("5")  # "5": reset the peak RSS to the current RSS
        return True
    except OSError:
        return False


def peak_extra_bytes(call: Callable[[], object]) -> int:
    """Peak memory, in bytes, that ``call`` needs beyond what was in use before.

    Parameters
    ----------
    call : callable
        A zero-argument function; it runs once.

    Returns
    -------
    int
        The larger of the ``tracemalloc`` peak and the resident-set peak
        (where the platform gives it), above the level before the call.

    Examples
    --------
    >>> import numpy as np
    >>> peak_extra_bytes(lambda: np.ones(1_000_000)) >= 8_000_000
    True
    """
    rss_tracked = _reset_rss_peak()
    rss_before = _status_kib("VmRSS") if rss_tracked else None
    started_here = not tracemalloc.is_tracing()
    if started_here:
        tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        traced_before = tracemalloc.get_traced_memory()[0]
        result = call()
        traced_peak = tracemalloc.get_traced_memory()[1] - traced_before
    finally:
        if started_here:
            tracemalloc.stop()
    rss_peak = _status_kib("VmHWM") if rss_tracked else None
    del result
    rss_extra = 0
    if rss_before is not None and rss_peak is not None:
        rss_extra = max(0, rss_peak - rss_before) * 1024
    return max(traced_peak, rss_extra)
