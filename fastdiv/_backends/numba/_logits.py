"""Numba kernels of the logit-space functions: fused, SIMD, serial or parallel over rows.

Layout: as in :mod:`fastdiv._backends.numba._kernels`, every ``(rows, n)``
operand arrives as a read-only 1-D array ``flat`` with ``start`` and
``step`` (row ``i`` is ``flat[start + i * step:][:n]``), so any row stride,
0 included, reaches the loops without a copy and with a unit inner stride.
``where`` comes the same way (``uint8``); ``has_mask`` says whether it is real.

Log-sum-exp, online over blocks. A row is read in blocks of ``BLOCK``
elements. For each block: its max ``m`` (an integer max over order-preserving
bit patterns, which vectorises where a float max does not, and which sorts
every NaN above ``+inf``, so a NaN anywhere makes the row max NaN); then
``e = exp(z - m)`` into a block buffer (input precision: float32 runs at full
SIMD width) and a float64 tally of the buffer: the elements with ``e == 1``
(the ones at ``m``) counted apart as the head ``c``, the others summed as the
tail ``s``. Blocks merge into the row's ``(M, c, s)`` by rescaling with
``exp(m - M)``, so a row is read from memory once and each block's second
look hits L1. The row result is ``M + log(c) + log1p(s / c)``: SciPy's
head/tail form, which keeps the digits of a sum close to ``c``. A row whose
``M`` is not finite (``+inf``, NaN, or only ``-inf``/nothing kept) takes a
plain scalar pass with IEEE semantics: the contract's values, rarely needed.

Functions that write rows (``softmax``, the gradients) keep each block's
``e`` in the output and its ``m`` in a small array during the first pass and
scale in place in the second (``grad = e * exp(m - M) / S - q``), so loss plus
gradient read the logits once and the output twice (from L2 for rows that fit).
``kl_divergence_logits`` recomputes its two exponentials in the second pass.

Drivers: serial for small inputs, ``prange`` over rows when there are enough
rows, and otherwise (a few long rows) over chunks of whole blocks: a first
parallel phase computes each chunk's statistics (and keeps its ``e``), a
serial step merges them per row like blocks, and a second parallel phase
writes the rows (see :func:`_plan`).

Fast-math: the exp and term loops get ``MATH`` (``contract`` only; ``reassoc``
would break ``exp``'s rounding trick), the float64 tallies ``SUM``
(``reassoc`` for SIMD accumulators). Neither drops NaN or inf.

Examples
--------
>>> import numpy as np
>>> from fastdiv._backends.numba import _logits
>>> z = np.array([0.0, -46.0]); m = np.ones(1, np.uint8); out = np.empty(1)
>>> _logits.logsumexp(z, 0, 2, z, 0, 0, False, m, 0, 0, False, 1, 2, out, out, False, 1)
>>> f"{out[0]:.12e}"  # log1p(exp(-46)): the digits past 1 are kept
'1.053061735755e-20'
"""

from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import literally, prange, types
from numba.extending import intrinsic

from fastdiv._backends.numba._cache import jit
from fastdiv._backends.numba._codegen import borrowed
from fastdiv._backends.numba._exp import exp, exp_term, exp_term_not_nan
from fastdiv._backends.numba._kernels import rows_per_item
from fastdiv._backends.numba._math import like, log, log1p
from fastdiv._backends.numba._options import BLOCK, CHUNK, KERNEL, MATH, SERIAL_BELOW, SUM

_INF = np.inf
_NAN = np.nan

# -- order-preserving integer keys of floats (a max that vectorises) ---------------

_WIDTH = {types.float64: (64, types.int64), types.float32: (32, types.int32)}


def _flip(builder, bits, width):
    """Flip every bit but the sign of a negative pattern: an involution that orders floats."""
    ity = ir.IntType(width)
    mask = builder.lshr(builder.ashr(bits, ity(width - 1)), ity(1))
    return builder.xor(bits, mask)


@intrinsic
def _key(typingctx, x):
    """A signed integer that orders like ``x`` (``-0.0`` just below ``+0.0``)."""
    if x not in _WIDTH:
        return None
    width, ity = _WIDTH[x]

    def codegen(context, builder, signature, args):
        return _flip(builder, builder.bitcast(args[0], ir.IntType(width)), width)

    return ity(x), codegen


@intrinsic
def _unkey(typingctx, k, like_x):
    """The float of type ``like_x`` whose key is ``k``."""
    if like_x not in _WIDTH:
        return None
    width, _ = _WIDTH[like_x]

    def codegen(context, builder, signature, args):
        bits = _flip(builder, args[0], width)
        return builder.bitcast(bits, context.get_value_type(like_x))

    return like_x(k, like_x), codegen


@intrinsic
def _top_key(typingctx, x):
    """The largest key of ``x``'s type (a NaN pattern): where every NaN goes."""
    if x not in _WIDTH:
        return None
    width, ity = _WIDTH[x]

    def codegen(context, builder, signature, args):
        return ir.IntType(width)((1 << (width - 1)) - 1)

    return ity(x), codegen


@jit(MATH)
def _block_top(z, w, has_w, m, has_mask):
    """Max of the kept elements of a block (NaN if one is NaN, ``-inf`` if none is kept).

    Kept: ``m != 0`` (with a mask) and ``w != 0`` (with weights).
    """
    x0 = z[0]
    low = _key(like(x0, -_INF))
    high = _top_key(x0)
    top = low
    if has_mask or has_w:
        for j in range(z.size):
            x = z[j]
            k = _key(x) if x == x else high
            kept = (not has_mask or m[j] != 0) & (not has_w or w[j] != 0)
            k = k if kept else low
            top = k if k > top else top
    else:
        for j in range(z.size):
            x = z[j]
            k = _key(x) if x == x else high
            top = k if k > top else top
    return _unkey(top, x0)


@jit(MATH)
def _fill_exp(z, w, has_w, m, has_mask, top, e):
    """``e[j] = exp(z[j] - top)`` on kept elements, ``-1`` (never an exp) elsewhere.

    ``exp_term``: a result below the smallest normal number is 0, which no sum
    that holds ``exp(top - top) = 1`` can notice. ``top`` is the max of the
    kept elements and not NaN, so no kept element is NaN, and the exp need not
    keep NaN (what it gives for an element not kept is discarded).
    """
    minus_one = like(top, -1.0)
    if has_mask or has_w:
        for j in range(z.size):
            v = exp_term_not_nan(z[j] - top)
            kept = (not has_mask or m[j] != 0) & (not has_w or w[j] != 0)
            e[j] = v if kept else minus_one
    else:
        for j in range(z.size):
            e[j] = exp_term_not_nan(z[j] - top)


@jit(SUM)
def _tally(e, w, has_w, size):
    """``(head, tail)`` in float64: weights at ``e == 1`` and ``sum(w * e)`` of the others.

    Elements marked ``-1`` (not kept) count nowhere; without weights ``w`` is 1.
    """
    head = 0.0
    tail = 0.0
    if has_w:
        for j in range(size):
            v = np.float64(e[j])
            wj = np.float64(w[j])
            head += wj if v == 1.0 else 0.0
            tail += wj * v if (v != 1.0) & (v >= 0.0) else 0.0
    else:
        for j in range(size):
            v = np.float64(e[j])
            head += 1.0 if v == 1.0 else 0.0
            tail += v if (v != 1.0) & (v > 0.0) else 0.0
    return head, tail


@jit(MATH)
def _zero_marks(e):
    """Replace the ``-1`` marks of :func:`_fill_exp` by 0 (before scaling into an output)."""
    zero = like(e[0], 0.0)
    for j in range(e.size):
        v = e[j]
        e[j] = v if v >= zero else zero


@jit(MATH)
def _merge(top, head, tail, block_top, block_head, block_tail):
    """Fold one block's ``(m, head, tail)`` into the running ``(M, head, tail)``."""
    if block_top > top:
        tail = (head + tail) * math.exp(top - block_top) + block_tail
        return block_top, block_head, tail
    if block_top == top:
        return top, head + block_head, tail + block_tail
    return top, head, tail + (block_head + block_tail) * math.exp(block_top - top)


@jit(MATH)
def _row_lse(zf, zi, wf, wi, has_w, mf, mi, has_mask, n, e_store, eo, store, block_tops,
             scratch):
    """``(M, head, tail)`` of one row, online over blocks (see the module docstring).

    With ``store`` each block's ``e`` stays in ``e_store[eo:eo + n]`` (0 where
    not kept) and its max in ``block_tops``; otherwise ``scratch`` holds it.
    ``M`` is the row max (NaN, ``+-inf`` included); ``head``, ``tail`` are
    meaningful only for a finite ``M``.
    """
    top = -_INF
    head = 0.0
    tail = 0.0
    bad = False
    for b, start in enumerate(range(0, n, BLOCK)):
        size = min(BLOCK, n - start)
        z = zf[zi + start:zi + start + size]
        w = wf[wi + start:wi + start + size] if has_w else wf[:0]
        m = mf[mi + start:mi + start + size] if has_mask else mf[:0]
        e = e_store[eo + start:eo + start + size] if store else scratch[:size]
        block_top = _block_top(z, w, has_w, m, has_mask)
        top64 = np.float64(block_top)
        if store:
            block_tops[b] = top64
        if top64 == -_INF or not math.isfinite(top64):
            bad = bad or top64 == _INF or top64 != top64
            if store:
                e[:] = 0
            continue
        _fill_exp(z, w, has_w, m, has_mask, block_top, e)
        block_head, block_tail = _tally(e, w, has_w, size)
        if store and (has_mask or has_w):
            _zero_marks(e)
        top, head, tail = _merge(top, head, tail, top64, block_head, block_tail)
    if bad:
        top = _INF  # not finite: the caller takes the slow path
    return top, head, tail


@jit(MATH)
def _log_sum(head, tail):
    """``log(head + tail)`` as ``log(head) + log1p(tail / head)`` (``head >= 1``)."""
    return math.log(head) + math.log1p(tail / head)


@jit(MATH)
def _plain_sum(zf, zi, wf, wi, has_w, mf, mi, has_mask, n, shift):
    """``sum(w * exp(z - shift))`` over kept elements, plain IEEE arithmetic (slow path)."""
    total = 0.0
    for j in range(n):
        if has_mask and mf[mi + j] == 0:
            continue
        wj = np.float64(wf[wi + j]) if has_w else 1.0
        if wj == 0.0:
            continue
        total += wj * math.exp(np.float64(zf[zi + j]) - shift)
    return total


@jit(MATH)
def _sign(x):
    return _NAN if x != x else (1.0 if x > 0 else (-1.0 if x < 0 else 0.0))


@jit(MATH)
def _block_count(n):
    return (n + BLOCK - 1) // BLOCK


@jit(MATH)
def _plan(rows, n, num_threads):
    """``(mode, chunks, size)``: 0 serial, 1 parallel over rows, 2 over row chunks.

    Chunks are whole blocks (``size`` a multiple of ``BLOCK``), so block
    indices mean the same in a chunk and in its row.
    """
    if num_threads == 1 or rows * n < SERIAL_BELOW:
        return 0, 1, n
    if rows >= 4 * num_threads or n < 2 * CHUNK:
        return 1, 1, n
    wanted = (4 * num_threads + rows - 1) // rows
    chunks = max(1, min(wanted, n // CHUNK))
    size = ((n + chunks - 1) // chunks + BLOCK - 1) // BLOCK * BLOCK
    return 2, (n + size - 1) // size, size


@jit(MATH)
def _merge_chunks(states, first, count):
    """Fold the ``(top, head, tail)`` rows ``states[first:first + count]`` of one row."""
    top, head, tail = -_INF, 0.0, 0.0
    bad = False
    for c in range(first, first + count):
        chunk_top = states[c, 0]
        if chunk_top == _INF or chunk_top != chunk_top:
            bad = True
        elif chunk_top != -_INF:
            top, head, tail = _merge(top, head, tail, chunk_top, states[c, 1], states[c, 2])
    return (_INF if bad else top), head, tail


# -- logsumexp -------------------------------------------------------------------


@jit(MATH)
def _logsumexp_finish(i, top, head, tail, af, ai, bf, bi, has_b, mf, mi, has_mask, n, out,
                      sign_out, has_sign):
    """Row ``i``'s result from its ``(M, head, tail)`` (the contract's formula)."""
    if math.isfinite(top):
        if head == 0.0:
            value = top + math.log(abs(tail))
            sign = _sign(tail)
        else:
            r = tail / head
            value = top + math.log(abs(head)) + math.log1p(r if r >= -1.0 else -r - 2.0)
            sign = _sign(head) * _sign(r + 1.0)
    else:
        total = _plain_sum(af, ai, bf, bi, has_b, mf, mi, has_mask, n, 0.0)
        value = math.log(abs(total))
        sign = _sign(total)
    if has_sign:
        sign_out[i] = sign
    elif sign < 0:
        value = _NAN
    out[i] = value


@jit(MATH)
def _logsumexp_piece(af, ai, bf, bi, has_b, mf, mi, has_mask, length):
    scratch = np.empty(min(BLOCK, max(length, 1)), af.dtype)
    return _row_lse(af, ai, bf, bi, has_b, mf, mi, has_mask, length, scratch, 0, False,
                    scratch, scratch)


@jit(KERNEL)
def logsumexp(af, a0, as_, bf, b0, bs, has_b, mf, m0, ms, has_mask, rows, n, out, sign_out,
              has_sign, num_threads):
    """``log|sum(b * exp(a))|`` (and its sign) of every row into ``out`` (float64)."""
    af, bf, mf = borrowed(af), borrowed(bf), borrowed(mf)  # see the entry points' note
    out, sign_out = borrowed(out), borrowed(sign_out)
    mode, chunks, size = _plan(rows, n, num_threads)
    if mode == 0:
        for i in range(rows):
            ai, bi, mi = a0 + i * as_, b0 + i * bs, m0 + i * ms
            top, head, tail = _logsumexp_piece(af, ai, bf, bi, has_b, mf, mi, has_mask, n)
            _logsumexp_finish(i, top, head, tail, af, ai, bf, bi, has_b, mf, mi, has_mask, n,
                              out, sign_out, has_sign)
    elif mode == 1:
        for i in prange(rows):
            ai, bi, mi = a0 + i * as_, b0 + i * bs, m0 + i * ms
            top, head, tail = _logsumexp_piece(af, ai, bf, bi, has_b, mf, mi, has_mask, n)
            _logsumexp_finish(i, top, head, tail, af, ai, bf, bi, has_b, mf, mi, has_mask, n,
                              out, sign_out, has_sign)
    else:
        states = np.empty((rows * chunks, 3))
        for item in prange(rows * chunks):
            i = item // chunks
            lo = (item % chunks) * size
            states[item, 0], states[item, 1], states[item, 2] = _logsumexp_piece(
                af, a0 + i * as_ + lo, bf, b0 + i * bs + lo, has_b, mf, m0 + i * ms + lo,
                has_mask, min(size, n - lo))
        for i in range(rows):
            top, head, tail = _merge_chunks(states, i * chunks, chunks)
            _logsumexp_finish(i, top, head, tail, af, a0 + i * as_, bf, b0 + i * bs, has_b, mf,
                              m0 + i * ms, has_mask, n, out, sign_out, has_sign)


# -- log_softmax and softmax -------------------------------------------------------


@jit(MATH)
def _write_log_softmax(z, shift, log_sum, out):
    for j in range(z.size):
        out[j] = (np.float64(z[j]) - shift) - log_sum


@jit(MATH)
def _scale_block(e, factor, total):
    """``e = e * factor / total``, rounded in the reference's order (``factor`` is 1 in a
    row's top block)."""
    for j in range(e.size):
        e[j] = (np.float64(e[j]) * factor) / total


@jit(MATH)
def _row_map_stats(kind, zf, zi, length, out, oi, block_tops):
    """``(M, head, tail)`` of a row piece; softmax keeps its ``e`` in ``out[oi:]``."""
    literally(kind)
    scratch = np.empty(min(BLOCK, max(length, 1)) if kind == 0 else 0, zf.dtype)
    if kind == 0:
        return _row_lse(zf, zi, zf, 0, False, zf, 0, False, length, scratch, 0, False,
                        block_tops, scratch)
    return _row_lse(zf, zi, zf, 0, False, zf, 0, False, length, out, oi, True, block_tops,
                    scratch)


@jit(MATH)
def _row_map_write(kind, zf, zi, length, out, oi, block_tops, top, head, tail, plain_log_sum):
    """Write a row piece from its row's ``(M, head, tail)``.

    ``plain_log_sum``: ``log(sum(exp(z)))`` of the row, used when ``M`` is not finite.
    """
    literally(kind)
    if kind == 0:
        if math.isfinite(top):
            shift, log_sum = top, _log_sum(head, tail)
        else:
            shift, log_sum = 0.0, plain_log_sum
        for start in range(0, length, BLOCK):
            size = min(BLOCK, length - start)
            _write_log_softmax(zf[zi + start:zi + start + size], shift, log_sum,
                               out[oi + start:oi + start + size])
    elif not math.isfinite(top):
        out[oi:oi + length] = _NAN
    else:
        total = head + tail
        for b, start in enumerate(range(0, length, BLOCK)):
            size = min(BLOCK, length - start)
            _scale_block(out[oi + start:oi + start + size], math.exp(block_tops[b] - top), total)


@jit(MATH)
def _plain_log_sum(kind, top, zf, zi, n):
    if kind == 0 and not math.isfinite(top):
        return math.log(_plain_sum(zf, zi, zf, 0, False, zf, 0, False, n, 0.0))
    return 0.0


@jit(MATH)
def _row_map_row(kind, i, zf, z0, zs, n, out, block_tops):
    literally(kind)
    zi = z0 + i * zs
    top, head, tail = _row_map_stats(kind, zf, zi, n, out, i * n, block_tops)
    _row_map_write(kind, zf, zi, n, out, i * n, block_tops, top, head, tail,
                   _plain_log_sum(kind, top, zf, zi, n))


@jit(KERNEL)
def row_map(kind, zf, z0, zs, rows, n, out, num_threads):
    """``kind`` 0: ``log_softmax``, 1: ``softmax`` of every row into ``out`` (flat, C order).

    ``out`` may be the memory of ``z``: each element is read before it is written.
    """
    literally(kind)
    blocks = _block_count(n)
    mode, chunks, size = _plan(rows, n, num_threads)
    if mode == 0:
        tops = np.empty(blocks)
        for i in range(rows):
            _row_map_row(kind, i, zf, z0, zs, n, out, tops)
    elif mode == 1:
        for i in prange(rows):
            tops = np.empty(blocks)
            _row_map_row(kind, i, zf, z0, zs, n, out, tops)
    else:
        # The first phase reads every piece (softmax: keeps e in out), the second
        # writes it; out may be z's memory only element for element, which holds.
        tops = np.empty((rows, blocks))
        states = np.empty((rows * chunks, 3))
        for item in prange(rows * chunks):
            i = item // chunks
            lo = (item % chunks) * size
            states[item, 0], states[item, 1], states[item, 2] = _row_map_stats(
                kind, zf, z0 + i * zs + lo, min(size, n - lo), out, i * n + lo,
                tops[i, lo // BLOCK:])
        rows_state = np.empty((rows, 4))
        for i in range(rows):
            top, head, tail = _merge_chunks(states, i * chunks, chunks)
            rows_state[i, 0], rows_state[i, 1], rows_state[i, 2] = top, head, tail
            rows_state[i, 3] = _plain_log_sum(kind, top, zf, z0 + i * zs, n)
        for item in prange(rows * chunks):
            i = item // chunks
            lo = (item % chunks) * size
            _row_map_write(kind, zf, z0 + i * zs + lo, min(size, n - lo), out, i * n + lo,
                           tops[i, lo // BLOCK:], rows_state[i, 0], rows_state[i, 1],
                           rows_state[i, 2], rows_state[i, 3])


# Entry points called from Python. A kernel that asks for ``literally(kind)``
# recompiles-or-looks-up on every call from Python (the argument arrives as a
# plain int64); called from jitted code with a constant, it compiles once.
# The entries themselves run no parfor: the kernel they call does. The kernels
# work on borrowed views of their array arguments (the caller's, alive for the
# whole call): no reference counting per row (see ``_codegen.borrowed``).
_ENTRY = {**KERNEL, "parallel": False}

@jit(_ENTRY)
def log_softmax_rows(zf, z0, zs, rows, n, out, num_threads):
    """:func:`row_map` with ``kind`` 0 (``log_softmax``)."""
    row_map(0, borrowed(zf), z0, zs, rows, n, borrowed(out), num_threads)


@jit(_ENTRY)
def softmax_rows(zf, z0, zs, rows, n, out, num_threads):
    """:func:`row_map` with ``kind`` 1 (``softmax``)."""
    row_map(1, borrowed(zf), z0, zs, rows, n, borrowed(out), num_threads)


# -- softmax cross-entropy -----------------------------------------------------------


@jit(SUM)
def _kept_sums(z, p, has_p, m, has_mask):
    """``(count, sum z, sum p, sum p z [p != 0])`` over the kept elements, float64."""
    count = 0.0
    z_sum = 0.0
    p_sum = 0.0
    pz_sum = 0.0
    for j in range(z.size):
        kept = not has_mask or m[j] != 0
        x = np.float64(z[j])
        count += 1.0 if kept else 0.0
        z_sum += x if kept else 0.0
        if has_p:
            pj = np.float64(p[j])
            p_sum += pj if kept else 0.0
            pz_sum += pj * x if kept & (pj != 0.0) else 0.0
    return count, z_sum, p_sum, pz_sum


@jit(MATH)
def _write_grad(e, p, has_p, m, has_mask, factor, total, uniform, keep_p):
    """``e = e * (factor / total) - q`` in place, ``q = keep_p * p + uniform`` on kept.

    ``factor = Q exp(m - M)``: the reference's ``Q * exp(z - M) / S``, with one
    division per block instead of one per element (the division bound the loop).
    """
    zero = 0.0
    scale = factor / total
    for j in range(e.size):
        kept = not has_mask or m[j] != 0
        q = (keep_p * np.float64(p[j]) if has_p else zero) + uniform
        e[j] = np.float64(e[j]) * scale - (q if kept else zero)


@jit(MATH)
def _ce_stats(zf, zi, pf, pi, has_p, smoothing, mf, mi, has_mask, length, grad, gi, has_grad,
              block_tops):
    """``(M, head, tail, count, sum z, sum p, sum p z)`` of a row piece (kept elements).

    With ``has_grad`` each block's ``e`` stays in ``grad[gi:]``.
    """
    scratch = np.empty(0 if has_grad else min(BLOCK, max(length, 1)), zf.dtype)
    top, head, tail = _row_lse(zf, zi, zf, 0, False, mf, mi, has_mask, length, grad, gi,
                               has_grad, block_tops, scratch)
    count, z_sum, p_sum, pz_sum = 0.0, 0.0, 0.0, 0.0
    if smoothing != 0.0 or has_mask or has_p:
        for start in range(0, length, BLOCK):
            size = min(BLOCK, length - start)
            sums = _kept_sums(zf[zi + start:zi + start + size], pf[pi + start:pi + start + size],
                              has_p, mf[mi + start:mi + start + size] if has_mask else mf[:0],
                              has_mask)
            count += sums[0]
            z_sum += sums[1]
            p_sum += sums[2]
            pz_sum += sums[3]
    else:
        count = np.float64(length)
    return top, head, tail, count, z_sum, p_sum, pz_sum


_ZERO_ROW = 0
_NAN_ROW = 1
_USABLE_ROW = 2


@jit(MATH)
def _ce_finish(ignored, has_p, smoothing, top, head, tail, count, z_sum, p_sum, pz_sum, z_label):
    """``(loss, status, Q)`` of a row from its merged statistics."""
    if ignored or count == 0.0:
        return 0.0, _ZERO_ROW, 0.0
    if not math.isfinite(top):
        return _NAN, _NAN_ROW, 0.0
    keep = 1.0 - smoothing
    if has_p:
        # sum(q (M - z)) with q = keep * p + uniform; total_q = sum(q)
        total_q = keep * p_sum + smoothing
        loss = keep * (top * p_sum - pz_sum) if keep != 0.0 else 0.0
    else:
        total_q = 1.0
        loss = keep * (top - z_label) if keep != 0.0 else 0.0
    if smoothing != 0.0:
        loss += smoothing * top - (smoothing / count) * z_sum
    return loss + total_q * _log_sum(head, tail), _USABLE_ROW, total_q


@jit(MATH)
def _ce_write(pf, pi, has_p, label, smoothing, mf, mi, has_mask, length, grad, gi, block_tops,
              status, top, total, total_q, count):
    """The gradient of a row piece (``label`` relative to the piece, or outside it)."""
    if status == _ZERO_ROW:
        grad[gi:gi + length] = 0
        return
    if status == _NAN_ROW:
        for j in range(length):
            grad[gi + j] = _NAN if not has_mask or mf[mi + j] != 0 else 0.0
        return
    keep = 1.0 - smoothing
    uniform = smoothing / count
    has_label = not has_p and 0 <= label < length
    e_label = np.float64(grad[gi + label]) if has_label else 0.0
    for b, start in enumerate(range(0, length, BLOCK)):
        size = min(BLOCK, length - start)
        factor = total_q * math.exp(block_tops[b] - top)
        _write_grad(grad[gi + start:gi + start + size], pf[pi + start:pi + start + size],
                    has_p, mf[mi + start:mi + start + size] if has_mask else mf[:0],
                    has_mask, factor, total, uniform, keep)
    if has_label:
        factor = math.exp(block_tops[label // BLOCK] - top)
        grad[gi + label] = (e_label * factor) / total - (keep + uniform)


@jit(MATH)
def _cross_entropy_row(i, zf, z0, zs, pf, p0, ps, has_p, target, smoothing, mf, m0, ms,
                       has_mask, n, loss_out, grad, has_grad, block_tops):
    """Loss (and gradient) of row ``i``: class index ``target[i]`` or probabilities ``p``."""
    zi, pi, mi, gi = z0 + i * zs, p0 + i * ps, m0 + i * ms, i * n
    label = target[i] if not has_p else 0
    ignored = label < 0
    stats = (-_INF, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    if not ignored:  # an ignored row's logits are never read
        stats = _ce_stats(zf, zi, pf, pi, has_p, smoothing, mf, mi, has_mask, n, grad, gi,
                          has_grad, block_tops)
    top, head, tail, count, z_sum, p_sum, pz_sum = stats
    z_label = np.float64(zf[zi + label]) if not (ignored or has_p) else 0.0
    loss, status, total_q = _ce_finish(ignored, has_p, smoothing, top, head, tail, count, z_sum,
                                       p_sum, pz_sum, z_label)
    loss_out[i] = loss
    if has_grad:
        _ce_write(pf, pi, has_p, label, smoothing, mf, mi, has_mask, n, grad, gi, block_tops,
                  status, top, head + tail, total_q, count)


@jit(KERNEL)
def softmax_cross_entropy(zf, z0, zs, pf, p0, ps, has_p, target, smoothing, mf, m0, ms,
                          has_mask, rows, n, loss_out, grad, has_grad, num_threads):
    """Per-row softmax cross-entropy into ``loss_out`` (float64), gradient into ``grad``.

    ``has_p``: targets are probabilities ``p`` (``target`` unused), else class
    indices ``target`` (``-1``: ignored row). ``grad`` is flat, C order, with
    ``z``'s dtype; written only when ``has_grad``.
    """
    zf, pf, target, mf = borrowed(zf), borrowed(pf), borrowed(target), borrowed(mf)
    loss_out, grad = borrowed(loss_out), borrowed(grad)
    blocks = _block_count(n)
    mode, chunks, size = _plan(rows, n, num_threads)
    if mode == 0:
        tops = np.empty(blocks)
        for i in range(rows):
            _cross_entropy_row(i, zf, z0, zs, pf, p0, ps, has_p, target, smoothing, mf, m0, ms,
                               has_mask, n, loss_out, grad, has_grad, tops)
        return
    if mode == 1:
        for i in prange(rows):
            tops = np.empty(blocks)
            _cross_entropy_row(i, zf, z0, zs, pf, p0, ps, has_p, target, smoothing, mf, m0, ms,
                               has_mask, n, loss_out, grad, has_grad, tops)
        return
    tops = np.empty((rows, blocks))
    states = np.zeros((rows * chunks, 7))
    for item in prange(rows * chunks):
        i = item // chunks
        lo = (item % chunks) * size
        if has_p or target[i] >= 0:
            stats = _ce_stats(zf, z0 + i * zs + lo, pf, p0 + i * ps + lo, has_p, smoothing, mf,
                              m0 + i * ms + lo, has_mask, min(size, n - lo), grad, i * n + lo,
                              has_grad, tops[i, lo // BLOCK:])
            for k in range(7):
                states[item, k] = stats[k]
    rows_state = np.empty((rows, 4))
    for i in range(rows):
        first = i * chunks
        top, head, tail = _merge_chunks(states, first, chunks)
        count = states[first:first + chunks, 3].sum()
        z_sum = states[first:first + chunks, 4].sum()
        p_sum = states[first:first + chunks, 5].sum()
        pz_sum = states[first:first + chunks, 6].sum()
        label = target[i] if not has_p else 0
        ignored = label < 0
        z_label = np.float64(zf[z0 + i * zs + label]) if not (ignored or has_p) else 0.0
        loss, status, total_q = _ce_finish(ignored, has_p, smoothing, top, head, tail, count,
                                           z_sum, p_sum, pz_sum, z_label)
        loss_out[i] = loss
        rows_state[i, 0], rows_state[i, 1] = status, top
        rows_state[i, 2], rows_state[i, 3] = head + tail, total_q
        states[first, 3] = count
    if has_grad:
        for item in prange(rows * chunks):
            i = item // chunks
            lo = (item % chunks) * size
            label = (target[i] if not has_p else 0) - lo
            _ce_write(pf, p0 + i * ps + lo, has_p, label, smoothing, mf, m0 + i * ms + lo,
                      has_mask, min(size, n - lo), grad, i * n + lo, tops[i, lo // BLOCK:],
                      int(rows_state[i, 0]), rows_state[i, 1], rows_state[i, 2],
                      rows_state[i, 3], states[i * chunks, 3])


# -- KL divergence between softmaxes of logits ---------------------------------------------


@jit(MATH)
def _scaled_into(a, temperature, out):
    """``out[j] = float64(a[j]) / temperature``, divided as the reference does."""
    for j in range(a.size):
        out[j] = np.float64(a[j]) / temperature


@jit(SUM)
def _cross_term(ex, x, y, size):
    """``sum(ex * (x - y))`` over elements with ``ex > 0`` (``-1`` marks and 0 add nothing)."""
    total = 0.0
    for j in range(size):
        v = ex[j]
        total += v * (x[j] - y[j]) if v > 0.0 else 0.0
    return total


@jit(MATH)
def _write_kl_grad(x, y, top_x, top_y, s_x, s_y, temperature, m, has_mask, g):
    for j in range(x.size):
        value = (exp_term(y[j] - top_y) / s_y - exp_term(x[j] - top_x) / s_x) / temperature
        g[j] = value if not has_mask or m[j] != 0 else 0.0


@jit(MATH)
def _kl_stats(af, ai, bf, bi, temperature, mf, mi, has_mask, length):
    """Statistics of a row piece: ``(Mx, head_x, tail_x, My, head_y, tail_y, cross, bad, kept)``.

    ``cross = sum(exp(x - Mx) (x - y))`` over kept elements with a nonzero
    ``exp``; ``bad`` (1.0) flags a ``+inf`` or NaN; ``kept`` counts kept elements.
    """
    xw, yw, ex, ey = _kl_buffers(length)
    top_x, head_x, tail_x = -_INF, 0.0, 0.0
    top_y, head_y, tail_y = -_INF, 0.0, 0.0
    cross = 0.0  # relative to the running top_x
    bad = 0.0
    kept = np.float64(length)
    if has_mask:
        kept = 0.0
        for j in range(length):
            kept += 1.0 if mf[mi + j] != 0 else 0.0
    for start in range(0, length, BLOCK):
        size = min(BLOCK, length - start)
        m = mf[mi + start:mi + start + size] if has_mask else mf[:0]
        x, y = xw[:size], yw[:size]
        _scaled_into(af[ai + start:ai + start + size], temperature, x)
        _scaled_into(bf[bi + start:bi + start + size], temperature, y)
        bx = _block_top(x, x, False, m, has_mask)
        by = _block_top(y, y, False, m, has_mask)
        if bx == _INF or bx != bx or by == _INF or by != by:
            bad = 1.0
            continue
        if by != -_INF:  # a side with only -inf (or nothing kept) adds nothing to its sum
            _fill_exp(y, y, False, m, has_mask, by, ey)
            hy, ty = _tally(ey, ey, False, size)
            top_y, head_y, tail_y = _merge(top_y, head_y, tail_y, by, hy, ty)
        if bx != -_INF:
            _fill_exp(x, x, False, m, has_mask, bx, ex)
            hx, tx = _tally(ex, ex, False, size)
            block_cross = _cross_term(ex, x, y, size)
            if bx > top_x:
                cross = cross * math.exp(top_x - bx) + block_cross
            else:
                cross += block_cross * math.exp(bx - top_x)
            top_x, head_x, tail_x = _merge(top_x, head_x, tail_x, bx, hx, tx)
    return top_x, head_x, tail_x, top_y, head_y, tail_y, cross, bad, kept


@jit(MATH)
def _kl_finish(top_x, head_x, tail_x, top_y, head_y, tail_y, cross, bad, kept):
    """``(loss, status)`` of a row from its merged statistics."""
    if kept == 0.0:
        return 0.0, _ZERO_ROW
    if bad != 0.0 or not (math.isfinite(top_x) and math.isfinite(top_y)):
        return _NAN, _NAN_ROW
    kl = cross / (head_x + tail_x) - (top_x - top_y) + (_log_sum(head_y, tail_y)
                                                         - _log_sum(head_x, tail_x))
    return (0.0 if kl < 0.0 else kl), _USABLE_ROW


@jit(MATH)
def _kl_write(af, ai, bf, bi, temperature, mf, mi, has_mask, length, grad, gi, status, top_x,
              s_x, top_y, s_y):
    """The gradient of a row piece with respect to ``b``."""
    if status == _ZERO_ROW:
        grad[gi:gi + length] = 0
        return
    if status == _NAN_ROW:
        for j in range(length):
            grad[gi + j] = _NAN if not has_mask or mf[mi + j] != 0 else 0.0
        return
    xw, yw = np.empty(min(BLOCK, max(length, 1))), np.empty(min(BLOCK, max(length, 1)))
    for start in range(0, length, BLOCK):
        size = min(BLOCK, length - start)
        x, y = xw[:size], yw[:size]
        _scaled_into(af[ai + start:ai + start + size], temperature, x)
        _scaled_into(bf[bi + start:bi + start + size], temperature, y)
        m = mf[mi + start:mi + start + size] if has_mask else mf[:0]
        _write_kl_grad(x, y, top_x, top_y, s_x, s_y, temperature, m, has_mask,
                       grad[gi + start:gi + start + size])


@jit(MATH)
def _kl_row(i, af, a0, as_, bf, b0, bs, temperature, mf, m0, ms, has_mask, n, loss_out, grad,
            has_grad):
    ai, bi, mi = a0 + i * as_, b0 + i * bs, m0 + i * ms
    st = _kl_stats(af, ai, bf, bi, temperature, mf, mi, has_mask, n)
    loss, status = _kl_finish(st[0], st[1], st[2], st[3], st[4], st[5], st[6], st[7], st[8])
    loss_out[i] = loss
    if has_grad:
        _kl_write(af, ai, bf, bi, temperature, mf, mi, has_mask, n, grad, i * n, status, st[0],
                  st[1] + st[2], st[3], st[4] + st[5])


@jit(MATH)
def _kl_buffers(n):
    size = min(BLOCK, max(n, 1))
    return np.empty(size), np.empty(size), np.empty(size), np.empty(size)


@jit(KERNEL)
def kl_divergence_logits(af, a0, as_, bf, b0, bs, temperature, mf, m0, ms, has_mask, rows, n,
                         loss_out, grad, has_grad, num_threads):
    """``KL(softmax(a / T) || softmax(b / T))`` per row, computed in float64; gradient wrt ``b``."""
    af, bf, mf = borrowed(af), borrowed(bf), borrowed(mf)
    loss_out, grad = borrowed(loss_out), borrowed(grad)
    mode, chunks, size = _plan(rows, n, num_threads)
    if mode == 0:
        for i in range(rows):
            _kl_row(i, af, a0, as_, bf, b0, bs, temperature, mf, m0, ms, has_mask, n, loss_out,
                    grad, has_grad)
        return
    if mode == 1:
        for i in prange(rows):
            _kl_row(i, af, a0, as_, bf, b0, bs, temperature, mf, m0, ms, has_mask, n, loss_out,
                    grad, has_grad)
        return
    states = np.empty((rows * chunks, 9))
    for item in prange(rows * chunks):
        i = item // chunks
        lo = (item % chunks) * size
        st = _kl_stats(af, a0 + i * as_ + lo, bf, b0 + i * bs + lo, temperature, mf,
                       m0 + i * ms + lo, has_mask, min(size, n - lo))
        for k in range(9):
            states[item, k] = st[k]
    rows_state = np.empty((rows, 5))
    for i in range(rows):
        first = i * chunks
        piece = states[first:first + chunks]
        top_x, head_x, tail_x = _merge_chunks(piece[:, 0:3], 0, chunks)
        top_y, head_y, tail_y = _merge_chunks(piece[:, 3:6], 0, chunks)
        cross = 0.0
        if math.isfinite(top_x):
            for c in range(chunks):
                if piece[c, 0] != -_INF:
                    cross += piece[c, 6] * math.exp(piece[c, 0] - top_x)
        loss, status = _kl_finish(top_x, head_x, tail_x, top_y, head_y, tail_y, cross,
                                  piece[:, 7].sum(), piece[:, 8].sum())
        loss_out[i] = loss
        rows_state[i, 0], rows_state[i, 1], rows_state[i, 2] = status, top_x, head_x + tail_x
        rows_state[i, 3], rows_state[i, 4] = top_y, head_y + tail_y
    if has_grad:
        for item in prange(rows * chunks):
            i = item // chunks
            lo = (item % chunks) * size
            _kl_write(af, a0 + i * as_ + lo, bf, b0 + i * bs + lo, temperature, mf,
                      m0 + i * ms + lo, has_mask, min(size, n - lo), grad, i * n + lo,
                      int(rows_state[i, 0]), rows_state[i, 1], rows_state[i, 2],
                      rows_state[i, 3], rows_state[i, 4])


# -- binary cross-entropies (float64 terms, masked float64 sums) ----------------------------

BCE = 0
BCE_LOGITS = 1


@jit(MATH)
def _bce_fill(kind, p, q, w, has_w, buffer):
    """Terms of one block in float64 (``p, q`` or ``z, t`` with weights ``w``)."""
    literally(kind)
    for j in range(p.size):
        a = np.float64(p[j])
        b = np.float64(q[j])
        if kind == BCE:
            first = 0.0 if (a == 0.0) & (b == b) else -a * log(b)
            rest = 1.0 - a
            second = 0.0 if (rest == 0.0) & (b == b) else -rest * log1p(-b)
        else:
            # softplus(-a) and softplus(a) share log1p(exp(-|a|)): one exp and one
            # log1p per element (two of each would not inline, and the loop would
            # not vectorise)
            shared = log1p(exp(-abs(a)))  # NaN stays NaN
            positive = np.float64(w[j]) * b if has_w else b
            rest = 1.0 - b
            above = a if not a <= 0.0 else 0.0  # max(a, 0), NaN kept
            below = -a if not a >= 0.0 else 0.0  # max(-a, 0), NaN kept
            first = 0.0 if (positive == 0.0) & (a == a) else positive * (below + shared)
            second = 0.0 if (rest == 0.0) & (a == a) else rest * (above + shared)
        buffer[j] = first + second


@jit(SUM)
def _masked_sum(buffer, m, has_mask, size):
    """Float64 sum of ``buffer[:size]`` (where ``m`` is nonzero).

    Not the divergence kernels' ``_masked_sum`` (512-bit vectors): with that one
    the float64 binary cross-entropy of (1024, 32768) ran a fifth slower (two
    threads, bench data; the sum of a block is a small part of its time, so
    the cause is likely in how LLVM inlines and schedules the block loop).
    """
    total = 0.0
    if has_mask:
        for j in range(size):
            total += buffer[j] if m[j] != 0 else 0.0
    else:
        for j in range(size):
            total += buffer[j]
    return total


@jit(MATH)
def _bce_buffer(n):
    """The scratch block of :func:`_bce_piece` for row pieces of ``n`` elements."""
    return np.empty(min(BLOCK, max(n, 1)))


@jit(MATH)
def _bce_piece(kind, pf, pi, qf, qi, wf, wi, has_w, mf, mi, has_mask, length, buffer):
    """Float64 sum of the terms of one row piece (``buffer`` from :func:`_bce_buffer`)."""
    literally(kind)
    total = 0.0
    for start in range(0, length, BLOCK):
        size = min(BLOCK, length - start)
        _bce_fill(kind, pf[pi + start:pi + start + size], qf[qi + start:qi + start + size],
                  wf[wi + start:wi + start + size] if has_w else wf[:0], has_w, buffer)
        total += _masked_sum(buffer, mf[mi + start:mi + start + size] if has_mask else mf[:0],
                             has_mask, size)
    return total


@jit(MATH)
def _bce_whole_rows(kind, pf, p0, ps, qf, q0, qs, wf, w0, ws, has_w, mf, m0, ms, has_mask, n,
                    out, first, stop):
    """``out[i]`` for rows ``first`` to ``stop - 1``, one scratch block (:func:`_bce_piece`)."""
    literally(kind)
    buffer = _bce_buffer(n)
    for i in range(first, stop):
        out[i] = _bce_piece(kind, pf, p0 + i * ps, qf, q0 + i * qs, wf, w0 + i * ws, has_w, mf,
                            m0 + i * ms, has_mask, n, buffer)


@jit(KERNEL)
def binary_cross_entropy(kind, pf, p0, ps, qf, q0, qs, wf, w0, ws, has_w, mf, m0, ms, has_mask,
                         rows, n, out, num_threads):
    """Row sums of the binary cross-entropy terms of ``kind`` into ``out`` (float64)."""
    literally(kind)
    mode, chunks, size = _plan(rows, n, num_threads)
    if mode == 0:
        _bce_whole_rows(kind, pf, p0, ps, qf, q0, qs, wf, w0, ws, has_w, mf, m0, ms, has_mask,
                        n, out, 0, rows)
    elif mode == 1:  # items of whole rows
        per_item = rows_per_item(rows, num_threads)
        for item in prange((rows + per_item - 1) // per_item):
            first = item * per_item
            _bce_whole_rows(kind, pf, p0, ps, qf, q0, qs, wf, w0, ws, has_w, mf, m0, ms,
                            has_mask, n, out, first, min(rows, first + per_item))
    else:
        pieces = np.empty(rows * chunks)
        for item in prange(rows * chunks):
            i = item // chunks
            lo = (item % chunks) * size
            pieces[item] = _bce_piece(kind, pf, p0 + i * ps + lo, qf, q0 + i * qs + lo, wf,
                                      w0 + i * ws + lo, has_w, mf, m0 + i * ms + lo, has_mask,
                                      min(size, n - lo), _bce_buffer(size))
        for i in range(rows):
            total = 0.0
            for c in range(chunks):
                total += pieces[i * chunks + c]
            out[i] = total


@jit(_ENTRY)
def bce_rows(pf, p0, ps, qf, q0, qs, wf, w0, ws, has_w, mf, m0, ms, has_mask, rows, n, out,
             num_threads):
    """:func:`binary_cross_entropy` of probabilities (``kind`` BCE)."""
    binary_cross_entropy(BCE, borrowed(pf), p0, ps, borrowed(qf), q0, qs, borrowed(wf), w0, ws,
                         has_w, borrowed(mf), m0, ms, has_mask, rows, n, borrowed(out),
                         num_threads)


@jit(_ENTRY)
def bce_logits_rows(pf, p0, ps, qf, q0, qs, wf, w0, ws, has_w, mf, m0, ms, has_mask, rows, n,
                    out, num_threads):
    """:func:`binary_cross_entropy` of logits (``kind`` BCE_LOGITS)."""
    binary_cross_entropy(BCE_LOGITS, borrowed(pf), p0, ps, borrowed(qf), q0, qs, borrowed(wf),
                         w0, ws, has_w, borrowed(mf), m0, ms, has_mask, rows, n, borrowed(out),
                         num_threads)
