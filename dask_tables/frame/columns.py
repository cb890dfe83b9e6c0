"""Table records -> pandas columns: flattened names, strings, enums.

A PyTables ``Table`` reads as a numpy record array whose fields may nest
(``pos`` holding ``x`` and ``y``).  A :class:`FrameLayout` says which leaf
columns become which pandas columns and how each converts:

- nested columns are flattened with ``/`` in the name (``"pos/x"``), in the
  order of the table's record dtype (what ``Table.read`` returns);
- ``S`` (string) columns decode as UTF-8 into pandas' string dtype, or stay
  ``bytes`` (a pyarrow ``binary`` column) with ``encoding=None``;
- ``enum`` columns become pandas categoricals of the enum's names;
- numbers, booleans and time columns keep their numpy type, in native byte order.

A multidimensional column (``Float64Col(shape=(3,))``) has no pandas form:
asking for it raises a ``ValueError`` that says how to read it as an array.
The layout is small and picklable: every partition task carries it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import tables

from ..errors import at_node
from ..hdf5.fields import take_field

__all__ = ["ColumnSpec", "FrameLayout", "leaf_columns"]

STRING_DTYPE = pd.StringDtype("pyarrow")  # what dask turns text columns into anyway
BYTES_DTYPE = pd.ArrowDtype(pa.binary())  # bytes that dask leaves alone


def leaf_columns(dtype: np.dtype, prefix: str = "") -> Iterator[tuple[str, np.dtype]]:
    """Yield ``(path, dtype)`` of every leaf field of a record dtype, nested ones as ``"a/b"``.

    Examples
    --------
    >>> list(leaf_columns(np.dtype([("a", "i4"), ("pos", [("x", "f8"), ("y", "f8")])])))
    [('a', dtype('int32')), ('pos/x', dtype('float64')), ('pos/y', dtype('float64'))]
    """
    for name in dtype.names or ():
        field = dtype.fields[name][0]
        path = f"{prefix}{name}"
        if field.names:
            yield from leaf_columns(field, path + "/")
        else:
            yield path, field


@dataclass(frozen=True)
class ColumnSpec:
    """One pandas column taken from one leaf column of the table.

    Attributes
    ----------
    path : str
        The column's path in the table (``"pos/x"``), also its pandas name.
    kind : str
        ``"number"``, ``"string"``, ``"bytes"`` or ``"enum"``.
    categories : tuple of str
        For an enum: its names, ordered by their values.
    codes : tuple of int
        For an enum: the stored value of each category.
    """

    path: str
    kind: str
    categories: tuple[str, ...] = ()
    codes: tuple[int, ...] = ()

    def convert(self, values: np.ndarray, path: str, node: str, first_row: int = 0) -> pd.Series:
        """The pandas form of ``values``, the stored values of this column."""
        if self.kind == "enum":
            lookup = np.searchsorted(np.asarray(self.codes), values)
            lookup = np.minimum(lookup, len(self.codes) - 1)
            found = np.asarray(self.codes, dtype=values.dtype)[lookup] == values
            codes = np.where(found, lookup, -1)
            return pd.Series(pd.Categorical.from_codes(codes, categories=list(self.categories)))
        if self.kind == "string":
            return pd.Series(_decode(values, path, node, self.path, first_row), dtype=STRING_DTYPE)
        if self.kind == "bytes":
            return pd.Series(pa.array(values.tolist(), type=pa.binary()), dtype=BYTES_DTYPE)
        return pd.Series(values.astype(values.dtype.newbyteorder("="), copy=False))


def _decode(values: np.ndarray, path: str, node: str, column: str, first_row: int) -> np.ndarray:
    try:
        return np.strings.decode(values, "utf-8")
    except UnicodeDecodeError:
        for row, value in enumerate(values.tolist()):
            try:
                value.decode("utf-8")
            except UnicodeDecodeError as err:
                raise UnicodeDecodeError(
                    err.encoding,
                    err.object,
                    err.start,
                    err.end,
                    f"{at_node(path, node)}: column {column!r}, row {first_row + row}: {value!r} "
                    "is not UTF-8; read with encoding=None to get bytes",
                ) from None
        raise  # pragma: no cover - np.strings.decode failed on valid UTF-8


def _spec(table: tables.Table, path: str, dtype: np.dtype, encoding: str | None) -> ColumnSpec:
    where = at_node(table._v_file.filename, table._v_pathname)
    if dtype.subdtype is not None:
        raise ValueError(
            f"{where}: column {path!r} has cells of shape {dtype.shape}, which a data frame cannot "
            f"hold; read it as an array with dask_tables.from_tables(..., field={path!r}), and "
            "leave it out of columns="
        )
    if table.coltypes[path] == "enum":
        names = table.coldescrs[path].enum._names
        ordered = sorted(names.items(), key=lambda item: item[1])
        return ColumnSpec(path, "enum", tuple(n for n, _ in ordered), tuple(int(v) for _, v in ordered))
    if dtype.kind == "S":
        if encoding is None:
            return ColumnSpec(path, "bytes")
        if encoding.lower().replace("_", "-") not in {"utf-8", "utf8"}:
            raise ValueError(f"{where}: encoding={encoding!r}: only 'utf-8' or None (bytes) is supported")
        return ColumnSpec(path, "string")
    if dtype.kind not in "biufc":
        raise TypeError(f"{where}: column {path!r} has dtype {dtype}, which read_table does not convert")
    return ColumnSpec(path, "number")


@dataclass(frozen=True)
class FrameLayout:
    """Which table columns make the data frame, and how each converts.

    Build it with :meth:`FrameLayout.of` while the table is open.

    Attributes
    ----------
    record : numpy.dtype
        The table's record dtype, as PyTables reads it.
    columns : tuple of ColumnSpec
        The data frame's columns, in table order.
    index : ColumnSpec or None
        The column that becomes the index, or ``None`` for row numbers.

    Examples
    --------
    >>> import numpy as np, tables
    >>> rows = np.array([(1, (0.5, 2.0), b"a")], dtype=[("n", "i4"), ("pos", [("x", "f8"), ("y", "f8")]),
    ...                                                ("s", "S3")])
    >>> with tables.open_file("frame.h5", "w") as f:
    ...     layout = FrameLayout.of(f.create_table("/", "t", obj=rows), columns=["pos/y", "s"])
    >>> layout.to_frame(rows, np.arange(1), "frame.h5", "/t")
       pos/y  s
    0    2.0  a
    """

    record: np.dtype
    columns: tuple[ColumnSpec, ...]
    index: ColumnSpec | None = None

    @classmethod
    def of(
        cls,
        table: tables.Table,
        columns: Sequence[str] | None = None,
        index: str | None = None,
        encoding: str | None = "utf-8",
    ) -> FrameLayout:
        """The layout of ``table`` for ``columns`` (default: all) and ``index``."""
        where = at_node(table._v_file.filename, table._v_pathname)
        leaves = dict(leaf_columns(table.dtype))
        wanted = list(leaves) if columns is None else _expand(columns, leaves, where)
        if index is not None:
            if index not in leaves:
                raise KeyError(
                    f"{where}: index={index!r} is not a column; the columns are {', '.join(leaves)}"
                )
            wanted = [c for c in wanted if c != index]
        return cls(
            record=table.dtype,
            columns=tuple(_spec(table, c, leaves[c], encoding) for c in wanted),
            index=None if index is None else _spec(table, index, leaves[index], encoding),
        )

    @property
    def names(self) -> list[str]:
        """The data frame's column names."""
        return [c.path for c in self.columns]

    def project(self, names: Sequence[str]) -> FrameLayout:
        """The same layout with only the columns ``names`` (in that order)."""
        by_name = {c.path: c for c in self.columns}
        return FrameLayout(self.record, tuple(by_name[n] for n in names), self.index)

    def meta(self) -> pd.DataFrame:
        """An empty data frame of the right columns and dtypes; reads no data."""
        return self.to_frame(np.empty(0, self.record), np.empty(0, np.int64), "", "")

    def to_frame(self, records: np.ndarray, rows: np.ndarray, path: str, node: str) -> pd.DataFrame:
        """Convert ``records`` (table rows numbered ``rows``) into the data frame."""
        first_row = int(rows[0]) if len(rows) else 0
        data = {
            c.path: c.convert(take_field(records, c.path), path, node, first_row).array for c in self.columns
        }
        if self.index is None:
            labels = pd.Index(np.asarray(rows, dtype=np.int64))
        else:
            values = take_field(records, self.index.path)
            labels = pd.Index(self.index.convert(values, path, node, first_row), name=self.index.path)
        return pd.DataFrame(data, index=labels, columns=self.names)


def _expand(columns: Sequence[str], leaves: dict[str, np.dtype], where: str) -> list[str]:
    """Column names asked for -> leaf paths; a nested group name means all its leaves."""
    if isinstance(columns, str):
        columns = [columns]
    wanted: list[str] = []
    for name in columns:
        name = name.strip("/")
        inside = [leaf for leaf in leaves if leaf == name or leaf.startswith(name + "/")]
        if not inside:
            raise KeyError(f"{where}: no column {name!r}; the columns are {', '.join(leaves)}")
        wanted.extend(leaf for leaf in inside if leaf not in wanted)
    return wanted
