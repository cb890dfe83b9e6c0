"""A finished local file put at a URL: the object appears whole or not at all.

How the file goes up depends on what the write may do to an object there
(``mode``, obstore's :class:`~obstore.PutMode`):

- ``"create"`` (``to_tables``' default, never replace an object): one
  conditional ``PUT`` (``If-None-Match: *``), whose body is the file mapped
  into memory: its bytes come from the page cache and are never copied into
  the process's heap (obstore 0.12 has no conditional multipart upload, and
  given a path it reads the whole file into memory first).  Measured on a
  200 MB file against moto's server: peak anonymous memory +256 MiB given
  the path, +316 MiB given an open file, +0 MiB given the mapped file.
- A file over :data:`SINGLE_PUT_LIMIT` (what S3 and Azure take in one
  ``PUT``) cannot go up in one conditional request: a ``HEAD`` first
  raises :class:`FileExistsError` if the object exists, then a multipart
  upload streams the file; an object that appears at that key during the
  upload is replaced (the window is the upload's duration).
- ``"overwrite"`` (``mode="w"``): obstore's multipart upload, streamed from
  the file in 5 MiB parts (a single ``PUT`` up to 5 MiB).

A multipart upload, too, makes the object appear only when it completes.
"""

from __future__ import annotations

import mmap
import os
from pathlib import Path

from ..remote.transport import RemoteFile
from ..remote.urls import display_url, split_url

__all__ = ["SINGLE_PUT_LIMIT", "put_file", "refuse_read_only"]

SINGLE_PUT_LIMIT = 5000 * 2**20  # Azure's largest Put Blob; S3's largest PUT is 5 GiB


def refuse_read_only(url: str) -> None:
    """Raise ``ValueError`` for a URL dask_tables only reads: HTTP servers, and schemes read through fsspec.

    Writes go where an upload appears whole or not at all: s3://, gs://, az://.

    Examples
    --------
    >>> refuse_read_only("s3://bucket/a.h5")
    >>> refuse_read_only("sftp://host/a.h5")
    Traceback (most recent call last):
    ...
    ValueError: sftp://host/a.h5: dask_tables reads sftp:// through fsspec, and writes only where ...
    """
    kind = split_url(url)[0]
    if kind == "http":
        raise ValueError(
            f"{display_url(url)}: an HTTP server is read-only to dask_tables; write to a local file, "
            "or to an s3://, gs:// or az:// URL"
        )
    if kind == "fsspec":
        scheme = url.split("://", 1)[0]
        raise ValueError(
            f"{display_url(url)}: dask_tables reads {scheme}:// through fsspec, and writes only where an "
            "upload appears whole or not at all (s3://, gs://, az://); write to a local file, then copy it"
        )


def put_file(local: str, target: RemoteFile, mode: str) -> None:
    """Put the finished file ``local`` at ``target``; ``mode`` is ``"create"`` or ``"overwrite"``.

    Raises
    ------
    FileExistsError
        ``mode="create"`` and an object is at that key (it is left as it is).
    OSError
        The upload failed (the message names the URL, never a secret).

    Examples
    --------
    >>> from dask_tables.remote.urls import StorageOptions
    >>> put_file("data.h5", RemoteFile("s3://bucket/a.h5", StorageOptions({})), mode="append")
    Traceback (most recent call last):
    ...
    ValueError: s3://bucket/a.h5: mode='append'; give 'create' or 'overwrite'
    """
    import obstore

    if mode not in ("create", "overwrite"):
        raise ValueError(f"{target.name}: mode={mode!r}; give 'create' or 'overwrite'")
    store, key = target._located()
    size = os.path.getsize(local)
    try:
        if mode == "overwrite":
            obstore.put(store, key, Path(local), mode="overwrite")
        elif size > SINGLE_PUT_LIMIT:
            _refuse_existing(target)
            obstore.put(store, key, Path(local), mode="overwrite")
        else:
            _put_mapped(store, key, local, size)
    except obstore.exceptions.AlreadyExistsError:
        raise FileExistsError(
            f"{target.name}: an object appeared there while the file was written; it was left as "
            "it is (mode='w' replaces it)"
        ) from None
    except (FileExistsError, ValueError):
        raise
    except Exception as err:
        raise target._error(err, "PUT") from None


def _put_mapped(store: object, key: str, local: str, size: int) -> None:
    """One conditional ``PUT`` of the file, its body mapped from the page cache (no copy in memory)."""
    import obstore

    if size == 0:
        obstore.put(store, key, b"", mode="create")  # type: ignore[arg-type]
        return
    with (
        open(local, "rb") as f,
        mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mapped,
        memoryview(mapped) as body,
    ):
        obstore.put(store, key, body, mode="create", use_multipart=False)  # type: ignore[arg-type]


def _refuse_existing(target: RemoteFile) -> None:
    """``FileExistsError`` if an object is at ``target`` (the check before an unconditional upload)."""
    try:
        target.resolve()
    except FileNotFoundError:
        return
    raise FileExistsError(
        f"{target.name}: an object appeared there while the file was written; it was left as "
        "it is (mode='w' replaces it)"
    )
