"""``to_tables`` for dask DataFrames and Series: pandas' table format, or a plain PyTables table.

The array writer (:mod:`dask_tables.write.store`) does the hard parts; this module
adds what a frame needs before its rows are chunks of a table.  One graph:

1. **Plan** (in the caller): the inputs are checked (file, node, format,
   known categories), and for ``append=True`` the existing pandas table is
   read: its record dtype, its storage, and its group (with a zero-row
   table) as an in-memory HDF5 image, the template.
2. **Records** (one task per partition, the only pass over the data): the
   partition becomes table records (:mod:`dask_tables.write.records`: pandas
   itself converts for ``format="pandas"``), saved raw in the work folder;
   the task returns their string sizes and layout.
3. **Schema** (one task): each string column gets the largest size of any
   partition (or ``min_itemsize``), so a later partition with longer strings
   never fails; for a new pandas table, pandas writes one row with those
   sizes into an in-memory file, which becomes the template (attributes,
   values blocks, categories); the node's storage is planned as the array
   writer plans a table (:func:`dask_tables.write.plan.plan_new_node`).
4. **Encode** (one task per partition, reading only the staged records):
   records widened to the final dtype, cut into HDF5 chunks and encoded with
   no lock held (:func:`dask_tables.write.staging.block_pieces`) into a sidecar.
   **Indexes** (one task, for a new pandas table, at the same time): the
   PyTables indexes pandas makes (index and data columns), built from the
   staged records in a side file (:mod:`dask_tables.write.indexes`).
5. **Commit** (one task): the array writer's final step
   (:func:`dask_tables.write.store._commit_into_existing`): the node is built
   under a temporary name, with the indexes copied beside its table, and
   moved into place (a new file is built whole in the work folder, then
   ``os.replace``-d); an append grows the table in place and reindexes it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import uuid
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import dask.array as da
import dask.dataframe as dd
import numpy as np
import pandas as pd
import tables
from dask.dataframe.utils import has_known_categories
from dask.delayed import Delayed
from dask.highlevelgraph import HighLevelGraph
from numpy.lib.recfunctions import repack_fields

from ..registry import get_lock
from .engine import Job, commit, new_job, os_errors, prepare, remove_work, require_space, run_all
from .indexes import build_indexes, copy_indexes
from .nodes import add_nodes, write_staged
from .plan import (
    NodeWrite,
    WritePlan,
    check_built,
    check_node_name,
    check_parents,
    check_replaceable,
    check_writable,
    existing_node,
    plan_new_node,
    plan_region,
    target_as_it_is,
)
from .records import (
    FieldKey,
    Records,
    block_key,
    frame_records,
    leaf_dtype,
    matching_key,
    nested_dtype,
    same_key,
    widen,
)
from .staging import append_rows, block_pieces, load_records, save_records, write_sidecar
from .trial import create_node

__all__ = ["frame_to_tables"]

FORMATS = ("pandas", "pytables")
# Spellings of a format -> its name: pandas' own ("table", "t") and our older "tables" still work.
_FORMAT_NAMES = {
    "pandas": "pandas",
    "table": "pandas",
    "t": "pandas",
    "pytables": "pytables",
    "tables": "pytables",
}
ALL_STRINGS = "*"  # min_itemsize given as an int: every string column


@dataclass(frozen=True)
class ExistingTable:
    """The pandas table that ``append=True`` adds rows to, as the plan found it."""

    spec: NodeWrite  # its table, as the array writer's region spec (shape: the rows it has)
    rows: int
    fields: dict[FieldKey, str]
    template: bytes  # an HDF5 image of its group, with a zero-row table
    nan_reps: dict[str, str]  # field -> its missing-value string, where the table has one


@dataclass(frozen=True)
class FramePlan:
    """One frame write: everything its tasks need, picklable, nothing open."""

    job: Job
    node: str  # the pandas key (a group holding "table"), or the table
    fmt: str
    data_columns: tuple[str, ...] | bool | None
    index: bool
    filters: tables.Filters | None
    chunkshape: int | None
    min_itemsize: tuple[tuple[str, int], ...]
    title: str
    overwrite: bool
    createparents: bool
    categories: tuple[tuple[str, tuple[Any, ...], bool], ...]  # column, categories, ordered
    existing: ExistingTable | None = None
    label: str = ""  # prefix of this node's work files and task keys (several nodes in one write)

    @property
    def path(self) -> str:
        return self.job.path

    def work_file(self, name: str) -> str:
        """A file of this node's in the work folder."""
        return os.path.join(self.job.work, f"{self.label}{name}")

    def write_plan(self, spec: NodeWrite) -> WritePlan:
        """The array writer's plan of the node ``spec``."""
        return WritePlan(self.job, (spec,))


@dataclass(frozen=True)
class PartInfo:
    """What a records task tells the schema task about its partition."""

    number: int
    rows: int
    file: str | None  # the staged records (save_records), removed once encoded
    fields: dict[FieldKey, str]
    dtype: np.dtype | None
    sample: pd.DataFrame | pd.Series | None  # its first row (pandas format)
    nan_reps: dict[FieldKey, str] = dataclasses.field(default_factory=dict)
    nan_literals: frozenset[FieldKey] = frozenset()
    index_file: str | None = None  # the columns pandas may index, for the indexes task


@dataclass(frozen=True)
class FrameSchema:
    """The table every partition is written into, decided once all partitions are known."""

    spec: NodeWrite | None  # None: no rows at all, nothing to write
    target: dict[FieldKey, str]
    offsets: tuple[int, ...]  # first row of each partition in the node
    template: bytes = b""
    indexed: tuple[str, ...] = ()  # columns pandas indexes (PyTables indexes)


# ---------------------------------------------------------------- in-memory HDF5 images


@contextlib.contextmanager
def _memory_store(image: bytes | None = None) -> Any:
    """A pandas ``HDFStore`` on an in-memory HDF5 file (from ``image``), with the lock held."""
    name = f"dask-tables-template-{uuid.uuid4().hex}.h5"
    kwargs: dict[str, Any] = {"driver": "H5FD_CORE", "driver_core_backing_store": 0}
    if image is not None:
        kwargs["driver_core_image"] = image
    with get_lock(), pd.HDFStore(name, mode="a" if image else "w", **kwargs) as store:
        yield store


def _template_of_existing(group: tables.Group) -> bytes:
    """An image of a pandas frame's group: attributes, categories, and its table without rows."""
    with _memory_store() as store:
        h5 = store._handle
        copy = group._f_copy(h5.root, group._v_name, recursive=False)
        for child in group._f_iter_nodes():
            if child._v_name == "table":
                child.copy(copy, "table", stop=0)
            else:
                child._f_copy(copy, child._v_name, recursive=True)
        h5.flush()
        return h5.get_file_image()


def _key(node: str) -> str:
    return node.strip("/")


# ---------------------------------------------------------------- the tasks


def _check_categories(plan: FramePlan, part: pd.DataFrame | pd.Series) -> None:
    frame = part.to_frame() if isinstance(part, pd.Series) else part
    for column, categories, ordered in plan.categories:
        dtype = frame[column].dtype if column in frame.columns else frame.index.dtype
        if tuple(dtype.categories) != categories or bool(dtype.ordered) != ordered:
            raise ValueError(
                f"{plan.path}: node {plan.node}: column {column!r} has categories {list(dtype.categories)} "
                f"in one partition, {list(categories)} in the frame's meta; every partition must hold the "
                "same categories (df[col].cat.set_categories(...), or df.categorize())"
            )


def _without_freq(sample: pd.DataFrame | pd.Series) -> pd.DataFrame | pd.Series:
    """``sample`` with no index ``freq``: pandas would store the one row's as the whole table's."""
    index = sample.index
    if isinstance(index, (pd.DatetimeIndex, pd.TimedeltaIndex)) and index.freq is not None:
        sample = sample.copy()
        sample.index = type(index)(index, freq=None)
    return sample


def _stage_records(plan: FramePlan, part: Any, number: int, work: str) -> PartInfo:
    """Task: one partition as table records, saved raw in the work folder (the one pass over the data)."""
    plan.job.check_work()
    if len(part) == 0:
        return PartInfo(number, 0, None, {}, None, None)
    _check_categories(plan, part)
    try:
        records = frame_records(part, plan.fmt, plan.data_columns, plan.index)
    except (TypeError, ValueError) as err:
        raise type(err)(f"{plan.path}: node {plan.node}: {err}") from None
    file = plan.work_file(f"records-{number}.rec")
    builds_indexes = plan.fmt == "pandas" and plan.index and plan.existing is None
    index_file = plan.work_file(f"indexed-{number}.rec") if builds_indexes else None
    with os_errors(plan.path, "staging a partition's records"):
        save_records(file, records.records)
        if index_file is not None:
            save_records(
                index_file, repack_fields(records.records[list(_indexable(records.fields).values())])
            )
    sample = _without_freq(part.iloc[:1]) if plan.fmt == "pandas" else None
    return PartInfo(
        number,
        len(part),
        file,
        records.fields,
        records.records.dtype,
        sample,
        records.nan_reps,
        records.nan_literals,
        index_file,
    )


def _indexable(fields: Mapping[FieldKey, str]) -> dict[FieldKey, str]:
    """The fields pandas may index: the index and the data columns (each a column of its own)."""
    return {key: name for key, name in fields.items() if isinstance(key, str)}


def _string_sizes(parts: Sequence[PartInfo]) -> dict[FieldKey, int]:
    sizes: dict[FieldKey, int] = {}
    for info in parts:
        for key, name in info.fields.items():
            field = leaf_dtype(info.dtype, name).base
            if field.kind == "S":
                canonical = next((k for k in sizes if same_key(k, key)), key)
                sizes[canonical] = max(sizes.get(canonical, 1), field.itemsize)
    return sizes


def _describe_key(key: FieldKey) -> str:
    return f"column {key!r}" if isinstance(key, str) else f"column(s) {', '.join(map(repr, key))}"


def _apply_min_itemsize(plan: FramePlan, sizes: dict[FieldKey, int]) -> dict[FieldKey, int]:
    """``min_itemsize`` sets a string column's size; smaller than its longest string raises.

    As an int (``ALL_STRINGS``), as in pandas: every string column at least that size.
    """
    final = dict(sizes)
    for name, size in plan.min_itemsize:
        if name == ALL_STRINGS:
            final = {key: max(n, size) for key, n in final.items()}
            continue
        keys = [k for k in sizes if (k == name if isinstance(k, str) else name == "values" or name in k)]
        if not keys and name != "values":
            raise ValueError(
                f"{plan.path}: node {plan.node}: min_itemsize names {name!r}, which is not a string column"
            )
        for key in keys:
            if size < sizes[key]:
                raise ValueError(
                    f"{plan.path}: node {plan.node}: min_itemsize[{name!r}]={size}, but "
                    f"{_describe_key(key)} holds strings of {sizes[key]} bytes"
                )
            final[key] = size
    return final


def _nan_reps(plan: FramePlan, parts: Sequence[PartInfo]) -> dict[FieldKey, str]:
    """The missing-value string of each string field: the same in every partition that has one.

    pandas picks it per column from the whole frame ("nan", or "_nan_" when
    "nan" is a value); partitions pick their own, so a column with missing
    values in one partition and the value "nan" in another is refused.
    """
    reps: dict[FieldKey, str] = {}
    for info in parts:
        for key, rep in info.nan_reps.items():
            canonical = next((k for k in reps if same_key(k, key)), key)
            if reps.setdefault(canonical, rep) != rep:
                raise ValueError(
                    f"{plan.path}: node {plan.node}: {_describe_key(key)} holds the string 'nan' and missing "
                    "values, in different partitions; pandas stores one marker per column: fill the missing "
                    "values (fillna) or write the frame with pandas"
                )
    for info in parts:
        for key in info.nan_literals:
            if any(same_key(k, key) and rep == "nan" for k, rep in reps.items()):
                raise ValueError(
                    f"{plan.path}: node {plan.node}: {_describe_key(key)} holds the string 'nan' in partition "
                    f"{info.number} and missing values in another; pandas stores one marker per column: fill "
                    "the missing values (fillna) or write the frame with pandas"
                )
    return reps


def _set_nan_reps(table: tables.Table, target: Mapping[FieldKey, str], reps: Mapping[FieldKey, str]) -> None:
    for key, name in target.items():
        rep = next((r for k, r in reps.items() if same_key(k, key)), None)
        if rep is not None:
            table.attrs[f"{name}_nan_rep"] = rep


def _new_pandas_template(
    plan: FramePlan, sample: Any, sizes: dict[FieldKey, int], reps: Mapping[FieldKey, str]
) -> tuple[bytes, Any]:
    """pandas writes ``sample`` (one row) with the final string sizes: the table's template."""
    min_itemsize = {k: n for k, n in sizes.items() if isinstance(k, str)}
    blocks = [n for k, n in sizes.items() if isinstance(k, tuple)]
    if blocks:
        min_itemsize["values"] = max(blocks)
    with _memory_store() as store:
        store.append(
            _key(plan.node),
            sample,
            format="table",
            data_columns=plan.data_columns,
            min_itemsize=min_itemsize or None,
            index=False,
        )
        store._handle.flush()
        storer = store.get_storer(_key(plan.node))
        table = storer.table
        target = {block_key(table, n): n for n in table.colnames}
        _set_nan_reps(table, target, reps)
        indexed = tuple(a.cname for a in storer.axes if a.is_data_indexable)
        return store._handle.get_file_image(), (target, table.dtype, table.title, indexed)


def _check_template_accepts(plan: FramePlan, sample: Any, template: bytes) -> None:
    """pandas' own checks of an append (columns, dtypes, data columns, categories) on one row."""
    with _memory_store(template) as store:
        try:
            store.append(_key(plan.node), sample, format="table", index=False)
        except (ValueError, TypeError, KeyError) as err:
            raise ValueError(
                f"{plan.path}: node {plan.node}: the frame does not fit the existing table: {err}"
            ) from None


def _check_fits(plan: FramePlan, parts: Sequence[PartInfo], stored: np.dtype, target: Mapping) -> None:
    """Every partition holds every field of the table, with its dtype (strings: any size)."""
    for info in parts:
        for key, name in target.items():
            have = next((k for k in info.fields if same_key(k, key)), None)
            if have is None:
                raise ValueError(
                    f"{plan.path}: node {plan.node}: partition {info.number} lacks {_describe_key(key)}"
                )
            got = leaf_dtype(info.dtype, info.fields[have])
            want = leaf_dtype(stored, name)
            same = got.base.kind == want.base.kind == "S" or got.base == want.base.newbyteorder("=")
            if not same or got.shape != want.shape:
                raise ValueError(
                    f"{plan.path}: node {plan.node}: {_describe_key(key)} is stored as {want} but partition "
                    f"{info.number} has {got}"
                )


def _tables_dtype(parts: Sequence[PartInfo], sizes: Mapping[FieldKey, int]) -> np.dtype:
    first = parts[0]
    columns = []
    for key, name in first.fields.items():
        dtype = leaf_dtype(first.dtype, name)
        columns.append((name, np.dtype(f"S{sizes[key]}") if dtype.kind == "S" else dtype))
    return nested_dtype(columns)


def _schema(plan: FramePlan, infos: list[PartInfo]) -> FrameSchema:
    """Task: the table's record dtype and storage, once every partition's records are staged."""
    infos = sorted(infos, key=lambda i: i.number)
    starts = np.cumsum([0, *(i.rows for i in infos)])[:-1]
    base = plan.existing.rows if plan.existing else 0
    offsets = tuple(int(base + s) for s in starts)
    parts = [i for i in infos if i.rows]
    if not parts:
        return FrameSchema(None, {}, offsets)
    sizes = _apply_min_itemsize(plan, _string_sizes(parts))
    schema = (
        _append_schema(plan, plan.existing, parts, sizes, offsets)
        if plan.existing is not None
        else _new_schema(plan, parts, sizes, offsets)
    )
    # Before any chunk is staged: the rows uncompressed, and the copy of an existing file.
    rows = sum(i.rows for i in parts) * schema.spec.dtype.itemsize
    require_space(os.path.dirname(plan.path), rows + plan.job.copy_bytes(), plan.path)
    return schema


def _append_schema(
    plan: FramePlan,
    existing: ExistingTable,
    parts: Sequence[PartInfo],
    sizes: Mapping[FieldKey, int],
    offsets: tuple[int, ...],
) -> FrameSchema:
    """The existing table's schema, once the partitions are checked against it."""
    target, stored = existing.fields, existing.spec.dtype
    for key, rep in _nan_reps(plan, parts).items():
        name = target[matching_key(target, key)]
        if existing.nan_reps.get(name) != rep:
            raise ValueError(
                f"{plan.path}: node {plan.node}: {_describe_key(key)} has missing values, stored as {rep!r}, "
                f"but the existing table marks them as {existing.nan_reps.get(name)!r}: fill them (fillna), "
                "or append with pandas"
            )
    for key, size in sizes.items():
        have = leaf_dtype(stored, target[matching_key(target, key)]).base.itemsize
        if size > have:
            raise ValueError(
                f"{plan.path}: node {plan.node}: {_describe_key(key)} holds strings of {size} bytes, "
                f"but the existing table stores at most {have} (pandas refuses the same append)"
            )
    _check_template_accepts(plan, parts[0].sample, existing.template)
    _check_fits(plan, parts, stored, target)
    total = sum(i.rows for i in parts)
    spec = existing.spec.resized((existing.rows + total,), (slice(existing.rows, existing.rows + total),))
    return FrameSchema(spec, dict(target), offsets, existing.template)


def _new_schema(
    plan: FramePlan, parts: Sequence[PartInfo], sizes: Mapping[FieldKey, int], offsets: tuple[int, ...]
) -> FrameSchema:
    """A new node's schema: pandas' template (or the plain records' dtype), and its storage."""
    template = b""
    indexed: tuple[str, ...] = ()
    if plan.fmt == "pandas":
        reps = _nan_reps(plan, parts)
        template, (target, stored, title, indexed) = _new_pandas_template(plan, parts[0].sample, sizes, reps)
    else:
        stored = _tables_dtype(parts, sizes)
        target, title = {k: k for k in parts[0].fields}, plan.title
    _check_fits(plan, parts, stored, target)
    total = sum(i.rows for i in parts)
    node = plan.node + "/table" if plan.fmt == "pandas" else plan.node
    placeholder = da.empty((total,), dtype=stored, chunks=(total,))
    spec, _ = plan_new_node(
        placeholder,
        node,
        plan.filters,
        plan.chunkshape,
        False,
        plan.title or title,
        plan.overwrite,
        plan.createparents,
    )
    if plan.fmt == "pandas":
        spec = dataclasses.replace(spec, node=plan.node, kind="frame")
    return FrameSchema(spec, dict(target), offsets, template, indexed if plan.index else ())


def _encode_part(plan: FramePlan, schema: FrameSchema, info: PartInfo, work: str) -> str | None:
    """Task: one partition's staged records widened to the final dtype, encoded (no lock held) into a sidecar."""
    if not info.rows or schema.spec is None:
        return None
    plan.job.check_work()
    sidecar = plan.work_file(f"part-{info.number}")
    if os.path.exists(sidecar):  # run again (a lost worker): the sidecar is whole, the records may be gone
        return sidecar
    records = load_records(info.file)
    rows = widen(Records(records, info.fields), schema.spec.dtype, schema.target)
    spec = schema.spec if schema.spec.kind != "frame" else dataclasses.replace(schema.spec, kind="table")
    with os_errors(plan.path, "staging a partition's chunks"):
        write_sidecar(sidecar, block_pieces(rows, spec, (schema.offsets[info.number],)), 1)
    os.unlink(info.file)  # disk: the indexes task reads its own copy of the indexed columns
    return sidecar


def _builds_indexes(plan: FramePlan, schema: FrameSchema) -> bool:
    """Whether the indexes task reads the staged records too."""
    return bool(schema.indexed) and schema.spec is not None and plan.existing is None


def _build_indexes(plan: FramePlan, schema: FrameSchema, infos: list[PartInfo], work: str) -> str | None:
    """Task: the PyTables indexes of a new pandas table, built in a side file beside the encode tasks."""
    if not _builds_indexes(plan, schema):
        return None
    plan.job.check_work()
    columns = [
        (key, name) for name in schema.indexed for key, field in schema.target.items() if field == name
    ]
    parts = [(i.index_file, _indexable(i.fields)) for i in sorted(infos, key=lambda i: i.number) if i.rows]
    side = plan.work_file("indexes.h5")
    return build_indexes(
        side,
        _table_path(plan.node),
        schema.spec.dtype,
        schema.spec.chunkshape,
        columns,
        parts,
        after_part=os.unlink,  # disk
    )


def _table_path(node: str) -> str:
    """The final path of a pandas frame's table (the indexes' titles name it)."""
    return node.rstrip("/") + "/table"


def _make_pandas_node(
    schema: FrameSchema,
    sidecars: Sequence[str],
    indexes: str | None,
    path: str,
    h5: tables.File,
    index: int,
    name: str,
) -> None:
    """The pandas frame's group, made at ``/name`` of ``h5``: the template's, with the staged rows and indexes."""
    spec = dataclasses.replace(schema.spec, kind="table")
    with _memory_store(schema.template) as store:
        group = next(iter(store._handle.root._f_iter_nodes()))
        copy = group._f_copy(h5.root, name, recursive=False)
        for child in group._f_iter_nodes():
            if child._v_name != "table":
                child._f_copy(copy, child._v_name, recursive=True)
        template_table = group.table
        table = create_node(h5, copy._v_pathname, "table", spec, createparents=False)
        template_table.attrs._f_copy(table)
    check_built(table, spec, path)
    if indexes is not None:
        # Copied first and removed (disk: the side file and its copy never sit beside the whole table).
        # The table object was made without indexes, so writing its rows below leaves them alone.
        copy_indexes(indexes, _table_path(schema.spec.node), copy)
        os.unlink(indexes)
    write_staged(table, spec, sidecars)
    table.flush()


def _make_tables_node(
    schema: FrameSchema,
    sidecars: Sequence[str],
    indexes: str | None,
    path: str,
    h5: tables.File,
    index: int,
    name: str,
) -> None:
    table = create_node(h5, "/", name, schema.spec, createparents=False)
    check_built(table, schema.spec, path)
    write_staged(table, schema.spec, sidecars)


def _append(plan: FramePlan, schema: FrameSchema, sidecars: Sequence[str], h5: tables.File) -> None:
    """The staged rows appended to the table in ``h5`` (the new version of the file), its indexes updated once."""
    assert plan.existing is not None and schema.spec is not None
    table = h5.get_node(plan.node + "/table")
    if int(table.nrows) != plan.existing.rows or table.dtype != plan.existing.spec.dtype:
        raise ValueError(
            f"{plan.path}: node {plan.node}: the table changed while the append was computed "
            f"({plan.existing.rows} rows when planned, {int(table.nrows)} now)"
        )
    append_rows(table, schema.spec, sidecars)


def _commit(
    job: Job,
    plans: list[FramePlan],
    schemas: list[FrameSchema],
    staged: list[list[str | None]],
    indexes: list[str | None],
) -> None:
    """Task: the one step that changes the target (:func:`dask_tables.write.engine.commit`), for every node."""
    steps = [
        _node_step(plan, schema, [s for s in sidecars if s is not None], index)
        for plan, schema, sidecars, index in zip(plans, schemas, staged, indexes, strict=True)
        if schema.spec is not None
    ]
    if not steps and not job.fresh:
        remove_work(job.work)
        return

    def apply(h5: tables.File) -> None:
        for step in steps:
            step(h5)

    commit(job, apply)


def _node_step(
    plan: FramePlan, schema: FrameSchema, sidecars: list[str], indexes: str | None
) -> Callable[[tables.File], None]:
    """What the commit does for one node: append its rows, or place the new node."""
    if plan.existing is not None:
        return functools.partial(_append, plan, schema, sidecars)
    maker = _make_pandas_node if plan.fmt == "pandas" else _make_tables_node
    wplan = plan.write_plan(schema.spec)
    make_node = functools.partial(maker, schema, sidecars, indexes, plan.path)
    return lambda h5: add_nodes(h5, wplan, make_node, {})


def _prepare(job: Job) -> str:
    """Task: the work folder."""
    return prepare(job)


# ---------------------------------------------------------------- the plan


def _as_frame(df: Any, node: str) -> dd.DataFrame | dd.Series:
    if isinstance(df, (pd.DataFrame, pd.Series)):
        return dd.from_pandas(df, npartitions=1)
    if isinstance(df, (dd.DataFrame, dd.Series)):
        return df
    raise TypeError(
        f"node {node}: to_tables writes frames as dask or pandas DataFrames/Series, not {type(df)}"
    )


def _known_categories(df: dd.DataFrame | dd.Series, path: str, node: str) -> tuple[Any, ...]:
    meta = df._meta.to_frame() if isinstance(df._meta, pd.Series) else df._meta
    found = []
    columns = [(name, meta[name].dtype) for name in meta.columns]
    for name, dtype in columns:
        if isinstance(dtype, pd.CategoricalDtype):
            if not has_known_categories(meta[name]):
                raise ValueError(
                    f"{path}: node {node}: column {name!r} is a categorical whose categories dask does not "
                    f"know; make them known first: df[{name!r}] = df[{name!r}].cat.as_known(), or df.categorize()"
                )
            found.append((str(name), tuple(dtype.categories), bool(dtype.ordered)))
    return tuple(found)


def _data_columns(data_columns: Any, min_itemsize: Mapping[str, int]) -> tuple[str, ...] | bool | None:
    """As pandas: a column named in ``min_itemsize`` becomes a data column."""
    if data_columns is True:
        return True
    columns = list(data_columns or [])
    columns += [k for k in min_itemsize if k not in ("values", "index", ALL_STRINGS) and k not in columns]
    return tuple(columns) or None


def _existing_pandas_table(h5: tables.File, path: str, node: str) -> ExistingTable:
    from ..frame.pandas_format import is_pandas_node

    group = h5.get_node(node)
    if not isinstance(group, tables.Group) or not is_pandas_node(group) or "table" not in group:
        raise ValueError(
            f"{path}: node {node} is not a pandas table (format='table'): append=True cannot add to it"
        )
    table = group.table
    rows = int(table.nrows)
    placeholder = da.empty((0,), dtype=table.dtype, chunks=(1,))
    spec, _ = plan_region(table, placeholder, (slice(rows, rows),), path, node + "/table")
    fields = {block_key(table, n): n for n in table.colnames}
    attrs = table.attrs._v_attrnamesuser
    reps = {n: str(table.attrs[f"{n}_nan_rep"]) for n in table.colnames if f"{n}_nan_rep" in attrs}
    return ExistingTable(spec, rows, fields, _template_of_existing(group), reps)


def frame_to_tables(
    df: Any,
    path: str,
    node: str,
    *,
    format: str = "pandas",
    data_columns: Sequence[str] | bool | None = None,
    index: bool = True,
    filters: tables.Filters | None = None,
    chunkshape: int | None = None,
    title: str = "",
    createparents: bool = True,
    append: bool = False,
    overwrite: bool = False,
    min_itemsize: Mapping[str, int] | int | None = None,
    compute: bool = True,
    mode: str = "a",
    name_function: Callable[[int], str] | None = None,
    shown_path: str | None = None,
) -> Delayed | list[str] | None:
    """:func:`dask_tables.to_tables` for a dask (or pandas) DataFrame or Series; see there."""
    fmt = _format_name(format, path, node)
    if mode not in MODES:
        raise ValueError(f"{path}: node {node}: mode={mode!r}; give one of {MODES} (as pandas)")
    if append and overwrite:
        raise ValueError(f"{path}: node {node}: give append=True or overwrite=True, not both")
    df = _as_frame(df, node)
    targets = _targets(path, shown_path or path, node, df.npartitions, name_function)
    options = _FrameOptions(
        fmt, data_columns, index, filters, chunkshape, title, createparents, append, overwrite
    )
    sizes = _min_itemsize(min_itemsize)
    writes = []
    for file, (shown, pieces) in targets.items():
        job, nodes = _plan_file(file, pieces, df, options, sizes, mode, compute)
        writes.append((shown, job, _graph(job, nodes)))
    if not compute:
        return writes[0][2] if len(writes) == 1 else Delayed(*_gathered([w[2] for w in writes]))
    run_all([w[2] for w in writes], [w[1] for w in writes])
    if "*" in (shown_path or path):
        return [shown for shown, _, _ in writes]  # the files written, as dd.to_hdf returns them
    return None


class _FrameOptions(NamedTuple):
    fmt: str
    data_columns: Sequence[str] | bool | None
    index: bool
    filters: tables.Filters | None
    chunkshape: int | None
    title: str
    createparents: bool
    append: bool
    overwrite: bool


MODES = ("a", "w", "r+")


def _format_name(format: str, path: str, node: str) -> str:
    """The format's name: pandas' spellings taken; pandas' "fixed" refused with what to use."""
    if format in ("fixed", "f"):
        raise ValueError(
            f"{path}: node {node}: format={format!r}: pandas' fixed format stores a frame whole, so it "
            "cannot be written by partitions; to_tables writes pandas' table format (format='table', "
            "the default), which pandas.read_hdf reads the same way and can also query"
        )
    if format not in _FORMAT_NAMES:
        raise ValueError(
            f"{path}: node {node}: format={format!r}; give 'table' (pandas' table format) or 'pytables'"
        )
    return _FORMAT_NAMES[format]


def _min_itemsize(min_itemsize: Mapping[str, int] | int | None) -> dict[str, int]:
    """``min_itemsize`` as a dict; an int (as pandas takes it) applies to every string column."""
    if min_itemsize is None:
        return {}
    if isinstance(min_itemsize, (int, np.integer)) and not isinstance(min_itemsize, bool):
        return {ALL_STRINGS: int(min_itemsize)}
    if not isinstance(min_itemsize, Mapping):
        raise TypeError(
            f"min_itemsize: give an int or a dict of column -> size, not {type(min_itemsize).__name__}"
        )
    return dict(min_itemsize)


def _targets(
    path: str, shown: str, node: str, partitions: int, name_function: Callable[[int], str] | None
) -> dict[str, tuple[str, list[tuple[str, list[int] | None]]]]:
    """Where each partition goes: file -> (its name as given, [(node, partitions or None: all)]).

    As ``dask.dataframe.to_hdf``: one ``*`` in the path writes one file per
    partition, in the key one node per partition, named by ``name_function``
    (default: the partition number, zero-padded to sort in order).
    """
    stars = path.count("*") + node.count("*")
    if stars > 1:
        raise ValueError(
            f"{shown}: node {node}: A maximum of one asterisk is accepted in file path and dataset key"
        )
    if not stars:
        return {path: (shown, [(check_node_name(node), None)])}
    if name_function is None:
        from fsspec.utils import build_name_function  # dd.to_hdf's own

        name_function = build_name_function(partitions - 1)
    names = [name_function(i) for i in range(partitions)]
    if names != sorted(names):
        warnings.warn(
            "To preserve order between partitions name_function must preserve the order of its input",
            stacklevel=4,
        )
    if "*" in path:
        return {
            path.replace("*", name): (shown.replace("*", name), [(check_node_name(node), [i])])
            for i, name in enumerate(names)
        }
    return {path: (shown, [(check_node_name(node.replace("*", name)), [i]) for i, name in enumerate(names)])}


def _plan_file(
    path: str,
    pieces: list[tuple[str, list[int] | None]],
    df: dd.DataFrame | dd.Series,
    options: _FrameOptions,
    min_itemsize: dict[str, int],
    mode: str,
    compute: bool,
) -> tuple[Job, list[tuple[FramePlan, dd.DataFrame | dd.Series]]]:
    """The job of one file, and each node written into it: its plan (checked against the file) and frame."""
    exists = os.path.lexists(path)
    if mode == "r+" and not exists:
        raise FileNotFoundError(f"{path}: mode='r+' writes into an existing file, and there is none")
    check_writable(path, pieces[0][0], exists)
    fresh = mode == "w"  # the file is replaced by one holding only this write
    job = new_job(path, made_by_caller=compute, fresh=fresh)
    plans = []
    with target_as_it_is(path, pieces[0][0], exists and not fresh) as h5:
        for number, (node, parts) in enumerate(pieces):
            part = df if parts is None else df.partitions[parts]
            label = "" if len(pieces) == 1 else f"n{number}-"
            plans.append((_plan_node(h5, job, node, part, options, min_itemsize, label), part))
    # the rest is checked once the rows are known
    require_space(os.path.dirname(job.path), job.copy_bytes(), job.path)
    return job, plans


def _plan_node(
    h5: tables.File | None,
    job: Job,
    node: str,
    df: dd.DataFrame | dd.Series,
    options: _FrameOptions,
    min_itemsize: dict[str, int],
    label: str,
) -> FramePlan:
    """One node's plan: checked against the file as it is (``h5``; ``None``: written afresh)."""
    path, fmt = job.path, options.fmt
    if fmt == "pytables" and options.data_columns:
        raise ValueError(f"{path}: node {node}: data_columns is for format='pandas'")
    if isinstance(df, dd.Series) and fmt == "pandas" and options.data_columns:
        raise ValueError(f"{path}: node {node}: a Series has no data_columns")
    categories = _known_categories(df, path, node)
    existing = None
    found = existing_node(h5, node)
    if options.append and found is not None:
        if fmt != "pandas":
            raise ValueError(f"{path}: node {node}: append=True adds to a pandas table (format='table')")
        existing = _existing_pandas_table(h5, path, node)
    else:
        check_replaceable(found, path, node, options.overwrite, frame=fmt == "pandas")
        check_parents(h5, path, node, options.createparents)
    plan = FramePlan(
        job=job,
        node=node,
        fmt=fmt,
        data_columns=_data_columns(options.data_columns, min_itemsize) if existing is None else True,
        index=options.index,
        filters=options.filters,
        chunkshape=options.chunkshape,
        min_itemsize=tuple(min_itemsize.items()),
        title=options.title,
        overwrite=options.overwrite,
        createparents=options.createparents,
        categories=categories,
        existing=existing,
        label=label,
    )
    if existing is not None:
        plan = dataclasses.replace(plan, data_columns=_existing_data_columns(existing))
    return plan


def _existing_data_columns(existing: ExistingTable) -> tuple[str, ...] | None:
    names = tuple(k for k in existing.fields if isinstance(k, str) and k != "index")
    return names or None


def _graph(job: Job, nodes: list[tuple[FramePlan, dd.DataFrame | dd.Series]]) -> Delayed:
    """prepare -> per node: records per partition -> schema -> encode per partition, and indexes -> one commit."""
    token = job.token
    prepare_key = f"to-tables-frame-prepare-{token}"
    commit_key = f"to-tables-frame-{token}"
    layer: dict[Any, Any] = {prepare_key: (_prepare, job)}
    plans, schemas, encodes, indexes, dependencies = [], [], [], [], []
    for plan, df in nodes:
        parts = df.to_delayed()
        dependencies += parts
        name = f"{token}{plan.label}"
        schema_key = f"to-tables-frame-schema-{name}"
        indexes_key = f"to-tables-frame-indexes-{name}"
        infos, encoded = [], []
        for number, part in enumerate(parts):
            info_key = (f"to-tables-frame-records-{name}", number)
            layer[info_key] = (_stage_records, plan, part.key, number, prepare_key)
            infos.append(info_key)
            encode_key = (f"to-tables-frame-encode-{name}", number)
            layer[encode_key] = (_encode_part, plan, schema_key, info_key, prepare_key)
            encoded.append(encode_key)
        layer[schema_key] = (_schema, plan, infos)
        layer[indexes_key] = (_build_indexes, plan, schema_key, infos, prepare_key)
        plans.append(plan)
        schemas.append(schema_key)
        encodes.append(encoded)
        indexes.append(indexes_key)
    layer[commit_key] = (_commit, job, plans, schemas, encodes, indexes)
    graph = HighLevelGraph.from_collections(commit_key, layer, dependencies=dependencies)
    return Delayed(commit_key, graph)


def _gathered(writes: list[Delayed]) -> tuple[str, HighLevelGraph]:
    """One key that computes all ``writes`` (one file each)."""
    key = f"to-tables-files-{writes[0].key}"
    layer = {key: (_nothing, [w.key for w in writes])}
    return key, HighLevelGraph.from_collections(key, layer, dependencies=writes)


def _nothing(_: Any) -> None:
    return None
