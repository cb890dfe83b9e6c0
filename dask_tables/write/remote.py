"""Writes of new objects: the file is built whole on local disk, then uploaded in one ``put``.

An object in a bucket cannot be changed in place, and HDF5 cannot write
through ranged requests; so ``to_tables(x, "s3://bucket/key.h5", ...)``
runs the local write (:mod:`dask_tables.write.engine`, all or nothing) into
a file in a temporary folder, and only once it is complete puts it into
the store (:mod:`dask_tables.write.upload`): the object appears whole or
not at all.  By default the put is conditional (``If-None-Match: *``): an
object that appeared at that key while the file was written is left as it
is and the write raises :class:`FileExistsError`; ``mode="w"`` replaces an
existing object.  Writing into an existing object (``append=True``,
``region=``, a node added to it) is refused before anything runs: download
it, write locally, upload.

A frame written to a URL with one ``*`` (``s3://bucket/data-*.h5``) is one
object per partition, named as local files are
(:mod:`dask_tables.write.targets`): the files are all written locally
first, and uploaded only once every one is complete.
"""

from __future__ import annotations

import concurrent.futures
import os
import shutil
import tempfile
import weakref
from collections.abc import Callable, Mapping
from typing import Any

from dask.base import tokenize
from dask.delayed import Delayed, delayed

from ..remote.transport import RemoteFile
from ..remote.urls import StorageOptions, display_url, split_url
from .targets import check_stars, partition_names
from .upload import put_file, refuse_read_only

__all__ = ["write_object"]

_INTO_EXISTING = (
    "dask_tables writes new objects only: to change an object, download it, write into the local "
    "copy with to_tables and upload it; or write a new object"
)


class _Staging:
    """The temporary folder in which a write builds the file to upload.

    The task that uploads removes it; a write that fails before (or a lazy
    write never computed) leaves it until the last graph holding this object
    is dropped, or the process ends (a :func:`weakref.finalize`).
    """

    def __init__(self) -> None:
        import dask

        self.folder = tempfile.mkdtemp(
            prefix="dask-tables-upload-", dir=dask.config.get("temporary-directory")
        )
        weakref.finalize(self, shutil.rmtree, self.folder, True)

    def __reduce__(self) -> tuple[Any, ...]:  # a copy in another process owns nothing to remove
        return (_Folder, (self.folder,))


class _Folder:
    """A :class:`_Staging` as another process sees it: only its path."""

    def __init__(self, folder: str) -> None:
        self.folder = folder


def write_object(
    write: Callable[..., Delayed | list[str] | None],
    url: str,
    storage_options: Mapping[str, Any] | None,
    *,
    compute: bool,
    mode: str,
    append: bool,
    region: Any,
    node: str | None = None,
    partitions: int | None = None,
    name_function: Callable[[int], str] | None = None,
) -> Delayed | list[str] | None:
    """``write(local_path, compute=..., mode="w")`` into temporary files, then put each at its URL.

    ``write`` is ``to_tables`` with every argument but the path (and
    ``name_function``, for a ``*`` in ``url``) given; ``partitions`` is the
    frame's number of partitions (``None``: not a frame).  Raises before
    anything runs for what cannot be done to an object.

    Examples
    --------
    >>> import dask.array as da, dask_tables
    >>> dask_tables.to_tables(da.ones(4), "https://example.org/a.h5", "/x")
    Traceback (most recent call last):
    ...
    ValueError: https://example.org/a.h5: an HTTP server is read-only to dask_tables; ...
    """
    shown = display_url(url)
    _, _, key = split_url(url)
    refuse_read_only(url)
    if mode not in ("a", "w", "r+"):
        raise ValueError(f"{shown}: mode={mode!r}; give 'a' or 'w'")
    if append or region is not None or mode == "r+":
        given = "append=True" if append else "region=" if region is not None else "mode='r+'"
        raise ValueError(f"{shown}: {given} writes into an existing file; {_INTO_EXISTING}")
    urls = _object_urls(url, shown, node, partitions, name_function)
    options = StorageOptions(storage_options)
    targets = [RemoteFile(u, options) for u in urls]
    if mode != "w":
        _refuse_existing(targets)
    put_mode = "overwrite" if mode == "w" else "create"
    staging = _Staging()
    suffix = os.path.splitext(key)[1] or ".h5"
    if len(urls) == 1 and "*" not in url:
        local = os.path.join(staging.folder, os.path.basename(key) or "file.h5")
        locals_, given = [local], {}
    else:  # one local file per partition, part-00.h5...: what the URLs are named is the uploads' business
        local = os.path.join(staging.folder, f"part-*{suffix}")
        names = partition_names(len(urls))
        locals_, given = [local.replace("*", n) for n in names], {"name_function": names.__getitem__}
    if compute:
        try:
            write(local, compute=True, mode="w", **given)
            _upload_all(None, staging, locals_, targets, put_mode)
        finally:
            shutil.rmtree(staging.folder, ignore_errors=True)
        if partitions is None:  # an array
            return None
        return urls if len(urls) == partitions else [url] * partitions  # each partition's object
    written = write(local, compute=False, mode="w", **given)
    name = "to-tables-upload-" + tokenize(written, urls, put_mode)
    return delayed(_upload_all, pure=False)(written, staging, locals_, targets, put_mode, dask_key_name=name)


def _object_urls(
    url: str,
    shown: str,
    node: str | None,
    partitions: int | None,
    name_function: Callable[[int], str] | None,
) -> list[str]:
    """The URL of each object written: ``url``, or one per partition for a ``*`` in it."""
    if "*" not in url:
        return [url]
    if partitions is None:
        raise ValueError(f"{shown}: one object per partition ('*') is for data frames; give an array one URL")
    check_stars(url, node or "", shown)
    names = partition_names(partitions, name_function, stacklevel=5)
    return [url.replace("*", n) for n in names]


def _refuse_existing(targets: list[RemoteFile]) -> None:
    """:class:`FileExistsError` naming the first object already there (one HEAD each, concurrently)."""

    def exists(target: RemoteFile) -> bool:
        try:
            target.resolve()
        except FileNotFoundError:
            return False
        return True

    with concurrent.futures.ThreadPoolExecutor(min(len(targets), _UPLOADS)) as pool:
        found = [t for t, there in zip(targets, pool.map(exists, targets), strict=True) if there]
    if found:
        raise FileExistsError(
            f"{found[0].name}: the object exists; {_INTO_EXISTING}; mode='w' replaces it by a file "
            "holding only this write"
        )


_UPLOADS = 8  # objects put at once


def _upload_all(
    _: Any, staging: _Staging | _Folder, files: list[str], targets: list[RemoteFile], mode: str
) -> None:
    """Put each finished file at its target (``mode``: obstore's ``"create"`` or ``"overwrite"``).

    The first argument is the written files' task, so that this one runs
    after every file is complete.  The staging folder is removed.
    """
    try:
        if len(files) == 1:
            put_file(files[0], targets[0], mode)
            return
        with concurrent.futures.ThreadPoolExecutor(min(len(files), _UPLOADS)) as pool:
            for done in [pool.submit(put_file, f, t, mode) for f, t in zip(files, targets, strict=True)]:
                done.result()
    finally:
        shutil.rmtree(staging.folder, ignore_errors=True)
