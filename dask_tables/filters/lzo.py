"""LZO streams (PyTables' lzo filter, id 305), decoded by imagecodecs (lzokay); decoded only.

PyTables' ``H5Zlzo.c`` stores each chunk as one LZO1X-1 stream and nothing
else (its checksum trailer has been compiled out since PyTables 0.8, 2004).
PyTables' wheels are built without LZO, so these files are read here or
not at all.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import libimagecodecs
from .base import Buffer, Filter, register

__all__ = ["Lzo"]


@register
@dataclass(frozen=True)
class Lzo(Filter):
    """LZO1X streams (PyTables' lzo filter, id 305), decoded in C with the GIL released.

    The parameters (PyTables writes ``(complevel, object version, object
    type)``) do not change the stream.
    """

    id = 305
    name = "lzo"
    needs_size = True

    def decode_into(self, buf: Buffer, out: np.ndarray) -> None:
        """Decompress ``buf`` into ``out`` (contiguous bytes of the raw size)."""
        libimagecodecs.decode_exactly("LZO", libimagecodecs.codec("lzo"), buf, out)
