"""The trial node and node creation: a write's storage settled by HDF5 itself, before any task.

The node is first created in an in-memory HDF5 file (the trial node); its
storage (stored type, filter pipeline) is what the write uses, and its one
chunk, encoded by dask_tables and read back by HDF5, tells whether our
encoders write what HDF5 reads.  :func:`create_node` makes the same node in
the target during the commit.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import uuid
from collections.abc import Iterator

import numpy as np
import tables

from ..errors import at_node
from ..filters import UnsupportedEncoderError, encoding_chain
from ..hdf5.storednode import StoredNode, hdf5_reads_as
from ..registry import get_lock, synchronized_close_file, synchronized_open_file
from .writes import NodeWrite, table_description

__all__ = ["check_built", "create_node"]


def check_built(leaf: tables.Leaf, write: NodeWrite, path: str) -> None:
    """Raise unless PyTables built ``leaf`` with the filter pipeline ``write`` planned (and encodes for)."""
    if StoredNode.of(leaf).filters != write.storage.filters:
        raise RuntimeError(f"{at_node(path, write.node)}: PyTables built another filter pipeline")


def create_node(
    h5: tables.File, parent: str, name: str, write: NodeWrite, createparents: bool
) -> tables.Leaf:
    """Create ``write``'s (new) node, empty, at ``parent/name``."""
    if write.kind == "scalar":
        empty = np.zeros((), write.dtype)
        return h5.create_array(
            parent, name, obj=empty, title=write.title, byteorder=write.byteorder, createparents=createparents
        )
    common = {"title": write.title, "filters": write.tables_filters, "createparents": createparents}
    if write.kind == "table":
        description = table_description(write.dtype, write.enums)
        table = h5.create_table(parent, name, description=description, chunkshape=write.chunkshape, **common)
        if write.shape[0]:
            table.truncate(write.shape[0])
        return table
    atom = tables.Atom.from_dtype(write.dtype.newbyteorder("="))
    if write.kind == "earray":
        # A zero-size array is an EArray whose extendable axis is its (one) empty axis.
        empty = 0 in write.shape
        earray = h5.create_earray(
            parent,
            name,
            atom=atom,
            shape=write.shape if empty else (0, *write.shape[1:]),
            chunkshape=write.chunkshape,
            byteorder=write.byteorder,
            expectedrows=max(1, write.shape[0]),
            **common,
        )
        if not empty:
            earray.truncate(write.shape[0])
        return earray
    return h5.create_carray(
        parent,
        name,
        atom=atom,
        shape=write.shape,
        chunkshape=write.chunkshape,
        byteorder=write.byteorder,
        **common,
    )


def _trial_values(dtype: np.dtype, shape: tuple[int, ...]) -> np.ndarray:
    """Deterministic values of every byte pattern-ish, valid for ``dtype`` (bools 0/1)."""
    count = math.prod(shape)
    pattern = ((np.arange(251, dtype=np.int64) * 7919 + 13) % 251).astype(np.uint8)
    raw = np.resize(pattern, count * dtype.itemsize)  # a 251-byte cycle: every byte value but 4
    values = raw.view(dtype).reshape(shape).copy()

    def fix_bools(arr: np.ndarray) -> None:
        if arr.dtype.names:
            for name in arr.dtype.names:
                fix_bools(arr[name])
        elif arr.dtype.base.kind == "b":
            arr.view(np.uint8)[...] &= 1

    if values.dtype.names or values.dtype.kind == "b":
        fix_bools(values)
    return values


@contextlib.contextmanager
def _trial_node(write: NodeWrite) -> Iterator[tables.Leaf]:
    """``write``'s node, one chunk large, created in an in-memory HDF5 file (with the lock held)."""
    assert write.chunkshape is not None
    one_chunk = dataclasses.replace(write.storage, shape=write.chunkshape)
    trial = dataclasses.replace(write, storage=one_chunk, kind=_creation_kind(write))
    name = f"trial-{uuid.uuid4().hex}.h5"
    with get_lock():
        h5 = synchronized_open_file(name, "w", driver="H5FD_CORE", driver_core_backing_store=0)
        try:
            yield create_node(h5, "/", "trial", trial, createparents=False)
        finally:
            synchronized_close_file(h5)


def _encoding_reads_back(write: NodeWrite, trial: tables.Leaf) -> bool:
    """Whether HDF5 reads a chunk encoded by dask_tables exactly as it was.

    ``trial`` is ``write``'s node, one chunk large, in an in-memory file
    (:func:`_trial_node`): one chunk of trial values encoded by
    :mod:`dask_tables.filters` is written there with ``write_chunk``
    and HDF5's read compared with it
    (:func:`~dask_tables.hdf5.storednode.hdf5_reads_as`, the check the
    direct read path makes too).  Also requires the trial node's filter
    pipeline to be ``write``'s, and the file to store records as PyTables
    lays them out.
    """
    storage = write.storage
    assert storage.chunkshape is not None
    if storage.memory is not None:
        return False  # the file lays records out otherwise: only HDF5 converts them
    try:
        encoder = encoding_chain(storage.filters)
    except UnsupportedEncoderError:
        return False
    built = StoredNode.of(trial)
    if built.filters != storage.filters:
        return False
    values = _trial_values(storage.dtype_on_disk, storage.chunkshape)
    try:
        with get_lock():
            trial.write_chunk(built.first_chunk, encoder.encode(values.tobytes()))
            return hdf5_reads_as(trial, built, values) is True
    except (tables.HDF5ExtError, ValueError, TypeError, RuntimeError):
        return False


def _creation_kind(write: NodeWrite) -> str:
    if write.kind != "region":
        return write.kind
    return "table" if write.dtype.names is not None else "carray"


def _settled_by_trial(write: NodeWrite) -> NodeWrite:
    """``write`` with the storage PyTables gives its trial node, and whether dask_tables encodes its chunks.

    What PyTables stores may differ from the dtype given (a table's
    records, say); the filter pipeline is HDF5's, read by filter id.
    """
    try:
        with _trial_node(write) as trial:
            built = StoredNode.of(trial)
            write = dataclasses.replace(write, storage=dataclasses.replace(built, shape=write.shape))
            return dataclasses.replace(write, encode=_encoding_reads_back(write, trial))
    except (tables.HDF5ExtError, ValueError, TypeError, NotImplementedError) as err:
        raise ValueError(
            f"{at_node(None, write.node)}: PyTables cannot create it ({type(err).__name__}: {err})"
        ) from None
