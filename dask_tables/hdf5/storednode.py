"""How one node is stored in its file: what the reads and writes of its chunks share.

"Stored" means one thing throughout: as the file holds it.

* :class:`StoredNode` (``StoredNode.of(leaf)``): shape, chunk shape, one
  element as the chunks hold it (``dtype_on_disk``), the shape of an atom's
  cells, the filters as the file records them, and the record PyTables
  reads where the file lays records out otherwise.  It is plain data: it
  pickles, and holds nothing open.  The direct read path
  (:mod:`dask_tables.array.direct`) and the writer
  (``dask_tables.write``) both describe a node through it.
* :class:`StoredFilter` and :func:`stored_filters`: a dataset's filter
  pipeline as the file records it, by HDF5 filter id (``H5Pget_filter2``),
  so a filter is known by its id even where PyTables has no name for it;
  :func:`hdf5_can_apply` says whether PyTables' HDF5 has a filter.
* :func:`hdf5_reads_as`: the one check that HDF5 agrees with dask_tables'
  filters: the reader compares its decoding of a node's first chunk with
  HDF5's read of it, the writer its encoding of a trial chunk once HDF5 has
  read it back (``dask_tables.write.trial``).

The stored HDF5 type itself (its exact numpy dtype, whether it is stored as
numpy reads it) is :mod:`dask_tables.hdf5.storedtypes`.  Call the functions
here with the file open and the process lock held (they call into HDF5).
"""

from __future__ import annotations

import ctypes
import math
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import tables

from .calls import other_record_layout
from .fields import same_values
from .libhdf5 import library

__all__ = [
    "FilterSpec",
    "StoredFilter",
    "StoredNode",
    "hdf5_can_apply",
    "hdf5_reads_as",
    "register_filter_name",
    "stored_filters",
]

# One HDF5 filter of a dataset's pipeline: the name its class is registered under, and its parameters.
FilterSpec = tuple[str, tuple[int, ...]]

# HDF5 filter id -> (the name of dask_tables' class for it, how the name a file records for it begins).
# The filters layer above fills it: dask_tables.filters.base.register calls register_filter_name.
_NAMED: dict[int, tuple[str, str | None]] = {}
# Filters HDF5 defines that have no class in dask_tables.filters (read through HDF5's pipeline):
# their names, for messages.
_UNHANDLED: dict[int, str] = {5: "nbit", 6: "scaleoffset"}


def register_filter_name(filter_id: int, name: str, stored_prefix: str | None = None) -> None:
    """Name HDF5 filter ``filter_id`` ``name`` in :attr:`StoredFilter.name`.

    Called by :func:`dask_tables.filters.base.register` for each filter
    class (the filters layer sits above this one, so it tells this module
    its names).  ``stored_prefix``: how the name a file records for the
    filter begins, for a file whose filter ids cannot be read.

    Examples
    --------
    >>> StoredFilter(1, "deflate", (1,)).name  # dask_tables.filters registered it
    'deflate'
    """
    _NAMED[filter_id] = (name, stored_prefix)


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
        known = _NAMED.get(self.id)
        if known is not None:
            return known[0]
        if self.id in _UNHANDLED:
            return _UNHANDLED[self.id]
        for name, prefix in _NAMED.values():
            if prefix and self.stored_name.startswith(prefix):
                return name
        return self.stored_name

    def describe(self) -> str:
        """``filter 32008 (bitshuffle; see ...)``: by id and by the name the file gives it."""
        ident = f"filter {self.id}" if self.id >= 0 else "a filter"
        return f"{ident} ({self.stored_name or self.name or 'unnamed'})"


def stored_filters(leaf: Any) -> tuple[StoredFilter, ...]:
    """The filter pipeline of a chunked ``leaf``, in write order, with HDF5's filter ids.

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


@dataclass(frozen=True)
class StoredNode:
    """How one node is stored: shape, chunks, element type and filters, picklable.

    Attributes
    ----------
    shape : tuple of int
        The node's shape (without the cells of an atom with a shape).
    chunkshape : tuple of int or None
        Its HDF5 chunk shape, same axes; ``None`` for a contiguous (or
        compact) node.
    dtype_on_disk : numpy.dtype
        One element as the chunks hold it: the record of a table, or the
        atom's base dtype, in the file's byte order.  (``stored`` is its
        deprecated old name.)
    filters : tuple
        The HDF5 filter pipeline in write order, ``(name, params)`` pairs, read by filter id
        (:func:`stored_filters`).
    cell_shape : tuple of int
        Shape of an atom with a shape (``Int32Atom(shape=(2,))``), else ``()``.
    memory : numpy.dtype or None
        The record PyTables reads, where the file stores another layout
        (gaps, padding, members of both byte orders): direct reads are
        repacked into it.  ``None`` where ``dtype_on_disk`` (in native
        order) is it.

    Examples
    --------
    >>> import numpy as np, tables
    >>> with tables.open_file("example.h5", "w") as f:
    ...     x = f.create_carray("/", "x", obj=np.arange(10.0), chunkshape=(4,), byteorder="big")
    ...     StoredNode.of(x)
    StoredNode(shape=(10,), chunkshape=(4,), dtype_on_disk=dtype('>f8'), filters=(), cell_shape=(), memory=None)
    """

    shape: tuple[int, ...]
    chunkshape: tuple[int, ...] | None
    dtype_on_disk: np.dtype
    filters: tuple[FilterSpec, ...] = ()
    cell_shape: tuple[int, ...] = ()
    memory: np.dtype | None = None

    @classmethod
    def of(cls, leaf: tables.Leaf, filters: Iterable[Any] | None = None) -> StoredNode:
        """How ``leaf`` is stored; its filters read by id (:func:`stored_filters`) unless given.

        ``filters``: the pipeline to record instead, each with ``name`` and
        ``params``; a contiguous node has none.  Where members of both byte
        orders share one record (PyTables' byte order ``"mixed"``),
        ``dtype_on_disk`` is PyTables' record as it reports it.

        Examples
        --------
        >>> import numpy as np, tables
        >>> with tables.open_file("example.h5", "w") as f:
        ...     x = f.create_carray("/", "x", obj=np.arange(4.0), chunkshape=(2,),
        ...                         filters=tables.Filters(complevel=1, complib="zlib"))
        ...     StoredNode.of(x).filters
        (('shuffle', (8,)), ('deflate', (1,)))
        """
        if filters is None:
            filters = stored_filters(leaf) if leaf.chunkshape is not None else ()
        shape = tuple(int(n) for n in leaf.shape)
        chunkshape = None if leaf.chunkshape is None else tuple(int(n) for n in leaf.chunkshape)
        pipeline = tuple((str(f.name), tuple(int(p) for p in f.params)) for f in filters)
        if isinstance(leaf, tables.Table):
            on_disk, cell_shape = leaf.dtype, ()
            in_file = other_record_layout(leaf)
            if in_file is not None:
                memory = np.dtype(leaf.dtype).newbyteorder("=")
                return cls(shape, chunkshape, in_file, pipeline, (), memory)
        else:
            atom_dtype = leaf.atom.dtype
            on_disk, cell_shape = atom_dtype.base, tuple(int(n) for n in atom_dtype.shape)
        if leaf.byteorder in ("little", "big"):
            on_disk = on_disk.newbyteorder("<" if leaf.byteorder == "little" else ">")
        return cls(shape, chunkshape, np.dtype(on_disk), pipeline, cell_shape)

    @property
    def stored(self) -> np.dtype:
        """Deprecated: :attr:`dtype_on_disk`."""
        warnings.warn(
            "StoredNode.stored is deprecated: use StoredNode.dtype_on_disk", DeprecationWarning, stacklevel=2
        )
        return self.dtype_on_disk

    @property
    def dtype(self) -> np.dtype:
        """One element as PyTables reads and writes it (``memory`` where there is one, else ``dtype_on_disk``)."""
        return self.dtype_on_disk if self.memory is None else self.memory

    @property
    def chunk_nbytes(self) -> int:
        """Raw bytes of one chunk."""
        assert self.chunkshape is not None, "a contiguous node has no chunks"
        return math.prod(self.chunkshape + self.cell_shape) * self.dtype_on_disk.itemsize

    @property
    def first_chunk(self) -> tuple[int, ...]:
        """The origin of the first chunk: ``(0, ...)``."""
        return (0,) * len(self.shape)

    @property
    def first_region(self) -> tuple[slice, ...]:
        """The elements of the node that its first chunk holds."""
        assert self.chunkshape is not None, "a contiguous node has no chunks"
        return tuple(slice(0, min(c, n)) for c, n in zip(self.chunkshape, self.shape, strict=True))


def hdf5_reads_as(leaf: tables.Leaf, storage: StoredNode, values: np.ndarray) -> bool | None:
    """Whether HDF5 reads the first chunk's region of ``leaf`` exactly as ``values``.

    The one check that dask_tables' filters agree with HDF5's: ``values``
    are what our decoders made of the stored chunk (a read), or the values
    our encoders wrote into it (a write).  Equal means same shape and same
    bytes, field by field, once ``values`` are cast to the dtype PyTables
    reads.  ``None`` where HDF5 cannot read the chunk at all (PyTables
    lacks one of the filters: LZF, hdf5plugin's); the caller decides what
    that means.

    Examples
    --------
    >>> import numpy as np, tables
    >>> with tables.open_file("example.h5", "w") as f:
    ...     x = f.create_carray("/", "x", obj=np.arange(10.0), chunkshape=(4,))
    ...     storage = StoredNode.of(x)
    ...     hdf5_reads_as(x, storage, np.arange(4.0)), hdf5_reads_as(x, storage, np.zeros(4))
    (True, False)
    """
    region = storage.first_region
    try:
        if isinstance(leaf, tables.Table):
            expected = leaf.read(0, region[0].stop)
        else:
            expected = np.asarray(leaf[region])
    except tables.HDF5ExtError:
        return None
    mine = np.ascontiguousarray(values, dtype=expected.dtype)
    return mine.shape == expected.shape and same_values(mine, expected)
