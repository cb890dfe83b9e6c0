"""pandas' frames as in-memory HDF5 images: the templates a frame write copies its group from.

pandas writes one row of the frame (or the existing table's group is
copied without rows) into an HDF5 file held in memory; the image of that
file carries the group's attributes, values blocks and categories, which the
commit copies beside the table it builds from the staged rows.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from typing import Any

import pandas as pd
import tables

from ..registry import get_lock

__all__ = ["memory_store", "pandas_key", "table_path", "template_of_existing"]


@contextlib.contextmanager
def memory_store(image: bytes | None = None) -> Iterator[pd.HDFStore]:
    """A pandas ``HDFStore`` on an in-memory HDF5 file (from ``image``), with the lock held.

    Examples
    --------
    >>> with memory_store() as store:
    ...     store.append("df", pd.DataFrame({"a": [1]}), format="table")
    ...     image = store._handle.get_file_image()
    >>> with memory_store(image) as store:
    ...     store.select("df")["a"].tolist()
    [1]
    """
    name = f"dask-tables-template-{uuid.uuid4().hex}.h5"
    kwargs: dict[str, Any] = {"driver": "H5FD_CORE", "driver_core_backing_store": 0}
    if image is not None:
        kwargs["driver_core_image"] = image
    with get_lock(), pd.HDFStore(name, mode="a" if image else "w", **kwargs) as store:
        yield store


def template_of_existing(group: tables.Group) -> bytes:
    """An image of a pandas frame's group: attributes, categories, and its table without rows."""
    with memory_store() as store:
        h5 = store._handle
        copy = group._f_copy(h5.root, group._v_name, recursive=False)
        for child in group._f_iter_nodes():
            if child._v_name == "table":
                child.copy(copy, "table", stop=0)
            else:
                child._f_copy(copy, child._v_name, recursive=True)
        h5.flush()
        return h5.get_file_image()


def pandas_key(node: str) -> str:
    """A node path as pandas names a key.

    Examples
    --------
    >>> pandas_key("/runs/df")
    'runs/df'
    """
    return node.strip("/")


def table_path(node: str) -> str:
    """The final path of a pandas frame's table (the indexes' titles name it).

    Examples
    --------
    >>> table_path("/runs/df")
    '/runs/df/table'
    """
    return node.rstrip("/") + "/table"
