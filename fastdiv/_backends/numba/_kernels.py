"""Numba kernels: fused row reductions and elementwise terms, serial or parallel.

Array layout: every operand arrives as a read-only, contiguous 1-D array
``flat`` plus two integers ``start`` and ``step``: row ``i`` is
``flat[start + i * step : start + i * step + n]``. This covers any row stride,
including 0 (a broadcast row) and negative strides, with a unit inner stride
that LLVM can see, so loops vectorise and nothing is copied. The ``where``
mask (``uint8``) comes the same way; ``has_mask`` says whether it is real.

Structure: a row (or a chunk of a long row) is summed in blocks of
``BLOCK`` elements with plain SIMD accumulators (``reassoc``), and the block
sums are added with Neumaier compensation. The entry kernels run serially
for small inputs (no thread launch), ``prange`` over rows when there are
enough rows, and over chunks of rows when a few long rows must share the
threads.

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
from numba import literally, njit, prange

from fastdiv._backends.numba import _terms
from fastdiv._backends.numba._options import BLOCK, CHUNK, KERNEL, MATH, SERIAL_BELOW, SUM

# Reduction kinds.
ENTROPY = 0
CROSS_ENTROPY = 1
KL = 2
JS = 3
# Elementwise kinds.
REL_ENTR = 0
ENTR = 1


# -- block sums (SIMD accumulators) ---------------------------------------------


@njit(**SUM)
def _block_plain(kind, pf, pi, qf, qi, length):
    """Sum of the terms of ``length`` elements, and how many need the slow form."""
    total = 0.0
    slow = 0
    if kind == KL:
        for j in range(length):
            value, flag = _terms.rel_entr_fast(pf[pi + j], qf[qi + j])
            total += value
            slow += flag
    elif kind == ENTROPY:
        for j in range(length):
            total += _terms.entr(pf[pi + j])
    elif kind == CROSS_ENTROPY:
        for j in range(length):
            total += _terms.neg_xlogy(pf[pi + j], qf[qi + j])
    else:
        for j in range(length):
            total += _terms.js(pf[pi + j], qf[qi + j])
    return total, slow


@njit(**SUM)
def _block_masked(kind, pf, pi, qf, qi, mf, mi, length):
    """As :func:`_block_plain`, leaving out elements whose mask byte is 0."""
    total = 0.0
    slow = 0
    if kind == KL:
        for j in range(length):
            value, flag = _terms.rel_entr_fast(pf[pi + j], qf[qi + j])
            keep = mf[mi + j] != 0
            total += value if keep else 0.0
            slow += flag & keep
    elif kind == ENTROPY:
        for j in range(length):
            value = _terms.entr(pf[pi + j])
            total += value if mf[mi + j] != 0 else 0.0
    elif kind == CROSS_ENTROPY:
        for j in range(length):
            value = _terms.neg_xlogy(pf[pi + j], qf[qi + j])
            total += value if mf[mi + j] != 0 else 0.0
    else:
        for j in range(length):
            value = _terms.js(pf[pi + j], qf[qi + j])
            total += value if mf[mi + j] != 0 else 0.0
    return total, slow


@njit(**SUM)
def _block_scaled(kind, pf, pi, qf, qi, mf, mi, has_mask, p_sum, q_sum, length):
    """As :func:`_block_masked` for ``normalize=True``: terms of ``p / p_sum``, ``q / q_sum``.

    The quotients are taken in float64 (also for float32 input), as the
    reference does.
    """
    total = 0.0
    slow = 0
    for j in range(length):
        x = np.float64(pf[pi + j]) / p_sum
        y = np.float64(qf[qi + j]) / q_sum
        if kind == KL:
            value, flag = _terms.rel_entr_fast(x, y)
        elif kind == ENTROPY:
            value, flag = _terms.entr(x), False
        elif kind == CROSS_ENTROPY:
            value, flag = _terms.neg_xlogy(x, y), False
        else:
            value, flag = _terms.js(x, y), False
        if has_mask:
            keep = mf[mi + j] != 0
            value = value if keep else 0.0
            flag = flag & keep
        total += value
        slow += flag
    return total, slow


@njit(**SUM)
def _masked_sum(af, ai, mf, mi, has_mask, length):
    """Sum of ``length`` elements of ``af`` from ``ai`` (where the mask is nonzero)."""
    total = 0.0
    if has_mask:
        for j in range(length):
            total += np.float64(af[ai + j]) if mf[mi + j] != 0 else 0.0
    else:
        for j in range(length):
            total += np.float64(af[ai + j])
    return total


@njit(**MATH)
def _slow_terms(pf, pi, qf, qi, mf, mi, has_mask, normalize, p_sum, q_sum, length):
    """Sum of the KL terms :func:`_terms.rel_entr_fast` left out (ratio over/underflow)."""
    total = 0.0
    for j in range(length):
        if has_mask and mf[mi + j] == 0:
            continue
        if normalize:
            x = np.float64(pf[pi + j]) / p_sum
            y = np.float64(qf[qi + j]) / q_sum
            if _terms.rel_entr_needs_slow(x, y):
                total += _terms.rel_entr_slow(x, y)
        else:
            x = pf[pi + j]
            y = qf[qi + j]
            if _terms.rel_entr_needs_slow(x, y):
                total += _terms.rel_entr_slow(x, y)
    return total


# -- compensated sums over a row segment -----------------------------------------


@njit(**MATH)
def _add(total, compensation, value):
    """Neumaier's step: ``total + compensation`` tracks the exact running sum."""
    new_total = total + value
    if abs(total) >= abs(value):
        compensation += (total - new_total) + value
    else:
        compensation += (value - new_total) + total
    return new_total, compensation


@njit(**MATH)
def _segment(kind, pf, pi, qf, qi, mf, mi, has_mask, normalize, p_sum, q_sum, length):
    """Compensated sum of the terms of one row segment of ``length`` elements."""
    total = 0.0
    compensation = 0.0
    for start in range(0, length, BLOCK):
        size = min(BLOCK, length - start)
        if normalize:
            value, slow = _block_scaled(
                kind, pf, pi + start, qf, qi + start, mf, mi + start, has_mask,
                p_sum, q_sum, size,
            )
        elif has_mask:
            value, slow = _block_masked(
                kind, pf, pi + start, qf, qi + start, mf, mi + start, size
            )
        else:
            value, slow = _block_plain(kind, pf, pi + start, qf, qi + start, size)
        if slow:
            value += _slow_terms(
                pf, pi + start, qf, qi + start, mf, mi + start, has_mask, normalize,
                p_sum, q_sum, size,
            )
        total, compensation = _add(total, compensation, value)
    return total + compensation


@njit(**MATH)
def _compensated_sum(af, ai, mf, mi, has_mask, length):
    total = 0.0
    compensation = 0.0
    for start in range(0, length, BLOCK):
        size = min(BLOCK, length - start)
        value = _masked_sum(af, ai + start, mf, mi + start, has_mask, size)
        total, compensation = _add(total, compensation, value)
    return total + compensation


@njit(**MATH)
def _finish(kind, value):
    """The row result from the sum of its terms (JS: halve, clip rounding below 0)."""
    if kind == JS:
        value = 0.5 * value
        return 0.0 if value < 0 else value
    return value


@njit(**MATH)
def _row(kind, pf, pi, qf, qi, mf, mi, has_mask, normalize, n):
    p_sum = 1.0
    q_sum = 1.0
    if normalize:
        p_sum = _compensated_sum(pf, pi, mf, mi, has_mask, n)
        if kind != ENTROPY:
            q_sum = _compensated_sum(qf, qi, mf, mi, has_mask, n)
    value = _segment(kind, pf, pi, qf, qi, mf, mi, has_mask, normalize, p_sum, q_sum, n)
    return _finish(kind, value)


# -- entry kernels ---------------------------------------------------------------


@njit(**MATH)
def _chunks_per_row(rows, n, num_threads):
    """How many pieces each row is cut into so that every thread has work."""
    if rows >= 4 * num_threads or n < 2 * CHUNK:
        return 1
    wanted = (4 * num_threads + rows - 1) // rows
    return max(1, min(wanted, n // CHUNK))


@njit(**KERNEL)
def _reduce_rows(kind, pf, p0, ps, qf, q0, qs, mf, m0, ms, has_mask, normalize, rows, n, out,
                num_threads):
    """Write the reduction ``kind`` of each row into ``out`` (float64, length ``rows``).

    ``kind`` is compiled as a constant (``numba.literally``), so each reduction
    compiles, on its first use, only its own code. ``num_threads == 1`` runs
    on the calling thread; otherwise the caller has set Numba's thread count.
    """
    literally(kind)
    if num_threads == 1 or rows * n < SERIAL_BELOW:
        for i in range(rows):
            out[i] = _row(kind, pf, p0 + i * ps, qf, q0 + i * qs, mf, m0 + i * ms,
                          has_mask, normalize, n)
        return
    chunks = _chunks_per_row(rows, n, num_threads)
    size = (n + chunks - 1) // chunks
    items = rows * chunks
    # Phase 0 (normalize of split rows only): the pieces of each row's sums;
    # phase 1: the pieces of each row's divergence.
    pieces = np.empty((items, 2))
    p_sums = np.ones(rows)
    q_sums = np.ones(rows)
    first_phase = 0 if normalize and chunks > 1 else 1
    for phase in range(first_phase, 2):
        for item in prange(items):
            i = item // chunks
            lo = (item % chunks) * size
            length = min(size, n - lo)
            a = p0 + i * ps + lo
            b = q0 + i * qs + lo
            c = m0 + i * ms + lo
            if phase == 0:
                pieces[item, 0] = _compensated_sum(pf, a, mf, c, has_mask, length)
                pieces[item, 1] = _compensated_sum(qf, b, mf, c, has_mask, length)
            elif chunks == 1:
                pieces[item, 0] = _row(kind, pf, a, qf, b, mf, c, has_mask, normalize, n)
            else:
                pieces[item, 0] = _segment(kind, pf, a, qf, b, mf, c, has_mask, normalize,
                                           p_sums[i], q_sums[i], length)
        for i in range(rows):
            total = _sum_pieces(pieces[i * chunks:(i + 1) * chunks, 0])
            if phase == 0:
                p_sums[i] = total
                q_sums[i] = _sum_pieces(pieces[i * chunks:(i + 1) * chunks, 1])
            else:
                out[i] = total if chunks == 1 else _finish(kind, total)


@njit(**MATH)
def _sum_pieces(values):
    total = 0.0
    compensation = 0.0
    for value in values:
        total, compensation = _add(total, compensation, value)
    return total + compensation


@njit(**MATH)
def _elementwise_segment(kind, pf, pi, qf, qi, out, oi, length):
    """Terms of one row segment into ``out[oi:oi + length]``, computed in float64.

    Goes through a small buffer so that ``out`` may be the memory of ``p`` or
    ``q``: the rare slow KL terms are recomputed from the inputs before the
    block is written.
    """
    buffer = np.empty(min(BLOCK, length))
    for start in range(0, length, BLOCK):
        size = min(BLOCK, length - start)
        a = pi + start
        b = qi + start
        if kind == REL_ENTR:
            slow = 0
            for j in range(size):
                value, flag = _terms.rel_entr_fast(np.float64(pf[a + j]), np.float64(qf[b + j]))
                buffer[j] = value
                slow += flag
            if slow:
                for j in range(size):
                    x = np.float64(pf[a + j])
                    y = np.float64(qf[b + j])
                    if _terms.rel_entr_needs_slow(x, y):
                        buffer[j] = _terms.rel_entr_slow(x, y)
        else:
            for j in range(size):
                buffer[j] = _terms.entr(np.float64(pf[a + j]))
        for j in range(size):
            out[oi + start + j] = buffer[j]


@njit(**KERNEL)
def _elementwise(kind, pf, p0, ps, qf, q0, qs, rows, n, out, num_threads):
    """Write the elementwise ``kind`` of every element into ``out`` (C-contiguous, flat)."""
    literally(kind)
    if num_threads == 1 or rows * n < SERIAL_BELOW:
        for i in range(rows):
            _elementwise_segment(kind, pf, p0 + i * ps, qf, q0 + i * qs, out, i * n, n)
        return
    chunks = _chunks_per_row(rows, n, num_threads)
    size = (n + chunks - 1) // chunks
    for item in prange(rows * chunks):
        i = item // chunks
        lo = (item % chunks) * size
        length = min(size, n - lo)
        _elementwise_segment(kind, pf, p0 + i * ps + lo, qf, q0 + i * qs + lo, out,
                             i * n + lo, length)


# -- one entry per function: each compiles (or loads from the cache) on first use --
# Arguments: (pf, p0, ps, qf, q0, qs, mf, m0, ms, has_mask, normalize, rows, n,
# out, num_threads) for reductions, (pf, p0, ps, qf, q0, qs, rows, n, out,
# num_threads) for elementwise functions; see the module docstring.


@njit(**SUM)
def entropy(pf, p0, ps, qf, q0, qs, mf, m0, ms, has_mask, normalize, rows, n, out, num_threads):
    _reduce_rows(ENTROPY, pf, p0, ps, qf, q0, qs, mf, m0, ms, has_mask, normalize, rows, n,
                 out, num_threads)


@njit(**SUM)
def cross_entropy(pf, p0, ps, qf, q0, qs, mf, m0, ms, has_mask, normalize, rows, n, out,
                  num_threads):
    _reduce_rows(CROSS_ENTROPY, pf, p0, ps, qf, q0, qs, mf, m0, ms, has_mask, normalize, rows,
                 n, out, num_threads)


@njit(**SUM)
def kl_divergence(pf, p0, ps, qf, q0, qs, mf, m0, ms, has_mask, normalize, rows, n, out,
                  num_threads):
    _reduce_rows(KL, pf, p0, ps, qf, q0, qs, mf, m0, ms, has_mask, normalize, rows, n, out,
                 num_threads)


@njit(**SUM)
def js_divergence(pf, p0, ps, qf, q0, qs, mf, m0, ms, has_mask, normalize, rows, n, out,
                  num_threads):
    _reduce_rows(JS, pf, p0, ps, qf, q0, qs, mf, m0, ms, has_mask, normalize, rows, n, out,
                 num_threads)


@njit(**SUM)
def rel_entr(pf, p0, ps, qf, q0, qs, rows, n, out, num_threads):
    _elementwise(REL_ENTR, pf, p0, ps, qf, q0, qs, rows, n, out, num_threads)


@njit(**SUM)
def entr(pf, p0, ps, qf, q0, qs, rows, n, out, num_threads):
    _elementwise(ENTR, pf, p0, ps, qf, q0, qs, rows, n, out, num_threads)
