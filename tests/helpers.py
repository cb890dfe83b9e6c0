"""Helpers shared by the tests (and the benchmarks): records, PyTables' own reads, child processes."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import tables
import tables.file as tables_file

RECORD = np.dtype([("a", "i4"), ("pos", [("x", "f8"), ("y", "f8")]), ("m", "f4", (2, 3)), ("s", "S5")])


def records(n: int) -> np.ndarray:
    rows = np.zeros(n, RECORD)
    rows["a"] = np.arange(n)
    rows["pos"]["x"] = np.arange(n) * 0.5
    rows["pos"]["y"] = -np.arange(n)
    rows["m"] = np.arange(n * 6, dtype="f4").reshape(n, 2, 3)
    rows["s"] = [f"r{i}".encode() for i in range(n)]
    return rows


def pytables_read(path, node, field=None):
    """What PyTables itself reads for a whole node, as numpy."""
    with tables.open_file(path, "r") as f:
        leaf = f.get_node(node)
        if isinstance(leaf, tables.link.SoftLink):
            leaf = leaf()
        if isinstance(leaf, tables.Table):
            return leaf.read(field=field)
        return np.asarray(leaf.read(), dtype=leaf.dtype.base if leaf.dtype.subdtype else leaf.dtype)


def registry_is_empty() -> bool:
    registry = tables_file._open_files
    return len(registry._handlers) == 0 and len(registry._name_mapping) == 0


def run_child(*argv: object, timeout: float = 120, cwd=None, env=None) -> subprocess.CompletedProcess[str]:
    """``python ARGV...`` in a fresh interpreter (crashes, hangs, exit hooks), output captured as text.

    The one runner of child interpreters for the tests and the benchmarks
    (``benchmarks/harness.py``).  ``env`` adds variables to this process's
    (``None`` drops one); a child that outlives ``timeout`` seconds is
    killed and raises :class:`subprocess.TimeoutExpired`.

    >>> run_child("-c", "import sys; print(sys.argv[1:])", "a", 2).stdout
    "['a', '2']\\n"
    """
    return subprocess.run(
        [sys.executable, *map(str, argv)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        env=None if env is None else {k: v for k, v in {**os.environ, **env}.items() if v is not None},
    )


def run_python(
    code: str, *args: object, timeout: float = 120, cwd=None, env=None
) -> subprocess.CompletedProcess[str]:
    """Run ``code`` (dedented) with ``args`` as ``sys.argv[1:]`` in a fresh interpreter: :func:`run_child`."""
    return run_child("-c", textwrap.dedent(code), *args, timeout=timeout, cwd=cwd, env=env)


ROOT = Path(__file__).resolve().parent.parent


def run_benchmark(name: str, *args: object, folder) -> tuple[str, Any]:
    """``benchmarks/NAME.py ARGS --dir FOLDER --json ...`` on this checkout: what it printed, and its figures.

    It must succeed and leave no data file behind in ``folder``.
    """
    out = Path(folder) / f"{name}.json"
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    done = run_child(
        ROOT / "benchmarks" / f"{name}.py",
        *args,
        "--dir",
        folder,
        "--json",
        out,
        timeout=600,
        env={"PYTHONPATH": path},
    )
    assert done.returncode == 0, done.stderr
    assert not list(Path(folder).glob("*/*.h5")), "the data files are removed"
    return done.stdout, json.loads(out.read_text())


def last_line(done: subprocess.CompletedProcess[str]) -> str:
    """The last line a child printed (``""`` if none): where the children here put their answer."""
    lines = done.stdout.strip().splitlines()
    return lines[-1] if lines else ""


def child_json(done: subprocess.CompletedProcess[str]) -> Any:
    """The JSON of a child's last line, after checking that it exited cleanly (else its stderr's tail)."""
    assert done.returncode == 0, f"child failed ({done.returncode}): {done.stderr[-3000:]}"
    return json.loads(last_line(done))


HOLD_OPEN_FOR_WRITING = """
import sys, tables
f = tables.open_file(sys.argv[1], "a")
print("open", flush=True)
sys.stdin.read()  # until the test closes our stdin
f.close()
"""


@contextlib.contextmanager
def held_open_for_writing(path) -> Iterator[None]:
    """Another process holds ``path`` open for writing (HDF5's file lock taken) inside the block."""
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_OPEN_FOR_WRITING, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline() == "open\n"
        yield
    finally:
        holder.communicate("", timeout=60)


UNPICKLED: list[int] = []  # how many Counted objects this process unpickled


def _unpickle_counted(value: int) -> Counted:
    UNPICKLED.append(value)
    return Counted(value)


class Counted:
    """An object that counts its unpickling in this process (pickled object blocks read once?)."""

    def __init__(self, value: int) -> None:
        self.value = value

    def __reduce__(self):
        return (_unpickle_counted, (self.value,))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Counted) and other.value == self.value

    def __hash__(self) -> int:
        return hash(self.value)
