"""The stored type of a node: its numpy dtype, and whether it is stored as numpy reads it.

One walker, :func:`walk`, goes over a stored HDF5 datatype once and answers
both questions (:class:`StoredType`):

* **what dtype**: numpy's description of the stored type, bit for bit
  (offsets, item size and byte order of every member as HDF5 records
  them), or ``None`` where numpy cannot describe it (variable-length,
  references, bit fields, integers of fewer bits than bytes, space-padded
  strings...).  :func:`file_dtype` asks it of a node, the record-layout
  checks of :mod:`dask_tables.hdf5.calls` and the attribute reads of
  :mod:`dask_tables.hdf5.foreign` of their types.
* **stored as read?**: whether the stored bytes are the ones numpy reads,
  so that the direct path may copy them as they are (HDF5 converts a
  12-bit integer on read: it is sign-extended).  That holds for
  full-precision integers and bit fields, IEEE floats, fixed-size strings
  padded with nulls, and compounds, enums and arrays of those.
  :func:`stored_as_read` asks it of a node.

Fixed-size strings: PyTables writes them null-terminated (``NULLTERM``),
h5py null-padded (``NULLPAD``, numpy's own ``S`` layout).  Both store the
bytes numpy's ``S`` holds, and PyTables reads either as stored (a string
that fills the whole width keeps its last byte: measured, PyTables 3.11);
so does h5py for ``NULLPAD``.  A space-padded string (``SPACEPAD``) stays
off the direct path: PyTables reads its spaces, h5py strips them.

PyTables does not expose a dataset's stored type, so this module calls
``H5Dget_type`` and friends on the very HDF5 library PyTables loaded
(:func:`dask_tables.hdf5.libhdf5.library`: identifiers are only valid in
the library that issued them).  Where that library cannot be found, both
answers are unknown (``None``) and the caller decides.  Call these with the
file open and the process lock held, like any HDF5 call.

How the rest of a node is stored (shape, chunks, filters, the element as
the direct path decodes it) is :class:`dask_tables.hdf5.storednode.StoredNode`.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass
from typing import Any

import numpy as np

from .libhdf5 import TypeClass, library

__all__ = ["StoredType", "file_dtype", "member_name", "stored_as_read", "walk"]

# HDF5's H5T_order_t, H5T_sign_t and H5T_str_t values used here (H5T_class_t: libhdf5.TypeClass)
_LITTLE, _BIG = 0, 1
_SIGNED = 1
# string paddings whose stored bytes are numpy's S (SPACEPAD, 2, is not)
_STR_NULLTERM, _STR_NULLPAD = 0, 1
# (sign, exponent position, exponent size, mantissa position, mantissa size) of IEEE floats by size
_IEEE_FIELDS = {2: (15, 10, 5, 0, 10), 4: (31, 23, 8, 0, 23), 8: (63, 52, 11, 0, 52)}

_DONT_FILTER_PARTIAL_CHUNKS = 0x0002


@dataclass(frozen=True)
class StoredType:
    """What :func:`walk` found in one stored HDF5 datatype.

    Attributes
    ----------
    dtype : numpy.dtype or None
        The stored type bit for bit, in its byte order; ``None`` where numpy
        cannot describe it.
    as_read : bool
        Whether the stored bytes are the ones numpy reads (HDF5 converts
        nothing).  A bit field is stored as read without a dtype; a float
        of another layout than IEEE's has a dtype of its size but is not
        stored as read.

    Examples
    --------
    >>> StoredType(np.dtype("<i4"), True).as_read
    True
    """

    dtype: np.dtype | None
    as_read: bool


_NEITHER = StoredType(None, False)


def walk(lib: Any, type_id: int) -> StoredType:
    """The dtype of the open HDF5 datatype ``type_id``, and whether it is stored as read, in one walk.

    Parameters
    ----------
    lib : object
        :func:`~dask_tables.hdf5.libhdf5.library`.
    type_id : int
        An open HDF5 datatype (the caller closes it); a negative id (HDF5's
        error) is neither.

    Examples
    --------
    >>> import numpy as np, tables
    >>> with tables.open_file("example.h5", "w") as f:
    ...     x = f.create_array("/", "x", obj=np.zeros(2, ">i2"))
    ...     type_id = library().H5Dget_type(x._v_objectid)
    ...     walk(library(), type_id)
    StoredType(dtype=dtype('>i2'), as_read=True)
    >>> library().H5Tclose(type_id)
    0
    """
    if type_id < 0:
        return _NEITHER
    kind, size = lib.H5Tget_class(type_id), int(lib.H5Tget_size(type_id))
    if kind in (TypeClass.INTEGER, TypeClass.BITFIELD, TypeClass.FLOAT):
        return _number(lib, type_id, kind, size)
    if kind == TypeClass.STRING:
        padded = lib.H5Tget_strpad(type_id) in (_STR_NULLTERM, _STR_NULLPAD)
        plain = padded and lib.H5Tis_variable_str(type_id) == 0
        return StoredType(np.dtype(f"S{size}") if plain else None, plain)
    if kind == TypeClass.ENUM:
        return _walk_closing(lib, lib.H5Tget_super(type_id))
    if kind == TypeClass.ARRAY:
        return _array(lib, type_id)
    if kind == TypeClass.COMPOUND:
        return _compound(lib, type_id, size)
    return _NEITHER  # time, opaque, reference, variable-length: never read directly


def _walk_closing(lib: Any, type_id: int) -> StoredType:
    """:func:`walk` of a datatype the walker opened (a member's, a base type), then closed."""
    if type_id < 0:
        return _NEITHER
    try:
        return walk(lib, type_id)
    finally:
        lib.H5Tclose(type_id)


def _number(lib: Any, type_id: int, kind: int, size: int) -> StoredType:
    """An integer, bit field or float: stored as read where it fills its bytes (and a float is IEEE's)."""
    if lib.H5Tget_precision(type_id) != 8 * size or lib.H5Tget_offset(type_id) != 0:
        return _NEITHER  # 12-bit integers and the like: HDF5 converts them on read
    as_read = True
    if kind == TypeClass.FLOAT:
        fields = [ctypes.c_size_t() for _ in range(5)]
        ieee = lib.H5Tget_fields(type_id, *[ctypes.byref(f) for f in fields]) >= 0
        as_read = ieee and tuple(f.value for f in fields) == _IEEE_FIELDS.get(size)
    order = {_LITTLE: "<", _BIG: ">"}.get(lib.H5Tget_order(type_id))
    if kind == TypeClass.BITFIELD or order is None:
        return StoredType(None, as_read)
    if kind == TypeClass.FLOAT:
        code = {2: "f2", 4: "f4", 8: "f8"}.get(size)
    else:
        code = (
            f"{'i' if lib.H5Tget_sign(type_id) == _SIGNED else 'u'}{size}" if size in (1, 2, 4, 8) else None
        )
    return StoredType(None if code is None else np.dtype(order + code), as_read)


def _array(lib: Any, type_id: int) -> StoredType:
    """An array of a base type: stored as read where its base is; its dtype needs its dimensions."""
    base = _walk_closing(lib, lib.H5Tget_super(type_id))
    ndims = lib.H5Tget_array_ndims(type_id)
    if base.dtype is None or ndims < 1 or ndims > 32:
        return StoredType(None, base.as_read)
    dims = (ctypes.c_uint64 * ndims)()
    if lib.H5Tget_array_dims2(type_id, dims) < 0:
        return StoredType(None, base.as_read)
    return StoredType(np.dtype((base.dtype, tuple(int(d) for d in dims))), base.as_read)


def _compound(lib: Any, type_id: int, size: int) -> StoredType:
    """A record: stored as read where it has members and each is; a dtype where each member has one."""
    count = max(lib.H5Tget_nmembers(type_id), 0)
    names, formats, offsets = [], [], []
    as_read, described = count > 0, True
    for i in range(count):
        member = _walk_closing(lib, lib.H5Tget_member_type(type_id, i))
        as_read = as_read and member.as_read
        name = member_name(lib, type_id, i)
        if name is None or member.dtype is None:
            described = False
            continue
        names.append(name)
        formats.append(member.dtype)
        offsets.append(int(lib.H5Tget_member_offset(type_id, i)))
    if not described or any(o + f.itemsize > size for o, f in zip(offsets, formats, strict=True)):
        return StoredType(None, as_read)
    return StoredType(
        np.dtype({"names": names, "formats": formats, "offsets": offsets, "itemsize": size}), as_read
    )


def member_name(lib: Any, type_id: int, i: int) -> str | None:
    """The name of member ``i`` of the compound (or enum) ``type_id``; ``None`` where HDF5 gives none (or not UTF-8).

    Examples
    --------
    >>> import numpy as np, tables
    >>> with tables.open_file("example.h5", "w") as f:
    ...     t = f.create_table("/", "t", obj=np.zeros(2, [("a", "i4")]))
    ...     type_id = library().H5Dget_type(t._v_objectid)
    ...     member_name(library(), type_id, 0)
    'a'
    >>> library().H5Tclose(type_id)
    0
    """
    pointer = lib.H5Tget_member_name(type_id, i)
    if not pointer:
        return None
    try:
        return ctypes.string_at(pointer).decode("utf-8")
    except UnicodeDecodeError:
        return None
    finally:
        lib.H5free_memory(pointer)


def _walk_node(leaf: Any) -> StoredType | None:
    """:func:`walk` of ``leaf``'s stored type; ``None`` where HDF5's library cannot be reached."""
    lib = library()
    if lib is None:  # pragma: no cover - PyTables' wheels export these
        return None
    return _walk_closing(lib, lib.H5Dget_type(leaf._v_objectid))


def file_dtype(leaf: Any) -> np.dtype | None:
    """The numpy dtype of one element of ``leaf`` exactly as the file stores it.

    Offsets, item size and byte order of every member as HDF5 records them
    (which may differ from the packed, native layout PyTables reads into).
    ``None`` where the stored type has a member numpy cannot describe
    bit for bit (variable-length, references, bit fields, integers of fewer
    bits than bytes, space-padded strings...), or HDF5 cannot be called.

    Examples
    --------
    >>> import numpy as np, tables
    >>> with tables.open_file("example.h5", "w") as f:
    ...     t = f.create_table("/", "t", obj=np.zeros(3, "i4,f8"), byteorder="big")
    ...     file_dtype(t)
    dtype([('f0', '>i4'), ('f1', '>f8')])
    """
    found = _walk_node(leaf)
    return None if found is None else found.dtype


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


def stored_as_read(leaf: Any) -> bool | None:
    """Whether ``leaf``'s chunks hold exactly the bytes numpy reads (no conversion on read).

    That is: its stored HDF5 type is stored as read (:func:`walk`), and its
    partial edge chunks went through the filters like the others (HDF5's
    ``DONT_FILTER_PARTIAL_CHUNKS`` option stores them raw, unmarked).
    Returns ``None`` where PyTables' HDF5 library cannot be reached.

    Examples
    --------
    >>> import numpy as np, tables
    >>> with tables.open_file("example.h5", "w") as f:
    ...     _ = f.create_carray("/", "x", obj=np.arange(4.0), chunkshape=(2,))
    >>> with tables.open_file("example.h5") as f:
    ...     stored_as_read(f.root.x) in (True, None)
    True
    """
    found = _walk_node(leaf)
    if found is None:  # pragma: no cover - PyTables' wheels export these
        return None
    return found.as_read and _edge_chunks_filtered(library(), leaf._v_objectid)
