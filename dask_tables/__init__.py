"""dask_tables: PyTables/HDF5 data as dask collections, thread-safe and parallel.

Examples
--------
>>> import numpy as np, tables
>>> import dask_tables
>>> with tables.open_file("data.h5", "w") as f:
...     _ = f.create_carray("/", "array", obj=np.ones((100, 100)), chunkshape=(10, 100))
>>> x = dask_tables.from_tables("data.h5", "/array")
>>> float(x.mean().compute(scheduler="threads"))
1.0
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from . import diagnostics
from .array.core import from_tables
from .array.source import TablesSource
from .errors import (
    CorruptChunkError,
    DaskTablesError,
    FileChangedError,
    FileLockedError,
    MissingFilterError,
    NodeExistsError,
    NotHDF5FileError,
    RecordLayoutError,
    RegionMismatchError,
    SlowChunkIndexWarning,
    WriteInterruptedError,
)
from .registry import (
    get_lock,
    patch,
    patched,
    synchronized_close_file,
    synchronized_file,
    synchronized_open_file,
    unpatch,
)
from .write.plan import RechunkWarning
from .write.totables import to_tables


def __getattr__(name: str) -> object:
    # read_table needs pandas and dask.dataframe: imported on first use, so that
    # array users (and the validate probe's child process) start fast.
    if name == "read_table":
        from .frame.core import read_table

        return read_table
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


try:
    __version__ = version("dask-tables")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0+unknown"

__all__ = [
    "CorruptChunkError",
    "DaskTablesError",
    "FileChangedError",
    "FileLockedError",
    "MissingFilterError",
    "NodeExistsError",
    "NotHDF5FileError",
    "RechunkWarning",
    "RecordLayoutError",
    "RegionMismatchError",
    "SlowChunkIndexWarning",
    "TablesSource",
    "WriteInterruptedError",
    "__version__",
    "diagnostics",
    "from_tables",
    "get_lock",
    "patch",
    "patched",
    "read_table",
    "synchronized_close_file",
    "synchronized_file",
    "synchronized_open_file",
    "to_tables",
    "unpatch",
]
