"""The best of repeated wall times: the one loop that times the demo and the benchmarks.

It imports nothing of the package, so the benchmarks (scripts outside the
package) time with the same loop as ``dask-tables demo``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

__all__ = ["best_of"]

T = TypeVar("T")


def best_of(repeat: int, run: Callable[[], T], *, warm_up: bool = True) -> tuple[float, T]:
    """Seconds of the fastest of ``repeat`` timed calls of ``run``, and the last call's result.

    Parameters
    ----------
    repeat : int
        Timed calls (at least 1).
    run : callable
        Called with no arguments; what it returns is handed back.
    warm_up : bool, optional
        First make one untimed call (default), so that every timed call
        finds the page cache and each process's caches warm.  ``False``
        where the caller has warmed them itself, or counts every call.

    Returns
    -------
    (float, object)
        The best wall time in seconds and the result of the last call.

    Examples
    --------
    >>> seconds, result = best_of(2, lambda: 42)
    >>> result, seconds >= 0
    (42, True)
    """
    if repeat < 1:
        raise ValueError(f"repeat must be at least 1, not {repeat}")
    if warm_up:
        run()
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        result = run()
        best = min(best, time.perf_counter() - start)
    return best, result
