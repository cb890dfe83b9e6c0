"""HDF5 filters decoded in Python, outside every lock: one small decoder per filter.

HDF5 applies a dataset's filters in pipeline order when it writes a chunk;
:class:`FilterPipeline` runs the reverse: from a chunk's stored bytes to its
raw bytes (skipping the filters that the chunk's filter mask says HDF5
skipped when it wrote it).  Each filter maps to one tiny :class:`Decoder`, in
the manner of numcodecs, registered by the name PyTables reports for it
(``tables.utilsextension.get_filters``).  Adding a filter touches one place:
:data:`DECODERS`.

Libraries (each releases the GIL while it works, so two threads decode two
chunks at once): ``deflate`` (libdeflate) for zlib, measured fastest against
ISA-L and zlib on the development machine; ``blosc2`` (a dependency of
PyTables itself) for Blosc and Blosc2; the standard library's :mod:`bz2`;
and a pure-Python LZF decoder (a filter PyTables cannot read).
"""

from __future__ import annotations

import bz2
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import blosc2
import deflate
import numpy as np

__all__ = [
    "DECODERS",
    "DecodeError",
    "FilterPipeline",
    "UnsupportedFilterError",
    "fletcher32",
    "lzf_decompress",
]

Buffer = bytes | bytearray | memoryview


class DecodeError(ValueError):
    """The stored bytes of a chunk do not decode: corrupt or truncated data."""


class UnsupportedFilterError(LookupError):
    """A filter (or a combination of filters) that the direct path cannot decode."""


class Decoder(Protocol):
    """Undo one filter: ``decode(stored, decoded_size) -> raw``.

    ``decoded_size`` is ``None`` where an earlier compressor makes it unknown;
    a decoder that cannot work without it has ``needs_size = True``.
    """

    def decode(self, buf: Buffer, decoded_size: int | None) -> Buffer: ...


def fletcher32(data: Buffer) -> int:
    """HDF5's Fletcher-32 checksum (``H5_checksum_fletcher32``) of ``data``.

    Exactly as HDF5 computes it: 16-bit big-endian words, sums folded every
    360 words, 32-bit wrap-around.

    Examples
    --------
    >>> hex(fletcher32(b"abcde"))
    '0x4ff029c7'
    >>> fletcher32(b"")
    0
    """
    raw = np.frombuffer(data, dtype=np.uint8)
    if raw.size % 2:
        raw = np.append(raw, np.uint8(0))  # HDF5 adds the odd byte as (byte << 8)
    words = raw.view(">u2").astype(np.int64)
    full = words.size // 360 * 360
    weights = np.arange(360, 0, -1, dtype=np.int64)
    blocks = words[:full].reshape(-1, 360)
    sums = [(360, int(a), int(b)) for a, b in zip(blocks.sum(axis=1), blocks @ weights, strict=True)]
    if full < words.size:
        tail = words[full:]
        n = tail.size
        sums.append((n, int(tail.sum()), int(tail @ np.arange(n, 0, -1, dtype=np.int64))))
    sum1 = sum2 = 0
    for n, block_sum, weighted_sum in sums:
        sum2 = (sum2 + n * sum1 + weighted_sum) & 0xFFFFFFFF
        sum1 = (sum1 + block_sum) & 0xFFFFFFFF
        sum1 = (sum1 & 0xFFFF) + (sum1 >> 16)
        sum2 = (sum2 & 0xFFFF) + (sum2 >> 16)
    sum1 = (sum1 & 0xFFFF) + (sum1 >> 16)
    sum2 = (sum2 & 0xFFFF) + (sum2 >> 16)
    return (sum2 << 16) | sum1


@dataclass(frozen=True)
class Fletcher32:
    """Verify and strip the 4-byte checksum HDF5 appends (``H5Z_FILTER_FLETCHER32``)."""

    def decode(self, buf: Buffer, decoded_size: int | None) -> Buffer:
        view = memoryview(buf)
        if len(view) < 4:
            raise DecodeError("chunk shorter than its Fletcher-32 checksum")
        body, stored = view[:-4], int.from_bytes(view[-4:], "little")
        computed = fletcher32(body)
        # HDF5 before 1.6.3 stored the checksum with its bytes swapped pairwise; both are valid.
        swapped = ((computed & 0x00FF00FF) << 8) | ((computed >> 8) & 0x00FF00FF)
        if stored not in (computed, swapped):
            raise DecodeError(
                f"Fletcher-32 checksum mismatch (stored {stored:#010x}, computed {computed:#010x})"
            )
        return body


@dataclass(frozen=True)
class Shuffle:
    """Undo HDF5's byte shuffle (``H5Z_FILTER_SHUFFLE``) for elements of ``size`` bytes."""

    size: int

    def decode(self, buf: Buffer, decoded_size: int | None) -> Buffer:
        raw = np.frombuffer(buf, dtype=np.uint8)
        if self.size <= 1 or raw.size // self.size <= 1:
            return buf
        out = np.empty_like(raw)
        self.decode_into(buf, out)
        return out.data

    def decode_into(self, buf: Buffer, out: np.ndarray) -> None:
        """Unshuffle ``buf`` into ``out`` (contiguous bytes of the same size)."""
        raw = np.frombuffer(buf, dtype=np.uint8)
        if raw.size != out.size:
            raise DecodeError(f"shuffled chunk of {raw.size} bytes, expected {out.size}")
        n = raw.size // self.size
        body = n * self.size
        out[:body].reshape(n, self.size)[...] = raw[:body].reshape(self.size, n).T
        out[body:] = raw[body:]  # leftover bytes are stored as they are


@dataclass(frozen=True)
class Deflate:
    """zlib streams (``H5Z_FILTER_DEFLATE``), decoded by libdeflate."""

    needs_size = True  # libdeflate decodes into a buffer of the exact size

    def decode(self, buf: Buffer, decoded_size: int | None) -> Buffer:
        try:
            return deflate.zlib_decompress(buf, decoded_size)
        except deflate.DeflateError as err:
            raise DecodeError(f"zlib: {err}") from None


@dataclass(frozen=True)
class Bzip2:
    """bzip2 streams (PyTables' bzip2 filter, id 307)."""

    def decode(self, buf: Buffer, decoded_size: int | None) -> Buffer:
        decompressor = bz2.BZ2Decompressor()
        try:
            # never more than the chunk (plus one byte, to see an overlong stream)
            data = decompressor.decompress(buf, -1 if decoded_size is None else decoded_size + 1)
        except (OSError, ValueError, EOFError) as err:
            raise DecodeError(f"bzip2: {err}") from None
        if not decompressor.eof or (decoded_size is not None and len(data) != decoded_size):
            raise DecodeError(f"bzip2: stream does not hold the {decoded_size} bytes of the chunk")
        return data


_ONE_THREAD = blosc2.DParams(nthreads=1)  # dask's threads are the parallelism


def _blosc_header(buf: Buffer) -> tuple[int, int]:
    """``(nbytes, cbytes)`` from a Blosc (1 or 2) chunk header, validated before decoding."""
    view = memoryview(buf)
    if len(view) < 16:
        raise DecodeError("Blosc chunk shorter than its header")
    nbytes = int.from_bytes(view[4:8], "little")
    cbytes = int.from_bytes(view[12:16], "little")
    return nbytes, cbytes


@dataclass(frozen=True)
class Blosc:
    """Blosc 1 chunks (PyTables' blosc filter, id 32001), all codecs, decoded by python-blosc2."""

    def decode(self, buf: Buffer, decoded_size: int | None) -> Buffer:
        nbytes, cbytes = _blosc_header(buf)
        if cbytes != memoryview(buf).nbytes or decoded_size not in (None, nbytes):
            raise DecodeError(
                f"Blosc header says {cbytes} stored / {nbytes} raw bytes, "
                f"the chunk has {len(buf)} stored / {decoded_size} expected"
            )
        try:
            return blosc2.decompress2(buf, dparams=_ONE_THREAD)
        except (RuntimeError, ValueError) as err:
            raise DecodeError(f"Blosc: {err}") from None

    def decode_into(self, buf: Buffer, out: np.ndarray) -> None:
        """Decompress ``buf`` into ``out`` (contiguous bytes of the raw size)."""
        nbytes, cbytes = _blosc_header(buf)
        if cbytes != memoryview(buf).nbytes or nbytes != out.nbytes:
            raise DecodeError(
                f"Blosc header says {cbytes} stored / {nbytes} raw bytes, expected {out.nbytes} raw"
            )
        try:
            blosc2.decompress2(buf, dst=out, dparams=_ONE_THREAD)
        except (RuntimeError, ValueError) as err:
            raise DecodeError(f"Blosc: {err}") from None


@dataclass(frozen=True)
class Blosc2:
    """Blosc2 frames (PyTables' blosc2 filter, id 32026): b2nd arrays or plain super-chunks.

    A b2nd chunk is stored block by block.  Where the blocks tile the chunk,
    it is decompressed whole and its blocks put in C order with numpy (in
    one copy, straight into the result with ``decode_into``; with no copy
    where blocks span whole rows); otherwise python-blosc2 reorders.
    """

    def decode(self, buf: Buffer, decoded_size: int | None) -> Buffer | np.ndarray:
        out = self._decode(buf, None, decoded_size)
        if decoded_size not in (None, out.nbytes):
            raise DecodeError(f"Blosc2 frame holds {out.nbytes} bytes, expected {decoded_size}")
        return out

    def decode_into(self, buf: Buffer, out: np.ndarray) -> None:
        """Decompress ``buf`` into ``out`` (contiguous bytes of the raw chunk, C order)."""
        self._decode(buf, out)

    def _decode(self, buf: Buffer, out: np.ndarray | None, decoded_size: int | None = None) -> np.ndarray:
        expected = out.nbytes if out is not None else decoded_size
        try:
            frame = bytes(buf)
            schunk = blosc2.schunk_from_cframe(frame, copy=False)
            schunk.dparams = _ONE_THREAD
            if "b2nd" in schunk.meta:
                array = blosc2.ndarray_from_cframe(frame, copy=False)
                # b2nd pads chunks to whole blocks: check the real shape, before any allocation
                if expected is not None and int(np.prod(array.shape)) * array.dtype.itemsize != expected:
                    raise DecodeError(f"Blosc2 frame holds a {array.shape} array, not {expected} bytes")
                return self._b2nd(array, schunk, out)
            if expected is not None and schunk.nbytes != expected:
                raise DecodeError(f"Blosc2 frame holds {schunk.nbytes} bytes, expected {expected}")
            if out is None:
                out = np.empty(schunk.nbytes, dtype=np.uint8)
            for i in range(schunk.nchunks):
                start = i * schunk.chunksize
                schunk.decompress_chunk(i, out[start : start + schunk.chunksize])
            return out
        except DecodeError:
            raise
        except Exception as err:  # damaged frames fail in many ways (RuntimeError, SyntaxError...)
            raise DecodeError(f"Blosc2: {type(err).__name__}: {err}") from None

    @staticmethod
    def _b2nd(array: Any, schunk: Any, out: np.ndarray | None) -> np.ndarray:
        chunks, blocks = tuple(array.chunks), tuple(array.blocks)
        itemsize = array.dtype.itemsize
        if (
            array.shape != chunks
            or schunk.nchunks != 1
            or any(c % b for c, b in zip(chunks, blocks, strict=True))
        ):
            array.schunk.dparams = _ONE_THREAD
            data = np.ascontiguousarray(array[...]).view(np.uint8).reshape(-1)
            if out is None:
                return data
            out[...] = data
            return out
        grid = tuple(c // b for c, b in zip(chunks, blocks, strict=True))
        if all(g == 1 for g in grid[1:]):  # blocks span whole rows: stored in C order already
            if out is None:
                out = np.empty(int(np.prod(chunks)) * itemsize, dtype=np.uint8)
            schunk.decompress_chunk(0, out)
            return out
        flat = np.empty(int(np.prod(chunks)) * itemsize, dtype=np.uint8)
        schunk.decompress_chunk(0, flat)
        ndim = len(chunks)
        blocked = flat.view(f"V{itemsize}").reshape(grid + blocks)
        # axes (g0, g1, .., b0, b1, ..) -> (g0, b0, g1, b1, ..): C order of the chunk
        order = [axis for pair in zip(range(ndim), range(ndim, 2 * ndim), strict=True) for axis in pair]
        interleaved = blocked.transpose(order)
        if out is None:
            return interleaved.reshape(chunks)  # numpy copies into C order
        out.view(f"V{itemsize}").reshape(interleaved.shape)[...] = interleaved
        return out


@dataclass(frozen=True)
class Lzf:
    """LZF streams (h5py's lzf filter, id 32000), decoded in pure Python.

    PyTables cannot read LZF at all; h5py writes it.  No maintained wheel of
    an LZF library exists for every platform, so this decoder is a plain
    loop: correct, and slow (tens of MB/s), but it reads files that PyTables
    cannot.
    """

    needs_size = True

    def decode(self, buf: Buffer, decoded_size: int | None) -> Buffer:
        assert decoded_size is not None
        return lzf_decompress(bytes(buf), decoded_size)


def lzf_decompress(src: bytes, size: int) -> bytearray:
    """Decompress an LZF stream (liblzf's ``lzf_decompress``) of ``size`` raw bytes.

    Examples
    --------
    >>> bytes(lzf_decompress(bytes([2]) + b"abc" + bytes([0x20, 2]), 6))  # "abc" + back-reference
    b'abcabc'
    """
    out = bytearray(size)
    ip = op = 0
    end = len(src)
    while ip < end:
        ctrl = src[ip]
        ip += 1
        if ctrl < 32:  # a literal run of ctrl + 1 bytes
            length = ctrl + 1
            if ip + length > end or op + length > size:
                raise DecodeError("LZF: literal run past the end")
            out[op : op + length] = src[ip : ip + length]
            ip += length
        else:  # a back-reference
            length = ctrl >> 5
            if length == 7:
                if ip >= end:
                    raise DecodeError("LZF: truncated back-reference")
                length += src[ip]
                ip += 1
            if ip >= end:
                raise DecodeError("LZF: truncated back-reference")
            ref = op - ((ctrl & 0x1F) << 8) - src[ip] - 1
            ip += 1
            length += 2
            if ref < 0 or op + length > size:
                raise DecodeError("LZF: back-reference out of range")
            distance = op - ref
            if distance >= length:
                out[op : op + length] = out[ref : ref + length]
            else:  # overlapping: the last `distance` bytes repeat
                pattern = bytes(out[ref:op])
                out[op : op + length] = (pattern * (length // distance + 1))[:length]
        op += length
    if op != size:
        raise DecodeError(f"LZF: stream holds {op} bytes, expected {size}")
    return out


def _make_shuffle(params: Sequence[int]) -> Decoder:
    return Shuffle(int(params[0]))


# Filter name (as ``tables.utilsextension.get_filters`` reports it) -> decoder factory.
DECODERS: Mapping[str, Callable[[Sequence[int]], Decoder]] = {
    "fletcher32": lambda params: Fletcher32(),
    "shuffle": _make_shuffle,
    "deflate": lambda params: Deflate(),
    "bzip2": lambda params: Bzip2(),
    "blosc": lambda params: Blosc(),
    "blosc2": lambda params: Blosc2(),
    "lzf": lambda params: Lzf(),
}

# Filters whose stored size is not the raw size (so the next decoder must be told).
_CHECKSUM_BYTES = {"fletcher32": 4}
_COMPRESSORS = {"deflate", "bzip2", "blosc", "blosc2", "lzf"}


class FilterPipeline:
    """Decode the stored chunks of one dataset to their raw bytes.

    Parameters
    ----------
    filters : sequence of (name, params)
        The dataset's filter pipeline in HDF5 (write) order.
    chunk_nbytes : int
        Raw bytes of one chunk.

    Raises
    ------
    UnsupportedFilterError
        A filter has no decoder, or the pipeline is one whose intermediate
        sizes are unknown (two compressors).

    Examples
    --------
    >>> import zlib
    >>> pipeline = FilterPipeline([("shuffle", (2,)), ("deflate", (6,))], chunk_nbytes=4)
    >>> bytes(pipeline.decode(zlib.compress(b"acbd")))
    b'abcd'
    >>> bytes(pipeline.decode(b"acbd", filter_mask=0b10))  # deflate skipped for this chunk
    b'abcd'
    """

    def __init__(self, filters: Sequence[tuple[str, Sequence[int]]], chunk_nbytes: int) -> None:
        for name, _ in filters:
            if name not in DECODERS:
                raise UnsupportedFilterError(f"no decoder for HDF5 filter {name!r}")
        self.filters = tuple((name, tuple(params)) for name, params in filters)
        self.chunk_nbytes = chunk_nbytes
        # filter mask -> decoding steps; built on first use, then only read.
        self._steps: dict[int, list[tuple[Decoder, int | None]]] = {}
        self._steps_for(0)

    def _steps_for(self, filter_mask: int) -> list[tuple[Decoder, int | None]]:
        steps = self._steps.get(filter_mask)
        if steps is not None:
            return steps
        steps = []
        size: int | None = self.chunk_nbytes
        for bit, (name, params) in enumerate(self.filters):
            if filter_mask & (1 << bit):
                continue  # HDF5 skipped this (optional) filter for this chunk
            decoder = DECODERS[name](params)
            if size is None and getattr(decoder, "needs_size", False):
                raise UnsupportedFilterError(f"filter {name!r} after a compressor: its input size is unknown")
            steps.append((decoder, size))
            if name in _COMPRESSORS or size is None:
                size = None
            else:
                size += _CHECKSUM_BYTES.get(name, 0)
        steps.reverse()
        self._steps[filter_mask] = steps
        return steps

    def decode(self, buf: Buffer, filter_mask: int = 0, out: np.ndarray | None = None) -> Buffer | np.ndarray:
        """Decode one stored chunk; raise :class:`DecodeError` if it is corrupt.

        Returns the raw bytes in C order, or an array view of them (the
        last Blosc2 step may return a strided view over its blocks).  Given
        ``out`` (contiguous bytes, ``chunk_nbytes`` long), a last step that
        can write there does, and ``out`` is returned.
        """
        steps = self._steps_for(filter_mask)
        for i, (decoder, decoded_size) in enumerate(steps):
            if isinstance(buf, np.ndarray) and not buf.flags.c_contiguous:
                buf = np.ascontiguousarray(buf).view(np.uint8).reshape(-1)
            if out is not None and i == len(steps) - 1 and hasattr(decoder, "decode_into"):
                if out.nbytes != self.chunk_nbytes:
                    raise ValueError(f"out holds {out.nbytes} bytes, a chunk {self.chunk_nbytes}")
                decoder.decode_into(buf, out)
                return out
            buf = decoder.decode(buf, decoded_size)
            if i < len(steps) - 1 and isinstance(buf, np.ndarray) and not buf.flags.c_contiguous:
                buf = np.ascontiguousarray(buf).view(np.uint8).reshape(-1)
        size = buf.nbytes if isinstance(buf, np.ndarray) else memoryview(buf).nbytes
        if size != self.chunk_nbytes:
            raise DecodeError(f"chunk decodes to {size} bytes, expected {self.chunk_nbytes}")
        return buf
