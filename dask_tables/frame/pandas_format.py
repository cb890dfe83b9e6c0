"""Tables that pandas wrote (``HDFStore(format="table")``), read by pandas per partition.

pandas stores a frame as a group (``/key``) holding a PyTables ``Table``
(``/key/table``) whose columns pack several frame columns into
multidimensional "values blocks", with the frame's dtypes, index and
encoding in attributes.  Rather than re-implement that format, each partition
task asks pandas itself (``HDFStore.select(key, where, start, stop,
columns)``) under the registry lock, so the rows, dtypes and ``where``
syntax are exactly pandas'.  The lock makes those reads serial (pandas
reads through HDF5, which serializes them anyway).

The common case goes faster: with no ``where``, when the index and every
column read are plain numbers or booleans (pandas converts those with a mere
``astype``), a :class:`NumericLayout` says where each column sits in the
table's records, and the task reads the records like any table (directly,
decoding outside every lock) and builds the frame itself, with the dtypes of
pandas' own (zero-row) answer.

A pandas ``Series`` stored as a table reads as a dask ``Series``, as
:func:`pandas.read_hdf` returns a ``Series`` for it.  Divisions are known
when the index (numbers or datetimes, whatever the columns are) is sorted:
pandas reads the index values of a few rows per partition when the frame is
built, and each task checks its own rows.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Hashable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import dask.dataframe as dd
import numpy as np
import pandas as pd
import tables

from ..array.source import TablesSource
from ..errors import REBUILD_FRAME, NotHDF5FileError, change_advice
from ..hdf5.fingerprint import Fingerprint, check_unchanged
from ..hdf5.pickles import refusing_pickles
from ..registry import get_lock, synchronized_file
from .partitions import (
    RowRange,
    divisions_or_reason,
    partition_rows,
    plan_partitions,
    row_window,
    sample_rows,
)

__all__ = ["PandasTableReader", "is_pandas_node", "is_pandas_table", "read_pandas_table"]


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


def _key(node: str) -> str:
    return node[: -len("/table")] if node.endswith("/table") else node


NUMERIC_KINDS = {"integer", "float", "bool"}


@dataclass(frozen=True)
class NumericLayout:
    """Where the numeric columns of a pandas table sit in its records.

    Attributes
    ----------
    index_name : str or None
        The frame's index name.
    index_dtype : numpy.dtype
        The index's dtype.
    columns : tuple of (str, str, int or None, numpy.dtype)
        Frame column, table column (a data column, or a values block),
        position in the block (``None`` for a data column), dtype.
    """

    index_name: str | None
    index_dtype: np.dtype
    columns: tuple[tuple[str, str, int | None, np.dtype], ...]

    @classmethod
    def of(cls, storer: Any, meta: pd.DataFrame) -> NumericLayout | None:
        """The layout of the columns of ``meta`` (pandas' zero-row answer), if all are numeric.

        A Series is laid out as a frame of its one stored column (``"values"``
        for a Series without a name).
        """
        if len(storer.index_axes) != 1 or type(meta.index) is not pd.Index:
            return None
        if isinstance(meta, pd.Series):
            if len(storer.values_axes) != 1 or len(storer.values_axes[0].values) != 1:
                return None
            meta = meta.to_frame(name=storer.values_axes[0].values[0])
        index_axis = storer.index_axes[0]
        if index_axis.kind not in {"integer", "float"} or meta.index.dtype.kind not in "iuf":
            return None
        where: dict[str, tuple[str, int | None, np.dtype]] = {}
        for axis in storer.values_axes:
            if axis.kind not in NUMERIC_KINDS or axis.meta is not None:
                continue
            block = len(axis.values) > 1 or axis.cname.startswith("values_block_")
            for position, name in enumerate(axis.values):
                where[name] = (axis.cname, position if block else None, np.dtype(axis.dtype))
        columns = []
        for name, dtype in meta.dtypes.items():
            if name not in where or where[name][2] != dtype:
                return None
            columns.append((name, *where[name]))
        return cls(meta.index.name, meta.index.dtype, tuple(columns))

    def to_frame(self, records: np.ndarray, selected: Sequence[str]) -> pd.DataFrame:
        """The frame of ``records`` (rows of the pandas table) with the columns ``selected``."""
        by_name = {c[0]: c for c in self.columns}
        data = {}
        for name in selected:
            _, cname, position, dtype = by_name[name]
            values = records[cname] if position is None else records[cname][:, position]
            data[name] = values.astype(dtype)
        index = pd.Index(records["index"].astype(self.index_dtype), name=self.index_name)
        return pd.DataFrame(data, index=index, columns=list(selected))


@dataclass(frozen=True)
class PandasTableReader:
    """Reads one partition of a pandas-written table with pandas, under the registry lock.

    Attributes
    ----------
    files : tuple of (str, Fingerprint)
        Each file and its fingerprint when the frame was built.
    key : str
        The frame's key in the store.
    selected : tuple of str or None
        The columns to read (``None``: all).
    where : str or None
        A pandas ``where`` expression.
    index : str or None
        A column to make the index.
    allow_pickles : bool
        Let PyTables unpickle any attribute.
    numeric : NumericLayout or None
        Set when the fast path applies (no ``where``, numeric columns).
    tables : tuple of TablesSource
        With ``numeric``: each file's ``/key/table``, read as records.
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
    where: str | None
    index: str | None
    allow_pickles: bool = False
    numeric: NumericLayout | None = None
    tables: tuple[TablesSource, ...] = ()
    sorted_index: bool = False
    series: bool = False
    name: Hashable = None

    def select(self, number: int, start: int, stop: int) -> pd.DataFrame | pd.Series:
        """pandas' ``HDFStore.select`` of rows ``[start, stop)`` of file ``number`` (a Series for a Series)."""
        path, fingerprint = self.files[number]
        read_columns = None if self.selected is None else list(self.selected)
        if read_columns is not None and self.index is not None and self.index not in read_columns:
            read_columns.append(self.index)
        if self.numeric is not None:
            names = read_columns if read_columns is not None else [c[0] for c in self.numeric.columns]
            frame = self.numeric.to_frame(self.tables[number][start:stop], names)
            if self.series:
                frame = frame.iloc[:, 0].rename(self.name)
        else:
            with refusing_pickles(not self.allow_pickles), get_lock():
                check_unchanged(path, self.key, fingerprint)
                with pd.HDFStore(path, mode="r") as store:
                    frame = store.select(
                        self.key, where=self.where, start=start, stop=stop, columns=read_columns
                    )
                check_unchanged(path, self.key, fingerprint)
        if self.index is not None:
            frame = frame.set_index(self.index)
        if self.sorted_index and not frame.index.is_monotonic_increasing:
            raise ValueError(
                f"{path}: node {self.key}: the index is not sorted in rows {start}..{stop - 1}, though the "
                "rows sampled when the frame was built were: read with sorted_index=False"
            )
        if self.selected is not None:
            frame = frame[[c for c in self.selected if c != self.index]]
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
        return reader.select(part.file, part.start, part.stop)


@dataclass(frozen=True)
class _Described:
    """What the build learns from one file's pandas table."""

    rows: int
    chunk_rows: int
    row_nbytes: int
    numeric: NumericLayout | None
    series: bool
    name: Hashable


def _describe(
    path: str,
    key: str,
    where: str | None,
    columns: Sequence[str] | None,
    index: str | None,
    allow_pickles: bool,
) -> _Described:
    """Rows, HDF5 chunk rows, bytes per row, numeric layout and kind of the pandas table; checks ``where``."""
    with refusing_pickles(not allow_pickles), get_lock(), pd.HDFStore(path, mode="r") as store:
        with _refused_pickle_explained(path, key, allow_pickles):
            storer = store.get_storer(key)
        if not storer.is_table:
            raise ValueError(
                f"{path}: node {key} was written by pandas in the 'fixed' format, which has no rows "
                "to partition; read it with pandas.read_hdf, or write it with format='table'"
            )
        table = storer.table
        sizes = int(table.nrows), int(table.chunkshape[0]) if table.chunkshape else 1, int(table.rowsize)
        with _refused_pickle_explained(path, key, allow_pickles):
            stored = store.select(key, start=0, stop=0)
        series = isinstance(stored, pd.Series)
        name = stored.name if series else None
        if series and (columns is not None or index is not None):
            raise ValueError(
                f"{path}: node {key} holds a pandas Series (name {name!r}), which has no columns: "
                "leave out columns= and index="
            )
        if where is not None:
            _check_where(store, path, key, where)
            return _Described(*sizes, None, series, name)
        try:
            meta = stored if series else store.select(key, start=0, stop=0, columns=columns)
        except KeyError:
            return _Described(*sizes, None, series, name)  # reported with the meta
        storer.infer_axes()
        return _Described(*sizes, NumericLayout.of(storer, meta), series, name)


@contextlib.contextmanager
def _refused_pickle_explained(path: str, key: str, allow_pickles: bool) -> Iterator[None]:
    """Turn pandas' failure on an attribute whose pickle was refused into an error that says what to do."""
    try:
        yield
    except AttributeError as err:
        if allow_pickles:
            raise
        raise ValueError(
            f"{path}: node {key}: pandas needs an attribute of this table that holds a pickled object "
            f"dask_tables refuses to unpickle (such as a dateutil or pytz time zone) ({err}); pass "
            "allow_pickles=True if you trust the file"
        ) from None


def _check_where(store: pd.HDFStore, path: str, key: str, where: str) -> None:
    """Raise if pandas cannot evaluate ``where`` on the table ``key``."""
    try:
        store.select(key, where=where, start=0, stop=0)
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
        raise kind(f"{path}: node {key}: invalid pandas where {where!r}: {err}") from None


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


def _divisions(
    paths: Sequence[str],
    key: str,
    parts: Sequence[RowRange],
    index: str | None,
    series: bool,
    sorted_index: bool | None,
    allow_pickles: bool,
) -> tuple[Any, ...] | None:
    """Known divisions from sampled index values, or ``None``; raise if ``sorted_index=True`` and unknown."""
    if sorted_index is False or all(p.stop == p.start for p in parts):
        return None
    samples: list[pd.Index] = []
    for number, path in enumerate(paths):
        mine = [p for p in parts if p.file == number and p.stop > p.start]
        if mine:
            samples += _sampled_labels(path, key, mine, index, series, allow_pickles)
    divisions, reason = divisions_or_reason(samples)
    if divisions is None and sorted_index:
        what = "the index" if index is None else f"the index column {index!r}"
        raise ValueError(
            f"{paths[0]}: node {key}: sorted_index=True, but the values of {what} sampled when the frame "
            f"was built give no divisions: {reason}"
        )
    return divisions


def read_pandas_table(
    files: Sequence[str],
    node: str,
    *,
    columns: Sequence[str] | None,
    where: str | None,
    chunksize: int | None,
    index: str | None,
    sorted_index: bool | None,
    start: int | None,
    stop: int | None,
    direct: bool | None,
    allow_pickles: bool,
) -> dd.DataFrame | dd.Series:
    """:func:`dask_tables.read_table` for tables that pandas wrote; see there."""
    key = _key(node)
    paths = [os.path.abspath(f) for f in files]
    fingerprints = [Fingerprint.of(p) for p in paths]
    if isinstance(columns, str):
        columns = [columns]
    read_columns = None if columns is None else list(dict.fromkeys([*columns, *([index] if index else [])]))
    try:
        described = [_describe(p, key, where, read_columns, index, allow_pickles) for p in paths]
    except tables.HDF5ExtError as err:  # pragma: no cover - damaged after the first open
        raise NotHDF5FileError(f"{paths[0]}: damaged HDF5 file (asked for node {node}): {err}") from err
    for path, fingerprint in zip(paths, fingerprints, strict=True):
        check_unchanged(path, key, fingerprint)
    first = described[0]
    layouts = {d.numeric for d in described}
    numeric = first.numeric if len(layouts) == 1 else None
    sources = (
        tuple(TablesSource.open(p, key + "/table", direct=direct, allow_pickles=allow_pickles) for p in paths)
        if numeric
        else ()
    )
    reader = PandasTableReader(
        tuple(zip(paths, fingerprints, strict=True)),
        key,
        None if columns is None else tuple(columns),
        where,
        index,
        allow_pickles,
        numeric,
        sources,
        series=first.series,
        name=first.name,
    )
    meta = _meta(reader, paths[0], key, columns, index)
    low, high = row_window(start, stop, sum(d.rows for d in described), f"{paths[0]}: node {key}")
    rows = partition_rows(chunksize, first.chunk_rows, first.row_nbytes)
    parts = plan_partitions([d.rows for d in described], rows, low, high)
    divisions = _divisions(paths, key, parts, index, first.series, sorted_index, allow_pickles)
    reader = dataclasses.replace(reader, sorted_index=divisions is not None)
    return dd.from_map(
        reader, parts, meta=meta, divisions=divisions, label="read-table", enforce_metadata=False
    )


def _meta(
    reader: PandasTableReader, path: str, key: str, columns: Any, index: str | None
) -> pd.DataFrame | pd.Series:
    try:
        return reader.select(0, 0, 0)
    except KeyError as err:
        raise KeyError(
            f"{path}: node {key}: unknown column in columns={columns!r} or index={index!r}: {err}"
        ) from None
