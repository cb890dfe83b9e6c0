"""HDF5's Fletcher-32 checksum (``H5Z_FILTER_FLETCHER32``, id 3), both directions."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .base import Buffer, DecodeError, Filter, register

__all__ = ["Fletcher32", "fletcher32"]

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


@register
@dataclass(frozen=True)
class Fletcher32(Filter):
    """Append HDF5's Fletcher-32 checksum (4 bytes, little-endian, as HDF5 stores it); verify and strip it.

    Examples
    --------
    >>> stored = Fletcher32().encode(b"abcde")
    >>> stored.hex()
    '6162636465c729f04f'
    >>> bytes(Fletcher32().decode(stored, 5))
    b'abcde'
    """

    id = 3
    name = "fletcher32"

    def stored_size(self, raw_size: int) -> int:
        return raw_size + 4

    def encode(self, buf: Buffer) -> Buffer:
        return bytes(buf) + fletcher32(buf).to_bytes(4, "little")

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
