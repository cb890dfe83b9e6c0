"""Attributes and datasets read as h5py reads them, where PyTables misreads them or cannot load them.

PyTables reads the attributes other writers make wrongly or not at all
(tables 3.11): a big-endian number comes back byte-swapped (``2.5`` as
``5.4e-321``, a complex ``4.3`` as ``4.67e-62``), an enum (how h5py stores
numpy bools) as ``None``, an empty (null) attribute as ``0.0``; and it
cannot load a dimension scale at all (its ``REFERENCE_LIST`` attribute
holds references).  These functions read them through :mod:`ctypes` on
PyTables' own HDF5 (:func:`dask_tables.hdf5.libhdf5.library`), in the stored
type, and give what h5py gives: numbers in native byte order, h5py's enum
of ``FALSE``/``TRUE`` as ``numpy.bool_``, other enums as their base
integers, a record of two floats named ``r`` and ``i`` as a complex number,
fixed-length text as ``numpy.bytes_``, variable-length text as
:class:`str`; a scalar dataspace as a numpy scalar, a null one as an empty
array.  What numpy cannot hold as stored (references, variable-length
sequences, space-padded strings, bit fields) is ``UNREADABLE``.

Call them with the file open and the process lock held, like any HDF5 call.
"""

from __future__ import annotations

import contextlib
import ctypes
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from .libhdf5 import TypeClass, library
from .storedtypes import member_name, walk

__all__ = [
    "UNREADABLE",
    "attribute_names",
    "holds_text",
    "opened_dataset",
    "read_attribute",
    "read_dataset",
]

UNREADABLE: Any = type("Unreadable", (), {"__repr__": lambda self: "UNREADABLE"})()
"""What :func:`read_attribute` and :func:`read_dataset` give for a type numpy cannot hold as stored."""

_H5P_DEFAULT = _H5S_ALL = 0
_SCALAR, _NULL = 0, 2  # H5S_class_t
_INDEX_NAME, _ITER_INC = 0, 0


def attribute_names(object_id: int) -> list[str]:
    """Names of the attributes of an HDF5 object (a group's or dataset's id), in name order.

    Examples
    --------
    >>> import numpy as np, tables
    >>> with tables.open_file("example.h5", "w") as f:
    ...     x = f.create_array("/", "x", np.arange(3))
    ...     x.attrs.units = "m"
    ...     attribute_names(x._v_objectid)
    ['CLASS', 'FLAVOR', 'TITLE', 'VERSION', 'units']
    """
    lib = library()
    names = []
    for i in range(max(lib.H5Aget_num_attrs(object_id), 0)):
        size = lib.H5Aget_name_by_idx(object_id, b".", _INDEX_NAME, _ITER_INC, i, None, 0, _H5P_DEFAULT)
        if size < 0:
            continue
        buffer = ctypes.create_string_buffer(size + 1)
        lib.H5Aget_name_by_idx(object_id, b".", _INDEX_NAME, _ITER_INC, i, buffer, size + 1, _H5P_DEFAULT)
        names.append(buffer.value.decode("utf-8", "surrogateescape"))
    return names


def read_attribute(object_id: int, name: str) -> Any:
    """The attribute ``name`` of an HDF5 object, as h5py reads it; ``UNREADABLE`` where numpy cannot hold it.

    Examples
    --------
    >>> import numpy as np, tables
    >>> with tables.open_file("example.h5", "w") as f:
    ...     f.create_array("/", "x", np.arange(3)).attrs.big = np.array([2.5, 4.0], dtype=">f8")
    >>> with tables.open_file("example.h5") as f:
    ...     x = f.root.x
    ...     x.attrs.big.tolist(), read_attribute(x._v_objectid, "big").tolist()  # PyTables', then ours
    ([5.375e-321, 2.0553e-320], [2.5, 4.0])
    """
    lib = library()
    encoded = name.encode("utf-8", "surrogateescape")
    if lib.H5Aexists(object_id, encoded) <= 0:
        raise KeyError(name)
    attribute = lib.H5Aopen(object_id, encoded, _H5P_DEFAULT)
    if attribute < 0:
        return UNREADABLE
    try:
        return _read(
            lib,
            lib.H5Aget_type(attribute),
            lib.H5Aget_space(attribute),
            lambda t, buf: lib.H5Aread(attribute, t, buf),
        )
    finally:
        lib.H5Aclose(attribute)


@contextlib.contextmanager
def opened_dataset(group_id: int, name: str) -> Iterator[int | None]:
    """The dataset ``name`` of a group (its id, from ``group._v_objectid``), open for the block; ``None`` if none.

    Examples
    --------
    >>> import numpy as np, tables
    >>> with tables.open_file("example.h5", "w") as f:
    ...     _ = f.create_array("/", "x", np.arange(3))
    ...     with opened_dataset(f.root._v_objectid, "x") as dataset:
    ...         read_dataset(dataset)
    array([0, 1, 2])
    """
    lib = library()
    dataset = lib.H5Dopen2(group_id, name.encode("utf-8", "surrogateescape"), _H5P_DEFAULT)
    try:
        yield dataset if dataset >= 0 else None
    finally:
        if dataset >= 0:
            lib.H5Dclose(dataset)


def read_dataset(dataset_id: int) -> Any:
    """A whole dataset, as h5py reads it (see :func:`read_attribute`); ``UNREADABLE`` where numpy cannot hold it.

    Examples
    --------
    >>> import numpy as np, tables
    >>> with tables.open_file("example.h5", "w") as f:
    ...     x = f.create_array("/", "x", np.arange(3, dtype=">i2"))
    ...     read_dataset(x._v_objectid).dtype
    dtype('int16')
    """
    lib = library()
    return _read(
        lib,
        lib.H5Dget_type(dataset_id),
        lib.H5Dget_space(dataset_id),
        lambda t, buf: lib.H5Dread(dataset_id, t, _H5S_ALL, _H5S_ALL, _H5P_DEFAULT, buf),
    )


def holds_text(dataset_id: int) -> bool:
    """Whether a dataset holds variable-length text (what PyTables cannot load, and h5py reads as ``str``).

    Examples
    --------
    >>> import numpy as np, tables
    >>> with tables.open_file("example.h5", "w") as f:
    ...     holds_text(f.create_array("/", "x", np.arange(3))._v_objectid)
    False
    """
    lib = library()
    type_id = lib.H5Dget_type(dataset_id)
    try:
        return (
            type_id >= 0
            and lib.H5Tget_class(type_id) == TypeClass.STRING
            and lib.H5Tis_variable_str(type_id) > 0
        )
    finally:
        if type_id >= 0:
            lib.H5Tclose(type_id)


def _read(lib: Any, type_id: int, space: int, read: Callable[[int, int], int]) -> Any:
    """Read through ``read(memory type, buffer)`` in the stored type, then convert as h5py does; closes both ids."""
    try:
        if type_id < 0 or space < 0:
            return UNREADABLE
        shape = _shape(lib, space)
        if shape is None:
            return UNREADABLE
        if lib.H5Tget_class(type_id) == TypeClass.STRING and lib.H5Tis_variable_str(type_id) > 0:
            return _read_text(lib, type_id, space, shape, read)
        stored = walk(lib, type_id).dtype
        if stored is None:
            return UNREADABLE
        out = np.empty(shape or (), dtype=stored)
        if out.size and read(type_id, out.ctypes.data) < 0:
            return UNREADABLE
        out = _as_h5py(lib, type_id, out)
        return out[()] if shape == () else out
    finally:
        if space >= 0:
            lib.H5Sclose(space)
        if type_id >= 0:
            lib.H5Tclose(type_id)


def _shape(lib: Any, space: int) -> tuple[int, ...] | None:
    """The dataspace's shape: ``()`` scalar, ``(0,)`` null (an empty attribute)."""
    kind = lib.H5Sget_simple_extent_type(space)
    if kind == _SCALAR:
        return ()
    if kind == _NULL:
        return (0,)
    ndim = lib.H5Sget_simple_extent_ndims(space)
    if ndim < 0 or ndim > 32:
        return None
    dims = (ctypes.c_uint64 * max(ndim, 1))()
    if ndim and lib.H5Sget_simple_extent_dims(space, dims, None) < 0:
        return None
    return tuple(int(d) for d in dims[:ndim])


def _read_text(
    lib: Any, type_id: int, space: int, shape: tuple[int, ...], read: Callable[[int, int], int]
) -> Any:
    """Variable-length strings: ``str`` (h5py decodes ASCII and UTF-8 alike), one or an object array."""
    count = int(np.prod(shape, dtype=np.int64))
    pointers = (ctypes.c_char_p * max(count, 1))()
    if count and read(type_id, ctypes.addressof(pointers)) < 0:
        return UNREADABLE
    try:
        values = [(p or b"").decode("utf-8", "surrogateescape") for p in pointers[:count]]
    finally:
        if count:
            lib.H5Treclaim(type_id, space, _H5P_DEFAULT, ctypes.addressof(pointers))
    if shape == ():
        return values[0]
    out = np.empty(count, dtype=object)
    out[:] = values
    return out.reshape(shape)


def _as_h5py(lib: Any, type_id: int, values: np.ndarray) -> np.ndarray:
    """Stored values as h5py gives them: native order, bool enums, complex records."""
    kind = lib.H5Tget_class(type_id)
    if kind == TypeClass.ENUM and _member_names(lib, type_id) == ["FALSE", "TRUE"]:
        return values.astype(bool)
    names = values.dtype.names
    if kind == TypeClass.COMPOUND and names == ("r", "i") and {values.dtype[n].kind for n in names} == {"f"}:
        parts = [values.dtype[n] for n in names]
        if parts[0].itemsize == parts[1].itemsize:
            out = np.empty(values.shape, dtype=f"c{2 * parts[0].itemsize}")
            out.real, out.imag = values["r"], values["i"]
            return out
    if names is not None or values.dtype.kind in "biuf":
        return values.astype(values.dtype.newbyteorder("="))
    return values


def _member_names(lib: Any, type_id: int) -> list[str | None]:
    return [member_name(lib, type_id, i) for i in range(max(lib.H5Tget_nmembers(type_id), 0))]
