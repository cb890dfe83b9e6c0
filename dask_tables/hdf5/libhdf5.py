"""PyTables' own HDF5 library through ctypes: one signature table, one rule for which library.

Every module that calls HDF5 directly (``hdf5.calls``, ``hdf5.storedtypes``,
``hdf5.storednode``, ``hdf5.dimscales``, ``hdf5.chunkindex``,
``hdf5.foreign``) calls it through :func:`library`.

One signature table, :data:`SIGNATURES`: each function HDF5 exports that
dask_tables calls, with its C result and argument types (as h5py's
``api_functions.txt`` lists them), bound once per process.

One rule for which library: the one that owns the handles.  An HDF5
identifier (``leaf._v_objectid``) means something only in the library that
issued it; another HDF5 loaded in the process (h5py's) numbers its own, and
the same number there is another object, maybe of another file.  PyTables'
handles are issued by the HDF5 its extension module is linked against, so
symbols are looked up through that extension's own handle (the dynamic
loader searches the extension's dependencies, not the process's first
``libhdf5``).
"""

from __future__ import annotations

import ctypes
import enum
import functools
from typing import Any

__all__ = ["SIGNATURES", "Library", "TypeClass", "library"]


class TypeClass(enum.IntEnum):
    """HDF5's ``H5T_class_t``: what ``H5Tget_class`` answers."""

    INTEGER = 0
    FLOAT = 1
    STRING = 3
    BITFIELD = 4
    COMPOUND = 6
    REFERENCE = 7
    ENUM = 8
    VLEN = 9
    ARRAY = 10


_HID = ctypes.c_int64
_HERR = _INT = ctypes.c_int
_SIZE = ctypes.c_size_t
_SSIZE = ctypes.c_ssize_t
_UINT = ctypes.c_uint
_U64P = ctypes.POINTER(ctypes.c_uint64)
_UINTP = ctypes.POINTER(_UINT)
_SIZEP = ctypes.POINTER(_SIZE)
_STR = ctypes.c_char_p
_PTR = ctypes.c_void_p

SIGNATURES: dict[str, tuple[Any, tuple[Any, ...]]] = {
    # name: (result type, argument types)
    "H5Aclose": (_HERR, (_HID,)),
    "H5Aexists": (_INT, (_HID, _STR)),
    "H5Aget_name_by_idx": (_SSIZE, (_HID, _STR, _INT, _INT, ctypes.c_uint64, _STR, _SIZE, _HID)),
    "H5Aget_num_attrs": (_INT, (_HID,)),
    "H5Aget_space": (_HID, (_HID,)),
    "H5Aget_type": (_HID, (_HID,)),
    "H5Aopen": (_HID, (_HID, _STR, _HID)),
    "H5Aread": (_HERR, (_HID, _HID, _PTR)),
    "H5Dclose": (_HERR, (_HID,)),
    "H5Dget_create_plist": (_HID, (_HID,)),
    "H5Dget_space": (_HID, (_HID,)),
    "H5Dget_type": (_HID, (_HID,)),
    "H5Dopen2": (_HID, (_HID, _STR, _HID)),
    "H5Dread": (_HERR, (_HID, _HID, _HID, _HID, _HID, _PTR)),
    "H5Dvlen_reclaim": (_HERR, (_HID, _HID, _HID, _PTR)),
    "H5Fget_name": (_SSIZE, (_HID, _STR, _SIZE)),
    "H5Iget_name": (_SSIZE, (_HID, _STR, _SIZE)),
    "H5Oclose": (_HERR, (_HID,)),
    "H5Ocopy": (_HERR, (_HID, _STR, _HID, _STR, _HID, _HID)),
    "H5Pclose": (_HERR, (_HID,)),
    "H5Pget_chunk_opts": (_HERR, (_HID, _UINTP)),
    "H5Pget_filter2": (_INT, (_HID, _UINT, _UINTP, _SIZEP, _UINTP, _SIZE, _STR, _UINTP)),
    "H5Pget_nfilters": (_INT, (_HID,)),
    "H5Rdereference2": (_HID, (_HID, _HID, _INT, _PTR)),
    "H5Sclose": (_HERR, (_HID,)),
    "H5Screate_simple": (_HID, (_INT, _U64P, _PTR)),
    "H5Sget_simple_extent_dims": (_INT, (_HID, _U64P, _PTR)),
    "H5Sget_simple_extent_ndims": (_INT, (_HID,)),
    "H5Sget_simple_extent_npoints": (ctypes.c_int64, (_HID,)),
    "H5Sget_simple_extent_type": (_INT, (_HID,)),
    "H5Sselect_hyperslab": (_HERR, (_HID, _INT, _U64P, _U64P, _U64P, _PTR)),
    "H5Tclose": (_HERR, (_HID,)),
    "H5Tget_array_dims2": (_INT, (_HID, _U64P)),
    "H5Tget_array_ndims": (_INT, (_HID,)),
    "H5Tget_class": (_INT, (_HID,)),
    "H5Tget_cset": (_INT, (_HID,)),
    "H5Tget_fields": (_HERR, (_HID, _SIZEP, _SIZEP, _SIZEP, _SIZEP, _SIZEP)),
    "H5Tget_member_index": (_INT, (_HID, _STR)),
    "H5Tget_member_name": (_PTR, (_HID, _UINT)),
    "H5Tget_member_offset": (_SIZE, (_HID, _UINT)),
    "H5Tget_member_type": (_HID, (_HID, _UINT)),
    "H5Tget_nmembers": (_INT, (_HID,)),
    "H5Tget_offset": (_INT, (_HID,)),
    "H5Tget_order": (_INT, (_HID,)),
    "H5Tget_precision": (_SIZE, (_HID,)),
    "H5Tget_sign": (_INT, (_HID,)),
    "H5Tget_size": (_SIZE, (_HID,)),
    "H5Tget_strpad": (_INT, (_HID,)),
    "H5Tget_super": (_HID, (_HID,)),
    "H5Tis_variable_str": (_INT, (_HID,)),
    "H5Treclaim": (_HERR, (_HID, _HID, _HID, _PTR)),
    "H5Tvlen_create": (_HID, (_HID,)),
    "H5Zfilter_avail": (_INT, (_INT,)),
    "H5free_memory": (_HERR, (_PTR,)),
}
"""Every HDF5 function dask_tables calls, by name, with its result type and argument types."""


class Library:
    """One HDF5 library, every function of :data:`SIGNATURES` bound with its C signature.

    Parameters
    ----------
    handle : object
        A ``ctypes.CDLL`` whose symbol lookup finds the library's functions.

    Raises
    ------
    AttributeError
        The library lacks one of the functions (an HDF5 older than 1.12).
    """

    def __init__(self, handle: ctypes.CDLL) -> None:
        self._handle = handle
        for name, (restype, argtypes) in SIGNATURES.items():
            function = getattr(handle, name)
            function.restype, function.argtypes = restype, list(argtypes)
            setattr(self, name, function)

    def __getattr__(self, name: str) -> Any:
        # only reached for names not bound in __init__: keeps type checkers quiet about H5... attributes
        raise AttributeError(f"{name} is not in dask_tables.hdf5.libhdf5.SIGNATURES")

    def address(self, name: str) -> int | None:
        """The address of the C function ``name``, or ``None`` where the library lacks it.

        For functions called from C (``H5Dchunk_iter``, HDF5 >= 1.14).
        """
        try:
            return ctypes.cast(getattr(self._handle, name), ctypes.c_void_p).value
        except AttributeError:
            return None

    def hid_global(self, name: str) -> int:
        """The value of the library's global identifier ``name`` (``H5T_STD_REF_OBJ_g``)."""
        return _HID.in_dll(self._handle, name).value

    def name_of(self, hid: int, of_file: bool = False) -> str | None:
        """The path of the object ``hid`` (``H5Iget_name``), or of its file (``H5Fget_name``); ``None`` if none."""
        buffer = ctypes.create_string_buffer(4096)
        size = (self.H5Fget_name if of_file else self.H5Iget_name)(hid, buffer, len(buffer))
        return buffer.value.decode("utf-8", "replace") if 0 < size < len(buffer) else None


@functools.cache
def library() -> Library | None:
    """The HDF5 that owns PyTables' handles, bound once; ``None`` where it cannot be reached.

    ``functools.cache`` holds the one binding per process; binding twice
    (two threads at once) is harmless, both are the same library.  Call its
    functions with the file open and the process lock held, like any HDF5
    call.

    Examples
    --------
    >>> import numpy as np, tables
    >>> with tables.open_file("example.h5", "w") as f:
    ...     x = f.create_array("/", "x", obj=np.arange(3))
    ...     library().name_of(x._v_objectid)
    '/x'
    """
    import tables.hdf5extension

    try:
        return Library(ctypes.CDLL(tables.hdf5extension.__file__))
    except (OSError, AttributeError):  # pragma: no cover - PyTables' wheels link an HDF5 >= 1.12
        return None
