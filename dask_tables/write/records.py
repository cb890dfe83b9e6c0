"""pandas partitions -> table records, for :func:`dask_tables.to_tables` of data frames.

Two formats:

- ``"pandas"``: the records pandas' ``HDFStore.append(format="table")``
  writes, made by pandas itself (the partition is appended to an in-memory
  HDF5 file, ``driver="H5FD_CORE"`` without a backing store, and the table
  read back), so every conversion (datetimes, time zones, categoricals, the
  ``nan_rep`` of strings, values blocks) is exactly pandas'.
- ``"tables"``: a plain record per row, one field per column (``"a/b"``
  nests), strings encoded as UTF-8 fixed-size bytes.

Each partition becomes :class:`Records`: the record array with the string
sizes of *that* partition, plus a layout that names each field by what it
holds (pandas numbers its values blocks per frame, and their order may differ
between partitions).  :func:`widen` then casts them into the table's final
record dtype, whose string sizes are the largest over all partitions.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import tables

from ..registry import get_lock
from .strings import fixed_utf8

__all__ = [
    "FieldKey",
    "Records",
    "block_key",
    "frame_records",
    "leaf_dtype",
    "matching_key",
    "nested_dtype",
    "pandas_records",
    "same_key",
    "tables_records",
    "widen",
]

# What a field holds: a field name ("index", a data column, a "tables" column
# path), or, for a pandas values block, the ordered frame columns it packs.
FieldKey = str | tuple[str, ...]

# The key of the in-memory file's frame.
_KEY = "frame"


@dataclass(frozen=True)
class Records:
    """One partition as records, with what each field holds.

    Attributes
    ----------
    records : numpy.ndarray
        The rows, with this partition's own string sizes.
    fields : dict of FieldKey -> str
        Which field of ``records`` holds what (see :data:`FieldKey`).
    """

    records: np.ndarray
    fields: dict[FieldKey, str]
    # pandas: the string a string field stores for a missing value, where this
    # partition has missing values (pandas picks it per column: "nan", or
    # "_nan_" when "nan" is a value), and the string fields holding "nan" itself.
    nan_reps: dict[FieldKey, str] = dataclasses.field(default_factory=dict)
    nan_literals: frozenset[FieldKey] = frozenset()

    def string_sizes(self) -> dict[FieldKey, int]:
        """The itemsize of each string field, by what it holds."""
        return {
            key: leaf_dtype(self.records.dtype, name).base.itemsize
            for key, name in self.fields.items()
            if leaf_dtype(self.records.dtype, name).base.kind == "S"
        }


def leaf_dtype(dtype: np.dtype, path: str) -> np.dtype:
    for part in path.split("/"):
        dtype = dtype.fields[part][0]
    return dtype


def _get(records: np.ndarray, path: str) -> np.ndarray:
    for part in path.split("/"):
        records = records[part]
    return records


def block_key(table: tables.Table, name: str) -> FieldKey:
    """What the field ``name`` of a pandas table holds (a values block: its columns, in order)."""
    if name.startswith("values_block_"):
        return tuple(str(c) for c in table.attrs[f"{name}_kind"])
    return name


def pandas_records(part: pd.DataFrame | pd.Series, data_columns: Sequence[str] | bool | None) -> Records:
    """The records pandas writes for ``part`` (``HDFStore.append(format="table")``), as pandas writes them.

    Text columns with no missing value are encoded here, outside every lock
    and without pandas' per-value loop (:func:`dask_tables.write.strings.fixed_utf8`);
    pandas converts the rest itself, on an in-memory HDF5 file.

    Examples
    --------
    >>> part = pd.DataFrame({"a": [1, 2], "s": ["x", "yz"]})
    >>> rec = pandas_records(part, ["s"])
    >>> rec.fields[("a",)], rec.string_sizes()
    ('values_block_0', {'s': 2})
    >>> rec.records[rec.fields["s"]]
    array([b'x', b'yz'], dtype='|S2')
    """
    text, rest = _text_columns(part, data_columns)
    converted = _converted_by_pandas(rest, data_columns)
    if not text:
        return converted
    return _with_text(converted, text)


def _converted_by_pandas(
    part: pd.DataFrame | pd.Series, data_columns: Sequence[str] | bool | None
) -> Records:
    """pandas' own records for ``part``: appended to an in-memory HDF5 file (with the lock held), read back."""
    name = f"dask-tables-frame-{uuid.uuid4().hex}.h5"
    with (
        get_lock(),
        pd.HDFStore(name, mode="w", driver="H5FD_CORE", driver_core_backing_store=0) as store,
    ):
        store.append(_KEY, part, format="table", data_columns=data_columns, index=False)
        table = store.get_storer(_KEY).table
        records = table.read()
        fields = {block_key(table, n): n for n in table.colnames}
        attrs = table.attrs._v_attrnamesuser
        nan_reps = {k: str(table.attrs[f"{n}_nan_rep"]) for k, n in fields.items() if f"{n}_nan_rep" in attrs}
    literals = frozenset(
        k
        for k, n in fields.items()
        if k not in nan_reps and records[n].dtype.base.kind == "S" and (records[n] == b"nan").any()
    )
    return Records(records, fields, nan_reps, literals)


def _text_blocks(part: pd.DataFrame, data_columns: Sequence[str] | bool | None) -> list[list[Any]]:
    """The columns pandas stores as one field each: a data column, or a block of the others.

    As pandas groups them (``Table._get_blocks_and_items``): the non-data
    columns by the frame's blocks, each data column alone.  Only the groups
    that may hold text (object or string dtype) are returned.
    """
    columns = list(part.columns)
    chosen = set(columns) if data_columns is True else set(data_columns or ())
    others = [c for c in columns if c not in chosen]
    # pandas' grouping of the non-data columns: the consolidated frame's blocks (Table._create_axes)
    manager = part._consolidate().reindex(columns=others)._mgr
    groups = [list(manager.items.take(block.mgr_locs)) for block in manager.blocks]
    groups += [[c] for c in columns if c in chosen]
    return [
        g
        for g in groups
        if all(part[c].dtype == object or isinstance(part[c].dtype, pd.StringDtype) for c in g)
    ]


def _text_columns(
    part: pd.DataFrame | pd.Series, data_columns: Sequence[str] | bool | None
) -> tuple[list[tuple[FieldKey, np.ndarray]], pd.DataFrame | pd.Series]:
    """The text fields encoded here (key, ``(rows,)`` or ``(rows, k)`` bytes), and the frame left to pandas."""
    if not isinstance(part, pd.DataFrame) or not part.columns.is_unique or not len(part):
        return [], part
    if not all(isinstance(c, str) for c in part.columns):
        return [], part
    chosen = set(part.columns) if data_columns is True else set(data_columns or ())
    text: list[tuple[FieldKey, np.ndarray]] = []
    taken: list[Any] = []
    for group in _text_blocks(part, data_columns):
        encoded = [fixed_utf8(part[c]) for c in group]
        if any(e is None for e in encoded):
            continue  # a missing value, or not text: pandas converts the whole group
        if len(group) == 1 and group[0] in chosen:
            text.append((group[0], encoded[0]))
        else:
            width = max(e.dtype.itemsize for e in encoded)
            text.append((tuple(group), np.stack([e.astype(f"S{width}") for e in encoded], axis=1)))
        taken.extend(group)
    if not taken or len(taken) == len(part.columns):
        return [], part  # nothing to take, or nothing left for pandas (which writes the index)
    return text, part.drop(columns=taken)


def _with_text(converted: Records, text: Sequence[tuple[FieldKey, np.ndarray]]) -> Records:
    """``converted``'s records with the text fields added (named ``text_<i>``, with leading ``_`` where a
    data column has that name)."""
    base = converted.records.dtype
    names = []
    for i in range(len(text)):
        name = f"text_{i}"
        while name in base.names:  # a data column of that name
            name = f"_{name}"
        names.append(name)
    dtype = np.dtype(
        [(n, base.fields[n][0]) for n in base.names]
        + [(name, values.dtype, values.shape[1:]) for name, (_, values) in zip(names, text, strict=True)]
    )
    records = np.empty(len(converted.records), dtype)
    for n in base.names:
        records[n] = converted.records[n]
    for name, (_, values) in zip(names, text, strict=True):
        records[name] = values
    fields = dict(converted.fields)
    fields.update({key: name for name, (key, _) in zip(names, text, strict=True)})
    literals = {key for key, values in text if (values == b"nan").any()}
    return Records(records, fields, converted.nan_reps, converted.nan_literals | literals)


def _string_values(values: pd.Series, column: str) -> np.ndarray:
    if values.isna().any():
        raise ValueError(
            f"column {column!r} has missing values, which format='pytables' cannot store in fixed-size "
            "strings: fill them (fillna) or write with format='pandas'"
        )
    encoded = np.asarray(values.astype(object).tolist(), dtype=object)
    out = np.strings.encode(encoded.astype("U"), "utf-8") if len(encoded) else np.zeros(0, "S1")
    return out if out.dtype.itemsize else out.astype("S1")


def _column_array(values: pd.Series, column: str) -> np.ndarray:
    dtype = values.dtype
    if isinstance(dtype, pd.CategoricalDtype) or dtype.kind in "mM":
        raise TypeError(
            f"column {column!r} has dtype {dtype}, which a plain PyTables table does not store: "
            "write with format='pandas', or convert it (astype(str), or to integers)"
        )
    if pd.api.types.is_object_dtype(dtype) or isinstance(dtype, pd.StringDtype):
        return _string_values(values, column)
    try:
        array = values.to_numpy()
    except (TypeError, ValueError) as err:
        raise TypeError(f"column {column!r} ({dtype}) has no numpy form: {err}") from None
    if array.dtype.kind not in "biuf":
        raise TypeError(f"column {column!r} has dtype {dtype}, which format='pytables' does not store")
    return array


def nested_dtype(columns: Sequence[tuple[str, np.dtype]]) -> np.dtype:
    """A record dtype from leaf paths (``"pos/x"`` nests ``x`` in ``pos``), in the given order."""
    tree: dict[str, Any] = {}
    for path, dtype in columns:
        node = tree
        *groups, leaf = path.split("/")
        for group in groups:
            node = node.setdefault(group, {})
            if not isinstance(node, dict):
                raise ValueError(f"column {path!r}: {group!r} is also a column, so it cannot nest others")
        if leaf in node:
            raise ValueError(f"column {path!r} appears twice")
        node[leaf] = dtype

    def build(node: dict[str, Any]) -> np.dtype:
        return np.dtype([(k, build(v) if isinstance(v, dict) else v) for k, v in node.items()])

    return build(tree)


def frame_columns(part: pd.DataFrame | pd.Series, index: bool) -> list[tuple[str, pd.Series]]:
    """The columns a ``"tables"`` record holds: the index first (if ``index``), then the frame's."""
    frame = part.to_frame() if isinstance(part, pd.Series) else part
    columns = []
    if index:
        columns.append((str(frame.index.name or "index"), frame.index.to_series()))
    columns.extend((str(name), frame[name]) for name in frame.columns)
    names = [n for n, _ in columns]
    if len(set(names)) != len(names):
        raise ValueError(f"columns {names}: a name appears twice (give the index another name)")
    return columns


def tables_records(part: pd.DataFrame | pd.Series, index: bool) -> Records:
    """One record per row, a field per column (``"a/b"`` nests), strings as UTF-8 bytes.

    Examples
    --------
    >>> rec = tables_records(pd.DataFrame({"pos/x": [1.0], "pos/y": [2.0], "s": ["é"]}), False)
    >>> rec.records.dtype.descr, rec.string_sizes()
    ([('pos', [('x', '<f8'), ('y', '<f8')]), ('s', '|S2')], {'s': 2})
    """
    arrays = [(name, _column_array(values, name)) for name, values in frame_columns(part, index)]
    dtype = nested_dtype([(name, a.dtype) for name, a in arrays])
    records = np.zeros(len(part), dtype)
    for name, array in arrays:
        _get(records, name)[...] = array
    return Records(records, {name: name for name, _ in arrays})


def frame_records(
    part: pd.DataFrame | pd.Series, fmt: str, data_columns: Sequence[str] | bool | None, index: bool
) -> Records:
    """:func:`pandas_records` or :func:`tables_records`, by format."""
    if fmt == "pandas":
        return pandas_records(part, data_columns)
    return tables_records(part, index)


def widen(part: Records, stored: np.dtype, target: Mapping[FieldKey, str]) -> np.ndarray:
    """``part``'s rows in the table's record dtype ``stored``: strings widened, values blocks matched.

    ``target`` says which field of ``stored`` holds what.  A values block
    whose columns come in another order in ``part`` is reordered.

    Examples
    --------
    >>> part = Records(np.array([(b"ab", 1)], [("s", "S2"), ("v", "i8")]), {"s": "s", "v": "v"})
    >>> widen(part, np.dtype([("s", "S5"), ("v", "<i8")]), {"s": "s", "v": "v"})
    array([(b'ab', 1)], dtype=[('s', 'S5'), ('v', '<i8')])
    """
    out = np.zeros(len(part.records), stored)
    for key, name in target.items():
        have = matching_key(part.fields, key)
        source = _get(part.records, part.fields[have])
        if isinstance(key, tuple) and have != key:
            source = source[:, [have.index(c) for c in key]]
        _get(out, name)[...] = source
    return out


def same_key(a: FieldKey, b: FieldKey) -> bool:
    """Whether two fields hold the same thing (values blocks: the same columns, in any order)."""
    if isinstance(a, tuple) and isinstance(b, tuple):
        return set(a) == set(b)
    return a == b


def matching_key(fields: Mapping[FieldKey, Any], key: FieldKey) -> FieldKey:
    """The key of ``fields`` that holds what ``key`` holds.

    Examples
    --------
    >>> matching_key({("b", "a"): "values_block_0", "s": "s"}, ("a", "b"))
    ('b', 'a')
    """
    if key in fields:
        return key
    for have in fields:
        if same_key(have, key):
            return have
    raise KeyError(key)
