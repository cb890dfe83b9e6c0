"""``to_tables``: dask arrays into PyTables nodes, compressed in parallel, all or nothing.

How a write runs (one dask graph; :func:`to_tables` builds it):

1. **Plan** (in the caller, before any task runs): every input is checked
   (file writable and HDF5, node names, an existing node without
   ``overwrite``, the ``region`` of an existing node), the chunk shape is
   chosen to divide the dask blocks, and the node's HDF5 filter pipeline is
   read from the same node created in an in-memory HDF5 file.  Each filter
   of the pipeline is encoded in Python (:mod:`dask_tables.filters`) only
   if HDF5 reads an encoded probe chunk back exactly; otherwise that node
   is written through HDF5's own pipeline.
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

The plan and its checks live in :mod:`dask_tables.write.plan`, the pieces
and sidecar files in :mod:`dask_tables.write.staging`, the writers' locks in
:mod:`dask_tables.write.locks`; this module has the tasks and the graph.

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
import shutil
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import dask
import numpy as np
import tables
from dask.delayed import Delayed
from dask.highlevelgraph import HighLevelGraph

from ..errors import FileChangedError, RegionMismatchError, WriteInterruptedError
from ..hdf5.fingerprint import same_file
from ..registry import get_lock, synchronized_close_file, synchronized_file, synchronized_open_file
from .locks import write_lock
from .plan import (
    WRITE_ONCE_ADVICE,
    NodeSpec,
    RechunkWarning,
    WritePlan,
    as_dask_array,
    check_dtype,
    check_node_name,
    check_not_open_here,
    check_parents,
    check_reads_unchanged,
    check_replaceable,
    check_writable,
    create_node,
    enums_read_by,
    existing_node,
    inherited_storage,
    new_spec,
    node_pipeline,
    region_spec,
    stored_dtype,
)
from .staging import block_pieces, read_sidecar, write_pieces, write_sidecar

__all__ = ["RechunkWarning", "to_tables"]

# ---------------------------------------------------------------- the tasks


def _prepare(plan: WritePlan) -> str:
    """Task: make the work folder; for a new file, the new file with its (empty) nodes."""
    if not plan.work_made_by_caller:
        os.makedirs(plan.work, exist_ok=True)
    elif not os.path.isdir(plan.work):  # the call failed and cleaned up before this task ran
        raise FileNotFoundError(f"{plan.path}: the work folder {plan.work} is gone (the write was abandoned)")
    if plan.new_file and not os.path.exists(plan.temp_file):
        # Built aside and linked into place: a preparation run again (the
        # scheduler recomputes it after losing a worker) never empties a
        # file that stage tasks have already written chunks into.
        building = f"{plan.temp_file}.{os.getpid()}-{uuid.uuid4().hex[:8]}"
        try:
            with get_lock(), synchronized_file(building, "w") as h5:
                for spec in plan.specs:
                    where, name = spec.node.rsplit("/", 1)
                    leaf = create_node(h5, where or "/", name, spec, createparents=True)
                    if node_pipeline(leaf) != spec.pipeline:
                        raise RuntimeError(
                            f"{plan.path}: node {spec.node}: PyTables built another filter pipeline"
                        )
            with contextlib.suppress(FileExistsError):
                os.link(building, plan.temp_file)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(building)
    return plan.work


def _stage_block(
    plan: WritePlan, block: np.ndarray, index: int, key: str, start: tuple[int, ...], work: str
) -> tuple[int, str]:
    """Task: encode one block's chunks (no lock held) and stage them."""
    spec = plan.specs[index]
    if not os.path.isdir(work):
        raise FileNotFoundError(f"{plan.path}: the work folder {work} is gone (the write was abandoned)")
    if not plan.new_file:
        sidecar = os.path.join(work, f"block-{index}-{key}")
        write_sidecar(sidecar, block_pieces(block, spec, start), len(spec.shape))
        return index, sidecar
    pieces = list(block_pieces(block, spec, start))
    with write_lock(plan.temp_file, work):
        if os.path.exists(plan.marker):
            raise WriteInterruptedError(plan.path)
        with open(plan.marker, "x"):
            pass
        try:
            with synchronized_file(plan.temp_file, "r+") as h5:
                write_pieces(h5.get_node(spec.node), pieces)
        finally:  # only a process that dies here leaves the marker behind
            os.unlink(plan.marker)
    return key


def _commit(plan: WritePlan, staged: list[tuple[int, str]]) -> None:
    """Task: the one short step that changes the target file."""
    try:
        _commit_under_lock(plan, staged)
    finally:
        # The commit is the last task: whether it wrote or failed, the staged work is done with.
        shutil.rmtree(plan.work, ignore_errors=True)


def _commit_under_lock(plan: WritePlan, staged: list[tuple[int, str]]) -> None:
    with write_lock(plan.path, os.path.dirname(plan.path)):
        if not plan.new_file:
            sidecars: dict[int, list[str]] = {}
            for index, sidecar in staged:
                sidecars.setdefault(index, []).append(sidecar)
            _commit_into_existing(plan, functools.partial(_node_from_sidecars, plan, sidecars), sidecars)
        elif os.path.exists(plan.marker):
            # every stage task has ended: a marker left now is one of a process that died
            raise WriteInterruptedError(plan.path)
        elif os.path.lexists(plan.path) and not _is_hdf5_file(plan.path):
            raise FileExistsError(
                f"{plan.path}: something that is not an HDF5 file appeared there while the write was "
                "computed; nothing was written"
            )
        elif os.path.lexists(plan.path):
            # Another write (a second lazy to_tables of the same new file, say)
            # created the file meanwhile: add these nodes to it, with the checks
            # of any write into an existing file, rather than replace it.
            with synchronized_file(plan.temp_file, "r") as built:
                _commit_into_existing(plan, functools.partial(_node_from_built, plan, built), {})
        else:
            os.replace(plan.temp_file, plan.path)


def _is_hdf5_file(path: str) -> bool:
    with get_lock():
        return os.path.isfile(path) and bool(tables.is_hdf5_file(path))


# Makes spec ``index``'s new node, with its data, as ``name`` at the root of the open target.
NodeMaker = Callable[[tables.File, int, str], None]


def _node_from_sidecars(
    plan: WritePlan, sidecars: dict[int, list[str]], h5: tables.File, index: int, name: str
) -> None:
    """A new node written from the chunks its stage tasks left in sidecar files."""
    spec = plan.specs[index]
    leaf = create_node(h5, "/", name, spec, createparents=False)
    if node_pipeline(leaf) != spec.pipeline:
        raise RuntimeError(f"{plan.path}: node {spec.node}: PyTables built another filter pipeline")
    _write_staged(leaf, spec, sidecars.get(index, []))


def _node_from_built(plan: WritePlan, built: tables.File, h5: tables.File, index: int, name: str) -> None:
    """A new node copied from the file the stage tasks built (its filters and chunk shape kept)."""
    built.get_node(plan.specs[index].node).copy(h5.root, name)


def _write_staged(leaf: tables.Leaf, spec: NodeSpec, sidecars: list[str]) -> None:
    for sidecar in sidecars:
        write_pieces(leaf, read_sidecar(sidecar, spec.stored))


def _commit_into_existing(plan: WritePlan, make_node: NodeMaker, sidecars: dict[int, list[str]]) -> None:
    """Add (or replace) the plan's nodes in the existing target, each checked before anything is replaced.

    Each new node is made whole under a temporary name at the root by
    ``make_node``; only when all are complete is an existing node removed
    (``overwrite=True``) and each moved to its name.  The staged values of
    a ``region`` are written into the existing node in place.
    """
    h5 = synchronized_open_file(plan.path, "a")
    created: list[str] = []
    try:
        for index, spec in enumerate(plan.specs):
            if spec.kind == "region":
                leaf = h5.get_node(spec.node)
                if tuple(int(n) for n in leaf.shape) != spec.shape or stored_dtype(leaf) != spec.stored:
                    raise RegionMismatchError(
                        plan.path, spec.node, "the node changed while the write was computed"
                    )
                _write_staged(leaf, spec, sidecars.get(index, []))
                continue
            # checked again: another writer may have changed the file since the plan
            found = existing_node(h5, spec.node)
            check_replaceable(found, plan.path, spec.node, spec.overwrite, frame=spec.kind == "frame")
            check_parents(h5, plan.path, spec.node, spec.createparents)
            tmp = "/" + plan.temp_name(index)
            if existing_node(h5, tmp) is not None:  # left by a commit whose worker was killed
                h5.remove_node(tmp, recursive=True)
            created.append(tmp)
            make_node(h5, index, plan.temp_name(index))
        # Only now is anything that existed before changed.
        for index, spec in enumerate(plan.specs):
            if spec.kind == "region":
                continue
            if existing_node(h5, spec.node) is not None:
                h5.remove_node(spec.node, recursive=True)
            where, name = spec.node.rsplit("/", 1)
            h5.move_node("/" + plan.temp_name(index), where or "/", name, createparents=True)
        created.clear()
    finally:
        try:
            for tmp in created:
                with contextlib.suppress(tables.NoSuchNodeError, tables.HDF5ExtError):
                    h5.remove_node(tmp, recursive=True)
        finally:
            synchronized_close_file(h5)


# ---------------------------------------------------------------- the public function


def to_tables(
    x: Any,
    path: str | os.PathLike[str],
    node: str | None = None,
    *,
    filters: tables.Filters | None = None,
    chunkshape: Sequence[int] | int | None = None,
    title: str = "",
    createparents: bool = True,
    overwrite: bool = False,
    extendable: bool | None = None,
    region: tuple[slice, ...] | slice | None = None,
    compute: bool = True,
    format: str = "pandas",
    data_columns: Sequence[str] | bool | None = None,
    index: bool = True,
    append: bool = False,
    min_itemsize: Mapping[str, int] | None = None,
) -> Delayed | None:
    """Write a dask array into a PyTables node, compressing in parallel, all or nothing.

    Creates a ``CArray`` (an ``EArray`` with ``extendable=True``; a ``Table``
    for a structured dtype; a scalar ``Array``, without filters, for a 0-d
    array) shaped like ``x`` and writes every block.  Tasks
    compress their HDF5 chunks outside every lock (zlib, bzip2, Blosc2,
    shuffle and Fletcher-32 are encoded by dask_tables; other filters go
    through HDF5's pipeline under the lock), and the target file changes
    only in one final step, after every block was computed.  Works under
    every dask scheduler, ``dask.distributed`` included.

    A dask (or pandas) DataFrame or Series becomes a table instead: pandas'
    ``HDFStore`` "table" format (``format="pandas"``, read back by
    ``pandas.read_hdf``), or a plain PyTables ``Table`` (``format="tables"``);
    see the frame parameters below and ``docs/writing.rst``.

    Parameters
    ----------
    x : dask.array.Array, numpy.ndarray, dict of node -> array, or a data frame
        What to write.  A dict writes several nodes of ``path`` from one
        graph, with one final step (``node`` must then be ``None``).  A
        dask or pandas DataFrame or Series is written as a table.
    path : str or os.PathLike
        The HDF5 file.  A new file is built whole under a temporary name
        and moved into place; an existing one gets the new nodes.
    node : str
        Path of the node in the file, e.g. ``"/results/mean_field"``.
    filters : tables.Filters, optional
        Compression of a new node (``tables.Filters(complib="blosc2:zstd",
        complevel=5, shuffle=True)``...).  Default: none; with
        ``overwrite=True``, those of the node replaced (give
        ``tables.Filters()`` for none).
    chunkshape : tuple of int, optional
        HDF5 chunk shape of a new node.  By default one that divides the
        dask blocks (about 1 MiB); a given one that does not makes
        ``to_tables`` rechunk ``x`` to multiples of it, with a
        :class:`RechunkWarning`.  With ``overwrite=True``, that of the
        node replaced where the dask blocks are multiples of it.
    title : str, optional
        Title of a new node.
    createparents : bool, optional
        Create missing groups on the way to ``node`` (default ``True``).
    overwrite : bool, optional
        Replace an existing node (only in the final step: until then the
        old node is untouched).  Without it an existing node raises
        :class:`dask_tables.NodeExistsError`.
    extendable : bool, optional
        Create an ``EArray`` (extendable along axis 0) instead of a ``CArray``.
        Default: ``False``; with ``overwrite=True``, whether the node
        replaced was an ``EArray``.
    region : tuple of slice, optional
        Write ``x`` into this region of an existing node (array or table) of
        the same dtype (or one it casts to safely), which keeps its filters
        and chunk shape.
    compute : bool, optional
        Run the write now (default) and return ``None``; ``False`` returns a
        ``dask.delayed.Delayed`` that writes when computed.
    format : {"pandas", "tables"}, optional
        Frames only.  ``"pandas"`` (default): pandas' ``HDFStore`` "table"
        format under the key ``node`` (a group holding ``table``), read back
        by ``pandas.read_hdf``, ``HDFStore.select(where=...)`` and
        :func:`dask_tables.read_table`.  ``"tables"``: a plain ``Table``,
        one column per frame column (``"a/b"`` nests ``b`` in ``a``),
        strings as UTF-8 bytes.
    data_columns : list of str or True, optional
        Frames, ``format="pandas"``: the columns stored as their own table
        columns (queryable in ``where``), as in pandas.
    index : bool, optional
        Frames.  ``format="pandas"``: make PyTables indexes on the index and
        the data columns, as pandas does (default ``True``).
        ``format="tables"``: store the frame's index as the first column,
        named by the index name (or ``"index"``).
    append : bool, optional
        Frames, ``format="pandas"``: add the rows to the existing table
        ``node``, whose schema the frame must match (else ``ValueError``
        naming the column).  Also all or nothing.
    min_itemsize : dict of str -> int, optional
        Frames: the stored size in bytes of string columns (a column name,
        ``"index"``, or ``"values"`` for every string column that is not a
        data column); by default the longest string of any partition.
        A size smaller than a column's longest string raises ``ValueError``
        naming the column.  As in pandas, a column named here becomes a data
        column.

    Returns
    -------
    None or dask.delayed.Delayed

    Raises
    ------
    PermissionError
        The file, or its folder, is read-only.
    dask_tables.NodeExistsError
        ``node`` exists and ``overwrite`` is false.
    dask_tables.RegionMismatchError
        ``region`` does not fit the node, or the dtype does not.
    dask_tables.NotHDF5FileError, IsADirectoryError, FileNotFoundError
        ``path`` is not an HDF5 file, or its folder is missing.
    tables.NoSuchNodeError
        ``region`` names a missing node, or a parent group is missing and
        ``createparents`` is false.
    TypeError, ValueError
        ``x`` is not an array, has a dtype PyTables cannot store, or a bad
        node name or chunk shape.

    All of them before any task runs, and with the file untouched.

    Notes
    -----
    A failure in any task (an exception, a killed worker, a full disk)
    leaves the target file as it was: the blocks are staged in a hidden
    folder next to it (``.<name>.dask-tables-<token>``), which is removed
    (with ``compute=False``, only a run that reaches the final step removes
    it).  A new file is created by ``os.replace``, atomically; if the file
    appeared meanwhile (two lazy writes of one new file computed together),
    the nodes are added to it as to any existing file, with the same checks.  Into an existing file, the
    final step copies the staged chunks (no compression left to do) while
    holding the file open for writing: a process killed during that step
    can damage the file, since HDF5 keeps no journal; an exception in it
    removes what it added.  Writes into a ``region`` of an existing node
    happen in place during that step.

    Examples
    --------
    >>> import dask.array as da, numpy as np, tables
    >>> import dask_tables
    >>> x = da.arange(1000.0, chunks=250).reshape(100, 10)
    >>> dask_tables.to_tables(x, "out.h5", "/results/field",
    ...                       filters=tables.Filters(complib="zlib", complevel=1, shuffle=True))
    >>> with tables.open_file("out.h5") as f:
    ...     field = f.root.results.field
    ...     print(field.chunkshape == (25, 10), field[3, 2])
    True 32.0
    >>> dask_tables.to_tables(-x[:10], "out.h5", "/results/field", region=(slice(90, 100),))
    >>> float(dask_tables.from_tables("out.h5", "/results/field")[95, 0].compute())
    -50.0

    A data frame, in pandas' format:

    >>> import dask.dataframe as dd, pandas as pd
    >>> df = dd.from_pandas(pd.DataFrame({"a": range(6), "s": list("uvwxyz")}), npartitions=2)
    >>> dask_tables.to_tables(df, "out.h5", "/frame", data_columns=["a"])
    >>> pd.read_hdf("out.h5", "frame", where="a > 3")["s"].tolist()
    ['y', 'z']
    """
    path = os.path.abspath(os.fspath(path))
    if _is_frame(x):
        from .frames import frame_to_tables

        if region is not None or extendable is not None:
            raise TypeError(f"{path}: region= and extendable= are for arrays, not data frames")
        if node is None:
            raise TypeError("to_tables: give the node to write, e.g. to_tables(df, 'out.h5', '/df')")
        return frame_to_tables(
            x,
            path,
            node,
            format=format,
            data_columns=data_columns,
            index=index,
            filters=filters,
            chunkshape=chunkshape,
            title=title,
            createparents=createparents,
            append=append,
            overwrite=overwrite,
            min_itemsize=min_itemsize,
            compute=compute,
        )
    frame_only = {"format": format != "pandas", "data_columns": data_columns is not None, "index": not index}
    frame_only.update(append=append, min_itemsize=min_itemsize is not None)
    if any(frame_only.values()):
        given = ", ".join(k for k, v in frame_only.items() if v)
        raise TypeError(f"to_tables: {given} are for data frames, not arrays")
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
    for (n, _), a in zip(items, arrays, strict=True):
        check_dtype(a, n)

    exists = os.path.lexists(path)
    check_writable(path, names[0], exists)
    if exists:
        check_reads_unchanged(arrays, path)
    specs: list[NodeSpec] = []
    with contextlib.ExitStack() as stack:
        # The writers' locks: another writer's commit cannot run while the plan reads the file.
        stack.enter_context(write_lock(path, os.path.dirname(path)))
        if exists:
            check_not_open_here(path, names[0])
        h5 = stack.enter_context(synchronized_file(path, "r")) if exists else None
        for (name, _), i in zip(items, range(len(arrays)), strict=True):
            found = existing_node(h5, name)
            if region is not None:
                if found is None:
                    raise tables.NoSuchNodeError(f"{path}: no node {name} to write the region of")
                spec, arrays[i] = region_spec(found, arrays[i], region, path, name)
            else:
                check_replaceable(found, path, name, overwrite)
                check_parents(h5, path, name, createparents)
                storage = inherited_storage(found, arrays[i], filters, chunkshape, extendable)
                spec, arrays[i] = new_spec(
                    arrays[i], name, *storage, title, overwrite, createparents, enums_read_by(arrays[i])
                )
            specs.append(spec)

    token = uuid.uuid4().hex[:16]  # every call stages into its own folder
    folder, base = os.path.split(path)
    plan = WritePlan(
        path=path,
        new_file=not exists,
        work=os.path.join(folder, f".{base[:100]}.dask-tables-{token}"),  # within NAME_MAX (255)
        token=token,
        specs=tuple(specs),
        work_made_by_caller=compute,
    )
    # The graph, written out (not built with dask.delayed, which walks the
    # plan once per task): prepare, one stage task per block, one commit.
    prepare_key = f"to-tables-prepare-{token}"
    commit_key = f"to-tables-{token}"
    layer: dict[Any, Any] = {prepare_key: (_prepare, plan)}
    staged: list[tuple[Any, ...]] = []
    for i, (spec, array) in enumerate(zip(specs, arrays, strict=True)):
        offsets = [np.cumsum((0, *c[:-1])) if c else np.zeros(1, int) for c in array.chunks]
        origin = tuple(s.start for s in spec.region) if spec.region else (0,) * array.ndim
        for index in np.ndindex(*array.numblocks) if array.size else ():
            start = tuple(int(o + off[k]) for o, off, k in zip(origin, offsets, index, strict=True))
            key = (f"to-tables-stage-{token}", i, *index)
            block_name = "_".join(map(str, index))
            layer[key] = (_stage_block, plan, (array.name, *index), i, block_name, start, prepare_key)
            staged.append(key)
    # zero-size arrays have no blocks: then the commit follows the preparation
    layer[commit_key] = (_commit, plan, staged) if staged else (_commit_after, plan, prepare_key)
    graph = HighLevelGraph.from_collections(commit_key, layer, dependencies=arrays)
    result = Delayed(commit_key, graph)
    if not compute:
        return result
    os.mkdir(plan.work)
    try:
        dask.compute(result)
    except FileChangedError as err:
        if same_file(err.path, path):  # the array read the file an earlier write changed
            raise err.with_advice(WRITE_ONCE_ADVICE) from None
        raise
    finally:
        _remove_work(plan.work)
    return None


def _is_frame(x: Any) -> bool:
    """A pandas or dask DataFrame or Series (checked without importing pandas for arrays)."""
    module = type(x).__module__
    if not (module.startswith("pandas") or module.startswith("dask")):
        return False
    import dask.dataframe as dd
    import pandas as pd

    return isinstance(x, (pd.DataFrame, pd.Series, dd.DataFrame, dd.Series))


def _remove_work(work: str, attempts: int = 5) -> None:
    """Remove the work folder, also while tasks that still run after a failure add to it.

    Such tasks find the folder gone and fail; one that had just created a
    file in it makes ``rmtree`` leave the folder, so try again a few times.
    """
    for attempt in range(attempts):
        shutil.rmtree(work, ignore_errors=True)
        if not os.path.lexists(work):
            return
        time.sleep(0.05 * (attempt + 1))


def _commit_after(plan: WritePlan, work: str) -> None:
    """Task: the commit of a write without blocks (zero-size arrays)."""
    _commit(plan, [])
