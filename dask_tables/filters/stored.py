"""Deprecated: :mod:`dask_tables.hdf5.storednode`, with :class:`~dask_tables.hdf5.storednode.StoredNode`.

A dataset's filters as the file records them are part of how the node is
stored, so they live beside :class:`~dask_tables.hdf5.storednode.StoredNode`;
``stored_node(leaf)`` is now ``StoredNode.of(leaf)``.
"""

from __future__ import annotations

from ..errors import renamed
from ..hdf5 import storednode

_RENAMED = {
    "StoredFilter": ("dask_tables.hdf5.storednode.StoredFilter", storednode.StoredFilter),
    "stored_filters": ("dask_tables.hdf5.storednode.stored_filters", storednode.stored_filters),
    "hdf5_can_apply": ("dask_tables.hdf5.storednode.hdf5_can_apply", storednode.hdf5_can_apply),
    "stored_node": ("dask_tables.hdf5.storednode.StoredNode.of", storednode.StoredNode.of),
}


def __getattr__(name: str) -> object:
    return renamed(__name__, _RENAMED, name)
