"""Files on disk: whether one is an HDF5 file, and a file written whole (a temporary name, then renamed)."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator

import tables

from ..errors import NotHDF5FileError
from ..registry import get_lock

__all__ = ["check_hdf5_file", "is_hdf5_file", "written_whole"]


def is_hdf5_file(path: str) -> bool:
    """Whether ``path`` is a regular file with HDF5's signature (asked under the registry lock).

    Errors reading the file (``OSError``, ``tables.HDF5ExtError``) propagate.

    Examples
    --------
    >>> import tables
    >>> with tables.open_file("example.h5", "w"):
    ...     pass
    >>> with open("notes.txt", "w") as f:
    ...     _ = f.write("not HDF5")
    >>> is_hdf5_file("example.h5"), is_hdf5_file("notes.txt"), is_hdf5_file("missing.h5")
    (True, False, False)
    """
    with get_lock():
        return os.path.isfile(path) and bool(tables.is_hdf5_file(path))


def check_hdf5_file(path: str, asked: str = "") -> None:
    """Raise unless ``path`` is an HDF5 file; each message names it, then ``asked`` in parentheses.

    Raises
    ------
    FileNotFoundError
        Nothing is at ``path``.
    IsADirectoryError
        A folder is.
    NotHDF5FileError
        A file that is not HDF5 is.

    Examples
    --------
    >>> check_hdf5_file("missing.h5", "asked for node /x")
    Traceback (most recent call last):
    ...
    FileNotFoundError: missing.h5: no such file (asked for node /x)
    """
    why = f" ({asked})" if asked else ""
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such file{why}")
    if os.path.isdir(path):
        raise IsADirectoryError(f"{path}: is a directory, not an HDF5 file{why}")
    if not is_hdf5_file(path):
        raise NotHDF5FileError(f"{path}: not an HDF5 file{why}")


@contextlib.contextmanager
def written_whole(path: str | os.PathLike[str], *, replace: bool = True) -> Iterator[str]:
    """A free temporary name beside ``path``; what is written there becomes ``path`` when the block ends.

    A reader (or a retried task) finds at ``path`` either nothing, the file
    that was there, or the whole new file: never part of one.  The
    temporary file is removed whatever happens.

    Parameters
    ----------
    path : str or os.PathLike
        The file to write.
    replace : bool, default True
        ``os.replace`` an existing ``path`` (atomic).  If False, the new
        file is linked into place, which raises :class:`FileExistsError`,
        replacing nothing, if ``path`` exists by then.

    Yields
    ------
    str
        The temporary path, in the same folder (so the rename stays on one
        file system), hidden and ending in ``.tmp``.

    Examples
    --------
    >>> with written_whole("notes.txt") as tmp:
    ...     with open(tmp, "w") as f:
    ...         _ = f.write("complete")
    >>> open("notes.txt").read()
    'complete'
    >>> with written_whole("notes.txt") as tmp:
    ...     with open(tmp, "w") as f:
    ...         _ = f.write("half")
    ...     raise RuntimeError("the task failed")
    Traceback (most recent call last):
    ...
    RuntimeError: the task failed
    >>> open("notes.txt").read(), os.listdir(".")
    ('complete', ['notes.txt'])
    >>> with written_whole("notes.txt", replace=False) as tmp:
    ...     open(tmp, "w").close()
    Traceback (most recent call last):
    ...
    FileExistsError: [Errno 17] File exists: ...
    """
    folder, name = os.path.split(os.fspath(path))
    tmp = os.path.join(folder, f".{name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        yield tmp
        if replace:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
