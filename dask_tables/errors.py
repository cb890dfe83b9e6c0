"""Exception classes raised by dask_tables."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator

__all__ = [
    "CorruptChunkError",
    "DaskTablesError",
    "FileChangedError",
    "FileLockedError",
    "MissingFilterError",
    "NodeExistsError",
    "NotHDF5FileError",
    "RecordLayoutError",
    "RegionMismatchError",
    "SlowChunkIndexWarning",
    "WriteInterruptedError",
]

REBUILD_ARRAY = "rebuild the array with from_tables"
REBUILD_FRAME = "rebuild the frame with read_table"
# What to call again after a file changed, by the call that built the collection.
_REBUILD = {"from_tables": REBUILD_ARRAY, "read_table": REBUILD_FRAME}


def rebuild_advice(call: str) -> str:
    """What a :class:`FileChangedError` advises: the call the user made, to make again.

    Examples
    --------
    >>> rebuild_advice("from_tables")
    'rebuild the array with from_tables'
    >>> rebuild_advice("xarray.open_dataset")
    'call xarray.open_dataset again'
    """
    return _REBUILD.get(call, f"call {call} again")


def at_node(path: str | None, node: str) -> str:
    """The prefix of every message about one node: ``"data.h5: node /x"`` (``"node /x"`` without a path).

    Examples
    --------
    >>> at_node("data.h5", "/x")
    'data.h5: node /x'
    >>> f"{at_node(None, '/x')}: chunkshape (0,) does not fit"
    'node /x: chunkshape (0,) does not fit'
    """
    return f"node {node}" if path is None else f"{path}: node {node}"


class DaskTablesError(Exception):
    """Base class of the errors that only dask_tables raises."""


class FileChangedError(DaskTablesError):
    """The file changed after the dask graph that reads it was built.

    A task raises this instead of returning data that may be stale or
    misaligned: the file was rewritten, truncated, appended to, replaced
    by another file or deleted since :func:`dask_tables.from_tables` (or
    :func:`dask_tables.read_table`) recorded its fingerprint.  Rebuild the
    collection to read the new contents.

    Parameters
    ----------
    path, node : str
        The file and the node read from it.
    what : str
        How the file changed.
    advice : str, optional
        What to do about it (default: rebuild the array with ``from_tables``).

    Examples
    --------
    >>> err = FileChangedError("data.h5", "/array", "size 10 -> 20")
    >>> print(err)
    data.h5: node /array: the file changed after the graph was built (size 10 -> 20); rebuild the array with from_tables
    >>> err.path, err.node
    ('data.h5', '/array')
    >>> print(err.with_advice("rebuild the frame with read_table"))
    data.h5: node /array: the file changed after the graph was built (size 10 -> 20); rebuild the frame with read_table
    """

    def __init__(self, path: str, node: str, what: str, advice: str = REBUILD_ARRAY) -> None:
        self.path = path
        self.node = node
        self.what = what
        self.advice = advice
        super().__init__(
            f"{at_node(path, node)}: the file changed after the graph was built ({what}); {advice}"
        )

    def with_advice(self, advice: str) -> FileChangedError:
        """The same error, with other advice (the caller knows better what to rebuild)."""
        return type(self)(self.path, self.node, self.what, advice)

    def __reduce__(self):
        return (type(self), (self.path, self.node, self.what, self.advice))


class SlowChunkIndexWarning(UserWarning):
    """Chunk indexes are read chunk by chunk: the compiled module is missing (no C compiler at install).

    Issued once per process, the first time a chunk index is read that way.

    Examples
    --------
    >>> issubclass(SlowChunkIndexWarning, UserWarning)
    True
    """


class NotHDF5FileError(DaskTablesError, OSError):
    """The file exists but is not an HDF5 file that PyTables can open (or it is damaged).

    Examples
    --------
    >>> issubclass(NotHDF5FileError, OSError)
    True
    """


class FileLockedError(DaskTablesError, OSError):
    """Another process holds the file open for writing, and HDF5's file locking refuses to open it.

    The file is not damaged.  HDF5 (1.10 and later) locks a file that a
    process opened for writing; close it there first.  Readers that accept
    reading a file while it may change can set ``HDF5_USE_FILE_LOCKING=FALSE``
    in their environment before they start.

    Raised when a collection is built, and by its tasks when the writer
    opened the file after the graph was built (``advice`` then says what to
    rebuild: opening a file for writing changes it).

    Parameters
    ----------
    path, node : str
        The file and the node asked for.
    advice : str, optional
        At compute time: what to rebuild once the writer closed the file.

    Examples
    --------
    >>> print(FileLockedError("data.h5", "/x"))  # doctest: +NORMALIZE_WHITESPACE
    data.h5: the file is locked by another process, which has it open for writing (HDF5: unable to
    lock file), asked for node /x; close the file in that process first, or, for readers that accept
    the risk of reading a file while it is written, set HDF5_USE_FILE_LOCKING=FALSE in their
    environment before they start (the file is not damaged)
    >>> print(FileLockedError("data.h5", "/x", REBUILD_ARRAY))  # doctest: +NORMALIZE_WHITESPACE
    data.h5: the file is locked by another process, which opened it for writing after the graph was
    built (HDF5's file lock), asked for node /x; close the file in that process first, then
    rebuild the array with from_tables (the writer may have changed it); readers that accept the risk
    of reading a file while it is written can set HDF5_USE_FILE_LOCKING=FALSE in their environment
    before they start (the file is not damaged)
    """

    def __init__(self, path: str, node: str, advice: str | None = None) -> None:
        self.path = path
        self.node = node
        self.advice = advice
        if advice is None:
            message = (
                f"{path}: the file is locked by another process, which has it open for writing (HDF5: "
                f"unable to lock file), asked for node {node}; close the file in that process first, or, "
                "for readers that accept the risk of reading a file while it is written, set "
                "HDF5_USE_FILE_LOCKING=FALSE in their environment before they start (the file is not damaged)"
            )
        else:
            message = (
                f"{path}: the file is locked by another process, which opened it for writing after the "
                f"graph was built (HDF5's file lock), asked for node {node}; close the file in "
                f"that process first, then {advice} (the writer may have changed it); readers that accept "
                "the risk of reading a file while it is written can set HDF5_USE_FILE_LOCKING=FALSE in "
                "their environment before they start (the file is not damaged)"
            )
        super().__init__(message)

    def with_advice(self, advice: str) -> FileLockedError:
        """The same error at compute time, saying what to rebuild."""
        return type(self)(self.path, self.node, advice)

    def __reduce__(self):
        return (type(self), (self.path, self.node, self.advice))


def unreadable_file(path: str, node: str, err: BaseException, damaged: str) -> OSError:
    """The error for an HDF5 file PyTables failed to open or read: locked by a writer, else damaged.

    A file that another process holds open for writing is not damaged:
    :class:`FileLockedError`.  Otherwise :class:`NotHDF5FileError` with the
    message ``damaged``, then HDF5's last line.

    Examples
    --------
    >>> type(unreadable_file("d.h5", "/x", OSError("unable to lock file, errno = 11"), "d.h5: damaged"))
    <class 'dask_tables.errors.FileLockedError'>
    >>> print(unreadable_file("d.h5", "/x", OSError("bad symbol table"), "d.h5: damaged HDF5 file"))
    d.h5: damaged HDF5 file: bad symbol table
    """
    text = str(err)
    if "unable to lock file" in text:
        return FileLockedError(path, node)
    reason = text.strip().splitlines()[-1] if text.strip() else type(err).__name__
    return NotHDF5FileError(f"{damaged}: {reason}")


@contextlib.contextmanager
def locked_as_such(path: str, node: str) -> Iterator[None]:
    """Within the block, HDF5's refusal to open a file a writer holds is a :class:`FileLockedError`.

    Any other error goes through as it is.

    Examples
    --------
    >>> with locked_as_such("d.h5", "/"):
    ...     raise RuntimeError("unable to lock file, errno = 11, error message = 'Resource unavailable'")
    Traceback (most recent call last):
    ...
    dask_tables.errors.FileLockedError: d.h5: ... asked for node /; close the file in that process first, ...
    """
    try:
        yield
    except FileLockedError:
        raise
    except Exception as err:
        if "unable to lock file" not in str(err):
            raise
        raise FileLockedError(path, node) from err


class CorruptChunkError(DaskTablesError):
    """A chunk's stored bytes do not decode, or fail their checksum.

    Examples
    --------
    >>> print(CorruptChunkError("data.h5", "/x", (128, 0), "zlib: bad data"))
    data.h5: node /x: chunk at (128, 0) is corrupt: zlib: bad data
    """

    def __init__(self, path: str, node: str, chunk: tuple[int, ...], what: str) -> None:
        self.path = path
        self.node = node
        self.chunk = chunk
        self.what = what
        super().__init__(f"{at_node(path, node)}: chunk at {chunk} is corrupt: {what}")

    def __reduce__(self):
        return (type(self), (self.path, self.node, self.chunk, self.what))


class MissingFilterError(DaskTablesError, ValueError):
    """A node's chunks pass through an HDF5 filter that nothing here can decode.

    Neither PyTables' HDF5 (its wheels carry no szip, LZ4, Zstd,
    bitshuffle... plugin) nor dask_tables' own decoders undo the filter.
    The file is not damaged: another reader with the filter's plugin
    (h5py with ``hdf5plugin``, or ``HDF5_PLUGIN_PATH``) reads it.

    Parameters
    ----------
    path, node : str
        The file and the node read from it.
    filter_id : int
        HDF5's id of the filter (``-1`` where unknown).
    filter_name : str
        The name the file records for it.
    why : str, optional
        Why dask_tables' own decoding does not apply.

    Examples
    --------
    >>> err = MissingFilterError("data.h5", "/x", 32017, "SZ3")
    >>> print(err)
    data.h5: node /x: HDF5 filter 32017 (SZ3) is not available: PyTables' HDF5 has no such filter and dask_tables has no decoder for it (the file is not damaged)
    >>> err.filter_id, isinstance(err, ValueError)
    (32017, True)
    """

    def __init__(self, path: str, node: str, filter_id: int, filter_name: str, why: str = "") -> None:
        self.path = path
        self.node = node
        self.filter_id = filter_id
        self.filter_name = filter_name
        self.why = why
        reason = why or "dask_tables has no decoder for it"
        super().__init__(
            f"{at_node(path, node)}: HDF5 filter {filter_id} ({filter_name}) is not available: "
            f"PyTables' HDF5 has no such filter and {reason} (the file is not damaged)"
        )

    def __reduce__(self):
        return (type(self), (self.path, self.node, self.filter_id, self.filter_name, self.why))


class RecordLayoutError(DaskTablesError, TypeError):
    """A table whose stored records neither PyTables nor dask_tables can read safely.

    The file lays its records out otherwise than the record PyTables reads
    them into (gaps between members, padding, a nested record packed
    differently), and PyTables' read of such records may corrupt memory
    and crash the process.  dask_tables reads such tables in the file's own
    layout, but one member here has a type it cannot describe bit for bit
    (a space-padded or variable-length string, a reference, a bit field...),
    so the table is refused rather than read through PyTables.  h5py reads it.

    Parameters
    ----------
    path, node : str
        The file and the table.
    stored, itemsize : int
        The bytes of a stored record, and of PyTables' record.
    member : str
        The member with the type that cannot be described (``"outer/inner"``).

    Attributes
    ----------
    reason : str
        The message without the node's prefix (what ``dask-tables info`` shows).

    Examples
    --------
    >>> err = RecordLayoutError("data.h5", "/t", 21, 12, "compound/s")
    >>> print(err)  # doctest: +NORMALIZE_WHITESPACE
    data.h5: node /t: the stored records (21 bytes) put their members elsewhere than PyTables'
    record (12 bytes), and PyTables' read of such records may crash the process; member
    'compound/s' has a type dask_tables cannot read in the file's layout; h5py reads this table
    """

    def __init__(self, path: str, node: str, stored: int, itemsize: int, member: str) -> None:
        self.path, self.node, self.stored, self.itemsize, self.member = path, node, stored, itemsize, member
        self.reason = (
            f"the stored records ({stored} bytes) put their members elsewhere than PyTables' record "
            f"({itemsize} bytes), and PyTables' read of such records may crash the process; member "
            f"{member!r} has a type dask_tables cannot read in the file's layout; h5py reads this table"
        )
        super().__init__(f"{at_node(path, node)}: {self.reason}")

    def __reduce__(self):
        return (type(self), (self.path, self.node, self.stored, self.itemsize, self.member))


class NodeExistsError(DaskTablesError, FileExistsError):
    """:func:`dask_tables.to_tables` would replace an existing node, and ``overwrite`` is false (or it is a group).

    Examples
    --------
    >>> print(NodeExistsError("out.h5", "/x"))
    out.h5: node /x exists already; pass overwrite=True to replace it
    >>> issubclass(NodeExistsError, FileExistsError)
    True
    """

    def __init__(self, path: str, node: str, why: str = "") -> None:
        self.path = path
        self.node = node
        self.why = why
        super().__init__(
            f"{at_node(path, node)} exists already; {why or 'pass overwrite=True to replace it'}"
        )

    def __reduce__(self):
        return (type(self), (self.path, self.node, self.why))


class RegionMismatchError(DaskTablesError, ValueError):
    """The array does not fit the ``region`` of the existing node it should be written into.

    Examples
    --------
    >>> print(RegionMismatchError("out.h5", "/x", "region has shape (2,), the array (3,)"))
    out.h5: node /x: cannot write the array into the region: region has shape (2,), the array (3,)
    """

    def __init__(self, path: str, node: str, what: str) -> None:
        self.path = path
        self.node = node
        self.what = what
        super().__init__(f"{at_node(path, node)}: cannot write the array into the region: {what}")

    def __reduce__(self):
        return (type(self), (self.path, self.node, self.what))


class WriteInterruptedError(DaskTablesError):
    """A process died while it held the temporary file of :func:`dask_tables.to_tables` open.

    The temporary file may be damaged, so the write is abandoned: the target
    file was not touched.  Run the write again.

    Examples
    --------
    >>> print(WriteInterruptedError("out.h5"))
    out.h5: a process died while writing the temporary file; the target was not touched, run the write again
    """

    def __init__(self, path: str) -> None:
        self.path = path
        super().__init__(
            f"{path}: a process died while writing the temporary file; "
            "the target was not touched, run the write again"
        )

    def __reduce__(self):
        return (type(self), (self.path,))


@contextlib.contextmanager
def change_advice(advice: str) -> Iterator[None]:
    """Within the block, a :class:`FileChangedError` carries ``advice`` (what to rebuild, and how).

    Examples
    --------
    >>> with change_advice(REBUILD_FRAME):
    ...     raise FileChangedError("data.h5", "/t", "modified")
    Traceback (most recent call last):
    ...
    dask_tables.errors.FileChangedError: data.h5: node /t: ... (modified); rebuild the frame with read_table
    """
    try:
        yield
    except FileChangedError as err:
        raise err.with_advice(advice) from None
    except FileLockedError as err:
        if err.advice is None:
            raise
        raise err.with_advice(advice) from None


def renamed(module: str, renames: dict[str, tuple[str, object]], name: str) -> object:
    """A module's ``__getattr__`` for its renamed names: the new object, with a :class:`DeprecationWarning`.

    Parameters
    ----------
    module : str
        The module's name (``__name__``).
    renames : dict
        Old name -> (new dotted name, the object it names now).
    name : str
        The name looked up.

    Raises
    ------
    AttributeError
        ``name`` was never one of ``module``'s names.

    Examples
    --------
    >>> import warnings
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     renamed("m", {"old": ("m.new", 1)}, "old"), str(caught[0].message)
    (1, 'm.old is deprecated: use m.new')
    """
    if name not in renames:
        raise AttributeError(f"module {module!r} has no attribute {name!r}")
    new, value = renames[name]
    warnings.warn(f"{module}.{name} is deprecated: use {new}", DeprecationWarning, stacklevel=3)
    return value
