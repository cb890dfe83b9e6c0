"""A few HDF5 calls PyTables does not expose, through ctypes on PyTables' own HDF5.

PyTables reports a dataset's filters by the names the file records (free
text) and its records in the memory layout it chooses; dask_tables needs the
filters' HDF5 ids (to name a missing filter, to pick a decoder whatever the
writer called it) and, for records, the layout the chunks really store
(gaps, padding, per-member byte order).  These functions ask PyTables' HDF5
directly.  Call them with the file open and the process lock held, like any
HDF5 call.

The ids passed in are PyTables' HDF5 handles (``leaf._v_objectid``), called
in the library that owns them (:func:`dask_tables.hdf5.libhdf5.library`).
"""

from __future__ import annotations

import ctypes
from typing import Any

import numpy as np

from .libhdf5 import library

__all__ = ["copy_object", "file_dtype", "library", "other_record_layout", "read_rows", "same_layout"]

# HDF5's H5T_class_t, H5T_order_t, H5T_sign_t, H5T_str_t values used here
_INTEGER, _FLOAT, _STRING, _COMPOUND, _ENUM, _ARRAY = 0, 1, 3, 6, 8, 10
_LITTLE, _BIG = 0, 1
_SIGNED = 1
_NULLTERM, _NULLPAD = 0, 1


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
    lib = library()
    if lib is None:  # pragma: no cover - PyTables' wheels export these
        return None
    type_id = lib.H5Dget_type(leaf._v_objectid)
    if type_id < 0:
        return None
    try:
        return _dtype(lib, type_id)
    finally:
        lib.H5Tclose(type_id)


def other_record_layout(leaf: Any) -> np.dtype | None:
    """The file's record type of table ``leaf``, where it is not the packed record PyTables reads.

    Gaps between members, padding, members of both byte orders (files
    written by h5py with an offsets dtype, PyTables' own
    ``nested-type-with-gaps.h5``): PyTables' reads of such a table
    (``read``, ``read_where``, ``read_coordinates``...) may corrupt memory,
    so read its rows with :func:`read_rows` in this type instead.  ``None``
    where the file stores PyTables' record (in some byte order), for a
    node that is not a table, or where :func:`file_dtype` cannot tell and
    the stored values sit where PyTables' record puts them
    (:func:`same_layout`).

    Raises
    ------
    RecordLayoutError
        :func:`file_dtype` cannot tell (a member numpy cannot describe) and
        the stored values sit elsewhere than in PyTables' record.

    Examples
    --------
    >>> import numpy as np, tables
    >>> with tables.open_file("example.h5", "w") as f:
    ...     other_record_layout(f.create_table("/", "t", obj=np.zeros(3, "i4,f8"), byteorder="big"))
    """
    import tables

    from ..errors import at_node

    if not isinstance(leaf, tables.Table):
        return None
    lib = library()
    if lib is None:  # pragma: no cover - PyTables' wheels export these
        return None
    type_id = lib.H5Dget_type(leaf._v_objectid)
    if type_id < 0:  # no answer: never guess that PyTables' read is safe
        raise tables.HDF5ExtError(
            f"{at_node(leaf._v_file.filename, leaf._v_pathname)}: HDF5 cannot give the stored record type"
        )
    try:
        in_file = _dtype(lib, type_id)  # file_dtype, on the type opened once
        if in_file is None:
            _refuse_misread_records(lib, type_id, leaf)
            return None
    finally:
        lib.H5Tclose(type_id)
    if in_file.newbyteorder("=") == leaf.dtype.newbyteorder("="):
        return None
    return in_file


def _refuse_misread_records(lib: Any, type_id: int, leaf: Any) -> None:
    """Raise :class:`RecordLayoutError` where the stored type ``type_id`` of table ``leaf`` puts its members
    elsewhere than PyTables' dtype.

    For a table :func:`file_dtype` cannot describe: with neither PyTables'
    read (which may corrupt memory on such records) nor a read in the
    file's own layout, the table is refused, naming the member.
    """
    from ..errors import RecordLayoutError

    if same_layout(lib, type_id, leaf.dtype):
        return
    size, member = int(lib.H5Tget_size(type_id)), _undescribed_member(lib, type_id)
    raise RecordLayoutError(leaf._v_file.filename, leaf._v_pathname, size, leaf.dtype.itemsize, member)


def same_layout(lib: Any, type_id: int, dtype: np.dtype) -> bool:
    """Whether the HDF5 type ``type_id`` puts every member where ``dtype`` does.

    Record by record, member by member (by name): the same item size and
    the same offsets, nested records included.  A value numpy holds whole
    (a number, a string, an array of numbers, a complex, which HDF5 stores
    as a record of two floats) only needs the same size.

    Parameters
    ----------
    lib : object
        :func:`~dask_tables.hdf5.libhdf5.library`.
    type_id : int
        An open HDF5 datatype (the caller closes it).
    dtype : numpy.dtype
        The record PyTables reads into (``Table.dtype``).

    Returns
    -------
    bool
        ``True`` where each member of ``dtype`` sits at the stored offset
        with the stored size.

    Examples
    --------
    >>> import numpy as np, tables
    >>> with tables.open_file("example.h5", "w") as f:
    ...     t = f.create_table("/", "t", obj=np.zeros(2, "i4,c16,?"))
    ...     type_id = library().H5Dget_type(t._v_objectid)
    ...     same_layout(library(), type_id, t.dtype), same_layout(library(), type_id, np.dtype("i4,f8"))
    (True, False)
    >>> library().H5Tclose(type_id)
    0
    """
    if int(lib.H5Tget_size(type_id)) != dtype.itemsize:
        return False
    if dtype.names is None:
        return True
    return lib.H5Tget_class(type_id) == _COMPOUND and _same_members(lib, type_id, dtype)


def _same_members(lib: Any, type_id: int, dtype: np.dtype) -> bool:
    """Each of ``dtype``'s fields is a member of the compound ``type_id`` at the same offset, laid out alike."""
    if lib.H5Tget_nmembers(type_id) != len(dtype.names):
        return False
    for name in dtype.names:
        field, offset = dtype.fields[name][:2]
        index = lib.H5Tget_member_index(type_id, name.encode("utf-8"))
        if index < 0 or int(lib.H5Tget_member_offset(type_id, index)) != offset:
            return False
        member = lib.H5Tget_member_type(type_id, index)
        if member < 0:
            return False
        try:
            if not same_layout(lib, member, field):
                return False
        finally:
            lib.H5Tclose(member)
    return True


def _undescribed_member(lib: Any, type_id: int, prefix: str = "") -> str:
    """The path (``"outer/inner"``) of the first member of a compound that :func:`file_dtype` cannot describe."""
    for i in range(max(lib.H5Tget_nmembers(type_id), 0)):
        name = _member_name(lib, type_id, i)
        if name is None:
            return prefix or "?"
        name = prefix + name
        member = lib.H5Tget_member_type(type_id, i)
        if member < 0:
            return name
        try:
            if _dtype(lib, member) is None:
                inner = lib.H5Tget_class(member) == _COMPOUND
                return _undescribed_member(lib, member, name + "/") if inner else name
        finally:
            lib.H5Tclose(member)
    return prefix.rstrip("/") or "?"


def _dtype(lib: Any, type_id: int) -> np.dtype | None:
    kind, size = lib.H5Tget_class(type_id), int(lib.H5Tget_size(type_id))
    if kind == _COMPOUND:
        return _compound(lib, type_id, size)
    if kind == _ARRAY:
        return _array(lib, type_id)
    if kind == _ENUM:
        return _with_super(lib, type_id)
    if kind == _STRING:
        plain = lib.H5Tis_variable_str(type_id) == 0 and lib.H5Tget_strpad(type_id) in (_NULLTERM, _NULLPAD)
        return np.dtype(f"S{size}") if plain else None
    if kind in (_INTEGER, _FLOAT):
        return _number(lib, type_id, kind, size)
    return None


def _number(lib: Any, type_id: int, kind: int, size: int) -> np.dtype | None:
    """An integer or IEEE float that fills its bytes, in its byte order; else ``None``."""
    if lib.H5Tget_precision(type_id) != 8 * size or lib.H5Tget_offset(type_id) != 0:
        return None  # 12-bit integers and the like: HDF5 converts them on read
    order = {_LITTLE: "<", _BIG: ">"}.get(lib.H5Tget_order(type_id))
    if order is None:
        return None
    if kind == _FLOAT:
        code = {2: "f2", 4: "f4", 8: "f8"}.get(size)
    else:
        code = (
            f"{'i' if lib.H5Tget_sign(type_id) == _SIGNED else 'u'}{size}" if size in (1, 2, 4, 8) else None
        )
    return None if code is None else np.dtype(order + code)


def _with_super(lib: Any, type_id: int) -> np.dtype | None:
    base = lib.H5Tget_super(type_id)
    if base < 0:
        return None
    try:
        return _dtype(lib, base)
    finally:
        lib.H5Tclose(base)


def _array(lib: Any, type_id: int) -> np.dtype | None:
    ndims = lib.H5Tget_array_ndims(type_id)
    if ndims < 1 or ndims > 32:
        return None
    dims = (ctypes.c_uint64 * ndims)()
    if lib.H5Tget_array_dims2(type_id, dims) < 0:
        return None
    base = _with_super(lib, type_id)
    return None if base is None else np.dtype((base, tuple(int(d) for d in dims)))


def _member_name(lib: Any, type_id: int, i: int) -> str | None:
    """The name of member ``i`` of the compound ``type_id``; ``None`` where HDF5 gives none (or not UTF-8)."""
    pointer = lib.H5Tget_member_name(type_id, i)
    if not pointer:
        return None
    try:
        return ctypes.string_at(pointer).decode("utf-8")
    except UnicodeDecodeError:
        return None
    finally:
        lib.H5free_memory(pointer)


def _compound(lib: Any, type_id: int, size: int) -> np.dtype | None:
    names, formats, offsets = [], [], []
    for i in range(max(lib.H5Tget_nmembers(type_id), 0)):
        name = _member_name(lib, type_id, i)
        if name is None:
            return None
        names.append(name)
        member = lib.H5Tget_member_type(type_id, i)
        if member < 0:
            return None
        try:
            member_dtype = _dtype(lib, member)
        finally:
            lib.H5Tclose(member)
        if member_dtype is None:
            return None
        formats.append(member_dtype)
        offsets.append(int(lib.H5Tget_member_offset(type_id, i)))
    if any(o + f.itemsize > size for o, f in zip(offsets, formats, strict=True)):
        return None
    return np.dtype({"names": names, "formats": formats, "offsets": offsets, "itemsize": size})


def read_rows(leaf: Any, rows: range, dtype: np.dtype) -> np.ndarray:
    """``leaf``'s rows ``rows`` (a 1-D dataset), read by HDF5 into the file's own type ``dtype``.

    HDF5 converts nothing (memory type = the file's type, from
    :func:`file_dtype`): the records come back exactly as stored, for
    tables whose layout PyTables' own read mishandles.

    Examples
    --------
    >>> import numpy as np, tables
    >>> with tables.open_file("example.h5", "w") as f:
    ...     t = f.create_table("/", "t", obj=np.arange(6, dtype="i4").view([("a", "i4")]))
    ...     read_rows(t, range(1, 6, 2), file_dtype(t))["a"].tolist()
    [1, 3, 5]
    """
    import tables

    out = np.empty(len(rows), dtype=dtype)
    if not len(rows):
        return out
    lib = library()
    file_space = lib.H5Dget_space(leaf._v_objectid)
    type_id = lib.H5Dget_type(leaf._v_objectid)
    dims = (ctypes.c_uint64 * 1)(len(rows))
    memory_space = lib.H5Screate_simple(1, dims, None)
    try:
        start, step = (ctypes.c_uint64 * 1)(rows.start), (ctypes.c_uint64 * 1)(rows.step)
        if min(file_space, type_id, memory_space) < 0 or (
            lib.H5Sselect_hyperslab(file_space, 0, start, step, dims, None) < 0
            or lib.H5Dread(leaf._v_objectid, type_id, memory_space, file_space, 0, out.ctypes.data) < 0
        ):
            raise tables.HDF5ExtError(f"HDF5 could not read rows {rows} of {leaf._v_pathname}")
    finally:
        for close, ident in (
            (lib.H5Sclose, memory_space),
            (lib.H5Sclose, file_space),
            (lib.H5Tclose, type_id),
        ):
            if ident >= 0:
                close(ident)
    return out


def copy_object(source: Any, name: str, target: Any) -> None:
    """Copy the object ``name`` of the group ``source`` into the group ``target`` (HDF5's ``H5Ocopy``).

    Whole: a group with everything below it, attributes included.  PyTables
    refuses to copy its hidden nodes (an index group, ``_i_<table>``);
    HDF5 copies them as any other.  PyTables' node cache of ``target``'s
    file does not learn of the copy: reopen the file to see it.

    Examples
    --------
    >>> import tables
    >>> with tables.open_file("source.h5", "w") as s, tables.open_file("target.h5", "w") as t:
    ...     _ = s.create_array("/", "x", obj=[1, 2])
    ...     copy_object(s.root, "x", t.root)
    >>> with tables.open_file("target.h5") as t:
    ...     t.root.x.read()
    [1, 2]
    """
    import tables

    encoded = name.encode()
    if library().H5Ocopy(source._v_objectid, encoded, target._v_objectid, encoded, 0, 0) < 0:
        raise tables.HDF5ExtError(
            f"HDF5 could not copy {name} of {source._v_pathname} into {target._v_pathname}"
        )
