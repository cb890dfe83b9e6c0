"""Byte views and the reusable buffers of each thread, shared by every filter's decoder."""

from __future__ import annotations

import threading

import numpy as np

from .base import Buffer

__all__ = ["SCRATCH_KEEP", "as_bytes", "scratch", "step_scratch"]

# Per thread, by name: the buffers decoders write into before the result (a b2nd
# chunk before its blocks are put in C order, a bitshuffled chunk before it is
# unshuffled, the output of each filter chain step but the last) and the direct
# path's stored and decoded chunks.  Each thread touches only its own, so no lock.
_SCRATCH = threading.local()
SCRATCH_KEEP = 64 * 2**20
"""The largest buffer a thread keeps: a larger one is allocated for its one use."""
_SCRATCH_GRAIN = 64 * 2**10


def as_bytes(buf: Buffer | np.ndarray) -> np.ndarray:
    """A contiguous uint8 view of ``buf`` (copied only if it is a strided array).

    Examples
    --------
    >>> as_bytes(b"ab").tolist(), as_bytes(np.arange(2, dtype="<u2")[::-1]).tolist()
    ([97, 98], [1, 0, 0, 0])
    """
    if isinstance(buf, np.ndarray):
        return np.ascontiguousarray(buf).view(np.uint8).reshape(-1)
    return np.frombuffer(buf, dtype=np.uint8)


def scratch(nbytes: int, name: str = "filter") -> np.ndarray:
    """This thread's reusable buffer called ``name``, ``nbytes`` long (a view of it).

    The one policy for every per-thread buffer: each thread keeps one buffer
    per name, grown (in steps of 64 KiB) to the largest size asked for,
    never shrunk; a buffer larger than :data:`SCRATCH_KEEP` is not kept.
    No allocation per chunk in the steady state.

    Examples
    --------
    >>> a = scratch(10, "example")
    >>> b = scratch(5, "example")
    >>> a.nbytes, b.nbytes, np.shares_memory(a, b)
    (10, 5, True)
    """
    if nbytes > SCRATCH_KEEP:
        return np.empty(nbytes, dtype=np.uint8)
    buffer = getattr(_SCRATCH, name, None)
    if buffer is None or buffer.nbytes < nbytes:
        buffer = np.empty(-(-nbytes // _SCRATCH_GRAIN) * _SCRATCH_GRAIN, dtype=np.uint8)
        setattr(_SCRATCH, name, buffer)
    return buffer[:nbytes]


def step_scratch(step: int, nbytes: int) -> np.ndarray:
    """This thread's reusable buffer for the output of filter chain step ``step`` (not the last)."""
    return scratch(nbytes, f"step{step}")
