# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: initializedcheck=False, embedsignature=False
"""Cython + OpenMP kernels of fastdiv (the kernel contract of fastdiv._backends).

Three layers:

* ``fd_*.h``: C row kernels (vectorisable log, terms, fused loops), compiled
  for baseline x86-64, AVX2+FMA and AVX-512 and picked at first use;
* this module's ``nogil`` drivers: split the work into units (rows, or
  chunks of long rows), run them on one thread or with ``prange``, and
  combine chunk sums per row;
* the ``def`` functions: read the buffers ``fastdiv._prepare`` made (any row
  stride, unit inner stride) and release the GIL.

Work units never depend on the thread count, so results are identical for
any ``num_threads`` on one SIMD path.
"""

import os

from cpython.buffer cimport (
    PyBUF_RECORDS,
    PyBUF_RECORDS_RO,
    PyBuffer_Release,
    PyObject_GetBuffer,
)
from cython.parallel cimport prange
from libc.stdlib cimport calloc, free, malloc

from fastdiv._backends.cython._rows cimport Rows, rows_of


cdef extern from "fd_kernels.h" nogil:
    enum:
        FD_OP_ENTROPY
        FD_OP_CROSS_ENTROPY
        FD_OP_KL
        FD_OP_JS
        FD_MAP_ENTR
        FD_MAP_REL_ENTR
        FD_MAP_LOG
        FD_SCALE_NONE
        FD_SCALE_DIVIDE
        FD_ISA_BASELINE
        FD_ISA_AVX2
        FD_ISA_AVX512
        FD_ISA_COUNT
        FD_BLOCK
        FD_SHORT_N

    ctypedef void (*fd_reduce_fn)(const void *p, const void *q, const unsigned char *w,
                                  Py_ssize_t n, int mode, double sp, double sq,
                                  double *acc) noexcept nogil
    ctypedef void (*fd_sums_fn)(const void *p, const void *q, const unsigned char *w,
                                Py_ssize_t n, double *acc) noexcept nogil
    ctypedef void (*fd_map_fn)(const void *p, const void *q, void *out,
                               Py_ssize_t n) noexcept nogil

    ctypedef void (*fd_short_fn)(const char *p, Py_ssize_t ps, const char *q, Py_ssize_t qs,
                                 const unsigned char *w, Py_ssize_t ws, Py_ssize_t rows,
                                 Py_ssize_t n, double *out) noexcept nogil

    ctypedef double (*fd_stream_fn)(const void *p, Py_ssize_t n) noexcept nogil

    ctypedef struct fd_kernel_set:
        fd_reduce_fn reduce[4]
        fd_sums_fn sums
        fd_map_fn map[3]
        fd_short_fn short_rows[4]
        fd_stream_fn stream_sum

    ctypedef struct fd_isa_table:
        const char *name
        const fd_kernel_set *f64
        const fd_kernel_set *f32
        const fd_kernel_set *f32_wide

    const fd_isa_table *fd_table(int isa)
    int fd_cpu_supports(int isa)
    int fd_openmp_enabled()
    int fd_omp_max_threads()
    void fd_neumaier_add(double *s, double *c, double x)
    double fd_row_result(int op, double total, double compensation)


cdef enum:
    # Below this many elements in all, one thread does everything: waking a
    # team costs more than the work.
    SERIAL_ELEMENTS = 32768
    # Rows shorter than 2 * CHUNK elements, and batches of SPLIT_ROWS_BELOW
    # rows or more, are never split into chunks.
    CHUNK = 65536
    SPLIT_ROWS_BELOW = 16
    # Rows of at most FD_SHORT_N elements go to the short-row kernels in units
    # of this many rows.
    SHORT_UNIT_ROWS = 2048
    # Float32 results of up to this many rows are summed into a stack buffer.
    SMALL_RESULTS = 64


_ISA_NAMES = ("baseline", "avx2", "avx512")
_ENV_SIMD = "FASTDIV_SIMD"

cdef const fd_isa_table *_table = NULL


# ------------------------------------------------------------------ SIMD path

def _simd_paths():
    """Names of the SIMD paths this build has and this CPU can run, best last."""
    return [name for isa, name in enumerate(_ISA_NAMES) if fd_cpu_supports(isa)]


def _set_simd(name=None):
    """Choose the SIMD path: a name from ``_simd_paths()``, or None for
    ``$FASTDIV_SIMD`` if set, else the best this CPU runs. Private: for tests
    and benchmarks. Returns the chosen name."""
    global _table
    if name is None:
        name = os.environ.get(_ENV_SIMD, "").strip().lower() or None
    if name is None:
        isa = max(i for i in range(FD_ISA_COUNT) if fd_cpu_supports(i))
    else:
        if name not in _ISA_NAMES:
            raise ValueError(
                f"unknown SIMD path {name!r} (from {_ENV_SIMD}?); "
                f"choose one of {', '.join(_ISA_NAMES)}"
            )
        isa = _ISA_NAMES.index(name)
        if not fd_cpu_supports(isa):
            raise RuntimeError(
                f"SIMD path {name!r} is not supported by this CPU or build; "
                f"supported: {', '.join(_simd_paths())}"
            )
    _table = fd_table(isa)
    return _ISA_NAMES[isa]


cdef inline const fd_isa_table *_current_table() except NULL:
    if _table == NULL:
        _set_simd(None)
    return _table


def info():
    """Backend details for ``fastdiv.show_config``.

    Returns
    -------
    dict
        ``simd`` (the path the kernels run), ``simd paths`` (all this CPU
        supports), ``openmp`` (whether the build has OpenMP) and
        ``max threads`` (OpenMP's default team size).

    Examples
    --------
    >>> from fastdiv._backends.cython import info
    >>> info()["simd"] in ("baseline", "avx2", "avx512")
    True
    """
    table = _current_table()
    return {
        "simd": table.name.decode(),
        "simd paths": _simd_paths(),
        "openmp": bool(fd_openmp_enabled()),
        "max threads": fd_omp_max_threads(),
    }


# ------------------------------------------------------------------- buffers

cdef const fd_kernel_set *_kernels_for(Py_buffer *view, bint wide) except NULL:
    cdef const fd_isa_table *table = _current_table()
    cdef bytes fmt = view.format if view.format != NULL else b"B"
    if view.itemsize == 8 and fmt.endswith(b"d"):
        return table.f64
    if view.itemsize == 4 and fmt.endswith(b"f"):
        return table.f32_wide if wide else table.f32
    raise TypeError(f"kernels take float32 or float64, got buffer format {fmt!r}")


# ---------------------------------------------------------------- reductions

cdef struct ReduceJob:
    fd_reduce_fn reduce
    fd_sums_fn sums
    int op
    bint normalize
    Rows p
    Rows q                    # q.data is NULL for entropy
    Rows w                    # w.data is NULL without a mask
    Py_ssize_t chunks         # chunks per row (1: whole rows)
    double *out               # one value per row
    double *partial           # 4 doubles per unit when chunks > 1
    int *mode                 # per row, when chunks > 1 and normalize
    double *scale             # 2 per row, likewise


cdef inline void _scales(const double *sums, bint has_q, int *mode,
                         double *sp, double *sq) noexcept nogil:
    """Normalize divides each row by its (masked) sums."""
    mode[0] = FD_SCALE_DIVIDE
    sp[0] = fd_row_result(FD_OP_KL, sums[0], sums[1])
    sq[0] = fd_row_result(FD_OP_KL, sums[2], sums[3]) if has_q else 1.0


cdef inline void _unit_bounds(const ReduceJob *job, Py_ssize_t unit, Py_ssize_t *row,
                              Py_ssize_t *lo, Py_ssize_t *length) noexcept nogil:
    cdef Py_ssize_t n = job.p.n
    cdef Py_ssize_t chunk = (n + job.chunks - 1) // job.chunks
    chunk = ((chunk + FD_BLOCK - 1) // FD_BLOCK) * FD_BLOCK
    row[0] = unit // job.chunks
    lo[0] = (unit % job.chunks) * chunk
    if lo[0] > n:
        lo[0] = n
    length[0] = n - lo[0] if n - lo[0] < chunk else chunk


cdef inline const char *_at(const Rows *r, Py_ssize_t row, Py_ssize_t lo) noexcept nogil:
    if r.data == NULL:
        return NULL
    return r.data + row * r.row_stride + lo * r.itemsize


cdef void _reduce_unit(const ReduceJob *job, Py_ssize_t unit, int phase) noexcept nogil:
    """phase 0: the whole job of one unit; with chunks, phase 1 sums a chunk
    (normalize) and phase 2 adds up its terms."""
    cdef Py_ssize_t row, lo, length
    cdef double acc[4]
    cdef int mode = FD_SCALE_NONE
    cdef double sp = 1.0, sq = 1.0
    _unit_bounds(job, unit, &row, &lo, &length)
    cdef const void *p = _at(&job.p, row, lo)
    cdef const void *q = _at(&job.q, row, lo)
    cdef const unsigned char *w = <const unsigned char *>_at(&job.w, row, lo)
    acc[0] = acc[1] = acc[2] = acc[3] = 0.0
    if phase == 1:
        job.sums(p, q, w, length, &job.partial[4 * unit])
        return
    if phase == 0 and job.normalize:
        job.sums(p, q, w, length, acc)
        _scales(acc, q != NULL, &mode, &sp, &sq)
        acc[0] = acc[1] = 0.0
    elif phase == 2 and job.normalize:
        mode = job.mode[row]
        sp = job.scale[2 * row]
        sq = job.scale[2 * row + 1]
    job.reduce(p, q if q != NULL else p, w, length, mode, sp, sq, acc)
    if phase == 0:
        job.out[row] = fd_row_result(job.op, acc[0], acc[1])
    else:
        job.partial[4 * unit] = acc[0]
        job.partial[4 * unit + 1] = acc[1]


cdef void _run_units(const ReduceJob *job, int phase, int threads) noexcept nogil:
    cdef Py_ssize_t unit, units = job.p.rows * job.chunks
    cdef Py_ssize_t step
    if threads <= 1:
        for unit in range(units):
            _reduce_unit(job, unit, phase)
    else:
        step = units // (8 * threads)
        if step < 1:
            step = 1
        for unit in prange(units, num_threads=threads, schedule="dynamic", chunksize=step):
            _reduce_unit(job, unit, phase)


cdef void _combine(const double *partial, Py_ssize_t chunks, double *total) noexcept nogil:
    """Neumaier sum of the chunk results of one row: total[0:2] (and [2:4])."""
    cdef Py_ssize_t j
    for j in range(chunks):
        fd_neumaier_add(&total[0], &total[1], partial[4 * j])
        total[1] += partial[4 * j + 1]
        fd_neumaier_add(&total[2], &total[3], partial[4 * j + 2])
        total[3] += partial[4 * j + 3]


cdef void _short_unit(const ReduceJob *job, fd_short_fn fn, Py_ssize_t unit) noexcept nogil:
    cdef Py_ssize_t first = unit * SHORT_UNIT_ROWS
    cdef Py_ssize_t count = job.p.rows - first
    if count > SHORT_UNIT_ROWS:
        count = SHORT_UNIT_ROWS
    fn(_at(&job.p, first, 0), job.p.row_stride, _at(&job.q, first, 0), job.q.row_stride,
       <const unsigned char *>_at(&job.w, first, 0), job.w.row_stride, count, job.p.n,
       job.out + first)


cdef void _run_short_rows(const ReduceJob *job, fd_short_fn fn, int num_threads) noexcept nogil:
    cdef Py_ssize_t unit, units = (job.p.rows + SHORT_UNIT_ROWS - 1) // SHORT_UNIT_ROWS
    cdef int threads = _threads_for(units, job.p.rows * job.p.n, num_threads)
    if threads <= 1:
        for unit in range(units):
            _short_unit(job, fn, unit)
    else:
        for unit in prange(units, num_threads=threads, schedule="static"):
            _short_unit(job, fn, unit)


cdef void _run_reduction(ReduceJob *job, int threads) noexcept nogil:
    cdef Py_ssize_t row, rows = job.p.rows
    cdef double total[4]
    if job.chunks == 1:
        _run_units(job, 0, threads)
        return
    if job.normalize:
        _run_units(job, 1, threads)
        for row in range(rows):
            total[0] = total[1] = total[2] = total[3] = 0.0
            _combine(&job.partial[4 * job.chunks * row], job.chunks, total)
            _scales(total, job.q.data != NULL, &job.mode[row],
                    &job.scale[2 * row], &job.scale[2 * row + 1])
    _run_units(job, 2, threads)
    for row in range(rows):
        total[0] = total[1] = total[2] = total[3] = 0.0
        _combine(&job.partial[4 * job.chunks * row], job.chunks, total)
        job.out[row] = fd_row_result(job.op, total[0], total[1])


cdef Py_ssize_t _chunks_per_row(Py_ssize_t rows, Py_ssize_t n) noexcept nogil:
    if rows >= SPLIT_ROWS_BELOW or n < 2 * CHUNK:
        return 1
    return (n + CHUNK - 1) // CHUNK


cdef int _threads_for(Py_ssize_t units, Py_ssize_t elements, int num_threads) noexcept nogil:
    if not fd_openmp_enabled() or elements < SERIAL_ELEMENTS or units < 2:
        return 1
    return <int>units if units < num_threads else num_threads


cdef void _narrow(const double *results, float *out32, Py_ssize_t rows) noexcept nogil:
    """Rounds the rows' results into a float32 ``out`` (if any): beyond float32's
    range gives inf, without NumPy's overflow warning."""
    cdef Py_ssize_t row
    if out32 != NULL:
        for row in range(rows):
            out32[row] = <float>results[row]


cdef object _reduce(int op, object p, object q, object where, bint normalize, object out,
                    int num_threads):
    cdef Py_buffer pv, qv, wv, ov
    cdef ReduceJob job
    cdef const fd_kernel_set *kernels
    cdef Rows out_rows
    cdef int threads
    cdef Py_ssize_t units
    cdef bint have_q = q is not None, have_w = where is not None
    cdef double small_results[SMALL_RESULTS]
    cdef float *out32 = NULL  # a float32 out (FLOAT32_RESULTS): rows summed into job.out first
    job.op = op
    job.out = NULL
    job.normalize = normalize
    job.partial = NULL
    job.mode = NULL
    job.scale = NULL
    job.q.data = NULL
    job.q.row_stride = 0
    job.w.data = NULL
    job.w.row_stride = 0
    rows_of(p, &pv, &job.p, False)
    try:
        kernels = _kernels_for(&pv, normalize)
        if have_q:
            rows_of(q, &qv, &job.q, False)
        try:
            if have_w:
                rows_of(where, &wv, &job.w, False)
            try:
                rows_of(out, &ov, &out_rows, True)
                try:
                    if (ov.itemsize != 8 and not (ov.itemsize == 4 and job.p.itemsize == 4)) or (
                        out_rows.rows != job.p.rows
                    ) or (job.p.rows > 1 and out_rows.row_stride != ov.itemsize):
                        raise ValueError("out must be a contiguous float64 array (or float32 "
                                         "for float32 operands), one value per row")
                    if ov.itemsize == 8:
                        job.out = <double *>ov.buf
                    else:
                        out32 = <float *>ov.buf
                        job.out = small_results
                        if job.p.rows > SMALL_RESULTS:
                            job.out = <double *>malloc(job.p.rows * sizeof(double))
                            if job.out == NULL:
                                raise MemoryError()
                    if 0 < job.p.n <= FD_SHORT_N and not normalize:
                        with nogil:
                            _run_short_rows(&job, kernels.short_rows[op], num_threads)
                            _narrow(job.out, out32, job.p.rows)
                        return None
                    job.reduce = kernels.reduce[op]
                    job.sums = kernels.sums
                    job.chunks = _chunks_per_row(job.p.rows, job.p.n)
                    units = job.p.rows * job.chunks
                    threads = _threads_for(units, job.p.rows * job.p.n, num_threads)
                    if job.chunks > 1:
                        job.partial = <double *>calloc(4 * units, sizeof(double))
                        job.mode = <int *>malloc(job.p.rows * sizeof(int))
                        job.scale = <double *>malloc(2 * job.p.rows * sizeof(double))
                        if job.partial == NULL or job.mode == NULL or job.scale == NULL:
                            raise MemoryError()
                    with nogil:
                        _run_reduction(&job, threads)
                        _narrow(job.out, out32, job.p.rows)
                finally:
                    free(job.partial)
                    free(job.mode)
                    free(job.scale)
                    if out32 != NULL and job.out != small_results:
                        free(job.out)
                    PyBuffer_Release(&ov)
            finally:
                if have_w:
                    PyBuffer_Release(&wv)
        finally:
            if have_q:
                PyBuffer_Release(&qv)
    finally:
        PyBuffer_Release(&pv)


def entropy(p, where, normalize, out, num_threads):
    """Shannon entropy of each row of ``p`` (nats) into ``out``; see the contract
    in ``fastdiv._backends``."""
    _reduce(FD_OP_ENTROPY, p, None, where, normalize, out, num_threads)


def cross_entropy(p, q, where, normalize, out, num_threads):
    """Cross-entropy ``-sum(xlogy(p, q))`` of each row into ``out``."""
    _reduce(FD_OP_CROSS_ENTROPY, p, q, where, normalize, out, num_threads)


def kl_divergence(p, q, where, normalize, out, num_threads):
    """KL divergence ``sum(rel_entr(p, q))`` of each row into ``out``."""
    _reduce(FD_OP_KL, p, q, where, normalize, out, num_threads)


def js_divergence(p, q, where, normalize, out, num_threads):
    """Jensen-Shannon divergence of each row into ``out`` (clipped below at 0)."""
    _reduce(FD_OP_JS, p, q, where, normalize, out, num_threads)


# --------------------------------------------------------------- elementwise

cdef struct MapJob:
    fd_map_fn fn
    Rows p
    Rows q
    char *out
    Py_ssize_t chunks


cdef void _map_unit(const MapJob *job, Py_ssize_t unit) noexcept nogil:
    cdef Py_ssize_t n = job.p.n
    cdef Py_ssize_t chunk = (n + job.chunks - 1) // job.chunks
    cdef Py_ssize_t row = unit // job.chunks
    cdef Py_ssize_t lo = (unit % job.chunks) * chunk
    if lo >= n:
        return
    cdef Py_ssize_t length = n - lo if n - lo < chunk else chunk
    job.fn(_at(&job.p, row, lo), _at(&job.q, row, lo),
           job.out + (row * n + lo) * job.p.itemsize, length)


cdef void _run_map(const MapJob *job, int threads) noexcept nogil:
    cdef Py_ssize_t unit, units = job.p.rows * job.chunks
    if threads <= 1:
        for unit in range(units):
            _map_unit(job, unit)
    else:
        for unit in prange(units, num_threads=threads, schedule="static"):
            _map_unit(job, unit)


cdef object _map(int which, object p, object q, object out, int num_threads, bint wide=True):
    cdef Py_buffer pv, qv, ov
    cdef MapJob job
    cdef Rows out_rows
    cdef const fd_kernel_set *kernels
    cdef int threads
    cdef bint have_q = q is not None
    job.q.data = NULL
    rows_of(p, &pv, &job.p, False)
    try:
        kernels = _kernels_for(&pv, wide)
        job.fn = kernels.map[which]
        if have_q:
            rows_of(q, &qv, &job.q, False)
        try:
            rows_of(out, &ov, &out_rows, True)
            try:
                if (ov.itemsize != job.p.itemsize or out_rows.rows != job.p.rows
                        or out_rows.n != job.p.n
                        or (job.p.rows > 1 and job.p.n > 0
                            and out_rows.row_stride != job.p.n * ov.itemsize)):
                    raise ValueError("out must be C-contiguous with the shape and dtype of p")
                job.out = <char *>ov.buf
                job.chunks = _chunks_per_row(job.p.rows, job.p.n)
                threads = _threads_for(job.p.rows * job.chunks, job.p.rows * job.p.n,
                                       num_threads)
                with nogil:
                    _run_map(&job, threads)
            finally:
                PyBuffer_Release(&ov)
        finally:
            if have_q:
                PyBuffer_Release(&qv)
    finally:
        PyBuffer_Release(&pv)


def rel_entr(p, q, out, num_threads):
    """``scipy.special.rel_entr(p, q)`` into ``out`` (may be ``p`` or ``q``)."""
    _map(FD_MAP_REL_ENTR, p, q, out, num_threads)


def entr(p, out, num_threads):
    """``scipy.special.entr(p)`` into ``out`` (may be ``p``)."""
    _map(FD_MAP_ENTR, p, None, out, num_threads)


def _log(x, out, bint wide=False):
    """The kernels' vector log of a 2-D float array into ``out`` (for tests)."""
    _map(FD_MAP_LOG, x, None, out, 1, wide)


# ---------------------------------------------------------- the bench floor

cdef void _stream_pieces(const Py_buffer *views, const fd_kernel_set **kernels,
                         Py_ssize_t count, Py_ssize_t piece, Py_ssize_t pieces,
                         double *sums) noexcept nogil:
    """Sums piece ``piece`` of ``pieces`` (contiguous, near-equal) of every array."""
    cdef Py_ssize_t j, n, lo, hi
    for j in range(count):
        n = views[j].shape[0]
        lo = n * piece // pieces
        hi = n * (piece + 1) // pieces
        sums[piece * count + j] = kernels[j].stream_sum(
            <const char *>views[j].buf + lo * views[j].itemsize, hi - lo)


def stream_sum(arrays, int num_threads):
    """The sum of every element of ``arrays``, read once with plain SIMD adds.

    What ``bench`` times as the read-bandwidth floor: no kernel that reads
    these arrays can be much faster. Each array is cut into ``num_threads``
    contiguous pieces, one per OpenMP thread (so one long array keeps every
    thread busy too).

    Parameters
    ----------
    arrays : sequence of ndarray
        Contiguous 1-D float32 or float64 arrays.
    num_threads : int
        Threads (pieces per array); 1 sums on the calling thread.

    Returns
    -------
    float
        The sum, accumulated in float64 (not compensated).

    Examples
    --------
    >>> import numpy as np
    >>> from fastdiv._backends.cython import stream_sum
    >>> stream_sum([np.ones(1000), np.full(10, 0.5, dtype=np.float32)], 2)
    1005.0
    """
    cdef Py_ssize_t count = len(arrays), acquired = 0, j, piece
    cdef double total = 0.0
    cdef int pieces = num_threads if num_threads > 1 and fd_openmp_enabled() else 1
    cdef Py_buffer *views = <Py_buffer *>calloc(count if count else 1, sizeof(Py_buffer))
    cdef const fd_kernel_set **kernels = <const fd_kernel_set **>calloc(
        count if count else 1, sizeof(fd_kernel_set *))
    cdef double *sums = <double *>calloc(pieces * count if count else 1, sizeof(double))
    try:
        if views == NULL or kernels == NULL or sums == NULL:
            raise MemoryError()
        for j in range(count):
            PyObject_GetBuffer(arrays[j], &views[j], PyBUF_RECORDS_RO)
            acquired += 1
            kernels[j] = _kernels_for(&views[j], False)
            if views[j].ndim != 1 or (views[j].shape[0] > 1
                                      and views[j].strides[0] != views[j].itemsize):
                raise ValueError("stream_sum takes contiguous 1-D arrays")
        with nogil:
            if pieces == 1:
                _stream_pieces(views, kernels, count, 0, 1, sums)
            else:
                for piece in prange(pieces, num_threads=pieces, schedule="static"):
                    _stream_pieces(views, kernels, count, piece, pieces, sums)
        for j in range(pieces * count):
            total += sums[j]
        return total
    finally:
        for j in range(acquired):
            PyBuffer_Release(&views[j])
        free(views)
        free(kernels)
        free(sums)


def narrow_to_float32(values, out):
    """``out[:] = values`` rounded from float64 to float32 (contiguous 1-D arrays of
    one length); beyond float32's range gives ``inf``, without NumPy's overflow
    warning, and about a microsecond cheaper than ``astype`` under ``np.errstate``.

    Examples
    --------
    >>> import numpy as np
    >>> from fastdiv._backends.cython import narrow_to_float32
    >>> out = np.empty(2, dtype=np.float32)
    >>> narrow_to_float32(np.array([0.5, 1e300]), out)
    >>> out
    array([0.5, inf], dtype=float32)
    """
    cdef Py_buffer vv, ov
    PyObject_GetBuffer(values, &vv, PyBUF_RECORDS_RO)
    try:
        PyObject_GetBuffer(out, &ov, PyBUF_RECORDS)
        try:
            if (vv.ndim != 1 or ov.ndim != 1 or vv.itemsize != 8 or ov.itemsize != 4
                    or vv.shape[0] != ov.shape[0]
                    or (vv.shape[0] > 1 and (vv.strides[0] != 8 or ov.strides[0] != 4))):
                raise ValueError("narrow_to_float32 takes contiguous 1-D float64 and float32 "
                                 "arrays of one length")
            _narrow(<const double *>vv.buf, <float *>ov.buf, vv.shape[0])
        finally:
            PyBuffer_Release(&ov)
    finally:
        PyBuffer_Release(&vv)
