"""Direct chunk reads: chunk index -> ``os.preadv`` -> decode -> assemble, no lock held.

HDF5 (as PyTables' wheels build it) serializes every call behind one global
mutex, decompression included, so the pipeline read of two threads is no
faster than one.  The direct path asks HDF5 only where the chunks live, once
per file version and process (:mod:`dask_tables.chunkindex`: the whole index
in one pass, under the process lock, then cached), then reads the stored
bytes with ``os.preadv`` into reused per-thread buffers (or straight into
the result) and decodes them (:mod:`dask_tables.codecs`) with no lock held
and the GIL released, so two threads really decode two chunks.

Chunks HDF5 never wrote read as the dataset's fill value, kept with the
chunk index.
"""

from __future__ import annotations

import functools
import itertools
import os
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import tables

from . import diagnostics
from .chunkindex import chunk_index
from .codecs import DecodeError, FilterPipeline, UnsupportedFilterError
from .errors import CorruptChunkError, FileChangedError
from .fingerprint import Fingerprint, check_unchanged
from .hdf5types import stored_as_read

__all__ = ["ChunkLayout", "read_direct", "same_values", "take_field"]


@dataclass(frozen=True)
class ChunkLayout:
    """How a chunked node is stored: what the direct path needs, picklable.

    Attributes
    ----------
    shape : tuple of int
        The node's shape (without the cells of an atom with a shape).
    chunkshape : tuple of int
        Its HDF5 chunk shape, same axes.
    stored : numpy.dtype
        One element as stored: the record of a table, or the atom's base
        dtype, in the file's byte order.
    cell_shape : tuple of int
        Shape of an atom with a shape (``Int32Atom(shape=(2,))``), else ``()``.
    filters : tuple of (name, params)
        The HDF5 filter pipeline in write order.
    """

    shape: tuple[int, ...]
    chunkshape: tuple[int, ...]
    stored: np.dtype
    cell_shape: tuple[int, ...]
    filters: tuple[tuple[str, tuple[int, ...]], ...]

    @property
    def chunk_nbytes(self) -> int:
        """Raw bytes of one chunk."""
        cells = int(np.prod(self.chunkshape + self.cell_shape, dtype=np.int64))
        return cells * self.stored.itemsize

    @classmethod
    def of(cls, leaf: tables.Leaf) -> ChunkLayout | None:
        """The layout of ``leaf``, or ``None`` if the direct path cannot read it.

        ``None`` for a contiguous (or compact) node, and for a filter
        without a decoder.
        """
        if leaf.chunkshape is None:
            return None
        filters = tables.utilsextension.get_filters(leaf._v_parent._v_objectid, leaf._v_name) or {}
        pipeline = tuple((str(name), tuple(int(p) for p in params)) for name, params in filters.items())
        if isinstance(leaf, tables.Table):
            stored, cell_shape = leaf.dtype, ()
        else:
            atom_dtype = leaf.atom.dtype
            stored, cell_shape = atom_dtype.base, tuple(int(n) for n in atom_dtype.shape)
        if leaf.byteorder not in ("little", "big", "irrelevant"):
            return None  # "mixed": members of both byte orders in one record
        if leaf.byteorder != "irrelevant":
            stored = stored.newbyteorder("<" if leaf.byteorder == "little" else ">")
        layout = cls(
            shape=tuple(int(n) for n in leaf.shape),
            chunkshape=tuple(int(n) for n in leaf.chunkshape),
            stored=np.dtype(stored),
            cell_shape=cell_shape,
            filters=pipeline,
        )
        try:
            layout.pipeline()
            if stored_as_read(leaf) is False:
                return None  # HDF5 converts on read (12-bit integers, padded strings...)
            if all(layout.shape) and not layout._decodes_like_pytables(leaf):
                return None
        except (UnsupportedFilterError, tables.HDF5ExtError, tables.NotChunkedError, DecodeError):
            return None
        return layout

    def _decodes_like_pytables(self, leaf: tables.Leaf) -> bool:
        """Decode the first chunk and compare it with PyTables' read of the same region.

        HDF5 may store a record with another layout than the one PyTables
        shows (member order, padding, byte order per member): the direct
        path is used only where its first chunk reads exactly as PyTables
        reads it.  Also fails (HDF5ExtError) where HDF5 says the node is not
        chunked after all.
        """
        origin = (0,) * len(self.shape)
        info = leaf.chunk_info(origin)
        if info.offset is None:
            return not isinstance(leaf, tables.Table)  # an array's atom says it all
        raw = leaf.read_chunk(origin)
        decoded = np.frombuffer(self.pipeline().decode(raw, int(info.filter_mask)), dtype=self.stored)
        chunk = decoded.reshape(self.chunkshape + self.cell_shape)
        region = tuple(slice(0, min(c, n)) for c, n in zip(self.chunkshape, self.shape, strict=True))
        try:
            if isinstance(leaf, tables.Table):
                expected = leaf.read(0, region[0].stop)
            else:
                expected = np.asarray(leaf[region])
        except tables.HDF5ExtError:
            # PyTables lacks one of the filters (LZF): nothing to compare with.  An
            # array's atom describes its elements fully; a table's records may not.
            return not isinstance(leaf, tables.Table)
        mine = np.ascontiguousarray(chunk[region], dtype=expected.dtype)
        return mine.shape == expected.shape and same_values(mine, expected)

    def pipeline(self) -> FilterPipeline:
        """The decoder of this layout's chunks (built once per process)."""
        return _pipeline(self.filters, self.chunk_nbytes)


def same_values(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal bytes, field by field (padding between record members ignored)."""
    if a.dtype.names:
        return all(same_values(a[name], b[name]) for name in a.dtype.names)
    return a.tobytes() == b.tobytes()


@functools.lru_cache(maxsize=256)
def _pipeline(filters: tuple[tuple[str, tuple[int, ...]], ...], chunk_nbytes: int) -> FilterPipeline:
    return FilterPipeline(filters, chunk_nbytes)


@dataclass(frozen=True)
class _Piece:
    """One chunk's share of a selection: where it is, what of it, and where it goes."""

    start: tuple[int, ...]  # the chunk's first element
    local: tuple[slice, ...]  # what to take from the chunk
    out: tuple[slice, ...]  # where it lands in the result
    region: tuple[slice, ...]  # the same elements in the node's coordinates


def _axis_pieces(sel: slice, chunk: int) -> Iterator[tuple[int, slice, slice, slice]]:
    """Per chunk touched along one axis: (chunk start, local slice, output slice, global slice)."""
    start, stop, step = sel.start, sel.stop, sel.step
    if start >= stop:
        return
    if step >= chunk:  # at most one point per chunk: walk the points
        for index, point in enumerate(range(start, stop, step)):
            origin = point // chunk * chunk
            yield (
                origin,
                slice(point - origin, point - origin + 1),
                slice(index, index + 1),
                slice(point, point + 1),
            )
        return
    for k in range(start // chunk, (stop - 1) // chunk + 1):
        origin = k * chunk
        first = start if start >= origin else start + -(-(origin - start) // step) * step
        end = min(origin + chunk, stop)
        if first >= end:
            continue
        count = len(range(first, end, step))
        out_start = (first - start) // step
        last = first + (count - 1) * step
        yield (
            origin,
            slice(first - origin, last - origin + 1, step),
            slice(out_start, out_start + count),
            slice(first, last + 1, step),
        )


def _pieces(slab: Sequence[slice], chunkshape: Sequence[int]) -> Iterator[_Piece]:
    per_axis = [list(_axis_pieces(sel, chunk)) for sel, chunk in zip(slab, chunkshape, strict=True)]
    for combo in itertools.product(*per_axis):
        yield _Piece(
            start=tuple(c[0] for c in combo),
            local=tuple(c[1] for c in combo),
            out=tuple(c[2] for c in combo),
            region=tuple(c[3] for c in combo),
        )


def _takes_whole_chunk(layout: ChunkLayout, piece: _Piece, target: np.ndarray) -> bool:
    """Whether a chunk's raw bytes can be written straight into its place in the result.

    Yes where the selection takes the chunk whole and its place in the
    result is one contiguous run of memory, in the stored byte order.
    """
    whole = all(
        s.start == 0 and s.stop == c and s.step == 1
        for s, c in zip(piece.local, layout.chunkshape, strict=True)
    )
    return whole and target.flags.c_contiguous and target.dtype == layout.stored


def take_field(records: Any, field: str | None) -> Any:
    """The ``field`` column (``"pos/x"`` for nested ones) of records or of a record dtype; all without one.

    Examples
    --------
    >>> import numpy as np
    >>> take_field(np.dtype([("pos", [("x", "f8"), ("y", "i2")])]), "pos/y")
    dtype('int16')
    """
    if field is not None:
        for name in field.split("/"):
            records = records[name]
    return records


def _scratch(name: str, nbytes: int) -> np.ndarray:
    """A reused byte buffer of this thread, at least ``nbytes`` long (``name``: which one).

    Each thread keeps one buffer per name, grown to the largest chunk it has
    read; a chunk larger than ``_SCRATCH_KEEP`` gets a buffer of its own,
    not kept.  No per-chunk allocation in the steady state, and at most two
    buffers a thread (stored bytes, decoded chunk).
    """
    if nbytes > _SCRATCH_KEEP:
        return np.empty(nbytes, dtype=np.uint8)
    buffer = getattr(_buffers, name, None)
    if buffer is None or buffer.size < nbytes:
        buffer = np.empty(-(-nbytes // _SCRATCH_GRAIN) * _SCRATCH_GRAIN, dtype=np.uint8)
        setattr(_buffers, name, buffer)
    return buffer[:nbytes]


# Per thread: "raw" (stored bytes of a chunk, as read) and "decoded" (a chunk
# decoded for a partial copy).  Each is used by its own thread only, within
# one chunk's read, decode and copy; never returned to a caller.
_buffers = threading.local()
_SCRATCH_KEEP = 64 * 2**20  # larger chunks get a buffer of their own
_SCRATCH_GRAIN = 64 * 2**10


def _open_checked(path: str, node: str, fingerprint: Fingerprint) -> tuple[int, int]:
    """Open ``path`` for reading and check it is the fingerprinted file: (fd, size)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        raise FileChangedError(path, node, "the file was deleted") from None
    try:
        opened = os.fstat(fd)
        check_unchanged(path, node, fingerprint, Fingerprint.from_stat(opened))
    except BaseException:
        os.close(fd)
        raise
    return fd, opened.st_size


class _Reader:
    """Reads and decodes the stored chunks of one task into its result (one thread)."""

    def __init__(self, path: str, node: str, layout: ChunkLayout, fd: int, file_size: int) -> None:
        self.path, self.node, self.layout = path, node, layout
        self.fd, self.file_size = fd, file_size
        self.pipeline = layout.pipeline()
        self.chunk_shape = layout.chunkshape + layout.cell_shape
        self.unfiltered = (1 << len(layout.filters)) - 1  # the mask of a chunk stored as is
        self.chunks = self.bytes_read = 0

    def read(
        self, piece: _Piece, target: np.ndarray, offset: int, size: int, mask: int, field: str | None
    ) -> None:
        """Put the chunk stored at ``offset`` (``size`` bytes) into ``target``, its share of the result."""
        if offset + size > self.file_size:  # a damaged chunk index: never read (or allocate) that
            raise CorruptChunkError(
                self.path,
                self.node,
                piece.start,
                f"stored at bytes {offset}..{offset + size}, past the end of the file",
            )
        self.chunks += 1
        self.bytes_read += size
        in_place = _takes_whole_chunk(self.layout, piece, target)
        if in_place and mask & self.unfiltered == self.unfiltered:
            self._pread(target, offset, size, piece)  # straight from the file into the result
            return
        raw = _scratch("raw", size)
        self._pread(raw, offset, size, piece)
        # the last decoder writes into the result, or into this thread's buffer
        out = target.reshape(-1).view(np.uint8) if in_place else _scratch("decoded", self.layout.chunk_nbytes)
        try:
            data = self.pipeline.decode(raw, mask, out=out)
        except DecodeError as err:
            raise CorruptChunkError(self.path, self.node, piece.start, str(err)) from None
        if in_place and isinstance(data, np.ndarray) and np.shares_memory(data, target):
            return  # the last decoder wrote into the result
        if isinstance(data, np.ndarray) and data.ndim > 1:
            chunk = data.view(self.layout.stored).reshape(self.chunk_shape)
        else:
            chunk = np.frombuffer(data, dtype=self.layout.stored).reshape(self.chunk_shape)
        target[...] = take_field(chunk[piece.local], field)

    def _pread(self, buffer: np.ndarray, offset: int, size: int, piece: _Piece) -> None:
        if os.preadv(self.fd, [buffer], offset) != size:  # the file shrank after it was opened
            raise FileChangedError(self.path, self.node, f"chunk at {piece.start} cut short")


def read_direct(
    path: str,
    node: str,
    fingerprint: Fingerprint,
    layout: ChunkLayout,
    slab: Sequence[slice],
    field: str | None = None,
) -> np.ndarray:
    """Read ``node[slab]`` chunk by chunk, decoding outside every lock.

    The node's chunk index comes from this process's cache
    (:func:`dask_tables.chunkindex.chunk_index`): read once per file
    version, in one pass, under the process lock.  After that a read takes
    no lock and makes no HDF5 call: it opens the file with ``os.open``,
    checks its fingerprint (``fstat``), reads each chunk's stored bytes into
    a reused buffer of its thread (or straight into the result), decodes,
    and checks the fingerprint again.

    Parameters
    ----------
    path, node : str
        The file and the node's path in it.
    fingerprint : Fingerprint
        The file as it must still be; any change raises.
    layout : ChunkLayout
        How the node is stored.
    slab : sequence of slice
        One slice with positive step per axis of ``layout.shape``.
    field : str, optional
        For a table: the column to keep (``"pos/x"`` for nested ones),
        taken from each chunk as it is decoded.

    Returns
    -------
    numpy.ndarray
        What PyTables reads: shape, the slab's shape plus ``layout.cell_shape``
        (plus the column's cell shape); dtype, ``layout.stored`` (or the
        column's) in native byte order.

    Raises
    ------
    FileChangedError
        The file is not the one fingerprinted.
    CorruptChunkError
        A chunk's stored bytes do not decode (or fail their checksum).

    Examples
    --------
    >>> import numpy as np, tables
    >>> with tables.open_file("example.h5", "w") as f:
    ...     _ = f.create_carray("/", "x", obj=np.arange(10.0), chunkshape=(4,),
    ...                         filters=tables.Filters(complevel=1, complib="zlib"))
    >>> with tables.open_file("example.h5") as f:
    ...     layout = ChunkLayout.of(f.root.x)
    >>> read_direct("example.h5", "/x", Fingerprint.of("example.h5"), layout,
    ...             [slice(1, 9, 3)])
    array([1., 4., 7.])
    """
    native = layout.stored.newbyteorder("=")
    column = take_field(native, field)
    out_shape = tuple(len(range(s.start, s.stop, s.step)) for s in slab) + layout.cell_shape + column.shape
    out = np.empty(out_shape, dtype=column.base)
    if out.size == 0:
        return out
    pieces = list(_pieces(slab, layout.chunkshape))
    fd, file_size = _open_checked(path, node, fingerprint)
    try:
        index = chunk_index(path, node, fingerprint)
        offsets, sizes, masks = index.locate([piece.start for piece in pieces])
        reader = _Reader(path, node, layout, fd, file_size)
        filled = 0
        for piece, offset, size, mask in zip(
            pieces, offsets.tolist(), sizes.tolist(), masks.tolist(), strict=True
        ):
            if offset < 0:  # never written: the fill value
                out[piece.out] = take_field(index.fill, field)
                filled += 1
            else:
                reader.read(piece, out[piece.out], offset, size, mask, field)
    finally:
        os.close(fd)
    check_unchanged(path, node, fingerprint)
    diagnostics.add(
        direct_chunks=reader.chunks,
        direct_bytes_read=reader.bytes_read,
        direct_bytes_decoded=reader.chunks * layout.chunk_nbytes,
        direct_fill_chunks=filled,
    )
    return out
