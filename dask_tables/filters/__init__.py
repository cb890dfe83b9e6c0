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
from .stored import StoredFilter, hdf5_can_apply, stored_filters, stored_node

__all__ = [
    "FILTERS",
    "DecodeError",
    "Filter",
    "FilterChain",
    "StoredFilter",
    "UnsupportedEncoderError",
    "UnsupportedFilterError",
    "encoding_chain",
    "filter_chain",
    "filter_class",
    "fletcher32",
    "hdf5_can_apply",
    "stored_filters",
    "stored_node",
]

_RENAMED = {
    "FilterPipeline": ("dask_tables.filters.FilterChain", FilterChain),
    "filter_pipeline": ("dask_tables.filters.filter_chain", filter_chain),
    "encoding_pipeline": ("dask_tables.filters.encoding_chain", encoding_chain),
}


def __getattr__(name: str) -> object:
    return renamed(__name__, _RENAMED, name)
