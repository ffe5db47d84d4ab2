# cython: language_level=3
"""A kernel operand as rows: shared by _kernels.pyx and _logit_kernels.pyx."""

from cpython.buffer cimport (
    PyBUF_RECORDS,
    PyBUF_RECORDS_RO,
    PyBuffer_Release,
    PyObject_GetBuffer,
)


cdef struct Rows:
    const char *data          # NULL for an absent operand
    Py_ssize_t rows
    Py_ssize_t n
    Py_ssize_t row_stride     # bytes; any value, 0 for a broadcast row
    Py_ssize_t itemsize


cdef inline int rows_of(object array, Py_buffer *view, Rows *r, bint writable) except -1:
    """Describe a 2-D array (unit inner stride, any row stride) or a 1-D one (one
    element per row) without copying. On success ``view`` holds the buffer, for the
    caller to release; on an error it is released here."""
    PyObject_GetBuffer(array, view, PyBUF_RECORDS if writable else PyBUF_RECORDS_RO)
    if view.ndim == 2:
        r.rows = view.shape[0]
        r.n = view.shape[1]
        r.row_stride = view.strides[0]
        if r.n > 1 and view.strides[1] != view.itemsize:
            PyBuffer_Release(view)
            raise ValueError("kernel input must have a unit inner stride")
    elif view.ndim == 1:
        r.rows = view.shape[0]
        r.n = 1
        r.row_stride = view.strides[0]
    else:
        PyBuffer_Release(view)
        raise ValueError(f"kernel input must be 1-D or 2-D, got {view.ndim}-D")
    r.data = <const char *>view.buf
    r.itemsize = view.itemsize
    return 0
