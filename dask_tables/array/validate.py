"""Probe untrusted files in a child process before reading them here.

HDF5 crashes (segfaults) or loops on some damaged object headers, chunk
indexes and compressed chunks, PyTables alone included, and a crash takes
the whole Python process with it.  :func:`probe_files` does what reading a
node makes HDF5 do, in a separate interpreter with a time limit per file: it
opens the file (superblock, root group), the node's header, looks up every
chunk, and, for a node that will be read through PyTables' filter pipeline
rather than directly (see :mod:`dask_tables.array.direct`), reads all its data,
since HDF5 decodes those chunks itself.  (Directly read chunks are decoded by
dask_tables' own decoders, which check every length they are given.)  A file
that crashes or hangs the child is refused with
:class:`~dask_tables.NotHDF5FileError`, and this process never parses it.
HDF5 parses a file the same way every time, so a file that passed the probe
(and has not changed since: the fingerprint check) is safe to read here.

One child probes many files, one after the other, so the Python start-up
(about a second) is paid once, not per file.  It reports on its own pipe,
file by file: ``start I`` before file ``I``, ``done I`` after it.  So when
the child dies or hangs, the files it finished keep their verdict, the file
it had started is the culprit, and a new child probes the files after it.
A crash is blamed on a file only when it happens in a child that had probed
no file before it (a child that crashed later is retried from that file in
a fresh one): a file cannot be refused for damage an earlier file left in
HDF5's memory.

The child runs :func:`_child` (``python -m dask_tables.array.validate NODE MODE
LISTFILE`` does the same): ``LISTFILE`` holds the paths, one JSON string a
line; ``MODE`` is ``direct`` or ``pipeline``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import selectors
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import IO

import dask

from ..errors import NotHDF5FileError, at_node

__all__ = ["probe", "probe_files"]

# Seconds a child may take to start (import dask_tables) before its first file,
# whatever the per-file timeout: a busy machine is not a damaged file.
STARTUP_SECONDS = 60.0

# The child imports this very copy of dask_tables, wherever the parent runs from.
_PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_CHILD = "import sys; sys.path.insert(0, sys.argv.pop(1)); from dask_tables.array.validate import _child; _child(*sys.argv[1:])"


def probe(path: str | os.PathLike[str], node: str, timeout: float = 120, direct: bool | None = None) -> None:
    """Do what reading ``node`` makes HDF5 do, in a child process; refuse the file if that fails hard.

    Parameters
    ----------
    path : str or os.PathLike
        The file.
    node : str
        The node that will be read.
    timeout : float, optional
        Seconds the child may take for the file (its start-up has its own
        allowance, at least a minute).
    direct : bool, optional
        Whether the node will be read directly where it can be (as
        :func:`dask_tables.from_tables` takes it; default: the
        ``dask_tables.direct`` configuration value).  ``False`` makes the
        child read all the data through HDF5.

    Raises
    ------
    NotHDF5FileError
        The child crashed, hung, or ran out of memory: HDF5 cannot parse
        the file safely.  (The child reads all the data of a node that is
        not read directly, 64 MiB at a time.)  Ordinary errors (a missing node...) are left to
        the read itself, which reports them precisely.

    See Also
    --------
    probe_files : the same for many files, in one child process.

    Examples
    --------
    >>> import numpy as np, tables
    >>> with tables.open_file("example.h5", "w") as f:
    ...     _ = f.create_carray("/", "x", obj=np.arange(10.0), chunkshape=(5,))
    >>> probe("example.h5", "/x")  # returns quietly
    """
    refused = probe_files([path], node, timeout=timeout, direct=direct)
    if refused:
        raise refused[0]


def probe_files(
    paths: Sequence[str | os.PathLike[str]], node: str, timeout: float = 120, direct: bool | None = None
) -> dict[int, NotHDF5FileError]:
    """Probe ``node`` in each file, in as few child processes as possible; return the refusals.

    Parameters
    ----------
    paths : sequence of str or os.PathLike
        The files.
    node : str
        The node that will be read in each.
    timeout : float, optional
        Seconds the child may take for each file, from the moment it starts
        on it (its start-up has its own allowance, at least a minute).
    direct : bool, optional
        As for :func:`probe`.

    Returns
    -------
    dict of int to NotHDF5FileError
        For each refused file, its position in ``paths`` and the error
        that names it (crashed, hung, or failed hard).  Empty if every file
        passed.  Ordinary errors are left to the read, as in :func:`probe`.

    Raises
    ------
    RuntimeError
        The child process failed before it probed any file (a broken
        installation, not a file's fault).

    Examples
    --------
    >>> import numpy as np, tables
    >>> for name in ["a.h5", "b.h5"]:
    ...     with tables.open_file(name, "w") as f:
    ...         _ = f.create_array("/", "x", np.arange(3))
    >>> open("c.h5", "w").close()  # not HDF5: an ordinary error, left to the read
    >>> probe_files(["a.h5", "b.h5", "c.h5"], "/x")
    {}
    """
    if direct is None:
        direct = dask.config.get("dask_tables.direct", True)
    mode = "direct" if direct else "pipeline"
    files = [os.fspath(p) for p in paths]
    refused: dict[int, NotHDF5FileError] = {}
    start = 0
    while start < len(files):
        outcome = _run_child(files[start:], node, mode, timeout)
        if outcome.failed is None:
            break
        culprit = start + outcome.failed
        if outcome.failed == 0 or outcome.hung:
            refused[culprit] = _refusal(files[culprit], node, outcome, timeout)
            start = culprit + 1
        else:  # retry the file first in a fresh child: earlier files may have left HDF5 damaged
            start = culprit
    return refused


@dataclass(frozen=True)
class _Outcome:
    """How one child ended: ``failed`` is the position of the file it died or hung on, if any."""

    failed: int | None = None
    hung: bool = False
    returncode: int | None = None
    stderr: str = ""


def _refusal(path: str, node: str, outcome: _Outcome, timeout: float) -> NotHDF5FileError:
    reading = f"{at_node(path, node)}: reading it in a child process"
    if outcome.hung:
        return NotHDF5FileError(f"{reading} did not finish in {timeout:g} s (damaged HDF5 file?)")
    code = outcome.returncode or 0
    if code < 0:
        return NotHDF5FileError(f"{reading} crashed HDF5 ({signal.Signals(-code).name}): damaged HDF5 file")
    return NotHDF5FileError(f"{reading} failed hard (exit {code}): damaged HDF5 file")


def _run_child(files: list[str], node: str, mode: str, timeout: float) -> _Outcome:
    """Probe ``files`` in order in one child, until it finishes, dies or hangs on one of them."""
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as listing:
        listing.writelines(json.dumps(f) + "\n" for f in files)
    try:
        with tempfile.TemporaryFile() as stderr:  # a file, not a pipe: a chatty child never blocks on it
            child = subprocess.Popen(
                [sys.executable, "-c", _CHILD, _PACKAGE_ROOT, node, mode, listing.name],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=stderr,
            )
            try:
                outcome = _follow(child, len(files), timeout)
            finally:
                if child.poll() is None:
                    child.kill()
                child.wait()
                child.stdout.close()  # type: ignore[union-attr]
            outcome = dataclasses.replace(outcome, returncode=child.returncode, stderr=_tail(stderr))
    finally:
        os.unlink(listing.name)
    if outcome.failed == -1:
        what = "hung" if outcome.hung else f"failed (exit {outcome.returncode})"
        raise RuntimeError(
            f"the probe's child process ({sys.executable}, dask_tables.array.validate) {what} before "
            f"probing any file: {outcome.stderr}"
        )
    return outcome


def _tail(stream: IO[bytes], size: int = 2000) -> str:
    """The last ``size`` bytes written to ``stream``, as text."""
    stream.seek(0, os.SEEK_END)
    stream.seek(max(0, stream.tell() - size))
    return stream.read().decode(errors="replace").strip()


def _follow(child: subprocess.Popen[bytes], count: int, timeout: float) -> _Outcome:
    """Read the child's ``start I``/``done I`` lines, each file against its own deadline.

    Returns no failure if all ``count`` files are done; else the position
    of the first file not done (``-1`` if the child never started one),
    and whether the child hung there or died.
    """
    stream = child.stdout
    assert stream is not None
    started, done = False, 0
    deadline = time.monotonic() + max(timeout, STARTUP_SECONDS)
    buffer = b""
    with selectors.DefaultSelector() as selector:
        selector.register(stream, selectors.EVENT_READ)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return _Outcome(failed=done if started else -1, hung=True)
            if not selector.select(left):
                continue
            data = os.read(stream.fileno(), 65536)
            if not data:  # the child exited before judging every file
                return _Outcome(failed=done if started else -1)
            *lines, buffer = (buffer + data).split(b"\n")
            for line in lines:
                word, _, index = line.decode().partition(" ")
                started = True
                deadline = time.monotonic() + timeout
                if word == "done":
                    done = int(index) + 1
            if done == count:  # every file judged: how the child exits no longer matters
                return _Outcome()


def _walk(path: str, node: str, direct: bool) -> None:
    """What reading ``node`` of ``path`` makes HDF5 do: the probe of one file."""
    import tables

    from ..hdf5.chunkindex import build_index
    from ..hdf5.paths import node_path
    from ..hdf5.pickles import refusing_pickles
    from .source import TablesSource

    with refusing_pickles(), tables.open_file(path, "r") as h5:
        leaf = h5.get_node(node_path(node))
        if isinstance(leaf, tables.link.SoftLink):
            leaf = leaf()
        if getattr(leaf, "chunkshape", None) is not None and all(int(n) for n in leaf.shape):
            build_index(leaf)  # the chunk index, read as the tasks will read it
    source = TablesSource.open(path, node, direct=direct)  # decides, as the parent will, how it is read
    if source.storage is None and source.size and source.read_ndim:
        chunk_rows = max(1, (source.chunkshape or (1,))[0])
        row_nbytes = source.row_nbytes or source.dtype.itemsize * (source.size // source.shape[0])
        step = max(chunk_rows, (64 << 20) // max(1, row_nbytes) // chunk_rows * chunk_rows)
        for start in range(0, source.shape[0], step):
            source[start : start + step]  # HDF5 decodes these chunks: a crash here is the probe's answer
    elif source.storage is None and source.size:
        source[()]


def _child(node: str, mode: str, listing: str) -> None:
    """Probe each file listed, reporting ``start I`` and ``done I`` on the original stdout."""
    report = os.fdopen(os.dup(1), "w", buffering=1)  # line-buffered: each line reaches the parent at once
    os.dup2(2, 1)  # anything HDF5 or a library prints goes to stderr, never into the report
    with open(listing) as lines:
        files = [json.loads(line) for line in lines]
    for index, path in enumerate(files):
        report.write(f"start {index}\n")
        with contextlib.suppress(Exception):  # an ordinary error: the parent's own read reports it precisely
            _walk(path, node, mode != "pipeline")
        report.write(f"done {index}\n")


if __name__ == "__main__":
    _child(*sys.argv[1:4])
