"""Probe an untrusted file's metadata in a child process before reading it here.

HDF5 crashes (segfaults) or loops on some damaged object headers, chunk
indexes and compressed chunks, PyTables alone included, and a crash takes
the whole Python process with it.  :func:`probe` does what reading a node
makes HDF5 do, in a separate interpreter with a time limit: it opens the
file (superblock, root group), the node's header, looks up every chunk, and,
for a node that will be read through PyTables' filter pipeline rather than
directly (see :mod:`dask_tables.direct`), reads all its data, since HDF5
decodes those chunks itself.  (Directly read chunks are decoded by
dask_tables' own decoders, which check every length they are given.)  A
file that crashes or hangs the child is refused with
:class:`~dask_tables.NotHDF5FileError`, and this process never parses it.
HDF5 parses a file the same way every time, so a file that passed the probe
(and has not changed since: the fingerprint check) is safe to read here.

Run as ``python -m dask_tables.validate FILE NODE``, it is the child.
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys

import dask

from .errors import NotHDF5FileError

__all__ = ["probe"]


def probe(path: str | os.PathLike[str], node: str, timeout: float = 120, direct: bool | None = None) -> None:
    """Do what reading ``node`` makes HDF5 do, in a child process; refuse the file if that fails hard.

    Parameters
    ----------
    path : str or os.PathLike
        The file.
    node : str
        The node that will be read.
    timeout : float, optional
        Seconds the child may take.
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

    Examples
    --------
    >>> import numpy as np, tables
    >>> with tables.open_file("example.h5", "w") as f:
    ...     _ = f.create_carray("/", "x", obj=np.arange(10.0), chunkshape=(5,))
    >>> probe("example.h5", "/x")  # returns quietly
    """
    path = os.fspath(path)
    if direct is None:
        direct = dask.config.get("dask_tables.direct", True)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "dask_tables.validate", path, node, "direct" if direct else "pipeline"],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        raise NotHDF5FileError(
            f"{path}: node {node}: reading it in a child process did not finish in {timeout:g} s (damaged HDF5 file?)"
        ) from None
    if done.returncode < 0:
        name = signal.Signals(-done.returncode).name
        raise NotHDF5FileError(
            f"{path}: node {node}: reading it in a child process crashed HDF5 ({name}): damaged HDF5 file"
        )
    if done.returncode not in (0, 1):
        raise NotHDF5FileError(
            f"{path}: node {node}: reading it in a child process failed hard (exit {done.returncode}): damaged HDF5 file"
        )


def _walk(path: str, node: str, direct: bool) -> None:
    import tables

    from .pickles import refusing_pickles
    from .source import TablesSource

    with refusing_pickles(), tables.open_file(path, "r") as h5:
        leaf = h5.get_node(node if node.startswith("/") else "/" + node)
        if isinstance(leaf, tables.link.SoftLink):
            leaf = leaf()
        chunkshape = getattr(leaf, "chunkshape", None)
        shape = tuple(int(n) for n in getattr(leaf, "shape", ()))
        if chunkshape is not None and all(shape):
            grid = [range(0, n, int(c)) for n, c in zip(shape, chunkshape, strict=True)]
            for start in itertools.product(*grid):
                leaf.chunk_info(start)
    source = TablesSource.open(path, node, direct=direct)  # decides, as the parent will, how it is read
    if source.layout is None and source.size and source.read_ndim:
        chunk_rows = max(1, (source.chunkshape or (1,))[0])
        row_nbytes = source.row_nbytes or source.dtype.itemsize * (source.size // source.shape[0])
        step = max(chunk_rows, (64 << 20) // max(1, row_nbytes) // chunk_rows * chunk_rows)
        for start in range(0, source.shape[0], step):
            source[start : start + step]  # HDF5 decodes these chunks: a crash here is the probe's answer
    elif source.layout is None and source.size:
        source[()]


if __name__ == "__main__":
    try:
        _walk(sys.argv[1], sys.argv[2], sys.argv[3:] != ["pipeline"])
    except Exception:  # an ordinary error: the parent's own read reports it precisely
        sys.exit(1)
