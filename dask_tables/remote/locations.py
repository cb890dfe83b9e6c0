"""What a user passes as "the file(s)", with URLs: paths, URLs, URL patterns, or a list of them.

``s3://bucket/run-*.h5`` lists the bucket under the pattern's fixed prefix
(one listing request per thousand objects) and keeps the keys that match,
in sorted order, as a local glob does (other schemes: fsspec's ``glob``); local paths and patterns are
expanded by ``dask_tables.hdf5.paths.expand_paths``.
"""

from __future__ import annotations

import fnmatch
import glob
import os
from collections.abc import Mapping
from typing import Any

from ..hdf5.paths import PathLike, PathSpec, expand_each, expand_paths
from . import fsspec_store
from .transport import _store
from .urls import StorageOptions, display_url, is_url, split_url

__all__ = ["expand_locations"]


def _expand_url(url: str, node: str, options: StorageOptions) -> list[str]:
    kind, base, key = split_url(url)
    if not glob.has_magic(key):
        return [url]
    if kind == "fsspec" and "::" in url:
        raise ValueError(
            f"{display_url(url)}: a pattern in a chained URL (with ::) is not expanded; list the objects"
        )
    store = None if kind == "fsspec" else _store(kind, base, options)  # its own error for bad options
    try:
        if store is None:  # another scheme: its fsspec filesystem's glob
            found = fsspec_store.glob(fsspec_store.filesystem(url, options)[0], url)
        else:
            found = _listed(store, base, key)
    except Exception as err:
        reason = options.redact(str(err).splitlines()[0] if str(err) else type(err).__name__, url)
        raise OSError(f"{display_url(url)}: listing the objects failed: {reason}") from None
    if not found:
        raise FileNotFoundError(f"{display_url(url)}: the pattern matches no objects (asked for node {node})")
    return found


def _listed(store: Any, base: str, key: str) -> list[str]:
    """The URLs of a store's objects that match the pattern ``key``, sorted: one listing under its fixed prefix."""
    import obstore

    prefix = key[: min(key.index(c) for c in "*?[" if c in key)]
    folder = prefix.rsplit("/", 1)[0] + "/" if "/" in prefix else ""
    found = [
        meta["path"]
        for batch in obstore.list(store, prefix=folder.rstrip("/") or None)
        for meta in batch
        if fnmatch.fnmatchcase(meta["path"], key) and meta["path"].count("/") == key.count("/")
    ]
    return [f"{base}/{path}" for path in sorted(found)]


def expand_locations(
    paths: PathSpec, node: str = "", storage_options: Mapping[str, Any] | None = None
) -> list[str]:
    """The files and objects named by a path, URL, pattern of either, or a list of them.

    Parameters
    ----------
    paths : str, bytes, os.PathLike or sequence
        Local paths and patterns (as ``dask_tables.hdf5.paths.expand_paths``
        takes them) and URLs (``s3://bucket/run-*.h5``), or a list of them.
    node : str, optional
        The node that will be read, for error messages.
    storage_options : dict, optional
        How to reach the store, for listing a URL pattern.

    Returns
    -------
    list of str

    Raises
    ------
    FileNotFoundError
        A pattern matches nothing.
    ValueError
        The list is empty.

    Examples
    --------
    >>> for name in ["b.h5", "a.h5"]:
    ...     open(name, "w").close()
    >>> expand_locations(["s3://bucket/x.h5", "*.h5"])
    ['s3://bucket/x.h5', 'a.h5', 'b.h5']
    """
    options = StorageOptions(storage_options)

    def expand(item: PathLike) -> list[str]:
        if is_url(item):
            return _expand_url(os.fsdecode(os.fspath(item)), node, options)
        return expand_paths(item, node)

    return expand_each(paths, node, expand)
