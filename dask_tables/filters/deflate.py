"""zlib streams (``H5Z_FILTER_DEFLATE``, id 1) by libdeflate, both directions, the GIL released."""

from __future__ import annotations

from dataclasses import dataclass

import deflate as libdeflate
import numpy as np

from . import libimagecodecs
from .base import Buffer, DecodeError, Filter, register

__all__ = ["Deflate"]


@register
@dataclass(frozen=True)
class Deflate(Filter):
    """zlib streams at ``level`` (the filter's parameter), by libdeflate.

    libdeflate (the ``deflate`` package) was measured fastest against
    ISA-L and zlib, and releases the GIL.  It decodes into a buffer of the
    exact size, so it must be told the raw size.

    Examples
    --------
    >>> import zlib
    >>> zlib.decompress(Deflate(6).encode(b"abc" * 10)) == b"abc" * 10
    True
    >>> bytes(Deflate().decode(zlib.compress(b"abc"), 3))
    b'abc'
    """

    id = 1
    name = "deflate"
    needs_size = True  # libdeflate decodes into a buffer of the exact size

    level: int = 6

    @classmethod
    def from_params(cls, params: tuple[int, ...]) -> Deflate:
        return cls(int(params[0]) if params else 6)

    def encode(self, buf: Buffer) -> Buffer:
        return libdeflate.zlib_compress(buf, max(1, min(self.level, 12)))

    def decode(self, buf: Buffer, decoded_size: int | None) -> Buffer:
        try:
            return libdeflate.zlib_decompress(buf, decoded_size)
        except libdeflate.DeflateError as err:
            raise DecodeError(f"zlib: {err}") from None

    def decode_into(self, buf: Buffer, out: np.ndarray) -> None:
        """Decompress ``buf`` into ``out`` (contiguous bytes of the raw size), no allocation.

        imagecodecs' ``deflate_decode`` runs libdeflate into a given buffer
        (the ``deflate`` package always returns new bytes); without
        imagecodecs, decode and copy.
        """
        module = libimagecodecs.module()
        if module is None:  # pragma: no cover - imagecodecs is a dependency
            out[...] = np.frombuffer(self.decode(buf, out.nbytes), dtype=np.uint8)
            return
        libimagecodecs.decode_exactly("zlib", module.deflate_decode, buf, out)
