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
task of a local file asks pandas itself (``HDFStore.select(key, where,
start, stop, columns)``) under the registry lock: serial, and exactly
pandas'.  From a URL, where pandas cannot read, tasks read the rows that
match the condition directly and pandas' own code applies the rest of
``where`` to them (:meth:`~dask_tables.frame.pandas_select.PandasConversion.to_frame`).

What the build learns from each file before the partitions are planned is
:mod:`.pandas_describe`.

A pandas ``Series`` stored as a table reads as a dask ``Series``, as
:func:`pandas.read_hdf` returns a ``Series`` for it.  Divisions are known
when the index (numbers or datetimes, whatever the columns are) is sorted:
pandas reads the index values of a few rows per partition when the frame is
built, and each task checks its own rows.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Hashable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import dask.dataframe as dd
import numpy as np
import pandas as pd
import tables

from ..array.source import TablesSource
from ..errors import REBUILD_FRAME, at_node, change_advice
from ..hdf5.fingerprint import Fingerprint, check_unchanged
from ..hdf5.pickles import refusing_pickles
from ..registry import get_lock, synchronized_file
from ..remote.shadow import open_shadow
from ..remote.urls import is_url
from .conditions import Condition, read_matching
from .pandas_describe import Described, describe_files, is_pandas_node, store_key
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


def is_pandas_table(path: str, node: str) -> bool:
    """Whether ``node`` of the file ``path`` is a pandas-written frame (opens the file)."""
    with refusing_pickles(), get_lock(), synchronized_file(path, "r") as h5:
        try:
            return is_pandas_node(h5.get_node(node))
        except tables.NoSuchNodeError:
            return False


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
    sources : tuple of TablesSource
        With ``conversions``: each file's ``/key/table``, read as records.
    conditions : tuple of (Condition or None)
        With ``conversions`` and ``where``: the PyTables condition pandas
        runs for ``where``, checked against each file's table.
    sorted_index : bool
        The divisions assume the index is sorted: check each partition.
    filtered : bool
        ``where`` has terms pandas applies in memory after the read
        (:attr:`PandasWhere.filtered`); direct tasks apply them with
        pandas' code, and dask's column projection is taken after them.
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
    sources: tuple[TablesSource, ...] = ()
    conditions: tuple[Condition | None, ...] = ()
    sorted_index: bool = False
    filtered: bool = False
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
        source = self.sources[number]
        condition = self.conditions[number] if self.conditions else None
        if rows is not None:
            records = source[start:stop][np.asarray(rows, dtype=np.int64) - start]
        elif condition is None or stop <= start:  # no rows (the meta): no index lookup
            records = source[start:stop]
        else:
            records, _ = read_matching(source, condition, start, stop)
        where = self.where.where() if self.filtered and self.where is not None and rows is None else None
        return self.conversions[number].to_frame(records, columns, where)

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
        if columns is None or self.series:
            return self.select(part.file, part.start, part.stop, part.rows)
        wanted = [columns] if isinstance(columns, str) else list(columns)
        projected = [c for c in wanted if c != self.index]
        if self.filtered:  # pandas' terms after the read may name any column: read them all, then project
            return self.select(part.file, part.start, part.stop, part.rows)[projected]
        reader = dataclasses.replace(self, selected=tuple(projected))
        return reader.select(part.file, part.start, part.stop, part.rows)


def _sampled_labels(
    paths: Sequence[str], reader: PandasTableReader, parts: Sequence[RowRange], index: str | None
) -> list[pd.Index]:
    """The index labels (or ``index`` column values) of the sampled rows of each non-empty part, in order.

    pandas reads them (``select`` of row coordinates), so they convert as
    pandas converts them: datetimes in their unit and time zone.
    """
    samples: list[pd.Index] = []
    columns = None if reader.series else [] if index is None else [index]
    for number, path in enumerate(paths):
        rows = [sample_rows(p) for p in parts if p.file == number and p.stop > p.start]
        if not rows:
            continue
        with refusing_pickles(not reader.allow_pickles), get_lock(), pd.HDFStore(path, mode="r") as store:
            sampled = store.select(reader.key, where=np.concatenate(rows), columns=columns)
        labels = sampled.index if index is None else pd.Index(sampled[index])
        ends = np.cumsum([len(r) for r in rows])
        samples += [labels[end - len(r) : end] for r, end in zip(rows, ends, strict=True)]
    return samples


def _index_values(
    paths: Sequence[str], reader: PandasTableReader, parts: Sequence[RowRange], index: str | None
) -> Iterator[tuple[RowRange, pd.Index]]:
    """Each non-empty part with all its index labels (or ``index`` column values), as pandas reads them.

    pandas reads the one column (``select_column``: the table's index, or a
    data column); an ``index`` column packed with others is read with them.
    """
    key = reader.key
    for number, path in enumerate(paths):
        mine = [p for p in parts if p.file == number and p.stop > p.start]
        with refusing_pickles(not reader.allow_pickles), get_lock(), pd.HDFStore(path, mode="r") as store:
            for part in mine:
                try:
                    values = store.select_column(key, index or "index", start=part.start, stop=part.stop)
                except (KeyError, ValueError):  # not a column of its own
                    values = store.select(key, columns=[index], start=part.start, stop=part.stop)[index]
                yield part, pd.Index(values)


def _divisions(
    located: _Located,
    reader: PandasTableReader,
    parts: Sequence[RowRange],
    index: str | None,
    sorted_index: bool | None,
) -> tuple[Any, ...] | None:
    """Known divisions, only where the index is sorted, or ``None``; raise if ``sorted_index=True`` and unknown.

    Local files: pandas reads a few sampled rows a partition, which refute
    an unsorted index cheaply; where they look sorted, every label is read
    once (pandas' ``select_column``: 3 ms for 400,000 rows of a narrow
    table) so that the divisions are true and no task can find them false.
    Objects: ``reader`` reads every label once, directly from the object
    (pandas reads only the shadow, whose rows were not fetched).
    """
    if sorted_index is False or all(p.stop == p.start for p in parts):
        return None
    if located.remote:
        labels = _labels_read(reader, parts, index)
        sampled, every = [values for _, values in labels], iter(labels)
    else:
        sampled = _sampled_labels(located.paths, reader, parts, index)
        every = _index_values(located.paths, reader, parts, index)  # a generator: read only if needed
    divisions, reason = divisions_or_reason(sampled)
    if divisions is not None:  # the samples cannot see between them: every value, once
        reason = unsorted_reason(every)
        divisions = None if reason else divisions
    if divisions is None and sorted_index:
        what = "the index" if index is None else f"the index column {index!r}"
        raise ValueError(
            f"{at_node(located.names[0], reader.key)}: sorted_index=True, but the values of {what} read "
            f"when the frame was built give no divisions: {reason}"
        )
    return divisions


def _labels_read(
    reader: PandasTableReader, parts: Sequence[RowRange], index: str | None
) -> list[tuple[RowRange, pd.Index]]:
    """Each non-empty part with all its index labels (or ``index`` column values), read by ``reader``."""
    only_index = None if reader.series else () if index is None else (index,)
    every_row = dataclasses.replace(reader, where=None, conditions=(), filtered=False, selected=only_index)
    return [
        (part, every_row.select(part.file, part.start, part.stop).index)
        for part in parts
        if part.stop > part.start
    ]


@dataclass(frozen=True)
class _Located:
    """The files of a read: what tasks open, what pandas opens for metadata, how messages name them.

    Attributes
    ----------
    files : list of str
        What tasks read: the absolute paths, or the URLs.
    paths : list of str
        What pandas opens when the frame is built: the files, or the
        objects' shadows (their metadata on local disk).
    names : list of str
        How messages name them: the paths, or the URLs (without secrets).
    remote : bool
        The files are objects in a store.
    """

    files: list[str]
    paths: list[str]
    names: list[str]
    remote: bool

    @classmethod
    def of(cls, files: Sequence[str], storage_options: Mapping[str, Any] | None) -> _Located:
        """Locate ``files``: local paths, or URLs whose shadows are opened (fetched once per version)."""
        if not any(is_url(f) for f in files):
            paths = [os.path.abspath(f) for f in files]
            return cls(paths, paths, paths, False)
        located = [open_shadow(url, storage_options) for url in files]
        names = [remote.name for remote, _ in located]
        return cls(list(files), [shadow.path for _, shadow in located], names, True)


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
    frame is built, and tasks read records directly from the object (a
    table stored in at most 256 KiB may be read through HDF5, from the
    shadow, which holds it whole).

    Examples
    --------
    >>> import pandas as pd
    >>> pd.DataFrame({"a": range(10)}).to_hdf("pandas_table.h5", key="f", format="table")
    >>> frame = read_pandas_table(
    ...     ["pandas_table.h5"], "/f", columns=None, where=None, chunksize=4, index=None,
    ...     sorted_index=None, start=None, stop=None, direct=None, allow_pickles=False,
    ... )
    >>> int(frame["a"].sum().compute())
    45
    """
    columns = [columns] if isinstance(columns, str) else columns
    located = _Located.of(files, storage_options)
    key = store_key(located.paths[0], node)
    shown = at_node(located.names[0], key)
    fingerprints = [Fingerprint.of(p) for p in located.paths]
    described = describe_files(
        located.paths, fingerprints, key, where, columns, index, allow_pickles, located.names
    )
    reader = _reader(
        located, fingerprints, key, described, columns, where, index, direct, allow_pickles, storage_options
    )
    meta = _meta(reader, located.names[0], key, columns, index)
    first = described[0]
    # dd.read_hdf's window: out of range is a ValueError in dask's words (pandas clamps; issue 23 keeps dask's)
    low, high = row_window(start, stop, sum(d.rows for d in described), shown)
    rows = partition_rows(chunksize, first.chunk_rows, first.row_nbytes)
    parts = plan_partitions([d.rows for d in described], rows, low, high)
    if where is not None and where.rows is not None:
        parts = coordinate_partitions(parts, _coordinates(where.rows, low, high, shown))
        divisions = None
    else:
        divisions = _divisions(located, reader, parts, index, sorted_index)
    reader = dataclasses.replace(reader, sorted_index=divisions is not None)
    return dd.from_map(
        reader, parts, meta=meta, divisions=divisions, label="read-table", enforce_metadata=False
    )


def _reader(
    located: _Located,
    fingerprints: Sequence[Fingerprint],
    key: str,
    described: Sequence[Described],
    columns: Sequence[str] | None,
    where: PandasQuery | None,
    index: str | None,
    direct: bool | None,
    allow_pickles: bool,
    storage_options: Mapping[str, Any] | None,
) -> PandasTableReader:
    """The partition reader: direct when every file's table converts with pandas' detached code.

    A local file whose ``where`` pandas evaluates partly in memory is read
    by pandas' ``select`` under the lock.  An object is always read by the
    direct reader (pandas reads from local disk only): its rows are those
    matching the condition, evaluated in kernel, and pandas' own code
    applies the rest of ``where`` to them (:attr:`PandasTableReader.filtered`).
    """
    translated = [d.where for d in described]
    reader = PandasTableReader(
        tuple(zip(located.names, fingerprints, strict=True)),
        key,
        None if columns is None else tuple(columns),
        where,
        index,
        allow_pickles,
        filtered=any(t is not None and t.filtered for t in translated),
        series=described[0].series,
        name=described[0].name,
    )
    if not located.remote and any(d.by_pandas for d in described):
        return reader
    if any(d.conversion is None for d in described):
        raise NotImplementedError(
            f"{at_node(located.names[0], key)}: pandas' conversion of this table's records, detached from "
            "the file, differs from pandas' select on its first rows, so pandas must read it itself, "
            "which it does from local disk only; copy the file to local disk"
        )
    opened = [
        _open_table(file, key, t, direct, allow_pickles, storage_options)
        for file, t in zip(located.files, translated, strict=True)
    ]
    return dataclasses.replace(
        reader,
        conversions=tuple(d.conversion for d in described if d.conversion is not None),
        sources=tuple(source for source, _ in opened),
        conditions=() if where is None or where.rows is not None else tuple(c for _, c in opened),
    )


def _open_table(
    file: str,
    key: str,
    where: PandasWhere | None,
    direct: bool | None,
    allow_pickles: bool,
    storage_options: Mapping[str, Any] | None,
) -> tuple[TablesSource, Condition | None]:
    """The table ``key/table`` of ``file`` (a path or URL) as records, and the PyTables condition pandas runs."""

    def condition(table: tables.Table) -> Condition | None:
        return None if where is None or where.condition is None else Condition.of(table, where.condition)

    return TablesSource.open_inspecting(
        file, key + "/table", condition, None, direct, allow_pickles, made_by="read_table",
        storage_options=storage_options,
    )  # fmt: skip


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
