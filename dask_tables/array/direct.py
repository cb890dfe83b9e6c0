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
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np

from .. import diagnostics
from ..errors import CorruptChunkError, FileChangedError
from ..filters import DecodeError, FilterChain, filter_chain
from ..filters.buffers import scratch
from ..hdf5.chunkindex import ChunkIndex, chunk_index
from ..hdf5.fields import repacked, take_field
from ..hdf5.fingerprint import Fingerprint, check_unchanged
from ..hdf5.storednode import StoredNode

__all__ = ["chunk_decoder", "chunk_ranges", "read_chunks", "read_direct"]


def chunk_decoder(storage: StoredNode) -> FilterChain:
    """The filter chain that decodes ``storage``'s chunks (:func:`dask_tables.filters.chain.filter_chain`, cached).

    Raises
    ------
    UnsupportedFilterError
        A filter has no decoder.
    """
    return filter_chain(storage.filters, storage.chunk_nbytes)


class _Overlap(NamedTuple):
    """One chunk's share of a selection: where it is, what of it, and where it goes."""

    start: tuple[int, ...]  # the chunk's first element
    local: tuple[slice, ...]  # what to take from the chunk
    out: tuple[slice, ...]  # where it lands in the result
    whole: bool  # the selection takes the chunk whole


def _axis_overlaps(sel: slice, chunk: int) -> list[tuple[int, slice, slice, bool]]:
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


def _overlaps(slab: Sequence[slice], chunkshape: Sequence[int]) -> list[_Overlap]:
    per_axis = [_axis_overlaps(sel, chunk) for sel, chunk in zip(slab, chunkshape, strict=True)]
    if len(per_axis) == 1:  # the common case, without the generic zip
        return [_Overlap((o,), (loc,), (out,), whole) for o, loc, out, whole in per_axis[0]]
    return [
        _Overlap(
            tuple(c[0] for c in combo),
            tuple(c[1] for c in combo),
            tuple(c[2] for c in combo),
            all(c[3] for c in combo),
        )
        for combo in itertools.product(*per_axis)
    ]


def _whole_rows(storage: StoredNode, slab: Sequence[slice], out: np.ndarray) -> tuple[int, int] | None:
    """Chunks along axis 0 that ``slab`` takes whole, each a contiguous run of ``out``: ``(k0, k1)``.

    Where every other axis is taken whole by one chunk (a 1-D array; or
    chunks of whole rows), chunks ``k0 <= k < k1`` go straight into
    consecutive bytes of the result, in file order; ``None`` otherwise (or
    where fewer than two chunks would).
    """
    if out.dtype != storage.dtype_on_disk or not out.flags.c_contiguous:
        return None
    rows, *rest = slab
    if rows.step != 1:
        return None
    for sel, chunk, n in zip(rest, storage.chunkshape[1:], storage.shape[1:], strict=True):
        if chunk != n or (sel.start, sel.stop, sel.step) != (0, n, 1):
            return None
    chunk = storage.chunkshape[0]
    k0, k1 = -(-rows.start // chunk), rows.stop // chunk
    return (k0, k1) if k1 - k0 >= 2 else None


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


# Reads stored bytes at an offset into a buffer, returning how many it read: ``os.preadv``
# of a local file, or a copy from the ranges fetched for a task from an object in a store.
Pread = Callable[[np.ndarray, int], int]


class _Reader:
    """Reads and decodes the stored chunks of one task into its result (one thread)."""

    def __init__(
        self, path: str, node: str, storage: StoredNode, index: ChunkIndex, pread: Pread, file_size: int
    ) -> None:
        self.path, self.node, self.storage, self.index = path, node, storage, index
        self.pread, self.file_size = pread, file_size
        self.decoder = chunk_decoder(storage)
        self.chunk_shape = storage.chunkshape + storage.cell_shape
        self.unfiltered = (1 << len(storage.filters)) - 1  # the mask of a chunk stored as is
        self.chunks = self.bytes_read = self.filled = 0
        self.stride = math.prod(index.grid[1:])  # chunk numbers from one chunk row to the next

    def read_overlaps(self, slab: Sequence[slice], out: np.ndarray, field: str | None) -> None:
        """Read ``node[slab]`` into ``out``, chunk by chunk."""
        overlaps = _overlaps(slab, self.storage.chunkshape)
        if not overlaps:
            return
        offsets, sizes, masks = self.index.locate([overlap.start for overlap in overlaps])
        self._check_inside(offsets, sizes, lambda i: overlaps[i].start)
        stored = out.dtype == self.storage.dtype_on_disk and field is None
        for overlap, offset, size, mask in zip(
            overlaps, offsets.tolist(), sizes.tolist(), masks.tolist(), strict=True
        ):
            target = out[overlap.out]
            if offset < 0:  # never written: the fill value
                target[...] = take_field(self.index.fill, field)
                self.filled += 1
            elif overlap.whole and stored and target.flags.c_contiguous:
                self._whole(target, offset, size, mask, overlap.start)
            else:
                self._part(overlap, target, offset, size, mask, field)

    def read_rows(self, k0: int, k1: int, out: np.ndarray) -> None:
        """Read the whole chunks ``k0 <= k < k1`` along axis 0 into ``out`` (their rows, contiguous).

        Chunks stored unfiltered and one after another in the file are read
        with one ``preadv`` per run, straight into the result.
        """
        chunk, nbytes = self.storage.chunkshape[0], self.storage.chunk_nbytes
        zeros = (0,) * (len(self.storage.shape) - 1)

        def start_of(i: int) -> tuple[int, ...]:
            return ((k0 + i) * chunk, *zeros)

        if self.stride == 1 and not self.storage.filters and self.index.one_run(k0, k1 - 1):
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
        raw = scratch(size, "raw")
        self._pread(raw, offset, size, start)
        data = self._decode(raw, mask, flat, start)  # the last decoder writes into the result...
        if not (isinstance(data, np.ndarray) and np.shares_memory(data, flat)):
            target[...] = self._as_chunk(data)  # ...or it could not

    def _part(
        self, overlap: _Overlap, target: np.ndarray, offset: int, size: int, mask: int, field: str | None
    ) -> None:
        """Part of a chunk (or a chunk in another dtype): decoded into this thread's buffer, copied once."""
        self.chunks += 1
        self.bytes_read += size
        raw = scratch(size, "raw")
        self._pread(raw, offset, size, overlap.start)
        data = self._decode(raw, mask, scratch(self.storage.chunk_nbytes, "decoded"), overlap.start)
        target[...] = take_field(self._as_chunk(data)[overlap.local], field)

    def _decode(self, raw: np.ndarray, mask: int, out: np.ndarray, start: tuple[int, ...]) -> Any:
        try:
            return self.decoder.decode(raw, mask, out=out)
        except DecodeError as err:
            raise CorruptChunkError(self.path, self.node, start, str(err)) from None

    def _as_chunk(self, data: Any) -> np.ndarray:
        """Decoded bytes as a chunk (the last Blosc2 step may give a strided view)."""
        if isinstance(data, np.ndarray) and data.ndim > 1:
            return data.view(self.storage.dtype_on_disk).reshape(self.chunk_shape)
        return np.frombuffer(data, dtype=self.storage.dtype_on_disk).reshape(self.chunk_shape)

    def _pread(self, buffer: np.ndarray, offset: int, size: int, start: tuple[int, ...]) -> None:
        if self.pread(buffer, offset) != size:  # the file shrank after it was opened
            raise FileChangedError(self.path, self.node, f"chunk at {start} cut short")


def read_direct(
    path: str,
    node: str,
    fingerprint: Fingerprint,
    storage: StoredNode,
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
    storage : StoredNode
        How the node is stored (:func:`dask_tables.array.verdict.direct_storage`).
    slab : sequence of slice
        One slice with positive step per axis of ``storage.shape``.
    field : str, optional
        For a table: the column to keep (``"pos/x"`` for nested ones),
        taken from each chunk as it is decoded.

    Returns
    -------
    numpy.ndarray
        What PyTables reads: shape, the slab's shape plus ``storage.cell_shape``
        (plus the column's cell shape); dtype, ``storage.dtype_on_disk`` (or the
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
    >>> from dask_tables.array.verdict import direct_storage
    >>> with tables.open_file("example.h5", "w") as f:
    ...     _ = f.create_carray("/", "x", obj=np.arange(10.0), chunkshape=(4,),
    ...                         filters=tables.Filters(complevel=1, complib="zlib"))
    >>> with tables.open_file("example.h5") as f:
    ...     storage = direct_storage(f.root.x)
    >>> read_direct("example.h5", "/x", Fingerprint.of("example.h5"), storage,
    ...             [slice(1, 9, 3)])
    array([1., 4., 7.])
    """
    out = _result(storage, slab, field)
    if out.size == 0:  # nothing to read: the file is not opened
        return _as_pytables_reads(out, storage, field)
    fd, file_size = _open_checked(path, node, fingerprint)
    try:
        index = chunk_index(path, node, fingerprint)
        out = read_chunks(
            path, node, storage, index, slab, field, lambda b, o: os.preadv(fd, [b], o), file_size
        )
    finally:
        os.close(fd)
    check_unchanged(path, node, fingerprint)
    return out


def read_chunks(
    path: str,
    node: str,
    storage: StoredNode,
    index: ChunkIndex,
    slab: Sequence[slice],
    field: str | None,
    pread: Pread,
    file_size: int,
) -> np.ndarray:
    """Read ``node[slab]`` from its stored chunks, given its index and a way to read bytes (no lock held).

    The part of :func:`read_direct` that does not care where the bytes
    live: ``pread(buffer, offset)`` reads them (``os.preadv`` of a local
    file, or ranges fetched from a store) and ``file_size`` bounds them.

    Examples
    --------
    >>> import numpy as np, tables
    >>> from dask_tables.array.verdict import direct_storage
    >>> with tables.open_file("example.h5", "w") as f:
    ...     _ = f.create_carray("/", "x", obj=np.arange(10.0), chunkshape=(4,))
    ...     storage = direct_storage(f.root.x)
    >>> index = chunk_index("example.h5", "/x", Fingerprint.of("example.h5"))
    >>> with open("example.h5", "rb") as f:
    ...     read_chunks("example.h5", "/x", storage, index, [slice(2, 6, 1)], None,
    ...                 lambda b, o: os.preadv(f.fileno(), [b], o), os.path.getsize("example.h5"))
    array([2., 3., 4., 5.])
    """
    out = _result(storage, slab, field)
    if out.size:
        reader = _Reader(path, node, storage, index, pread, file_size)
        _read_slab(reader, slab, out, field)
        diagnostics.add(
            direct_chunks=reader.chunks,
            direct_bytes_read=reader.bytes_read,
            direct_bytes_decoded=reader.chunks * storage.chunk_nbytes,
            direct_fill_chunks=reader.filled,
        )
    return _as_pytables_reads(out, storage, field)


def chunk_ranges(storage: StoredNode, index: ChunkIndex, slab: Sequence[slice]) -> list[tuple[int, int]]:
    """``(offset, size)`` of every stored chunk that ``node[slab]`` reads (what to fetch before reading).

    Examples
    --------
    Ten float64 values in chunks of four, stored one after another from byte 800:

    >>> storage = StoredNode(shape=(10,), chunkshape=(4,), dtype_on_disk=np.dtype("<f8"), filters=(), cell_shape=())
    >>> sizes = np.array([32, 32, 32])
    >>> index = ChunkIndex((4,), (3,), None, 800 + np.cumsum(sizes) - sizes, sizes, np.zeros(3, np.uint32))
    >>> chunk_ranges(storage, index, [slice(2, 6, 1)])
    [(800, 32), (832, 32)]
    """
    overlaps = _overlaps(slab, storage.chunkshape)
    if not overlaps:
        return []
    offsets, sizes, _ = index.locate([overlap.start for overlap in overlaps])
    stored = offsets >= 0
    return list(zip(offsets[stored].tolist(), sizes[stored].tolist(), strict=True))


def _result(storage: StoredNode, slab: Sequence[slice], field: str | None) -> np.ndarray:
    """The empty result of ``node[slab]`` (of its ``field``): the stored dtype (the column's), native order."""
    column = take_field(storage.dtype_on_disk.newbyteorder("="), field)
    shape = tuple(len(range(s.start, s.stop, s.step)) for s in slab) + storage.cell_shape + column.shape
    return np.empty(shape, dtype=column.base)


def _as_pytables_reads(out: np.ndarray, storage: StoredNode, field: str | None) -> np.ndarray:
    """``out``, read in the file's record layout, in PyTables' (empty or not: the same dtype)."""
    if storage.memory is not None and field is None:
        return repacked(out, storage.memory)
    return out


def _read_slab(reader: _Reader, slab: Sequence[slice], out: np.ndarray, field: str | None) -> None:
    """Read ``node[slab]`` into ``out``: a run of whole chunks in one go where there is one."""
    storage = reader.storage
    run = _whole_rows(storage, slab, out) if field is None else None
    if run is None:
        reader.read_overlaps(slab, out, field)
        return
    # the chunks before, the run of whole chunks, the chunks after
    (k0, k1), (rows, *rest), chunk = run, slab, storage.chunkshape[0]
    head, tail = k0 * chunk - rows.start, k1 * chunk - rows.start
    if head:
        reader.read_overlaps((slice(rows.start, k0 * chunk, 1), *rest), out[:head], field)
    reader.read_rows(k0, k1, out[head:tail])
    if tail < len(out):
        reader.read_overlaps((slice(k1 * chunk, rows.stop, 1), *rest), out[tail:], field)
