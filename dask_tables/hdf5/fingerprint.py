"""File fingerprints: the identity and version of a file on disk."""

from __future__ import annotations

import os
from typing import NamedTuple

import tables.file as _tables_file

from ..errors import REBUILD_ARRAY, FileChangedError, FileLockedError
from ..registry import get_lock


class Fingerprint(NamedTuple):
    """Device, inode, size, modification and status-change times (ns) of a file.

    Two equal fingerprints mean "the same file, not modified": replacing the
    file changes the inode, and writing to it changes the size or the
    modification time, and always the status-change time, which no program
    can set back (``touch -r``, ``cp -p`` and ``rsync -t`` restore the
    modification time only).

    Examples
    --------
    >>> with open("example.bin", "wb") as f:
    ...     _ = f.write(b"abc")
    >>> fp = Fingerprint.of("example.bin")
    >>> fp.size
    3
    >>> fp == Fingerprint.of("example.bin")
    True
    """

    device: int
    inode: int
    size: int
    mtime_ns: int
    ctime_ns: int

    @classmethod
    def of(cls, path: str | os.PathLike[str]) -> Fingerprint:
        """Return the fingerprint of the file at ``path`` (``os.stat`` errors propagate)."""
        return cls.from_stat(os.stat(path))

    @classmethod
    def from_stat(cls, st: os.stat_result) -> Fingerprint:
        """The fingerprint in an ``os.stat``/``os.fstat`` result."""
        return cls(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)

    def describe_change(self, new: Fingerprint) -> str:
        """Say in words how ``new`` differs from this fingerprint.

        Examples
        --------
        >>> Fingerprint(1, 2, 10, 5, 5).describe_change(Fingerprint(1, 2, 20, 6, 6))
        'size 10 -> 20, modified'
        >>> Fingerprint(1, 2, 10, 5, 5).describe_change(Fingerprint(1, 3, 10, 5, 5))
        'replaced by another file'
        >>> Fingerprint(1, 2, 10, 5, 5).describe_change(Fingerprint(1, 2, 10, 5, 7))
        'modified, modification time set back'
        """
        if (new.device, new.inode) != (self.device, self.inode):
            return "replaced by another file"
        changes = []
        if new.size != self.size:
            changes.append(f"size {self.size} -> {new.size}")
        if new.mtime_ns != self.mtime_ns:
            changes.append("modified")
        elif new.ctime_ns != self.ctime_ns:
            changes.append("modified, modification time set back")
        return ", ".join(changes) or "unchanged"


def check_unchanged(path: str, node: str, fingerprint: Fingerprint, now: Fingerprint | None = None) -> None:
    """Raise :class:`~dask_tables.FileChangedError` unless ``path`` (or ``now``) matches ``fingerprint``.

    Parameters
    ----------
    path, node : str
        The file, and the node read from it (for the message).
    fingerprint : Fingerprint
        The file as it must be.
    now : Fingerprint, optional
        The file as it is (say, from ``os.fstat`` of an open descriptor);
        by default ``os.stat(path)``.

    Examples
    --------
    >>> with open("example.bin", "wb") as f:
    ...     _ = f.write(b"abc")
    >>> fp = Fingerprint.of("example.bin")
    >>> check_unchanged("example.bin", "/x", fp)
    >>> with open("example.bin", "ab") as f:
    ...     _ = f.write(b"d")
    >>> check_unchanged("example.bin", "/x", fp)
    Traceback (most recent call last):
    ...
    dask_tables.errors.FileChangedError: example.bin: node /x: ... (size 3 -> 4, modified); ...
    """
    if now is None:
        try:
            now = Fingerprint.of(path)
        except FileNotFoundError:
            raise FileChangedError(path, node, "the file was deleted") from None
    if now != fingerprint:
        what = fingerprint.describe_change(now)
        writing = [mode for mode in modes_open_here(path) if mode != "r"]
        if writing:
            what += (
                f"; this process holds the file open for writing (mode {writing[0]!r}):"
                " close that handle before building the graph and computing"
            )
        elif now.inode == fingerprint.inode and locked_for_writing(path):
            # a writer elsewhere opened it (HDF5 marks the file open): the cause, and its cure
            raise FileLockedError(path, node, REBUILD_ARRAY)
        raise FileChangedError(path, node, what)


def same_file(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    """Whether two paths name one file (device and inode), however they are spelled.

    Examples
    --------
    >>> with open("example.bin", "wb") as f:
    ...     _ = f.write(b"abc")
    >>> same_file("example.bin", "./example.bin"), same_file("example.bin", "missing.bin")
    (True, False)
    """
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def modes_open_here(path: str | os.PathLike[str]) -> list[str]:
    """The modes of the handles this process holds open on ``path`` in PyTables' registry.

    PyTables keys its registry by the name each caller gave (``"f.h5"``,
    ``"./f.h5"``, an absolute path...): this compares the files themselves.

    Examples
    --------
    >>> import tables
    >>> with tables.open_file("example.h5", "w") as f:
    ...     modes_open_here("./example.h5")
    ['w']
    >>> modes_open_here("example.h5")
    []
    """
    with get_lock():
        names = list(_tables_file._open_files.filenames)
        modes = {
            name: [h.mode for h in _tables_file._open_files.get_handlers_by_name(name)] for name in names
        }
    return [mode for name in names if same_file(name, path) for mode in modes[name]]


def locked_for_writing(path: str | os.PathLike[str]) -> bool:
    """Whether a process holds ``path`` open for writing with HDF5's file locking (an exclusive ``flock``).

    HDF5 (1.10 and later) takes an exclusive ``flock`` of a file it opens
    for writing, a shared one for reading.  A shared ``flock`` that cannot
    be had now means a writer; ``False`` where nothing can tell (no
    ``fcntl``, a file system without ``flock``, a writer that turned
    locking off).  The probe's lock is released at once.

    Examples
    --------
    >>> import tables
    >>> with tables.open_file("example.h5", "w") as f:
    ...     locked_for_writing("example.h5")
    True
    >>> locked_for_writing("example.h5")
    False
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: HDF5 locks otherwise there
        return False
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:  # no flock on this file system
        return False
    finally:
        os.close(fd)  # releases the probe's lock
    return False
