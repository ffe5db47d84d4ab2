"""Hints to LLVM's code generator that Numba has no option for: vector width and prefetch.

``wide_vectors()`` called in a jitted function lets LLVM's loop vectoriser use
512-bit vectors in that function on CPUs with AVX-512. LLVM's tuning for
Intel server CPUs prefers 256-bit vectors (to spare the clock speed of code
that runs few vector instructions); the kernels' loops are all vector math and
run faster twice as wide. On a CPU without AVX-512 the hint changes nothing.
It is LLVM's function attribute ``"prefer-vector-width"``, set on the function
being compiled only, so the rest of the process's Numba code keeps LLVM's choice.

``prefetch_group(a, start)`` asks the CPU to start loading the cache lines of
the group of ``GROUP_LINES`` lines that begins ``PREFETCH_AHEAD`` bytes after
``a[start]``. A loop over a stream in groups of ``group_size(a)`` elements,
calling it at the top of each group, keeps the reads from memory going while
the group's arithmetic runs: without it a core of the machines we measured
overlaps little of a kernel's arithmetic with its reads, and the time from
memory is close to the time in cache plus the time of the reads. A prefetch
inside the vectorised loop itself would stop LLVM from vectorising it.

Examples
--------
>>> import numba, numpy as np
>>> from fastdiv._backends.numba._codegen import group_size, prefetch_group, wide_vectors
>>> @numba.njit
... def total(a):
...     wide_vectors()
...     s = 0.0
...     group = group_size(a)
...     for start in range(0, a.size - a.size % group, group):
...         prefetch_group(a, start)
...         for j in range(start, start + group):
...             s += a[j]
...     for j in range(a.size - a.size % group, a.size):
...         s += a[j]
...     return s
>>> float(total(np.ones(100)))
100.0
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic, overload

from fastdiv._backends.numba._options import GROUP_LINES, PREFETCH_AHEAD

_PREFER_512 = '"prefer-vector-width"="512"'
_LINE_BYTES = 64


@intrinsic
def wide_vectors(typingctx):
    """Mark the calling function's loops for 512-bit vectors (see the module docstring)."""

    def codegen(context, builder, signature, args):
        # llvmlite's FunctionAttributes accepts only attributes it knows by name;
        # a string attribute goes into the underlying set as written in the IR.
        set.add(builder.function.attributes, _PREFER_512)
        return context.get_dummy_value()

    return types.none(), codegen


@intrinsic
def _prefetch(typingctx, array, index):
    """Start loading the cache line of ``array[index]`` (any index: a prefetch never faults)."""
    if not isinstance(array, types.Array) or not isinstance(index, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        data = context.make_array(signature.args[0])(context, builder, args[0]).data
        address = builder.bitcast(builder.gep(data, [args[1]]), ir.IntType(8).as_pointer())
        i32 = ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [address.type, i32, i32, i32])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0")
        # read, keep in all cache levels (locality 3), data cache
        builder.call(fn, [address, i32(0), i32(3), i32(1)])
        return context.get_dummy_value()

    return types.none(array, types.intp), codegen


def _elements(array, nbytes):
    return nbytes // (array.dtype.bitwidth // 8)


def group_size(array):
    """Elements of ``array`` in one group of ``GROUP_LINES`` cache lines (a constant
    of the compiled code, so the loop over a group has a fixed trip count)."""


def prefetch_group(array, start):
    """Prefetch the group ``PREFETCH_AHEAD`` bytes after ``array[start]``, a line at a time."""


@overload(group_size, inline="always")
def _group_size_overload(array):
    value = _elements(array, GROUP_LINES * _LINE_BYTES)
    return lambda array: value


@overload(prefetch_group, inline="always")
def _prefetch_group_overload(array, start):
    # constants of the compiled code, in elements of array
    ahead, line, group = (_elements(array, nbytes)
                          for nbytes in (PREFETCH_AHEAD, _LINE_BYTES, GROUP_LINES * _LINE_BYTES))

    def impl(array, start):
        for offset in range(start + ahead, start + ahead + group, line):
            _prefetch(array, offset)

    return impl
