"""LZF streams (h5py's lzf filter, id 32000), decoded by imagecodecs' liblzf."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import libimagecodecs
from .base import Buffer, DecodeError, Filter, register

__all__ = ["Lzf", "lzf_decompress"]


@register
@dataclass(frozen=True)
class Lzf(Filter):
    """LZF streams (h5py's lzf filter, id 32000); decoded only.

    PyTables cannot read LZF at all; h5py writes it.  imagecodecs decodes it
    in C with the GIL released; without it, :func:`lzf_decompress`, a plain
    Python loop: correct, but slow (tens of MB/s) and holding the GIL.
    """

    id = 32000
    name = "lzf"
    needs_size = True

    def decode_into(self, buf: Buffer, out: np.ndarray) -> None:
        """Decompress ``buf`` into ``out`` (contiguous bytes of the raw size)."""
        decode = _lzf_library()
        if decode is None:
            out[...] = np.frombuffer(lzf_decompress(bytes(buf), out.nbytes), dtype=np.uint8)
            return
        libimagecodecs.decode_exactly("LZF", decode, buf, out)


def _lzf_library() -> Callable[..., Any] | None:
    """imagecodecs' ``lzf_decode`` where this build of it has LZF, else ``None``."""
    module = libimagecodecs.module()
    return module.lzf_decode if module is not None and getattr(module.LZF, "available", False) else None


def lzf_decompress(src: bytes, size: int) -> bytearray:
    """Decompress an LZF stream (liblzf's ``lzf_decompress``) of ``size`` raw bytes.

    Examples
    --------
    >>> bytes(lzf_decompress(bytes([2]) + b"abc" + bytes([0x20, 2]), 6))  # "abc" + back-reference
    b'abcabc'
    """
    out = bytearray(size)
    ip = op = 0
    end = len(src)
    while ip < end:
        ctrl = src[ip]
        ip += 1
        if ctrl < 32:  # a literal run of ctrl + 1 bytes
            length = ctrl + 1
            if ip + length > end or op + length > size:
                raise DecodeError("LZF: literal run past the end")
            out[op : op + length] = src[ip : ip + length]
            ip += length
        else:  # a back-reference
            length = ctrl >> 5
            if length == 7:
                if ip >= end:
                    raise DecodeError("LZF: truncated back-reference")
                length += src[ip]
                ip += 1
            if ip >= end:
                raise DecodeError("LZF: truncated back-reference")
            ref = op - ((ctrl & 0x1F) << 8) - src[ip] - 1
            ip += 1
            length += 2
            if ref < 0 or op + length > size:
                raise DecodeError("LZF: back-reference out of range")
            distance = op - ref
            if distance >= length:
                out[op : op + length] = out[ref : ref + length]
            else:  # overlapping: the last `distance` bytes repeat
                pattern = bytes(out[ref:op])
                out[op : op + length] = (pattern * (length // distance + 1))[:length]
        op += length
    if op != size:
        raise DecodeError(f"LZF: stream holds {op} bytes, expected {size}")
    return out
