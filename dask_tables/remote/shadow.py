"""The shadow of an object: a local sparse file holding exactly the bytes PyTables needs for metadata.

PyTables opens neither URLs nor file objects, and its HDF5 has no S3
driver.  So the metadata of an object is read once, by h5py walking it
through a file object that fetches aligned blocks by ranged GETs
(:class:`_Recorder`): every group, every attribute, every dataset's header,
every chunk index, the first chunk of each chunked dataset (which
:func:`dask_tables.array.verdict.direct_storage` decodes to check our
decoders) and small datasets in full.  Those bytes are written at their
offsets into a local file of the object's size, which PyTables then opens
as if it were the object: the same node classes, attributes (through the
pickle gate), table descriptions, pandas storers and chunk index.

Bytes that were not fetched must never read as data.  The stored chunks of
large datasets stay holes of the sparse file (they read as zeros, and are
never read through HDF5: the direct path fetches them from the object;
:attr:`Shadow.complete` names the datasets HDF5 may read); every other byte
not fetched is written with :data:`POISON`, which no HDF5 structure
accepts, so a byte HDF5 would need but was not fetched fails loudly
instead of reading as zeros (``tests/test_remote.py`` proves it in a child
process with two poisons).

Shadows are cached on local disk, one per object version (URL and ETag),
shared by the processes of a machine (one builds it, under an ``flock`` of
its ``.lock`` file, while the others wait; written to a temporary name,
then ``os.replace``-d), in the ``dask_tables.remote-cache-dir`` folder (default
``$DASK_TABLES_CACHE/remote`` or ``~/.cache/dask-tables/remote``), bounded by
``dask_tables.remote-cache-size`` (default 1 GiB, on-disk blocks counted;
least recently used shadows go first).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import json
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import NotHDF5FileError
from ..forks import after_fork_in_child
from ..hdf5.files import written_whole
from ..hdf5.fingerprint import Fingerprint
from .ranges import plan_requests
from .transport import RemoteFile

__all__ = ["POISON", "Shadow", "cache_dir", "shadow_of"]

POISON = b"\xa5"  # what a byte that was not fetched holds: no HDF5 signature, address or size accepts it
BLOCK = 64 * 2**10  # the walk fetches aligned blocks of this size
SMALL_DATASET = 256 * 2**10  # datasets stored in at most this many bytes are fetched in full
DEFAULT_CACHE_BYTES = 2**30
KEEP_RECENT = 600.0  # seconds: a shadow used this recently is never evicted (another process may read it)


def cache_dir() -> Path:
    """Where shadows live: ``dask_tables.remote-cache-dir``, ``$DASK_TABLES_CACHE/remote`` or ``~/.cache/dask-tables/remote``.

    Examples
    --------
    >>> cache_dir().name
    'remote'
    """
    import dask

    configured = dask.config.get("dask_tables.remote-cache-dir", None)
    if configured:
        return Path(configured)
    base = os.environ.get("DASK_TABLES_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "dask-tables"
    )
    return Path(base) / "remote"


def cache_limit() -> int:
    """The bound of the shadow cache in bytes on disk (``dask_tables.remote-cache-size``, default 1 GiB)."""
    import dask
    from dask.utils import parse_bytes

    value = dask.config.get("dask_tables.remote-cache-size", DEFAULT_CACHE_BYTES)
    return int(parse_bytes(value)) if isinstance(value, str) else int(value)


@dataclass(frozen=True)
class Shadow:
    """A shadow file on local disk and what it holds.

    Attributes
    ----------
    path : str
        The local file that PyTables opens in place of the object.
    fingerprint : Fingerprint
        The local file's fingerprint (for the chunk-index cache).
    complete : frozenset of str
        Datasets whose stored bytes are all in the file (HDF5 may read them).
    requests, fetched : int
        Requests made and bytes fetched to build it (0, 0 when found on disk).
    """

    path: str
    fingerprint: Fingerprint
    complete: frozenset[str]
    requests: int = 0
    fetched: int = 0


class _Recorder(io.RawIOBase):
    """A read-only file object over a :class:`RemoteFile`: fetches aligned blocks once and keeps them."""

    def __init__(self, remote: RemoteFile, block: int = BLOCK) -> None:
        super().__init__()
        assert remote.version is not None
        self.remote, self.block, self.size = remote, block, remote.version.size
        self.blocks: dict[int, memoryview] = {}
        self.position = 0
        self.requests = 0
        self.error: BaseException | None = None  # the first failed request (h5py hides it)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.position, io.SEEK_END: self.size}[whence]
        self.position = base + offset
        return self.position

    def fetch(self, start: int, stop: int) -> None:
        """Make sure bytes ``start..stop`` are held: the missing blocks, one request per run of them."""
        first, last = start // self.block, (max(stop, start + 1) - 1) // self.block
        missing = [k for k in range(first, last + 1) if k not in self.blocks]
        runs: list[list[int]] = []
        for k in missing:
            if runs and runs[-1][-1] == k - 1:
                runs[-1].append(k)
            else:
                runs.append([k])
        for run in runs:
            a, b = run[0] * self.block, min(self.size, (run[-1] + 1) * self.block)
            data = self.remote.get(a, b)
            self.requests += 1
            for k in run:
                self.blocks[k] = data[k * self.block - a : min(b, (k + 1) * self.block) - a]

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        n = max(0, min(len(view), self.size - self.position))
        if n == 0:
            return 0
        try:
            self.fetch(self.position, self.position + n)
        except BaseException as err:
            self.error = self.error or err
            raise
        done = 0
        while done < n:
            at = self.position + done
            k, inside = divmod(at, self.block)
            piece = self.blocks[k][inside : inside + n - done]
            view[done : done + len(piece)] = piece
            done += len(piece)
        self.position += n
        return n

    def held(self) -> Iterator[tuple[int, memoryview]]:
        for k in sorted(self.blocks):
            yield k * self.block, self.blocks[k]


def _walk(
    recorder: _Recorder,
) -> tuple[list[tuple[int, int]], list[tuple[int, int]], set[str], list[str]]:
    """h5py walks the whole file through ``recorder``: (ranges to fetch too, holes, complete datasets, nodes)."""
    import h5py

    names: list[str] = []
    extra: list[tuple[int, int]] = []
    holes: list[tuple[int, int]] = []
    complete: set[str] = set()

    def attributes(obj: Any) -> None:
        for name in list(obj.attrs):
            with contextlib.suppress(Exception):  # one h5py cannot convert: its bytes were read all the same
                obj.attrs[name]

    def visit(name: str, obj: Any) -> None:
        names.append("/" + name)
        attributes(obj)
        if not isinstance(obj, h5py.Dataset):
            return
        path = "/" + name
        dsid = obj.id
        layout = dsid.get_create_plist().get_layout()
        stored = dsid.get_storage_size()
        if layout == h5py.h5d.CHUNKED:
            chunks: list[tuple[tuple[int, ...], int, int]] = []
            dsid.chunk_iter(lambda info: chunks.append((info.chunk_offset, info.byte_offset, info.size)))
            small = stored <= SMALL_DATASET or len(chunks) <= 1  # the first chunk is fetched anyway
            for origin, offset, size in chunks:
                if small or not any(origin):
                    extra.append((offset, size))
                else:
                    holes.append((offset, size))
            if small:
                complete.add(path)
                _read_heap(obj)
        elif layout == h5py.h5d.CONTIGUOUS:
            offset = dsid.get_offset()
            if offset is None or stored <= SMALL_DATASET:
                complete.add(path)
                _read_heap(obj)
                if offset is not None:
                    extra.append((offset, stored))
            else:
                holes.append((offset, stored))
        else:  # compact: in the object header, already read
            complete.add(path)
            _read_heap(obj)

    try:
        with h5py.File(recorder, "r") as f:
            attributes(f)
            f.visititems(visit)
    except Exception as err:
        if recorder.error is not None:  # h5py reports a failed request as an HDF5 error: raise the request's
            raise recorder.error from None
        raise NotHDF5FileError(f"{recorder.remote.name}: not an HDF5 file, or damaged ({err})") from None
    if recorder.error is not None:
        raise recorder.error
    return extra, holes, complete, names


def _read_heap(dataset: Any) -> None:
    """Read a small dataset of variable-length values through the recorder: its global heap is fetched too.

    The dataset holds only references; the values (pandas' pickled object
    blocks, PyTables' VLArrays) live in the file's global heap.
    """
    if dataset.dtype.kind == "O" or dataset.dtype.hasobject:
        with contextlib.suppress(Exception):
            dataset[()]


def verify_shadow(path: str | os.PathLike[str], names: list[str], url: str) -> None:
    """Check that PyTables finds every node h5py found in the object (PyTables hides what it cannot read).

    PyTables leaves out of a group a child whose header it cannot read;
    a node missing here means bytes PyTables needed were not fetched, and
    the shadow is refused rather than showing a tree with a node less.

    Raises
    ------
    NotHDF5FileError
        PyTables cannot open the shadow, or misses a node.
    """
    import tables

    from ..registry import get_lock, synchronized_file

    try:
        with get_lock(), synchronized_file(os.fspath(path), "r") as h5:
            missing = [name for name in names if name not in h5]
    except (tables.HDF5ExtError, OSError) as err:
        raise NotHDF5FileError(f"{url}: the metadata fetched does not open in PyTables ({err})") from None
    if missing:
        raise NotHDF5FileError(
            f"{url}: PyTables does not find {len(missing)} of the object's nodes in the metadata fetched "
            f"(the first: {missing[0]}); refusing to read a tree with nodes missing"
        )


def _spans(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """``(offset, size)`` ranges as sorted, merged ``(start, stop)`` spans."""
    merged: list[list[int]] = []
    for start, stop in sorted((o, o + s) for o, s in ranges if s > 0):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], stop)
        else:
            merged.append([start, stop])
    return [(a, b) for a, b in merged]


def _gaps(covered: list[tuple[int, int]], size: int) -> list[tuple[int, int]]:
    """The spans of ``0..size`` not in ``covered`` (sorted, merged)."""
    gaps, at = [], 0
    for start, stop in covered:
        if start > at:
            gaps.append((at, min(start, size)))
        at = max(at, stop)
    if at < size:
        gaps.append((at, size))
    return [(a, b) for a, b in gaps if b > a]


def _write_poison(fd: int, start: int, stop: int, poison: bytes) -> None:
    piece = poison * min(stop - start, 2**20)
    while start < stop:
        start += os.pwrite(fd, piece[: stop - start], start)


def _key(remote: RemoteFile) -> str:
    assert remote.version is not None
    text = json.dumps([remote.url.split("?")[0], list(remote.version)])
    return hashlib.sha256(text.encode()).hexdigest()[:40]


def build_shadow(
    remote: RemoteFile, path: Path, poison: bytes = POISON, poison_holes: bool = False
) -> Shadow:
    """Fetch the metadata of ``remote`` and write its shadow at ``path`` (atomically).

    ``poison_holes`` fills the stored chunks of large datasets with
    ``poison`` too (a test: no HDF5 read of the metadata reads them).
    """
    assert remote.version is not None
    recorder = _Recorder(remote)
    extra, holes, complete, names = _walk(recorder)
    requests = plan_requests(extra, max_gap=BLOCK)
    pieces = list(zip(requests, remote.fetch(requests), strict=True)) if requests else []
    held = [(start, data) for start, data in recorder.held()] + [(r.start, d) for r, d in pieces]
    covered = _spans([(start, len(data)) for start, data in held])
    avoid = covered if poison_holes else _spans([(a, b - a) for a, b in covered] + holes)
    path.parent.mkdir(parents=True, exist_ok=True)
    with written_whole(path) as temporary:
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            os.ftruncate(fd, remote.version.size)
            for start, stop in _gaps(avoid, remote.version.size):
                _write_poison(fd, start, stop, poison)
            for start, data in held:
                os.pwrite(fd, data, start)
        finally:
            os.close(fd)
        verify_shadow(temporary, names, remote.name)
        manifest = {"url": remote.name, "version": list(remote.version), "complete": sorted(complete)}
        path.with_suffix(".json").write_text(json.dumps(manifest))
    fetched = sum(len(d) for _, d in held)
    return Shadow(
        str(path), Fingerprint.of(path), frozenset(complete), recorder.requests + len(pieces), fetched
    )


_shadows_lock = threading.Lock()
# Guarded by _shadows_lock: this process's shadows, by (pid, url, version). An entry is used only
# while its file is the one on disk (_still_there), and each use keeps it recently used, which
# eviction spares; one evicted, or evicted and built again by another process, is found again.
_shadows: dict[tuple[Any, ...], Shadow] = {}
# Held while a shadow is built in this process: threads asking for one at once wait for one build.
_build_lock = threading.Lock()
# Guarded by _build_lock: the descriptors of the machine-wide build locks this process holds (see
# _building), which a forked child must close: an inherited one would hold the lock in the child.
_held: list[int] = []


@after_fork_in_child
def _after_fork() -> None:
    global _shadows_lock, _build_lock
    _shadows_lock, _build_lock = threading.Lock(), threading.Lock()  # a parent's thread may hold them
    for fd in _held:
        with contextlib.suppress(OSError):
            os.close(fd)
    _held.clear()


@contextlib.contextmanager
def _building(path: Path) -> Iterator[None]:
    """Hold the machine-wide lock of the shadow ``path`` (an ``flock`` of its ``.lock`` file).

    One process builds a shadow; another asking for it meanwhile waits, then
    finds it on disk.  Built twice, the second file would replace the first
    under a process reading it, whose fingerprint of it (and chunk indexes)
    would then name a changed file.  Called with ``_build_lock`` held.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = path.with_suffix(".lock")
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            if os.fstat(fd).st_ino == os.stat(lock).st_ino:
                break  # the lock file is still the one at its name: this process holds it
        except FileNotFoundError:
            pass
        os.close(fd)  # eviction removed it meanwhile (an orphan): lock the one at its name now
    _held.append(fd)
    try:
        yield
    finally:
        _held.remove(fd)
        os.close(fd)  # releases the flock


def shadow_of(remote: RemoteFile) -> Shadow:
    """The shadow of ``remote``'s version: this process's, else the machine's cache, else built.

    Examples
    --------
    A built shadow opens in PyTables; see ``docs/remote.rst``.
    """
    key = (os.getpid(), remote.url, remote.version)
    with _shadows_lock:
        found = _shadows.get(key)
    if found is not None and _still_there(found):
        return found
    with _build_lock:
        with _shadows_lock:
            found = _shadows.get(key)
        if found is not None and _still_there(found):
            return found
        path = cache_dir() / (_key(remote) + ".h5")
        with _building(path):
            shadow = _from_disk(path)
            built = shadow is None
            if shadow is None:
                shadow = build_shadow(remote, path)
            _touch(path)
        if built:
            _evict(path.parent, cache_limit(), keep=path)
        with _shadows_lock:
            _shadows[key] = shadow
    return shadow


def _still_there(shadow: Shadow) -> bool:
    """Whether this process's ``shadow`` is still the file on disk; if so, mark it used when it was not lately.

    Another process may have evicted it (its use time is the manifest's,
    so a process that only hits its own cache must refresh it, or the
    shadow it reads becomes evictable after :data:`KEEP_RECENT`) and
    another may have built it again: a new file, whose fingerprint the
    chunk-index cache would take for a changed file.
    """
    path = Path(shadow.path)
    try:
        if Fingerprint.of(path) != shadow.fingerprint:
            return False
        used = path.with_suffix(".json").stat().st_mtime
    except OSError:
        return False
    if time.time() - used > KEEP_RECENT / 4:
        _touch(path)
    return True


def _from_disk(path: Path) -> Shadow | None:
    try:
        manifest = json.loads(path.with_suffix(".json").read_text())
        return Shadow(str(path), Fingerprint.of(path), frozenset(manifest["complete"]))
    except (OSError, ValueError, KeyError):
        return None


def _touch(path: Path) -> None:
    """Mark a shadow used (its manifest's time: the shadow itself keeps its fingerprint)."""
    with contextlib.suppress(OSError):
        os.utime(path.with_suffix(".json"))


def _evict(folder: Path, limit: int, keep: Path) -> None:
    """Remove the least recently used shadows until the folder holds at most ``limit`` bytes on disk."""
    entries = []
    for shadow in folder.glob("*.h5"):
        try:
            used = shadow.with_suffix(".json").stat().st_mtime
            entries.append((used, shadow, shadow.stat().st_blocks * 512))
        except OSError:
            continue
    total = sum(size for _, _, size in entries)
    now = time.time()
    for used, shadow, size in sorted(entries):
        if total <= limit:
            break
        if shadow == keep or now - used < KEEP_RECENT:
            continue
        for victim in (shadow, shadow.with_suffix(".json"), shadow.with_suffix(".lock")):
            with contextlib.suppress(OSError):
                victim.unlink()
        total -= size
    for lock in folder.glob("*.lock"):  # left by builds that failed (not an HDF5 file...): no shadow
        with contextlib.suppress(OSError):
            if not lock.with_suffix(".h5").exists() and now - lock.stat().st_mtime > KEEP_RECENT:
                lock.unlink()


def clear_process_cache() -> None:
    """Forget this process's shadows (the files on disk stay)."""
    with _shadows_lock:
        _shadows.clear()


def open_shadow(url: str, storage_options: Any = None) -> tuple[RemoteFile, Shadow]:
    """The object at ``url`` with its current version (one HEAD request), and its shadow.

    For code that opens the object's metadata with PyTables or pandas
    (``HDFStore`` of ``shadow.path``): only datasets in ``shadow.complete``
    may be read through HDF5 (see :func:`require_complete`).

    Examples
    --------
    >>> remote, shadow = open_shadow("https://example.org/data.h5")  # doctest: +SKIP
    >>> import tables; tables.open_file(shadow.path).root  # doctest: +SKIP
    """
    from .urls import StorageOptions

    remote = RemoteFile(url, StorageOptions(storage_options)).resolve()
    return remote, shadow_of(remote)


def require_complete(shadow: Shadow, nodes: Iterator[str] | list[str], name: str, what: str) -> None:
    """Raise ``ValueError`` unless every dataset of ``nodes`` is stored whole in ``shadow``.

    ``what`` says who would read them (``"pandas reads the index"``); the
    message names the object ``name`` and the first node missing.

    Examples
    --------
    >>> shadow = Shadow("s.h5", Fingerprint(0, 0, 0, 0, 0), frozenset({"/df/axis0"}))
    >>> require_complete(shadow, ["/df/axis0"], "s3://b/a.h5", "pandas reads it")
    >>> require_complete(shadow, ["/df/axis1"], "s3://b/a.h5", "pandas reads it")
    Traceback (most recent call last):
    ...
    ValueError: s3://b/a.h5: node /df/axis1: pandas reads it through HDF5, which needs the node's stored bytes on local disk, and it is stored in more than 256 KiB (not fetched with the metadata); copy the file to local disk to read it
    """
    for node in nodes:
        if node not in shadow.complete:
            raise ValueError(
                f"{name}: node {node}: {what} through HDF5, which needs the node's stored bytes on local "
                "disk, and it is stored in more than 256 KiB (not fetched with the metadata); copy the "
                "file to local disk to read it"
            )


def metadata_path(path: str, storage_options: Any = None) -> str:
    """What PyTables or pandas opens for the metadata of ``path``: the shadow of a URL, else ``path``.

    Examples
    --------
    >>> metadata_path("data.h5")
    'data.h5'
    """
    from .urls import is_url, local_path

    if not is_url(path):
        return local_path(path)
    return open_shadow(path, storage_options)[1].path
