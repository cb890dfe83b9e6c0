"""The tasks of a frame write that run on its partitions, before the commit.

- :func:`stage_records` (one per partition, the only pass over the data):
  the partition as table records (:mod:`dask_tables.write.records`), saved
  raw in the work folder.
- :func:`encode_part` (one per partition, once the schema is known): the
  staged records widened to the final dtype, cut into HDF5 chunks and
  encoded with no lock held into a sidecar.
- :func:`build_frame_indexes` (one, for a new pandas table, beside the
  encode tasks): the PyTables indexes pandas makes, built from the staged
  records in a side file (:mod:`dask_tables.write.indexes`).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from typing import Any

import pandas as pd
from numpy.lib.recfunctions import repack_fields

from .engine import os_errors
from .frameplan import FramePlan
from .indexes import build_indexes
from .records import FieldKey, Records, frame_records, widen
from .schema import FrameSchema, PartInfo
from .staging import block_pieces, load_records, save_records, write_sidecar
from .templates import table_path

__all__ = ["build_frame_indexes", "encode_part", "stage_records"]


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


def stage_records(plan: FramePlan, part: Any, number: int, work: str) -> PartInfo:
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


def encode_part(plan: FramePlan, schema: FrameSchema, info: PartInfo, work: str) -> str | None:
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


def build_frame_indexes(plan: FramePlan, schema: FrameSchema, infos: list[PartInfo], work: str) -> str | None:
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
        table_path(plan.node),
        schema.spec.dtype,
        schema.spec.chunkshape,
        columns,
        parts,
        after_part=os.unlink,  # disk
    )
