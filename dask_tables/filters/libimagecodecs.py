"""imagecodecs' decoders (LZF, LZ4, Zstandard, szip, LZO, bitshuffle, zlib into a buffer).

imagecodecs is a maintained package with wheels for every major platform;
its decoders run in C with the GIL released and write into a given buffer.
It is large, so it is imported on first use.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np

from .base import Buffer, DecodeError, UnsupportedFilterError
from .buffers import as_bytes

__all__ = ["codec", "decode_exactly", "module"]


@functools.cache
def module() -> Any:
    """The imagecodecs module, imported on first use, or ``None`` where it is missing."""
    try:
        import imagecodecs
    except ImportError:  # pragma: no cover - a dependency
        return None
    return imagecodecs


def codec(name: str) -> Callable[..., Any]:
    """imagecodecs' ``<name>_decode``; :class:`UnsupportedFilterError` where it is not built."""
    found = module()
    kind = getattr(found, name.upper(), None) if found is not None else None
    if kind is None or not getattr(kind, "available", False):
        raise UnsupportedFilterError(f"imagecodecs has no {name} decoder in this build")
    return getattr(found, f"{name}_decode")


def decode_exactly(
    name: str, decode: Callable[..., Any], buf: Buffer, out: np.ndarray, **kwargs: Any
) -> None:
    """``decode(buf, out=out)``: exactly ``out.nbytes`` bytes, or :class:`DecodeError`.

    Examples
    --------
    >>> import zlib
    >>> out = np.empty(3, dtype=np.uint8)
    >>> decode_exactly("zlib", codec("zlib"), zlib.compress(b"abc"), out)
    >>> out.tobytes()
    b'abc'
    >>> decode_exactly("zlib", codec("zlib"), zlib.compress(b"ab"), out)
    Traceback (most recent call last):
    ...
    dask_tables.filters.base.DecodeError: zlib: stream holds 2 bytes, expected 3
    """
    try:
        written = decode(as_bytes(buf), out=memoryview(out), **kwargs)
    except (RuntimeError, ValueError, TypeError, OverflowError) as err:  # imagecodecs' *Error
        raise DecodeError(f"{name}: {err}") from None
    if len(written) != out.nbytes:
        raise DecodeError(f"{name}: stream holds {len(written)} bytes, expected {out.nbytes}")
