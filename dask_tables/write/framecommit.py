"""The commit of a frame write: what the one final step does to each node.

:func:`commit_frames` runs :func:`dask_tables.write.engine.commit` once for
every node of the file: a new node is built under a temporary name from
the staged sidecars (a pandas frame's group from its template, with the
indexes copied beside its table) and moved into place; an append grows the
existing table and reindexes it once.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Callable, Sequence

import tables

from .engine import Job, commit, remove_work
from .frameplan import FramePlan
from .indexes import copy_indexes
from .nodes import add_nodes, write_staged
from .plan import check_built
from .schema import FrameSchema
from .staging import append_rows
from .templates import memory_store, table_path
from .trial import create_node

__all__ = ["commit_frames"]


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
    with memory_store(schema.template) as store:
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
        copy_indexes(indexes, table_path(schema.spec.node), copy)
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


def commit_frames(
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
