"""What dask_tables did in this process: lock time, chunks read and decoded, index builds.

Counters, per process, that say where a computation's time went:

``lock_acquisitions``, ``lock_wait_seconds``, ``lock_held_seconds``
    Outermost acquisitions of the process lock
    (:func:`dask_tables.registry.get_lock`), the time spent waiting for it
    and the time it was held.  ``lock_held_seconds`` over the wall time of a
    computation is the share that Amdahl's law cannot run in parallel.
``direct_chunks``, ``direct_bytes_read``, ``direct_bytes_decoded``, ``direct_fill_chunks``
    Chunks read by the direct path (:mod:`dask_tables.array.direct`), their stored
    bytes (what ``pread`` read), their raw bytes (what decoding gave), and
    chunks never written (read as the fill value, nothing read).
``pipeline_reads``, ``pipeline_chunks``, ``pipeline_bytes``
    Reads through PyTables and HDF5's own filter pipeline (nodes the direct
    path cannot read, or ``direct=False``): calls, chunks their selections
    touch, bytes returned.
``index_builds``, ``index_build_seconds``, ``index_chunks``, ``index_hits``
    Chunk indexes read from files (:mod:`dask_tables.hdf5.chunkindex`), the time
    spent, the chunks they list, and the reads served by a cached index.
``remote_requests``, ``remote_bytes``
    Ranged GETs of chunk bytes from objects in stores (``dask_tables.array.remote``)
    and the bytes they moved (gaps between merged ranges included).

Counting is per thread (no lock on the hot path); :func:`snapshot` sums the
threads.  A forked child starts from zero.

Examples
--------
>>> import numpy as np, tables, dask_tables
>>> with tables.open_file("example.h5", "w") as f:
...     _ = f.create_carray("/", "x", obj=np.arange(100.0), chunkshape=(10,))
>>> x = dask_tables.from_tables("example.h5", "/x", chunks=50)
>>> with collect() as stats:
...     _ = x.sum().compute(scheduler="threads")
>>> stats["direct_chunks"], stats["direct_bytes_read"]
(10, 800)
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
import weakref
from collections.abc import Iterator
from typing import Any

from .forks import after_fork_in_child

__all__ = ["COUNTERS", "add", "collect", "gather", "report", "reset", "snapshot"]

#: The names of the counters, in the order :func:`snapshot` gives them (each described
#: in the module docstring).
COUNTERS = (
    "lock_acquisitions",
    "lock_wait_seconds",
    "lock_held_seconds",
    "direct_chunks",
    "direct_bytes_read",
    "direct_bytes_decoded",
    "direct_fill_chunks",
    "pipeline_reads",
    "pipeline_chunks",
    "pipeline_bytes",
    "index_builds",
    "index_build_seconds",
    "index_chunks",
    "index_hits",
    "remote_requests",
    "remote_bytes",
)


def _zeros() -> dict[str, float]:
    return dict.fromkeys(COUNTERS, 0)


class _State:
    """The counters of one process.

    Invariants: ``live`` holds the counter dict of every thread of this
    process that has counted and is still alive (each dict is written only
    by its own thread, read by :func:`snapshot`); ``retired`` holds the sums
    of the threads that ended; ``baseline`` is what :func:`reset` saw.
    ``lock`` guards ``live``, ``retired`` and ``baseline`` (never the per
    thread dicts' values, which only their owner writes).
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.local = threading.local()
        self.live: list[dict[str, float]] = []
        self.retired = _zeros()
        self.baseline = _zeros()


# The counters of this process; replaced in a forked child (see _after_fork).
_state = _State()


@after_fork_in_child
def _after_fork() -> None:
    # A forked child counts its own work only, and its lock must not be one a
    # parent thread held at fork time.
    global _state
    _state = _State()


def _retire(state: _State, counts: dict[str, float]) -> None:
    with state.lock:
        with contextlib.suppress(ValueError):
            state.live.remove(counts)
        for key, value in counts.items():
            state.retired[key] += value


def _mine() -> dict[str, float]:
    """This thread's counters (made on its first count)."""
    state = _state
    try:
        return state.local.counts
    except AttributeError:
        counts = _zeros()
        state.local.counts = counts
        with state.lock:
            state.live.append(counts)
        # when the thread ends, fold its counts into the retired sums
        weakref.finalize(threading.current_thread(), _retire, state, counts)
        return counts


def add(**amounts: float) -> None:
    """Add to this thread's counters (``add(direct_chunks=1, direct_bytes_read=4096)``).

    Examples
    --------
    >>> before = snapshot()["index_hits"]
    >>> add(index_hits=2)
    >>> snapshot()["index_hits"] - before
    2
    """
    counts = _mine()
    for key, value in amounts.items():
        counts[key] += value


def lock_acquired(waited: float) -> None:
    """Count one outermost acquisition of the process lock, after ``waited`` seconds."""
    counts = _mine()
    counts["lock_acquisitions"] += 1
    counts["lock_wait_seconds"] += waited


def lock_released(held: float) -> None:
    """Count ``held`` seconds of holding the process lock (outermost release)."""
    _mine()["lock_held_seconds"] += held


def _totals(state: _State) -> dict[str, float]:
    with state.lock:
        totals = dict(state.retired)
        live = list(state.live)
    for counts in live:
        for key, value in list(counts.items()):
            totals[key] += value
    return totals


def snapshot() -> dict[str, Any]:
    """The counters of this process since it started (or since :func:`reset`).

    Returns
    -------
    dict
        One entry per name of :data:`COUNTERS` (counts as ``int``, times in
        seconds as ``float``), plus ``pid``.

    Examples
    --------
    >>> sorted(snapshot())[:3]
    ['direct_bytes_decoded', 'direct_bytes_read', 'direct_chunks']
    """
    state = _state
    totals = _totals(state)
    with state.lock:
        baseline = dict(state.baseline)
    result: dict[str, Any] = {key: _tidy(key, totals[key] - baseline[key]) for key in COUNTERS}
    result["pid"] = os.getpid()
    return result


def _tidy(key: str, value: float) -> float | int:
    return float(value) if key.endswith("_seconds") else int(value)


def reset() -> None:
    """Start counting from zero in this process.

    Examples
    --------
    >>> add(index_hits=1)
    >>> reset()
    >>> snapshot()["index_hits"]
    0
    """
    state = _state
    totals = _totals(state)
    with state.lock:
        state.baseline = totals


@contextlib.contextmanager
def collect() -> Iterator[dict[str, Any]]:
    """The counters' growth over a ``with`` block, in this process.

    Yields a dict that is filled when the block ends: the difference of
    every counter, plus ``wall_seconds`` (the block's duration) and
    ``lock_share`` (``lock_held_seconds / wall_seconds``).  Work done in
    other processes (the ``processes`` scheduler, distributed workers) is
    not counted: see :func:`gather`.

    Examples
    --------
    >>> with collect() as stats:
    ...     add(direct_chunks=3)
    >>> stats["direct_chunks"]
    3
    """
    result: dict[str, Any] = {}
    before = snapshot()
    start = time.perf_counter()
    try:
        yield result
    finally:
        wall = time.perf_counter() - start
        after = snapshot()
        result.update({key: _tidy(key, after[key] - before[key]) for key in COUNTERS})
        result["wall_seconds"] = wall
        result["lock_share"] = result["lock_held_seconds"] / wall if wall > 0 else 0.0


def gather(client: Any) -> dict[str, dict[str, Any]]:
    """The :func:`snapshot` of every worker of a ``dask.distributed`` client.

    Parameters
    ----------
    client : distributed.Client

    Returns
    -------
    dict
        Worker address -> that worker process's counters.

    Examples
    --------
    >>> from distributed import Client, LocalCluster
    >>> with LocalCluster(n_workers=1, processes=False, dashboard_address=None) as cluster, \\
    ...         Client(cluster) as client:
    ...     stats = gather(client)
    >>> [sorted(counts)[:2] for counts in stats.values()]
    [['direct_bytes_decoded', 'direct_bytes_read']]
    """
    return client.run(snapshot)


def report(stats: dict[str, Any]) -> str:
    """The counters as text, one per line (what ``dask-tables stats --profile`` prints).

    Examples
    --------
    >>> print(report({"direct_chunks": 10, "lock_held_seconds": 0.0012}))
      direct_chunks      10
      lock_held_seconds  0.0012
    """
    width = max(map(len, stats), default=0)
    lines = []
    for key, value in stats.items():
        shown = f"{value:.4g}" if isinstance(value, float) else str(value)
        lines.append(f"  {key:<{width}}  {shown}")
    return "\n".join(lines)
