"""``to_tables`` of arrays: dask arrays into PyTables nodes, compressed in parallel, all or nothing.

How a write runs (one dask graph; :func:`to_tables` builds it):

1. **Plan** (in the caller, before any task runs): every input is checked
   (file writable and HDF5, node names, an existing node without
   ``overwrite``, the ``region`` of an existing node), the chunk shape is
   chosen to divide the dask blocks, and the node's storage (stored type,
   HDF5 filter pipeline) is read from the same node created in an in-memory
   HDF5 file, the trial node.  Each filter of the pipeline is encoded in
   Python (:mod:`dask_tables.filters`) only if HDF5 reads an
   encoded trial chunk back exactly; otherwise that node is written
   through HDF5's own pipeline.
2. **Prepare** (one task): a hidden work folder next to the target,
   ``.<name>.dask-tables-<token>``; for a new file it also holds the whole
   new file, ``target.h5``, with its nodes created.
3. **Stage** (one task per dask block, in parallel): the block is cut into
   HDF5 chunks, which are encoded with no lock held (edge chunks padded with
   zeros to the full chunk shape, as HDF5 stores them).  For a new file the
   task writes them into the work folder's ``target.h5`` with
   ``Leaf.write_chunk`` under the per-process lock and a cross-process
   lock; for an existing file it streams them into its own sidecar file in
   the work folder (written under a temporary name, then renamed, so a task
   retried after a killed worker is harmless) and takes no lock at all.
4. **Commit** (one task, after all the others): for a new file,
   ``os.replace`` of the finished file onto the target; for an existing
   file, under the locks, the nodes are created under temporary names at
   the root, the staged chunks copied in with ``write_chunk``, and only
   then an existing node removed (``overwrite=True``) and the new one moved
   to its name.  The work folder is removed.

The public front end, :func:`dask_tables.to_tables`, is
:mod:`dask_tables.write.totables`; the plan and its checks live in
:mod:`dask_tables.write.plan`, the pieces and sidecar files in
:mod:`dask_tables.write.staging`, the writers' locks in
:mod:`dask_tables.write.locks`; this module has the arrays' plan, their
tasks and the graph (:func:`array_to_tables`).

Locks: :func:`dask_tables.registry.get_lock` in each process, plus, across
processes, an ``fcntl.flock`` (of the target's folder for the commit, of
the work folder for the stage tasks) and, inside a ``dask.distributed``
worker, a ``distributed.Lock`` named by the file.  They are always taken in
the order distributed lock, flock, process lock, so two writers never wait
on each other in a cycle.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import os
import uuid
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import tables
from dask.delayed import Delayed
from dask.highlevelgraph import HighLevelGraph

from ..errors import FileChangedError, WriteInterruptedError
from ..hdf5.fingerprint import same_file
from ..registry import get_lock, synchronized_file
from .engine import commit, new_job, os_errors, prepare, remove_work, require_space, run
from .locks import write_lock
from .nodes import add_nodes, write_staged
from .plan import (
    WRITE_ONCE_ADVICE,
    NodeWrite,
    WritePlan,
    as_dask_array,
    check_built,
    check_dtype,
    check_node_name,
    check_parents,
    check_reads_unchanged,
    check_replaceable,
    check_writable,
    enums_read_by,
    existing_node,
    inherited_options,
    plan_new_node,
    plan_region,
    target_as_it_is,
)
from .staging import block_pieces, write_pieces, write_sidecar
from .trial import create_node

__all__ = ["array_to_tables"]

# ---------------------------------------------------------------- the tasks


class Staged(NamedTuple):
    """What a stage task tells the commit: which node its block belongs to, and where it left its chunks."""

    index: int  # the node's position in the plan
    sidecar: str | None  # the sidecar file (existing-file mode); None: written into the new file


def _prepare(plan: WritePlan) -> str:
    """Task: the work folder; for a new file, the new file with its (empty) nodes."""
    work = prepare(plan.job)
    if plan.new_file and not os.path.exists(plan.temp_file):
        # Built aside and linked into place: a preparation run again (the
        # scheduler recomputes it after losing a worker) never empties a
        # file that stage tasks have already written chunks into.
        building = f"{plan.temp_file}.{os.getpid()}-{uuid.uuid4().hex[:8]}"
        try:
            with (
                os_errors(plan.path, "building the new file"),
                get_lock(),
                synchronized_file(building, "w") as h5,
            ):
                for write in plan.nodes:
                    parent, name = write.node.rsplit("/", 1)
                    leaf = create_node(h5, parent or "/", name, write, createparents=True)
                    check_built(leaf, write, plan.path)
            with contextlib.suppress(FileExistsError):
                os.link(building, plan.temp_file)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(building)
    return work


def _stage_block(
    plan: WritePlan, block: np.ndarray, index: int, key: str, start: tuple[int, ...], work: str
) -> Staged:
    """Task: encode one block's chunks (no lock held) and stage them."""
    write = plan.nodes[index]
    plan.job.check_work()
    if not plan.new_file:
        sidecar = os.path.join(work, f"block-{index}-{key}")
        with os_errors(plan.path, "staging a block"):
            write_sidecar(sidecar, block_pieces(block, write, start), len(write.shape))
        return Staged(index, sidecar)
    pieces = list(block_pieces(block, write, start))
    with write_lock(plan.temp_file, work):
        if os.path.exists(plan.marker):
            raise WriteInterruptedError(plan.path)
        with open(plan.marker, "x"):
            pass
        try:
            with os_errors(plan.path, "writing the new file"), synchronized_file(plan.temp_file, "r+") as h5:
                write_pieces(h5.get_node(write.node), pieces)
        finally:  # only a process that dies here leaves the marker behind
            os.unlink(plan.marker)
    return Staged(index, None)


def _commit(plan: WritePlan, staged: list[Staged]) -> None:
    """Task: the one step that changes the target (:func:`dask_tables.write.engine.commit`)."""
    sidecars: dict[int, list[str]] = {}
    for index, sidecar in staged:
        if sidecar is not None:
            sidecars.setdefault(index, []).append(sidecar)

    def apply(h5: tables.File) -> None:
        if not plan.new_file:
            add_nodes(h5, plan, functools.partial(_node_from_sidecars, plan, sidecars), sidecars)
            return
        # Another write (a second lazy to_tables of the same new file, say)
        # created the file meanwhile: add these nodes to it, with the checks
        # of any write into an existing file, rather than replace it.
        with synchronized_file(plan.temp_file, "r") as built:
            add_nodes(h5, plan, functools.partial(_node_from_built, plan, built), {})

    if plan.new_file and os.path.exists(plan.marker):
        # every stage task has ended: a marker left now is one of a process that died
        remove_work(plan.job.work)
        raise WriteInterruptedError(plan.path)
    commit(plan.job, apply, built=plan.temp_file if plan.new_file else None)


def _commit_after(plan: WritePlan, work: str) -> None:
    """Task: the commit of a write without blocks (zero-size arrays)."""
    _commit(plan, [])


def _node_from_sidecars(
    plan: WritePlan, sidecars: dict[int, list[str]], h5: tables.File, index: int, name: str
) -> None:
    """A new node written from the chunks its stage tasks left in sidecar files."""
    write = plan.nodes[index]
    leaf = create_node(h5, "/", name, write, createparents=False)
    check_built(leaf, write, plan.path)
    write_staged(leaf, write, sidecars.get(index, []))


def _node_from_built(plan: WritePlan, built: tables.File, h5: tables.File, index: int, name: str) -> None:
    """A new node copied from the file the stage tasks built (its filters and chunk shape kept)."""
    built.get_node(plan.nodes[index].node).copy(h5.root, name)


# ---------------------------------------------------------------- the plan and the graph


def array_to_tables(
    x: Any,
    path: str,
    node: str | None,
    *,
    filters: tables.Filters | None = None,
    chunkshape: Sequence[int] | int | None = None,
    title: str = "",
    createparents: bool = True,
    overwrite: bool = False,
    extendable: bool | None = None,
    region: tuple[slice, ...] | slice | None = None,
    compute: bool = True,
    mode: str = "a",
) -> Delayed | None:
    """:func:`dask_tables.to_tables` of an array (or a dict of them) into the local file ``path``; see there.

    ``path`` is absolute and ``node`` starts with ``/`` (the front end makes them so).

    Examples
    --------
    >>> import numpy as np, os
    >>> array_to_tables(np.arange(4.0), os.path.abspath("arrays.h5"), "/x")
    >>> import dask_tables
    >>> dask_tables.from_tables("arrays.h5", "/x").sum().compute()
    np.float64(6.0)
    """
    names, arrays = _named_arrays(x, node, region, path)
    if mode not in ("a", "w", "r+"):
        raise ValueError(f"{path}: mode={mode!r}; give 'a', 'w' or 'r+' (as pandas)")
    if mode == "w" and region is not None:
        raise ValueError(f"{path}: mode='w' replaces the file, so there is no node to write a region of")
    exists = os.path.lexists(path)
    if mode == "r+" and not exists:
        raise FileNotFoundError(f"{path}: mode='r+' writes into an existing file, and there is none")
    check_writable(path, names[0], exists)
    exists = exists and mode != "w"  # mode="w": the file is replaced by one holding only this write
    if exists:
        check_reads_unchanged(arrays, path)
    options = _NewNodeOptions(filters, chunkshape, title, createparents, overwrite, extendable)
    writes, arrays = _plan_writes(path, exists, names, arrays, region, options)
    plan = WritePlan(job=new_job(path, made_by_caller=compute, fresh=mode == "w"), nodes=tuple(writes))
    require_space(os.path.dirname(plan.path), _space_needed(plan, arrays), plan.path)
    result = _write_graph(plan, arrays)
    if not compute:
        return result
    _run(result, plan)
    return None


def _space_needed(plan: WritePlan, arrays: list[Any]) -> int:
    """An upper bound of a write's extra disk: the arrays uncompressed, and a copy of an existing file."""
    written = sum(int(a.nbytes) for a in arrays)
    return written + plan.job.copy_bytes()


def _named_arrays(x: Any, node: str | None, region: Any, path: str) -> tuple[list[str], list[Any]]:
    """The node names and dask arrays to write (one, or a dict of them), each checked."""
    if isinstance(x, Mapping):
        if node is not None:
            raise TypeError("to_tables: give either a dict {node: array} or one array and its node")
        if region is not None:
            raise ValueError("to_tables: region is for one array, not a dict of them")
        items = [(check_node_name(n), a) for n, a in x.items()]
        if not items:
            raise ValueError(f"{path}: an empty dict: nothing to write")
    else:
        if node is None:
            raise TypeError("to_tables: give the node to write, e.g. to_tables(x, 'out.h5', '/x')")
        items = [(check_node_name(node), x)]
    names = [n for n, _ in items]
    for a, b in itertools.permutations(names, 2):
        if a == b or b.startswith(a + "/"):
            raise ValueError(f"{path}: nodes {a} and {b} cannot both be written")
    arrays = [as_dask_array(a, n) for n, a in items]
    for name, array in zip(names, arrays, strict=True):
        check_dtype(array, name)
    return names, arrays


class _NewNodeOptions(NamedTuple):
    """What the caller asked of new nodes (``None``: as the node replaced, else the default)."""

    filters: tables.Filters | None
    chunkshape: Sequence[int] | int | None
    title: str
    createparents: bool
    overwrite: bool
    extendable: bool | None


def _plan_writes(
    path: str, exists: bool, names: list[str], arrays: list[Any], region: Any, options: _NewNodeOptions
) -> tuple[list[NodeWrite], list[Any]]:
    """Each node's write, planned against the file as it is (each array rechunked where it must be)."""
    writes: list[NodeWrite] = []
    planned: list[Any] = []
    with target_as_it_is(path, names[0], exists) as h5:
        for name, array in zip(names, arrays, strict=True):
            write, array = _plan_write(h5, path, name, array, region, options)
            writes.append(write)
            planned.append(array)
    return writes, planned


def _plan_write(
    h5: tables.File | None, path: str, name: str, array: Any, region: Any, options: _NewNodeOptions
) -> tuple[NodeWrite, Any]:
    """One node's write: into a region of the existing node, or a new node (replacing one)."""
    found = existing_node(h5, name)
    if region is not None:
        if found is None:
            raise tables.NoSuchNodeError(f"{path}: no node {name} to write the region of")
        return plan_region(found, array, region, path, name)
    check_replaceable(found, path, name, options.overwrite)
    check_parents(h5, path, name, options.createparents)
    inherited = inherited_options(found, array, options.filters, options.chunkshape, options.extendable)
    return plan_new_node(
        array, name, *inherited, options.title, options.overwrite, options.createparents, enums_read_by(array)
    )


def _block_starts(write: NodeWrite, array: Any) -> Iterator[tuple[tuple[int, ...], tuple[int, ...]]]:
    """Each block of ``array``: its index, and where it lands in the node."""
    offsets = [np.cumsum((0, *c[:-1])) if c else np.zeros(1, int) for c in array.chunks]
    origin = tuple(s.start for s in write.region) if write.region else (0,) * array.ndim
    for index in np.ndindex(*array.numblocks) if array.size else ():
        yield index, tuple(int(o + off[k]) for o, off, k in zip(origin, offsets, index, strict=True))


def _write_graph(plan: WritePlan, arrays: list[Any]) -> Delayed:
    """The graph of a write: prepare, one stage task per block, one commit.

    Written out, not built with ``dask.delayed`` (which walks the plan once per task).
    """
    prepare_key = f"to-tables-prepare-{plan.job.token}"
    commit_key = f"to-tables-{plan.job.token}"
    layer: dict[Any, Any] = {prepare_key: (_prepare, plan)}
    staged: list[tuple[Any, ...]] = []
    for i, (write, array) in enumerate(zip(plan.nodes, arrays, strict=True)):
        for index, start in _block_starts(write, array):
            key = (f"to-tables-stage-{plan.job.token}", i, *index)
            block_name = "_".join(map(str, index))
            layer[key] = (_stage_block, plan, (array.name, *index), i, block_name, start, prepare_key)
            staged.append(key)
    # zero-size arrays have no blocks: then the commit follows the preparation
    layer[commit_key] = (_commit, plan, staged) if staged else (_commit_after, plan, prepare_key)
    graph = HighLevelGraph.from_collections(commit_key, layer, dependencies=arrays)
    return Delayed(commit_key, graph)


def _run(result: Delayed, plan: WritePlan) -> None:
    """Compute the write (:func:`dask_tables.write.engine.run`), with advice for a graph that read the file."""
    try:
        run(result, plan.job)
    except FileChangedError as err:
        if same_file(err.path, plan.path):  # the array read the file an earlier write changed
            raise err.with_advice(WRITE_ONCE_ADVICE) from None
        raise
