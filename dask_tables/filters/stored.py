"""A dataset's filter pipeline as the file records it: ids, names, parameters (HDF5 calls).

These read the file's own record (``H5Pget_filter2`` through
:mod:`dask_tables.hdf5.libhdf5`), so a filter is known by its HDF5 id even
where PyTables has no name for it.
"""

from __future__ import annotations

import ctypes
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..hdf5.libhdf5 import library
from ..hdf5.storednode import StoredNode
from .base import FILTERS

__all__ = ["StoredFilter", "hdf5_can_apply", "stored_filters", "stored_node"]

# Filters HDF5 defines that have no class here (they are read through HDF5's pipeline):
# their names, for messages.
_UNHANDLED: Mapping[int, str] = {5: "nbit", 6: "scaleoffset"}


@dataclass(frozen=True)
class StoredFilter:
    """One filter of a dataset's pipeline, as the file records it.

    Attributes
    ----------
    id : int
        HDF5's filter id (``-1`` where it could not be read).
    stored_name : str
        The name the file records (free text, chosen by the writer).
    params : tuple of int
        The filter's client data.

    Examples
    --------
    >>> StoredFilter(32008, "bitshuffle; see https://github.com/kiyo-masui/bitshuffle", (0, 4, 4, 0, 2)).name
    'bitshuffle'
    >>> StoredFilter(-1, "HDF5 zstd filter; see ...", (3,)).name
    'zstd'
    """

    id: int
    stored_name: str
    params: tuple[int, ...]

    @property
    def name(self) -> str:
        """The name its class is registered under (the stored name for an unknown filter)."""
        known = FILTERS.get(self.id)
        if known is not None:
            return known.name
        if self.id in _UNHANDLED:
            return _UNHANDLED[self.id]
        for cls in FILTERS.values():
            if cls.stored_prefix and self.stored_name.startswith(cls.stored_prefix):
                return cls.name
        return self.stored_name

    def describe(self) -> str:
        """``filter 32008 (bitshuffle; see ...)``: by id and by the name the file gives it."""
        ident = f"filter {self.id}" if self.id >= 0 else "a filter"
        return f"{ident} ({self.stored_name or self.name or 'unnamed'})"


def stored_filters(leaf: Any) -> tuple[StoredFilter, ...]:
    """The filter pipeline of a chunked ``leaf``, in write order, with HDF5's filter ids.

    Call with the file open and the process lock held (it calls into HDF5).
    Where HDF5's functions cannot be called, the names PyTables reports
    (``get_filters``) with id ``-1``.

    Examples
    --------
    >>> import numpy as np, tables
    >>> with tables.open_file("example.h5", "w") as f:
    ...     x = f.create_carray("/", "x", obj=np.arange(8), chunkshape=(4,),
    ...                         filters=tables.Filters(complevel=1, shuffle=True))
    ...     [(s.id, s.name) for s in stored_filters(x)]
    [(2, 'shuffle'), (1, 'deflate')]
    """
    import tables

    lib = library()
    if lib is None:  # pragma: no cover - PyTables' wheels export these
        found = tables.utilsextension.get_filters(leaf._v_parent._v_objectid, leaf._v_name) or {}
        return tuple(StoredFilter(-1, str(n), tuple(int(p) for p in ps)) for n, ps in found.items())
    plist = lib.H5Dget_create_plist(leaf._v_objectid)
    if plist < 0:
        raise tables.HDF5ExtError(f"node {leaf._v_pathname}: HDF5 could not read its creation properties")
    try:
        return tuple(_one_filter(lib, plist, i) for i in range(max(lib.H5Pget_nfilters(plist), 0)))
    finally:
        lib.H5Pclose(plist)


def _one_filter(lib: Any, plist: int, index: int) -> StoredFilter:
    flags, nparams, config = ctypes.c_uint(), ctypes.c_size_t(32), ctypes.c_uint()
    params = (ctypes.c_uint * 32)()
    name = ctypes.create_string_buffer(256)
    ident = lib.H5Pget_filter2(plist, index, flags, nparams, params, 256, name, config)
    if ident < 0:
        import tables

        raise tables.HDF5ExtError(f"HDF5 could not read filter {index} of the pipeline")
    count = min(nparams.value, 32)
    return StoredFilter(int(ident), name.value.decode("utf-8", "replace"), tuple(params[:count]))


def hdf5_can_apply(filter_id: int) -> bool:
    """Whether PyTables' HDF5 has the filter (built in, or a plugin it found).

    Examples
    --------
    >>> hdf5_can_apply(1), hdf5_can_apply(32008)  # deflate; bitshuffle is not built in
    (True, False)
    """
    lib = library()
    return lib is not None and filter_id >= 0 and lib.H5Zfilter_avail(filter_id) > 0


def stored_node(leaf: Any) -> StoredNode:
    """How ``leaf`` is stored, its filters read by id; a contiguous node has none.

    The one place that pairs :class:`~dask_tables.hdf5.storednode.StoredNode`
    with the filters HDF5 reports: the reader's verdict and the writer's
    plan both describe a node through it.  Call it with the file open and
    the registry lock held.

    Examples
    --------
    >>> import numpy as np, tables
    >>> with tables.open_file("stored.h5", "w") as f:
    ...     x = f.create_carray("/", "x", obj=np.arange(4.0), chunkshape=(2,),
    ...                         filters=tables.Filters(complevel=1, complib="zlib"))
    ...     stored_node(x).filters
    (('shuffle', (8,)), ('deflate', (1,)))
    """
    return StoredNode.of(leaf, stored_filters(leaf) if leaf.chunkshape is not None else ())
