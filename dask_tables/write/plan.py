"""What :func:`dask_tables.to_tables` checks and decides before any task runs: the write plan.

Every input is checked in the caller (file writable and HDF5, node names,
an existing node, the ``region`` of an existing node), the HDF5 chunk shape
is chosen to divide the dask blocks, and each node's storage (stored type,
filter pipeline: a :class:`~dask_tables.hdf5.storednode.StoredNode`) is read
from the trial node (:mod:`dask_tables.write.trial`).
The plan (:class:`~dask_tables.write.writes.WritePlan` of
:class:`~dask_tables.write.writes.NodeWrite`, :mod:`dask_tables.write.writes`) is picklable and holds
nothing open.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import math
import os
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

import dask.array as da
import numpy as np
import tables

from ..errors import (
    FileChangedError,
    FileLockedError,
    NodeExistsError,
    NotHDF5FileError,
    RegionMismatchError,
    at_node,
)
from ..hdf5.files import is_hdf5_file
from ..hdf5.fingerprint import modes_open_here, same_file
from ..hdf5.storednode import StoredNode
from ..hdf5.storedtypes import file_dtype
from ..registry import synchronized_file
from .locks import write_lock
from .trial import _encoding_reads_back, _settled_by_trial, _trial_node, check_built
from .writes import TMP_PREFIX, EnumColumn, NodeWrite, RechunkWarning, WritePlan, enum_columns

__all__ = [
    "NodeWrite",
    "RechunkWarning",
    "WritePlan",
    "check_built",
    "inherited_options",
    "plan_new_node",
    "plan_region",
]

# Bytes of one HDF5 chunk that to_tables aims for when it picks the chunk shape.
CHUNK_BYTES = 2**20


# ---------------------------------------------------------------- checks done before any task runs


def check_node_name(node: Any) -> str:
    if not isinstance(node, str) or not node.startswith("/") or node.rstrip("/") == "":
        raise ValueError(f"node {node!r}: give an absolute node path such as '/group/array'")
    parts = node.strip("/").split("/")
    for part in parts:
        if not part:
            raise ValueError(f"node {node!r}: empty name between slashes")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", tables.NaturalNameWarning)
                tables.path.check_name_validity(part)
        except ValueError as err:
            raise ValueError(f"node {node!r}: {err}") from None
        if part.startswith(TMP_PREFIX) or part.startswith("_i_"):
            raise ValueError(f"node {node!r}: names starting with {TMP_PREFIX} or _i_ are reserved")
        if "\x00" in part:
            raise ValueError(f"node {node!r}: a name cannot hold a NUL character")
    return "/" + "/".join(parts)


def check_writable(path: str, node: str, exists: bool) -> None:
    folder = os.path.dirname(path)
    if os.path.isdir(folder) and os.statvfs(folder).f_flag & os.ST_RDONLY:
        raise OSError(errno.EROFS, f"{path}: the file system is read-only (asked to write node {node})", path)
    if exists:
        if os.path.isdir(path):
            raise IsADirectoryError(f"{path}: is a directory, not an HDF5 file (asked to write node {node})")
        mode = os.stat(path).st_mode
        # Write bits all off means read-only, even for root (who may write anyway).
        if not os.access(path, os.W_OK) or not mode & 0o222:
            raise PermissionError(f"{path}: the file is read-only (asked to write node {node})")
        if not is_hdf5_file(path):
            raise NotHDF5FileError(f"{path}: not an HDF5 file (asked to write node {node})")
    elif not os.path.isdir(folder):
        raise FileNotFoundError(f"{path}: no folder {folder} to create the file in (node {node})")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise PermissionError(f"{path}: its folder {folder} is not writable (asked to write node {node})")


def as_dask_array(x: Any, node: str) -> da.Array:
    if isinstance(x, da.Array):
        return x
    if isinstance(x, np.ndarray):
        return da.from_array(x, chunks="auto" if x.dtype.kind != "V" else (max(1, len(x)),))
    raise TypeError(f"{at_node(None, node)}: to_tables writes dask or numpy arrays, not {type(x).__name__}")


# What to store instead of a dtype PyTables has no atom for, by numpy kind.
_STORABLE_HINT = {
    "O": "encode strings as fixed-size bytes: x.astype('S<n>')",
    "U": "encode strings as fixed-size bytes: x.astype('S<n>')",
    "M": "store the datetimes as int64 counts of their unit: x.astype('i8')",
    "m": "store the durations as int64 counts of their unit: x.astype('i8')",
    "V": "a record needs fields",
}


def check_dtype(x: da.Array, node: str) -> None:
    dtype = x.dtype
    if dtype.kind in "OUMm" or dtype.itemsize == 0:
        raise TypeError(
            f"{at_node(None, node)}: PyTables cannot store dtype {dtype} ({_STORABLE_HINT.get(dtype.kind, '')})"
        )
    if dtype.names is not None and x.ndim != 1:
        raise ValueError(
            f"{at_node(None, node)}: a structured array becomes a Table and must be 1-D, not {x.ndim}-D"
        )
    if any(math.isnan(n) for c in x.chunks for n in c):
        raise ValueError(
            f"{at_node(None, node)}: the array has unknown chunk sizes; call compute_chunk_sizes() first"
        )


def _largest_divisor(n: int, at_most: int) -> int:
    """The largest divisor of ``n`` that is at most ``at_most`` (at least 1)."""
    best = 1
    for d in range(1, math.isqrt(n) + 1):
        if n % d == 0:
            for cand in (d, n // d):
                if best < cand <= at_most:
                    best = cand
    return best


def _pick_chunkshape(chunks: tuple[tuple[int, ...], ...], itemsize: int) -> tuple[int, ...]:
    """An HDF5 chunk shape that tiles every dask block, about :data:`CHUNK_BYTES` bytes.

    Along an axis of several blocks, the chunk divides every block but the
    last (so chunk boundaries fall on block boundaries); along an axis of
    one block any length up to the block fits.  Leading axes shrink first
    (chunks keep whole rows where they can, as PyTables' own do).

    Examples
    --------
    >>> _pick_chunkshape(((256, 256, 100), (1024,)), 8)
    (128, 1024)
    >>> _pick_chunkshape(((6, 6), (5,)), 8)
    (6, 5)
    """
    limits = []
    constrained = []
    for blocks in chunks:
        if len(blocks) > 1:
            limits.append(math.gcd(*blocks[:-1]))
            constrained.append(True)
        else:
            limits.append(max(1, blocks[0] if blocks else 1))
            constrained.append(False)
    shape = list(limits)
    for axis in range(len(shape)):
        if math.prod(shape) * itemsize <= CHUNK_BYTES:
            break
        rest = math.prod(shape[axis + 1 :]) * itemsize
        want = max(1, CHUNK_BYTES // max(rest, 1))
        shape[axis] = _largest_divisor(limits[axis], want) if constrained[axis] else min(limits[axis], want)
    return tuple(shape)


def _align_chunks(x: da.Array, chunkshape: tuple[int, ...], node: str) -> da.Array:
    """``x`` rechunked (with a :class:`RechunkWarning`) so that its blocks hold whole chunks."""
    aligned = all(
        all(b % c == 0 for b in blocks[:-1]) for blocks, c in zip(x.chunks, chunkshape, strict=True)
    )
    if aligned:
        return x
    new = []
    for blocks, c, n in zip(x.chunks, chunkshape, x.shape, strict=True):
        size = max(c, round(max(blocks) / c) * c) if blocks else c
        new.append(tuple(da.core.normalize_chunks((size,), (n,))[0]))
    warnings.warn(
        f"{at_node(None, node)}: the dask blocks {x.chunksize} are not multiples of chunkshape {chunkshape}; "
        f"rechunking to blocks of {tuple(b[0] if b else 0 for b in new)} before writing",
        RechunkWarning,
        stacklevel=4,
    )
    return x.rechunk(tuple(new))


def existing_node(h5: tables.File | None, node: str) -> tables.Node | None:
    if h5 is None:
        return None
    try:
        return h5.get_node(node)
    except tables.NoSuchNodeError:
        return None


def check_replaceable(
    found: tables.Node | None, path: str, node: str, overwrite: bool, frame: bool = False
) -> None:
    """An existing node may be replaced only with ``overwrite``, and never a group (with all inside).

    With ``frame`` (a pandas frame being written), the group of a pandas
    frame (``HDFStore`` format "table") is replaceable: it is the frame.
    """
    if found is None:
        return
    if isinstance(found, tables.Group) and not (frame and "pandas_type" in found._v_attrs._v_attrnamesuser):
        raise NodeExistsError(
            path, node, f"{node} is a group; to_tables replaces a leaf, never a group and all it holds"
        )
    if not overwrite:
        raise NodeExistsError(path, node)


@contextlib.contextmanager
def target_as_it_is(path: str, node: str, exists: bool) -> Iterator[tables.File | None]:
    """The target open read-only for the plan, under the writers' locks (``None``: no file yet).

    Another writer's commit cannot run while the plan reads the file.
    """
    with write_lock(path, os.path.dirname(path)):
        if not exists:
            yield None
            return
        check_not_open_here(path, node)
        try:
            opened = synchronized_file(path, "r")
            h5 = opened.__enter__()
        except (OSError, tables.HDF5ExtError) as err:
            if "unable to lock file" in str(err):
                raise FileLockedError(path, node) from None  # a writer elsewhere: nothing is damaged
            raise
        try:
            yield h5
        finally:
            opened.__exit__(None, None, None)


def check_not_open_here(path: str, node: str) -> None:
    """PyTables cannot open a file for writing that this process holds open read-only."""
    if "r" in modes_open_here(path):
        raise ValueError(
            f"{path}: the file is open read-only in this process; close it before writing node {node}"
        )


WRITE_ONCE_ADVICE = (
    "the array reads the file it is written into, and an earlier write changed that file: "
    "write every result computed from the file in one call, to_tables({node: array, ...}, path), "
    "or rebuild the array with from_tables after each write"
)


def _sources_in(x: da.Array) -> Iterator[Any]:
    """The dask_tables sources (anything with a path and a fingerprint) held by ``x``'s graph.

    Only layers kept as plain mappings are looked at (where ``from_tables``
    puts its source, unless ``inline_array=True``).
    """
    for layer in x.__dask_graph__().layers.values():
        mapping = getattr(layer, "mapping", None)
        if not isinstance(mapping, dict):
            continue
        for value in mapping.values():
            for source in getattr(value, "parts", (value,)):
                if hasattr(source, "fingerprint") and hasattr(source, "path"):
                    yield source


def enums_read_by(x: da.Array) -> tuple[EnumColumn, ...]:
    """The enumerated columns of the table whose records ``x`` holds, if ``from_tables`` read it.

    So that records read from a table with enumerated columns are written
    back with those columns (not as plain integers).  Only a table read
    whole (no ``field``), with the very dtype of ``x``, counts.
    """
    if x.dtype.names is None:
        return ()
    for source in _sources_in(x):
        if getattr(source, "field", "") is None and source.row_nbytes is not None and source.dtype == x.dtype:
            return source.with_leaf(lambda leaf: enum_columns(leaf) if isinstance(leaf, tables.Table) else ())
    return ()


def check_reads_unchanged(arrays: Sequence[da.Array], path: str) -> None:
    """Refuse, before any task, to write arrays that read ``path`` as it was before it changed.

    A graph built by ``from_tables`` over ``path``, then ``to_tables`` of a
    result into ``path``, then a second ``to_tables`` of the same graph:
    its read tasks would fail with :class:`~dask_tables.FileChangedError`,
    so the second call fails now, and says what to do instead.
    """
    for x in arrays:
        for source in _sources_in(x):
            if same_file(source.path, path):
                try:
                    source.check_unchanged()
                except FileChangedError as err:
                    raise err.with_advice(WRITE_ONCE_ADVICE) from None


def check_parents(h5: tables.File | None, path: str, node: str, createparents: bool) -> None:
    parts = node.strip("/").split("/")[:-1]
    current = ""
    for part in parts:
        current += "/" + part
        found = existing_node(h5, current)
        if found is None:
            if not createparents:
                raise tables.NoSuchNodeError(
                    f"{path}: no group {current} for node {node}; pass createparents=True"
                )
            return
        if not isinstance(found, tables.Group):
            raise ValueError(
                f"{path}: {current} is a {type(found).__name__}, not a group, so node {node} cannot go in it"
            )


def _resolve_region(region: Any, shape: tuple[int, ...], path: str, node: str) -> tuple[slice, ...]:
    if isinstance(region, slice):
        region = (region,)
    if not isinstance(region, tuple) or not all(isinstance(s, slice) for s in region):
        raise TypeError(f"{at_node(path, node)}: region must be a tuple of slices, not {region!r}")
    if len(region) > len(shape):
        raise RegionMismatchError(path, node, f"region {region} has more axes than the node's shape {shape}")
    region = region + (slice(None),) * (len(shape) - len(region))
    resolved = []
    for s, n in zip(region, shape, strict=True):
        start, stop, step = s.indices(n)
        if step != 1:
            raise RegionMismatchError(path, node, f"region {region} has a step; only step 1 is written")
        resolved.append(slice(start, max(start, stop)))
    return tuple(resolved)


def plan_region(
    leaf: tables.Node, x: da.Array, region: Any, path: str, node: str
) -> tuple[NodeWrite, da.Array]:
    """The write of ``x`` into ``region`` of the existing ``leaf`` (checked to fit), and ``x``.

    Call with the file open and the process lock held.
    """
    if not isinstance(leaf, (tables.Table, tables.Array)) or isinstance(leaf, tables.VLArray):
        raise RegionMismatchError(path, node, f"it is a {type(leaf).__name__}, not an array or a table")
    storage = StoredNode.of(leaf)
    resolved = _resolve_region(region, storage.shape, path, node)
    extent = tuple(s.stop - s.start for s in resolved)
    if extent != x.shape:
        raise RegionMismatchError(path, node, f"region {resolved} has shape {extent}, the array {x.shape}")
    _check_region_dtype(leaf, storage, x, path, node)
    write = NodeWrite(
        node=node,
        kind="region",
        storage=storage,
        tables_filters=leaf.filters,
        encode=False,
        byteorder=leaf.byteorder if leaf.byteorder in ("little", "big") else None,
        region=resolved,
    )
    if storage.chunkshape is not None:
        with _trial_node(write) as trial:
            # The trial vouches for the node only where both store one element alike
            # (h5py may store a record with members of both byte orders: PyTables' trial would not).
            alike = file_dtype(trial) == file_dtype(leaf)
            write = dataclasses.replace(write, encode=alike and _encoding_reads_back(write, trial))
    return write, x


def _check_region_dtype(leaf: tables.Leaf, storage: StoredNode, x: da.Array, path: str, node: str) -> None:
    """The values of ``x`` fit the node's elements: a table's fields by name, or an array's atom, safely."""
    stored = storage.dtype
    if isinstance(leaf, tables.Table):
        ok = x.dtype.names is not None and x.dtype.names == stored.names and np.can_cast(x.dtype, stored)
    else:
        ok = (
            not storage.cell_shape
            and x.dtype.names is None
            and np.can_cast(x.dtype, stored.newbyteorder("="))
        )
    if not ok:
        shown = np.dtype((stored, storage.cell_shape)) if storage.cell_shape else stored
        raise RegionMismatchError(path, node, f"the array's dtype {x.dtype} does not fit the node's {shown}")


def _given_chunkshape(chunkshape: Sequence[int] | int, shape: tuple[int, ...], node: str) -> tuple[int, ...]:
    """A chunk shape the user gave: one int per axis, or one int for every axis (as dask's ``chunks``).

    Examples
    --------
    >>> _given_chunkshape(4, (10, 6), "/x")
    (4, 4)
    >>> _given_chunkshape((5, 2), (10, 6), "/x")
    (5, 2)
    """
    try:
        given = [int(c) for c in np.atleast_1d(chunkshape)]
    except (TypeError, ValueError):
        raise ValueError(
            f"{at_node(None, node)}: chunkshape {chunkshape!r} is not a sequence of ints"
        ) from None
    if np.ndim(chunkshape) == 0:
        given *= len(shape)
    if len(given) != len(shape) or min(given, default=0) < 1:
        raise ValueError(
            f"{at_node(None, node)}: chunkshape {chunkshape!r} does not fit shape {shape} "
            f"(give {len(shape)} positive ints, or one for every axis)"
        )
    return tuple(given)


def inherited_options(
    found: tables.Node | None,
    x: da.Array,
    filters: tables.Filters | None,
    chunkshape: Sequence[int] | int | None,
    extendable: bool | None,
) -> tuple[tables.Filters | None, Sequence[int] | int | None, bool]:
    """``(filters, chunkshape, extendable)`` of a new node: as given, else as the node it replaces.

    What the caller left out (``None``) is taken from the leaf being
    replaced: its filters, its chunk shape where the dask blocks of ``x``
    are multiples of it (no rechunking the user did not ask for) and its
    chunks stay reasonably small for the new dtype, and
    whether it is an ``EArray``.  Without a leaf to replace: no filters,
    a chunk shape picked later, a ``CArray``.
    """
    if not isinstance(found, tables.Leaf) or isinstance(found, tables.VLArray):
        return filters, chunkshape, bool(extendable)
    if filters is None:
        filters = found.filters
    if chunkshape is None and found.chunkshape is not None and len(found.chunkshape) == x.ndim:
        old = tuple(int(c) for c in found.chunkshape)
        if math.prod(old) * x.dtype.itemsize <= 16 * CHUNK_BYTES and all(
            all(b % c == 0 for b in blocks[:-1]) for blocks, c in zip(x.chunks, old, strict=True)
        ):
            chunkshape = old
    if extendable is None:
        extendable = isinstance(found, tables.EArray)
    return filters, chunkshape, extendable


def _byteorder(dtype: np.dtype) -> str | None:
    """PyTables' name of an explicit byte order of ``dtype``; ``None`` for native or irrelevant."""
    return {"<": "little", ">": "big"}.get(dtype.byteorder) if dtype.byteorder != "=" else None


def _scalar_write(x: da.Array, node: str, title: str, overwrite: bool, createparents: bool) -> NodeWrite:
    """A 0-d array becomes a scalar ``Array``, as PyTables stores ``create_array(obj=np.float64(1))``.

    HDF5 stores a scalar dataset contiguously, so there are no chunks and
    no filters: those of the call (or of a replaced node) do not apply.
    """
    return NodeWrite(
        node=node,
        kind="scalar",
        storage=StoredNode(shape=(), chunkshape=None, dtype_on_disk=x.dtype),
        tables_filters=None,
        encode=False,
        title=title,
        byteorder=_byteorder(x.dtype),
        overwrite=overwrite,
        createparents=createparents,
    )


def plan_new_node(
    x: da.Array,
    node: str,
    tables_filters: tables.Filters | None,
    chunkshape: Sequence[int] | int | None,
    extendable: bool,
    title: str,
    overwrite: bool,
    createparents: bool,
    enums: tuple[EnumColumn, ...] = (),
) -> tuple[NodeWrite, da.Array]:
    """The write of ``x`` into a new node, and ``x`` (rechunked where its blocks must hold whole chunks).

    The chunk shape is chosen (or checked), then the node is created once
    in memory, the trial node: the stored type and filter pipeline are
    PyTables' own, and its one chunk says whether dask_tables encodes.

    Examples
    --------
    >>> import dask.array as da, tables
    >>> write, _ = plan_new_node(da.zeros((100, 10), chunks=50), "/x", tables.Filters(1), None,
    ...                          False, "", False, True)
    >>> write.kind, write.chunkshape, write.storage.filters, write.encode
    ('carray', (50, 10), (('shuffle', (8,)), ('deflate', (1,))), True)
    """
    if x.ndim == 0:
        return _scalar_write(x, node, title, overwrite, createparents), x
    chosen, x = _chunkshape_for(x, chunkshape, node)
    table = x.dtype.names is not None
    write = NodeWrite(
        node=node,
        kind=_new_kind(x, extendable, node),
        storage=StoredNode(shape=tuple(int(n) for n in x.shape), chunkshape=chosen, dtype_on_disk=x.dtype),
        tables_filters=tables_filters,
        encode=False,
        title=title,
        byteorder=None if table else _byteorder(x.dtype),
        overwrite=overwrite,
        createparents=createparents,
        enums=enums if table else (),
    )
    return _settled_by_trial(write), x


def _chunkshape_for(
    x: da.Array, chunkshape: Sequence[int] | int | None, node: str
) -> tuple[tuple[int, ...], da.Array]:
    """The chunk shape of a new node (given, or chosen to divide the blocks), and ``x`` aligned to it."""
    if chunkshape is not None:
        chosen = _given_chunkshape(chunkshape, x.shape, node)
        return chosen, _align_chunks(x, chosen, node)
    itemsize = x.dtype.itemsize
    chosen = _pick_chunkshape(x.chunks, itemsize)
    regular = _pick_chunkshape(tuple((max(b, default=0),) for b in x.chunks), itemsize)
    if math.prod(chosen) * 16 < min(math.prod(regular), CHUNK_BYTES // itemsize):
        # irregular blocks (say 50000 and 100001 rows) leave only tiny common chunks
        return regular, _align_chunks(x, regular, node)
    return chosen, x


def _new_kind(x: da.Array, extendable: bool, node: str) -> str:
    """``"table"``, ``"earray"`` or ``"carray"``; a shape PyTables cannot store raises."""
    empty_axes = sum(n == 0 for n in x.shape)
    if empty_axes > 1 or (empty_axes and extendable and x.shape[0] != 0):
        raise ValueError(
            f"{at_node(None, node)}: PyTables cannot store shape {x.shape} "
            "(one empty axis at most, the extendable one)"
        )
    if x.dtype.names is not None:
        return "table"
    return "earray" if extendable or empty_axes else "carray"
