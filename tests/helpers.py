"""Helpers shared by the tests: records, PyTables' own reads, subprocesses."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

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


def run_python(code: str, timeout: float = 120, cwd=None, env=None) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter (for crashes, hangs, exit hooks); ``env`` adds variables."""
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        env=None if env is None else {**os.environ, **env},
    )


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
