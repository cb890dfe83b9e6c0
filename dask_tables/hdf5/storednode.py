"""How one node is stored in its file: the description reads and writes of its chunks share.

:class:`StoredNode` holds what the direct read path
(:mod:`dask_tables.array.direct`) and the writer (:mod:`dask_tables.write`)
both need to know about a node's chunks: shape, chunk shape, one element as
stored, the shape of an atom's cells, the HDF5 filter pipeline, and the
record PyTables reads where the file lays records out otherwise.  It is
plain data: it pickles, and holds nothing open.

:func:`hdf5_reads_as` is the one check that HDF5 agrees with dask_tables'
filters: the reader compares its decoding of a node's first chunk with
HDF5's read of it, the writer its encoding of a trial chunk once HDF5 has
read it back (:mod:`dask_tables.write.trial`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import tables

from .calls import other_record_layout
from .fields import same_values

__all__ = ["StoredNode", "hdf5_reads_as"]

# One HDF5 filter of a dataset's pipeline: the name its class is registered under, and its parameters.
FilterSpec = tuple[str, tuple[int, ...]]


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
    stored : numpy.dtype
        One element as stored: the record of a table, or the atom's base
        dtype, in the file's byte order.
    filters : tuple
        The HDF5 filter pipeline in write order, ``(name, params)`` pairs, read by filter id
        (:func:`dask_tables.filters.stored.stored_filters`).
    cell_shape : tuple of int
        Shape of an atom with a shape (``Int32Atom(shape=(2,))``), else ``()``.
    memory : numpy.dtype or None
        The record PyTables reads, where the file stores another layout
        (gaps, padding, members of both byte orders): direct reads are
        repacked into it.  ``None`` where ``stored`` (in native order) is it.

    Examples
    --------
    >>> import numpy as np, tables
    >>> with tables.open_file("example.h5", "w") as f:
    ...     x = f.create_carray("/", "x", obj=np.arange(10.0), chunkshape=(4,), byteorder="big")
    ...     StoredNode.of(x, [])
    StoredNode(shape=(10,), chunkshape=(4,), stored=dtype('>f8'), filters=(), cell_shape=(), memory=None)
    """

    shape: tuple[int, ...]
    chunkshape: tuple[int, ...] | None
    stored: np.dtype
    filters: tuple[FilterSpec, ...] = ()
    cell_shape: tuple[int, ...] = ()
    memory: np.dtype | None = None

    @classmethod
    def of(cls, leaf: tables.Leaf, filters: Iterable[Any]) -> StoredNode:
        """How ``leaf`` is stored, with its filter pipeline ``filters`` (each with ``name`` and ``params``).

        Call with the file open and the process lock held (it calls into
        HDF5).  ``filters`` is what
        :func:`dask_tables.filters.stored.stored_filters` reads, by filter
        id, for the same leaf.  Where members of both byte orders share one
        record (PyTables' byte order ``"mixed"``), ``stored`` is PyTables'
        record as it reports it.
        """
        shape = tuple(int(n) for n in leaf.shape)
        chunkshape = None if leaf.chunkshape is None else tuple(int(n) for n in leaf.chunkshape)
        pipeline = tuple((str(f.name), tuple(int(p) for p in f.params)) for f in filters)
        if isinstance(leaf, tables.Table):
            stored, cell_shape = leaf.dtype, ()
            in_file = other_record_layout(leaf)
            if in_file is not None:
                memory = np.dtype(leaf.dtype).newbyteorder("=")
                return cls(shape, chunkshape, in_file, pipeline, (), memory)
        else:
            atom_dtype = leaf.atom.dtype
            stored, cell_shape = atom_dtype.base, tuple(int(n) for n in atom_dtype.shape)
        if leaf.byteorder in ("little", "big"):
            stored = stored.newbyteorder("<" if leaf.byteorder == "little" else ">")
        return cls(shape, chunkshape, np.dtype(stored), pipeline, cell_shape)

    @property
    def dtype(self) -> np.dtype:
        """One element as PyTables reads and writes it (``memory`` where there is one, else ``stored``)."""
        return self.stored if self.memory is None else self.memory

    @property
    def chunk_nbytes(self) -> int:
        """Raw bytes of one chunk."""
        assert self.chunkshape is not None, "a contiguous node has no chunks"
        return math.prod(self.chunkshape + self.cell_shape) * self.stored.itemsize

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
    that means.  Call with the file open and the process lock held.

    Examples
    --------
    >>> import numpy as np, tables
    >>> with tables.open_file("example.h5", "w") as f:
    ...     x = f.create_carray("/", "x", obj=np.arange(10.0), chunkshape=(4,))
    ...     storage = StoredNode.of(x, [])
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
