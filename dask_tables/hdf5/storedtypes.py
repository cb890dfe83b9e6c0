"""Are a dataset's chunks stored exactly as numpy reads them?  Ask PyTables' own HDF5 library.

HDF5 converts a stored type into the memory type PyTables asks for: a 12-bit
integer is sign-extended.  The direct path copies stored bytes as they are,
so it must only read datasets whose stored type *is* a plain numpy type:
full-precision integers and IEEE floats, fixed-size strings padded with
nulls, and compounds, enums and arrays of those.

Fixed-size strings: PyTables writes them null-terminated (``NULLTERM``),
h5py null-padded (``NULLPAD``, numpy's own ``S`` layout).  Both store the
bytes numpy's ``S`` holds, and PyTables reads either as stored (a string
that fills the whole width keeps its last byte: measured, PyTables 3.11);
so does h5py for ``NULLPAD``.  A space-padded string (``SPACEPAD``) stays
off the direct path: PyTables reads its spaces, h5py strips them.

PyTables does not expose a dataset's stored type, so this module calls
``H5Dget_type`` and friends on the very HDF5 library PyTables loaded
(:func:`dask_tables.hdf5.libhdf5.library`: identifiers are only valid in
the library that issued them).  Where that library cannot be found, :func:`stored_as_read` answers
``None`` (unknown) and the caller decides.
"""

from __future__ import annotations

import ctypes
from typing import Any

import tables

from .libhdf5 import library

__all__ = ["stored_as_read"]

_INTEGER, _FLOAT, _STRING, _BITFIELD, _COMPOUND, _ENUM, _ARRAY = 0, 1, 3, 4, 6, 8, 10
# string paddings whose stored bytes are numpy's S (SPACEPAD, 2, is not)
_STR_NULLTERM, _STR_NULLPAD = 0, 1
# (sign, exponent position, exponent size, mantissa position, mantissa size) of IEEE floats by size
_IEEE_FIELDS = {2: (15, 10, 5, 0, 10), 4: (31, 23, 8, 0, 23), 8: (63, 52, 11, 0, 52)}

_DONT_FILTER_PARTIAL_CHUNKS = 0x0002


def _plain(lib: Any, type_id: int) -> bool:
    kind = lib.H5Tget_class(type_id)
    size = lib.H5Tget_size(type_id)
    if kind in (_INTEGER, _BITFIELD):
        return lib.H5Tget_precision(type_id) == 8 * size and lib.H5Tget_offset(type_id) == 0
    if kind == _FLOAT:
        fields = [ctypes.c_size_t() for _ in range(5)]
        if lib.H5Tget_fields(type_id, *[ctypes.byref(f) for f in fields]) < 0:
            return False
        return (
            lib.H5Tget_precision(type_id) == 8 * size
            and lib.H5Tget_offset(type_id) == 0
            and tuple(f.value for f in fields) == _IEEE_FIELDS.get(size)
        )
    if kind == _STRING:
        return lib.H5Tget_strpad(type_id) in (_STR_NULLTERM, _STR_NULLPAD)
    if kind in (_ENUM, _ARRAY):
        return _with(lib, lib.H5Tget_super(type_id), _plain)
    if kind == _COMPOUND:
        count = lib.H5Tget_nmembers(type_id)
        return count > 0 and all(_with(lib, lib.H5Tget_member_type(type_id, i), _plain) for i in range(count))
    return False  # time, opaque, reference, variable-length: never read directly


def _with(lib: Any, type_id: int, check: Any) -> bool:
    if type_id < 0:
        return False
    try:
        return check(lib, type_id)
    finally:
        lib.H5Tclose(type_id)


def _edge_chunks_filtered(lib: Any, dataset_id: int) -> bool:
    plist = lib.H5Dget_create_plist(dataset_id)
    if plist < 0:
        return False
    try:
        options = ctypes.c_uint(0)
        if lib.H5Pget_chunk_opts(plist, ctypes.byref(options)) < 0:
            return False
        return not options.value & _DONT_FILTER_PARTIAL_CHUNKS
    finally:
        lib.H5Pclose(plist)


def stored_as_read(leaf: tables.Leaf) -> bool | None:
    """Whether ``leaf``'s chunks hold exactly the bytes numpy reads (no conversion on read).

    That is: its stored HDF5 type is a plain numpy type, and its partial edge
    chunks went through the filters like the others (HDF5's
    ``DONT_FILTER_PARTIAL_CHUNKS`` option stores them raw, unmarked).
    Returns ``None`` where PyTables' HDF5 library cannot be reached.  Call it
    with the registry lock held (it calls into HDF5).

    Examples
    --------
    >>> import numpy as np, tables
    >>> with tables.open_file("example.h5", "w") as f:
    ...     _ = f.create_carray("/", "x", obj=np.arange(4.0), chunkshape=(2,))
    >>> with tables.open_file("example.h5") as f:
    ...     stored_as_read(f.root.x) in (True, None)
    True
    """
    lib = library()
    if lib is None:  # pragma: no cover - PyTables' wheels export these
        return None
    dataset_id = leaf._v_objectid
    return _with(lib, lib.H5Dget_type(dataset_id), _plain) and _edge_chunks_filtered(lib, dataset_id)
