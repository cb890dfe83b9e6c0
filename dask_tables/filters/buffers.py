"""Byte views and the reusable buffers of each thread, shared by every filter's decoder."""

from __future__ import annotations

import threading

import numpy as np

from .base import Buffer

__all__ = ["as_bytes", "scratch", "step_scratch"]

# Per thread: the buffers decoders write into before the result (a b2nd chunk before
# its blocks are put in C order, a bitshuffled chunk before it is unshuffled, the
# output of each filter chain step but the last).  Grown, never shrunk; each thread
# touches only its own, so no lock.
_SCRATCH = threading.local()


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


def scratch(nbytes: int) -> np.ndarray:
    """This thread's reusable buffer, ``nbytes`` long (a view of it)."""
    buffer = getattr(_SCRATCH, "buffer", None)
    if buffer is None or buffer.nbytes < nbytes:
        buffer = _SCRATCH.buffer = np.empty(nbytes, dtype=np.uint8)
    return buffer[:nbytes]


def step_scratch(step: int, nbytes: int) -> np.ndarray:
    """This thread's reusable buffer for the output of filter chain step ``step`` (not the last)."""
    buffers = getattr(_SCRATCH, "steps", None)
    if buffers is None:
        buffers = _SCRATCH.steps = {}
    buffer = buffers.get(step)
    if buffer is None or buffer.nbytes < nbytes:
        buffer = buffers[step] = np.empty(nbytes, dtype=np.uint8)
    return buffer[:nbytes]
