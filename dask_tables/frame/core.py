"""``read_table``: PyTables Tables as dask DataFrames, with column and query pushdown."""

from __future__ import annotations

import fnmatch
import functools
import glob
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import dask.dataframe as dd
import numpy as np
import pandas as pd
import tables
from dask.base import tokenize

from ..array.source import TablesSource
from ..errors import REBUILD_FRAME, change_advice
from ..hdf5.paths import PathSpec, node_or_key, node_path
from ..hdf5.pickles import refusing_pickles
from ..registry import get_lock, synchronized_file
from ..remote.locations import expand_locations
from ..remote.shadow import metadata_path
from ..remote.urls import is_url
from .columns import FrameLayout
from .conditions import Condition, read_matching
from .pandas_fixed import is_pandas_fixed, read_pandas_fixed
from .pandas_format import is_pandas_node, is_pandas_table, read_pandas_table
from .pandas_select import PandasQuery
from .partitions import (
    RowRange,
    divisions_or_reason,
    partition_rows,
    plan_partitions,
    read_index_values,
    row_window,
    sample_divisions,
    unsorted_reason,
)
from .scope import captured, pytables_names

__all__ = ["TablePartitionReader", "read_table"]


@dataclass(frozen=True)
class _TableInfo:
    """What the build learns from one file's table while it is open."""

    nrows: int
    layout: FrameLayout
    condition: Condition | None


def _inspect_table(
    leaf: tables.Leaf,
    columns: Sequence[str] | None,
    index: str | None,
    where: str | None,
    condvars: Mapping[str, Any] | None,
    names: Mapping[str, Any] | None,
    encoding: str | None,
) -> _TableInfo | None:
    """What a frame of ``leaf`` needs, or ``None`` if ``leaf`` is the table of a frame pandas wrote."""
    if is_pandas_node(leaf):
        return None
    if not isinstance(leaf, tables.Table):
        raise TypeError(
            f"{leaf._v_file.filename}: node {leaf._v_pathname} is a {type(leaf).__name__}, not a Table; "
            "read arrays with dask_tables.from_tables"
        )
    layout = FrameLayout.of(leaf, columns, index, encoding)
    condition = None if where is None else Condition.of(leaf, where, condvars, names)
    return _TableInfo(int(leaf.nrows), layout, condition)


@dataclass(frozen=True)
class TablePartitionReader:
    """Reads one partition (a :class:`~dask_tables.frame.partitions.RowRange`) as a pandas DataFrame.

    Its ``columns=`` keyword lets dask push a column selection into the
    read: ``read_table(...)[["a"]]`` converts only ``a``.

    Attributes
    ----------
    sources : tuple of TablesSource
        The table of each file, read as records (directly where possible).
    layout : FrameLayout
        Which columns, and how they convert.
    conditions : tuple of (Condition or None)
        The ``where`` condition, checked against each file's table.
    sorted_index : bool
        The divisions assume the index column is sorted (checked on every value
        when the frame was built): check each partition again, as a guard.
    """

    sources: tuple[TablesSource, ...]
    layout: FrameLayout
    conditions: tuple[Condition | None, ...] = ()
    sorted_index: bool = False

    def __call__(self, part: RowRange, columns: Sequence[str] | None = None) -> pd.DataFrame:
        """Read ``part``; ``columns`` (dask's column projection) converts only those."""
        with change_advice(REBUILD_FRAME):
            return self._read(part, columns)

    def _read(self, part: RowRange, columns: Sequence[str] | None = None) -> pd.DataFrame:
        """The partition read of :meth:`__call__`: ``columns`` (dask's column projection) converts only those."""
        layout = self.layout if columns is None else self.layout.project(_names(columns, self.layout.names))
        source = self.sources[part.file]
        condition = self.conditions[part.file] if self.conditions else None
        if condition is None:
            records = source[part.start : part.stop]
            rows = np.arange(part.start, part.stop)
        else:
            records, rows = read_matching(source, condition, part.start, part.stop)
        frame = layout.to_frame(records, rows + part.offset, source.path, source.node)
        if self.sorted_index and not frame.index.is_monotonic_increasing:
            raise ValueError(
                f"{source.path}: node {source.node}: index column {self.layout.index.path!r} is not "
                f"sorted in rows {part.start}..{part.stop - 1}, though the rows sampled when the frame "
                "was built were: read with sorted_index=False (unknown divisions)"
            )
        return frame

    def __dask_tokenize__(self) -> tuple[Any, ...]:
        conditions = [c and (c.text, c.values) for c in self.conditions]
        sources = [s.__dask_tokenize__() for s in self.sources]
        return (type(self).__name__, sources, self.layout, tokenize(conditions), self.sorted_index)


def _names(columns: str | Sequence[str], available: Sequence[str]) -> list[str]:
    """The asked-for columns that this reader has, in the asked order."""
    wanted = [columns] if isinstance(columns, str) else list(columns)
    return [c for c in wanted if c in available]


def _divisions(
    sources: Sequence[TablesSource], layout: FrameLayout, parts: Sequence[RowRange], sorted_index: bool | None
) -> tuple[Any, ...] | None:
    """Known divisions, only where the index is sorted, or ``None``; raise if ``sorted_index=True`` and unknown.

    Without an index column, the index is the row numbers: divisions are
    the partitions' first rows.  With one, 16 sampled rows a partition
    refute an unsorted column cheaply; where they look sorted, every value
    of the column is read once (one pass over the table's chunks, as a
    compute would) so that the divisions are true and no task can find
    them false.
    """
    if all(p.start == p.stop for p in parts):
        return None
    if layout.index is None:
        starts = [p.first_label for p in parts]
        return (*starts, parts[-1].offset + parts[-1].stop - 1)
    if sorted_index is False:
        return None
    if layout.index.kind != "number":
        reason = f"it holds {layout.index.kind} values: divisions need a numeric index"
        divisions = None
    else:
        samples = sample_divisions(sources, layout.index.path, parts)
        divisions, reason = divisions_or_reason(samples)
        if divisions is not None:  # the samples cannot see between them: every value, once
            field = layout.index.path
            every = (v for n, s in enumerate(sources) for v in read_index_values(s, field, _of(parts, n)))
            reason = unsorted_reason(every)
            divisions = None if reason else divisions
    if divisions is None and sorted_index:
        raise ValueError(
            f"{sources[0].path}: node {sources[0].node}: sorted_index=True, but the index column "
            f"{layout.index.path!r} gives no divisions: {reason}"
        )
    return divisions


def _of(parts: Sequence[RowRange], file: int) -> list[RowRange]:
    return [p for p in parts if p.file == file]


def read_table(
    path: PathSpec,
    node: str | None = None,
    *,
    key: str | None = None,
    columns: Sequence[str] | None = None,
    where: Any = None,
    condvars: Mapping[str, Any] | None = None,
    chunksize: int | None = None,
    index: str | None = None,
    sorted_index: bool | None = None,
    start: int | None = None,
    stop: int | None = None,
    encoding: str | None = "utf-8",
    direct: bool | None = None,
    allow_pickles: bool = False,
    storage_options: Mapping[str, Any] | None = None,
) -> dd.DataFrame | dd.Series:
    """Read a PyTables ``Table`` (or a pandas ``HDFStore`` table) as a dask DataFrame.

    Each partition is a range of rows, read by a task that opens the file
    through the synchronized registry (chunks decoded outside every lock
    where the direct path applies, see :func:`dask_tables.from_tables`), so
    it computes under every dask scheduler and leaves no file open.  Building
    the frame opens each file once and reads no rows, except the index
    column's values with ``index=`` (or a pandas table's index), to know
    whether divisions are true (see ``sorted_index``).

    Parameters
    ----------
    path : str, bytes, os.PathLike or list
        An HDF5 file (``~`` is the home folder), a glob pattern (``"runs/*.h5"``, sorted), or a list of
        files; each file gives its own partitions, in order.
    node : str
        Path of the ``Table`` (``"/detector/events"``), or the key of a
        table that pandas wrote with ``HDFStore(format="table")``, or of a
        frame or Series in pandas' default ``fixed`` format
        (``dask_tables.frame.pandas_fixed``).  A pattern (``"/*/data"``,
        ``"/data*"``) reads every matching table or pandas key of each file,
        in order, as one frame (as :func:`dask.dataframe.read_hdf`).
    key : str, optional
        pandas' and dask's name for ``node`` (``read_table(path, key="df")``).
    columns : list of str, optional
        The columns to read (default: all).  Nested columns are named with
        ``/`` (``"pos/x"``); a nested group's name means all its columns.
    where : str, optional
        A PyTables condition (``"(energy > 10.5) & (time < t0)"``), as
        :meth:`tables.Table.read_where` takes it, evaluated per partition:
        PyTables answers it from the column's index where one exists,
        otherwise the task evaluates the same numexpr function on its rows.
        An enum column compares with its names by ``==`` or ``!=``
        (``"kind == 'gamma'"``): they become the enum's values.
        For a pandas table: a pandas ``where`` (``"index > 5 & B < 3"``), in
        any form ``HDFStore.select`` takes (a list of terms, ``Term``
        objects, row numbers, a boolean mask, empty).  Checked when the
        frame is built.  Its names are the caller's variables, resolved as
        PyTables (or pandas) resolves them, when the frame is built.
    condvars : dict, optional
        Values of the condition's variables (numbers, arrays, or
        ``tables.Column`` objects of the table, kept by path), looked up
        first.  Without it, the caller's locals and globals.
    chunksize : int, optional
        The most rows a partition holds (as in ``dask.dataframe.read_hdf``):
        rounded down to whole HDF5 chunks where it holds one, else taken as
        is.  Default: about dask's ``array.chunk-size`` (128 MiB) of records,
        in whole HDF5 chunks.
    index : str, optional
        A column to use as the index.  Default: the row numbers of the table
        (of the files concatenated), with known divisions; for a pandas
        table, its own index.
    sorted_index : bool, optional
        Whether the index values rise with the rows, giving known divisions.
        ``None`` (default): find out when the frame is built (a numeric
        index; for a pandas table, its numeric or datetime index, whatever
        its columns): 16 evenly spaced rows of each partition refute an
        unsorted index cheaply, and where they look sorted every value is
        read once, so divisions are known only when true and no task fails
        for them.  ``False``: unknown divisions, no check.  ``True``: as
        ``None``, but raise ``ValueError`` naming the cause when the frame is
        built if the index gives no divisions.
    start, stop : int, optional
        Read only these rows (of all files concatenated; negative ones count
        from the end).  Outside the rows, ``ValueError`` in ``dd.read_hdf``'s words.
    encoding : str or None, optional
        ``"utf-8"`` (default): string (``S``) columns become pandas strings;
        a value that is not UTF-8 raises :class:`UnicodeDecodeError` naming
        the row.  ``None``: they stay ``bytes`` (pyarrow ``binary`` columns).
    direct : bool, optional
        Read chunks directly, as :func:`dask_tables.from_tables`.
    allow_pickles : bool, optional
        Let PyTables unpickle arbitrary objects in the file's attributes.
    storage_options : dict, optional
        For URLs (``s3://bucket/events.h5``, ``https://...``, patterns of
        them): how to reach the store, as :func:`dask_tables.from_tables`
        takes them.  From a URL, ``where`` scans every chunk rather than
        PyTables' column index; a pandas ``where`` that pandas applies
        partly after the read is applied by pandas' own code to the rows
        read directly (``docs/remote.rst``).

    Returns
    -------
    dask.dataframe.DataFrame or dask.dataframe.Series
        A DataFrame; for a pandas ``Series`` stored as a table, a dask
        Series, as :func:`pandas.read_hdf` returns a ``Series`` for it (with
        or without ``where``).

    Raises
    ------
    FileNotFoundError
        A file is missing, a directory, not HDF5, or damaged.
    IsADirectoryError
        A file is missing, a directory, not HDF5, or damaged.
    dask_tables.NotHDF5FileError
        A file is missing, a directory, not HDF5, or damaged.
    tables.NoSuchNodeError
        ``node`` is not in a file.
    TypeError
        ``node`` is not a ``Table``, or is a pandas store in the "fixed"
        format (in ``dask.dataframe.read_hdf``'s words).
    dask_tables.RecordLayoutError
        (a ``TypeError``) A table whose stored records neither PyTables nor
        dask_tables reads safely (names the member).
    KeyError
        An unknown column in ``columns`` or ``index``.
    ValueError
        A multidimensional column (read it with ``from_tables(field=...)``),
        bad ``chunksize`` ("positive integer"), files whose tables differ,
        ``start``/``stop`` out of range ("number of rows", "is above or
        equal to", as ``dask.dataframe.read_hdf`` says), an empty list of
        files, a name that is not in an enum column's enum in ``where``,
        ``columns``/``index`` for a pandas Series.
    IndexError
        ``start`` or ``stop`` out of range (a PyTables table).
    SyntaxError
        An invalid ``where`` condition, or an unknown variable in it.
    NameError
        An invalid ``where`` condition, or an unknown variable in it.

    Examples
    --------
    >>> import numpy as np, tables
    >>> import dask_tables
    >>> rows = np.zeros(1000, dtype=[("energy", "f8"), ("time", "i8"), ("pos", [("x", "f4"), ("y", "f4")])])
    >>> rows["energy"] = np.arange(1000) % 20
    >>> rows["time"] = np.arange(1000)
    >>> with tables.open_file("events.h5", "w") as f:
    ...     _ = f.create_table("/", "events", obj=rows, chunkshape=(100,))
    >>> df = dask_tables.read_table("events.h5", "/events", columns=["energy", "pos/x"],
    ...                             where="energy > 10.5", chunksize=300)
    >>> df.npartitions  # rows 0-299, 300-599, 600-899, 900-999
    4
    >>> len(df.compute(scheduler="threads"))
    450
    """
    node = node_or_key(node, key, "read_table")
    if node is None:
        raise TypeError("read_table: give the node to read (or key=, as pandas names it), e.g. '/events'")
    caller = sys._getframe(1)  # where's names are the caller's, as for PyTables and pandas
    try:
        scopes = (condvars, caller.f_locals, caller.f_globals)
        query = PandasQuery.of(where, scopes)
        names = (
            None
            if condvars is not None or not isinstance(where, str)
            else captured(pytables_names(where), scopes[1:])
        )
    finally:
        del caller
    request = _Request(
        columns=columns, where=where, condvars=condvars, chunksize=chunksize, index=index,
        sorted_index=sorted_index, start=start, stop=stop, encoding=encoding, direct=direct,
        allow_pickles=allow_pickles, storage_options=storage_options, query=query, names=names,
    )  # fmt: skip
    files = expand_locations(path, node, storage_options)
    node = node_path(node)
    if glob.has_magic(node):
        return _read_matching_nodes(files, node, request)
    return _read_node(files, node, request)


@dataclass(frozen=True)
class _Request:
    """The arguments of one :func:`read_table` call, the same for each node it reads (see there).

    ``query`` is ``where`` for pandas' tables and ``names`` its names for
    PyTables' (both taken from :func:`read_table`'s caller).
    """

    columns: Sequence[str] | None
    where: Any
    condvars: Mapping[str, Any] | None
    chunksize: int | None
    index: str | None
    sorted_index: bool | None
    start: int | None
    stop: int | None
    encoding: str | None
    direct: bool | None
    allow_pickles: bool
    storage_options: Mapping[str, Any] | None
    query: PandasQuery | None
    names: Mapping[str, Any] | None

    def shared(self) -> dict[str, Any]:
        """The keywords every kind of frame takes: pandas' table and fixed readers'."""
        return {
            "columns": self.columns, "chunksize": self.chunksize, "index": self.index,
            "sorted_index": self.sorted_index, "start": self.start, "stop": self.stop, "direct": self.direct,
            "allow_pickles": self.allow_pickles, "storage_options": self.storage_options,
        }  # fmt: skip


def _read_node(files: Sequence[str], node: str, request: _Request) -> dd.DataFrame | dd.Series:
    """:func:`read_table` of one node (no pattern) of ``files``, each file's own partitions in order."""
    inspect = functools.partial(
        _inspect_table,
        columns=request.columns,
        index=request.index,
        where=request.where,
        condvars=request.condvars,
        names=request.names,
        encoding=request.encoding,
    )
    options = request.storage_options
    opened = _open_tables(files, node, inspect, request.direct, request.allow_pickles, options)
    if opened is None and is_pandas_fixed(metadata_path(files[0], options), node):  # pandas' fixed format
        return read_pandas_fixed(
            files, node, where=request.where, condvars=request.condvars, **request.shared()
        )
    if opened is None:
        return read_pandas_table(files, node, where=request.query, **request.shared())
    sources = tuple(source for source, _ in opened)
    infos = [info for _, info in opened]
    _check_same_tables(sources, infos)
    first = sources[0]
    where_text = f"{first.path}: node {first.node}"
    low, high = row_window(request.start, request.stop, sum(i.nrows for i in infos), where_text)
    chunk_rows = first.chunkshape[0] if first.chunkshape else 1
    rows = partition_rows(request.chunksize, chunk_rows, first.row_nbytes or first.dtype.itemsize)
    parts = plan_partitions([i.nrows for i in infos], rows, low, high)
    layout = infos[0].layout
    divisions = _divisions(sources, layout, parts, request.sorted_index)
    conditions = tuple(i.condition for i in infos)
    check_sorted = divisions is not None and layout.index is not None  # the row numbers need no check
    reader = TablePartitionReader(sources, layout, conditions, check_sorted)
    return dd.from_map(
        reader,
        parts,
        meta=layout.meta(),
        divisions=divisions,
        label="read-table",
        enforce_metadata=False,
    )


def matching_nodes(
    path: str, pattern: str, allow_pickles: bool = False, storage_options: Mapping[str, Any] | None = None
) -> list[str]:
    """The nodes of ``path`` that ``pattern`` matches (``fnmatch``) and that read as frames, in tree order.

    As ``dask.dataframe.read_hdf`` expands a key: each frame pandas wrote
    (its group: the key), and each other ``Table``.

    Examples
    --------
    >>> import pandas as pd
    >>> for key in ("/a/data", "/b/data", "/b/other"):
    ...     pd.DataFrame({"x": [1, 2]}).to_hdf("keys.h5", key=key, format="table")
    >>> matching_nodes("keys.h5", "/*/data")
    ['/a/data', '/b/data']
    """
    local = metadata_path(path, storage_options)
    with refusing_pickles(not allow_pickles), get_lock(), synchronized_file(local, "r") as h5:
        found = []
        for node in h5.walk_nodes("/"):
            frame = isinstance(node, tables.Table) or (
                isinstance(node, tables.Group) and is_pandas_node(node)
            )
            pandas_table = isinstance(node, tables.Table) and is_pandas_node(node)
            if frame and not pandas_table and fnmatch.fnmatchcase(node._v_pathname, pattern):
                found.append(node._v_pathname)
        return found


def _read_matching_nodes(files: Sequence[str], pattern: str, request: _Request) -> dd.DataFrame | dd.Series:
    """Every node ``pattern`` matches in each of ``files``, in order, as one frame (``dd.read_hdf``'s key patterns)."""
    options = request.storage_options
    pairs = [(f, n) for f in files for n in matching_nodes(f, pattern, request.allow_pickles, options)]
    if not pairs:
        raise tables.NoSuchNodeError(
            f"{files[0]}: no table matches the node pattern {pattern!r} in {len(files)} file(s)"
        )
    if len(pairs) > 1 and (request.start or request.stop is not None):  # start=0: every row
        raise ValueError(
            f"{pairs[0][0]}: start/stop with a node pattern that matches {len(pairs)} nodes is ambiguous "
            "(rows of each node, or of all?): read the nodes one by one"
        )
    frames = [_read_node([f], n, request) for f, n in pairs]  # n literally, though it may hold "*"
    return frames[0] if len(frames) == 1 else dd.concat(frames)


def _open_tables(
    files: Sequence[str],
    node: str,
    inspect: Callable[[tables.Leaf], _TableInfo | None],
    direct: bool | None,
    allow_pickles: bool,
    storage_options: Mapping[str, Any] | None = None,
) -> list[tuple[TablesSource, _TableInfo]] | None:
    """Each file's table and what ``inspect`` learns of it; ``None`` if a file holds a frame pandas wrote."""
    opened = []
    for file in files:
        try:
            source, info = TablesSource.open_inspecting(
                file, node, inspect, None, direct, allow_pickles, made_by="read_table",
                storage_options=storage_options,
            )  # fmt: skip
        except TypeError:
            if is_url(file):  # a group: pandas' frame, or not a table at all
                return None
            if is_pandas_table(file, node):  # pandas' group, not its table
                return None
            raise
        if info is None:
            return None
        opened.append((source, info))
    return opened


def _check_same_tables(sources: Sequence[TablesSource], infos: Sequence[_TableInfo]) -> None:
    first = sources[0]
    for source, info in zip(sources[1:], infos[1:], strict=True):
        if source.dtype != first.dtype or info.layout != infos[0].layout:
            raise ValueError(
                f"{source.path}: node {source.node} has records {source.dtype}, which differ from "
                f"{first.path} ({first.dtype}); the files' tables cannot be read as one frame"
            )
