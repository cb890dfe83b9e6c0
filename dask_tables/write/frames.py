"""``to_tables`` for dask DataFrames and Series: pandas' table format, or a plain PyTables table.

The write engine (:mod:`dask_tables.write.engine`) and the array writer's
staging do the hard parts; a frame adds what it needs before its rows are
chunks of a table.  This module builds the graph; each phase has its module:

1. **Plan** (in the caller): the inputs are checked (file, node, format,
   known categories), and for ``append=True`` the existing pandas table is
   read: its record dtype, its storage, and its group (with a zero-row
   table) as an in-memory HDF5 image, the template
   (:mod:`dask_tables.write.frameplan`, :mod:`dask_tables.write.templates`;
   a ``*`` in the path or key: :mod:`dask_tables.write.targets`).
2. **Records** (one task per partition, the only pass over the data): the
   partition becomes table records (:mod:`dask_tables.write.records`: pandas
   itself converts for ``format="pandas"``), saved raw in the work folder;
   the task returns their string sizes and layout
   (:mod:`dask_tables.write.frametasks`, as are the encode and indexes tasks).
3. **Schema** (one task): each string column gets the largest size of any
   partition (or ``min_itemsize``), so a later partition with longer strings
   never fails; for a new pandas table, pandas writes one row with those
   sizes into an in-memory file, which becomes the template (attributes,
   values blocks, categories); the node's storage is planned as the array
   writer plans a table (:func:`dask_tables.write.plan.plan_new_node`)
   (:mod:`dask_tables.write.schema`).
4. **Encode** (one task per partition, reading only the staged records):
   records widened to the final dtype, cut into HDF5 chunks and encoded with
   no lock held (:func:`dask_tables.write.staging.block_pieces`) into a sidecar.
   **Indexes** (one task, for a new pandas table, at the same time): the
   PyTables indexes pandas makes (index and data columns), built from the
   staged records in a side file (:mod:`dask_tables.write.indexes`).
5. **Commit** (one task, :mod:`dask_tables.write.framecommit`, through
   :func:`dask_tables.write.engine.commit`): the node is built
   under a temporary name, with the indexes copied beside its table, and
   moved into place (a new file is built whole in the work folder, then
   ``os.replace``-d); an append grows the table in place and reindexes it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import dask.dataframe as dd
import tables
from dask.delayed import Delayed
from dask.highlevelgraph import HighLevelGraph

from .engine import Job, prepare, run_all
from .framecommit import commit_frames
from .frameplan import MODES, FrameOptions, FramePlan, as_frame, as_min_itemsize, format_name, plan_file
from .frametasks import build_frame_indexes, encode_part, stage_records
from .schema import frame_schema
from .targets import partition_targets

__all__ = ["frame_to_tables"]


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
    fmt = format_name(format, path, node)
    if mode not in MODES:
        raise ValueError(f"{path}: node {node}: mode={mode!r}; give one of {MODES} (as pandas)")
    if append and overwrite:
        raise ValueError(f"{path}: node {node}: give append=True or overwrite=True, not both")
    df = as_frame(df, node)
    targets = partition_targets(path, shown_path or path, node, df.npartitions, name_function)
    options = FrameOptions(
        fmt, data_columns, index, filters, chunkshape, title, createparents, append, overwrite
    )
    sizes = as_min_itemsize(min_itemsize)
    writes = []
    for file, (shown, pieces) in targets.items():
        job, nodes = plan_file(file, pieces, df, options, sizes, mode, compute)
        writes.append((shown, job, _graph(job, nodes)))
    if not compute:
        return writes[0][2] if len(writes) == 1 else Delayed(*_gathered([w[2] for w in writes]))
    run_all([w[2] for w in writes], [w[1] for w in writes])
    return _file_of_each_partition(targets, df.npartitions)


def _file_of_each_partition(
    targets: Mapping[str, tuple[str, list[tuple[str, list[int] | None]]]], partitions: int
) -> list[str]:
    """The file (as the caller named it) each partition went to, in order, as ``dd.to_hdf`` returns them.

    Examples
    --------
    >>> _file_of_each_partition({"a.h5": ("a.h5", [("/df", None)])}, 2)
    ['a.h5', 'a.h5']
    >>> _file_of_each_partition({"b-1.h5": ("b-1.h5", [("/df", [1])]), "b-0.h5": ("b-0.h5", [("/df", [0])])}, 2)
    ['b-0.h5', 'b-1.h5']
    """
    names = [""] * partitions
    for shown, pieces in targets.values():
        for _, which in pieces:
            for i in range(partitions) if which is None else which:
                names[i] = shown
    return names


def _prepare(job: Job) -> str:
    """Task: the work folder."""
    return prepare(job)


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
            layer[info_key] = (stage_records, plan, part.key, number, prepare_key)
            infos.append(info_key)
            encode_key = (f"to-tables-frame-encode-{name}", number)
            layer[encode_key] = (encode_part, plan, schema_key, info_key, prepare_key)
            encoded.append(encode_key)
        layer[schema_key] = (frame_schema, plan, infos)
        layer[indexes_key] = (build_frame_indexes, plan, schema_key, infos, prepare_key)
        plans.append(plan)
        schemas.append(schema_key)
        encodes.append(encoded)
        indexes.append(indexes_key)
    layer[commit_key] = (commit_frames, job, plans, schemas, encodes, indexes)
    graph = HighLevelGraph.from_collections(commit_key, layer, dependencies=dependencies)
    return Delayed(commit_key, graph)


def _gathered(writes: list[Delayed]) -> tuple[str, HighLevelGraph]:
    """One key that computes all ``writes`` (one file each)."""
    key = f"to-tables-files-{writes[0].key}"
    layer = {key: (_nothing, [w.key for w in writes])}
    return key, HighLevelGraph.from_collections(key, layer, dependencies=writes)


def _nothing(_: Any) -> None:
    return None
