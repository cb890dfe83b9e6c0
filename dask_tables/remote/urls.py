"""URLs: which paths are URLs, how they are shown, and ``storage_options`` kept secret.

A path such as ``s3://bucket/run-1.h5``, ``gs://...``, ``az://...`` or
``https://host/data.h5`` names an object that dask_tables reads by byte
ranges (:mod:`dask_tables.remote.transport`); ``file://`` URLs are local
paths.  Messages show a URL by :func:`display_url`: no password, no query
string (a presigned URL's signature), and :class:`StorageOptions` never
shows a value in its ``repr``.
"""

from __future__ import annotations

import os
import re
import urllib.parse
from collections.abc import Iterator, Mapping
from typing import Any

__all__ = ["SCHEMES", "StorageOptions", "display_url", "is_url", "local_path", "split_url"]

_URL = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
# The schemes read by ranged GETs (obstore's stores), and what each is called there.
SCHEMES = {
    "s3": "s3",
    "s3a": "s3",
    "gs": "gs",
    "gcs": "gs",
    "az": "az",
    "abfs": "az",
    "abfss": "az",
    "azure": "az",
    "http": "http",
    "https": "http",
}


def is_url(path: Any) -> bool:
    """Whether ``path`` is a URL of an object (not a local path, not ``file://``).

    Examples
    --------
    >>> is_url("s3://bucket/a.h5"), is_url("https://host/a.h5"), is_url("data/a.h5"), is_url("file:///tmp/a.h5")
    (True, True, False, False)
    """
    if isinstance(path, os.PathLike):
        path = os.fspath(path)
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    if not isinstance(path, str):
        return False
    match = _URL.match(path)
    return match is not None and match.group(1).lower() != "file"


def local_path(path: str) -> str:
    """A ``file://`` URL as a local path; any other path as it is.

    Examples
    --------
    >>> local_path("file:///tmp/a%20b.h5"), local_path("data.h5")
    ('/tmp/a b.h5', 'data.h5')
    """
    if path.lower().startswith("file://"):
        return urllib.parse.unquote(urllib.parse.urlsplit(path).path)
    return path


def split_url(url: str) -> tuple[str, str, str]:
    """``(kind, base, key)``: the store kind, its base URL and the object's key.

    The kind is ``"s3"``, ``"gs"``, ``"az"`` or ``"http"`` (obstore's stores;
    an HTTP URL with a query string, such as a presigned URL, is its own
    base with an empty key, so that every request sends the query),
    or ``"fsspec"`` for any other scheme fsspec reads
    (:mod:`dask_tables.remote.fsspec_store`), whose base is ``"SCHEME://"``.

    Raises
    ------
    ValueError
        A scheme dask_tables does not read, or no object named.

    Examples
    --------
    >>> split_url("s3://bucket/runs/a.h5")
    ('s3', 's3://bucket', 'runs/a.h5')
    >>> split_url("https://example.org/data/a.h5")
    ('http', 'https://example.org', 'data/a.h5')
    >>> split_url("https://example.org/data/a.h5?X-Amz-Signature=abc")  # the base is the whole URL
    ('http', 'https://example.org/data/a.h5?X-Amz-Signature=abc', '')
    >>> split_url("sftp://host/data/a.h5")
    ('fsspec', 'sftp://', 'host/data/a.h5')
    """
    parts = urllib.parse.urlsplit(url)
    kind = SCHEMES.get(parts.scheme.lower())
    if kind is None:
        return _fsspec_url(url, parts.scheme.lower())
    key = urllib.parse.unquote(parts.path.lstrip("/"))
    if not parts.netloc or not key:
        raise ValueError(f"{display_url(url)}: the URL names no object (expected {parts.scheme}://HOST/KEY)")
    if kind == "http" and parts.query:  # a presigned URL: the query goes with every request, as given
        return kind, urllib.parse.urlunsplit(parts._replace(fragment="")), ""
    return kind, f"{parts.scheme}://{parts.netloc}", key


def _fsspec_url(url: str, scheme: str) -> tuple[str, str, str]:
    """``("fsspec", "SCHEME://", rest)`` for a scheme fsspec reads; ``ValueError`` for any other."""
    from .fsspec_store import knows

    if scheme in ("file", "local") or not knows(scheme):
        raise ValueError(
            f"{display_url(url)}: dask_tables reads s3://, gs://, az://, http(s):// and the URLs "
            f"fsspec reads, and fsspec knows no {scheme}://; copy the file to local disk or to a store"
        )
    rest = url[len(scheme) + 3 :]
    if not rest.strip("/"):
        raise ValueError(f"{display_url(url)}: the URL names no object")
    return "fsspec", f"{scheme}://", rest


def display_url(url: str) -> str:
    """``url`` as messages show it: without a password or a query string (which may hold a signature).

    Each link of a chained fsspec URL (``zip://a.h5::s3://...``) too.

    Examples
    --------
    >>> display_url("https://user:hunter2@host/a.h5?X-Amz-Signature=abc")
    'https://user@host/a.h5'
    >>> display_url("s3://bucket/a.h5")
    's3://bucket/a.h5'
    >>> display_url("zip://a.h5::ftp://me:pw@host/b.zip")
    'zip://a.h5::ftp://me@host/b.zip'
    """
    return "::".join(_display_link(link) for link in url.split("::"))


def _display_link(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        user, host = netloc.rsplit("@", 1)
        netloc = user.split(":", 1)[0] + "@" + host
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _url_secrets(url: str) -> list[str]:
    """The passwords and query strings of ``url`` (each link of a chain), and each query value of 4
    characters or more: as written and percent-decoded (a server's error text may quote any of them)."""
    found: set[str] = set()
    for link in url.split("::") if url else []:
        parts = urllib.parse.urlsplit(link)
        password = parts.netloc.rsplit("@", 1)[0].partition(":")[2] if "@" in parts.netloc else ""
        values = [v for _, v in urllib.parse.parse_qsl(parts.query, keep_blank_values=True) if len(v) >= 4]
        for secret in (password, parts.query, *values):
            found.update({secret, urllib.parse.unquote(secret), urllib.parse.quote(secret, safe="")})
    return [secret for secret in found if secret]


# Options whose values are not secret: messages may show them (where to connect, and how).
_NOT_SECRET = frozenset({"endpoint_url", "aws_endpoint", "region", "region_name", "aws_region", "anon"})


class StorageOptions(Mapping[str, Any]):
    """``storage_options=`` as fsspec and pandas take them, with values never shown.

    A read-only mapping that pickles (tasks carry it to workers) but whose
    ``repr`` and ``str`` show only the keys, so a credential never appears
    in a message, a repr, a log line or a dask graph's display.

    Examples
    --------
    >>> options = StorageOptions({"key": "AKIA...", "secret": "hunter2"})
    >>> options
    StorageOptions(key=***, secret=***)
    >>> options["secret"]
    'hunter2'
    >>> "hunter2" in repr(options) or "hunter2" in str(options)
    False
    """

    __slots__ = ("_items",)

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        if options is not None and not isinstance(options, Mapping):
            raise TypeError(f"storage_options must be a dict, not {type(options).__name__}")
        self._items = dict(options or {})

    def __getitem__(self, key: str) -> Any:
        return self._items[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return "StorageOptions(" + ", ".join(f"{k}=***" for k in self._items) + ")"

    __str__ = __repr__

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self._items,))

    def __hash__(self) -> int:
        return hash(repr(sorted(self._items.items(), key=lambda kv: kv[0])))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, StorageOptions) and self._items == other._items

    def secrets(self) -> list[str]:
        """Every text value of the options (nested ones too): what a message must never show."""
        found: list[str] = []

        def walk(value: Any, key: str = "") -> None:
            if key in _NOT_SECRET:
                return
            if isinstance(value, str) and len(value) >= 4:
                found.append(value)
            elif isinstance(value, Mapping):
                for k, v in value.items():
                    walk(v, str(k))
            elif isinstance(value, (list, tuple)):
                for v in value:
                    walk(v)

        walk(self._items)
        return found

    def redact(self, text: str, url: str = "") -> str:
        """``text`` with every secret of the options, and of ``url``, replaced by ``***``.

        A URL's secrets are its password and its query string (which may
        hold a signature), as given and percent-decoded: a store's own error
        text may quote the whole URL.

        Examples
        --------
        >>> StorageOptions({"secret": "hunter2"}).redact("bad secret hunter2")
        'bad secret ***'
        >>> url = "https://me:pa%24s@host/a.h5?sig=abc123"
        >>> StorageOptions().redact(f"GET {url} failed; pa$s", url)
        'GET https://me:***@host/a.h5?*** failed; ***'
        >>> StorageOptions().redact("<SignatureProvided>abc123</SignatureProvided>", url)
        '<SignatureProvided>***</SignatureProvided>'
        """
        for secret in sorted([*self.secrets(), *_url_secrets(url)], key=len, reverse=True):
            text = text.replace(secret, "***")
        return text
