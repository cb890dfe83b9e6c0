"""Deprecated: :mod:`dask_tables.filters.chain` (``FilterPipeline`` is now ``FilterChain``).

"Pipeline" names HDF5's own filter pipeline (the "pipeline path" of a read,
the ``pipeline_*`` diagnostics counters); our decoder and encoder is a
:class:`~dask_tables.filters.chain.FilterChain`.
"""

from __future__ import annotations

from ..errors import renamed
from . import chain

_RENAMED = {
    "FilterPipeline": ("dask_tables.filters.chain.FilterChain", chain.FilterChain),
    "filter_pipeline": ("dask_tables.filters.chain.filter_chain", chain.filter_chain),
    "encoding_pipeline": ("dask_tables.filters.chain.encoding_chain", chain.encoding_chain),
}


def __getattr__(name: str) -> object:
    return renamed(__name__, _RENAMED, name)
