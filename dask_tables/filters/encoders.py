"""HDF5 filters encoded in Python, outside every lock: one small encoder per filter.

The write side of :mod:`dask_tables.filters.codecs`.  HDF5 runs a dataset's filters
in pipeline order when it writes a chunk (for example shuffle, then
deflate, then Fletcher-32); :class:`EncoderPipeline` does the same in
Python, so dask tasks compress their chunks in parallel, with the GIL
released, and hand HDF5 only finished bytes (``Leaf.write_chunk``), which it
stores without running its own (serialized) filter pipeline.

Each filter maps to one tiny encoder, registered by the name PyTables
reports for it (``tables.utilsextension.get_filters``) in :data:`ENCODERS`.
Libraries: ``deflate`` (libdeflate) for zlib, the standard library's
:mod:`bz2`, and python-blosc2 for Blosc2; shuffle is a numpy byte transpose
and Fletcher-32 reuses :func:`dask_tables.filters.codecs.fletcher32`.

Considerations
--------------
An encoder is only trusted after HDF5 itself read its output back:
:func:`encodes_like_hdf5` writes one encoded chunk into an in-memory HDF5
file with the same filters and compares PyTables' read with the original.
Blosc (version 1, id 32001) has no encoder: python-blosc2 writes Blosc2
chunks, whose header the Blosc 1 library inside PyTables refuses; such
nodes (and any filter missing here, such as LZO) are written through
HDF5's own pipeline instead.
"""

from __future__ import annotations

import bz2
import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import blosc2
import deflate
import numpy as np

from .codecs import fletcher32

__all__ = ["ENCODERS", "EncoderPipeline", "UnsupportedEncoderError"]

Buffer = bytes | bytearray | memoryview


class UnsupportedEncoderError(LookupError):
    """A filter (or filter parameters) that dask_tables cannot encode itself."""


class Encoder(Protocol):
    """Apply one filter: ``encode(raw) -> stored``."""

    def encode(self, buf: Buffer) -> Buffer: ...


@dataclass(frozen=True)
class Shuffle:
    """HDF5's byte shuffle (``H5Z_FILTER_SHUFFLE``) for elements of ``size`` bytes.

    Byte ``j`` of every element goes to plane ``j``; trailing bytes that do
    not fill an element stay as they are (as HDF5 does).
    """

    size: int

    def encode(self, buf: Buffer) -> Buffer:
        raw = np.frombuffer(buf, dtype=np.uint8)
        n = raw.size // self.size
        if self.size <= 1 or n <= 1:
            return buf
        out = np.empty_like(raw)
        body = n * self.size
        out[:body].reshape(self.size, n)[...] = raw[:body].reshape(n, self.size).T
        out[body:] = raw[body:]
        return out.data


@dataclass(frozen=True)
class Deflate:
    """zlib streams (``H5Z_FILTER_DEFLATE``) at ``level``, by libdeflate (GIL released)."""

    level: int

    def encode(self, buf: Buffer) -> Buffer:
        return deflate.zlib_compress(buf, max(1, min(self.level, 12)))


@dataclass(frozen=True)
class Bzip2:
    """bzip2 streams (PyTables' bzip2 filter, id 307) with blocks of ``level`` x 100 kB."""

    level: int

    def encode(self, buf: Buffer) -> Buffer:
        return bz2.compress(buf, max(1, min(self.level, 9)))


@dataclass(frozen=True)
class Fletcher32:
    """Append HDF5's Fletcher-32 checksum (little-endian, as HDF5 stores it)."""

    def encode(self, buf: Buffer) -> Buffer:
        return bytes(buf) + fletcher32(buf).to_bytes(4, "little")


@dataclass(frozen=True)
class Blosc2:
    """Blosc2 frames (PyTables' blosc2 filter, id 32026), as PyTables writes them.

    The filter's parameters are ``(revision, version, typesize, chunk bytes,
    clevel, shuffle, codec[, ndim, *chunkshape])``.  With a chunk shape, the
    chunk is stored as a one-chunk b2nd array (PyTables' multidimensional
    layout); without one, as a plain super-chunk frame.
    """

    typesize: int
    clevel: int
    shuffle: int
    codec: int
    chunkshape: tuple[int, ...] | None

    @functools.cached_property
    def _cparams(self) -> blosc2.CParams:
        # built once per encoder (it costs as much as compressing a small chunk)
        shuffle = [blosc2.Filter.NOFILTER, blosc2.Filter.SHUFFLE, blosc2.Filter.BITSHUFFLE][self.shuffle]
        return blosc2.CParams(
            codec=blosc2.Codec(self.codec),
            clevel=self.clevel,
            typesize=self.typesize,
            nthreads=1,  # dask's threads are the parallelism
            filters=[shuffle],
            filters_meta=[0],
        )

    def encode(self, buf: Buffer) -> Buffer:
        cparams = self._cparams
        raw = np.frombuffer(buf, dtype=np.uint8)
        if self.chunkshape is None:
            schunk = blosc2.SChunk(chunksize=raw.size, cparams=cparams)
            schunk.append_data(raw)
            return schunk.to_cframe()
        cells = raw.view(f"V{self.typesize}").reshape(self.chunkshape)
        array = blosc2.asarray(
            cells, chunks=self.chunkshape, blocks=_blocks(self.chunkshape, self.typesize), cparams=cparams
        )
        return array.to_cframe()


def _blocks(chunkshape: tuple[int, ...], typesize: int, target: int = 2**17) -> tuple[int, ...]:
    """A Blosc2 block shape: whole trailing rows of the chunk, about ``target`` bytes.

    Blocks that span whole rows are stored in C order, which the direct
    read path decodes without reordering.
    """
    row = int(np.prod(chunkshape[1:], dtype=np.int64)) * typesize
    rows = max(1, min(chunkshape[0], target // max(row, 1)))
    return (rows, *chunkshape[1:])


def _make_blosc2(params: Sequence[int]) -> Encoder:
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
    return Blosc2(int(typesize), int(clevel), int(shuffle), int(codec), chunkshape)


def _make_shuffle(params: Sequence[int]) -> Encoder:
    return Shuffle(int(params[0]))


# Filter name (as ``tables.utilsextension.get_filters`` reports it) -> encoder factory.
ENCODERS: Mapping[str, Callable[[Sequence[int]], Encoder]] = {
    "shuffle": _make_shuffle,
    "deflate": lambda params: Deflate(int(params[0]) if params else 6),
    "bzip2": lambda params: Bzip2(int(params[0]) if params else 9),
    "fletcher32": lambda params: Fletcher32(),
    "blosc2": _make_blosc2,
}


class EncoderPipeline:
    """Encode raw chunks of one dataset into the bytes HDF5 stores.

    Parameters
    ----------
    filters : sequence of (name, params)
        The dataset's filter pipeline in HDF5 (write) order, as
        ``tables.utilsextension.get_filters`` gives it.

    Raises
    ------
    UnsupportedEncoderError
        A filter has no encoder.

    Examples
    --------
    >>> import zlib
    >>> pipeline = EncoderPipeline([("shuffle", (2,)), ("deflate", (6,))])
    >>> zlib.decompress(pipeline.encode(b"abcd"))
    b'acbd'
    """

    def __init__(self, filters: Sequence[tuple[str, Sequence[int]]]) -> None:
        for name, _ in filters:
            if name not in ENCODERS:
                raise UnsupportedEncoderError(f"no encoder for HDF5 filter {name!r}")
        self.filters = tuple((name, tuple(params)) for name, params in filters)
        self._steps = [ENCODERS[name](params) for name, params in self.filters]

    def encode(self, buf: Buffer) -> Buffer:
        """Run every filter, in order, over one chunk's raw bytes (C order, stored byte order)."""
        for step in self._steps:
            buf = step.encode(buf)
        return buf


@functools.lru_cache(maxsize=256)
def encoder_pipeline(filters: tuple[tuple[str, tuple[int, ...]], ...]) -> EncoderPipeline:
    """The (cached, per process) :class:`EncoderPipeline` of a filter pipeline."""
    return EncoderPipeline(filters)
