"""``to_tables``: dask arrays into PyTables nodes, compressed in parallel, all or nothing.

How a write runs (one dask graph; :func:`to_tables` builds it):

1. **Plan** (in the caller, before any task runs): every input is checked
   (file writable and HDF5, node names, an existing node without
   ``overwrite``, the ``region`` of an existing node), the chunk shape is
   chosen to divide the dask blocks, and the node's HDF5 filter pipeline is
   read from the same node created in an in-memory HDF5 file.  Each filter
   of the pipeline is encoded in Python (:mod:`dask_tables.encoders`) only
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

Locks: :func:`dask_tables.registry.get_lock` in each process, plus, across
processes, an ``fcntl.flock`` (of the target's folder for the commit, of
the work folder for the stage tasks) and, inside a ``dask.distributed``
worker, a ``distributed.Lock`` named by the file.  They are always taken in
the order distributed lock, flock, process lock, so two writers never wait
on each other in a cycle.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import itertools
import math
import os
import shutil
import struct
import time
import uuid
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import dask
import dask.array as da
import numpy as np
import tables
from dask.delayed import Delayed
from dask.highlevelgraph import HighLevelGraph
from numpy.lib.recfunctions import assign_fields_by_name
from tables.utils import quantize

from .direct import _same_values
from .encoders import UnsupportedEncoderError, encoder_pipeline
from .errors import NodeExistsError, NotHDF5FileError, RegionMismatchError, WriteInterruptedError
from .registry import get_lock, synchronized_close_file, synchronized_file, synchronized_open_file

__all__ = ["RechunkWarning", "to_tables"]

# Bytes of one HDF5 chunk that to_tables aims for when it picks the chunk shape.
CHUNK_BYTES = 2**20
_TMP_PREFIX = "_dask_tables_tmp_"


class RechunkWarning(UserWarning):
    """:func:`to_tables` rechunked the array so that its blocks hold whole HDF5 chunks."""


# ---------------------------------------------------------------- the plan (picklable)


@dataclass(frozen=True)
class _NodeSpec:
    """One node to write: everything a task needs, and nothing open."""

    node: str  # its final path
    kind: str  # "carray", "earray", "table" (a new node) or "region" (into an existing one)
    shape: tuple[int, ...]  # the node's shape
    chunkshape: tuple[int, ...] | None  # None: a contiguous existing node (region only)
    stored: np.dtype  # one element as stored, in the file's byte order
    filters: tables.Filters | None
    pipeline: tuple[tuple[str, tuple[int, ...]], ...]  # HDF5 filters, in write order
    encode: bool  # chunks encoded by dask_tables (else HDF5's pipeline writes them)
    title: str = ""
    byteorder: str | None = None
    region: tuple[slice, ...] | None = None  # where the array lands in the node
    overwrite: bool = False
    createparents: bool = True


@dataclass(frozen=True)
class _Plan:
    """One call of :func:`to_tables`: the target file, its nodes, where work is staged."""

    path: str  # absolute
    new_file: bool  # build the whole file in the work folder, then os.replace it
    work: str  # the hidden work folder next to the target
    token: str
    specs: tuple[_NodeSpec, ...]

    @property
    def temp_file(self) -> str:
        return os.path.join(self.work, "target.h5")

    @property
    def marker(self) -> str:
        # Exists while a task holds temp_file open for writing.
        return os.path.join(self.work, "writing")

    def temp_name(self, i: int) -> str:
        return f"{_TMP_PREFIX}{self.token}_{i}"


# ---------------------------------------------------------------- checks done before any task runs


def _check_node_name(node: Any) -> str:
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
        if part.startswith(_TMP_PREFIX) or part.startswith("_i_"):
            raise ValueError(f"node {node!r}: names starting with {_TMP_PREFIX} or _i_ are reserved")
        if "\x00" in part:
            raise ValueError(f"node {node!r}: a name cannot hold a NUL character")
    return "/" + "/".join(parts)


def _check_writable(path: str, node: str, exists: bool) -> None:
    folder = os.path.dirname(path)
    if exists:
        if os.path.isdir(path):
            raise IsADirectoryError(f"{path}: is a directory, not an HDF5 file (asked to write node {node})")
        mode = os.stat(path).st_mode
        # Write bits all off means read-only, even for root (who may write anyway).
        if not os.access(path, os.W_OK) or not mode & 0o222:
            raise PermissionError(f"{path}: the file is read-only (asked to write node {node})")
        with get_lock():
            if not tables.is_hdf5_file(path):
                raise NotHDF5FileError(f"{path}: not an HDF5 file (asked to write node {node})")
    elif not os.path.isdir(folder):
        raise FileNotFoundError(f"{path}: no folder {folder} to create the file in (node {node})")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise PermissionError(f"{path}: its folder {folder} is not writable (asked to write node {node})")


def _as_dask_array(x: Any, node: str) -> da.Array:
    if isinstance(x, da.Array):
        return x
    if isinstance(x, np.ndarray):
        return da.from_array(x, chunks="auto" if x.dtype.kind != "V" else (max(1, len(x)),))
    raise TypeError(f"node {node}: to_tables writes dask or numpy arrays, not {type(x).__name__}")


def _check_dtype(x: da.Array, node: str) -> None:
    dtype = x.dtype
    if dtype.kind in "OUMm" or dtype.itemsize == 0:
        raise TypeError(f"node {node}: PyTables cannot store dtype {dtype} (use bytes 'S' for strings)")
    if x.ndim == 0:
        raise ValueError(f"node {node}: to_tables writes arrays of at least one dimension, not a scalar")
    if dtype.names is not None and x.ndim != 1:
        raise ValueError(f"node {node}: a structured array becomes a Table and must be 1-D, not {x.ndim}-D")
    if any(math.isnan(n) for c in x.chunks for n in c):
        raise ValueError(f"node {node}: the array has unknown chunk sizes; call compute_chunk_sizes() first")


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
        f"node {node}: the dask blocks {x.chunksize} are not multiples of chunkshape {chunkshape}; "
        f"rechunking to blocks of {tuple(b[0] if b else 0 for b in new)} before writing",
        RechunkWarning,
        stacklevel=4,
    )
    return x.rechunk(tuple(new))


def _node_pipeline(leaf: tables.Leaf) -> tuple[tuple[str, tuple[int, ...]], ...]:
    filters = tables.utilsextension.get_filters(leaf._v_parent._v_objectid, leaf._v_name) or {}
    return tuple((str(name), tuple(int(p) for p in params)) for name, params in filters.items())


def _stored_dtype(leaf: tables.Leaf) -> np.dtype:
    dtype = leaf.dtype if isinstance(leaf, tables.Table) else leaf.atom.dtype
    if leaf.byteorder in ("little", "big"):
        dtype = dtype.newbyteorder("<" if leaf.byteorder == "little" else ">")
    return np.dtype(dtype)


def _create_node(h5: tables.File, where: str, name: str, spec: _NodeSpec, createparents: bool) -> tables.Leaf:
    """Create ``spec``'s (new) node, empty, at ``where/name``."""
    common = {"title": spec.title, "filters": spec.filters, "createparents": createparents}
    if spec.kind == "table":
        table = h5.create_table(where, name, description=spec.stored, chunkshape=spec.chunkshape, **common)
        if spec.shape[0]:
            table.truncate(spec.shape[0])
        return table
    atom = tables.Atom.from_dtype(spec.stored.newbyteorder("="))
    if spec.kind == "earray":
        # A zero-size array is an EArray whose extendable axis is its (one) empty axis.
        empty = 0 in spec.shape
        earray = h5.create_earray(
            where,
            name,
            atom=atom,
            shape=spec.shape if empty else (0, *spec.shape[1:]),
            chunkshape=spec.chunkshape,
            byteorder=spec.byteorder,
            expectedrows=max(1, spec.shape[0]),
            **common,
        )
        if not empty:
            earray.truncate(spec.shape[0])
        return earray
    return h5.create_carray(
        where,
        name,
        atom=atom,
        shape=spec.shape,
        chunkshape=spec.chunkshape,
        byteorder=spec.byteorder,
        **common,
    )


def _probe_values(dtype: np.dtype, shape: tuple[int, ...]) -> np.ndarray:
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
def _probe_node(spec: _NodeSpec) -> Iterator[tables.Leaf]:
    """``spec``'s node, one chunk large, created in an in-memory HDF5 file (with the lock held)."""
    assert spec.chunkshape is not None
    probe_spec = dataclasses.replace(spec, shape=spec.chunkshape, kind=_creation_kind(spec))
    name = f"probe-{uuid.uuid4().hex}.h5"
    with get_lock():
        h5 = synchronized_open_file(name, "w", driver="H5FD_CORE", driver_core_backing_store=0)
        try:
            yield _create_node(h5, "/", "probe", probe_spec, createparents=False)
        finally:
            synchronized_close_file(h5)


def _encoding_reads_back(spec: _NodeSpec, probe: tables.Leaf) -> bool:
    """Whether HDF5 reads a chunk encoded by dask_tables exactly as it was.

    ``probe`` is ``spec``'s node, one chunk large, in an in-memory file
    (:func:`_probe_node`): one probe chunk encoded by
    :mod:`dask_tables.encoders` is written there with ``write_chunk`` and
    PyTables' read compared with it.  Also requires the probe's filter
    pipeline to be ``spec.pipeline``.
    """
    assert spec.chunkshape is not None
    try:
        pipeline = encoder_pipeline(spec.pipeline)
    except UnsupportedEncoderError:
        return False
    if _node_pipeline(probe) != spec.pipeline:
        return False
    values = _probe_values(spec.stored, spec.chunkshape)
    try:
        with get_lock():
            probe.write_chunk((0,) * len(spec.chunkshape), pipeline.encode(values.tobytes()))
            back = probe.read()
    except (tables.HDF5ExtError, ValueError, TypeError, RuntimeError):
        return False
    back = np.asarray(back).astype(values.dtype, copy=False)
    return back.shape == values.shape and _same_values(back, values)


def _creation_kind(spec: _NodeSpec) -> str:
    if spec.kind != "region":
        return spec.kind
    return "table" if spec.stored.names is not None else "carray"


def _existing(h5: tables.File | None, node: str) -> tables.Node | None:
    if h5 is None:
        return None
    try:
        return h5.get_node(node)
    except tables.NoSuchNodeError:
        return None


def _check_replaceable(found: tables.Node | None, path: str, node: str, overwrite: bool) -> None:
    """An existing node may be replaced only with ``overwrite``, and never a group (with all inside)."""
    if found is None:
        return
    if isinstance(found, tables.Group):
        raise NodeExistsError(
            path, node, f"{node} is a group; to_tables replaces a leaf, never a group and all it holds"
        )
    if not overwrite:
        raise NodeExistsError(path, node)


def _check_not_open_here(path: str, node: str) -> None:
    """PyTables cannot open a file for writing that this process holds open read-only."""
    with get_lock():
        handles = tables.file._open_files.get_handlers_by_name(path)
        if any(h.mode == "r" for h in handles):
            raise ValueError(
                f"{path}: the file is open read-only in this process; close it before writing node {node}"
            )


def _check_parents(h5: tables.File | None, path: str, node: str, createparents: bool) -> None:
    parts = node.strip("/").split("/")[:-1]
    current = ""
    for part in parts:
        current += "/" + part
        found = _existing(h5, current)
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
        raise TypeError(f"{path}: node {node}: region must be a tuple of slices, not {region!r}")
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


def _region_spec(
    leaf: tables.Node, x: da.Array, region: Any, path: str, node: str
) -> tuple[_NodeSpec, da.Array]:
    if not isinstance(leaf, (tables.Table, tables.Array)) or isinstance(leaf, tables.VLArray):
        raise RegionMismatchError(path, node, f"it is a {type(leaf).__name__}, not an array or a table")
    shape = tuple(int(n) for n in leaf.shape)
    resolved = _resolve_region(region, shape, path, node)
    extent = tuple(s.stop - s.start for s in resolved)
    if extent != x.shape:
        raise RegionMismatchError(path, node, f"region {resolved} has shape {extent}, the array {x.shape}")
    stored = _stored_dtype(leaf)
    target = stored.newbyteorder("=") if stored.names is None else stored
    if isinstance(leaf, tables.Table):
        ok = x.dtype.names is not None and x.dtype.names == stored.names and np.can_cast(x.dtype, stored)
    else:
        ok = stored.subdtype is None and x.dtype.names is None and np.can_cast(x.dtype, target, "safe")
    if not ok:
        raise RegionMismatchError(path, node, f"the array's dtype {x.dtype} does not fit the node's {stored}")
    chunkshape = tuple(int(n) for n in leaf.chunkshape) if leaf.chunkshape is not None else None
    pipeline = _node_pipeline(leaf) if chunkshape is not None else ()
    spec = _NodeSpec(
        node=node,
        kind="region",
        shape=shape,
        chunkshape=chunkshape,
        stored=stored,
        filters=leaf.filters,
        pipeline=pipeline,
        encode=False,
        byteorder=leaf.byteorder if leaf.byteorder in ("little", "big") else None,
        region=resolved,
    )
    if chunkshape is not None:
        with _probe_node(spec) as probe:
            spec = dataclasses.replace(spec, encode=_encoding_reads_back(spec, probe))
    return spec, x


def _new_spec(
    x: da.Array,
    node: str,
    filters: tables.Filters | None,
    chunkshape: Sequence[int] | None,
    title: str,
    extendable: bool,
    overwrite: bool,
    createparents: bool,
) -> tuple[_NodeSpec, da.Array]:
    dtype = x.dtype
    table = dtype.names is not None
    if chunkshape is None:
        chosen = _pick_chunkshape(x.chunks, dtype.itemsize)
        regular = _pick_chunkshape(tuple((max(b, default=0),) for b in x.chunks), dtype.itemsize)
        if math.prod(chosen) * 16 < min(math.prod(regular), CHUNK_BYTES // dtype.itemsize):
            # irregular blocks (say 50000 and 100001 rows) leave only tiny common chunks
            x = _align_chunks(x, regular, node)
            chosen = regular
    else:
        chosen = tuple(int(c) for c in np.atleast_1d(chunkshape))
        if len(chosen) != x.ndim or min(chosen) < 1:
            raise ValueError(f"node {node}: chunkshape {tuple(chunkshape)} does not fit shape {x.shape}")
        x = _align_chunks(x, chosen, node)
    empty_axes = sum(n == 0 for n in x.shape)
    if empty_axes > 1 or (empty_axes and extendable and x.shape[0] != 0):
        raise ValueError(
            f"node {node}: PyTables cannot store shape {x.shape} (one empty axis at most, the extendable one)"
        )
    byteorder = {"<": "little", ">": "big"}.get(dtype.byteorder)
    if dtype.byteorder == "=":
        byteorder = None
    spec = _NodeSpec(
        node=node,
        kind="table" if table else ("earray" if extendable or empty_axes else "carray"),
        shape=tuple(int(n) for n in x.shape),
        chunkshape=chosen,
        stored=dtype,
        filters=filters,
        pipeline=(),
        encode=False,
        title=title,
        byteorder=None if table else byteorder,
        overwrite=overwrite,
        createparents=createparents,
    )
    try:
        with _probe_node(spec) as probe:
            # What PyTables stores may differ from the dtype given (a table's records, say).
            spec = dataclasses.replace(spec, pipeline=_node_pipeline(probe), stored=_stored_dtype(probe))
            spec = dataclasses.replace(spec, encode=_encoding_reads_back(spec, probe))
    except (tables.HDF5ExtError, ValueError, TypeError, NotImplementedError) as err:
        raise ValueError(f"node {node}: PyTables cannot create it ({type(err).__name__}: {err})") from None
    return spec, x


# ---------------------------------------------------------------- chunks of a block


@dataclass(frozen=True)
class _Piece:
    """What one staged record writes: an encoded chunk, or raw values of a region."""

    encoded: bool
    start: tuple[int, ...]  # chunk origin (encoded) or region start, in node coordinates
    data: Any  # encoded bytes, or a numpy array of raw values


def _block_pieces(block: np.ndarray, spec: _NodeSpec, start: tuple[int, ...]) -> Iterator[_Piece]:
    """Cut a block that lands at ``start`` of the node into pieces to write.

    Chunks the block covers whole (up to the node's end) are encoded, padded
    with zeros to the full chunk shape; parts of chunks are raw values,
    written through HDF5 in the commit.  Without encoders, the whole block
    is one raw piece.
    """
    block = np.asarray(block)
    if block.size == 0:
        return
    if block.dtype != spec.stored and spec.stored.names is not None:
        records = np.zeros(block.shape, spec.stored)
        assign_fields_by_name(records, block)  # numpy's astype would match fields by position
        block = records
    elif block.dtype != spec.stored:
        block = block.astype(spec.stored)
    digits = spec.filters.least_significant_digit if spec.filters is not None else None
    if digits is not None and spec.stored.names is None and not np.issubdtype(block.dtype, np.signedinteger):
        block = quantize(block, digits).astype(spec.stored)  # as PyTables' own write does
    if not spec.encode or spec.chunkshape is None:
        yield _Piece(False, start, block)
        return
    pipeline = encoder_pipeline(spec.pipeline)
    chunk = spec.chunkshape
    stop = tuple(s + n for s, n in zip(start, block.shape, strict=True))
    ranges = [range(s // c * c, e, c) for s, e, c in zip(start, stop, chunk, strict=True)]
    for origin in itertools.product(*ranges):
        end = tuple(min(o + c, n) for o, c, n in zip(origin, chunk, spec.shape, strict=True))
        lo = tuple(max(o, s) for o, s in zip(origin, start, strict=True))
        hi = tuple(min(e, s) for e, s in zip(end, stop, strict=True))
        local = tuple(slice(a - s, b - s) for a, b, s in zip(lo, hi, start, strict=True))
        if lo != origin or hi != end:  # the block covers part of this chunk
            yield _Piece(False, lo, block[local])
            continue
        piece = block[local]
        if piece.shape != chunk:  # an edge chunk: HDF5 stores it whole
            padded = np.zeros(chunk, dtype=spec.stored)
            padded[tuple(slice(0, n) for n in piece.shape)] = piece
            piece = padded
        raw = np.ascontiguousarray(piece).view(np.uint8).reshape(-1)  # one flat buffer
        yield _Piece(True, origin, pipeline.encode(raw.data))


# ---------------------------------------------------------------- sidecar files (existing-file mode)

_HEADER = struct.Struct("<?BQ")  # encoded, ndim, data bytes


def _write_sidecar(path: str, pieces: Iterator[_Piece], ndim: int) -> None:
    tmp = f"{path}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        with open(tmp, "xb") as out:
            for piece in pieces:
                data = piece.data
                if piece.encoded:
                    payload = memoryview(data).cast("B")
                    shape: tuple[int, ...] = ()
                else:
                    array = np.ascontiguousarray(data)
                    payload = memoryview(array.reshape(-1).view(np.uint8))
                    shape = array.shape
                out.write(_HEADER.pack(piece.encoded, ndim, payload.nbytes))
                out.write(struct.pack(f"<{ndim}q", *piece.start))
                if not piece.encoded:
                    out.write(struct.pack(f"<{ndim}q", *shape))
                out.write(payload)
        os.replace(tmp, path)  # a retried task finds either nothing or a whole file
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _read_sidecar(path: str, stored: np.dtype) -> Iterator[_Piece]:
    with open(path, "rb") as f:
        while header := f.read(_HEADER.size):
            encoded, ndim, nbytes = _HEADER.unpack(header)
            start = struct.unpack(f"<{ndim}q", f.read(8 * ndim))
            if encoded:
                yield _Piece(True, start, f.read(nbytes))
            else:
                shape = struct.unpack(f"<{ndim}q", f.read(8 * ndim))
                yield _Piece(False, start, np.frombuffer(f.read(nbytes), dtype=stored).reshape(shape))


# ---------------------------------------------------------------- locks


def _current_worker() -> Any:
    try:
        from distributed import get_worker
    except ImportError:  # pragma: no cover - distributed is a dependency
        return None
    try:
        return get_worker()
    except ValueError:
        return None


@contextlib.contextmanager
def write_lock(name: str, folder: str) -> Iterator[None]:
    """Hold the locks that serialize writers of one file, across processes and threads.

    Inside a ``dask.distributed`` worker, a ``distributed.Lock`` named by
    ``name``; always an exclusive ``fcntl.flock`` of ``folder`` (which
    crosses the processes of dask's ``processes`` scheduler, and the threads
    of one process, each with its own descriptor); then
    :func:`dask_tables.registry.get_lock`.  Always in this order.

    Examples
    --------
    >>> with write_lock("out.h5", "."):
    ...     pass
    """
    with contextlib.ExitStack() as stack:
        if _current_worker() is not None:
            from distributed import Lock

            stack.enter_context(Lock(name=f"dask-tables-write:{name}"))
        fd = os.open(folder, os.O_RDONLY)
        stack.callback(os.close, fd)  # closing the descriptor releases the flock
        fcntl.flock(fd, fcntl.LOCK_EX)
        stack.enter_context(get_lock())
        yield


# ---------------------------------------------------------------- the tasks


def _prepare(plan: _Plan) -> str:
    """Task: make the work folder; for a new file, the new file with its (empty) nodes."""
    os.makedirs(plan.work, exist_ok=True)
    if plan.new_file and not os.path.exists(plan.temp_file):
        # Built aside and linked into place: a preparation run again (the
        # scheduler recomputes it after losing a worker) never empties a
        # file that stage tasks have already written chunks into.
        building = f"{plan.temp_file}.{os.getpid()}-{uuid.uuid4().hex[:8]}"
        try:
            with get_lock(), synchronized_file(building, "w") as h5:
                for spec in plan.specs:
                    where, name = spec.node.rsplit("/", 1)
                    leaf = _create_node(h5, where or "/", name, spec, createparents=True)
                    if _node_pipeline(leaf) != spec.pipeline:
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
    plan: _Plan, block: np.ndarray, index: int, key: str, start: tuple[int, ...], work: str
) -> str:
    """Task: encode one block's chunks (no lock held) and stage them."""
    spec = plan.specs[index]
    if not os.path.isdir(work):
        raise FileNotFoundError(f"{plan.path}: the work folder {work} is gone (the write was abandoned)")
    if not plan.new_file:
        sidecar = os.path.join(work, f"block-{index}-{key}")
        _write_sidecar(sidecar, _block_pieces(block, spec, start), len(spec.shape))
        return sidecar
    pieces = list(_block_pieces(block, spec, start))
    with write_lock(plan.temp_file, work):
        if os.path.exists(plan.marker):
            raise WriteInterruptedError(plan.path)
        with open(plan.marker, "x"):
            pass
        try:
            with synchronized_file(plan.temp_file, "r+") as h5:
                _write_pieces(h5.get_node(spec.node), pieces)
        finally:  # only a process that dies here leaves the marker behind
            os.unlink(plan.marker)
    return key


def _write_pieces(leaf: tables.Leaf, pieces: Iterator[_Piece] | list[_Piece]) -> None:
    """Write staged pieces into ``leaf`` (under the locks): chunks as they are, values through HDF5."""
    for piece in pieces:
        if piece.encoded:
            leaf.write_chunk(piece.start, piece.data)
        elif isinstance(leaf, tables.Table):
            (start,) = piece.start
            leaf.modify_rows(start, start + len(piece.data), rows=piece.data)
        else:
            region = tuple(slice(s, s + n) for s, n in zip(piece.start, piece.data.shape, strict=True))
            leaf[region] = piece.data


def _commit(plan: _Plan, staged: list[str]) -> None:
    """Task: the one short step that changes the target file."""
    folder = os.path.dirname(plan.path)
    with write_lock(plan.path, folder):
        if plan.new_file:
            # every stage task has ended: a marker left now is one of a process that died
            if os.path.exists(plan.marker):
                raise WriteInterruptedError(plan.path)
            if os.path.exists(plan.path):
                raise FileExistsError(
                    f"{plan.path}: the file appeared while the write was computed; nothing was written"
                )
            os.replace(plan.temp_file, plan.path)
        else:
            _commit_into_existing(plan, staged)
    shutil.rmtree(plan.work, ignore_errors=True)


def _commit_into_existing(plan: _Plan, staged: list[str]) -> None:
    by_spec: dict[int, list[str]] = {}
    for sidecar in staged:
        index = int(os.path.basename(sidecar).split("-")[1])
        by_spec.setdefault(index, []).append(sidecar)
    h5 = synchronized_open_file(plan.path, "a")
    created: list[str] = []
    try:
        for i, spec in enumerate(plan.specs):
            sidecars = by_spec.get(i, [])
            if spec.kind == "region":
                leaf = h5.get_node(spec.node)
                if tuple(int(n) for n in leaf.shape) != spec.shape or _stored_dtype(leaf) != spec.stored:
                    raise RegionMismatchError(
                        plan.path, spec.node, "the node changed while the write was computed"
                    )
            else:
                # checked again: another writer may have changed the file since the plan
                _check_replaceable(_existing(h5, spec.node), plan.path, spec.node, spec.overwrite)
                _check_parents(h5, plan.path, spec.node, spec.createparents)
                tmp = "/" + plan.temp_name(i)
                if _existing(h5, tmp) is not None:  # left by a commit whose worker was killed
                    h5.remove_node(tmp, recursive=True)
                leaf = _create_node(h5, "/", plan.temp_name(i), spec, createparents=False)
                created.append(tmp)
                if _node_pipeline(leaf) != spec.pipeline:
                    raise RuntimeError(
                        f"{plan.path}: node {spec.node}: PyTables built another filter pipeline"
                    )
            for sidecar in sidecars:
                _write_pieces(leaf, _read_sidecar(sidecar, spec.stored))
        # Only now is anything that existed before changed.
        for i, spec in enumerate(plan.specs):
            if spec.kind == "region":
                continue
            if _existing(h5, spec.node) is not None:
                h5.remove_node(spec.node, recursive=True)
            where, name = spec.node.rsplit("/", 1)
            h5.move_node("/" + plan.temp_name(i), where or "/", name, createparents=True)
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
    extendable: bool = False,
    region: tuple[slice, ...] | slice | None = None,
    compute: bool = True,
) -> Delayed | None:
    """Write a dask array into a PyTables node, compressing in parallel, all or nothing.

    Creates a ``CArray`` (an ``EArray`` with ``extendable=True``; a ``Table``
    for a structured dtype) shaped like ``x`` and writes every block.  Tasks
    compress their HDF5 chunks outside every lock (zlib, bzip2, Blosc2,
    shuffle and Fletcher-32 are encoded by dask_tables; other filters go
    through HDF5's pipeline under the lock), and the target file changes
    only in one final step, after every block was computed.  Works under
    every dask scheduler, ``dask.distributed`` included.

    Parameters
    ----------
    x : dask.array.Array, numpy.ndarray, or dict of node -> array
        What to write.  A dict writes several nodes of ``path`` from one
        graph, with one final step (``node`` must then be ``None``).
    path : str or os.PathLike
        The HDF5 file.  A new file is built whole under a temporary name
        and moved into place; an existing one gets the new nodes.
    node : str
        Path of the node in the file, e.g. ``"/results/mean_field"``.
    filters : tables.Filters, optional
        Compression of a new node (``tables.Filters(complib="blosc2:zstd",
        complevel=5, shuffle=True)``...).  Default: none.
    chunkshape : tuple of int, optional
        HDF5 chunk shape of a new node.  By default one that divides the
        dask blocks (about 1 MiB); a given one that does not makes
        ``to_tables`` rechunk ``x`` to multiples of it, with a
        :class:`RechunkWarning`.
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
    region : tuple of slice, optional
        Write ``x`` into this region of an existing node (array or table) of
        the same dtype (or one it casts to safely), which keeps its filters
        and chunk shape.
    compute : bool, optional
        Run the write now (default) and return ``None``; ``False`` returns a
        ``dask.delayed.Delayed`` that writes when computed.

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
    (with ``compute=False``, only a successful run removes it).  A new file
    is created by ``os.replace``, atomically.  Into an existing file, the
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
    """
    path = os.path.abspath(os.fspath(path))
    if isinstance(x, Mapping):
        if node is not None:
            raise TypeError("to_tables: give either a dict {node: array} or one array and its node")
        if region is not None:
            raise ValueError("to_tables: region is for one array, not a dict of them")
        items = [(_check_node_name(n), a) for n, a in x.items()]
        if not items:
            raise ValueError(f"{path}: an empty dict: nothing to write")
    else:
        if node is None:
            raise TypeError("to_tables: give the node to write, e.g. to_tables(x, 'out.h5', '/x')")
        items = [(_check_node_name(node), x)]
    names = [n for n, _ in items]
    for a, b in itertools.permutations(names, 2):
        if a == b or b.startswith(a + "/"):
            raise ValueError(f"{path}: nodes {a} and {b} cannot both be written")
    arrays = [_as_dask_array(a, n) for n, a in items]
    for (n, _), a in zip(items, arrays, strict=True):
        _check_dtype(a, n)

    exists = os.path.lexists(path)
    _check_writable(path, names[0], exists)
    specs: list[_NodeSpec] = []
    with contextlib.ExitStack() as stack:
        # The writers' locks: another writer's commit cannot run while the plan reads the file.
        stack.enter_context(write_lock(path, os.path.dirname(path)))
        if exists:
            _check_not_open_here(path, names[0])
        h5 = stack.enter_context(synchronized_file(path, "r")) if exists else None
        for (name, _), i in zip(items, range(len(arrays)), strict=True):
            found = _existing(h5, name)
            if region is not None:
                if found is None:
                    raise tables.NoSuchNodeError(f"{path}: no node {name} to write the region of")
                spec, arrays[i] = _region_spec(found, arrays[i], region, path, name)
            else:
                _check_replaceable(found, path, name, overwrite)
                _check_parents(h5, path, name, createparents)
                spec, arrays[i] = _new_spec(
                    arrays[i], name, filters, chunkshape, title, extendable, overwrite, createparents
                )
            specs.append(spec)

    token = uuid.uuid4().hex[:16]  # every call stages into its own folder
    folder, base = os.path.split(path)
    plan = _Plan(
        path=path,
        new_file=not exists,
        work=os.path.join(folder, f".{base[:100]}.dask-tables-{token}"),  # within NAME_MAX (255)
        token=token,
        specs=tuple(specs),
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
    try:
        dask.compute(result)
    finally:
        _remove_work(plan.work)
    return None


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


def _commit_after(plan: _Plan, work: str) -> None:
    """Task: the commit of a write without blocks (zero-size arrays)."""
    _commit(plan, [])
