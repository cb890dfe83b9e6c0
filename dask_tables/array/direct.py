"""Direct chunk reads: chunk index -> ``os.preadv`` -> decode -> assemble, no lock held.

HDF5 (as PyTables' wheels build it) serializes every call behind one global
mutex, decompression included, so the pipeline read of two threads is no
faster than one.  The direct path asks HDF5 only where the chunks live, once
per file version and process (:mod:`dask_tables.hdf5.chunkindex`: the whole index
in one pass, under the process lock, then cached), then reads the stored
bytes with ``os.preadv`` into reused per-thread buffers (or straight into
the result) and decodes them (:mod:`dask_tables.filters`) with no lock held
and the GIL released, so two threads really decode two chunks.

Chunks HDF5 never wrote read as the dataset's fill value, kept with the
chunk index.
"""

from __future__ import annotations

import itertools
import math
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import tables

from .. import diagnostics
from ..errors import CorruptChunkError, FileChangedError
from ..filters import DecodeError, FilterPipeline, UnsupportedFilterError, filter_pipeline, stored_filters
from ..hdf5.calls import file_dtype
from ..hdf5.chunkindex import ChunkIndex, chunk_index
from ..hdf5.fingerprint import Fingerprint, check_unchanged
from ..hdf5.storedtypes import stored_as_read

__all__ = ["ChunkLayout", "read_direct", "repacked", "same_values", "take_field"]


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
    memory : numpy.dtype or None
        The record PyTables reads, where the file stores another layout
        (gaps, padding, members of both byte orders): reads are repacked
        into it.  ``None`` where ``stored`` (in native order) is it.
    """

    shape: tuple[int, ...]
    chunkshape: tuple[int, ...]
    stored: np.dtype
    cell_shape: tuple[int, ...]
    filters: tuple[tuple[str, tuple[int, ...]], ...]
    memory: np.dtype | None = None

    @property
    def chunk_nbytes(self) -> int:
        """Raw bytes of one chunk."""
        return math.prod(self.chunkshape + self.cell_shape) * self.stored.itemsize

    @classmethod
    def of(cls, leaf: tables.Leaf) -> ChunkLayout | None:
        """The layout of ``leaf``, or ``None`` if the direct path cannot read it.

        ``None`` for a contiguous (or compact) node, and for a filter
        without a decoder.
        """
        if leaf.chunkshape is None:
            return None
        pipeline = tuple((f.name, f.params) for f in stored_filters(leaf))
        if isinstance(leaf, tables.Table):
            stored, cell_shape = leaf.dtype, ()
            in_file = file_dtype(leaf)
            if in_file is not None and in_file.newbyteorder("=") != leaf.dtype.newbyteorder("="):
                return cls._records_laid_out_otherwise(leaf, in_file, pipeline)
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

    @classmethod
    def _records_laid_out_otherwise(
        cls, leaf: tables.Table, in_file: np.dtype, pipeline: tuple[tuple[str, tuple[int, ...]], ...]
    ) -> ChunkLayout | None:
        """A table whose stored records are not PyTables' (gaps, padding, mixed byte order).

        PyTables' own read of such a table may corrupt memory
        (``nested-type-with-gaps.h5`` in PyTables' tests), so it is never
        called: the chunks are decoded as the file's type says and repacked
        into PyTables' record.  The first stored chunk must decode to the
        stored size.
        """
        layout = cls(
            shape=tuple(int(n) for n in leaf.shape),
            chunkshape=tuple(int(n) for n in leaf.chunkshape),
            stored=in_file,
            cell_shape=(),
            filters=pipeline,
            memory=np.dtype(leaf.dtype).newbyteorder("="),
        )
        origin = (0,) * len(layout.shape)
        try:
            if all(layout.shape) and leaf.chunk_info(origin).offset is not None:
                info = leaf.chunk_info(origin)
                layout.pipeline().decode(leaf.read_chunk(origin), int(info.filter_mask))
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
            # PyTables lacks one of the filters (LZF, hdf5plugin's): nothing to compare
            # with.  An array's atom describes its elements fully; a table's records do
            # where the file's own record type is exactly the layout decoded.
            return not isinstance(leaf, tables.Table) or file_dtype(leaf) == self.stored
        mine = np.ascontiguousarray(chunk[region], dtype=expected.dtype)
        return mine.shape == expected.shape and same_values(mine, expected)

    def pipeline(self) -> FilterPipeline:
        """The decoder of this layout's chunks (built once per process)."""
        return filter_pipeline(self.filters, self.chunk_nbytes)


def repacked(records: np.ndarray, memory: np.dtype) -> np.ndarray:
    """``records`` in the ``memory`` layout, member by member (nested records too)."""
    out = np.empty(records.shape, dtype=memory)
    _copy_members(records, out)
    return out


def _copy_members(source: np.ndarray, target: np.ndarray) -> None:
    if target.dtype.names is None:
        target[...] = source
        return
    for name in target.dtype.names:
        _copy_members(source[name], target[name])


def same_values(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal bytes, field by field (padding between record members ignored)."""
    if a.dtype.names:
        return all(same_values(a[name], b[name]) for name in a.dtype.names)
    return a.tobytes() == b.tobytes()


class _Piece(NamedTuple):
    """One chunk's share of a selection: where it is, what of it, and where it goes."""

    start: tuple[int, ...]  # the chunk's first element
    local: tuple[slice, ...]  # what to take from the chunk
    out: tuple[slice, ...]  # where it lands in the result
    whole: bool  # the selection takes the chunk whole


def _axis_pieces(sel: slice, chunk: int) -> list[tuple[int, slice, slice, bool]]:
    """Per chunk touched along one axis: (chunk start, local slice, output slice, taken whole)."""
    start, stop, step = sel.start, sel.stop, sel.step
    if start >= stop:
        return []
    if step >= chunk:  # at most one point per chunk: walk the points
        return [
            (
                point // chunk * chunk,
                slice(point % chunk, point % chunk + 1),
                slice(index, index + 1),
                chunk == 1,
            )
            for index, point in enumerate(range(start, stop, step))
        ]
    found = []
    for k in range(start // chunk, (stop - 1) // chunk + 1):
        origin = k * chunk
        first = start if start >= origin else start + -(-(origin - start) // step) * step
        end = origin + chunk if origin + chunk < stop else stop
        if first >= end:
            continue
        count = len(range(first, end, step))
        out_start = (first - start) // step
        last = first + (count - 1) * step
        found.append(
            (
                origin,
                slice(first - origin, last - origin + 1, step),
                slice(out_start, out_start + count),
                count == chunk,
            )
        )
    return found


def _pieces(slab: Sequence[slice], chunkshape: Sequence[int]) -> list[_Piece]:
    per_axis = [_axis_pieces(sel, chunk) for sel, chunk in zip(slab, chunkshape, strict=True)]
    if len(per_axis) == 1:  # the common case, without the generic zip
        return [_Piece((o,), (loc,), (out,), whole) for o, loc, out, whole in per_axis[0]]
    return [
        _Piece(
            tuple(c[0] for c in combo),
            tuple(c[1] for c in combo),
            tuple(c[2] for c in combo),
            all(c[3] for c in combo),
        )
        for combo in itertools.product(*per_axis)
    ]


def _whole_rows(layout: ChunkLayout, slab: Sequence[slice], out: np.ndarray) -> tuple[int, int] | None:
    """Chunks along axis 0 that ``slab`` takes whole, each a contiguous run of ``out``: ``(k0, k1)``.

    Where every other axis is taken whole by one chunk (a 1-D array; or
    chunks of whole rows), chunks ``k0 <= k < k1`` go straight into
    consecutive bytes of the result, in file order; ``None`` otherwise (or
    where fewer than two chunks would).
    """
    if out.dtype != layout.stored or not out.flags.c_contiguous:
        return None
    rows, *rest = slab
    if rows.step != 1:
        return None
    for sel, chunk, n in zip(rest, layout.chunkshape[1:], layout.shape[1:], strict=True):
        if chunk != n or (sel.start, sel.stop, sel.step) != (0, n, 1):
            return None
    chunk = layout.chunkshape[0]
    k0, k1 = -(-rows.start // chunk), rows.stop // chunk
    return (k0, k1) if k1 - k0 >= 2 else None


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

    def __init__(
        self, path: str, node: str, layout: ChunkLayout, index: ChunkIndex, fd: int, file_size: int
    ) -> None:
        self.path, self.node, self.layout, self.index = path, node, layout, index
        self.fd, self.file_size = fd, file_size
        self.pipeline = layout.pipeline()
        self.chunk_shape = layout.chunkshape + layout.cell_shape
        self.unfiltered = (1 << len(layout.filters)) - 1  # the mask of a chunk stored as is
        self.chunks = self.bytes_read = self.filled = 0
        self.stride = math.prod(index.grid[1:])  # chunk numbers from one chunk row to the next

    def read_pieces(self, slab: Sequence[slice], out: np.ndarray, field: str | None) -> None:
        """Read ``node[slab]`` into ``out``, chunk by chunk."""
        pieces = _pieces(slab, self.layout.chunkshape)
        if not pieces:
            return
        offsets, sizes, masks = self.index.locate([piece.start for piece in pieces])
        self._check_inside(offsets, sizes, lambda i: pieces[i].start)
        stored = out.dtype == self.layout.stored and field is None
        for piece, offset, size, mask in zip(
            pieces, offsets.tolist(), sizes.tolist(), masks.tolist(), strict=True
        ):
            target = out[piece.out]
            if offset < 0:  # never written: the fill value
                target[...] = take_field(self.index.fill, field)
                self.filled += 1
            elif piece.whole and stored and target.flags.c_contiguous:
                self._whole(target, offset, size, mask, piece.start)
            else:
                self._part(piece, target, offset, size, mask, field)

    def read_rows(self, k0: int, k1: int, out: np.ndarray) -> None:
        """Read the whole chunks ``k0 <= k < k1`` along axis 0 into ``out`` (their rows, contiguous).

        Chunks stored unfiltered and one after another in the file are read
        with one ``preadv`` per run, straight into the result.
        """
        chunk, nbytes = self.layout.chunkshape[0], self.layout.chunk_nbytes
        zeros = (0,) * (len(self.layout.shape) - 1)

        def start_of(i: int) -> tuple[int, ...]:
            return ((k0 + i) * chunk, *zeros)

        if self.stride == 1 and not self.layout.filters and self.index.one_run(k0, k1 - 1):
            # the common case, without a numpy call per chunk: one run of unfiltered bytes
            offset, size = int(self.index.offsets[k0]), int(self.index.sizes[k0])
            if size == nbytes and offset + (k1 - k0) * nbytes <= self.file_size:
                self.chunks += k1 - k0
                self.bytes_read += (k1 - k0) * nbytes
                self._pread(out.reshape(-1).view(np.uint8), offset, (k1 - k0) * nbytes, start_of(0))
                return
        offsets, sizes, masks = self.index.locate_numbers(np.arange(k0, k1, dtype=np.int64) * self.stride)
        self._check_inside(offsets, sizes, start_of)
        plain = ((masks & self.unfiltered) == self.unfiltered) & (sizes == nbytes) & (offsets >= 0)
        follows = np.zeros(plain.shape, dtype=bool)
        follows[1:] = plain[1:] & plain[:-1] & (offsets[1:] == offsets[:-1] + nbytes)
        begins = np.flatnonzero(~follows).tolist()
        flat = out.reshape(-1).view(np.uint8)
        for a, b in zip(begins, [*begins[1:], len(plain)], strict=True):
            start = start_of(a)
            offset = int(offsets[a])
            if plain[a]:  # b - a chunks, one after another in the file
                self.chunks += b - a
                self.bytes_read += (b - a) * nbytes
                self._pread(flat[a * nbytes : b * nbytes], offset, (b - a) * nbytes, start)
            elif offset < 0:
                out[a * chunk : b * chunk] = self.index.fill
                self.filled += 1
            else:
                self._whole(out[a * chunk : b * chunk], offset, int(sizes[a]), int(masks[a]), start)

    def _check_inside(self, offsets: np.ndarray, sizes: np.ndarray, start_of: Any) -> None:
        """A damaged chunk index pointing past the end of the file: never read (or allocate) that."""
        past = np.flatnonzero((offsets >= 0) & (offsets + sizes > self.file_size))
        if past.size:
            i = int(past[0])
            raise CorruptChunkError(
                self.path,
                self.node,
                start_of(i),
                f"stored at bytes {offsets[i]}..{offsets[i] + sizes[i]}, past the end of the file",
            )

    def _whole(self, target: np.ndarray, offset: int, size: int, mask: int, start: tuple[int, ...]) -> None:
        """A chunk taken whole, into ``target`` (contiguous, in the stored dtype)."""
        self.chunks += 1
        self.bytes_read += size
        flat = target.reshape(-1).view(np.uint8)
        if mask & self.unfiltered == self.unfiltered and size == flat.size:
            self._pread(flat, offset, size, start)  # straight from the file into the result
            return
        raw = _scratch("raw", size)
        self._pread(raw, offset, size, start)
        data = self._decode(raw, mask, flat, start)  # the last decoder writes into the result...
        if not (isinstance(data, np.ndarray) and np.shares_memory(data, flat)):
            target[...] = self._as_chunk(data)  # ...or it could not

    def _part(
        self, piece: _Piece, target: np.ndarray, offset: int, size: int, mask: int, field: str | None
    ) -> None:
        """Part of a chunk (or a chunk in another dtype): decoded into this thread's buffer, copied once."""
        self.chunks += 1
        self.bytes_read += size
        raw = _scratch("raw", size)
        self._pread(raw, offset, size, piece.start)
        data = self._decode(raw, mask, _scratch("decoded", self.layout.chunk_nbytes), piece.start)
        target[...] = take_field(self._as_chunk(data)[piece.local], field)

    def _decode(self, raw: np.ndarray, mask: int, out: np.ndarray, start: tuple[int, ...]) -> Any:
        try:
            return self.pipeline.decode(raw, mask, out=out)
        except DecodeError as err:
            raise CorruptChunkError(self.path, self.node, start, str(err)) from None

    def _as_chunk(self, data: Any) -> np.ndarray:
        """Decoded bytes as a chunk (the last Blosc2 step may give a strided view)."""
        if isinstance(data, np.ndarray) and data.ndim > 1:
            return data.view(self.layout.stored).reshape(self.chunk_shape)
        return np.frombuffer(data, dtype=self.layout.stored).reshape(self.chunk_shape)

    def _pread(self, buffer: np.ndarray, offset: int, size: int, start: tuple[int, ...]) -> None:
        if os.preadv(self.fd, [buffer], offset) != size:  # the file shrank after it was opened
            raise FileChangedError(self.path, self.node, f"chunk at {start} cut short")


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
    (:func:`dask_tables.hdf5.chunkindex.chunk_index`): read once per file
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
    fd, file_size = _open_checked(path, node, fingerprint)
    try:
        reader = _Reader(path, node, layout, chunk_index(path, node, fingerprint), fd, file_size)
        run = _whole_rows(layout, slab, out) if field is None else None
        if run is None:
            reader.read_pieces(slab, out, field)
        else:  # the chunks before, the run of whole chunks, the chunks after
            (k0, k1), (rows, *rest), chunk = run, slab, layout.chunkshape[0]
            head, tail = k0 * chunk - rows.start, k1 * chunk - rows.start
            if head:
                reader.read_pieces((slice(rows.start, k0 * chunk, 1), *rest), out[:head], field)
            reader.read_rows(k0, k1, out[head:tail])
            if tail < len(out):
                reader.read_pieces((slice(k1 * chunk, rows.stop, 1), *rest), out[tail:], field)
    finally:
        os.close(fd)
    check_unchanged(path, node, fingerprint)
    if layout.memory is not None and field is None:  # the file's record layout -> PyTables'
        out = repacked(out, layout.memory)
    diagnostics.add(
        direct_chunks=reader.chunks,
        direct_bytes_read=reader.bytes_read,
        direct_bytes_decoded=reader.chunks * layout.chunk_nbytes,
        direct_fill_chunks=reader.filled,
    )
    return out
