"""A file rewritten for object storage: HDF5 paged aggregation, metadata gathered in few pages.

In a file PyTables or pandas wrote, group headers, attributes and chunk
indexes are scattered between the chunks, so a reader of an object walks
the metadata in many small requests.  With HDF5's paged aggregation
(``fs_strategy="page"``) metadata and raw data are allocated in separate
pages (4 MiB here): the metadata of a file is then in one or a few pages,
read in a few requests.  Every node is copied by HDF5 itself (``H5Ocopy``,
through h5py), with its attributes, filters, chunk shape and stored bytes.
"""

from __future__ import annotations

import os
from typing import Any

from .hdf5.files import written_whole

__all__ = ["PAGE_SIZE", "optimize_file"]

PAGE_SIZE = 4 * 2**20  # bytes: a page is one ranged request of the remote reader's size


def optimize_file(
    src: str | os.PathLike[str], dst: str | os.PathLike[str], page_size: int = PAGE_SIZE
) -> None:
    """Copy the HDF5 file ``src`` to a new file ``dst`` with paged aggregation (``page_size`` bytes a page).

    Every node is copied with its attributes, filters and chunk shape, and
    the root group's attributes too: PyTables, pandas and h5py read ``dst``
    as ``src``, with the same node classes and values.  ``dst`` is written
    under a temporary name beside it and renamed when complete.

    Raises
    ------
    FileExistsError
        ``dst`` exists (it is never overwritten).
    FileNotFoundError
        ``src`` does not exist.

    Examples
    --------
    >>> import numpy as np, tables
    >>> with tables.open_file("plain.h5", "w") as f:
    ...     _ = f.create_carray("/", "x", obj=np.arange(10.0), filters=tables.Filters(1))
    >>> optimize_file("plain.h5", "paged.h5")
    >>> with tables.open_file("paged.h5") as f:
    ...     print(type(f.root.x).__name__, f.root.x[3], f.root.x.filters.complib)
    CArray 3.0 zlib
    """
    import h5py

    src, dst = os.fspath(src), os.fspath(dst)
    if not os.path.exists(src):
        raise FileNotFoundError(f"{src}: no such file")
    if os.path.lexists(dst):
        raise FileExistsError(f"{dst}: exists; give a new file name (it is never overwritten)")
    # linked into place: fails if dst appeared meanwhile, never replaced
    with (
        written_whole(os.path.abspath(dst), replace=False) as part,
        h5py.File(src, "r") as source,
        h5py.File(part, "w", fs_strategy="page", fs_page_size=page_size) as target,
    ):
        _copy_attributes(source, target)
        for name in source:
            source.copy(source[name], target, name=name)


def _copy_attributes(source: Any, target: Any) -> None:
    """The attributes of one object onto another, with their stored types (fixed-length strings stay so)."""
    for name in source.attrs:
        stored = source.attrs.get_id(name)
        target.attrs.create(name, source.attrs[name], dtype=stored.dtype)
