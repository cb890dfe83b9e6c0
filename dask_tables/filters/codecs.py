"""HDF5 filters decoded in Python, outside every lock: one small decoder per filter.

HDF5 applies a dataset's filters in pipeline order when it writes a chunk;
:class:`FilterPipeline` runs the reverse: from a chunk's stored bytes to its
raw bytes (skipping the filters that the chunk's filter mask says HDF5
skipped when it wrote it).  Each filter maps to one tiny :class:`Decoder`, in
the manner of numcodecs, registered by the name PyTables reports for it
(``tables.utilsextension.get_filters``).  Adding a filter touches one place:
:data:`DECODERS`.

Every decoder lets the GIL go while it works, so two threads decode two
chunks at once:

- zlib: ``deflate`` (libdeflate), measured fastest against ISA-L and zlib;
- Blosc and Blosc2: C-Blosc2 through ctypes (:mod:`dask_tables.filters.libblosc2`,
  the library python-blosc2's wheel ships), without touching python-blosc2's
  process-wide settings; python-blosc2 itself only where that library does
  not load;
- byte shuffle: C-Blosc2's SIMD ``blosc2_unshuffle`` (numpy's transpose copy
  where it cannot);
- Fletcher-32: numpy sums, no loop per block in Python;
- b2nd block reordering: one numpy strided copy of unsigned integers;
- bzip2: the standard library's :mod:`bz2`;
- LZF (h5py's filter, which PyTables cannot read): imagecodecs' liblzf; a
  pure-Python loop (which holds the GIL) only where imagecodecs is missing.
"""

from __future__ import annotations

import bz2
import ctypes
import functools
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import blosc2
import deflate
import numpy as np

from ..hdf5 import calls
from . import libblosc2

__all__ = [
    "DECODERS",
    "FILTER_NAMES",
    "DecodeError",
    "FilterPipeline",
    "StoredFilter",
    "UnsupportedFilterError",
    "fletcher32",
    "hdf5_can_apply",
    "lzf_decompress",
    "stored_filters",
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


# Words summed per numpy pass: bounds the temporary (8 bytes a word) and keeps each
# pass's sum of prefix sums below 2**63 (65536 words of at most 65535: < 2**48).
_FLETCHER_SEGMENT = 1 << 16


def fletcher32(data: Buffer) -> int:
    """HDF5's Fletcher-32 checksum (``H5_checksum_fletcher32``) of ``data``.

    Exactly as HDF5 computes it: 16-bit big-endian words (an odd last byte
    counts as ``byte << 8``), ``sum1`` the sum of the words and ``sum2`` the
    sum of the running sums, both folded to 16 bits (``(x & 0xFFFF) + (x >>
    16)``) as they go.  Folding keeps a sum's value modulo 65535 and never
    turns a positive sum into 0, so each result is the exact sum modulo
    65535, written 65535 instead of 0 unless the sum is 0: numpy computes
    those sums (cumulative sums, with the GIL released), never a Python loop
    over HDF5's blocks of 360 words.

    Examples
    --------
    >>> hex(fletcher32(b"abcde"))
    '0x4ff029c7'
    >>> fletcher32(b"")
    0
    >>> hex(fletcher32(b"\\xff\\xff"))  # sums of 65535: HDF5 never folds them to 0
    '0xffffffff'
    """
    raw = np.frombuffer(data, dtype=np.uint8)
    words = raw[: raw.size // 2 * 2].view(">u2")
    sum1 = sum2 = 0  # exact sums, modulo 65535
    nonzero = False
    for start in range(0, words.size, _FLETCHER_SEGMENT):
        segment = words[start : start + _FLETCHER_SEGMENT]
        running = np.cumsum(segment, dtype=np.uint64)
        total = int(running[-1])
        sum2 = (sum2 + segment.size * sum1 + int(running.sum())) % 65535
        sum1 = (sum1 + total) % 65535
        nonzero = nonzero or total > 0
    if raw.size % 2:
        last = int(raw[-1]) << 8  # HDF5 adds the odd byte as (byte << 8)
        sum1 = (sum1 + last) % 65535
        sum2 = (sum2 + sum1) % 65535
        nonzero = nonzero or last > 0
    if nonzero:  # positive sums fold to 1..65535, never to 0
        sum1, sum2 = sum1 or 0xFFFF, sum2 or 0xFFFF
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

    def decode_into(self, buf: Buffer, out: np.ndarray) -> None:
        """Verify ``buf`` and copy its body into ``out`` (contiguous bytes of the body's size)."""
        body = self.decode(buf, out.nbytes)
        if len(body) != out.nbytes:
            raise DecodeError(f"chunk of {len(body)} bytes under its checksum, expected {out.nbytes}")
        out[...] = np.frombuffer(body, dtype=np.uint8)


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
        """Unshuffle ``buf`` into ``out`` (contiguous bytes of the same size).

        C-Blosc2's SIMD unshuffle (the same layout: ``size`` byte streams,
        leftover bytes stored as they are) with the GIL released; numpy's
        transpose copy for elements wider than 256 bytes or chunks of 2 GiB.
        """
        raw = np.frombuffer(buf, dtype=np.uint8)
        if raw.size != out.size:
            raise DecodeError(f"shuffled chunk of {raw.size} bytes, expected {out.size}")
        lib = libblosc2.library()
        if lib is not None and lib.unshuffle(self.size, raw, out):
            return
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

    def decode_into(self, buf: Buffer, out: np.ndarray) -> None:
        """Decompress ``buf`` into ``out`` (contiguous bytes of the raw size), no allocation.

        imagecodecs' ``deflate_decode`` runs libdeflate into a given buffer
        (the ``deflate`` package always returns new bytes); without
        imagecodecs, decode and copy.
        """
        module = _imagecodecs()
        if module is None:  # pragma: no cover - imagecodecs is a dependency
            out[...] = np.frombuffer(self.decode(buf, out.nbytes), dtype=np.uint8)
            return
        _decode_exactly("zlib", module.deflate_decode, buf, out)


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

# Per thread: the buffer a b2nd chunk is decompressed into before its blocks
# are put in C order (grown, never shrunk; each thread touches only its own).
_SCRATCH = threading.local()


def _scratch(nbytes: int) -> np.ndarray:
    """This thread's reusable buffer, ``nbytes`` long (a view of it)."""
    buffer = getattr(_SCRATCH, "buffer", None)
    if buffer is None or buffer.nbytes < nbytes:
        buffer = _SCRATCH.buffer = np.empty(nbytes, dtype=np.uint8)
    return buffer[:nbytes]


def _step_scratch(step: int, nbytes: int) -> np.ndarray:
    """This thread's reusable buffer for the output of pipeline step ``step`` (not the last)."""
    buffers = getattr(_SCRATCH, "steps", None)
    if buffers is None:
        buffers = _SCRATCH.steps = {}
    buffer = buffers.get(step)
    if buffer is None or buffer.nbytes < nbytes:
        buffer = buffers[step] = np.empty(nbytes, dtype=np.uint8)
    return buffer[:nbytes]


def _as_bytes(buf: Buffer | np.ndarray) -> np.ndarray:
    """A contiguous uint8 view of ``buf`` (copied only if it is a strided array)."""
    if isinstance(buf, np.ndarray):
        return np.ascontiguousarray(buf).view(np.uint8).reshape(-1)
    return np.frombuffer(buf, dtype=np.uint8)


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
    """Blosc 1 chunks (PyTables' blosc filter, id 32001), all codecs.

    C-Blosc2 reads Blosc 1 chunks: ``blosc2_decompress_ctx`` through ctypes
    (GIL released, one context per thread), python-blosc2 where that
    library does not load.
    """

    def decode(self, buf: Buffer, decoded_size: int | None) -> Buffer:
        nbytes, _ = self._check(buf, decoded_size)
        out = np.empty(nbytes, dtype=np.uint8)
        self._decompress(buf, out)
        return out.data

    def decode_into(self, buf: Buffer, out: np.ndarray) -> None:
        """Decompress ``buf`` into ``out`` (contiguous bytes of the raw size)."""
        self._check(buf, out.nbytes)
        self._decompress(buf, out)

    @staticmethod
    def _check(buf: Buffer, decoded_size: int | None) -> tuple[int, int]:
        """The header's sizes, checked against the chunk's before anything is allocated."""
        nbytes, cbytes = _blosc_header(buf)
        if cbytes != memoryview(buf).nbytes or decoded_size not in (None, nbytes):
            raise DecodeError(
                f"Blosc header says {cbytes} stored / {nbytes} raw bytes, "
                f"the chunk has {memoryview(buf).nbytes} stored / {decoded_size} expected"
            )
        return nbytes, cbytes

    @staticmethod
    def _decompress(buf: Buffer, out: np.ndarray) -> None:
        lib = libblosc2.library()
        if lib is not None:
            got = lib.decompress(_as_bytes(buf), out)
            if got != out.nbytes:
                raise DecodeError(f"Blosc: the chunk does not decode (C-Blosc2 returned {got})")
            return
        try:
            blosc2.decompress2(buf, dst=out, dparams=_ONE_THREAD)
        except (RuntimeError, ValueError) as err:
            raise DecodeError(f"Blosc: {err}") from None


@dataclass(frozen=True)
class Blosc2:
    """Blosc2 frames (PyTables' blosc2 filter, id 32026): b2nd arrays or plain super-chunks.

    C-Blosc2 parses the frame in place and decompresses it with the GIL
    released (:mod:`dask_tables.filters.libblosc2`).  A b2nd chunk is stored block
    by block: where blocks span whole rows (PyTables' usual choice) that is
    C order already and it decompresses straight into the result;
    otherwise into a per-thread buffer, then one numpy strided copy puts
    the blocks in C order (dropping the padding of blocks that overhang the
    chunk).  python-blosc2 decodes what this does not handle (a b2nd frame
    of several chunks; no loadable C-Blosc2).
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
        lib = libblosc2.library()
        if lib is None:
            return self._decode_python(buf, out, expected)
        frame_bytes = _as_bytes(buf)
        try:
            with lib.frame(frame_bytes) as frame:
                if frame.b2nd is None:
                    return _superchunk(frame, out, expected)
                if frame.nchunks == 1 and frame.b2nd.shape == frame.b2nd.chunkshape:
                    return _b2nd_chunk(frame, out, expected)
        except libblosc2.FrameError as err:
            raise DecodeError(f"Blosc2: {err}") from None
        return self._decode_python(frame_bytes, out, expected)

    def _decode_python(self, buf: Buffer, out: np.ndarray | None, expected: int | None) -> np.ndarray:
        """python-blosc2's decoding (holds the GIL): where the C binding is not available."""
        try:
            frame = bytes(buf)
            schunk = blosc2.schunk_from_cframe(frame, copy=False)
            schunk.dparams = _ONE_THREAD
            if "b2nd" in schunk.meta:
                array = blosc2.ndarray_from_cframe(frame, copy=False)
                # b2nd pads chunks to whole blocks: check the real shape, before any allocation
                if expected is not None and int(np.prod(array.shape)) * array.dtype.itemsize != expected:
                    raise DecodeError(f"Blosc2 frame holds a {array.shape} array, not {expected} bytes")
                array.schunk.dparams = _ONE_THREAD
                data = np.ascontiguousarray(array[...]).view(np.uint8).reshape(-1)
                if out is None:
                    return data
                out[...] = data
                return out
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


def _superchunk(frame: libblosc2.Frame, out: np.ndarray | None, expected: int | None) -> np.ndarray:
    """A plain super-chunk's bytes: its chunks one after the other."""
    if expected is not None and frame.nbytes != expected:
        raise DecodeError(f"Blosc2 frame holds {frame.nbytes} bytes, expected {expected}")
    if frame.nbytes and (frame.chunksize <= 0 or frame.nchunks != -(-frame.nbytes // frame.chunksize)):
        raise DecodeError(
            f"Blosc2 frame of {frame.nbytes} bytes in {frame.nchunks} chunks of {frame.chunksize}"
        )
    if out is None:
        out = np.empty(frame.nbytes, dtype=np.uint8)
    for i in range(frame.nchunks):
        start = i * frame.chunksize
        frame.decompress_chunk(i, out[start : start + frame.chunk_nbytes(i)])
    return out


def _b2nd_chunk(frame: libblosc2.Frame, out: np.ndarray | None, expected: int | None) -> np.ndarray:
    """A one-chunk b2nd array in C order; its sizes checked before anything is written."""
    meta = frame.b2nd
    assert meta is not None
    chunks, blocks = meta.chunkshape, meta.blockshape
    if any(c < 1 for c in chunks) or any(b < 1 for b in blocks) or len(blocks) != len(chunks):
        raise DecodeError(f"Blosc2 b2nd chunk {chunks} in blocks {blocks}")
    cells = int(np.prod(chunks, dtype=np.int64))
    grid = tuple(-(-c // b) for c, b in zip(chunks, blocks, strict=True))
    padded = int(np.prod(grid, dtype=np.int64)) * int(np.prod(blocks, dtype=np.int64))  # whole blocks
    itemsize, remainder = divmod(frame.nbytes, padded) if padded else (0, 1)
    if remainder or itemsize < 1 or (expected is not None and cells * itemsize != expected):
        raise DecodeError(
            f"Blosc2 frame holds a {chunks} array in {frame.nbytes} bytes, not {expected} bytes"
        )
    if out is None:
        out = np.empty(cells * itemsize, dtype=np.uint8)
    if padded == cells and all(g == 1 for g in grid[1:]):  # blocks span whole rows: C order already
        frame.decompress_chunk(0, out)
        return out
    flat = _scratch(padded * itemsize)
    frame.decompress_chunk(0, flat)
    _unblock(flat, out, chunks, blocks, grid, itemsize)
    return out


def _unblock(
    flat: np.ndarray,
    out: np.ndarray,
    chunks: tuple[int, ...],
    blocks: tuple[int, ...],
    grid: tuple[int, ...],
    itemsize: int,
) -> None:
    """Put a b2nd chunk's blocks (``flat``, block after block) in C order into ``out``.

    One numpy strided copy, of unsigned integers where the item size allows
    (numpy releases the GIL for those copies); two where blocks overhang the
    chunk (the padding is cut off in the second).
    """
    cell = np.dtype(f"u{itemsize}") if itemsize in (1, 2, 4, 8) else np.dtype(f"V{itemsize}")
    ndim = len(chunks)
    blocked = flat.view(cell).reshape(grid + blocks)
    # axes (g0, g1, .., b0, b1, ..) -> (g0, b0, g1, b1, ..): C order of the padded chunk
    order = [axis for pair in zip(range(ndim), range(ndim, 2 * ndim), strict=True) for axis in pair]
    interleaved = blocked.transpose(order)
    if all(g * b == c for g, b, c in zip(grid, blocks, chunks, strict=True)):  # blocks tile the chunk
        out.view(cell).reshape(interleaved.shape)[...] = interleaved  # one copy, no temporary
        return
    padded = interleaved.reshape(tuple(g * b for g, b in zip(grid, blocks, strict=True)))  # a copy
    out.view(cell).reshape(chunks)[...] = padded[tuple(slice(0, c) for c in chunks)]


@dataclass(frozen=True)
class Lzf:
    """LZF streams (h5py's lzf filter, id 32000), decoded by imagecodecs' liblzf.

    PyTables cannot read LZF at all; h5py writes it.  imagecodecs (a
    maintained package with wheels for every major platform) decodes it in
    C with the GIL released; without it, :func:`lzf_decompress`, a plain
    Python loop: correct, but slow (tens of MB/s) and holding the GIL.
    """

    needs_size = True

    def decode(self, buf: Buffer, decoded_size: int | None) -> Buffer:
        assert decoded_size is not None
        out = np.empty(decoded_size, dtype=np.uint8)
        self.decode_into(buf, out)
        return out.data

    def decode_into(self, buf: Buffer, out: np.ndarray) -> None:
        """Decompress ``buf`` into ``out`` (contiguous bytes of the raw size)."""
        decode = _lzf_library()
        if decode is None:
            out[...] = np.frombuffer(lzf_decompress(bytes(buf), out.nbytes), dtype=np.uint8)
            return
        _decode_exactly("LZF", decode, buf, out)


def _lzf_library() -> Callable[..., Any] | None:
    """imagecodecs' ``lzf_decode`` where this build of it has LZF, else ``None``."""
    module = _imagecodecs()
    return module.lzf_decode if module is not None and getattr(module.LZF, "available", False) else None


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


@functools.cache
def _imagecodecs() -> Any:
    """The imagecodecs module, imported on first use (a large package), or ``None``."""
    try:
        import imagecodecs
    except ImportError:  # pragma: no cover - a dependency
        return None
    return imagecodecs


def _codec(name: str) -> Callable[..., Any]:
    """imagecodecs' ``<name>_decode``; :class:`UnsupportedFilterError` where it is not built."""
    module = _imagecodecs()
    codec = getattr(module, name.upper(), None) if module is not None else None
    if codec is None or not getattr(codec, "available", False):
        raise UnsupportedFilterError(f"imagecodecs has no {name} decoder in this build")
    return getattr(module, f"{name}_decode")


def _decode_exactly(
    name: str, decode: Callable[..., Any], buf: Buffer, out: np.ndarray, **kwargs: Any
) -> None:
    """``decode(buf, out=out)``: exactly ``out.nbytes`` bytes, or :class:`DecodeError`."""
    try:
        written = decode(_as_bytes(buf), out=memoryview(out), **kwargs)
    except (RuntimeError, ValueError, TypeError, OverflowError) as err:  # imagecodecs' *Error
        raise DecodeError(f"{name}: {err}") from None
    if len(written) != out.nbytes:
        raise DecodeError(f"{name}: stream holds {len(written)} bytes, expected {out.nbytes}")


class _ExactSize:
    """A decoder that writes a chunk of known size: ``decode`` allocates, ``decode_into`` does not."""

    needs_size = True

    def decode(self, buf: Buffer, decoded_size: int | None) -> Buffer:
        assert decoded_size is not None
        out = np.empty(decoded_size, dtype=np.uint8)
        self.decode_into(buf, out)
        return out.data

    def decode_into(self, buf: Buffer, out: np.ndarray) -> None:  # pragma: no cover - abstract
        raise NotImplementedError


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


@dataclass(frozen=True)
class Lz4(_ExactSize):
    """LZ4 in HDF5's framing (filter 32004, hdf5plugin's ``LZ4``), decoded by imagecodecs.

    The framing: the raw size (8 bytes, big-endian), the block size (4
    bytes), then per block its stored size (4 bytes) and LZ4 data (a block
    stored as it is where LZ4 would not shrink it).  One imagecodecs call
    (``lz4h5_decode``) decodes every block with the GIL released.
    """

    def decode_into(self, buf: Buffer, out: np.ndarray) -> None:
        """Decompress ``buf`` into ``out`` (contiguous bytes of the raw size)."""
        _be_header(buf, "LZ4", out.nbytes)
        _decode_exactly("LZ4", _codec("lz4h5"), buf, out)


@dataclass(frozen=True)
class Zstd(_ExactSize):
    """Zstandard frames (filter 32015, hdf5plugin's ``Zstd``), decoded by imagecodecs."""

    def decode_into(self, buf: Buffer, out: np.ndarray) -> None:
        """Decompress ``buf`` into ``out`` (contiguous bytes of the raw size)."""
        _decode_exactly("Zstd", _codec("zstd"), buf, out)


@dataclass(frozen=True)
class Szip(_ExactSize):
    """szip (``H5Z_FILTER_SZIP``, id 4: libaec's szip-compatible coder), decoded by imagecodecs.

    HDF5 stores the raw size (4 bytes, little-endian) before the szip
    stream; its parameters are ``(options mask, pixels per block, bits per
    pixel, pixels per scanline)`` as HDF5 completed them when it wrote the
    dataset.  PyTables' wheels cannot read szip at all.
    """

    params: tuple[int, ...]

    def __post_init__(self) -> None:
        if len(self.params) < 4:
            raise UnsupportedFilterError(f"szip with parameters {self.params}: expected 4")

    def decode_into(self, buf: Buffer, out: np.ndarray) -> None:
        """Decompress ``buf`` into ``out`` (contiguous bytes of the raw size)."""
        view = memoryview(buf).cast("B")
        if len(view) < 4 or int.from_bytes(view[:4], "little") != out.nbytes:
            raise DecodeError(f"szip: header does not give the chunk's {out.nbytes} bytes")
        mask, per_block, bits, per_line = self.params[:4]
        _decode_exactly(
            "szip",
            _codec("szip"),
            view[4:],
            out,
            options_mask=mask,
            pixels_per_block=per_block,
            bits_per_pixel=bits,
            pixels_per_scanline=per_line,
        )


# Bitshuffle's compressor codes (its 5th filter parameter).
_BSHUF_NONE, _BSHUF_LZ4, _BSHUF_ZSTD = 0, 2, 3


@dataclass(frozen=True)
class Bitshuffle(_ExactSize):
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

    params: tuple[int, ...]

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
            self._unshuffle(_as_bytes(buf), out, self.params[3])
            return
        view, block = _be_header(buf, "bitshuffle", out.nbytes)
        if block % itemsize or (block // itemsize) % 8:
            raise DecodeError(f"bitshuffle: block of {block} bytes, elements of {itemsize}")
        shuffled = _scratch(out.nbytes)
        self._decompress(view, block, shuffled, compressor)
        self._unshuffle(shuffled, out, block // itemsize)

    def _unshuffle(self, shuffled: np.ndarray, out: np.ndarray, block_elements: int) -> None:
        decode = _codec("bitshuffle")
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
            _decode_exactly("bitshuffle/Zstd", _codec("zstd"), joined, shuffled[:body])
        elif not leftover and all(n != size for (_, n), size in zip(frames, sizes, strict=True)):
            # HDF5's LZ4 framing, exactly (it would read a block stored in `size` bytes as raw)
            _decode_exactly("bitshuffle/LZ4", _codec("lz4h5"), view, shuffled)
        else:
            decode, op = _codec("lz4"), 0
            for (a, n), size in zip(frames, sizes, strict=True):
                _decode_exactly("bitshuffle/LZ4", decode, view[a : a + n], shuffled[op : op + size])
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
    "szip": lambda params: Szip(tuple(params)),
    "lz4": lambda params: Lz4(),
    "zstd": lambda params: Zstd(),
    "bitshuffle": lambda params: Bitshuffle(tuple(params)),
}

# Filters whose stored size is not the raw size (so the next decoder must be told).
_CHECKSUM_BYTES = {"fletcher32": 4}
_COMPRESSORS = {"deflate", "bzip2", "blosc", "blosc2", "lzf", "szip", "lz4", "zstd", "bitshuffle"}


# HDF5 filter id -> the name its decoder is registered under in DECODERS (ids from
# HDF5's registry of filter plugins); the names PyTables reports for its own filters.
FILTER_NAMES: Mapping[int, str] = {
    1: "deflate",
    2: "shuffle",
    3: "fletcher32",
    4: "szip",
    5: "nbit",
    6: "scaleoffset",
    305: "lzo",
    307: "bzip2",
    32000: "lzf",
    32001: "blosc",
    32004: "lz4",
    32008: "bitshuffle",
    32015: "zstd",
    32026: "blosc2",
}
# Which names (as written in files) mean which filter, where the filter id is unknown.
_NAME_PREFIXES = (("bitshuffle", "bitshuffle"), ("HDF5 lz4 filter", "lz4"), ("HDF5 zstd filter", "zstd"))


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
        """The name its decoder is registered under (the stored name for an unknown filter)."""
        if self.id in FILTER_NAMES:
            return FILTER_NAMES[self.id]
        for prefix, name in _NAME_PREFIXES:
            if self.stored_name.startswith(prefix):
                return name
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

    lib = calls.library()
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
    lib = calls.library()
    return lib is not None and filter_id >= 0 and lib.H5Zfilter_avail(filter_id) > 0


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
        last = len(steps) - 1
        # With out given and a last step that writes into it, the steps before
        # may decode into this thread's scratch buffers: nothing returned aliases them.
        reuse = out is not None and last >= 0 and hasattr(steps[last][0], "decode_into")
        for i, (decoder, decoded_size) in enumerate(steps):
            if isinstance(buf, np.ndarray) and not buf.flags.c_contiguous:
                buf = np.ascontiguousarray(buf).view(np.uint8).reshape(-1)
            if out is not None and i == last and hasattr(decoder, "decode_into"):
                if out.nbytes != self.chunk_nbytes:
                    raise ValueError(f"out holds {out.nbytes} bytes, a chunk {self.chunk_nbytes}")
                decoder.decode_into(buf, out)
                return out
            if reuse and decoded_size is not None and hasattr(decoder, "decode_into"):
                scratch = _step_scratch(i, decoded_size)
                decoder.decode_into(buf, scratch)
                buf = scratch
                continue
            buf = decoder.decode(buf, decoded_size)
            if i < len(steps) - 1 and isinstance(buf, np.ndarray) and not buf.flags.c_contiguous:
                buf = np.ascontiguousarray(buf).view(np.uint8).reshape(-1)
        size = buf.nbytes if isinstance(buf, np.ndarray) else memoryview(buf).nbytes
        if size != self.chunk_nbytes:
            raise DecodeError(f"chunk decodes to {size} bytes, expected {self.chunk_nbytes}")
        return buf
