"""Names of a dataset's dimensions from its HDF5 dimension scales, read with PyTables' own HDF5.

A dataset's axes name their dimension scales in its ``DIMENSION_LIST``
attribute: per axis, a variable-length list of object references to scale
datasets (what ``h5py``'s ``dims[i].attach_scale`` and netCDF-4 write).
PyTables cannot read reference types (it warns and returns ``None`` for
that attribute, and loads the scale datasets themselves as
``UnImplemented`` nodes), so this module reads the attribute on the HDF5
library whose identifiers ``leaf._v_objectid`` are
(:func:`dask_tables.hdf5.libhdf5.library`), dereferences each reference and
takes the scale's path.  The dimension's name is the last component of
that path, as netCDF-4 and h5netcdf name them.

Where PyTables' HDF5 library cannot be reached, :func:`scale_dims` answers
``None`` and the caller falls back to phony names.
"""

from __future__ import annotations

import ctypes
from typing import Any

import tables

from .libhdf5 import TypeClass, library

__all__ = ["NOT_A_VARIABLE", "dataset_dims", "scale_dims"]

# How netCDF-4 marks a dimension without a coordinate variable: the scale's NAME starts so.
NOT_A_VARIABLE = b"This is a netCDF dimension but not a netCDF variable"

_H5P_DEFAULT = 0
_H5R_OBJECT = 0  # H5R_OBJECT1 in HDF5 >= 1.12: the 8-byte object reference h5py and netCDF write


class _Hvl(ctypes.Structure):
    """HDF5's ``hvl_t``: one variable-length element."""

    _fields_ = [("len", ctypes.c_size_t), ("p", ctypes.c_void_p)]


def _scale_path(lib: Any, dataset_id: int, reference: int) -> str | None:
    """The path of the object an 8-byte object reference points to."""
    ref = ctypes.c_uint64(reference)
    target = lib.H5Rdereference2(dataset_id, _H5P_DEFAULT, _H5R_OBJECT, ctypes.byref(ref))
    if target < 0:
        return None
    try:
        size = lib.H5Iget_name(target, None, 0)
        if size <= 0:
            return None
        name = ctypes.create_string_buffer(size + 1)
        lib.H5Iget_name(target, name, size + 1)
        return name.value.decode("utf-8", "replace")
    finally:
        lib.H5Oclose(target)


def _is_reference_list(lib: Any, attribute: int) -> bool:
    """Whether the attribute's type is variable-length of references (what the reader expects)."""
    stored = lib.H5Aget_type(attribute)
    if stored < 0:
        return False
    try:
        if lib.H5Tget_class(stored) != TypeClass.VLEN:
            return False
        base = lib.H5Tget_super(stored)
        if base < 0:
            return False
        try:
            return lib.H5Tget_class(base) == TypeClass.REFERENCE
        finally:
            lib.H5Tclose(base)
    finally:
        lib.H5Tclose(stored)


def _read_dimension_list(lib: Any, dataset_id: int, ndim: int) -> tuple[str | None, ...] | None:
    attribute = lib.H5Aopen(dataset_id, b"DIMENSION_LIST", _H5P_DEFAULT)
    if attribute < 0:
        return None
    space = vlen = -1
    try:
        space = lib.H5Aget_space(attribute)
        if space < 0 or lib.H5Sget_simple_extent_npoints(space) != ndim:
            return None
        if not _is_reference_list(lib, attribute):
            return None
        vlen = lib.H5Tvlen_create(lib.hid_global("H5T_STD_REF_OBJ_g"))
        buffer = (_Hvl * ndim)()
        if vlen < 0 or lib.H5Aread(attribute, vlen, buffer) < 0:
            return None
        try:
            names: list[str | None] = []
            for element in buffer:
                references = ctypes.cast(element.p, ctypes.POINTER(ctypes.c_uint64))
                path = _scale_path(lib, dataset_id, references[0]) if element.len else None
                names.append(None if path is None else path.rsplit("/", 1)[-1] or None)
            return tuple(names)
        finally:
            lib.H5Dvlen_reclaim(vlen, space, _H5P_DEFAULT, buffer)
    finally:
        if vlen >= 0:
            lib.H5Tclose(vlen)
        if space >= 0:
            lib.H5Sclose(space)
        lib.H5Aclose(attribute)


def scale_dims(leaf: tables.Leaf) -> tuple[str | None, ...] | None:
    """Per axis of ``leaf``, the name of its attached dimension scale (``None`` where none is).

    Returns ``None`` when the dataset has no dimension scales at all, or
    PyTables' HDF5 library cannot be reached.  Call it with the registry
    lock held (it calls into HDF5).

    Examples
    --------
    >>> import numpy as np, tables
    >>> with tables.open_file("example.h5", "w") as f:
    ...     _ = f.create_array("/", "x", np.arange(4.0))
    >>> with tables.open_file("example.h5") as f:
    ...     print(scale_dims(f.root.x))
    None

    Considerations
    --------------
    Only the first scale attached to an axis names it (HDF5 allows several).
    PyTables cannot load the scale datasets themselves (their
    ``REFERENCE_LIST`` attribute holds references):
    :mod:`dask_tables.hdf5.foreign` reads them.
    """
    return dataset_dims(leaf._v_objectid, len(leaf.shape))


def dataset_dims(dataset_id: int, ndim: int) -> tuple[str | None, ...] | None:
    """:func:`scale_dims` of a dataset by its HDF5 id and number of axes (for datasets PyTables cannot load).

    Examples
    --------
    >>> import numpy as np, tables
    >>> with tables.open_file("example.h5", "w") as f:
    ...     print(dataset_dims(f.create_array("/", "x", np.arange(4.0))._v_objectid, 1))
    None
    """
    lib = library()
    if lib is None or ndim == 0:
        return None
    if lib.H5Aexists(dataset_id, b"DIMENSION_LIST") <= 0:
        return None
    names = _read_dimension_list(lib, dataset_id, ndim)
    if names is None or not any(names):
        return None
    return names
