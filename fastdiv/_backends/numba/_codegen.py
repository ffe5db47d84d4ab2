"""What Numba has no option for: vector width, prefetch, views without reference counts,
per-lane accumulators (float64 ones for float32 terms too) and work shared out as threads go.

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

``group_lanes(a, value)`` is a group's length of ``value`` on the stack (never
returned, as ``borrowed`` views below): a
group loop that updates element ``j - start`` keeps one accumulator per vector
lane across groups, where a scalar accumulator is reduced across the lanes at
the end of every group.
``add_widened(sums, terms, start)`` adds a group of float32 terms into such
float64 lanes, as one vector conversion and add.

``claim(counter)`` is an atomic fetch-and-add of one: threads of a ``prange``
with one iteration per thread claim numbered work items until none are left,
which balances the work as it goes (Numba's own ``prange`` splits the
iterations evenly up front).

``borrowed(a)`` is ``a`` without a reference to its memory, and
``borrowed_flat(a)`` a 1-D view of a C-contiguous ``a`` without one: the
views, slices and calls made from them then do no reference counting, whose
atomic operations took a sixth of a (32, 10) reduction and half of a (32, 10)
softmax (a few per row). Only for arrays that the compiled function's caller
keeps alive for the whole call (the arguments of a kernel called from Python),
or that the function itself keeps alive past its last use of the views
(scratch buffers: :func:`alive`), and that the function never returns (an
``inline="always"`` helper may hand them to the function it is inlined into).

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
from numba.core.imputils import impl_ret_borrowed
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


@intrinsic
def group_lanes(typingctx, array, value):
    """A 1-D array of :func:`group_size` ``(array)`` elements, each ``value``, on the stack
    of the compiled function it ends up in: never return it (nor from a helper
    that is not inlined into its user).

    A loop over a group that updates element ``j - start`` of it (a running
    max per lane, say) vectorises into plain vector operations that carry
    over from group to group, where a scalar accumulator would be reduced
    across the lanes at the end of every group.
    """
    if not isinstance(array, types.Array) or not isinstance(value, (types.Integer, types.Float)):
        return None
    count = _elements(array, GROUP_LINES * _LINE_BYTES)
    lanes_type = types.Array(value, 1, "C")

    def codegen(context, builder, signature, args):
        element = context.get_value_type(value)
        data = cgutils.alloca_once(builder, element, size=count)  # in the entry block
        # Whole cache lines: a loop compiled on its own (as in a process that compiles the
        # kernels rather than loading them) reads and writes these lanes on the stack once
        # per group, and a 64-byte access split over two lines slows every group.
        data.align = _LINE_BYTES
        for i in range(count):
            builder.store(args[1], builder.gep(data, [cgutils.int32_t(i)]))
        lanes = context.make_array(lanes_type)(context, builder)
        itemsize = context.get_constant(types.intp, context.get_abi_sizeof(element))
        context.populate_array(
            lanes,
            data=data,
            shape=cgutils.pack_array(builder, [context.get_constant(types.intp, count)]),
            strides=cgutils.pack_array(builder, [itemsize]),
            itemsize=itemsize,
            meminfo=None,
        )
        return lanes._getvalue()

    return lanes_type(array, value), codegen


@intrinsic
def add_widened(typingctx, sums, terms, start):
    """``sums[k] += float64(terms[start + k])`` for each lane ``k`` of ``sums``, a float64
    :func:`group_lanes` array of ``terms``' group size: one group of terms added to
    its lanes, as vector code.

    For a loop of float32 terms that keeps float64 sums: float64 adds inside the
    loop make LLVM halve its float32 vectors (it sizes them by the widest type),
    and a loop over the lanes after each group is unrolled and left scalar.
    """
    if not (isinstance(sums, types.Array) and sums.dtype == types.float64
            and isinstance(terms, types.Array) and isinstance(terms.dtype, types.Float)
            and sums.layout == terms.layout == "C" and isinstance(start, types.Integer)):
        return None  # contiguous arrays only: the vector load and store assume unit strides
    count = _elements(terms, GROUP_LINES * _LINE_BYTES)

    def codegen(context, builder, signature, args):
        lanes = context.make_array(signature.args[0])(context, builder, args[0]).data
        source = context.make_array(signature.args[1])(context, builder, args[1]).data
        wide_type = ir.VectorType(ir.DoubleType(), count)
        narrow_type = ir.VectorType(context.get_value_type(terms.dtype), count)
        first = builder.bitcast(builder.gep(source, [args[2]]), narrow_type.as_pointer())
        group = builder.load(first, align=terms.dtype.bitwidth // 8)
        if narrow_type != wide_type:  # float64 terms: never run, but typed (Numba types
            group = builder.fpext(group, wide_type)  # the call in float64 kernels too)
        slot = builder.bitcast(lanes, wide_type.as_pointer())
        builder.store(builder.fadd(builder.load(slot, align=8), group), slot, align=8)
        return context.get_dummy_value()

    return types.none(sums, terms, types.intp), codegen


@intrinsic
def borrowed(typingctx, array):
    """``array`` without a reference to its memory (see the module docstring: never
    return it, nor keep it past the owner's life)."""
    if not isinstance(array, types.Array):
        return None

    def codegen(context, builder, signature, args):
        view = context.make_array(signature.args[0])(context, builder, args[0])
        view.meminfo = cgutils.get_null_value(view.meminfo.type)  # nothing to count
        view.parent = cgutils.get_null_value(view.parent.type)
        return view._getvalue()

    return array(array), codegen


@intrinsic
def borrowed_flat(typingctx, array):
    """``array.reshape(-1)`` (C-contiguous ``array``) without a reference to its memory
    (see :func:`borrowed`)."""
    if not isinstance(array, types.Array) or array.layout != "C":
        return None

    def codegen(context, builder, signature, args):
        source = context.make_array(signature.args[0])(context, builder, args[0])
        view = context.make_array(signature.return_type)(context, builder)
        size = context.get_constant(types.intp, 1)
        for extent in cgutils.unpack_tuple(builder, source.shape, signature.args[0].ndim):
            size = builder.mul(size, extent)
        context.populate_array(
            view,
            data=source.data,
            shape=cgutils.pack_array(builder, [size]),
            strides=cgutils.pack_array(builder, [source.itemsize]),
            itemsize=source.itemsize,
            meminfo=None,  # no reference: nothing to count
        )
        return view._getvalue()

    return array.copy(ndim=1)(array), codegen


@intrinsic
def alive(typingctx, value):
    """A use of ``value`` that does nothing: Numba releases a variable after its last
    use, so this keeps the memory of the arrays in ``value`` alive up to here, for
    :func:`borrowed` views of them taken earlier."""

    def codegen(context, builder, signature, args):
        return context.get_dummy_value()

    return types.none(value), codegen


@intrinsic
def claim(typingctx, counter):
    """Add one to ``counter[0]`` (an int64 array shared by threads) as one atomic step,
    and return the value before: each call of every thread gets a different number.

    Numba's ``prange`` hands each thread an equal share of the iterations up
    front; threads that claim numbered work items until none are left share
    the work out as they go, so a thread held up (a busy machine) does not
    hold up the whole call. Numba does not see the call as a write to
    ``counter``: do not read ``counter`` after the loop in the same function
    (Numba may move the read before the loop).
    """
    if not (isinstance(counter, types.Array) and counter.dtype == types.int64):
        return None

    def codegen(context, builder, signature, args):
        slot = context.make_array(signature.args[0])(context, builder, args[0]).data
        # monotonic: the items' data is ordered by the parallel region's own barrier
        return builder.atomic_rmw("add", slot, ir.IntType(64)(1), "monotonic")

    return types.int64(counter), codegen


@intrinsic
def read_only(typingctx, array):
    """``array`` typed read-only: a callee compiled for read-only arrays takes it as it is
    (one compiled copy of the callee, not a second one for writeable arrays)."""
    if not isinstance(array, types.Array):
        return None

    def codegen(context, builder, signature, args):
        return impl_ret_borrowed(context, builder, signature.return_type, args[0])

    return array.copy(readonly=True)(array), codegen
