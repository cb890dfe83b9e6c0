"""bzip2 streams (PyTables' bzip2 filter, id 307) by the standard library, both directions."""

from __future__ import annotations

import bz2
from dataclasses import dataclass

import numpy as np

from .base import Buffer, DecodeError, Filter, register

__all__ = ["Bzip2"]


@register
@dataclass(frozen=True)
class Bzip2(Filter):
    """bzip2 streams with blocks of ``level`` x 100 kB (the filter's first parameter).

    Examples
    --------
    >>> bytes(Bzip2().decode(Bzip2(1).encode(b"abc" * 10), 30)) == b"abc" * 10
    True
    """

    id = 307
    name = "bzip2"

    level: int = 9

    @classmethod
    def from_params(cls, params: tuple[int, ...]) -> Bzip2:
        return cls(int(params[0]) if params else 9)

    def encode(self, buf: Buffer) -> Buffer:
        return bz2.compress(buf, max(1, min(self.level, 9)))

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

    def decode_into(self, buf: Buffer, out: np.ndarray) -> None:
        self._copy_decoded(self.decode(buf, out.nbytes), out)
