"""Thread-safe opening and closing of PyTables files.

PyTables keeps every open :class:`tables.File` in a module-level registry
(``tables.file._open_files``) that is not thread-safe: opening and closing
the same file from several threads races, and the race surfaces as
``AttributeError: 'File' object has no attribute 'mode'`` (``File.close``
clears the object's ``__dict__`` before it leaves the registry, while
``open_file`` of another thread iterates the registry) or as
``RuntimeError: Set changed size during iteration``.

This module serializes every registry change behind one process-wide
re-entrant lock, :func:`get_lock`:

* :func:`synchronized_open_file`, :func:`synchronized_close_file` and the
  context manager :func:`synchronized_file` take the lock explicitly;
* :func:`patch` / :func:`unpatch` / :func:`patched` make plain
  ``tables.open_file``, ``tables.File``, ``File.close`` and
  ``tables.file._open_files.close_all`` take it, and undo that exactly.

It also repairs what a failed open leaves behind in PyTables' registry: a
stale, empty filename key, or (for a bad ``root_uep``) a half-built file
handle that keeps the HDF5 file open and breaks ``close_all`` at exit.
"""

from __future__ import annotations

import contextlib
import functools
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import tables
import tables.file as _tables_file

from . import diagnostics
from .forks import after_fork_in_child

__all__ = [
    "RegistryLock",
    "get_lock",
    "is_patched",
    "patch",
    "patched",
    "synchronized_close_file",
    "synchronized_file",
    "synchronized_open_file",
    "unpatch",
]


class RegistryLock:
    """The process-wide re-entrant lock around PyTables' registry and HDF5 calls.

    There is exactly one instance per process, returned by :func:`get_lock`.
    It pickles by reference: unpickling it in the same process gives the same
    object, and in another process gives that process's lock, so it can travel
    inside dask tasks.  HDF5's state is per process, so one lock per process
    (not one per file) is the right granularity.

    Examples
    --------
    >>> import pickle
    >>> lock = get_lock()
    >>> pickle.loads(pickle.dumps(lock)) is lock
    True
    >>> with lock:
    ...     with lock:  # re-entrant
    ...         pass
    """

    def __init__(self) -> None:
        # Invariant: the only instance is the module global ``_LOCK``;
        # ``_rlock`` is replaced in a forked child (see ``_reset_after_fork``).
        # ``_owner`` (thread id), ``_depth`` and ``_since`` describe the
        # holder; only the holding thread writes them, while it holds
        # ``_rlock``, so a thread reading ``_owner == its own id`` is exact.
        self._rlock = threading.RLock()
        self._owner: int | None = None
        self._depth = 0
        self._since = 0.0

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        """Acquire the lock; see :meth:`threading.RLock.acquire`.

        The outermost acquisition of a thread is timed (waited, then held
        until its release) for :mod:`dask_tables.diagnostics`.
        """
        if self._owner == threading.get_ident():
            self._rlock.acquire()
            self._depth += 1
            return True
        asked = time.perf_counter()
        if not self._rlock.acquire(blocking, timeout):
            return False
        self._since = time.perf_counter()
        self._owner = threading.get_ident()
        self._depth = 1
        diagnostics.lock_acquired(self._since - asked)
        _silence_hdf5_in_this_thread()
        return True

    def release(self) -> None:
        """Release the lock; see :meth:`threading.RLock.release`."""
        if self._owner != threading.get_ident():
            self._rlock.release()  # raises: not held by this thread
            return
        self._depth -= 1
        if self._depth:
            self._rlock.release()
            return
        held = time.perf_counter() - self._since
        self._owner = None
        self._rlock.release()
        diagnostics.lock_released(held)

    def __enter__(self) -> RegistryLock:
        self.acquire()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()

    def __reduce__(self) -> tuple[Any, tuple[()]]:
        return (get_lock, ())

    def __repr__(self) -> str:
        return f"<RegistryLock of process {os.getpid()}>"

    def _reset_after_fork(self) -> None:
        # A thread of the parent may have held the lock at fork time; that
        # thread does not exist in the child, so the child starts unlocked.
        self._rlock = threading.RLock()
        self._owner = None
        self._depth = 0


# Threads in which HDF5's automatic error printing is off.  HDF5 built
# thread-safe keeps that setting per thread, and PyTables turns it off only
# in the thread that imported it: without this, a full disk printed ~2,000
# ``HDF5-DIAG`` lines from dask's worker threads.  Every HDF5 call of
# dask_tables holds the lock, so the first acquisition in a thread suffices.
_silenced = threading.local()


def _silence_hdf5_in_this_thread() -> None:
    if not getattr(_silenced, "done", False):
        tables.silence_hdf5_messages(True)
        _silenced.done = True


# The one lock of this process.  Guards: PyTables' registry
# (``tables.file._open_files``), every open and close done by dask_tables,
# every HDF5 read done by dask_tables, and the patch state below.
_LOCK = RegistryLock()
after_fork_in_child(_LOCK._reset_after_fork)


def get_lock() -> RegistryLock:
    """Return the process-wide re-entrant lock that guards PyTables' registry.

    Returns
    -------
    RegistryLock
        The same object on every call in one process.

    Examples
    --------
    >>> get_lock() is get_lock()
    True
    """
    return _LOCK


def _registry() -> Any:
    return _tables_file._open_files


def _discard_failed_open(filename: str, handlers_before: set[Any]) -> None:
    """Undo what a failed ``open_file``/``File()`` left in PyTables' registry.

    Call with the lock held.  ``open_file`` looks the file name up in a
    ``defaultdict`` (leaving an empty key behind), and ``File.__init__``
    registers the handle before it builds the root group, so a bad
    ``root_uep`` leaves a half-built handle whose HDF5 file stays open.
    """
    registry = _registry()
    mapping = registry._name_mapping
    for handle in list(mapping.get(filename, ())):
        if handle in handlers_before:
            continue
        with contextlib.suppress(Exception):
            handle._close_file()
        with contextlib.suppress(KeyError):
            mapping[filename].discard(handle)
            registry._handlers.discard(handle)
    if filename in mapping and not mapping[filename]:
        del mapping[filename]


def _handlers_of(filename: str) -> set[Any]:
    return set(_registry()._name_mapping.get(filename, ()))


def synchronized_open_file(filename: str | os.PathLike[str], *args: Any, **kwargs: Any) -> tables.File:
    """Open a PyTables file while holding the process-wide registry lock.

    Takes the same arguments as :func:`tables.open_file`.  Safe to call from
    any number of threads at once, together with
    :func:`synchronized_close_file`.  A failed open leaves PyTables' registry
    exactly as it was.

    Parameters
    ----------
    filename : str or os.PathLike
        The file to open.
    *args, **kwargs
        Passed to :func:`tables.open_file` (``mode``, ``root_uep``...).

    Returns
    -------
    tables.File
        The open file.  Close it with :func:`synchronized_close_file`.

    Examples
    --------
    >>> import numpy as np, tables
    >>> with tables.open_file("example.h5", "w") as f:
    ...     _ = f.create_array("/", "array", np.arange(4))
    >>> h5 = synchronized_open_file("example.h5", mode="r")
    >>> h5.root.array[1:3]
    array([1, 2])
    >>> synchronized_close_file(h5)
    """
    name = os.fspath(filename)
    with _LOCK:
        before = _handlers_of(name)
        # While patched, tables.open_file is our wrapper: call what it replaced.
        open_file = _saved.open_file if _saved is not None else _tables_file.open_file
        try:
            return open_file(name, *args, **kwargs)
        except BaseException:
            _discard_failed_open(name, before)
            raise


def synchronized_close_file(h5file: tables.File) -> None:
    """Close a PyTables file while holding the process-wide registry lock.

    Parameters
    ----------
    h5file : tables.File
        A file opened by :func:`synchronized_open_file` (or any other way).
        Closing a file that is already closed does nothing.

    Examples
    --------
    >>> import tables
    >>> with tables.open_file("example.h5", "w") as f:
    ...     pass
    >>> h5 = synchronized_open_file("example.h5")
    >>> synchronized_close_file(h5)
    >>> h5.isopen
    0
    """
    with _LOCK:
        h5file.close()


@contextlib.contextmanager
def synchronized_file(filename: str | os.PathLike[str], *args: Any, **kwargs: Any) -> Iterator[tables.File]:
    """Open a PyTables file for the duration of a ``with`` block, thread-safely.

    The context-manager form of :func:`synchronized_open_file` and
    :func:`synchronized_close_file`.

    Parameters
    ----------
    filename : str or os.PathLike
        The file to open.
    *args, **kwargs
        Passed to :func:`tables.open_file`.

    Yields
    ------
    tables.File
        The open file, closed (under the lock) when the block ends.

    Examples
    --------
    >>> import numpy as np, tables
    >>> with tables.open_file("example.h5", "w") as f:
    ...     _ = f.create_array("/", "array", np.arange(4))
    >>> with synchronized_file("example.h5") as h5:
    ...     print(h5.root.array[:].sum())
    6
    """
    h5file = synchronized_open_file(filename, *args, **kwargs)
    try:
        yield h5file
    finally:
        synchronized_close_file(h5file)


class _LockedRegistryMixin:
    """Every method of PyTables' registry under the process-wide lock.

    :func:`patch` swaps the class of the existing registry object to a
    subclass of its class and this mixin (and :func:`unpatch` swaps it back),
    so the object that PyTables' atexit hook closes is still the one that
    holds the open files.
    """

    _name_mapping: Any
    _handlers: Any

    @property
    def filenames(self) -> list[str]:
        with _LOCK:
            return list(self._name_mapping)

    @property
    def handlers(self) -> set[Any]:
        with _LOCK:
            return set(self._handlers)

    def __len__(self) -> int:
        with _LOCK:
            return len(self._handlers)

    def __contains__(self, filename: object) -> bool:
        with _LOCK:
            return bool(self._name_mapping.get(filename))

    def add(self, handler: Any) -> None:
        with _LOCK:
            super().add(handler)  # type: ignore[misc]

    def remove(self, handler: Any) -> None:
        with _LOCK:
            super().remove(handler)  # type: ignore[misc]

    def get_handlers_by_name(self, filename: str) -> set[Any]:
        # A copy, and no empty key left behind for a name never opened.
        with _LOCK:
            return set(self._name_mapping.get(filename, ()))

    def close_all(self) -> None:
        with _LOCK:
            super().close_all()  # type: ignore[misc]


@functools.cache
def _locked_registry_class(cls: type) -> type:
    return type(f"Synchronized{cls.__name__}", (_LockedRegistryMixin, cls), {"__module__": __name__})


@dataclass(frozen=True)
class _Saved:
    """What :func:`patch` replaced, to be put back exactly by :func:`unpatch`."""

    tables_open_file: Callable[..., Any]
    open_file: Callable[..., Any]
    file_init: Callable[..., None]
    file_close: Callable[..., None]
    registry_class: type


# Guarded by _LOCK.  _saved: what the installed patch replaced (None when
# PyTables is unpatched).  _explicit: patch() is in force.  _blocks: patched()
# blocks running now.  The patch is installed while _explicit or _blocks.
_saved: _Saved | None = None
_explicit = False
_blocks = 0


def _patched_file_init(self: tables.File, filename: Any, *args: Any, **kwargs: Any) -> None:
    name = os.fspath(filename)
    with _LOCK:
        before = _handlers_of(name)
        # An unpatch() may have run since this wrapper was looked up.
        file_init = _saved.file_init if _saved is not None else _tables_file.File.__init__
        try:
            file_init(self, filename, *args, **kwargs)
        except BaseException:
            _discard_failed_open(name, before)
            raise


def _patched_file_close(self: tables.File) -> None:
    with _LOCK:
        (_saved.file_close if _saved is not None else _tables_file.File.close)(self)


def _patched_open_file(filename: Any, *args: Any, **kwargs: Any) -> tables.File:
    return synchronized_open_file(filename, *args, **kwargs)


def _install() -> None:
    global _saved
    if _saved is not None:
        return
    registry = _registry()
    saved = _Saved(
        tables_open_file=tables.open_file,
        open_file=_tables_file.open_file,
        file_init=_tables_file.File.__init__,
        file_close=_tables_file.File.close,
        registry_class=type(registry),
    )
    for wrapper, original in [
        (_patched_open_file, saved.open_file),
        (_patched_file_init, saved.file_init),
        (_patched_file_close, saved.file_close),
    ]:
        functools.update_wrapper(wrapper, original)
    _saved = saved
    _tables_file.File.__init__ = _patched_file_init
    _tables_file.File.close = _patched_file_close
    _tables_file.open_file = _patched_open_file
    tables.open_file = _patched_open_file
    registry.__class__ = _locked_registry_class(saved.registry_class)


def _remove() -> None:
    global _saved
    saved = _saved
    if saved is None:
        return
    _tables_file.File.__init__ = saved.file_init
    _tables_file.File.close = saved.file_close
    _tables_file.open_file = saved.open_file
    tables.open_file = saved.tables_open_file
    _registry().__class__ = saved.registry_class
    _saved = None


def is_patched() -> bool:
    """Return whether PyTables is patched now (by :func:`patch` or a :func:`patched` block).

    Examples
    --------
    >>> is_patched()
    False
    >>> with patched():
    ...     is_patched()
    True
    """
    return _saved is not None


def patch() -> None:
    """Make plain PyTables file handling thread-safe, until :func:`unpatch`.

    While patched, ``tables.open_file`` (and ``tables.file.open_file``),
    ``tables.File(...)``, ``File.close`` (so also ``with tables.open_file(...)``)
    and every method of PyTables' registry ``tables.file._open_files``,
    ``close_all`` included, run under the process-wide lock of
    :func:`get_lock`, and a failed open leaves the registry as it was.
    Calling it twice is harmless.

    This is the monkeypatch of PyTables' threading cookbook, corrected: the
    registry object is kept (PyTables' atexit hook still closes the files
    that are really open), ``close_all`` works, and :func:`unpatch` puts
    back exactly what the patch replaced.

    Notes
    -----
    Code that imported the function itself (``from tables import open_file``)
    before the patch keeps the unpatched ``open_file``; its ``File``
    construction and ``close`` are still locked, but its check of the files
    already open is not.

    Examples
    --------
    >>> import numpy as np, tables
    >>> patch()
    >>> with tables.open_file("example.h5", "w") as f:  # now thread-safe
    ...     _ = f.create_array("/", "array", np.arange(3))
    >>> unpatch()
    >>> is_patched()
    False
    """
    global _explicit
    with _LOCK:
        _explicit = True
        _install()


def unpatch() -> None:
    """Undo :func:`patch`: PyTables is exactly as it was before the patch.

    The patch stays while a :func:`patched` block runs (in any thread) and is
    removed when the last one ends.  Calling it when not patched does
    nothing.

    Examples
    --------
    >>> import tables
    >>> before = tables.open_file
    >>> patch(); unpatch()
    >>> tables.open_file is before
    True
    """
    global _explicit
    with _LOCK:
        _explicit = False
        if _blocks == 0:
            _remove()


@contextlib.contextmanager
def patched() -> Iterator[None]:
    """Keep PyTables patched (see :func:`patch`) for the duration of a ``with`` block.

    Blocks may nest and run in several threads at once: the patch is removed
    when the last block ends, unless :func:`patch` is in force.

    Examples
    --------
    >>> with patched():
    ...     is_patched()
    True
    >>> is_patched()
    False
    """
    global _blocks
    with _LOCK:
        _blocks += 1
        _install()
    try:
        yield
    finally:
        with _LOCK:
            _blocks -= 1
            if _blocks == 0 and not _explicit:
                _remove()
