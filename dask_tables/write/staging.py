"""Cutting a block into HDF5 chunks, encoding them, staging and writing them.

A block becomes pieces (:class:`Piece`): whole chunks, encoded outside
every lock and padded at the edges as HDF5 stores them, and raw values for
parts of chunks.  In existing-file mode the pieces of one block go into a
sidecar file (written under a temporary name, then renamed, so a retried
task is harmless), which the commit reads back and writes.
"""

from __future__ import annotations

import itertools
import os
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import tables
from numpy.lib.recfunctions import assign_fields_by_name
from tables.utils import quantize

from ..filters import encoding_chain
from ..hdf5.files import written_whole
from .plan import NodeWrite

__all__ = [
    "Piece",
    "append_rows",
    "block_pieces",
    "load_records",
    "read_sidecar",
    "save_records",
    "write_pieces",
    "write_sidecar",
]


@dataclass(frozen=True)
class Piece:
    """What one staged record writes: an encoded chunk, or raw values of a region."""

    encoded: bool
    start: tuple[int, ...]  # chunk origin (encoded) or region start, in node coordinates
    data: Any  # encoded bytes, or a numpy array of raw values


def block_pieces(block: np.ndarray, write: NodeWrite, start: tuple[int, ...]) -> Iterator[Piece]:
    """Cut a block that lands at ``start`` of the node into pieces to write.

    Chunks the block covers whole (up to the node's end) are encoded, padded
    with zeros to the full chunk shape; parts of chunks are raw values,
    written through HDF5 in the commit.  Without encoders, the whole block
    is one raw piece.
    """
    block = np.asarray(block)
    if block.size == 0:
        return
    block = _as_written(block, write)
    if not write.encode or write.chunkshape is None:
        yield Piece(False, start, block)
        return
    encoder = encoding_chain(write.storage.filters)
    chunk = write.chunkshape
    stop = tuple(s + n for s, n in zip(start, block.shape, strict=True))
    ranges = [range(s // c * c, e, c) for s, e, c in zip(start, stop, chunk, strict=True)]
    for origin in itertools.product(*ranges):
        end = tuple(min(o + c, n) for o, c, n in zip(origin, chunk, write.shape, strict=True))
        lo = tuple(max(o, s) for o, s in zip(origin, start, strict=True))
        hi = tuple(min(e, s) for e, s in zip(end, stop, strict=True))
        local = tuple(slice(a - s, b - s) for a, b, s in zip(lo, hi, start, strict=True))
        if lo != origin or hi != end:  # the block covers part of this chunk
            yield Piece(False, lo, block[local])
            continue
        piece = block[local]
        if piece.shape != chunk:  # an edge chunk: HDF5 stores it whole
            padded = np.zeros(chunk, dtype=write.dtype)
            padded[tuple(slice(0, n) for n in piece.shape)] = piece
            piece = padded
        raw = np.ascontiguousarray(piece).view(np.uint8).reshape(-1)  # one flat buffer
        yield Piece(True, origin, encoder.encode(raw.data))


def _as_written(block: np.ndarray, write: NodeWrite) -> np.ndarray:
    """``block`` in the dtype the node is written in (records matched by field name), quantized as PyTables does."""
    dtype = write.dtype
    if block.dtype != dtype and dtype.names is not None:
        records = np.zeros(block.shape, dtype)
        assign_fields_by_name(records, block)  # numpy's astype would match fields by position
        block = records
    elif block.dtype != dtype:
        block = block.astype(dtype)
    digits = write.tables_filters.least_significant_digit if write.tables_filters is not None else None
    if digits is not None and dtype.names is None and not np.issubdtype(block.dtype, np.signedinteger):
        block = quantize(block, digits).astype(dtype)  # as PyTables' own write does
    return block


# ---------------------------------------------------------------- sidecar files (existing-file mode)

_HEADER = struct.Struct("<?BQ")  # encoded, ndim, data bytes


def write_sidecar(path: str, pieces: Iterator[Piece], ndim: int) -> None:
    with written_whole(path) as tmp, open(tmp, "xb") as out:  # a retried task finds nothing or all
        for piece in pieces:
            data = piece.data
            if piece.encoded:
                payload = memoryview(data).cast("B")
                shape: tuple[int, ...] = ()
            else:
                array = np.ascontiguousarray(data).reshape(np.shape(data))  # 0-d stays 0-d
                payload = memoryview(array.reshape(-1).view(np.uint8))
                shape = array.shape
            out.write(_HEADER.pack(piece.encoded, ndim, payload.nbytes))
            out.write(struct.pack(f"<{ndim}q", *piece.start))
            if not piece.encoded:
                out.write(struct.pack(f"<{ndim}q", *shape))
            out.write(payload)


def read_sidecar(path: str, stored: np.dtype) -> Iterator[Piece]:
    with open(path, "rb") as f:
        while header := f.read(_HEADER.size):
            encoded, ndim, nbytes = _HEADER.unpack(header)
            start = struct.unpack(f"<{ndim}q", f.read(8 * ndim))
            if encoded:
                yield Piece(True, start, f.read(nbytes))
            else:
                shape = struct.unpack(f"<{ndim}q", f.read(8 * ndim))
                yield Piece(False, start, np.frombuffer(f.read(nbytes), dtype=stored).reshape(shape))


def write_pieces(leaf: tables.Leaf, pieces: Iterator[Piece] | list[Piece]) -> None:
    """Write staged pieces into ``leaf`` (under the locks): chunks as they are, values through HDF5."""
    for piece in pieces:
        if piece.encoded:
            leaf.write_chunk(piece.start, piece.data)
        elif isinstance(leaf, tables.Table):
            (start,) = piece.start
            leaf.modify_rows(start, start + len(piece.data), rows=piece.data)
        else:
            region = tuple(slice(s, s + n) for s, n in zip(piece.start, piece.data.shape, strict=True))
            leaf[region] = piece.data


def append_rows(table: tables.Table, write: NodeWrite, sidecars: Sequence[str]) -> None:
    """The staged rows of ``sidecars`` (in row order) added at the end of ``table``, its indexes updated once.

    Linear in the rows added.  Raw pieces (parts of chunks, where partitions
    meet) are gathered into whole chunks and encoded here, so every chunk is
    written once with ``write_chunk`` and no row goes through
    ``Table.modify_rows`` (which, on an indexed table, rebuilds every index
    after each call).  The first chunk starts with the table's last rows.
    Then PyTables adds the new rows to each column index, as after its own
    ``Table.append``.  Each sidecar is removed once written.  Without
    encoders (filters only HDF5 encodes), each staged block is one raw
    piece, appended with ``Table.append``.
    """
    first = int(table.nrows)
    total = write.shape[0]
    if not write.encode or write.chunkshape is None:
        for sidecar in sidecars:
            for piece in read_sidecar(sidecar, write.dtype):
                table.append(piece.data)
            os.unlink(sidecar)
        table.flush()
        return
    table.truncate(total)
    gathered = _ChunkGatherer(table, write, first, total)
    for sidecar in sidecars:
        for piece in read_sidecar(sidecar, write.dtype):
            if piece.encoded:
                table.write_chunk(piece.start, piece.data)
            else:
                gathered.add(piece.start[0], piece.data)
        os.unlink(sidecar)
    gathered.check_done()
    if table.indexed:
        # What PyTables computes when it opens a table: the rows its indexes
        # do not hold yet.  Table.flush then adds them, as after an append.
        table._unsaved_indexedrows = table.nrows - table._indexedrows
    table.flush()


class _ChunkGatherer:
    """Whole chunks gathered from raw pieces of rows, encoded and written once each is complete."""

    def __init__(self, table: tables.Table, write: NodeWrite, first: int, total: int) -> None:
        self.table = table
        self.rows = write.chunkshape[0]
        self.total = total
        self.dtype = write.dtype
        self.encoder = encoding_chain(write.storage.filters)
        self.pending: dict[int, tuple[np.ndarray, int]] = {}  # chunk origin -> (rows, how many are set)
        origin = first // self.rows * self.rows
        if origin < first:  # the table's last chunk, partly filled: its rows start the first new chunk
            self.add(origin, table.read(origin, first))

    def add(self, start: int, rows: np.ndarray) -> None:
        origin = start // self.rows * self.rows
        if start + len(rows) > origin + self.rows:
            raise ValueError(f"rows {start}..{start + len(rows)} cross a chunk boundary")
        buffer, filled = self.pending.pop(origin, (None, 0))
        if buffer is None:
            buffer = np.zeros(self.rows, dtype=self.dtype)  # HDF5 stores edge chunks whole, padded
        buffer[start - origin : start - origin + len(rows)] = rows
        filled += len(rows)
        if filled < min(self.rows, self.total - origin):
            self.pending[origin] = (buffer, filled)
            return
        raw = buffer.view(np.uint8).reshape(-1)
        self.table.write_chunk((origin,), self.encoder.encode(raw.data))

    def check_done(self) -> None:
        if self.pending:
            raise RuntimeError(f"chunks at rows {sorted(self.pending)} were never completed")


# ---------------------------------------------------------------- staged records (frame writes)

_RECORDS_MAGIC = b"DTREC1\n"
_RECORDS_BLOCK = 2**28  # bytes of records compressed per Blosc2 call (its limit is 2 GiB)


def save_records(path: str, records: np.ndarray) -> None:
    """Stage ``records`` at ``path``, compressed (Blosc2 Zstd + shuffle, level 1): written whole or not at all.

    Staged raw, a frame's records took more disk than the table they become.

    Examples
    --------
    >>> rows = np.array([(1, 2.5), (3, 4.5)], dtype=[("i", "<i8"), ("f", "<f8")])
    >>> save_records("part.rec", rows)
    >>> load_records("part.rec").tolist()
    [(1, 2.5), (3, 4.5)]
    """
    import blosc2

    records = np.ascontiguousarray(records)
    descr = repr(np.lib.format.dtype_to_descr(records.dtype)).encode()
    raw = records.reshape(-1).view(np.uint8)
    step = max(
        records.dtype.itemsize, _RECORDS_BLOCK // max(records.dtype.itemsize, 1) * records.dtype.itemsize
    )
    typesize = records.dtype.itemsize if 0 < records.dtype.itemsize < 256 else 1
    with written_whole(path) as tmp, open(tmp, "xb") as out:  # a retried task finds nothing or all
        out.write(_RECORDS_MAGIC + struct.pack("<QQ", len(descr), len(records)) + descr)
        for start in range(0, raw.size, step):
            block = blosc2.compress2(
                raw[start : start + step].data,
                typesize=typesize,
                clevel=1,
                codec=blosc2.Codec.ZSTD,
                filters=[blosc2.Filter.SHUFFLE],
            )
            out.write(struct.pack("<Q", len(block)))
            out.write(block)


def load_records(path: str) -> np.ndarray:
    """The records :func:`save_records` staged at ``path``."""
    import ast

    import blosc2

    with open(path, "rb") as f:
        if f.read(len(_RECORDS_MAGIC)) != _RECORDS_MAGIC:
            raise ValueError(f"{path}: not a file of staged records")
        size, rows = struct.unpack("<QQ", f.read(16))
        dtype = np.lib.format.descr_to_dtype(ast.literal_eval(f.read(size).decode()))
        out = np.empty(rows, dtype=dtype)
        flat = out.reshape(-1).view(np.uint8)
        at = 0
        while header := f.read(8):
            (length,) = struct.unpack("<Q", header)
            block = blosc2.decompress2(f.read(length))
            flat[at : at + len(block)] = np.frombuffer(block, dtype=np.uint8)
            at += len(block)
    if at != flat.size:
        raise ValueError(f"{path}: staged records cut short ({at} of {flat.size} bytes)")
    return out
