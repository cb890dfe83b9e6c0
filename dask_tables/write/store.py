"""``to_tables``: dask arrays into PyTables nodes, compressed in parallel, all or nothing.

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
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import tables
from dask.delayed import Delayed
from dask.highlevelgraph import HighLevelGraph

from ..errors import FileChangedError, WriteInterruptedError
from ..hdf5.fingerprint import same_file
from ..hdf5.paths import file_path
from ..registry import get_lock, synchronized_file
from ..remote.urls import is_url
from .engine import commit, new_job, os_errors, prepare, remove_work, require_space, run
from .locks import write_lock
from .nodes import add_nodes, write_staged
from .plan import (
    WRITE_ONCE_ADVICE,
    NodeWrite,
    RechunkWarning,
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

__all__ = ["RechunkWarning", "to_tables"]

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
    min_itemsize: Mapping[str, int] | int | None = None,
    mode: str = "a",
    name_function: Callable[[int], str] | None = None,
    storage_options: Mapping[str, Any] | None = None,
) -> Delayed | list[str] | None:
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
    ``pandas.read_hdf``), or a plain PyTables ``Table`` (``format="pytables"``);
    see the frame parameters below and ``docs/writing.rst``.

    Parameters
    ----------
    x : dask.array.Array, numpy.ndarray, dict, dask.dataframe.DataFrame or pandas.DataFrame
        What to write.  A dict (node name -> array) writes several nodes of ``path`` from one
        graph, with one final step (``node`` must then be ``None``).  A
        dask or pandas DataFrame or Series is written as a table.
    path : str, os.PathLike or pandas.HDFStore
        The HDF5 file (``~`` expanded).  Its next version is built whole in
        a hidden folder beside it and moved into place by ``os.replace``: a
        new file, or a copy of an existing one with the new nodes (see
        ``docs/writing.rst``, "Crash safety").  For a frame, one ``*``
        writes one file per partition, named by ``name_function``, as
        ``dask.dataframe.to_hdf`` does.  An open ``HDFStore`` (mode "a" or
        "w") is closed while the write commits and opened again on the new
        file.  An ``s3://``, ``gs://`` or ``az://`` URL names a new object:
        the file is built whole in a local temporary folder (dask's
        ``temporary-directory``), then uploaded in one put, which never
        replaces an object that appeared meanwhile unless ``mode="w"``
        (see ``docs/writing.rst``, "Writing to object storage").
    node : str
        Path of the node in the file, e.g. ``"/results/mean_field"``
        (``"res"`` is ``"/res"``, as pandas takes keys).  For a frame, one
        ``*`` writes one node per partition.
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
    format : {"pandas", "table", "t", "pytables"}, optional
        Frames only.  ``"pandas"`` (default; pandas' own names ``"table"``
        and ``"t"`` too): pandas' ``HDFStore`` "table" format under the key
        ``node`` (a group holding ``table``), read back by
        ``pandas.read_hdf``, ``HDFStore.select(where=...)`` and
        :func:`dask_tables.read_table`.  ``"pytables"`` (formerly
        ``"tables"``, still taken): a plain ``Table``, one column per frame
        column (``"a/b"`` nests ``b`` in ``a``), strings as UTF-8 bytes.
        pandas' ``"fixed"`` is refused with what to use instead.
    data_columns : list of str or True, optional
        Frames, ``format="pandas"``: the columns stored as their own table
        columns (queryable in ``where``), as in pandas.
    index : bool, optional
        Frames.  ``format="pandas"``: make PyTables indexes on the index and
        the data columns, as pandas does (default ``True``).
        ``format="pytables"``: store the frame's index as the first column,
        named by the index name (or ``"index"``).
    append : bool, optional
        Frames, ``format="pandas"``: add the rows to the existing table
        ``node``, whose schema the frame must match (else ``ValueError``
        naming the column).  Also all or nothing.
    min_itemsize : dict or int, optional
        Frames: an int sizes every string column at least that many bytes,
        as in pandas; a dict maps column name -> the stored size in bytes of string columns (a column name,
        ``"index"``, or ``"values"`` for every string column that is not a
        data column); by default the longest string of any partition.
        A size smaller than a column's longest string raises ``ValueError``
        naming the column.  As in pandas, a column named here becomes a data
        column.

    mode : {"a", "w", "r+"}, optional
        As pandas: ``"a"`` (default) adds to the file or creates it;
        ``"w"`` replaces the file by one holding only this write (atomically,
        at the commit); ``"r+"`` requires the file to exist.
    name_function : callable, optional
        Frames with a ``*`` in ``path`` or ``node``: partition number ->
        the text in place of ``*`` (default: the number, zero-padded so
        that names sort in partition order), as ``dask.dataframe.to_hdf``.
    storage_options : dict, optional
        For a URL: credentials and endpoint, as :func:`dask_tables.from_tables`
        takes them (``key``, ``secret``, ``endpoint_url``...).

    Returns
    -------
    None, list of str or dask.delayed.Delayed
        ``None``; with a ``*`` in the path, the names of the files written,
        as ``dask.dataframe.to_hdf`` returns them; with ``compute=False``, a
        ``Delayed``.

    Raises
    ------
    PermissionError
        The file, or its folder, is read-only.
    FileExistsError
        An object exists at the URL (``mode="w"`` replaces it).
    dask_tables.NodeExistsError
        ``node`` exists and ``overwrite`` is false.
    dask_tables.RegionMismatchError
        ``region`` does not fit the node, or the dtype does not.
    dask_tables.NotHDF5FileError
        ``path`` is not an HDF5 file, or its folder is missing.
    IsADirectoryError
        ``path`` is not an HDF5 file, or its folder is missing.
    FileNotFoundError
        ``path`` is not an HDF5 file, or its folder is missing.
    tables.NoSuchNodeError
        ``region`` names a missing node, or a parent group is missing and
        ``createparents`` is false.
    TypeError
        ``x`` is not an array, has a dtype PyTables cannot store, or a bad
        node name or chunk shape.
    ValueError
        ``x`` is not an array, has a dtype PyTables cannot store, or a bad
        node name or chunk shape.

    Notes
    -----
    Each of these errors is raised before any task runs, with the file
    untouched.

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
    if is_url(path):
        from .remote import write_object

        def write(local: str, compute: bool, mode: str) -> Delayed | list[str] | None:
            return to_tables(
                x, local, node, filters=filters, chunkshape=chunkshape, title=title,
                createparents=createparents, overwrite=overwrite, extendable=extendable, compute=compute,
                format=format, data_columns=data_columns, index=index, min_itemsize=min_itemsize, mode=mode,
                name_function=name_function,
            )  # fmt: skip

        return write_object(
            write,
            os.fsdecode(path),
            storage_options,
            compute=compute,
            mode=mode,
            append=append,
            region=region,
        )
    if _is_hdf_store(path):
        return _through_store(
            x, path, node, filters=filters, chunkshape=chunkshape, title=title, createparents=createparents,
            overwrite=overwrite, extendable=extendable, region=region, compute=compute, format=format,
            data_columns=data_columns, index=index, append=append, min_itemsize=min_itemsize, mode=mode,
            name_function=name_function,
        )  # fmt: skip
    shown = file_path(path)
    path = os.path.abspath(shown)
    node = _absolute(node)
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
            mode=mode,
            name_function=name_function,
            shown_path=shown,
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
    _refuse_frame_options(format, data_columns, index, append, min_itemsize, name_function)
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


def _refuse_frame_options(
    format: str,
    data_columns: Sequence[str] | bool | None,
    index: bool,
    append: bool,
    min_itemsize: Mapping[str, int] | int | None,
    name_function: Callable[[int], str] | None,
) -> None:
    """Raise if an option only data frames have is given with arrays."""
    frame_only = {"format": format != "pandas", "data_columns": data_columns is not None, "index": not index}
    frame_only.update(
        append=append, min_itemsize=min_itemsize is not None, name_function=name_function is not None
    )
    if any(frame_only.values()):
        given = ", ".join(k for k, v in frame_only.items() if v)
        raise TypeError(f"to_tables: {given} are for data frames, not arrays")


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


def _absolute(node: Any) -> Any:
    """A node path as pandas takes a key: ``"res"`` is ``"/res"``."""
    if isinstance(node, str) and node and not node.startswith("/"):
        return "/" + node
    return node


def _is_hdf_store(path: Any) -> bool:
    """A pandas ``HDFStore`` (checked without importing pandas)."""
    return type(path).__name__ == "HDFStore" and type(path).__module__.startswith("pandas")


def _through_store(x: Any, store: Any, node: str | None, **kwargs: Any) -> Delayed | list[str] | None:
    """``to_tables`` into the file of an open pandas ``HDFStore``, as ``dd.to_hdf`` takes one.

    The store is closed while the write commits (the commit replaces the
    file: an open handle would keep writing to the old one), then opened
    again on the new file, in a mode that keeps what was written.
    """
    if kwargs["compute"] is False:
        raise TypeError(f"{store.filename}: with compute=False, give the file's path, not an open HDFStore")
    mode = store._mode
    if mode == "r":
        raise ValueError(f"{store.filename}: the HDFStore is open read-only; open it with mode='a' to write")
    filename = store.filename
    was_open = store.is_open
    store.close()
    try:
        return to_tables(x, filename, node, **kwargs)
    finally:
        if was_open:
            store.open("a" if mode in ("a", "w") else mode)


def _is_frame(x: Any) -> bool:
    """A pandas or dask DataFrame or Series (checked without importing pandas for arrays)."""
    module = type(x).__module__
    if not (module.startswith("pandas") or module.startswith("dask")):
        return False
    import dask.dataframe as dd
    import pandas as pd

    return isinstance(x, (pd.DataFrame, pd.Series, dd.DataFrame, dd.Series))
