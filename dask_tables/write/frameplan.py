"""The plan of a frame write, made in the caller before any task runs.

The options are checked (format, mode, ``min_itemsize``, data columns,
categories dask knows), each node is checked against the file as it is
(an existing node, its parents, the pandas table ``append=True`` adds to),
and the result is a :class:`FramePlan` per node: picklable, nothing open.
The rows themselves are checked later, by the schema task
(:mod:`dask_tables.write.schema`).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import dask.array as da
import dask.dataframe as dd
import numpy as np
import pandas as pd
import tables
from dask.dataframe.utils import has_known_categories

from .engine import Job, new_job, require_space
from .plan import (
    NodeWrite,
    WritePlan,
    check_parents,
    check_replaceable,
    check_writable,
    existing_node,
    plan_region,
    target_as_it_is,
)
from .records import FieldKey, block_key
from .templates import template_of_existing

__all__ = [
    "ALL_STRINGS",
    "MODES",
    "ExistingTable",
    "FrameOptions",
    "FramePlan",
    "as_frame",
    "as_min_itemsize",
    "format_name",
    "plan_file",
]


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


MODES = ("a", "w", "r+")


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


class FrameOptions(NamedTuple):
    fmt: str
    data_columns: Sequence[str] | bool | None
    index: bool
    filters: tables.Filters | None
    chunkshape: int | None
    title: str
    createparents: bool
    append: bool
    overwrite: bool


def format_name(format: str, path: str, node: str) -> str:
    """The format's name: pandas' spellings taken; pandas' "fixed" refused with what to use.

    Examples
    --------
    >>> format_name("table", "out.h5", "/df"), format_name("tables", "out.h5", "/df")
    ('pandas', 'pytables')
    """
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


def as_min_itemsize(min_itemsize: Mapping[str, int] | int | None) -> dict[str, int]:
    """``min_itemsize`` as a dict; an int (as pandas takes it) applies to every string column.

    Examples
    --------
    >>> as_min_itemsize(20), as_min_itemsize({"s": 8}), as_min_itemsize(None)
    ({'*': 20}, {'s': 8}, {})
    """
    if min_itemsize is None:
        return {}
    if isinstance(min_itemsize, (int, np.integer)) and not isinstance(min_itemsize, bool):
        return {ALL_STRINGS: int(min_itemsize)}
    if not isinstance(min_itemsize, Mapping):
        raise TypeError(
            f"min_itemsize: give an int or a dict of column -> size, not {type(min_itemsize).__name__}"
        )
    return dict(min_itemsize)


def as_frame(df: Any, node: str) -> dd.DataFrame | dd.Series:
    """``df`` as a dask collection (a pandas frame: one partition); anything else raises ``TypeError``.

    Examples
    --------
    >>> as_frame(pd.DataFrame({"a": [1, 2]}), "/df").npartitions
    1
    """
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
    return ExistingTable(spec, rows, fields, template_of_existing(group), reps)


def plan_file(
    path: str,
    pieces: list[tuple[str, list[int] | None]],
    df: dd.DataFrame | dd.Series,
    options: FrameOptions,
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
    options: FrameOptions,
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
