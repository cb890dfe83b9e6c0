"""What the benchmarks here share: the machine, a measurement in a child process.

Each benchmark is a script (``python benchmarks/bench_read.py``), so this
module is imported from the script's own folder.  The best of repeated runs
is :func:`dask_tables.timing.best_of`, the demo's loop: the package cannot
import this folder, so the benchmarks use the package's.  This module
imports no dask_tables at import time: a ``--child`` may run against
another checkout's package (``bench_frame_read.py --baseline``).  Child
processes run through the tests' runner (``tests/helpers.py``), put on the
path here as ``bench_remote.py`` puts the tests' servers.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

import tables

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from helpers import last_line, run_child


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
    method helps the next.  A child that fails or outlives ``timeout`` gives
    ``{"error": its last line of stderr}``, so one broken anchor does not
    lose the other figures.  ``pythonpath`` puts a folder first on the
    child's path: another checkout of dask_tables, timed against this one.

    >>> "No such file" in in_child("no-such-benchmark.py", timeout=60)["error"]
    True
    """
    env = None
    if pythonpath is not None:
        paths = [pythonpath, *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
        env = {"PYTHONPATH": os.pathsep.join(paths)}
    try:
        done = run_child(script, "--child", *args, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"error": f"no answer in {timeout} s"}
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines()
        return {"error": lines[-1] if lines else f"exit {done.returncode}"}
    return json.loads(last_line(done))
