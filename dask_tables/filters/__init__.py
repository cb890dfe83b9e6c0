"""HDF5 filters: chunks decoded on read and encoded on write, in Python, outside every lock.

One class per HDF5 filter (:class:`~dask_tables.filters.base.Filter`:
``encode``, ``decode``, ``decode_into``), registered by filter id in
:data:`FILTERS`; one :class:`FilterChain` runs a dataset's filters both
ways (HDF5's own run of them is its "filter pipeline").  The modules are
listed, with what each holds, in the one inventory of the package:
``docs/architecture.rst``.

Encoded here: shuffle, zlib, bzip2, Blosc2 and Fletcher-32 (the others only
decode: their ``encode`` raises :class:`UnsupportedEncoderError`).
"""

# Importing each family's module registers its filters: FILTERS is complete once this package is.
from ..errors import renamed
from ..hdf5 import storednode
from . import blosc, bzip2, checksum, deflate, lzf, lzo, plugins, shuffle, szip  # noqa: F401
from .base import (
    FILTERS,
    DecodeError,
    Filter,
    UnsupportedEncoderError,
    UnsupportedFilterError,
    filter_class,
)
from .chain import FilterChain, encoding_chain, filter_chain
from .checksum import fletcher32

__all__ = [
    "FILTERS",
    "DecodeError",
    "Filter",
    "FilterChain",
    "UnsupportedEncoderError",
    "UnsupportedFilterError",
    "encoding_chain",
    "filter_chain",
    "filter_class",
    "fletcher32",
]

_RENAMED = {
    "FilterPipeline": ("dask_tables.filters.FilterChain", FilterChain),
    "filter_pipeline": ("dask_tables.filters.filter_chain", filter_chain),
    "encoding_pipeline": ("dask_tables.filters.encoding_chain", encoding_chain),
    # a node's filters as its file records them: beside StoredNode, in the HDF5 layer
    "StoredFilter": ("dask_tables.hdf5.storednode.StoredFilter", storednode.StoredFilter),
    "stored_filters": ("dask_tables.hdf5.storednode.stored_filters", storednode.stored_filters),
    "hdf5_can_apply": ("dask_tables.hdf5.storednode.hdf5_can_apply", storednode.hdf5_can_apply),
    "stored_node": ("dask_tables.hdf5.storednode.StoredNode.of", storednode.StoredNode.of),
}


def __getattr__(name: str) -> object:
    return renamed(__name__, _RENAMED, name)
