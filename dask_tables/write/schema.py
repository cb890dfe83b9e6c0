"""The table a frame is written into, settled once every partition's records are staged.

One task (:func:`frame_schema`) reads what each records task found
(:class:`PartInfo`): each string column gets the largest size of any
partition (or ``min_itemsize``), so a later partition with longer strings
never fails; every partition must hold every field with its dtype and the
same missing-value marker.  For a new pandas table, pandas writes one row
with those sizes into an in-memory file, the template
(:mod:`dask_tables.write.templates`); an append is checked against the
existing table.  The node's storage is planned as the array writer plans a
table (:func:`dask_tables.write.plan.plan_new_node`).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import dask.array as da
import numpy as np
import pandas as pd
import tables

from .engine import require_space
from .frameplan import ALL_STRINGS, ExistingTable, FramePlan
from .plan import NodeWrite, plan_new_node
from .records import FieldKey, block_key, leaf_dtype, matching_key, nested_dtype, same_key
from .templates import memory_store, pandas_key

__all__ = ["FrameSchema", "PartInfo", "frame_schema"]


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
    with memory_store() as store:
        store.append(
            pandas_key(plan.node),
            sample,
            format="table",
            data_columns=plan.data_columns,
            min_itemsize=min_itemsize or None,
            index=False,
        )
        store._handle.flush()
        storer = store.get_storer(pandas_key(plan.node))
        table = storer.table
        target = {block_key(table, n): n for n in table.colnames}
        _set_nan_reps(table, target, reps)
        indexed = tuple(a.cname for a in storer.axes if a.is_data_indexable)
        return store._handle.get_file_image(), (target, table.dtype, table.title, indexed)


def _check_template_accepts(plan: FramePlan, sample: Any, template: bytes) -> None:
    """pandas' own checks of an append (columns, dtypes, data columns, categories) on one row."""
    with memory_store(template) as store:
        try:
            store.append(pandas_key(plan.node), sample, format="table", index=False)
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


def frame_schema(plan: FramePlan, infos: list[PartInfo]) -> FrameSchema:
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
