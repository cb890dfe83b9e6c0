"""Attributes for xarray's ``engine="tables"``: as h5netcdf gives them to xarray.

Text as ``str`` (netCDF-C and old PyTables files store fixed-length
strings, which PyTables reads as ``numpy.bytes_``), arrays of text as
(nested) lists of ``str``, one-element arrays as their element, numbers
read through HDF5 directly where PyTables misreads them
(:mod:`dask_tables.hdf5.foreign`), and the attributes of the
dimension-scale convention and netCDF-4's bookkeeping left out.
"""

from __future__ import annotations

import pickletools
from typing import Any

import numpy as np
import tables

from .hdf5.foreign import UNREADABLE, attribute_names, read_attribute

__all__ = ["HIDDEN_ATTRS", "foreign_attrs", "netcdf_value", "user_attrs"]

# Attributes of the HDF5 dimension-scale convention and netCDF-4's bookkeeping: structure, not
# user metadata (the attributes h5netcdf hides).
HIDDEN_ATTRS = frozenset(
    {
        "DIMENSION_LIST",
        "REFERENCE_LIST",
        "CLASS",
        "NAME",
        "_Netcdf4Dimid",
        "_Netcdf4Coordinates",
        "_NCProperties",
        "_nc3_strict",
    }
)
# Attributes xarray's netCDF backends leave as bytes (a fill value of a bytes variable).
_RAW_ATTRS = frozenset({"_FillValue", "missing_value"})


def _is_pickle(data: bytes) -> bool:
    """Whether ``data`` is a whole pickle: PyTables left it as bytes because the pickle gate refused it."""
    try:
        *_, (opcode, _, position) = pickletools.genops(data)
    except Exception:  # any malformed opcode stream: text, not a pickle
        return False
    return opcode.name == "STOP" and position == len(data) - 1


def _text(value: bytes, name: str) -> str | bytes:
    """Stored text as ``str`` (UTF-8), as netCDF backends give it; refused pickles and undecodable bytes stay bytes."""
    if name in _RAW_ATTRS or _is_pickle(value):
        return bytes(value)
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return bytes(value)


def netcdf_value(name: str, value: Any) -> Any:
    """An attribute as h5netcdf gives it to xarray.

    Text as ``str``; an array of fixed-length text as the flat list of its
    ``str`` (one-character text, netCDF's ``char``, stays bytes), an array
    of variable-length text as (nested) lists of ``str``; a one-element
    array or list as its element.

    Examples
    --------
    >>> netcdf_value("units", b"days since 2000-01-01")
    'days since 2000-01-01'
    >>> netcdf_value("names", np.array([[b"ab", b"cd"], [b"ef", b"gh"]]))
    ['ab', 'cd', 'ef', 'gh']
    >>> netcdf_value("names", np.array([["ab", "cd"], ["ef", "gh"]], dtype=object))
    [['ab', 'cd'], ['ef', 'gh']]
    >>> netcdf_value("scale_factor", np.array([0.5]))
    np.float64(0.5)
    """
    if isinstance(value, bytes):
        return _text(value, name)
    if isinstance(value, np.str_):
        return str(value)
    if isinstance(value, np.ndarray) and value.dtype.kind in "SUO" and value.ndim:
        if value.dtype.kind == "S" and value.dtype.itemsize > 1:
            value = [_text(v, name) for v in value.flat]  # h5netcdf flattens fixed-length text
        else:
            value = _texts(value.tolist(), name)
    sequence = isinstance(value, list) or (isinstance(value, np.ndarray) and value.ndim >= 1)
    if sequence and len(value) == 1:  # lists may be ragged (pandas' pickled non_index_axes)
        return value[0]
    return value


def _texts(value: Any, name: str) -> Any:
    """Nested lists of text with every element ``str`` (bytes of variable-length text decoded)."""
    if isinstance(value, list):
        return [_texts(v, name) for v in value]
    return _text(value, name) if isinstance(value, bytes) else value


def _is_text_array(value: Any) -> bool:
    return isinstance(value, np.ndarray) and value.dtype.kind in "SUO" and value.ndim > 0


def _needs_reread(value: Any) -> bool:
    """Whether PyTables' read of an attribute may be wrong: ``None`` (a type it cannot read, as an enum),
    a number (big-endian ones come back byte-swapped, an empty attribute as 0)."""
    return value is None or (isinstance(value, (np.generic, np.ndarray)) and value.dtype.kind in "biufc")


def user_attrs(node: tables.Node) -> dict[str, Any]:
    """The node's own attributes (not PyTables' nor the dimension scales'), as h5netcdf gives them.

    Text and pickles as PyTables reads them (through the pickle gate);
    numbers and what PyTables cannot read through HDF5 directly
    (:mod:`dask_tables.hdf5.foreign`).
    """
    attrs = node._v_attrs
    found = {}
    for name in attrs._v_attrnamesuser:
        if name in HIDDEN_ATTRS:
            continue
        value = attrs[name]
        if _needs_reread(value) or _is_text_array(value):  # arrays of text: fixed or variable length?
            stored = read_attribute(node._v_objectid, name)
            value = value if stored is UNREADABLE else stored
        found[name] = netcdf_value(name, value)
    return found


def foreign_attrs(object_id: int) -> dict[str, Any]:
    """The attributes of a dataset PyTables cannot load, read through HDF5 directly."""
    found = {}
    for name in attribute_names(object_id):
        if name not in HIDDEN_ATTRS:
            value = read_attribute(object_id, name)
            if value is not UNREADABLE:
                found[name] = netcdf_value(name, value)
    return found
