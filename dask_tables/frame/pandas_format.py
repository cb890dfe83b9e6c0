"""Tables that pandas wrote (``HDFStore(format="table")``), read per partition as pandas reads them.

pandas stores a frame as a group (``/key``) holding a PyTables ``Table``
(``/key/table``) whose columns pack several frame columns into
multidimensional "values blocks", with the frame's dtypes, index and
encoding in attributes.  Rather than re-implement that format, the frame is
built with pandas' own machinery (:mod:`.pandas_select`):

- each task reads its rows like any table's (directly, decoding outside
  every lock) and converts them with the storer pandas built for the table,
  detached from the file: values, dtypes and index equal ``select``'s;
- a ``where`` is translated by pandas' parser into the PyTables condition
  pandas runs, and each task evaluates it in kernel on the chunks the
  column index flags, as for a PyTables table
  (:func:`~dask_tables.frame.conditions.read_matching`).

When pandas evaluates part of ``where`` in memory after the read (terms on
``columns``, a long ``index in [...]``; see
:class:`~dask_tables.frame.pandas_select.PandasWhere`), or the detached
conversion differs from pandas' ``select`` on the table's first rows, each
task asks pandas itself (``HDFStore.select(key, where, start, stop,
columns)``) under the registry lock: serial, and exactly pandas'.

A pandas ``Series`` stored as a table reads as a dask ``Series``, as
:func:`pandas.read_hdf` returns a ``Series`` for it.  Divisions are known
when the index (numbers or datetimes, whatever the columns are) is sorted:
pandas reads the index values of a few rows per partition when the frame is
built, and each task checks its own rows.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
from collections.abc import Hashable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import dask.dataframe as dd
import numpy as np
import pandas as pd
import tables

from ..array.source import TablesSource
from ..errors import REBUILD_FRAME, at_node, change_advice, unreadable_file
from ..hdf5.fingerprint import Fingerprint, check_unchanged
from ..hdf5.pickles import pickle_refusals, refusing_pickles
from ..registry import get_lock, synchronized_file
from ..remote.shadow import open_shadow
from ..remote.urls import is_url
from .conditions import Condition, read_matching
from .pandas_select import PandasConversion, PandasQuery, PandasWhere
from .partitions import (
    RowRange,
    coordinate_partitions,
    divisions_or_reason,
    partition_rows,
    plan_partitions,
    row_window,
    sample_rows,
    unsorted_reason,
)

__all__ = ["PandasTableReader", "is_pandas_node", "is_pandas_table", "read_pandas_table"]


# dask.dataframe.read_hdf's message for a 'fixed' store, word for word: users' code matches it.
FIXED_FORMAT = """
This HDFStore is not partitionable and can only be use monolithically with
pandas.  In the future when creating HDFStores use the ``format='table'``
option to ensure that your dataset can be parallelized"""


def is_pandas_node(node: tables.Node) -> bool:
    """Whether ``node`` is a pandas ``format="table"`` frame (its group, or the table in it)."""
    group = node if isinstance(node, tables.Group) else node._v_parent
    if isinstance(node, tables.Table) and node._v_name != "table":
        return False
    return "pandas_type" in group._v_attrs._v_attrnamesuser


def is_pandas_table(path: str, node: str) -> bool:
    """Whether ``node`` of the file ``path`` is a pandas-written frame (opens the file)."""
    with refusing_pickles(), get_lock(), synchronized_file(path, "r") as h5:
        try:
            return is_pandas_node(h5.get_node(node))
        except tables.NoSuchNodeError:
            return False


def _key(path: str, node: str) -> str:
    """The store key of ``node``: its group when it is the table in a pandas group (``/frame/table``).

    A key may itself be named ``table`` (``"/table"``, or ``"/table/table"``
    for its table): the file says which.
    """
    if not node.endswith("/table"):
        return node
    with refusing_pickles(), get_lock(), synchronized_file(path, "r") as h5:
        try:
            leaf = h5.get_node(node)
        except tables.NoSuchNodeError:
            return node
        return leaf._v_parent._v_pathname if isinstance(leaf, tables.Table) and is_pandas_node(leaf) else node


@dataclass(frozen=True)
class PandasTableReader:
    """Reads one partition of a pandas-written table: directly, or with pandas' ``select`` under the lock.

    Attributes
    ----------
    files : tuple of (str, Fingerprint)
        Each file and its fingerprint when the frame was built.
    key : str
        The frame's key in the store.
    selected : tuple of str or None
        The columns to read (``None``: all).
    where : PandasQuery or None
        A pandas ``where`` and the values of its names (or row numbers).
    index : str or None
        A column to make the index.
    allow_pickles : bool
        Let PyTables unpickle any attribute.
    conversions : tuple of PandasConversion
        Set (one per file) when the direct path applies: the task reads the
        records like any table's and converts them with pandas' own code.
        Empty: the task asks pandas' ``select`` under the registry lock.
    tables : tuple of TablesSource
        With ``conversions``: each file's ``/key/table``, read as records.
    conditions : tuple of (Condition or None)
        With ``conversions`` and ``where``: the PyTables condition pandas
        runs for ``where``, checked against each file's table.
    sorted_index : bool
        The divisions assume the index is sorted: check each partition.
    series : bool
        The node holds a pandas Series: partitions are Series named ``name``.
    name : hashable
        The Series' name.
    """

    files: tuple[tuple[str, Fingerprint], ...]
    key: str
    selected: tuple[str, ...] | None
    where: PandasQuery | None
    index: str | None
    allow_pickles: bool = False
    conversions: tuple[PandasConversion, ...] = ()
    tables: tuple[TablesSource, ...] = ()
    conditions: tuple[Condition | None, ...] = ()
    sorted_index: bool = False
    series: bool = False
    name: Hashable = None

    @property
    def direct(self) -> bool:
        """Whether tasks read records directly (else pandas reads them under the lock)."""
        return bool(self.conversions)

    def select(
        self, number: int, start: int, stop: int, rows: tuple[int, ...] | None = None
    ) -> pd.DataFrame | pd.Series:
        """pandas' ``HDFStore.select`` of rows ``[start, stop)`` of file ``number`` (a Series for a Series).

        With ``rows`` (``where`` was row numbers): those rows of the file,
        all in ``[start, stop)``, in their order.
        """
        path = self.files[number][0]
        read_columns = None if self.selected is None else list(self.selected)
        if read_columns is not None and self.index is not None and self.index not in read_columns:
            read_columns.append(self.index)
        if self.direct:
            frame = self._converted(number, start, stop, read_columns, rows)
        else:
            frame = self._pandas_select(number, start, stop, read_columns, rows)
        if self.index is not None:
            frame = frame.set_index(self.index)
        if self.sorted_index and not frame.index.is_monotonic_increasing:
            raise ValueError(
                f"{at_node(path, self.key)}: the index is not sorted in rows {start}..{stop - 1}, though the "
                "rows sampled when the frame was built were: read with sorted_index=False"
            )
        return frame  # pandas' read selected the columns: in its order, a repeated name once

    def _converted(
        self, number: int, start: int, stop: int, columns: list[str] | None, rows: tuple[int, ...] | None
    ) -> pd.DataFrame | pd.Series:
        """The direct path: records read like any table's (``where``'s in kernel), converted by pandas' code."""
        source = self.tables[number]
        condition = self.conditions[number] if self.conditions else None
        if rows is not None:
            records = source[start:stop][np.asarray(rows, dtype=np.int64) - start]
        elif condition is None or stop <= start:  # no rows (the meta): no index lookup
            records = source[start:stop]
        else:
            records, _ = read_matching(source, condition, start, stop)
        return self.conversions[number].to_frame(records, columns)

    def _pandas_select(
        self, number: int, start: int, stop: int, columns: list[str] | None, rows: tuple[int, ...] | None
    ) -> pd.DataFrame | pd.Series:
        """pandas' own ``select``, under the registry lock (serial)."""
        path, fingerprint = self.files[number]
        where = None if self.where is None else self.where.where()
        if rows is not None:
            where, start, stop = np.asarray(rows, dtype=np.int64), None, None
        with refusing_pickles(not self.allow_pickles), get_lock():
            check_unchanged(path, self.key, fingerprint)
            with pd.HDFStore(path, mode="r") as store:
                frame = store.select(self.key, where=where, start=start, stop=stop, columns=columns)
            check_unchanged(path, self.key, fingerprint)
        return frame

    def __call__(self, part: RowRange, columns: Sequence[str] | None = None) -> pd.DataFrame | pd.Series:
        """Read ``part``; ``columns`` (dask's column projection) reads only those."""
        with change_advice(REBUILD_FRAME):
            return self._read(part, columns)

    def _read(self, part: RowRange, columns: Sequence[str] | None = None) -> pd.DataFrame | pd.Series:
        """The partition read of :meth:`__call__`: ``columns`` (dask's column projection) reads only those."""
        reader = self
        if columns is not None and not self.series:
            wanted = [columns] if isinstance(columns, str) else list(columns)
            reader = dataclasses.replace(self, selected=tuple(c for c in wanted if c != self.index))
        return reader.select(part.file, part.start, part.stop, part.rows)


@dataclass(frozen=True)
class _Described:
    """What the build learns from one file's pandas table.

    Attributes
    ----------
    rows, chunk_rows, row_nbytes : int
        Rows of the table, rows per HDF5 chunk, bytes per row.
    series : bool
        The node holds a pandas Series (named ``name``).
    name : hashable
        The Series' name.
    conversion : PandasConversion or None
        pandas' conversion, detached; ``None`` when pandas must read the
        partitions itself (a ``where`` it evaluates partly in memory).
    where : PandasWhere or None
        ``where``, translated.
    """

    rows: int
    chunk_rows: int
    row_nbytes: int
    series: bool
    name: Hashable
    conversion: PandasConversion | None
    where: PandasWhere | None


def _describe(
    path: str,
    fingerprint: Fingerprint,
    key: str,
    where: PandasQuery | None,
    columns: Sequence[str] | None,
    index: str | None,
    allow_pickles: bool,
    shown: str | None = None,
) -> _Described:
    """Sizes, kind and pandas' conversion of the pandas table ``key``; checks ``where`` and translates it.

    ``shown`` names the file in messages (a URL whose shadow is ``path``).
    """
    at = shown or path
    with (
        _refused_pickle_explained(at, key, allow_pickles),
        refusing_pickles(not allow_pickles),
        get_lock(),
        pd.HDFStore(path, mode="r") as store,
    ):
        storer = store.get_storer(key)
        if not storer.is_table:
            raise TypeError(
                f"{at_node(at, key)} was written by pandas in the 'fixed' format, which has no rows "
                f"to partition; read it with pandas.read_hdf, or write it with format='table'.{FIXED_FORMAT}"
            )
        table = storer.table
        sizes = int(table.nrows), int(table.chunkshape[0]) if table.chunkshape else 1, int(table.rowsize)
        stored = store.select(key, start=0, stop=0)
        series = isinstance(stored, pd.Series)
        name = stored.name if series else None
        if series and (columns is not None or index is not None):
            raise ValueError(
                f"{at_node(at, key)} holds a pandas Series (name {name!r}), which has no columns: "
                "leave out columns= and index="
            )
        translated = None
        if where is not None and where.rows is None:
            with _invalid_where_explained(at, key, where):
                store.select(key, where=where.where(), start=0, stop=0)  # pandas checks it all
                translated = PandasWhere.of(storer, where.where(), repr(where))
        direct = translated is None or translated.in_memory is None
        conversion = PandasConversion.of(storer, (path, fingerprint)) if direct else None
        return _Described(*sizes, series, name, conversion, translated)


@contextlib.contextmanager
def _refused_pickle_explained(path: str, key: str, allow_pickles: bool) -> Iterator[None]:
    """Turn pandas' failure after the pickle gate refused an attribute into an error naming it, and the way out."""
    with pickle_refusals() as refused:
        try:
            yield
        except Exception as err:
            if allow_pickles or not refused:
                raise
            named = ", ".join(
                f"{attribute!r} (a pickled {kind})" for attribute, kind in dict.fromkeys(refused)
            )
            raise ValueError(
                f"{at_node(path, key)}: pandas needs the attributes {named} of this table, which dask_tables "
                f"does not unpickle: they could run code; pass allow_pickles=True if you trust the file "
                f"(pandas then failed with {type(err).__name__}: {err})"
            ) from None


@contextlib.contextmanager
def _invalid_where_explained(path: str, key: str, where: PandasQuery) -> Iterator[None]:
    """Turn pandas' errors on an invalid ``where`` into ours, naming the file and node."""
    try:
        yield
    except (
        ValueError,
        SyntaxError,
        NameError,
        TypeError,
        KeyError,
        AttributeError,
        NotImplementedError,
    ) as err:
        kind = type(err) if isinstance(err, (SyntaxError, NameError, TypeError)) else ValueError
        raise kind(f"{at_node(path, key)}: invalid pandas where {where!r}: {err}") from None


def _sampled_labels(
    path: str, key: str, parts: Sequence[RowRange], index: str | None, series: bool, allow_pickles: bool
) -> list[pd.Index]:
    """The index labels (or ``index`` column values) of the sampled rows of ``parts`` of one file.

    pandas reads them (``select`` of row coordinates), so they convert as
    pandas converts them: datetimes in their unit and time zone.
    """
    rows = [sample_rows(part) for part in parts]
    columns = None if series else [] if index is None else [index]
    with refusing_pickles(not allow_pickles), get_lock(), pd.HDFStore(path, mode="r") as store:
        sampled = store.select(key, where=np.concatenate(rows), columns=columns)
    labels = sampled.index if index is None else pd.Index(sampled[index])
    ends = np.cumsum([len(r) for r in rows])
    return [labels[end - len(r) : end] for r, end in zip(rows, ends, strict=True)]


def _index_values(
    path: str, key: str, parts: Sequence[RowRange], index: str | None, allow_pickles: bool
) -> Iterator[tuple[RowRange, pd.Index]]:
    """Each of ``parts`` (of one file) with all its index labels (or ``index`` column values), as pandas reads them.

    pandas reads the one column (``select_column``: the table's index, or a
    data column); an ``index`` column packed with others is read with them.
    """
    with refusing_pickles(not allow_pickles), get_lock(), pd.HDFStore(path, mode="r") as store:
        for part in parts:
            if part.stop <= part.start:
                continue
            try:
                values = store.select_column(key, index or "index", start=part.start, stop=part.stop)
            except (KeyError, ValueError):  # not a column of its own
                values = store.select(key, columns=[index], start=part.start, stop=part.stop)[index]
            yield part, pd.Index(values)


def _divisions(
    paths: Sequence[str],
    key: str,
    parts: Sequence[RowRange],
    index: str | None,
    series: bool,
    sorted_index: bool | None,
    allow_pickles: bool,
) -> tuple[Any, ...] | None:
    """Known divisions, only where the index is sorted, or ``None``; raise if ``sorted_index=True`` and unknown.

    Sampled rows refute an unsorted index cheaply; where they look sorted,
    every label is read once (pandas' ``select_column``: 3 ms for 400,000
    rows of a narrow table) so that the divisions are true and no task
    can find them false.
    """
    if sorted_index is False or all(p.stop == p.start for p in parts):
        return None
    samples: list[pd.Index] = []
    for number, path in enumerate(paths):
        mine = [p for p in parts if p.file == number and p.stop > p.start]
        if mine:
            samples += _sampled_labels(path, key, mine, index, series, allow_pickles)
    divisions, reason = divisions_or_reason(samples)
    if divisions is not None:  # the samples cannot see between them: every value, once
        every = (
            value
            for number, path in enumerate(paths)
            for value in _index_values(
                path, key, [p for p in parts if p.file == number], index, allow_pickles
            )
        )
        reason = unsorted_reason(every)
        divisions = None if reason else divisions
    if divisions is None and sorted_index:
        what = "the index" if index is None else f"the index column {index!r}"
        raise ValueError(
            f"{at_node(paths[0], key)}: sorted_index=True, but the values of {what} sampled when the frame "
            f"was built give no divisions: {reason}"
        )
    return divisions


def read_pandas_table(
    files: Sequence[str],
    node: str,
    *,
    columns: Sequence[str] | None,
    where: PandasQuery | None,
    chunksize: int | None,
    index: str | None,
    sorted_index: bool | None,
    start: int | None,
    stop: int | None,
    direct: bool | None,
    allow_pickles: bool,
    storage_options: Mapping[str, Any] | None = None,
) -> dd.DataFrame | dd.Series:
    """:func:`dask_tables.read_table` for tables that pandas wrote; see there.

    From URLs, pandas opens each object's shadow (its metadata) when the
    frame is built, and tasks read records directly from the object.
    """
    columns = [columns] if isinstance(columns, str) else columns
    if any(is_url(f) for f in files):
        return _read_remote(
            files, node, columns, where, chunksize, index, sorted_index, start, stop, direct, allow_pickles,
            storage_options,
        )  # fmt: skip
    paths = [os.path.abspath(f) for f in files]
    key = _key(paths[0], node)
    fingerprints = [Fingerprint.of(p) for p in paths]
    described = _describe_files(paths, fingerprints, key, where, columns, index, allow_pickles)
    reader = _reader(paths, fingerprints, key, described, columns, where, index, direct, allow_pickles)
    meta = _meta(reader, paths[0], key, columns, index)
    first = described[0]
    total = sum(d.rows for d in described)
    # dd.read_hdf's window: out of range is a ValueError in dask's words (pandas clamps; issue 23 keeps dask's)
    low, high = row_window(start, stop, total, at_node(paths[0], key))
    rows = partition_rows(chunksize, first.chunk_rows, first.row_nbytes)
    parts = plan_partitions([d.rows for d in described], rows, low, high)
    if where is not None and where.rows is not None:
        numbers = _coordinates(where.rows, low, high, at_node(paths[0], key))
        parts = coordinate_partitions(parts, numbers)
        divisions = None
    else:
        divisions = _divisions(paths, key, parts, index, first.series, sorted_index, allow_pickles)
    reader = dataclasses.replace(reader, sorted_index=divisions is not None)
    return dd.from_map(
        reader, parts, meta=meta, divisions=divisions, label="read-table", enforce_metadata=False
    )


def _read_remote(
    urls: Sequence[str],
    node: str,
    columns: Sequence[str] | None,
    where: PandasQuery | None,
    chunksize: int | None,
    index: str | None,
    sorted_index: bool | None,
    start: int | None,
    stop: int | None,
    direct: bool | None,
    allow_pickles: bool,
    storage_options: Mapping[str, Any] | None,
) -> dd.DataFrame | dd.Series:
    """:func:`read_pandas_table` of objects: pandas reads each shadow's metadata, tasks read records directly.

    Nothing pandas reads through HDF5 may come from bytes not fetched, so
    the tasks always take the direct path, and the index values that
    decide divisions are read by the same reader, from the object.
    """
    located = [open_shadow(url, storage_options) for url in urls]
    names = [remote.name for remote, _ in located]
    shadows = [shadow.path for _, shadow in located]
    key = _key(shadows[0], node)
    if where is not None and where.rows is not None:
        raise NotImplementedError(
            f"{at_node(names[0], key)}: a where of row numbers or a mask is read from local files only; "
            "from a URL, give a where of terms on data columns and the index"
        )
    fingerprints = [Fingerprint.of(p) for p in shadows]
    described = _describe_files(shadows, fingerprints, key, where, columns, index, allow_pickles, names)
    if any(d.conversion is None for d in described):
        raise NotImplementedError(
            f"{at_node(names[0], key)}: this where ({where!r}) is evaluated by pandas' own select after "
            "the read, which reads from local disk only; from a URL, use a where on data columns and "
            "the index alone (pandas' in-kernel terms), or copy the file to local disk"
        )
    reader = PandasTableReader(
        tuple(zip(names, fingerprints, strict=True)),
        key,
        None if columns is None else tuple(columns),
        where,
        index,
        allow_pickles,
        series=described[0].series,
        name=described[0].name,
    )

    def condition(table: tables.Table, translated: PandasWhere | None) -> Condition | None:
        return (
            None
            if translated is None or translated.condition is None
            else Condition.of(table, translated.condition)
        )

    opened = [
        TablesSource.open_inspecting(
            url,
            key + "/table",
            functools.partial(condition, translated=d.where),
            None,
            direct,
            allow_pickles,
            made_by="read_table",
            storage_options=storage_options,
        )
        for url, d in zip(urls, described, strict=True)
    ]
    for source, _ in opened:
        if source.storage is None:
            raise NotImplementedError(
                f"{at_node(source.path, key)}: the table is read through HDF5 (not directly), which pandas "
                "does from local disk only; copy the file to local disk"
            )
    reader = dataclasses.replace(
        reader,
        conversions=tuple(d.conversion for d in described if d.conversion is not None),
        tables=tuple(source for source, _ in opened),
        conditions=() if where is None else tuple(c for _, c in opened),
    )
    meta = _meta(reader, names[0], key, columns, index)
    first = described[0]
    low, high = row_window(start, stop, sum(d.rows for d in described), at_node(names[0], key))
    rows = partition_rows(chunksize, first.chunk_rows, first.row_nbytes)
    parts = plan_partitions([d.rows for d in described], rows, low, high)
    divisions = _remote_divisions(reader, names[0], parts, index, sorted_index)
    reader = dataclasses.replace(reader, sorted_index=divisions is not None)
    return dd.from_map(
        reader, parts, meta=meta, divisions=divisions, label="read-table", enforce_metadata=False
    )


def _remote_divisions(
    reader: PandasTableReader,
    name: str,
    parts: Sequence[RowRange],
    index: str | None,
    sorted_index: bool | None,
) -> tuple[Any, ...] | None:
    """:func:`_divisions` for objects: every index value read once by ``reader`` (directly), no ``where``."""
    if sorted_index is False or all(p.stop == p.start for p in parts):
        return None
    only_index = None if reader.series else () if index is None else (index,)
    every_row = dataclasses.replace(reader, where=None, conditions=(), selected=only_index)
    labels = [
        (part, every_row.select(part.file, part.start, part.stop).index)
        for part in parts
        if part.stop > part.start
    ]
    divisions, reason = divisions_or_reason([values for _, values in labels])
    if divisions is not None:
        reason = unsorted_reason(labels)
        divisions = None if reason else divisions
    if divisions is None and sorted_index:
        what = "the index" if index is None else f"the index column {index!r}"
        raise ValueError(
            f"{at_node(name, reader.key)}: sorted_index=True, but the values of {what} read when the frame "
            f"was built give no divisions: {reason}"
        )
    return divisions


def _describe_files(
    paths: Sequence[str],
    fingerprints: Sequence[Fingerprint],
    key: str,
    where: PandasQuery | None,
    columns: Sequence[str] | None,
    index: str | None,
    allow_pickles: bool,
    names: Sequence[str] | None = None,
) -> list[_Described]:
    """:func:`_describe` of each file, which must not change meanwhile (``names``: how messages show them)."""
    read_columns = None if columns is None else list(dict.fromkeys([*columns, *([index] if index else [])]))
    try:
        described = [
            _describe(path, fingerprint, key, where, read_columns, index, allow_pickles, shown)
            for path, fingerprint, shown in zip(paths, fingerprints, names or paths, strict=True)
        ]
    except tables.HDF5ExtError as err:  # pragma: no cover - locked or damaged after the first open
        damaged = f"{paths[0]}: damaged HDF5 file (asked for node {key})"
        raise unreadable_file(paths[0], key, err, damaged) from err
    for path, fingerprint in zip(paths, fingerprints, strict=True):
        check_unchanged(path, key, fingerprint)
    return described


def _reader(
    paths: Sequence[str],
    fingerprints: Sequence[Fingerprint],
    key: str,
    described: Sequence[_Described],
    columns: Sequence[str] | None,
    where: PandasQuery | None,
    index: str | None,
    direct: bool | None,
    allow_pickles: bool,
) -> PandasTableReader:
    """The partition reader: direct when every file's table converts with pandas' detached code."""
    reader = PandasTableReader(
        tuple(zip(paths, fingerprints, strict=True)),
        key,
        None if columns is None else tuple(columns),
        where,
        index,
        allow_pickles,
        series=described[0].series,
        name=described[0].name,
    )
    if any(d.conversion is None for d in described):
        return reader
    opened = [
        _open_table(path, key, d.where, direct, allow_pickles)
        for path, d in zip(paths, described, strict=True)
    ]
    return dataclasses.replace(
        reader,
        conversions=tuple(d.conversion for d in described),
        tables=tuple(source for source, _ in opened),
        conditions=() if where is None or where.rows is not None else tuple(c for _, c in opened),
    )


def _open_table(
    path: str, key: str, where: PandasWhere | None, direct: bool | None, allow_pickles: bool
) -> tuple[TablesSource, Condition | None]:
    """The table ``key/table`` of ``path`` as records, and the PyTables condition pandas runs for ``where``."""

    def condition(table: tables.Table) -> Condition | None:
        return None if where is None or where.condition is None else Condition.of(table, where.condition)

    return TablesSource.open_inspecting(
        path, key + "/table", condition, None, direct, allow_pickles, made_by="read_table"
    )


def _coordinates(rows: np.ndarray, low: int, high: int, where: str) -> np.ndarray:
    """The row numbers a ``where`` of row numbers or a boolean mask selects in ``[low, high)``, as pandas' ``Selection``.

    Raises
    ------
    ValueError
        A mask whose length is not that of the rows, or a row number
        outside them (pandas' own messages).
    """
    if rows.dtype == np.bool_:
        if len(rows) != high - low:
            raise ValueError(
                f"{where}: where is a boolean mask of {len(rows)} values for the {high - low} rows "
                f"{low}..{high}: pandas raises (boolean index did not match)"
            )
        return np.arange(low, high)[rows]
    invalid = rows[(rows < low) | (rows >= high)]
    if len(invalid):
        raise ValueError(
            f"{where}: where must have index locations >= start and < stop, but got "
            f"{invalid[:5].tolist()}{' ...' if len(invalid) > 5 else ''} with start={low} and stop={high}"
        )
    return rows.astype(np.int64)


def _meta(
    reader: PandasTableReader, path: str, key: str, columns: Any, index: str | None
) -> pd.DataFrame | pd.Series:
    try:
        return reader.select(0, 0, 0, None)
    except KeyError as err:
        raise KeyError(
            f"{at_node(path, key)}: unknown column in columns={columns!r} or index={index!r}: {err}"
        ) from None
