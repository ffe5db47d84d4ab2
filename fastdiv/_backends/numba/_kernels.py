"""Numba kernels: fused row reductions and elementwise terms, serial or parallel.

Array layout: every operand arrives as a read-only, contiguous 1-D array
``flat`` plus two integers ``start`` and ``step``: row ``i`` is
``flat[start + i * step:][:n]``. This covers any row stride, including 0 (a
broadcast row) and negative strides, with a unit inner stride that LLVM can
see, so loops vectorise and nothing is copied. The ``where`` mask (``uint8``)
comes the same way; ``has_mask`` says whether it is real.

Structure: a row (or a chunk of a long row) is processed in blocks of
``TERM_BLOCK`` elements. A map loop writes the block's terms into a buffer
(in the input's precision, so float32 math runs at full SIMD width), a few
cache lines at a time, prefetching the inputs ahead of itself, and checks the
inputs against the range of the fast forms (:func:`_fill`). The terms are
added up in float64 in that loop too, one accumulator per lane (float32
cross-entropy and KL: a group at a time), or (float32 entropy and JS) by a
second loop over the buffer with SIMD accumulators (``reassoc``, which only
these sum loops get: the term code keeps its error-compensating operations in
order), while the buffer is still in L1 or L2 (:func:`_summing`). The block
sums are added with Neumaier compensation. The loops ask LLVM for 512-bit
vectors (:func:`wide_vectors`). The entry kernels run serially for small inputs (no
thread launch), else in parallel over items of whole rows when there are
enough rows (:func:`rows_per_item`), or over chunks of rows when a few long
rows must share the threads: one ``prange`` iteration per thread, each thread
claiming the next item until none are left (:func:`claim`), so a thread slowed
by a busy machine takes fewer items instead of holding up the call. They work on borrowed views of their array arguments
(:func:`borrowed`: no reference counting in the loops over rows and blocks).

``kind`` (which divergence) is compiled as a constant (``numba.literally``):
each public kernel compiles only its own code, on first use.

Examples
--------
>>> import numpy as np
>>> from fastdiv._backends.numba import _kernels
>>> p = np.array([0.5, 0.5]); q = np.array([0.25, 0.75]); m = np.ones(1, np.uint8)
>>> out = np.empty(1)
>>> _kernels.kl_divergence(p, 0, 0, q, 0, 0, m, 0, 0, False, False, 1, 2, out, 1)
>>> round(float(out[0]), 12)
0.143841036226
"""

from __future__ import annotations

import numpy as np
from numba import literally, prange, types
from numba.extending import overload

from fastdiv._backends.numba import _terms
from fastdiv._backends.numba._cache import jit
from fastdiv._backends.numba._codegen import (
    add_widened,
    alive,
    borrowed,
    borrowed_flat,
    claim,
    group_lanes,
    group_size,
    prefetch_group,
    read_only,
    wide_vectors,
)
from fastdiv._backends.numba._math import (
    bit_limits,
    bits,
    bits_less_one,
    like,
    log_normal,
    log_ratio,
    ratio_q_offset,
)
from fastdiv._backends.numba._options import (
    CHUNK,
    KERNEL,
    MATH,
    SERIAL_BELOW,
    SHORT_GROUP,
    SHORT_ROW,
    SUM,
    TERM,
    TERM_BLOCK,
)

# Reduction kinds.
ENTROPY = 0
CROSS_ENTROPY = 1
KL = 2
JS = 3
# Elementwise kinds.
REL_ENTR = 4
ENTR = 5

_NEG_INF = -np.inf

#: The ``where`` operand when there is no mask (read-only: one compiled signature
#: for every call; a compile-time constant where jitted code names it).
NO_MASK = np.ones(1, dtype=np.uint8)
NO_MASK.flags.writeable = False


# -- one block: terms into a buffer (a pure map, full SIMD width), then a sum ----


@jit(TERM)
def _term(kind, x, y):
    """The term of ``kind`` on the fast path (inlined: ``kind`` is a constant of the caller).

    Entropy, cross-entropy and KL take the plain forms ``-x log x``,
    ``-(x log y)`` and ``x log(x / y)`` (:func:`log_ratio`: one division, no
    select), right only inside the range :func:`_track` checks. JS and the
    elementwise ``rel_entr`` take the fast forms, which mark the elements they
    cannot take with ``-inf``; a block whose sum is then not finite goes
    through :func:`_fix_slow`.
    """
    if kind == ENTROPY:
        return -x * log_normal(x)
    if kind == CROSS_ENTROPY:
        return -(x * log_normal(y))
    if kind == KL:
        return x * log_ratio(x, y)
    if kind == ENTR:
        return _terms.entr(x)
    if kind == JS:
        return _terms.js(x, y)
    return _terms.rel_entr_fast(x, y)


@jit(TERM)
def _kept(kind, p, q, mask, has_mask, j):
    """``(p[j], q[j])``, or for an element the mask leaves out (``mask[j] == 0``; the sums
    skip it) values inside the plain forms' range: ``x = 1`` (entropy), ``x = 0, y = 1``
    (cross-entropy), ``x = y = 1`` (KL), so that padding does not send its block to the
    full forms. JS and the elementwise kinds take ``p[j], q[j]`` as they are."""
    x = p[j]
    y = x if kind == ENTROPY else q[j]
    if (kind == ENTROPY or kind == CROSS_ENTROPY or kind == KL) and has_mask:
        keep = mask[j] != 0
        one = like(x, 1.0)
        x = x if keep else (like(x, 0.0) if kind == CROSS_ENTROPY else one)
        y = y if keep else one
    return x, y


@jit(TERM)
def _track(kind, x, y, top, bottom, offset, lane):
    """Keep, in ``lane``, what the range check of the plain forms of :func:`_term` needs.

    They are right where ``x`` (entropy, KL; ``+0`` too: the log of its bits
    is finite) or ``y`` (cross-entropy) is a positive normal number, and for
    KL ``y`` is in the range of :func:`log_ratio`. Kept as running extremes per
    lane, which vectorise in the lanes of the float type: the largest and
    smallest bit patterns (``top``, ``bottom``; see :func:`bits`) and, for KL,
    the largest :func:`ratio_q_offset` of ``y``; :func:`_lanes_outside` compares
    them with the range. JS and the elementwise kinds keep nothing.
    """
    if kind == ENTROPY or kind == KL:
        top[lane] = max(top[lane], bits(x))
        bottom[lane] = min(bottom[lane], bits_less_one(x))  # +0 wraps to the top
    if kind == KL:
        offset[lane] = max(offset[lane], ratio_q_offset(y))
    if kind == CROSS_ENTROPY:
        top[lane] = max(top[lane], bits(y))
        bottom[lane] = min(bottom[lane], bits(y))


@jit(TERM)
def _lanes_outside(kind, p, top, bottom, offset):
    """Whether the extremes :func:`_track` kept show an element outside the plain forms'
    range."""
    _, _, low_less_one, low, high, span = bit_limits(p)
    bad = False
    for lane in range(top.size):
        if kind == ENTROPY or kind == KL:
            bad |= (top[lane] > high) | (bottom[lane] < low_less_one)
        if kind == KL:
            bad |= offset[lane] > span
        if kind == CROSS_ENTROPY:
            bad |= (top[lane] > high) | (bottom[lane] < low)
    return bad


#: How :func:`_fill` adds up the terms of a reduction (see :func:`_summing`).
_SUM_AFTER = 0  # not in its loop: the caller sums the buffer
_SUM_EACH_TERM = 1  # each term into its lane, in the loop
_SUM_EACH_GROUP = 2  # each group's terms into the lanes after the group's loop


@jit(TERM)
def _summing(kind, p):
    """How :func:`_fill` adds up the terms of ``kind`` on ``p``'s type (a constant of the
    compiled code): ``_SUM_EACH_TERM``, ``_SUM_EACH_GROUP`` or ``_SUM_AFTER``.

    A pass over the buffer after the loop took a tenth of the time of a block
    (float32 cross-entropy from memory, one thread), and started no reads from
    memory meanwhile; in the loop the additions overlap the reads and the
    log's division. Float64 reductions add each term. Float32 terms cannot:
    float64 adds in their loop make LLVM halve its float32 vectors (it sizes
    vectors by the widest type). Cross-entropy and KL, which read two arrays,
    add each group after its loop (:func:`add_widened`: 6-9% faster than the
    pass, bench data, two threads); entropy and JS, held up by their
    arithmetic rather than their reads, ran 3-6% slower that way and keep the
    pass. The elementwise kinds sum nothing.
    """
    if kind == REL_ENTR or kind == ENTR:
        return _SUM_AFTER
    if _is_float64(p):
        return _SUM_EACH_TERM
    if kind == CROSS_ENTROPY or kind == KL:
        return _SUM_EACH_GROUP
    return _SUM_AFTER


def _is_float64(array):
    """Whether ``array`` holds float64 (a constant of the compiled code)."""


@overload(_is_float64, inline="always")
def _is_float64_overload(array):
    value = array.dtype == types.float64
    return lambda array: value


@jit(TERM)
def _add_term(kind, sums, lane, term, mask, has_mask, j):
    """``sums[lane] += term`` for an element the mask keeps (a left-out element's
    entropy, cross-entropy or KL term is an exact zero already: :func:`_kept`)."""
    if kind == JS and has_mask:
        sums[lane] += term if mask[j] != 0 else 0.0
    else:
        sums[lane] += term


@jit(TERM)
def _map_groups(kind, p, q, mask, has_mask, buffer):
    """The loop of :func:`_fill` (inlined, so that a constant ``has_mask`` folds)."""
    group = group_size(p)
    whole = p.size - p.size % group
    none, every, _, _, _, _ = bit_limits(p)
    top, bottom, offset = group_lanes(p, none), group_lanes(p, every), group_lanes(p, none)
    summing = _summing(kind, p)
    sums = group_lanes(p, 0.0)
    for start in range(0, whole, group):
        prefetch_group(p, start)
        if kind != ENTROPY:
            prefetch_group(q, start)
        for j in range(start, start + group):
            x, y = _kept(kind, p, q, mask, has_mask, j)
            term = _term(kind, x, y)
            buffer[j] = term
            if summing == _SUM_EACH_TERM:
                _add_term(kind, sums, j - start, term, mask, has_mask, j)
            _track(kind, x, y, top, bottom, offset, j - start)
        if summing == _SUM_EACH_GROUP:
            add_widened(sums, buffer, start)
    for j in range(whole, p.size):  # the tail: shorter than a group
        x, y = _kept(kind, p, q, mask, has_mask, j)
        term = _term(kind, x, y)
        buffer[j] = term
        if summing != _SUM_AFTER:
            _add_term(kind, sums, j - whole, term, mask, has_mask, j)
        _track(kind, x, y, top, bottom, offset, j - whole)
    return _lanes_outside(kind, p, top, bottom, offset), sums.sum()


@jit(MATH)
def _fill(kind, p, q, mask, has_mask, buffer):
    """``buffer[j] = _term(kind, p[j], q[j])`` for every ``j``, in the precision of ``p``.

    Returns ``(outside, total)``. ``outside`` is True when an entropy,
    cross-entropy or KL block has an element (kept by the mask) outside the
    range of their plain forms (:func:`_track`): the caller then takes
    :func:`_fill_full`; JS and the elementwise kinds give False. ``total`` is
    the sum of the terms the mask keeps, added up per lane in the loop itself
    where :func:`_summing` says so, else 0.

    The loop runs in groups of a few cache lines and prefetches the inputs a
    group at a time (:func:`prefetch_group`), so that reads from memory overlap
    the arithmetic; each group's loop has a fixed trip count and vectorises
    whole. Its range check keeps running extremes of bit patterns per lane
    (:func:`_track`, in arrays of one group's length), reduced once after the
    loop: an "any" per group cost a dozen mask-register instructions per
    group of 32 float64 elements, a tenth of the vector work. It is written out for
    each value of ``has_mask``: LLVM vectorised the group loop only with the
    mask test known.
    """
    wide_vectors()
    literally(kind)
    if has_mask:
        return _map_groups(kind, p, q, mask, True, buffer)
    return _map_groups(kind, p, q, mask, False, buffer)


@jit(MATH)
def _fill_full(kind, p, q, buffer):
    """Entropy or cross-entropy terms with every input value handled (SciPy's edge values);
    KL's fast terms, which mark what they cannot take for :func:`_fix_slow`."""
    wide_vectors()
    literally(kind)
    for j in range(p.size):
        if kind == ENTROPY:
            buffer[j] = _terms.entr(p[j])
        elif kind == KL:
            buffer[j] = _terms.rel_entr_fast(p[j], q[j])
        else:
            buffer[j] = _terms.neg_xlogy(p[j], q[j])


@jit(MATH)
def _fix_slow(kind, p, q, buffer):
    """Replace the ``-inf`` marks of the fast KL and JS terms (see :func:`_term`) by the full
    forms."""
    wide_vectors()
    literally(kind)
    for j in range(p.size):
        if buffer[j] == _NEG_INF:
            if kind == JS:
                buffer[j] = _terms.js_slow(p[j], q[j])
            else:
                buffer[j] = _terms.rel_entr_slow(p[j], q[j])


@jit(MATH)
def _marked(buffer):
    """Whether ``buffer`` holds a ``-inf`` mark of the fast terms (an "any" of vector
    compares: :func:`_fix_slow`'s own loop, with its branch, stays scalar)."""
    wide_vectors()
    found = False
    for j in range(buffer.size):
        found |= buffer[j] == _NEG_INF
    return found


@jit(MATH)
def _block(kind, p, q, mask, has_mask, buffer):
    """Sum of the terms of one block; ``buffer`` has at least ``p.size`` elements."""
    literally(kind)
    size = p.size
    outside, value = _fill(kind, p, q, mask, has_mask, buffer)
    if outside:
        _fill_full(kind, p, q, buffer)
    if outside or _summing(kind, p) == _SUM_AFTER:
        value = _masked_sum(buffer[:size], mask, has_mask)
    if (kind == KL or kind == JS) and not np.isfinite(value):
        _fix_slow(kind, p, q, buffer[:size])
        value = _masked_sum(buffer[:size], mask, has_mask)
    return value


@jit(MATH)
def _scale_into(a, scale, out):
    """``out[j] = float64(a[j]) / scale``: one block of a normalised row."""
    wide_vectors()
    for j in range(a.size):
        out[j] = np.float64(a[j]) / scale


@jit(SUM)
def _masked_sum(a, mask, has_mask):
    """Float64 sum of ``a`` (where the mask is nonzero), SIMD accumulators."""
    wide_vectors()
    total = 0.0
    if has_mask:
        for j in range(a.size):
            total += np.float64(a[j]) if mask[j] != 0 else 0.0
    else:
        for j in range(a.size):
            total += np.float64(a[j])
    return total


# -- compensated sums over a row segment -----------------------------------------


@jit(MATH)
def _add(total, compensation, value):
    """Neumaier's step: ``total + compensation`` tracks the exact running sum.

    Once the total is inf or NaN the compensation stops (inf - inf would make
    it NaN and turn an infinite sum into NaN).
    """
    new_total = total + value
    if not np.isfinite(new_total):
        return new_total, compensation
    if abs(total) >= abs(value):
        compensation += (total - new_total) + value
    else:
        compensation += (value - new_total) + total
    return new_total, compensation


@jit(MATH)
def _buffers(kind, pf, normalize, n):
    """Scratch blocks for :func:`_segment` on rows of ``n`` elements (allocate once, reuse)."""
    size = min(TERM_BLOCK, n)
    narrow = np.empty(0 if normalize else size, pf.dtype)  # terms in the input's precision
    wide = np.empty(size if normalize else 0)  # terms of normalised (float64) input
    p_wide = np.empty(size if normalize else 0)
    q_wide = np.empty(size if normalize and kind != ENTROPY else 0)
    return narrow, wide, p_wide, q_wide


@jit(TERM)
def _lent(buffers):
    """Borrowed views of the four :func:`_buffers` (no reference counting where they are
    passed and sliced, block after block); the caller keeps ``buffers`` :func:`alive`."""
    narrow, wide, p_wide, q_wide = buffers
    return borrowed(narrow), borrowed(wide), borrowed(p_wide), borrowed(q_wide)


@jit(MATH)
def _segment(kind, pf, pi, qf, qi, mf, mi, has_mask, normalize, p_sum, q_sum, length,
             buffers):
    """Compensated float64 sum of the terms of one row segment of ``length`` elements.

    With ``normalize`` each block is first divided by the row sums into
    float64 buffers (also for float32 input, as the reference does).
    """
    literally(kind)
    narrow, wide, p_wide, q_wide = buffers
    total = 0.0
    compensation = 0.0
    for start in range(0, length, TERM_BLOCK):
        size = min(TERM_BLOCK, length - start)
        p = pf[pi + start:pi + start + size]
        q = qf[qi + start:qi + start + size]
        m = mf[mi + start:mi + start + size] if has_mask else mf[:0]
        if normalize:
            _scale_into(p, p_sum, p_wide)
            if kind == ENTROPY:
                p_scaled = read_only(p_wide[:size])  # read-only: _block's one compiled copy
                value = _block(kind, p_scaled, p_scaled, m, has_mask, wide)
            else:
                _scale_into(q, q_sum, q_wide)
                value = _block(kind, read_only(p_wide[:size]), read_only(q_wide[:size]), m,
                               has_mask, wide)
        else:
            value = _block(kind, p, q, m, has_mask, narrow)
        total, compensation = _add(total, compensation, value)
    return total + compensation


@jit(MATH)
def _compensated_sum(af, ai, mf, mi, has_mask, length):
    total = 0.0
    compensation = 0.0
    for start in range(0, length, TERM_BLOCK):
        size = min(TERM_BLOCK, length - start)
        a = af[ai + start:ai + start + size]
        m = mf[mi + start:mi + start + size] if has_mask else mf[:0]
        total, compensation = _add(total, compensation, _masked_sum(a, m, has_mask))
    return total + compensation


@jit(MATH)
def _sum_pieces(values):
    total = 0.0
    compensation = 0.0
    for value in values:
        total, compensation = _add(total, compensation, value)
    return total + compensation


@jit(MATH)
def _finish(kind, value):
    """The row result from the sum of its terms (JS: clip rounding below 0)."""
    if kind == JS:  # terms are halved already
        return 0.0 if value < 0 else value
    return value


@jit(MATH)
def _row(kind, pf, pi, qf, qi, mf, mi, has_mask, normalize, n, buffers):
    literally(kind)
    p_sum = 1.0
    q_sum = 1.0
    if normalize:
        p_sum = _compensated_sum(pf, pi, mf, mi, has_mask, n)
        if kind != ENTROPY:
            q_sum = _compensated_sum(qf, qi, mf, mi, has_mask, n)
    value = _segment(kind, pf, pi, qf, qi, mf, mi, has_mask, normalize, p_sum, q_sum, n,
                     buffers)
    return _finish(kind, value)


# -- drivers ---------------------------------------------------------------------


@jit(MATH)
def _chunks_per_row(rows, n, num_threads):
    """How many pieces each row is cut into so that every thread has work."""
    if rows >= 4 * num_threads or n < 2 * CHUNK:
        return 1
    wanted = (4 * num_threads + rows - 1) // rows
    return max(1, min(wanted, n // CHUNK))


@jit(MATH)
def rows_per_item(rows, num_threads):
    """Whole rows per parallel work item: eight items per thread, which the threads
    claim as they go (:func:`claim`), as the Cython kernels share out theirs.

    An item is a run of consecutive rows, so that a thread reads one long
    stream (its prefetches past the end of a row land in its own next row).
    Items of one row of 32768 elements, which the two threads took in turns,
    made both threads' reads restart at every row: a tenth slower per thread
    than the same loop on one thread (bench data, 2 threads).
    """
    return max(1, rows // (8 * num_threads))


@jit(MATH)
def _short_rows(kind, p, q, mf, m0, has_mask, rows, n, out):
    """Many short contiguous rows: the terms of all rows in one SIMD loop, then row sums.

    A row of a few elements would otherwise run its terms in a scalar loop tail.
    """
    literally(kind)
    buffer = np.empty(rows * n, p.dtype)
    mask = mf[m0:m0 + rows * n] if has_mask else mf[:0]
    if _fill(kind, p, q, mask, has_mask, buffer)[0]:
        _fill_full(kind, p, q, buffer)
    _row_sums(buffer, mf, m0, has_mask, rows, n, out)
    for i in range(rows):
        value = out[i]
        if (kind == KL or kind == JS) and not np.isfinite(value):  # a mark (or a true inf)
            lo = i * n
            m = mf[m0 + lo:m0 + lo + n] if has_mask else mf[:0]
            _fix_slow(kind, p[lo:lo + n], q[lo:lo + n], buffer[lo:lo + n])
            value = _masked_sum(buffer[lo:lo + n], m, has_mask)
        out[i] = _finish(kind, value)


@jit(SUM)
def _row_sums(buffer, mf, m0, has_mask, rows, n, out):
    """``out[i]`` = float64 sum of ``buffer[i * n:(i + 1) * n]`` (kept elements)."""
    wide_vectors()
    for i in range(rows):
        total = 0.0
        lo = i * n
        if has_mask:
            for j in range(lo, lo + n):
                total += np.float64(buffer[j]) if mf[m0 + j] != 0 else 0.0
        else:
            for j in range(lo, lo + n):
                total += np.float64(buffer[j])
        out[i] = total


@jit(MATH)
def _rows_per_group(n):
    """Rows of ``n`` elements in one group of :func:`_short_rows` (about ``SHORT_GROUP``
    elements)."""
    return max(1, SHORT_GROUP // n)


@jit(MATH)
def _short_group(kind, pf, p0, qf, q0, mf, m0, has_mask, rows, n, out, group, per_group):
    """:func:`_short_rows` on rows ``group * per_group`` onwards (at most ``per_group``)."""
    literally(kind)
    first = group * per_group
    count = min(per_group, rows - first)
    lo = first * n
    _short_rows(kind, pf[p0 + lo:p0 + lo + count * n], qf[q0 + lo:q0 + lo + count * n], mf,
                m0 + lo, has_mask, count, n, out[first:first + count])


@jit(MATH)
def _whole_rows(kind, pf, p0, ps, qf, q0, qs, mf, m0, ms, has_mask, normalize, n, out, first,
                stop, buffers):
    """``out[i]`` for rows ``first`` to ``stop - 1`` (:func:`_row`), with the scratch
    ``buffers`` of :func:`_buffers` (lent: :func:`_lent`)."""
    literally(kind)
    for i in range(first, stop):
        out[i] = _row(kind, pf, p0 + i * ps, qf, q0 + i * qs, mf, m0 + i * ms, has_mask,
                      normalize, n, buffers)


@jit(KERNEL)
def _reduce_rows(kind, pf, p0, ps, qf, q0, qs, mf, m0, ms, has_mask, normalize, rows, n, out,
                 num_threads):
    """Write the reduction ``kind`` of each row into ``out`` (float64, length ``rows``).

    ``num_threads == 1`` runs on the calling thread; otherwise the caller has
    set Numba's thread count.
    """
    literally(kind)
    contiguous = ps == n and qs == n and (ms == n or not has_mask)
    if (not normalize and 0 < n < TERM_BLOCK and contiguous
            and (n <= SHORT_ROW or rows * n <= SERIAL_BELOW)):
        # groups of whole rows, fixed by n: a row's result never depends on the thread count
        per_group = _rows_per_group(n)
        groups = (rows + per_group - 1) // per_group
        if num_threads == 1 or rows * n < SERIAL_BELOW:
            for g in range(groups):
                _short_group(kind, pf, p0, qf, q0, mf, m0, has_mask, rows, n, out, g,
                             per_group)
        else:
            claimed = np.zeros(1, np.int64)
            for _ in prange(num_threads):
                g = claim(claimed)
                while g < groups:
                    _short_group(kind, pf, p0, qf, q0, mf, m0, has_mask, rows, n, out, g,
                                 per_group)
                    g = claim(claimed)
        return
    if num_threads == 1 or rows * n < SERIAL_BELOW:
        owners = _buffers(kind, pf, normalize, n)
        _whole_rows(kind, pf, p0, ps, qf, q0, qs, mf, m0, ms, has_mask, normalize, n, out, 0,
                    rows, _lent(owners))
        alive(owners)
        return
    chunks = _chunks_per_row(rows, n, num_threads)
    if chunks == 1:  # items of whole rows
        per_item = rows_per_item(rows, num_threads)
        items = (rows + per_item - 1) // per_item
        claimed = np.zeros(1, np.int64)
        for _ in prange(num_threads):  # each thread claims items until none are left
            owners = _buffers(kind, pf, normalize, n)  # one set of buffers per thread
            item = claim(claimed)
            while item < items:
                first = item * per_item
                _whole_rows(kind, pf, p0, ps, qf, q0, qs, mf, m0, ms, has_mask, normalize, n,
                            out, first, min(rows, first + per_item), _lent(owners))
                item = claim(claimed)
            alive(owners)
        return
    size = (n + chunks - 1) // chunks
    items = rows * chunks
    # Phase 0 (normalize only): the pieces of each row's sums; phase 1: the pieces
    # of each row's divergence.
    pieces = np.empty((items, 2))
    p_sums = np.ones(rows)
    q_sums = np.ones(rows)
    first_phase = 0 if normalize else 1
    for phase in range(first_phase, 2):
        claimed = np.zeros(1, np.int64)
        for _ in prange(num_threads):
            owners = _buffers(kind, pf, normalize, size if phase == 1 else 0)  # per thread
            item = claim(claimed)
            while item < items:
                i = item // chunks
                lo = (item % chunks) * size
                length = min(size, n - lo)
                a = p0 + i * ps + lo
                b = q0 + i * qs + lo
                c = m0 + i * ms + lo
                if phase == 0:
                    pieces[item, 0] = _compensated_sum(pf, a, mf, c, has_mask, length)
                    pieces[item, 1] = _compensated_sum(qf, b, mf, c, has_mask, length)
                else:
                    pieces[item, 0] = _segment(kind, pf, a, qf, b, mf, c, has_mask, normalize,
                                               p_sums[i], q_sums[i], length, _lent(owners))
                item = claim(claimed)
            alive(owners)
        for i in range(rows):
            total = _sum_pieces(pieces[i * chunks:(i + 1) * chunks, 0])
            if phase == 0:
                p_sums[i] = total
                q_sums[i] = _sum_pieces(pieces[i * chunks:(i + 1) * chunks, 1])
            else:
                out[i] = _finish(kind, total)


@jit(SUM)
def _reduce_small(kind, p, q, out):
    """:func:`_reduce_rows` on one thread for a small input given as C-contiguous
    ``(rows, n)`` arrays, without a mask or normalisation: three arguments and no
    flat views to build, for calls that take microseconds (a (32, 10) input).

    The arrays are the caller's for the whole call, so the kernel works on
    borrowed views (no reference counting), and a batch of short rows that
    makes a single group goes straight to :func:`_short_rows`.
    """
    literally(kind)
    rows, n = p.shape
    pf, qf, of = borrowed_flat(p), borrowed_flat(q), borrowed_flat(out)
    if 0 < n < TERM_BLOCK and rows <= _rows_per_group(n):
        _short_rows(kind, pf, qf, NO_MASK, 0, False, rows, n, of)
    else:
        _reduce_rows(kind, pf, 0, n, qf, 0, n, NO_MASK, 0, 0, False, False, rows, n, of, 1)


def _as_float64(a, buffer):
    """``a`` in float64: ``a`` itself, or (float32) its values in ``buffer[:a.size]``."""


@overload(_as_float64, jit_options=MATH)
def _as_float64_overload(a, buffer):
    if a.dtype == types.float64:
        return lambda a, buffer: a

    def widen(a, buffer):
        _scale_into(a, 1.0, buffer)
        return buffer[:a.size]

    return widen


@jit(MATH)
def _elementwise_buffers(n):
    """Scratch blocks for :func:`_elementwise_segment` on rows of ``n`` elements."""
    size = min(TERM_BLOCK, n)
    return np.empty(size), np.empty(size), np.empty(size)


@jit(MATH)
def _elementwise_segment(kind, pf, pi, qf, qi, out, oi, length, buffers):
    """Terms of one row segment into ``out[oi:oi + length]``, computed in float64.

    Each block's terms go into a buffer (read from ``p`` and ``q``, or from
    their float64 copies for float32) and only then into ``out``, so ``out``
    may be the memory of ``p`` or ``q``.
    """
    literally(kind)
    p_wide, q_wide, terms = buffers
    for start in range(0, length, TERM_BLOCK):
        size = min(TERM_BLOCK, length - start)
        p = _as_float64(pf[pi + start:pi + start + size], p_wide)
        q = _as_float64(qf[qi + start:qi + start + size], q_wide)
        _fill(kind, p, q, p[:0], False, terms)
        if kind == REL_ENTR and _marked(terms[:size]):
            _fix_slow(kind, p, q, terms[:size])
        target = out[oi + start:oi + start + size]
        for j in range(size):
            target[j] = terms[j]


@jit(MATH)
def _elementwise_rows(kind, pf, p0, ps, qf, q0, qs, n, out, first, stop, buffers):
    """:func:`_elementwise_segment` on rows ``first`` to ``stop - 1``, with the scratch
    ``buffers`` of :func:`_elementwise_buffers`."""
    literally(kind)
    for i in range(first, stop):
        _elementwise_segment(kind, pf, p0 + i * ps, qf, q0 + i * qs, out, i * n, n, buffers)


@jit(KERNEL)
def _elementwise(kind, pf, p0, ps, qf, q0, qs, rows, n, out, num_threads):
    """Write the elementwise ``kind`` of every element into ``out`` (C-contiguous, flat)."""
    literally(kind)
    if rows > 1 and ps == n and qs == n:  # contiguous rows: the terms of one long row
        n = rows * n
        rows = 1
    if num_threads == 1 or rows * n < SERIAL_BELOW:
        _elementwise_rows(kind, pf, p0, ps, qf, q0, qs, n, out, 0, rows,
                          _elementwise_buffers(n))
        return
    chunks = _chunks_per_row(rows, n, num_threads)
    if chunks == 1:  # items of whole rows
        per_item = rows_per_item(rows, num_threads)
        items = (rows + per_item - 1) // per_item
        claimed = np.zeros(1, np.int64)
        for _ in prange(num_threads):
            buffers = _elementwise_buffers(n)  # one set per thread
            item = claim(claimed)
            while item < items:
                first = item * per_item
                _elementwise_rows(kind, pf, p0, ps, qf, q0, qs, n, out, first,
                                  min(rows, first + per_item), buffers)
                item = claim(claimed)
        return
    size = (n + chunks - 1) // chunks
    claimed = np.zeros(1, np.int64)
    for _ in prange(num_threads):
        buffers = _elementwise_buffers(size)  # one set per thread
        item = claim(claimed)
        while item < rows * chunks:
            i = item // chunks
            lo = (item % chunks) * size
            length = min(size, n - lo)
            _elementwise_segment(kind, pf, p0 + i * ps + lo, qf, q0 + i * qs + lo, out,
                                 i * n + lo, length, buffers)
            item = claim(claimed)


@jit(SUM)
def _elementwise_contiguous(kind, p, q, out, num_threads):
    """:func:`_elementwise` on C-contiguous arrays of one shape, as one row of all their
    elements; borrowed views (see :func:`_reduce_small`)."""
    literally(kind)
    size = p.size
    # inputs typed read-only as the strided entries' are: one compiled copy of the loops
    _elementwise(kind, read_only(borrowed_flat(p)), 0, 0, read_only(borrowed_flat(q)), 0, 0, 1,
                 size, borrowed_flat(out), num_threads)


# -- one entry per function: each compiles (or loads from the cache) on first use --
# Arguments: (pf, p0, ps, qf, q0, qs, mf, m0, ms, has_mask, normalize, rows, n,
# out, num_threads) for reductions, (pf, p0, ps, qf, q0, qs, rows, n, out,
# num_threads) for elementwise functions; see the module docstring.


@jit(SUM)
def _reduce_entry(kind, pf, p0, ps, qf, q0, qs, mf, m0, ms, has_mask, normalize, rows, n, out,
                  num_threads):
    """:func:`_reduce_rows` on borrowed views of the caller's arrays (alive for the whole
    call): no reference counting per row or block (see :func:`borrowed`)."""
    literally(kind)
    _reduce_rows(kind, borrowed(pf), p0, ps, borrowed(qf), q0, qs, borrowed(mf), m0, ms,
                 has_mask, normalize, rows, n, borrowed(out), num_threads)


@jit(SUM)
def entropy(pf, p0, ps, qf, q0, qs, mf, m0, ms, has_mask, normalize, rows, n, out, num_threads):
    _reduce_entry(ENTROPY, pf, p0, ps, qf, q0, qs, mf, m0, ms, has_mask, normalize, rows, n,
                  out, num_threads)


@jit(SUM)
def cross_entropy(pf, p0, ps, qf, q0, qs, mf, m0, ms, has_mask, normalize, rows, n, out,
                  num_threads):
    _reduce_entry(CROSS_ENTROPY, pf, p0, ps, qf, q0, qs, mf, m0, ms, has_mask, normalize, rows,
                  n, out, num_threads)


@jit(SUM)
def kl_divergence(pf, p0, ps, qf, q0, qs, mf, m0, ms, has_mask, normalize, rows, n, out,
                  num_threads):
    _reduce_entry(KL, pf, p0, ps, qf, q0, qs, mf, m0, ms, has_mask, normalize, rows, n, out,
                  num_threads)


@jit(SUM)
def js_divergence(pf, p0, ps, qf, q0, qs, mf, m0, ms, has_mask, normalize, rows, n, out,
                  num_threads):
    _reduce_entry(JS, pf, p0, ps, qf, q0, qs, mf, m0, ms, has_mask, normalize, rows, n, out,
                  num_threads)


# Small inputs (see _reduce_small): arguments (p, q, out), p and q C-contiguous (rows, n).


@jit(SUM)
def entropy_small(p, q, out):
    _reduce_small(ENTROPY, p, q, out)


@jit(SUM)
def cross_entropy_small(p, q, out):
    _reduce_small(CROSS_ENTROPY, p, q, out)


@jit(SUM)
def kl_divergence_small(p, q, out):
    _reduce_small(KL, p, q, out)


@jit(SUM)
def js_divergence_small(p, q, out):
    _reduce_small(JS, p, q, out)


@jit(SUM)
def rel_entr(pf, p0, ps, qf, q0, qs, rows, n, out, num_threads):
    _elementwise(REL_ENTR, borrowed(pf), p0, ps, borrowed(qf), q0, qs, rows, n, borrowed(out),
                 num_threads)


@jit(SUM)
def entr(pf, p0, ps, qf, q0, qs, rows, n, out, num_threads):
    _elementwise(ENTR, borrowed(pf), p0, ps, borrowed(qf), q0, qs, rows, n, borrowed(out),
                 num_threads)


# C-contiguous inputs (see _elementwise_contiguous): arguments (p, q, out, num_threads).


@jit(SUM)
def rel_entr_contiguous(p, q, out, num_threads):
    _elementwise_contiguous(REL_ENTR, p, q, out, num_threads)


@jit(SUM)
def entr_contiguous(p, q, out, num_threads):
    _elementwise_contiguous(ENTR, p, q, out, num_threads)


@jit(MATH)
def narrow(values, out):
    """``out[:] = values`` rounded to ``out``'s float type (overflow gives inf, silently)."""
    for j in range(values.size):
        out[j] = values[j]
