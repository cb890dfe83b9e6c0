"""Writes of new objects: the file is built whole on local disk, then uploaded in one ``put``.

An object in a bucket cannot be changed in place, and HDF5 cannot write
through ranged requests; so ``to_tables(x, "s3://bucket/key.h5", ...)``
runs the local write (:mod:`dask_tables.write.engine`, all or nothing) into
a file in a temporary folder, and only once it is complete puts it into
the store: the object appears whole or not at all.  By default the put is
conditional (``If-None-Match: *``): an object that appeared at that key
while the file was written is left as it is and the write raises
:class:`FileExistsError`; ``mode="w"`` replaces an existing object (a
multipart upload for large files).  Writing into an existing object
(``append=True``, ``region=``, a node added to it) is refused before
anything runs: download it, write locally, upload.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import weakref
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from dask.base import tokenize
from dask.delayed import Delayed, delayed

from ..remote.transport import RemoteFile
from ..remote.urls import StorageOptions, display_url, split_url

__all__ = ["upload_file", "write_object"]

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
) -> Delayed | None:
    """``write(local_path, compute=..., mode="w")`` into a temporary file, then put it at ``url``.

    ``write`` is ``to_tables`` with every argument but the path given.
    Raises before anything runs for what cannot be done to an object.

    Examples
    --------
    >>> import dask.array as da, dask_tables
    >>> dask_tables.to_tables(da.ones(4), "https://example.org/a.h5", "/x")
    Traceback (most recent call last):
    ...
    ValueError: https://example.org/a.h5: an HTTP server is read-only to dask_tables; ...
    """
    shown = display_url(url)
    kind, _, key = split_url(url)
    if kind == "http":
        raise ValueError(
            f"{shown}: an HTTP server is read-only to dask_tables; write to a local file, "
            "or to an s3://, gs:// or az:// URL"
        )
    if mode not in ("a", "w", "r+"):
        raise ValueError(f"{shown}: mode={mode!r}; give 'a' or 'w'")
    if append or region is not None or mode == "r+":
        given = "append=True" if append else "region=" if region is not None else "mode='r+'"
        raise ValueError(f"{shown}: {given} writes into an existing file; {_INTO_EXISTING}")
    if "*" in key:
        raise ValueError(
            f"{shown}: one object per partition ('*') is not written to URLs yet; write the files "
            "to a local folder and upload them"
        )
    options = StorageOptions(storage_options)
    target = RemoteFile(url, options)
    if mode != "w":
        try:
            target.resolve()
        except FileNotFoundError:
            pass
        else:
            raise FileExistsError(
                f"{shown}: the object exists; {_INTO_EXISTING}; mode='w' replaces it by a file "
                "holding only this write"
            )
    put_mode = "overwrite" if mode == "w" else "create"
    staging = _Staging()
    local = os.path.join(staging.folder, os.path.basename(key) or "file.h5")
    if compute:
        try:
            write(local, compute=True, mode="w")
            _upload(None, staging, local, target, put_mode)
        finally:
            shutil.rmtree(staging.folder, ignore_errors=True)
        return None
    written = write(local, compute=False, mode="w")
    name = "to-tables-upload-" + tokenize(written, url, put_mode)
    return delayed(_upload, pure=False)(written, staging, local, target, put_mode, dask_key_name=name)


def _upload(_: Any, staging: _Staging | _Folder, local: str, target: RemoteFile, mode: str) -> None:
    """Put the finished file ``local`` at ``target`` (``mode``: obstore's ``"create"`` or ``"overwrite"``).

    The first argument is the written file's task, so that this one runs after it.
    """
    try:
        upload_file(local, target, mode)
    finally:
        shutil.rmtree(staging.folder, ignore_errors=True)


def upload_file(local: str | os.PathLike[str], target: RemoteFile, mode: str = "create") -> None:
    """Put the complete local file ``local`` at ``target`` in one put (multipart where large).

    ``mode="create"`` puts only if no object is there (``If-None-Match: *``);
    ``"overwrite"`` replaces one.

    Raises
    ------
    FileExistsError
        ``mode="create"`` and an object is there: it is left as it is.

    Examples
    --------
    >>> upload_file("a.h5", RemoteFile("s3://bucket/a.h5", StorageOptions()))  # doctest: +SKIP
    """
    import obstore

    store, key = target._located()
    try:
        obstore.put(store, key, Path(local), mode=mode)  # type: ignore[arg-type]
    except obstore.exceptions.AlreadyExistsError:
        raise FileExistsError(
            f"{target.name}: an object appeared there while the file was written; it was left as "
            "it is (mode='w' replaces it)"
        ) from None
    except Exception as err:
        raise target._error(err, "PUT") from None
