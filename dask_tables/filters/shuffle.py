"""HDF5's byte shuffle (``H5Z_FILTER_SHUFFLE``, id 2), both directions."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import libblosc2
from .base import Buffer, DecodeError, Filter, register

__all__ = ["Shuffle"]


def _planes(n: int, size: int) -> tuple[int, int]:
    """(elements, bytes of whole elements) of ``n`` bytes in elements of ``size`` bytes."""
    count = n // size
    return count, count * size


@register
@dataclass(frozen=True)
class Shuffle(Filter):
    """HDF5's byte shuffle for elements of ``size`` bytes (the filter's one parameter).

    Byte ``j`` of every element goes to plane ``j``; trailing bytes that do
    not fill an element stay as they are (as HDF5 does).  Encoding is a
    numpy transpose; decoding, C-Blosc2's SIMD ``blosc2_unshuffle`` (the
    same layout) with the GIL released, numpy's transpose copy where it
    cannot (elements wider than 256 bytes, chunks of 2 GiB).

    Examples
    --------
    >>> bytes(Shuffle(2).encode(b"abcdef!"))
    b'acebdf!'
    >>> bytes(Shuffle(2).decode(b"acebdf!", 7))
    b'abcdef!'
    """

    id = 2
    name = "shuffle"

    size: int

    @classmethod
    def from_params(cls, params: tuple[int, ...]) -> Shuffle:
        return cls(int(params[0]))

    def stored_size(self, raw_size: int) -> int:
        return raw_size

    def encode(self, buf: Buffer) -> Buffer:
        raw = np.frombuffer(buf, dtype=np.uint8)
        n, body = _planes(raw.size, self.size)
        if self.size <= 1 or n <= 1:
            return buf
        out = np.empty_like(raw)
        out[:body].reshape(self.size, n)[...] = raw[:body].reshape(n, self.size).T
        out[body:] = raw[body:]
        return out.data

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
        lib = libblosc2.library()
        if lib is not None and lib.unshuffle(self.size, raw, out):
            return
        n, body = _planes(raw.size, self.size)
        out[:body].reshape(n, self.size)[...] = raw[:body].reshape(self.size, n).T
        out[body:] = raw[body:]  # leftover bytes are stored as they are
