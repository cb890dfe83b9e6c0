"""A few HDF5 calls PyTables does not expose, through ctypes on PyTables' own HDF5.

Records as the file lays them out (gaps, padding, per-member byte order),
where PyTables reads them into another layout: :func:`other_record_layout`
and :func:`same_layout` compare the two, :func:`read_rows` reads rows in the
file's own layout; and :func:`copy_object` (``H5Ocopy``).  The stored type
itself is :mod:`dask_tables.hdf5.storedtypes`.  Call them with the file open
and the process lock held, like any HDF5 call.

The ids passed in are PyTables' HDF5 handles (``leaf._v_objectid``), called
in the library that owns them (:func:`dask_tables.hdf5.libhdf5.library`).
"""

from __future__ import annotations

import ctypes
from typing import Any

import numpy as np

from ..errors import renamed
from . import storedtypes
from .libhdf5 import TypeClass, library
from .storedtypes import member_name, walk

__all__ = ["copy_object", "library", "other_record_layout", "read_rows", "same_layout"]


_RENAMED = {"file_dtype": ("dask_tables.hdf5.storedtypes.file_dtype", storedtypes.file_dtype)}


def __getattr__(name: str) -> object:
    return renamed(__name__, _RENAMED, name)


def other_record_layout(leaf: Any) -> np.dtype | None:
    """The file's record type of table ``leaf``, where it is not the packed record PyTables reads.

    Gaps between members, padding, members of both byte orders (files
    written by h5py with an offsets dtype, PyTables' own
    ``nested-type-with-gaps.h5``): PyTables' reads of such a table
    (``read``, ``read_where``, ``read_coordinates``...) may corrupt memory,
    so read its rows with :func:`read_rows` in this type instead.  ``None``
    where the file stores PyTables' record (in some byte order), for a
    node that is not a table, or where :func:`~dask_tables.hdf5.storedtypes.file_dtype` cannot tell and
    the stored values sit where PyTables' record puts them
    (:func:`same_layout`).

    Raises
    ------
    RecordLayoutError
        :func:`~dask_tables.hdf5.storedtypes.file_dtype` cannot tell (a member numpy cannot describe) and
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
        in_file = walk(lib, type_id).dtype  # file_dtype, on the type opened once
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

    For a table :func:`~dask_tables.hdf5.storedtypes.file_dtype` cannot describe: with neither PyTables'
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
    return lib.H5Tget_class(type_id) == TypeClass.COMPOUND and _same_members(lib, type_id, dtype)


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
    """The path (``"outer/inner"``) of the first member of a compound that :func:`~dask_tables.hdf5.storedtypes.file_dtype` cannot describe."""
    for i in range(max(lib.H5Tget_nmembers(type_id), 0)):
        name = member_name(lib, type_id, i)
        if name is None:
            return prefix or "?"
        name = prefix + name
        member = lib.H5Tget_member_type(type_id, i)
        if member < 0:
            return name
        try:
            if walk(lib, member).dtype is None:
                inner = lib.H5Tget_class(member) == TypeClass.COMPOUND
                return _undescribed_member(lib, member, name + "/") if inner else name
        finally:
            lib.H5Tclose(member)
    return prefix.rstrip("/") or "?"


def read_rows(leaf: Any, rows: range, dtype: np.dtype) -> np.ndarray:
    """``leaf``'s rows ``rows`` (a 1-D dataset), read by HDF5 into the file's own type ``dtype``.

    HDF5 converts nothing (memory type = the file's type, from
    :func:`~dask_tables.hdf5.storedtypes.file_dtype`): the records come back exactly as stored, for
    tables whose layout PyTables' own read mishandles.

    Examples
    --------
    >>> import numpy as np, tables
    >>> from dask_tables.hdf5.storedtypes import file_dtype
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
