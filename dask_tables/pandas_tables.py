"""Tables that pandas wrote (``HDFStore(format="table")``), read by pandas per partition.

pandas stores a frame as a group (``/key``) holding a PyTables ``Table``
(``/key/table``) whose columns pack several frame columns into
multidimensional "values blocks", with the frame's dtypes, index and
encoding in attributes.  Rather than re-implement that format, each partition
task asks pandas itself (``HDFStore.select(key, where, start, stop,
columns)``) under the registry lock, so the rows, dtypes and ``where``
syntax are exactly pandas'.  The lock makes those reads serial (pandas
reads through HDF5, which serializes them anyway).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import dask.dataframe as dd
import pandas as pd
import tables

from .errors import NotHDF5FileError
from .fingerprint import Fingerprint, check_unchanged
from .partitions import RowRange, partition_rows, plan_partitions, row_window
from .pickles import refusing_pickles
from .registry import get_lock, synchronized_file

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
    """

    files: tuple[tuple[str, Fingerprint], ...]
    key: str
    selected: tuple[str, ...] | None
    where: str | None
    index: str | None
    allow_pickles: bool = False

    def select(self, number: int, start: int, stop: int) -> pd.DataFrame:
        """pandas' ``HDFStore.select`` of rows ``[start, stop)`` of file ``number``."""
        path, fingerprint = self.files[number]
        read_columns = None if self.selected is None else list(self.selected)
        if read_columns is not None and self.index is not None and self.index not in read_columns:
            read_columns.append(self.index)
        with refusing_pickles(not self.allow_pickles), get_lock():
            check_unchanged(path, self.key, fingerprint)
            with pd.HDFStore(path, mode="r") as store:
                frame = store.select(self.key, where=self.where, start=start, stop=stop, columns=read_columns)
            check_unchanged(path, self.key, fingerprint)
        if self.index is not None:
            frame = frame.set_index(self.index)
        if self.selected is not None:
            frame = frame[[c for c in self.selected if c != self.index]]
        return frame

    def __call__(self, part: RowRange, columns: Sequence[str] | None = None) -> pd.DataFrame:
        """Read ``part``; ``columns`` (dask's column projection) reads only those."""
        reader = self
        if columns is not None:
            wanted = [columns] if isinstance(columns, str) else list(columns)
            reader = dataclasses.replace(self, selected=tuple(c for c in wanted if c != self.index))
        return reader.select(part.file, part.start, part.stop)


def _describe(path: str, key: str, where: str | None, allow_pickles: bool) -> tuple[int, int, int]:
    """Rows, HDF5 chunk rows and bytes per row of the pandas table; checks ``where``."""
    with refusing_pickles(not allow_pickles), get_lock(), pd.HDFStore(path, mode="r") as store:
        storer = store.get_storer(key)
        if not storer.is_table:
            raise ValueError(
                f"{path}: node {key} was written by pandas in the 'fixed' format, which has no rows "
                "to partition; read it with pandas.read_hdf, or write it with format='table'"
            )
        table = storer.table
        rows = int(table.nrows)
        chunk_rows = int(table.chunkshape[0]) if table.chunkshape else 1
        row_nbytes = int(table.rowsize)
        if where is not None:
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
    return rows, chunk_rows, row_nbytes


def read_pandas_table(
    files: Sequence[str],
    node: str,
    *,
    columns: Sequence[str] | None,
    where: str | None,
    chunksize: int | None,
    index: str | None,
    start: int | None,
    stop: int | None,
    allow_pickles: bool,
) -> dd.DataFrame:
    """:func:`dask_tables.read_table` for tables that pandas wrote; see there."""
    key = _key(node)
    paths = [os.path.abspath(f) for f in files]
    fingerprints = [Fingerprint.of(p) for p in paths]
    try:
        described = [_describe(p, key, where, allow_pickles) for p in paths]
    except tables.HDF5ExtError as err:  # pragma: no cover - damaged after the first open
        raise NotHDF5FileError(f"{paths[0]}: damaged HDF5 file (asked for node {node}): {err}") from err
    for path, fingerprint in zip(paths, fingerprints, strict=True):
        check_unchanged(path, key, fingerprint)
    if isinstance(columns, str):
        columns = [columns]
    reader = PandasTableReader(
        tuple(zip(paths, fingerprints, strict=True)),
        key,
        None if columns is None else tuple(columns),
        where,
        index,
        allow_pickles,
    )
    meta = _meta(reader, paths[0], key, columns, index)
    low, high = row_window(start, stop, sum(d[0] for d in described), f"{paths[0]}: node {key}")
    rows = partition_rows(chunksize, described[0][1], described[0][2])
    parts = plan_partitions([d[0] for d in described], rows, low, high)
    return dd.from_map(
        reader,
        parts,
        meta=meta,
        label="read-table",
        enforce_metadata=False,
    )


def _meta(reader: PandasTableReader, path: str, key: str, columns: Any, index: str | None) -> pd.DataFrame:
    try:
        return reader.select(0, 0, 0)
    except KeyError as err:
        raise KeyError(
            f"{path}: node {key}: unknown column in columns={columns!r} or index={index!r}: {err}"
        ) from None
