"""What an HDF5 filter is here: the :class:`Filter` protocol, its errors, and the registry by filter id.

One class per HDF5 filter, both directions, in the manner of numcodecs'
codecs: ``encode`` (raw bytes to stored bytes, as HDF5's filter does on
write), ``decode`` and ``decode_into`` (back, on read).  Each class is
registered under its HDF5 filter id (:data:`FILTERS`) with :func:`register`;
its name (the one PyTables reports) is derived from the class.  Adding a
filter touches one place: its class, in the module of its family.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from types import MappingProxyType
from typing import ClassVar

import numpy as np

from ..hdf5.storednode import register_filter_name

__all__ = [
    "FILTERS",
    "Buffer",
    "DecodeError",
    "Filter",
    "UnsupportedEncoderError",
    "UnsupportedFilterError",
    "filter_class",
    "register",
]

Buffer = bytes | bytearray | memoryview


class DecodeError(ValueError):
    """The stored bytes of a chunk do not decode: corrupt or truncated data."""


class UnsupportedFilterError(LookupError):
    """A filter (or a combination of filters) that the direct path cannot decode."""


class UnsupportedEncoderError(LookupError):
    """A filter (or filter parameters) that dask_tables cannot encode itself."""


class Filter(abc.ABC):
    """One HDF5 filter, both directions: ``encode``, ``decode`` and ``decode_into``.

    A subclass sets :attr:`~dask_tables.filters.base.Filter.id` and
    :attr:`~dask_tables.filters.base.Filter.name`, builds itself from the
    filter's client data (:meth:`from_params`), and writes ``decode_into``
    (abstract: a subclass without it is refused when defined, with a
    :class:`TypeError`); ``decode`` defaults to it, and is overridden where
    a filter decodes without knowing the size or faster on its own; and,
    where dask_tables writes the filter, ``encode``.  A filter that only
    decodes keeps the default ``encode``, which raises
    :class:`UnsupportedEncoderError` naming it.

    Examples
    --------
    >>> from dask_tables.filters import FILTERS
    >>> shuffle = FILTERS[2].from_params((2,))  # H5Z_FILTER_SHUFFLE of 2-byte elements
    >>> bytes(shuffle.encode(b"abcd")), bytes(shuffle.decode(b"acbd", 4))
    (b'acbd', b'abcd')
    >>> FILTERS[4].from_params((141, 32, 16, 100)).encode(b"")  # szip decodes only
    Traceback (most recent call last):
    ...
    dask_tables.filters.base.UnsupportedEncoderError: no encoder for HDF5 filter 'szip'
    """

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if getattr(cls.decode_into, "__isabstractmethod__", False):
            raise TypeError(f"filter class {cls.__name__} must define decode_into")

    #: HDF5's filter id (the registry's key).
    id: ClassVar[int]
    #: The name PyTables reports for the filter (``tables.utilsextension.get_filters``).
    name: ClassVar[str]
    #: How the name a file records begins, for a file whose filter ids cannot be read.
    stored_prefix: ClassVar[str | None] = None
    #: Whether ``decode`` must be told the decoded size (it cannot follow a compressor).
    needs_size: ClassVar[bool] = False

    @classmethod
    def from_params(cls, params: tuple[int, ...]) -> Filter:
        """The filter for a dataset whose pipeline gives it ``params`` (its client data)."""
        return cls()

    def stored_size(self, raw_size: int) -> int | None:
        """Bytes this filter stores for ``raw_size`` raw bytes; ``None`` where the data decides."""
        return None

    def encode(self, buf: Buffer) -> Buffer:
        """Apply the filter to one chunk's raw bytes: what HDF5 would store."""
        raise UnsupportedEncoderError(f"no encoder for HDF5 filter {self.name!r}")

    def check_encodable(self) -> None:
        """Raise :class:`UnsupportedEncoderError` unless :meth:`encode` works with these parameters."""
        if type(self).encode is Filter.encode:
            raise UnsupportedEncoderError(f"no encoder for HDF5 filter {self.name!r}")

    def decode(self, buf: Buffer, decoded_size: int | None) -> Buffer | np.ndarray:
        """Undo the filter: ``buf`` (stored bytes) to the bytes it was given.

        ``decoded_size`` is ``None`` where an earlier compressor makes it
        unknown (never for a filter with :attr:`~dask_tables.filters.base.Filter.needs_size`).  May return a
        strided array view (Blosc2's blocks); :class:`DecodeError` where the
        bytes do not decode.
        """
        if decoded_size is None:
            raise UnsupportedFilterError(
                f"filter {self.name!r} after a compressor: its input size is unknown"
            )
        out = np.empty(decoded_size, dtype=np.uint8)
        self.decode_into(buf, out)
        return out.data

    @abc.abstractmethod
    def decode_into(self, buf: Buffer, out: np.ndarray) -> None:
        """Undo the filter into ``out`` (contiguous bytes, exactly the decoded size)."""

    def _copy_decoded(self, data: Buffer | np.ndarray, out: np.ndarray) -> None:
        """Copy ``data``, what :meth:`decode` gave, into ``out``: ``decode_into`` for a filter that writes ``decode``."""
        flat = np.ascontiguousarray(data).view(np.uint8).reshape(-1) if isinstance(data, np.ndarray) else data
        raw = np.frombuffer(flat, dtype=np.uint8)
        if raw.size != out.nbytes:
            raise DecodeError(f"{self.name}: chunk decodes to {raw.size} bytes, expected {out.nbytes}")
        out[...] = raw


# HDF5 filter id -> its class.  Filled once, at import, by @register in each family's
# module (dask_tables.filters imports them all); only read after that.
_REGISTRY: dict[int, type[Filter]] = {}
_BY_NAME: dict[str, type[Filter]] = {}

#: Every filter class, by HDF5 filter id (read-only).
FILTERS: Mapping[int, type[Filter]] = MappingProxyType(_REGISTRY)


def register(cls: type[Filter]) -> type[Filter]:
    """Register a :class:`Filter` class under its id and name (a class decorator).

    Also names it for the HDF5 layer below
    (:func:`~dask_tables.hdf5.storednode.register_filter_name`), where a
    node's filters as its file records them get their names.
    """
    if cls.id in _REGISTRY or cls.name in _BY_NAME:
        raise ValueError(f"filter {cls.id} ({cls.name!r}) is registered already")
    _REGISTRY[cls.id] = cls
    _BY_NAME[cls.name] = cls
    register_filter_name(cls.id, cls.name, cls.stored_prefix)
    return cls


def filter_class(name: str) -> type[Filter] | None:
    """The class of the filter PyTables calls ``name``, or ``None`` where none is registered.

    Examples
    --------
    >>> filter_class("deflate").id, filter_class("nbit")
    (1, None)
    """
    return _BY_NAME.get(name)
