"""What one write is, before any task: :class:`NodeWrite`, :class:`WritePlan` and the table description.

Plain data, picklable, holding nothing open: made by :mod:`dask_tables.write.plan`,
used by every later step of a write.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import tables

from ..hdf5.storednode import StoredNode
from .engine import Job

TMP_PREFIX = "_dask_tables_tmp_"
"""How the temporary names of new nodes begin."""

__all__ = ["EnumColumn", "NodeWrite", "RechunkWarning", "WritePlan", "enum_columns", "table_description"]


class RechunkWarning(UserWarning):
    """:func:`~dask_tables.to_tables` rechunked the array so that its blocks hold whole HDF5 chunks."""


class EnumColumn(NamedTuple):
    """An enumerated column of a table, as plain data (``tables.Enum`` does not unpickle)."""

    path: str  # "kind", or "pos/kind" in a nested column
    members: tuple[tuple[str, int], ...]  # name -> value
    default: str  # the name of the default value
    base: str  # the stored integer dtype, e.g. "|u1"

    @classmethod
    def of(cls, path: str, col: tables.EnumCol) -> EnumColumn:
        members = tuple(sorted(((name, int(value)) for name, value in col.enum), key=lambda m: m[1]))
        return cls(path, members, col.enum(col.dflt), col.base.dtype.str)  # dflt is the value

    def col(self, shape: tuple[int, ...], pos: int) -> tables.EnumCol:
        """The ``EnumCol`` that creates this column."""
        base = tables.Atom.from_dtype(np.dtype(self.base))
        return tables.EnumCol(tables.Enum(dict(self.members)), self.default, base=base, shape=shape, pos=pos)


def enum_columns(table: tables.Table) -> tuple[EnumColumn, ...]:
    """The enumerated columns of ``table``, by column path."""
    return tuple(
        EnumColumn.of(path, col) for path, col in table.coldescrs.items() if isinstance(col, tables.EnumCol)
    )


def table_description(stored: np.dtype, enums: Sequence[EnumColumn]) -> np.dtype | dict[str, Any]:
    """What ``create_table`` is given: the record dtype, or a description with the enumerated columns.

    Examples
    --------
    >>> enum = EnumColumn("kind", (("a", 0), ("b", 1)), "b", "|u1")
    >>> description = table_description(np.dtype([("kind", "u1"), ("v", "f8")]), [enum])
    >>> description["kind"].enum, description["v"]
    (Enum({'a': 0, 'b': 1}), Float64Col(shape=(), dflt=np.float64(0.0), pos=1))
    """
    if not enums:
        return stored
    by_path = {e.path: e for e in enums}

    def describe(dtype: np.dtype, prefix: str) -> dict[str, Any]:
        columns: dict[str, Any] = {}
        for pos, name in enumerate(dtype.names):
            field = dtype.fields[name][0]
            path = prefix + name
            if field.names is not None:
                columns[name] = {**describe(field, path + "/"), "_v_pos": pos}
            elif path in by_path:
                columns[name] = by_path[path].col(field.shape, pos)
            else:
                columns[name] = tables.Col.from_dtype(field, pos=pos)
        return columns

    return describe(stored, "")


@dataclass(frozen=True)
class NodeWrite:
    """One node to write: everything a task needs, and nothing open.

    Its ``storage`` is the node as the file stores it (shape, chunk shape,
    stored type, HDF5 filter pipeline), the same description the direct
    read path uses; the rest says how to create it and what to write.
    """

    node: str  # its final path
    # "carray", "earray", "table", "scalar" (a new node), "region" (into an existing one),
    # or "frame" (a pandas frame's group, whose "table" is a "table": dask_tables.write.frames)
    kind: str
    # chunkshape None: a scalar, or a contiguous existing node (region only)
    storage: StoredNode
    tables_filters: tables.Filters | None  # what a new node is created with (PyTables' Filters)
    encode: bool  # chunks encoded by dask_tables (else HDF5's pipeline writes them)
    title: str = ""
    byteorder: str | None = None
    region: tuple[slice, ...] | None = None  # where the array lands in the node
    overwrite: bool = False
    createparents: bool = True
    enums: tuple[EnumColumn, ...] = ()  # a table's enumerated columns

    @property
    def shape(self) -> tuple[int, ...]:
        """The node's shape."""
        return self.storage.shape

    @property
    def chunkshape(self) -> tuple[int, ...] | None:
        """The node's HDF5 chunk shape (``None``: contiguous)."""
        return self.storage.chunkshape

    @property
    def dtype(self) -> np.dtype:
        """One element as written: in the file's byte order, PyTables' record for a table."""
        return self.storage.dtype

    def resized(self, shape: tuple[int, ...], region: tuple[slice, ...] | None) -> NodeWrite:
        """The same write into the node grown (or shrunk) to ``shape``, landing at ``region``."""
        return dataclasses.replace(
            self, storage=dataclasses.replace(self.storage, shape=shape), region=region
        )


@dataclass(frozen=True)
class WritePlan:
    """One call of :func:`~dask_tables.to_tables` with arrays: its :class:`~dask_tables.write.engine.Job` and its nodes."""

    job: Job
    nodes: tuple[NodeWrite, ...]

    @property
    def path(self) -> str:
        return self.job.path

    @property
    def new_file(self) -> bool:
        # build the whole file in the work folder, then os.replace it
        return self.job.new_file

    @property
    def temp_file(self) -> str:
        """The new file the stage tasks build (a write of a new file)."""
        return os.path.join(self.job.work, "target.h5")

    @property
    def marker(self) -> str:
        # Exists while a task holds temp_file open for writing.
        return os.path.join(self.job.work, "writing")

    def temp_name(self, i: int) -> str:
        return f"{TMP_PREFIX}{self.job.token}_{i}"
