# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: initializedcheck=False, embedsignature=False
"""Cython + OpenMP logit-space kernels of fastdiv (the "Logit space" part of
the kernel contract in fastdiv._backends).

Three layers, as in ``_kernels``:

* ``fd_logits.h``: C row kernels (vector exp, fused max / sum-of-exp /
  gradient loops), compiled for baseline x86-64, AVX2+FMA and AVX-512 and
  picked at first use (``$FASTDIV_SIMD`` forces one);
* this module's ``nogil`` driver: one work unit per row, run on one thread
  for small inputs or with ``prange`` over rows, each thread with its own
  scratch row for the stored exponentials;
* the ``def`` functions: read the buffers ``fastdiv._prepare`` made (any row
  stride, including 0, unit inner stride) and release the GIL.

Each row is computed by one thread in a fixed order, so results do not
depend on the thread count.
"""

import os

from cpython.buffer cimport PyBuffer_Release
from cython.parallel cimport prange, threadid
from libc.stdlib cimport free, malloc

from fastdiv._backends.cython._rows cimport Rows, rows_of

from fastdiv._backends.cython._kernels import _simd_paths


cdef extern from "fd_logits.h" nogil:
    enum:
        FD_ISA_COUNT
        FDL_BLOCK

    ctypedef struct fdl_kernel_set:
        void (*logsumexp)(const void *a, const void *b, const unsigned char *w, Py_ssize_t n,
                          int want_sign, double *out, double *sign) noexcept nogil
        void (*lse_stats)(const void *a, const void *b, const unsigned char *w, Py_ssize_t n,
                          double *stats) noexcept nogil
        void (*lse_from_stats)(const void *a, const void *b, const unsigned char *w,
                               Py_ssize_t n, const double *stats, int want_sign, double *out,
                               double *sign) noexcept nogil
        void (*log_softmax)(const void *z, void *out, Py_ssize_t n) noexcept nogil
        void (*softmax)(const void *z, void *out, Py_ssize_t n, double *ebuf) noexcept nogil
        void (*softmax_cross_entropy)(const void *z, Py_ssize_t target, double eps,
                                      const unsigned char *w, Py_ssize_t n, double *loss,
                                      void *grad, double *ebuf) noexcept nogil
        void (*softmax_cross_entropy_probs)(const void *z, const void *p, double eps,
                                            const unsigned char *w, Py_ssize_t n,
                                            double *loss, void *grad,
                                            double *ebuf) noexcept nogil
        void (*kl_divergence_logits)(const void *a, const void *b, double temp,
                                     const unsigned char *w, Py_ssize_t n, double *loss,
                                     void *grad, double *ebuf) noexcept nogil
        void (*binary_cross_entropy)(const void *p, const void *q, const unsigned char *w,
                                     Py_ssize_t n, double *out) noexcept nogil
        void (*binary_cross_entropy_with_logits)(const void *z, const void *t,
                                                 const void *pw, const unsigned char *w,
                                                 Py_ssize_t n, double *out) noexcept nogil
        void (*exp_map)(const void *x, void *out, Py_ssize_t n) noexcept nogil

    const fdl_kernel_set *fdl_table(int isa, int is_float)
    void fdl_lse_merge(const double *stats, Py_ssize_t pieces, double *merged)
    int fd_openmp_enabled()


cdef enum:
    # Below this many elements in all, one thread does everything: waking a
    # team costs more than the work.
    SERIAL_ELEMENTS = 32768
    # logsumexp of fewer than SPLIT_ROWS_BELOW rows of at least 2 * PIECE
    # elements runs in pieces of PIECE elements (a multiple of FDL_BLOCK), so
    # that one long row keeps every thread busy too.
    PIECE = 65536
    SPLIT_ROWS_BELOW = 16


cdef enum Kind:
    LOGSUMEXP
    LOG_SOFTMAX
    SOFTMAX
    SCE
    SCE_PROBS
    KL
    BCE
    BCE_LOGITS


_ISA_NAMES = ("baseline", "avx2", "avx512")
_ENV_SIMD = "FASTDIV_SIMD"

cdef int _isa = -1


# ------------------------------------------------------------------ SIMD path

def _set_simd(name=None):
    """Choose the SIMD path of the logit kernels: a name from
    ``_kernels._simd_paths()``, or None for ``$FASTDIV_SIMD`` if set, else the
    best this CPU runs. Private: for tests and benchmarks. Returns the name."""
    global _isa
    paths = _simd_paths()
    if name is None:
        name = os.environ.get(_ENV_SIMD, "").strip().lower() or None
    if name is None:
        name = paths[len(paths) - 1]
    elif name not in _ISA_NAMES:
        raise ValueError(
            f"unknown SIMD path {name!r} (from {_ENV_SIMD}?); "
            f"choose one of {', '.join(_ISA_NAMES)}"
        )
    elif name not in paths:
        raise RuntimeError(
            f"SIMD path {name!r} is not supported by this CPU or build; "
            f"supported: {', '.join(paths)}"
        )
    _isa = _ISA_NAMES.index(name)
    return name


def _simd():
    """The SIMD path the logit kernels run (chosen on first use)."""
    if _isa < 0:
        _set_simd(None)
    return _ISA_NAMES[_isa]


# ------------------------------------------------------------------- buffers

cdef class _Views:
    """The buffers of one kernel call, released together."""
    cdef Py_buffer views[8]
    cdef int count

    def __dealloc__(self):
        cdef int i
        for i in range(self.count):
            PyBuffer_Release(&self.views[i])

    cdef Rows rows(self, object array, bint writable=False) except *:
        """A 2-D array (unit inner stride, any row stride) or a 1-D one (one
        element per row), without copying; ``None`` gives an absent operand."""
        cdef Rows r
        r.data = NULL
        r.rows = r.n = r.row_stride = r.itemsize = 0
        if array is None:
            return r
        rows_of(array, &self.views[self.count], &r, writable)
        self.count += 1
        return r


cdef const fdl_kernel_set *_kernels_for(object array) except NULL:
    cdef str kind = array.dtype.str[1:]
    if kind not in ("f8", "f4"):
        raise TypeError(f"logit kernels take float32 or float64, got {array.dtype}")
    if _isa < 0:
        _set_simd(None)
    return fdl_table(_isa, kind == "f4")


cdef inline const char *_row(const Rows *r, Py_ssize_t row) noexcept nogil:
    if r.data == NULL:
        return NULL
    return r.data + row * r.row_stride


# ------------------------------------------------------------------- driver

cdef struct Job:
    const fdl_kernel_set *k
    Kind kind
    Rows x                    # logits, a, p or z
    Rows y                    # b, p, q or t (data NULL when absent)
    Rows pw                   # pos_weight
    Rows w                    # where (uint8)
    Py_ssize_t n
    const Py_ssize_t *target  # class indices
    double param              # label smoothing, 1 / temperature
    int want_sign
    double *out               # one value per row (loss)
    double *sign
    char *rows_out            # C-contiguous (rows, n): softmax output or gradient
    Py_ssize_t out_row_bytes
    bint ebuf_is_out          # double data: the output row holds the exps
    double *scratch           # per thread, `scratch_len` doubles each
    Py_ssize_t scratch_len


cdef void _row_unit(const Job *job, Py_ssize_t row, int thread) noexcept nogil:
    cdef const void *x = _row(&job.x, row)
    cdef const void *y = _row(&job.y, row)
    cdef const unsigned char *w = <const unsigned char *>_row(&job.w, row)
    cdef void *rout = NULL
    cdef double *ebuf = NULL
    if job.rows_out != NULL:
        rout = job.rows_out + row * job.out_row_bytes
        ebuf = <double *>rout if job.ebuf_is_out else job.scratch + thread * job.scratch_len
    if job.kind == LOGSUMEXP:
        job.k.logsumexp(x, y, w, job.n, job.want_sign, &job.out[row],
                        &job.sign[row] if job.want_sign else NULL)
    elif job.kind == LOG_SOFTMAX:
        job.k.log_softmax(x, rout, job.n)
    elif job.kind == SOFTMAX:
        job.k.softmax(x, rout, job.n, ebuf)
    elif job.kind == SCE:
        job.k.softmax_cross_entropy(x, job.target[row], job.param, w, job.n, &job.out[row],
                                    rout, ebuf)
    elif job.kind == SCE_PROBS:
        job.k.softmax_cross_entropy_probs(x, y, job.param, w, job.n, &job.out[row], rout, ebuf)
    elif job.kind == KL:
        job.k.kl_divergence_logits(x, y, job.param, w, job.n, &job.out[row], rout, ebuf)
    elif job.kind == BCE:
        job.k.binary_cross_entropy(x, y, w, job.n, &job.out[row])
    else:
        job.k.binary_cross_entropy_with_logits(x, y, _row(&job.pw, row), w, job.n,
                                               &job.out[row])


cdef void _run(const Job *job, Py_ssize_t rows, int threads) noexcept nogil:
    cdef Py_ssize_t row, step
    if threads <= 1:
        for row in range(rows):
            _row_unit(job, row, 0)
    else:
        step = rows // (8 * threads)
        if step < 1:
            step = 1
        for row in prange(rows, num_threads=threads, schedule="dynamic", chunksize=step):
            _row_unit(job, row, threadid())


cdef void _lse_pieces(const Job *job, Py_ssize_t rows, Py_ssize_t pieces, double *stats,
                      int threads) noexcept nogil:
    """logsumexp row by row from the stats of its pieces, computed in parallel."""
    cdef Py_ssize_t unit, row, lo, length
    cdef double merged[3]
    if threads <= 1:
        for unit in range(rows * pieces):
            _lse_piece(job, unit, pieces, stats)
    else:
        for unit in prange(rows * pieces, num_threads=threads, schedule="dynamic"):
            _lse_piece(job, unit, pieces, stats)
    for row in range(rows):
        fdl_lse_merge(&stats[3 * row * pieces], pieces, merged)
        job.k.lse_from_stats(_row(&job.x, row), _row(&job.y, row),
                             <const unsigned char *>_row(&job.w, row), job.n, merged,
                             job.want_sign, &job.out[row],
                             &job.sign[row] if job.want_sign else NULL)


cdef void _lse_piece(const Job *job, Py_ssize_t unit, Py_ssize_t pieces,
                     double *stats) noexcept nogil:
    cdef Py_ssize_t row = unit // pieces
    cdef Py_ssize_t lo = (unit % pieces) * PIECE
    cdef Py_ssize_t length = job.n - lo if job.n - lo < PIECE else PIECE
    cdef const char *x = _row(&job.x, row) + lo * job.x.itemsize
    cdef const char *y = NULL
    cdef const unsigned char *w = NULL
    if job.y.data != NULL:
        y = _row(&job.y, row) + lo * job.y.itemsize
    if job.w.data != NULL:
        w = <const unsigned char *>_row(&job.w, row) + lo
    job.k.lse_stats(x, y, w, length, &stats[3 * unit])


cdef int _threads_for(Py_ssize_t rows, Py_ssize_t elements, int num_threads) noexcept nogil:
    if not fd_openmp_enabled() or elements < SERIAL_ELEMENTS or rows < 2:
        return 1
    return <int>rows if rows < num_threads else num_threads


cdef double *_check_out(_Views views, object out, Py_ssize_t rows) except? NULL:
    """The data of a C-contiguous float64 (rows,) array."""
    cdef Rows r = views.rows(out, True)
    if r.itemsize != 8 or r.rows != rows or (rows > 1 and r.row_stride != 8):
        raise ValueError("out must be a contiguous float64 array, one value per row")
    return <double *>r.data


cdef int _call(Kind kind, object x, object y, object pw, object where, object out,
               object sign_out, object rows_out, object target, double param,
               int num_threads) except -1:
    cdef _Views views = _Views()
    cdef Job job
    cdef Rows ro
    cdef Py_ssize_t rows, scratch_per_thread = 0
    cdef int threads
    job.kind = kind
    job.k = _kernels_for(x)
    job.x = views.rows(x)
    job.y = views.rows(y)
    job.pw = views.rows(pw)
    job.w = views.rows(where)
    rows = job.x.rows
    job.n = job.x.n
    job.param = param
    job.out = NULL
    job.sign = NULL
    job.want_sign = 0
    job.target = NULL
    job.rows_out = NULL
    job.out_row_bytes = 0
    job.ebuf_is_out = False
    job.scratch = NULL
    job.scratch_len = 0
    if (job.y.data != NULL and job.y.itemsize != job.x.itemsize) or (
            job.pw.data != NULL and job.pw.itemsize != job.x.itemsize):
        raise TypeError("kernel operands must share one dtype")
    if out is not None:
        job.out = _check_out(views, out, rows)
    if sign_out is not None:
        job.sign = _check_out(views, sign_out, rows)
        job.want_sign = 1
    if target is not None:
        ro = views.rows(target)
        if ro.itemsize != sizeof(Py_ssize_t) or ro.rows != rows or (
                rows > 1 and ro.row_stride != sizeof(Py_ssize_t)):
            raise ValueError("target must be a contiguous intp array, one per row")
        job.target = <const Py_ssize_t *>ro.data
    if rows_out is not None:
        ro = views.rows(rows_out, True)
        if ro.itemsize != job.x.itemsize or ro.rows != rows or (rows > 0 and ro.n != job.n) or (
                rows > 1 and job.n > 0 and ro.row_stride != job.n * ro.itemsize):
            raise ValueError("the output rows must be C-contiguous with the logits' shape "
                             "and dtype")
        job.rows_out = <char *>ro.data
        job.out_row_bytes = job.n * ro.itemsize
        if kind == KL:
            scratch_per_thread = 2 * job.n
        elif kind == SCE_PROBS:
            job.ebuf_is_out = ro.itemsize == 8
            if not job.ebuf_is_out:
                scratch_per_thread = job.n
        elif kind == SCE:
            # the running max of each block (fd_logit_rows.h, online_lse); the exps go to
            # the gradient rows themselves
            scratch_per_thread = job.n // FDL_BLOCK + 1
        elif kind != LOG_SOFTMAX:
            # the exps and the running max of each block
            scratch_per_thread = job.n + job.n // FDL_BLOCK + 1
    cdef Py_ssize_t pieces = 1
    cdef double *stats = NULL
    if kind == LOGSUMEXP and rows < SPLIT_ROWS_BELOW and job.n >= 2 * PIECE:
        pieces = (job.n + PIECE - 1) // PIECE
        threads = _threads_for(rows * pieces, rows * job.n, num_threads)
        stats = <double *>malloc(3 * rows * pieces * sizeof(double))
        if stats == NULL:
            raise MemoryError()
        try:
            with nogil:
                _lse_pieces(&job, rows, pieces, stats, threads)
        finally:
            free(stats)
        return 0
    threads = _threads_for(rows, rows * job.n, num_threads)
    if scratch_per_thread:
        job.scratch_len = scratch_per_thread
        job.scratch = <double *>malloc(threads * scratch_per_thread * sizeof(double))
        if job.scratch == NULL:
            raise MemoryError()
    try:
        with nogil:
            _run(&job, rows, threads)
    finally:
        free(job.scratch)
    return 0


# ------------------------------------------------------------------ kernels

def logsumexp(a, b, where, out, sign_out, num_threads):
    """``log|sum(b * exp(a))|`` of each row into ``out`` (its sign into
    ``sign_out``, or NaN for a negative sum when ``sign_out`` is None)."""
    _call(LOGSUMEXP, a, b, None, where, out, sign_out, None, None, 0.0, num_threads)


def log_softmax(z, out, num_threads):
    """SciPy's ``log_softmax`` of each row into ``out`` (may be ``z``)."""
    _call(LOG_SOFTMAX, z, None, None, None, None, None, out, None, 0.0, num_threads)


def softmax(z, out, num_threads):
    """SciPy's ``softmax`` of each row into ``out`` (may be ``z``)."""
    _call(SOFTMAX, z, None, None, None, None, None, out, None, 0.0, num_threads)


def softmax_cross_entropy(z, target, label_smoothing, where, loss_out, grad_out, num_threads):
    """Cross-entropy of ``softmax(z)`` against class indices (-1: ignored row),
    one loss per row, and the gradient into ``grad_out`` unless it is None."""
    _call(SCE, z, None, None, where, loss_out, None, grad_out, target, label_smoothing,
          num_threads)


def softmax_cross_entropy_probs(z, p, label_smoothing, where, loss_out, grad_out, num_threads):
    """Cross-entropy of ``softmax(z)`` against target probabilities ``p``."""
    _call(SCE_PROBS, z, p, None, where, loss_out, None, grad_out, None, label_smoothing,
          num_threads)


def kl_divergence_logits(a, b, temperature, where, loss_out, grad_out, num_threads):
    """``KL(softmax(a / T) || softmax(b / T))`` per row; gradient with respect to ``b``."""
    _call(KL, a, b, None, where, loss_out, None, grad_out, None, temperature,
          num_threads)


def binary_cross_entropy(p, q, where, out, num_threads):
    """``-sum(xlogy(p, q) + xlog1py(1 - p, -q))`` of each row into ``out``."""
    _call(BCE, p, q, None, where, out, None, None, None, 0.0, num_threads)


def binary_cross_entropy_with_logits(z, t, pos_weight, where, out, num_threads):
    """``sum(w t softplus(-z) + (1 - t) softplus(z))`` of each row into ``out``."""
    _call(BCE_LOGITS, z, t, pos_weight, where, out, None, None, None, 0.0, num_threads)


def _exp(x, out):
    """The kernels' vector exp of a 2-D float array into ``out`` (for tests):
    the full-precision one for float64, the float32 kernels' one for float32."""
    cdef _Views views = _Views()
    cdef const fdl_kernel_set *k = _kernels_for(x)
    cdef Rows r = views.rows(x)
    cdef Rows o = views.rows(out, True)
    cdef Py_ssize_t row
    if o.itemsize != r.itemsize or o.rows != r.rows or o.n != r.n:
        raise ValueError("out must have the shape and dtype of x")
    with nogil:
        for row in range(r.rows):
            k.exp_map(_row(&r, row), <void *>_row(&o, row), r.n)
