"""Direct chunk reads: chunk index -> ``os.pread`` -> decode -> assemble, no lock held.

HDF5 (as PyTables' wheels build it) serializes every call behind one global
mutex, decompression included, so the pipeline read of two threads is no
faster than one.  The direct path asks HDF5 only where each chunk lives
(``Leaf.chunk_info``, under the registry lock, about 16 us a chunk), then
reads the stored bytes with ``os.pread`` and decodes them
(:mod:`dask_tables.codecs`) with no lock held and the GIL released, so two
threads really decode two chunks.

Chunks HDF5 never wrote read as the dataset's fill value, taken from
PyTables while the file is open for the index.
"""

from __future__ import annotations

import functools
import itertools
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import tables

from .codecs import DecodeError, FilterPipeline, UnsupportedFilterError
from .errors import CorruptChunkError, FileChangedError
from .fingerprint import Fingerprint, check_unchanged
from .hdf5types import stored_as_read
from .registry import get_lock, synchronized_file

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


def _fill(leaf: tables.Leaf, region: tuple[slice, ...]) -> np.ndarray | object:
    """What a chunk HDF5 never wrote holds: the dataset's fill value.

    An array's atom carries the HDF5 fill value (PyTables reads it into
    ``atom.dflt``).  A table's fill value is not exposed: read the region
    through HDF5.  (PyTables' own Blosc2 slicing of an array can return
    another chunk's data for an unwritten chunk; HDF5's fill value is right.)
    """
    if isinstance(leaf, tables.Table):
        (rows,) = region
        return leaf.read(rows.start, rows.stop, rows.step)
    return leaf.atom.dflt


def read_direct(
    path: str,
    node: str,
    fingerprint: Fingerprint,
    layout: ChunkLayout,
    slab: Sequence[slice],
    field: str | None = None,
) -> np.ndarray:
    """Read ``node[slab]`` chunk by chunk, decoding outside every lock.

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

    # Phase 1, under the lock: where each chunk is stored.  Chunks never
    # written hold the fill value: PyTables reads those (no data to decode).
    stored: list[tuple[_Piece, int, int, int]] = []
    with get_lock():
        check_unchanged(path, node, fingerprint)
        with synchronized_file(path, "r") as h5:
            leaf = h5.get_node(node)
            for piece in pieces:
                info = leaf.chunk_info(piece.start)
                if info.offset is None:
                    out[piece.out] = take_field(_fill(leaf, piece.region), field)
                else:
                    stored.append((piece, int(info.offset), int(info.size), int(info.filter_mask)))

    # Phase 2, no lock: read and decode.
    pipeline = layout.pipeline()
    chunk_shape = layout.chunkshape + layout.cell_shape
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        raise FileChangedError(path, node, "the file was deleted") from None
    try:
        opened = os.fstat(fd)
        check_unchanged(path, node, fingerprint, Fingerprint.from_stat(opened))
        for piece, offset, size, mask in stored:
            if offset + size > opened.st_size:  # a damaged chunk index: never read (or allocate) that
                raise CorruptChunkError(
                    path,
                    node,
                    piece.start,
                    f"stored at bytes {offset}..{offset + size}, past the end of the file",
                )
            target = out[piece.out]
            in_place = _takes_whole_chunk(layout, piece, target)
            if in_place and all(mask & (1 << bit) for bit in range(len(layout.filters))):
                # unfiltered: straight from the file into the result
                if os.preadv(fd, [target], offset) != size:
                    raise FileChangedError(path, node, f"chunk at {piece.start} cut short")
                continue
            raw = os.pread(fd, size, offset)
            if len(raw) != size:  # the file shrank after it was opened
                raise FileChangedError(path, node, f"chunk at {piece.start} cut short")
            try:
                data = pipeline.decode(raw, mask, out=target.reshape(-1).view(np.uint8) if in_place else None)
            except DecodeError as err:
                raise CorruptChunkError(path, node, piece.start, str(err)) from None
            if in_place and isinstance(data, np.ndarray) and np.shares_memory(data, target):
                continue  # the last decoder wrote into the result
            if isinstance(data, np.ndarray) and data.ndim > 1:
                chunk = data.view(layout.stored).reshape(chunk_shape)
            else:
                chunk = np.frombuffer(data, dtype=layout.stored).reshape(chunk_shape)
            target[...] = take_field(chunk[piece.local], field)
    finally:
        os.close(fd)
    check_unchanged(path, node, fingerprint)
    return out
