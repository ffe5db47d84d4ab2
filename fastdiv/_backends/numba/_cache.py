"""On-disk cache of compiled kernels that goes stale when any backend source changes.

Numba checks a cached function against the modification time of its own
source file only. The kernels inline code from the other modules of this
package (math, terms), so an edit there would leave stale machine code in the
cache. This module gives Numba's locators one stamp for the whole package.

Where the cache goes is Numba's usual choice: ``$NUMBA_CACHE_DIR`` if set,
else ``__pycache__`` next to the sources, else (a read-only installation)
the user cache directory (``$XDG_CACHE_HOME/numba`` or ``~/.cache/numba``).

Examples
--------
>>> from fastdiv._backends.numba import _cache
>>> len(_cache.package_stamp()) >= 4
True
"""

from __future__ import annotations

import functools
import os

from numba import njit
from numba.core import caching

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


@functools.cache
def package_stamp() -> tuple:
    """``(name, mtime, size)`` of every Python source of this package."""
    stamp = []
    for name in sorted(os.listdir(_PACKAGE_DIR)):
        if name.endswith(".py"):
            st = os.stat(os.path.join(_PACKAGE_DIR, name))
            stamp.append((name, st.st_mtime, st.st_size))
    return tuple(stamp)


class _PackageStamp:
    def get_source_stamp(self):
        return package_stamp()


class _UserProvided(_PackageStamp, caching.UserProvidedCacheLocator):
    pass


class _InTree(_PackageStamp, caching.InTreeCacheLocator):
    pass


class _UserWide(_PackageStamp, caching.UserWideCacheLocator):
    pass


class _Impl(caching.CompileResultCacheImpl):
    _locator_classes = [_UserProvided, _InTree, _UserWide]


class _FunctionCache(caching.FunctionCache):
    _impl_class = _Impl


def jit(options: dict):
    """``numba.njit(**options)``, caching with the package stamp when ``options['cache']``."""
    options = dict(options)
    cache = options.pop("cache", False)

    def decorate(func):
        dispatcher = njit(**options)(func)
        if cache and not options.get("inline") == "always":
            dispatcher._cache = _FunctionCache(func)
        return dispatcher

    return decorate
