"""The locks that serialize the writers of one file: across threads, processes and a cluster."""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from typing import Any

from ..registry import get_lock

__all__ = ["write_lock"]


def _current_worker() -> Any:
    try:
        from distributed import get_worker
    except ImportError:  # pragma: no cover - distributed is a dependency
        return None
    try:
        return get_worker()
    except ValueError:
        return None


@contextlib.contextmanager
def write_lock(name: str, folder: str) -> Iterator[None]:
    """Hold the locks that serialize writers of one file, across processes and threads.

    Inside a ``dask.distributed`` worker, a ``distributed.Lock`` named by
    ``name``; always an exclusive ``fcntl.flock`` of ``folder`` (which
    crosses the processes of dask's ``processes`` scheduler, and the threads
    of one process, each with its own descriptor); then
    :func:`dask_tables.registry.get_lock`.  Always in this order.

    Examples
    --------
    >>> with write_lock("out.h5", "."):
    ...     pass
    """
    with contextlib.ExitStack() as stack:
        if _current_worker() is not None:
            from distributed import Lock

            stack.enter_context(Lock(name=f"dask-tables-write:{name}"))
        fd = os.open(folder, os.O_RDONLY)
        stack.callback(os.close, fd)  # closing the descriptor releases the flock
        fcntl.flock(fd, fcntl.LOCK_EX)
        stack.enter_context(get_lock())
        yield
