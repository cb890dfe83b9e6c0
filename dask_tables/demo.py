"""The demo job: the threading cookbook's mean, serially, as the cookbook, and with from_tables.

PyTables' threading cookbook computes the mean of an array by reading slabs
of it in several threads, each opening and closing the file under a lock.
:func:`run_demo` does that computation three ways on a sample file of a few
hundred MiB (written once into a cache folder): with a serial PyTables loop,
as the cookbook does, and as a dask graph from
:func:`dask_tables.from_tables` on the threaded scheduler; it reports every
result and time.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tables

from .array.core import from_tables
from .hdf5.files import written_whole
from .hdf5.pickles import refusing_pickles
from .registry import synchronized_close_file, synchronized_file, synchronized_open_file
from .timing import best_of

__all__ = ["DemoResult", "cookbook_mean", "default_cache_dir", "ensure_demo_file", "run_demo", "serial_mean"]

DEMO_NODE = "/array"
DEMO_COLUMNS = 1024
_MARK = "DASK_TABLES_DEMO"


def default_cache_dir(environ: Mapping[str, str] = os.environ) -> Path:
    """Where the demo file lives: ``$DASK_TABLES_CACHE``, else ``$XDG_CACHE_HOME/dask-tables``.

    Parameters
    ----------
    environ : mapping, optional
        The environment variables to consult (default ``os.environ``).

    Examples
    --------
    >>> default_cache_dir({"DASK_TABLES_CACHE": "/data/demo"})
    PosixPath('/data/demo')
    >>> default_cache_dir({"XDG_CACHE_HOME": "/var/cache/me"})
    PosixPath('/var/cache/me/dask-tables')
    """
    if environ.get("DASK_TABLES_CACHE"):
        return Path(environ["DASK_TABLES_CACHE"])
    base = environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "dask-tables"


def _is_demo_file(path: Path, shape: tuple[int, int]) -> bool:
    try:
        with refusing_pickles(), tables.open_file(path, "r") as f:
            node = f.get_node(DEMO_NODE)
            return bool(f.root._v_attrs[_MARK]) and tuple(int(n) for n in node.shape) == shape
    except Exception:  # any file we did not write ourselves
        return False


def ensure_demo_file(directory: str | os.PathLike[str], size_mib: int = 256) -> Path:
    """Write the demo file into ``directory`` unless it is already there.

    The file holds a float64 ``CArray`` at ``/array`` of about ``size_mib``
    MiB of reproducible random numbers.  It is written to a temporary file
    and linked into place, so an interrupted run leaves no partial file, and
    an existing file that is not a dask-tables demo file of this size is
    never overwritten, even one that appears while the demo writes.

    Parameters
    ----------
    directory : str or os.PathLike
        Folder for the file; created if missing.
    size_mib : int, optional
        Approximate size of the array in MiB (at least 1).

    Returns
    -------
    pathlib.Path
        Path of the demo file.

    Raises
    ------
    FileExistsError
        A file of the demo's name exists and is not a demo file.

    Examples
    --------
    >>> path = ensure_demo_file("cache", size_mib=1)
    >>> path.name
    'demo-1MiB.h5'
    >>> ensure_demo_file("cache", size_mib=1) == path  # reused, not rewritten
    True
    """
    if size_mib < 1:
        raise ValueError(f"size_mib must be at least 1, not {size_mib}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"demo-{size_mib}MiB.h5"
    rows = size_mib * 1024 * 1024 // (8 * DEMO_COLUMNS)
    shape = (rows, DEMO_COLUMNS)
    if path.exists():
        if _is_demo_file(path, shape):
            return path
        raise FileExistsError(f"{path}: exists and is not a dask-tables demo file; not overwriting it")
    rng = np.random.default_rng(20261125)
    try:
        # linked into place: unlike a rename, never replaces a file that appeared meanwhile
        with written_whole(path, replace=False) as tmp, tables.open_file(tmp, "w") as f:
            f.root._v_attrs[_MARK] = 1
            array = f.create_carray(
                "/", DEMO_NODE[1:], atom=tables.Float64Atom(), shape=shape, chunkshape=(128, DEMO_COLUMNS)
            )
            for start in range(0, rows, 4096):
                stop = min(start + 4096, rows)
                array[start:stop] = rng.random((stop - start, DEMO_COLUMNS))
    except FileExistsError:
        if not _is_demo_file(path, shape):
            raise FileExistsError(
                f"{path}: appeared while the demo wrote its file and is not a demo file; not overwriting it"
            ) from None
    return path


def serial_mean(path: str | os.PathLike[str], node: str = DEMO_NODE, rows_per_read: int = 4096) -> float:
    """Mean of a node by a plain, serial PyTables loop over row slabs: the baseline.

    Examples
    --------
    >>> import numpy as np, tables
    >>> with tables.open_file("example.h5", "w") as f:
    ...     _ = f.create_array("/", "array", np.arange(10.0))
    >>> serial_mean("example.h5", "/array", rows_per_read=3)
    4.5
    """
    total = 0.0
    with tables.open_file(path, "r") as f:
        array = f.get_node(node)
        for start in range(0, array.shape[0], rows_per_read):
            total += float(np.sum(array[start : start + rows_per_read]))
        return total / int(np.prod(array.shape))


def cookbook_mean(
    path: str | os.PathLike[str], node: str = DEMO_NODE, rows_per_read: int = 4096, workers: int = 2
) -> float:
    """Mean of a node as PyTables' threading cookbook computes it.

    Threads each open the file, read a slab and close it, with the open and
    the close under the registry lock (:func:`~dask_tables.synchronized_open_file`).

    Examples
    --------
    >>> import numpy as np, tables
    >>> with tables.open_file("example.h5", "w") as f:
    ...     _ = f.create_array("/", "array", np.arange(10.0))
    >>> cookbook_mean("example.h5", "/array", rows_per_read=3, workers=2)
    4.5
    """

    def slab_sum(start: int) -> tuple[float, int]:
        h5 = synchronized_open_file(path, mode="r")
        try:
            data = h5.get_node(node)[start : start + rows_per_read]
        finally:
            synchronized_close_file(h5)
        return float(np.sum(data)), data.size

    with synchronized_file(path) as h5:
        rows = int(h5.get_node(node).shape[0])
    with ThreadPoolExecutor(workers) as pool:
        parts = list(pool.map(slab_sum, range(0, rows, rows_per_read)))
    return sum(p[0] for p in parts) / sum(p[1] for p in parts)


@dataclass(frozen=True)
class DemoResult:
    """What :func:`run_demo` measured: (label, mean, seconds) of each way, the serial loop first."""

    path: Path
    nbytes: int
    ways: tuple[tuple[str, float, float], ...]

    @property
    def agree(self) -> bool:
        """Whether every way gave the serial loop's mean (to rounding)."""
        means = [mean for _, mean, _ in self.ways]
        return bool(np.allclose(means, means[0], rtol=1e-9, atol=0))

    def report(self) -> str:
        """The lines the ``dask-tables demo`` command prints."""
        gb = self.nbytes / 1e9
        serial_seconds = self.ways[0][2]
        lines = [f"file: {self.path} ({self.nbytes / 2**20:.0f} MiB, float64, node {DEMO_NODE})"]
        for label, mean, seconds in self.ways:
            lines.append(
                f"  {label:<40} mean = {mean:.12f}  {seconds:7.3f} s  {gb / seconds:6.2f} GB/s"
                f"  {serial_seconds / seconds:5.2f}x"
            )
        lines.append("  results agree" if self.agree else "  RESULTS DIFFER")
        return "\n".join(lines)


def run_demo(
    directory: str | os.PathLike[str] | None = None,
    size_mib: int = 256,
    workers: int | None = None,
    repeat: int = 3,
) -> DemoResult:
    """Compute the demo file's mean serially, as the cookbook does, and with from_tables.

    Parameters
    ----------
    directory : str or os.PathLike, optional
        Folder of the demo file (default :func:`default_cache_dir`).
    size_mib : int, optional
        Size of the demo array in MiB.
    workers : int, optional
        Threads of the dask scheduler (default: one per core).
    repeat : int, optional
        Timed runs of each way, after one untimed warm-up; the best counts.

    Returns
    -------
    DemoResult

    Examples
    --------
    >>> result = run_demo("cache", size_mib=1)
    >>> result.agree
    True
    """
    path = ensure_demo_file(directory or default_cache_dir(), size_mib)
    workers = workers or os.cpu_count() or 1
    x = from_tables(path, DEMO_NODE)
    rows = x.chunks[0][0]  # the serial loop reads the same row blocks as the dask tasks

    def with_dask() -> float:
        return float(from_tables(path, DEMO_NODE).mean().compute(scheduler="threads", num_workers=workers))

    serial_seconds, expected = best_of(repeat, lambda: serial_mean(path, DEMO_NODE, rows))
    cookbook_seconds, cookbook = best_of(repeat, lambda: cookbook_mean(path, DEMO_NODE, rows, workers))
    dask_seconds, mean = best_of(repeat, with_dask)
    ways = (
        ("serial PyTables loop", expected, serial_seconds),
        (f"cookbook: {workers} threads, lock on open/close", cookbook, cookbook_seconds),
        (f"from_tables(...).mean(), {workers} threads", mean, dask_seconds),
    )
    return DemoResult(path, x.nbytes, ways)
