"""szip (``H5Z_FILTER_SZIP``, id 4: libaec's szip-compatible coder), decoded by imagecodecs."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import libimagecodecs
from .base import Buffer, DecodeError, Filter, UnsupportedFilterError, register

__all__ = ["Szip"]


@register
@dataclass(frozen=True)
class Szip(Filter):
    """szip streams after the raw size (4 bytes, little-endian), as HDF5 stores them; decoded only.

    The parameters are ``(options mask, pixels per block, bits per pixel,
    pixels per scanline)`` as HDF5 completed them when it wrote the
    dataset.  PyTables' wheels cannot read szip at all.
    """

    id = 4
    name = "szip"
    needs_size = True

    params: tuple[int, ...]

    @classmethod
    def from_params(cls, params: tuple[int, ...]) -> Szip:
        return cls(tuple(params))

    def __post_init__(self) -> None:
        if len(self.params) < 4:
            raise UnsupportedFilterError(f"szip with parameters {self.params}: expected 4")

    def decode_into(self, buf: Buffer, out: np.ndarray) -> None:
        """Decompress ``buf`` into ``out`` (contiguous bytes of the raw size)."""
        view = memoryview(buf).cast("B")
        if len(view) < 4 or int.from_bytes(view[:4], "little") != out.nbytes:
            raise DecodeError(f"szip: header does not give the chunk's {out.nbytes} bytes")
        mask, per_block, bits, per_line = self.params[:4]
        libimagecodecs.decode_exactly(
            "szip",
            libimagecodecs.codec("szip"),
            view[4:],
            out,
            options_mask=mask,
            pixels_per_block=per_block,
            bits_per_pixel=bits,
            pixels_per_scanline=per_line,
        )
