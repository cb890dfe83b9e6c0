"""Blosc and Blosc2 chunks (PyTables' filters 32001 and 32026), by C-Blosc2 through ctypes.

C-Blosc2 (:mod:`dask_tables.filters.libblosc2`, the library python-blosc2's
wheel ships) decodes with the GIL released and without touching
python-blosc2's process-wide settings; python-blosc2 itself only where that
library does not load, and to encode Blosc2 frames.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import blosc2
import numpy as np

from . import libblosc2
from .base import Buffer, DecodeError, Filter, UnsupportedEncoderError, register
from .buffers import as_bytes, scratch

__all__ = ["Blosc", "Blosc2"]

_ONE_THREAD = blosc2.DParams(nthreads=1)  # dask's threads are the parallelism


def _blosc_header(buf: Buffer) -> tuple[int, int]:
    """``(nbytes, cbytes)`` from a Blosc (1 or 2) chunk header, validated before decoding."""
    view = memoryview(buf)
    if len(view) < 16:
        raise DecodeError("Blosc chunk shorter than its header")
    nbytes = int.from_bytes(view[4:8], "little")
    cbytes = int.from_bytes(view[12:16], "little")
    return nbytes, cbytes


@register
@dataclass(frozen=True)
class Blosc(Filter):
    """Blosc 1 chunks (PyTables' blosc filter, id 32001), all codecs; decoded only.

    C-Blosc2 reads Blosc 1 chunks: ``blosc2_decompress_ctx`` through ctypes
    (GIL released, one context per thread), python-blosc2 where that
    library does not load.  Not encoded: python-blosc2 writes Blosc2
    chunks, whose header the Blosc 1 library inside PyTables refuses, so
    such nodes are written through HDF5's own pipeline.

    Examples
    --------
    >>> chunk = blosc2.compress2(b"abcd" * 100, typesize=4)
    >>> bytes(Blosc().decode(chunk, 400)) == b"abcd" * 100
    True
    """

    id = 32001
    name = "blosc"

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
            got = lib.decompress(as_bytes(buf), out)
            if got != out.nbytes:
                raise DecodeError(f"Blosc: the chunk does not decode (C-Blosc2 returned {got})")
            return
        try:
            blosc2.decompress2(buf, dst=out, dparams=_ONE_THREAD)
        except (RuntimeError, ValueError) as err:
            raise DecodeError(f"Blosc: {err}") from None


@dataclass(frozen=True)
class _Blosc2Encoding:
    """What a Blosc2 filter's parameters say about writing: compression, and the b2nd chunk shape."""

    typesize: int
    clevel: int
    shuffle: int
    codec: int
    chunkshape: tuple[int, ...] | None

    @classmethod
    def of(cls, params: tuple[int, ...]) -> _Blosc2Encoding:
        """Parse ``(revision, version, typesize, chunk bytes, clevel, shuffle, codec[, ndim, *chunkshape])``."""
        if len(params) < 7:
            raise UnsupportedEncoderError(f"blosc2 filter parameters {tuple(params)} are incomplete")
        typesize, clevel, shuffle, codec = params[2], params[4], params[5], params[6]
        if shuffle not in (0, 1, 2):
            raise UnsupportedEncoderError(f"blosc2 shuffle mode {shuffle}")
        chunkshape = None
        if len(params) > 7:
            ndim = params[7]
            chunkshape = tuple(int(n) for n in params[8 : 8 + ndim])
            if len(chunkshape) != ndim:
                raise UnsupportedEncoderError(f"blosc2 filter parameters {tuple(params)} are incomplete")
        return cls(int(typesize), int(clevel), int(shuffle), int(codec), chunkshape)

    @functools.cached_property
    def cparams(self) -> blosc2.CParams:
        # built once per filter (it costs as much as compressing a small chunk)
        shuffle = [blosc2.Filter.NOFILTER, blosc2.Filter.SHUFFLE, blosc2.Filter.BITSHUFFLE][self.shuffle]
        return blosc2.CParams(
            codec=blosc2.Codec(self.codec),
            clevel=self.clevel,
            typesize=self.typesize,
            nthreads=1,  # dask's threads are the parallelism
            filters=[shuffle],
            filters_meta=[0],
        )


@register
@dataclass(frozen=True)
class Blosc2(Filter):
    """Blosc2 frames (PyTables' blosc2 filter, id 32026): b2nd arrays or plain super-chunks.

    The filter's parameters are ``(revision, version, typesize, chunk bytes,
    clevel, shuffle, codec[, ndim, *chunkshape])``; decoding needs none of
    them (the frame describes itself).

    Encoding (python-blosc2), as PyTables writes: with a chunk shape, a
    one-chunk b2nd array (PyTables' multidimensional layout) in blocks of
    whole rows; without one, a plain super-chunk frame.

    Decoding: C-Blosc2 parses the frame in place and decompresses it with
    the GIL released.  A b2nd chunk is stored block by block: where blocks
    span whole rows (PyTables' usual choice) that is C order already and it
    decompresses straight into the result; otherwise into a per-thread
    buffer, then one numpy strided copy puts the blocks in C order
    (dropping the padding of blocks that overhang the chunk).
    python-blosc2 decodes what this does not handle (a b2nd frame of
    several chunks; no loadable C-Blosc2).

    Examples
    --------
    >>> blosc = Blosc2.from_params((2, 2, 8, 32, 5, 1, 0, 1, 4))  # 4 float64, lz4, shuffled
    >>> values = np.arange(4.0)
    >>> np.frombuffer(blosc.decode(blosc.encode(values.tobytes()), 32), "f8")
    array([0., 1., 2., 3.])
    """

    id = 32026
    name = "blosc2"

    params: tuple[int, ...] = ()

    @classmethod
    def from_params(cls, params: tuple[int, ...]) -> Blosc2:
        return cls(tuple(int(p) for p in params))

    @functools.cached_property
    def _encoding(self) -> _Blosc2Encoding:
        return _Blosc2Encoding.of(self.params)

    def check_encodable(self) -> None:
        self._encoding  # noqa: B018 - parsing the parameters raises

    def encode(self, buf: Buffer) -> Buffer:
        encoding = self._encoding
        raw = np.frombuffer(buf, dtype=np.uint8)
        if encoding.chunkshape is None:
            schunk = blosc2.SChunk(chunksize=raw.size, cparams=encoding.cparams)
            schunk.append_data(raw)
            return schunk.to_cframe()
        cells = raw.view(f"V{encoding.typesize}").reshape(encoding.chunkshape)
        blocks = _row_blocks(encoding.chunkshape, encoding.typesize)
        array = blosc2.asarray(cells, chunks=encoding.chunkshape, blocks=blocks, cparams=encoding.cparams)
        return array.to_cframe()

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
            return _decode_python(buf, out, expected)
        frame_bytes = as_bytes(buf)
        try:
            with lib.frame(frame_bytes) as frame:
                if frame.b2nd is None:
                    return _superchunk(frame, out, expected)
                if frame.nchunks == 1 and frame.b2nd.shape == frame.b2nd.chunkshape:
                    return _b2nd_chunk(frame, out, expected)
        except libblosc2.FrameError as err:
            raise DecodeError(f"Blosc2: {err}") from None
        return _decode_python(frame_bytes, out, expected)


def _row_blocks(chunkshape: tuple[int, ...], typesize: int, target: int = 2**17) -> tuple[int, ...]:
    """A Blosc2 block shape: whole trailing rows of the chunk, about ``target`` bytes.

    Blocks that span whole rows are stored in C order, which the direct
    read path decodes without reordering.

    Examples
    --------
    >>> _row_blocks((1000, 64), 8)
    (256, 64)
    """
    row = int(np.prod(chunkshape[1:], dtype=np.int64)) * typesize
    rows = max(1, min(chunkshape[0], target // max(row, 1)))
    return (rows, *chunkshape[1:])


def _decode_python(buf: Buffer, out: np.ndarray | None, expected: int | None) -> np.ndarray:
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
    flat = scratch(padded * itemsize)
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
