"""A dataset's filters run by us, both directions: chunks encoded on write, decoded on read.

HDF5 applies a dataset's filters in pipeline order when it writes a chunk
(for example shuffle, then deflate, then Fletcher-32).
:meth:`FilterChain.encode` does the same in Python, so dask tasks
compress their chunks in parallel and hand HDF5 finished bytes
(``Leaf.write_chunk``); :meth:`FilterChain.decode` runs the reverse,
from a chunk's stored bytes to its raw bytes, skipping the filters that the
chunk's filter mask says HDF5 skipped.  A :class:`FilterChain` is ours: a
read through HDF5's own filter pipeline is the "pipeline path" (see
:mod:`dask_tables.diagnostics`).  Each filter is one
:class:`~dask_tables.filters.base.Filter` from the registry.

Considerations
--------------
An encoding is only trusted after HDF5 itself read it back: the writer
(``dask_tables.write.trial``) writes one encoded chunk into an in-memory
HDF5 file with the same filters and compares PyTables' read with the
original.  Filters that only decode (Blosc 1, LZO and the plugins') are
written through HDF5's own pipeline instead.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np

from ..hdf5.storednode import FilterSpec
from .base import Buffer, DecodeError, Filter, UnsupportedEncoderError, UnsupportedFilterError, filter_class
from .buffers import step_scratch

__all__ = ["FilterChain", "encoding_chain", "filter_chain"]

Filters = tuple[FilterSpec, ...]


class FilterChain:
    """Encode raw chunks of one dataset into the bytes HDF5 stores, and decode them back.

    Parameters
    ----------
    filters : sequence of tuple
        The dataset's filter pipeline in HDF5 (write) order: ``(name,
        params)`` pairs, each filter by the name PyTables gives it and its
        client data.
    chunk_nbytes : int, optional
        Raw bytes of one chunk: needed to decode (each step's size is
        checked), not to encode.

    Raises
    ------
    UnsupportedFilterError
        A filter has no class, or the chain is one whose intermediate
        sizes are unknown (two compressors).

    Examples
    --------
    >>> import zlib
    >>> chain = FilterChain([("shuffle", (2,)), ("deflate", (6,))], chunk_nbytes=4)
    >>> zlib.decompress(chain.encode(b"abcd"))
    b'acbd'
    >>> bytes(chain.decode(zlib.compress(b"acbd")))
    b'abcd'
    >>> bytes(chain.decode(b"acbd", filter_mask=0b10))  # deflate skipped for this chunk
    b'abcd'
    """

    def __init__(self, filters: Sequence[tuple[str, Sequence[int]]], chunk_nbytes: int | None = None) -> None:
        self.filters: Filters = tuple((name, tuple(params)) for name, params in filters)
        self.chunk_nbytes = chunk_nbytes
        # the filters, in write order (one object each: its parameters parsed once)
        self._chain = tuple(_filter(name, params) for name, params in self.filters)
        # filter mask -> decoding steps (filter, its decoded size); built on first use, then only read.
        self._steps: dict[int, list[tuple[Filter, int | None]]] = {}
        if chunk_nbytes is not None:
            self._steps_for(0)  # a chain that cannot decode fails here

    def check_encodable(self) -> None:
        """Raise :class:`UnsupportedEncoderError` unless every filter encodes (with its parameters)."""
        for step in self._chain:
            step.check_encodable()

    def encode(self, buf: Buffer) -> Buffer:
        """Run every filter, in order, over one chunk's raw bytes (C order, stored byte order)."""
        for step in self._chain:
            buf = step.encode(buf)
        return buf

    def _steps_for(self, filter_mask: int) -> list[tuple[Filter, int | None]]:
        steps = self._steps.get(filter_mask)
        if steps is not None:
            return steps
        if self.chunk_nbytes is None:
            raise ValueError("a filter chain built without chunk_nbytes encodes; it does not decode")
        steps = []
        size: int | None = self.chunk_nbytes
        for bit, (step, (name, _)) in enumerate(zip(self._chain, self.filters, strict=True)):
            if filter_mask & (1 << bit):
                continue  # HDF5 skipped this (optional) filter for this chunk
            if size is None and step.needs_size:
                raise UnsupportedFilterError(f"filter {name!r} after a compressor: its input size is unknown")
            steps.append((step, size))
            size = None if size is None else step.stored_size(size)
        steps.reverse()
        self._steps[filter_mask] = steps
        return steps

    def decode(self, buf: Buffer, filter_mask: int = 0, out: np.ndarray | None = None) -> Buffer | np.ndarray:
        """Decode one stored chunk; raise :class:`DecodeError` if it is corrupt.

        Returns the raw bytes in C order, or an array view of them (the
        last Blosc2 step may return a strided view over its blocks).  Given
        ``out`` (contiguous bytes, ``chunk_nbytes`` long), the last step
        writes there, and ``out`` is returned.
        """
        steps = self._steps_for(filter_mask)
        last = len(steps) - 1
        for i, (step, decoded_size) in enumerate(steps):
            if isinstance(buf, np.ndarray) and not buf.flags.c_contiguous:
                buf = np.ascontiguousarray(buf).view(np.uint8).reshape(-1)
            if out is not None and i == last:
                if out.nbytes != self.chunk_nbytes:
                    raise ValueError(f"out holds {out.nbytes} bytes, a chunk {self.chunk_nbytes}")
                step.decode_into(buf, out)
                return out
            if out is not None and decoded_size is not None:
                # the steps before the last decode into this thread's scratch buffers:
                # the last writes into out, so nothing returned aliases them
                scratch = step_scratch(i, decoded_size)
                step.decode_into(buf, scratch)
                buf = scratch
                continue
            buf = step.decode(buf, decoded_size)
        size = buf.nbytes if isinstance(buf, np.ndarray) else memoryview(buf).nbytes
        if size != self.chunk_nbytes:
            raise DecodeError(f"chunk decodes to {size} bytes, expected {self.chunk_nbytes}")
        return buf


def _filter(name: str, params: tuple[int, ...]) -> Filter:
    cls = filter_class(name)
    if cls is None:
        raise UnsupportedFilterError(f"no decoder for HDF5 filter {name!r}")
    return cls.from_params(params)


@functools.lru_cache(maxsize=256)
def filter_chain(filters: Filters, chunk_nbytes: int | None = None) -> FilterChain:
    """The (cached, per process) :class:`FilterChain` of ``filters``.

    Examples
    --------
    >>> filter_chain((("deflate", (1,)),), 8) is filter_chain((("deflate", (1,)),), 8)
    True
    """
    return FilterChain(filters, chunk_nbytes)


def encoding_chain(filters: Filters) -> FilterChain:
    """The cached chain of ``filters``, checked to encode every one of them.

    Raises
    ------
    UnsupportedEncoderError
        A filter that dask_tables does not encode (or not with these
        parameters): HDF5's own pipeline must write it.

    Examples
    --------
    >>> encoding_chain((("shuffle", (4,)), ("deflate", (1,)))).filters
    (('shuffle', (4,)), ('deflate', (1,)))
    >>> encoding_chain((("lzo", (1, 11, 4)),))
    Traceback (most recent call last):
    ...
    dask_tables.filters.base.UnsupportedEncoderError: no encoder for HDF5 filter 'lzo'
    """
    for name, _ in filters:
        if filter_class(name) is None:
            raise UnsupportedEncoderError(f"no encoder for HDF5 filter {name!r}")
    try:
        chain = filter_chain(filters)
    except UnsupportedFilterError as err:  # parameters that no class accepts
        raise UnsupportedEncoderError(str(err)) from None
    chain.check_encodable()
    return chain
