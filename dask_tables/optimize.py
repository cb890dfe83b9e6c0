"""A file rewritten for object storage: HDF5 paged aggregation, metadata gathered in few pages.

In a file PyTables or pandas wrote, group headers, attributes and chunk
indexes are scattered between the chunks, so a reader of an object walks
the metadata in many small requests.  With HDF5's paged aggregation
(``fs_strategy="page"``) metadata and raw data are allocated in separate
pages (4 MiB here): the metadata of a file is then in one or a few pages,
read in a few requests.  Every node is copied by HDF5 itself (``H5Ocopy``,
through h5py), with its attributes, filters, chunk shape and stored bytes.

Either file may be a URL.  A source object is downloaded first, by ranged
GETs conditional on its version (the copy reads every byte of it anyway,
and HDF5 copies from a local file only); a destination object is written
as a local file in a temporary folder and put once complete, only if no
object is at that key (the write path of ``to_tables`` for URLs).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from typing import Any

from .hdf5.files import written_whole
from .remote.transport import RemoteFile
from .remote.urls import StorageOptions, is_url, local_path
from .write.upload import put_file, refuse_read_only

__all__ = ["PAGE_SIZE", "optimize_file"]

PAGE_SIZE = 4 * 2**20  # bytes: a page is one ranged request of the remote reader's size


def optimize_file(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    page_size: int = PAGE_SIZE,
    storage_options: Mapping[str, Any] | None = None,
    dst_storage_options: Mapping[str, Any] | None = None,
) -> None:
    """Copy the HDF5 file ``src`` to a new file ``dst`` with paged aggregation (``page_size`` bytes a page).

    Every node is copied with its attributes, filters and chunk shape, and
    the root group's attributes too: PyTables, pandas and h5py read ``dst``
    as ``src``, with the same node classes and values.  ``dst`` is written
    under a temporary name beside it and renamed when complete; an object
    is put once complete.

    Parameters
    ----------
    src, dst : str or os.PathLike
        Local files, or URLs (``s3://``, ``gs://``, ``az://``; ``http(s)://``
        for ``src`` only).
    page_size : int
        Bytes a page.
    storage_options : dict, optional
        How to reach the URLs (as ``from_tables`` takes them).
    dst_storage_options : dict, optional
        For ``dst`` if it needs others than ``src`` (default: ``storage_options``).

    Raises
    ------
    FileExistsError
        ``dst`` exists (it is never overwritten), or an object appeared there meanwhile.
    FileNotFoundError
        ``src`` does not exist.
    FileChangedError
        The ``src`` object was replaced while it was downloaded.

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
    src, dst = os.fspath(src), os.fspath(dst)
    if not is_url(src) and not is_url(dst):
        _optimize_local(local_path(src), local_path(dst), page_size)
        return
    target = None
    if is_url(dst):
        target = _new_object(dst, dst_storage_options if dst_storage_options is not None else storage_options)
    else:
        dst = local_path(dst)
        if os.path.lexists(dst):
            raise FileExistsError(f"{dst}: exists; give a new file name (it is never overwritten)")
    source = RemoteFile(src, StorageOptions(storage_options)).resolve() if is_url(src) else None
    import dask

    with tempfile.TemporaryDirectory(
        prefix="dask-tables-optimize-", dir=dask.config.get("temporary-directory", None)
    ) as folder:
        plain = local_path(src)
        if source is not None:
            plain = os.path.join(folder, "source.h5")
            source.download(plain)
        paged = dst if target is None else os.path.join(folder, "paged.h5")
        _optimize_local(plain, paged, page_size)
        if target is not None:
            try:
                put_file(paged, target, mode="create")
            except FileExistsError:
                raise FileExistsError(
                    f"{target.name}: an object appeared there while the copy was made; it was left as it is"
                ) from None


def _new_object(url: str, storage_options: Mapping[str, Any] | None) -> RemoteFile:
    """The destination object, checked before anything is read: a store's key where no object is."""
    target = RemoteFile(url, StorageOptions(storage_options))
    refuse_read_only(url)
    try:
        target.resolve()
    except FileNotFoundError:
        return target
    raise FileExistsError(f"{target.name}: exists; give a new object name (it is never overwritten)")


def _optimize_local(src: str, dst: str, page_size: int) -> None:
    """:func:`optimize_file` of two local files."""
    import h5py

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
