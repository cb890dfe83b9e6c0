"""Objects of every other scheme fsspec reads (``sftp://``, ``hdfs://``, ``ftp://``, ``memory://``...).

s3://, gs://, az:// and http(s):// go through obstore
(:mod:`dask_tables.remote.transport`), which sends every ranged GET
conditional on the object's version.  Any other scheme that fsspec knows is
read through its filesystem: ``info`` gives the version (ETag, version id
or generation, size, modification time, whichever the filesystem reports),
``cat_ranges`` the bytes.  fsspec cannot make a read conditional, so
:class:`~dask_tables.remote.transport.RemoteFile` asks for the version again
after each batch of ranges and raises
:class:`~dask_tables.FileChangedError` if it moved: bytes of a replaced
object are never decoded, at the cost of one more request a batch.

Writes stay with the stores whose uploads appear whole or not at all.
"""

from __future__ import annotations

import datetime
import urllib.parse
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["cat_ranges", "filesystem", "glob", "head", "knows"]

# What fsspec's filesystems call an object's version and its modification time, by preference.
_ETAGS = ("ETag", "etag", "e_tag", "md5Hash", "checksum")
_VERSIONS = ("VersionId", "version_id", "generation", "version")
_MODIFIED = ("LastModified", "last_modified", "mtime", "modified", "updated", "created", "modify")


def knows(scheme: str) -> bool:
    """Whether fsspec has a filesystem for ``scheme`` (its package may still need installing).

    Examples
    --------
    >>> knows("memory"), knows("sftp"), knows("nosuch")
    (True, True, False)
    """
    import fsspec

    return scheme in fsspec.available_protocols()


def filesystem(url: str, options: Mapping[str, Any]) -> tuple[Any, str]:
    """fsspec's filesystem for ``url`` with ``options``, and the object's path there.

    fsspec keeps one instance per arguments, process and thread.

    Raises
    ------
    ImportError
        The scheme's package is not installed (the message says which).

    Examples
    --------
    >>> fs, path = filesystem("memory://runs/a.h5", {})
    >>> type(fs).__name__, path
    ('MemoryFileSystem', '/runs/a.h5')
    """
    from fsspec.core import url_to_fs

    return url_to_fs(url, **dict(options))


def head(fs: Any, path: str) -> tuple[str | None, str | None, int, str]:
    """``(etag, version, size, last_modified)`` of the object at ``path``, asked anew (no cached listing).

    Raises
    ------
    FileNotFoundError
        No object there, or a directory.

    Examples
    --------
    >>> fs, path = filesystem("memory://runs/a.h5", {})
    >>> fs.pipe(path, b"0123456789")
    >>> head(fs, path)[2]
    10
    """
    fs.invalidate_cache(path)
    info = fs.info(path)
    if info.get("type", "file") != "file":
        raise FileNotFoundError(f"{path} is a {info.get('type')}, not an object")
    return (
        _first(info, _ETAGS),
        _first(info, _VERSIONS),
        int(info["size"]),
        _first(info, _MODIFIED) or "",
    )


def _first(info: Mapping[str, Any], names: Sequence[str]) -> str | None:
    for name in names:
        value = info.get(name)
        if value is not None and value != "":
            return value.isoformat() if isinstance(value, datetime.datetime) else str(value)
    return None


def cat_ranges(fs: Any, path: str, requests: Sequence[tuple[int, int]]) -> list[memoryview]:
    """The bytes of each ``(start, stop)`` range of the object at ``path`` (concurrent where fsspec is async).

    Examples
    --------
    >>> fs, path = filesystem("memory://runs/a.h5", {})
    >>> fs.pipe(path, b"0123456789")
    >>> [bytes(b) for b in cat_ranges(fs, path, [(0, 2), (8, 10)])]
    [b'01', b'89']
    """
    starts = [start for start, _ in requests]
    stops = [stop for _, stop in requests]
    found = fs.cat_ranges([path] * len(requests), starts, stops, on_error="raise")
    return [memoryview(data) for data in found]


def glob(fs: Any, url: str) -> list[str]:
    """The URLs of the objects that match the pattern ``url`` (of the filesystem ``fs``), sorted.

    Examples
    --------
    >>> fs, path = filesystem("memory://runs/a.h5", {})
    >>> fs.pipe(path, b"0123456789")
    >>> glob(fs, "memory://runs/*.h5")
    ['memory:///runs/a.h5']
    """
    parts = urllib.parse.urlsplit(url)
    # A filesystem that takes its host from the URL (ftp://host:port/path) lists paths without it.
    from_url = type(fs)._get_kwargs_from_urls(url)
    fs.invalidate_cache()
    found = [path for path in fs.glob(fs._strip_protocol(url)) if fs.isfile(path)]
    if from_url:
        return sorted(f"{parts.scheme}://{parts.netloc}/{path.lstrip('/')}" for path in found)
    return sorted(fs.unstrip_protocol(path) for path in found)
