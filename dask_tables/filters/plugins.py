"""hdf5plugin's filters: LZ4 (32004), Zstandard (32015) and bitshuffle (32008), decoded by imagecodecs.

PyTables' wheels cannot read them; h5py with hdf5plugin writes them.
Each decodes in C with the GIL released, straight into the chunk's buffer.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .base import Buffer, DecodeError, Filter, UnsupportedFilterError, register
from .buffers import as_bytes, scratch
from .libimagecodecs import codec, decode_exactly

__all__ = ["Bitshuffle", "Lz4", "Zstd"]


def _be_header(buf: Buffer, name: str, expected: int) -> tuple[memoryview, int]:
    """The 12-byte big-endian header of the LZ4 and bitshuffle framings: (view, block bytes).

    Checks the total size against the chunk's before anything is allocated.
    """
    view = memoryview(buf).cast("B")
    if len(view) < 12:
        raise DecodeError(f"{name}: chunk shorter than its 12-byte header")
    total = int.from_bytes(view[:8], "big")
    block = int.from_bytes(view[8:12], "big")
    if total != expected:
        raise DecodeError(f"{name}: header says {total} raw bytes, the chunk has {expected}")
    if block < 1 and total:
        raise DecodeError(f"{name}: block size {block}")
    return view, block


@register
@dataclass(frozen=True)
class Lz4(Filter):
    """LZ4 in HDF5's framing (filter 32004, hdf5plugin's ``LZ4``), decoded by imagecodecs.

    The framing: the raw size (8 bytes, big-endian), the block size (4
    bytes), then per block its stored size (4 bytes) and LZ4 data (a block
    stored as it is where LZ4 would not shrink it).  One imagecodecs call
    (``lz4h5_decode``) decodes every block with the GIL released.
    """

    id = 32004
    name = "lz4"
    stored_prefix = "HDF5 lz4 filter"
    needs_size = True

    def decode_into(self, buf: Buffer, out: np.ndarray) -> None:
        """Decompress ``buf`` into ``out`` (contiguous bytes of the raw size)."""
        _be_header(buf, "LZ4", out.nbytes)
        decode_exactly("LZ4", codec("lz4h5"), buf, out)


@register
@dataclass(frozen=True)
class Zstd(Filter):
    """Zstandard frames (filter 32015, hdf5plugin's ``Zstd``), decoded by imagecodecs."""

    id = 32015
    name = "zstd"
    stored_prefix = "HDF5 zstd filter"
    needs_size = True

    def decode_into(self, buf: Buffer, out: np.ndarray) -> None:
        """Decompress ``buf`` into ``out`` (contiguous bytes of the raw size)."""
        decode_exactly("Zstd", codec("zstd"), buf, out)


# Bitshuffle's compressor codes (its 5th filter parameter).
_BSHUF_NONE, _BSHUF_LZ4, _BSHUF_ZSTD = 0, 2, 3


@register
@dataclass(frozen=True)
class Bitshuffle(Filter):
    """Bitshuffle (filter 32008, hdf5plugin's ``Bitshuffle``), alone or with LZ4 or Zstd.

    Parameters (the filter's): ``(major, minor, element size, block
    elements or 0, compressor[, zstd level])``.  Uncompressed, the chunk is
    bit-shuffled in blocks of ``block`` elements (the last block rounded
    down to a multiple of 8 elements, the rest stored as it is).  With a
    compressor, bitshuffle's framing: the raw size (8 bytes, big-endian),
    the block size in bytes (4), then per block its stored size (4) and the
    compressed, bit-shuffled block; the leftover bytes as they are.

    With LZ4 and no leftover, the framing is HDF5's LZ4 framing (unless a
    block's stored size equals the block size, which that framing reads as
    a stored block): one imagecodecs call decodes all blocks, another
    unshuffles them, both with the GIL released; otherwise one call per
    block.  Zstandard blocks are joined (without their sizes) into
    concatenated frames, which one call decodes.
    """

    id = 32008
    name = "bitshuffle"
    stored_prefix = "bitshuffle"
    needs_size = True

    params: tuple[int, ...]

    @classmethod
    def from_params(cls, params: tuple[int, ...]) -> Bitshuffle:
        return cls(tuple(params))

    def __post_init__(self) -> None:
        if len(self.params) < 5 or self.params[2] < 1:
            raise UnsupportedFilterError(f"bitshuffle with parameters {self.params}")
        if self.params[4] not in (_BSHUF_NONE, _BSHUF_LZ4, _BSHUF_ZSTD):
            raise UnsupportedFilterError(f"bitshuffle with compressor {self.params[4]}")

    def decode_into(self, buf: Buffer, out: np.ndarray) -> None:
        """Decode ``buf`` into ``out`` (contiguous bytes of the raw size)."""
        itemsize, compressor = self.params[2], self.params[4]
        if out.nbytes % itemsize:
            raise DecodeError(f"bitshuffle: {out.nbytes} bytes are not whole {itemsize}-byte elements")
        if compressor == _BSHUF_NONE:
            if memoryview(buf).nbytes != out.nbytes:
                raise DecodeError(f"bitshuffle: {memoryview(buf).nbytes} stored bytes, expected {out.nbytes}")
            self._unshuffle(as_bytes(buf), out, self.params[3])
            return
        view, block = _be_header(buf, "bitshuffle", out.nbytes)
        if block % itemsize or (block // itemsize) % 8:
            raise DecodeError(f"bitshuffle: block of {block} bytes, elements of {itemsize}")
        shuffled = scratch(out.nbytes)
        self._decompress(view, block, shuffled, compressor)
        self._unshuffle(shuffled, out, block // itemsize)

    def _unshuffle(self, shuffled: np.ndarray, out: np.ndarray, block_elements: int) -> None:
        decode = codec("bitshuffle")
        try:
            decode(
                memoryview(shuffled), itemsize=self.params[2], blocksize=block_elements, out=memoryview(out)
            )
        except (RuntimeError, ValueError) as err:
            raise DecodeError(f"bitshuffle: {err}") from None

    def _decompress(self, view: memoryview, block: int, shuffled: np.ndarray, compressor: int) -> None:
        """Undo the compressor: ``shuffled`` gets the bit-shuffled blocks and the leftover bytes."""
        sizes, leftover = self._block_sizes(shuffled.nbytes, block, self.params[2])
        frames, end = self._frames(view, sizes)
        if end + leftover != len(view):
            raise DecodeError(f"bitshuffle: {len(view) - end} bytes after the blocks, expected {leftover}")
        body = shuffled.nbytes - leftover
        shuffled[body:] = np.frombuffer(view[end:], dtype=np.uint8)
        if compressor == _BSHUF_ZSTD:  # concatenated Zstandard frames decode in one call
            parts = [np.frombuffer(view[a : a + n], dtype=np.uint8) for a, n in frames]
            joined = np.concatenate(parts) if parts else np.empty(0, dtype=np.uint8)
            decode_exactly("bitshuffle/Zstd", codec("zstd"), joined, shuffled[:body])
        elif not leftover and all(n != size for (_, n), size in zip(frames, sizes, strict=True)):
            # HDF5's LZ4 framing, exactly (it would read a block stored in `size` bytes as raw)
            decode_exactly("bitshuffle/LZ4", codec("lz4h5"), view, shuffled)
        else:
            decode, op = codec("lz4"), 0
            for (a, n), size in zip(frames, sizes, strict=True):
                decode_exactly("bitshuffle/LZ4", decode, view[a : a + n], shuffled[op : op + size])
                op += size

    @staticmethod
    def _block_sizes(total: int, block: int, itemsize: int) -> tuple[list[int], int]:
        """(bytes of each compressed block, leftover bytes stored as they are after them).

        Whole blocks, then a shorter one of a multiple of 8 elements.
        """
        whole, rest = divmod(total, block)
        last = rest // (8 * itemsize) * 8 * itemsize
        return [block] * whole + ([last] if last else []), rest - last

    @staticmethod
    def _frames(view: memoryview, sizes: list[int]) -> tuple[list[tuple[int, int]], int]:
        """(start, length) of each block's compressed bytes, and where the blocks end; all checked."""
        frames, pos = [], 12
        for _ in sizes:
            if pos + 4 > len(view):
                raise DecodeError("bitshuffle: truncated block header")
            stored = int.from_bytes(view[pos : pos + 4], "big")
            if pos + 4 + stored > len(view):
                raise DecodeError("bitshuffle: block past the end of the chunk")
            frames.append((pos + 4, stored))
            pos += 4 + stored
        return frames, pos
