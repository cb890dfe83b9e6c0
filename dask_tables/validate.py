"""Probe an untrusted file's metadata in a child process before reading it here.

HDF5 crashes (segfaults) or loops on some damaged object headers and chunk
indexes, PyTables alone included, and a crash takes the whole Python
process with it.  :func:`probe` walks what reading a node touches (the file's
superblock and root group, the node's header, the location of every chunk)
in a separate interpreter with a time limit; a file that crashes or hangs
the child is refused with :class:`~dask_tables.NotHDF5FileError`, and this
process never parses it.  HDF5 parses a file the same way every time, so a
file that passed the probe (and has not changed since: the fingerprint
check) is safe to read here.

Run as ``python -m dask_tables.validate FILE NODE``, it is the child.
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys

from .errors import NotHDF5FileError

__all__ = ["probe"]


def probe(path: str | os.PathLike[str], node: str, timeout: float = 120) -> None:
    """Walk ``node``'s metadata and chunk index in a child process; refuse the file if that fails hard.

    Parameters
    ----------
    path : str or os.PathLike
        The file.
    node : str
        The node that will be read.
    timeout : float, optional
        Seconds the child may take.

    Raises
    ------
    NotHDF5FileError
        The child crashed, hung, or ran out of memory: HDF5 cannot parse
        the file safely.  Ordinary errors (a missing node...) are left to
        the read itself, which reports them precisely.

    Examples
    --------
    >>> import numpy as np, tables
    >>> with tables.open_file("example.h5", "w") as f:
    ...     _ = f.create_carray("/", "x", obj=np.arange(10.0), chunkshape=(5,))
    >>> probe("example.h5", "/x")  # returns quietly
    """
    path = os.fspath(path)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "dask_tables.validate", path, node],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        raise NotHDF5FileError(
            f"{path}: node {node}: reading its metadata did not finish in {timeout:g} s (damaged HDF5 file?)"
        ) from None
    if done.returncode < 0:
        name = signal.Signals(-done.returncode).name
        raise NotHDF5FileError(
            f"{path}: node {node}: reading its metadata crashed HDF5 ({name}): damaged HDF5 file"
        )
    if done.returncode not in (0, 1):
        raise NotHDF5FileError(
            f"{path}: node {node}: reading its metadata failed hard (exit {done.returncode}): damaged HDF5 file"
        )


def _walk(path: str, node: str) -> None:
    import tables

    from .pickles import refusing_pickles

    with refusing_pickles(), tables.open_file(path, "r") as h5:
        leaf = h5.get_node(node if node.startswith("/") else "/" + node)
        if isinstance(leaf, tables.link.SoftLink):
            leaf = leaf()
        chunkshape = getattr(leaf, "chunkshape", None)
        shape = tuple(int(n) for n in getattr(leaf, "shape", ()))
        if chunkshape is None or not all(shape):
            return
        grid = [range(0, n, int(c)) for n, c in zip(shape, chunkshape, strict=True)]
        for start in itertools.product(*grid):
            leaf.chunk_info(start)


if __name__ == "__main__":
    try:
        _walk(sys.argv[1], sys.argv[2])
    except Exception:  # an ordinary error: the parent's own read reports it precisely
        sys.exit(1)
