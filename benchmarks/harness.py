"""What the benchmarks here share: the best of repeated runs, the machine, a measurement in a child process.

Each benchmark is a script (``python benchmarks/bench_read.py``), so this
module is imported from the script's own folder.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import tables


def best_of(repeat: int, run: Callable[[], Any]) -> tuple[float, Any]:
    """Seconds of the fastest of ``repeat`` runs after one warm-up, and the last run's result.

    The warm-up fills the page cache and each process's chunk index, so every
    method is timed warm, as the anchors are.

    >>> seconds, result = best_of(2, lambda: 42)
    >>> result, seconds >= 0
    (42, True)
    """
    result = run()
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        result = run()
        best = min(best, time.perf_counter() - start)
    return best, result


def machine() -> dict[str, Any]:
    """The facts a figure depends on: CPUs, Python, PyTables and dask_tables versions.

    >>> sorted(machine())
    ['cpus', 'dask_tables', 'python', 'tables']
    """
    import dask_tables

    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "tables": tables.__version__,
        "dask_tables": dask_tables.__version__,
    }


def in_child(script: str, *args: Any, timeout: float, pythonpath: str | None = None) -> dict[str, Any]:
    """Run ``python script --child ARGS...`` and return the JSON object its last line prints.

    A fresh process per measurement: no cache, lock or thread pool of one
    method helps the next.  A child that fails gives ``{"error": its last
    line of stderr}``, so one broken anchor does not lose the other figures.
    ``pythonpath`` puts a folder first on the child's path: another checkout
    of dask_tables, timed against this one.

    >>> "No such file" in in_child("no-such-benchmark.py", timeout=60)["error"]
    True
    """
    env = None
    if pythonpath is not None:
        paths = [pythonpath, *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
    done = subprocess.run(
        [sys.executable, script, "--child", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines()
        return {"error": lines[-1] if lines else f"exit {done.returncode}"}
    return json.loads(done.stdout.strip().splitlines()[-1])
