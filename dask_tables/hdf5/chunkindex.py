"""Where every stored chunk of a node is: read once per file and process, then cached.

HDF5 finds one chunk by its coordinates (``H5Dget_chunk_info_by_coord``,
behind PyTables' ``Leaf.chunk_info``) by walking the dataset's chunk index,
so one lookup per chunk is quadratic in the number of chunks (the last of
100,000 chunks of a 1-D EArray takes 3.3 ms).  HDF5 1.14's ``H5Dchunk_iter``
lists the whole index in one pass; this module calls it (from C) in
PyTables' own HDF5 (:mod:`.libhdf5`), under the process lock, and keeps the
result as a few numpy arrays (24 bytes a chunk, 28 in a sparse index) in a bounded cache keyed by
process, path, node and file fingerprint.  Where ``H5Dchunk_iter`` is
missing (HDF5 < 1.14), or the compiled module is (installed without a C
compiler), ``chunk_info`` per chunk builds the same index; the latter says so
once per process with a :class:`~dask_tables.SlowChunkIndexWarning`.

The cache's bound is the ``dask_tables.chunk-index-cache`` configuration
value: bytes (``"64 MiB"`` or an int), 256 MiB by default; least recently
used indexes go first, and an index larger than the bound is used by the
read that built it but not kept.

Examples
--------
>>> import numpy as np, tables
>>> from dask_tables.hdf5.fingerprint import Fingerprint
>>> with tables.open_file("example.h5", "w") as f:
...     e = f.create_earray("/", "e", atom=tables.Float64Atom(), shape=(0,), chunkshape=(4,))
...     e.append(np.arange(10.0))
>>> index = chunk_index("example.h5", "/e", Fingerprint.of("example.h5"))
>>> index.grid, len(index)
((3,), 3)
>>> offsets, sizes, masks = index.locate([(0,), (8,)])
>>> sizes.tolist()
[32, 32]
"""

from __future__ import annotations

import collections
import itertools
import math
import os
import threading
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import dask
import numpy as np
import tables
from dask.utils import parse_bytes

from .. import diagnostics
from ..errors import SlowChunkIndexWarning, at_node
from ..forks import after_fork_in_child
from ..registry import get_lock, synchronized_file
from .calls import other_record_layout, read_rows
from .fingerprint import Fingerprint, check_unchanged, same_file
from .libhdf5 import library

__all__ = [
    "ChunkIndex",
    "build_index",
    "cache_info",
    "cache_limit",
    "chunk_index",
    "clear_cache",
    "slow_index_reason",
]

DEFAULT_CACHE_BYTES = 256 * 2**20
_ENTRY_OVERHEAD = 512  # bytes of one entry besides its arrays (key, object, dict slot)


@dataclass(frozen=True, eq=False)
class ChunkIndex:
    """The stored chunks of one node: chunk number -> file offset, size, filter mask.

    Attributes
    ----------
    chunkshape : tuple of int
        The node's chunk shape.
    grid : tuple of int
        Chunks along each axis (the node's shape divided by its chunk shape,
        rounded up).
    keys : numpy.ndarray or None
        Sorted chunk numbers (int64, C order over ``grid``) of the stored chunks;
        ``None`` when every chunk of the grid is stored (the number is then
        the position).
    offsets, sizes : numpy.ndarray
        Byte offset and stored size of each stored chunk (int64).
    masks : numpy.ndarray
        HDF5 filter mask of each (uint32: the filters skipped when it was written).
    fill : object
        What a never-written chunk holds (numpy value broadcast into the
        result); ``None`` when every chunk is stored.
    seams : numpy.ndarray or None
        Where every chunk is stored (int32): ``seams[k]`` counts the chunks ``1..k``
        that do not continue the one before in the file (another offset, or
        another size), so chunks ``a..b`` are one run of bytes exactly when
        ``seams[b] == seams[a]``.  ``None`` otherwise.
    """

    chunkshape: tuple[int, ...]
    grid: tuple[int, ...]
    keys: np.ndarray | None
    offsets: np.ndarray
    sizes: np.ndarray
    masks: np.ndarray
    fill: Any = None
    seams: np.ndarray | None = None

    def one_run(self, first: int, last: int) -> bool:
        """Whether chunks number ``first..last`` (all stored) lie one after another in the file, same size."""
        return self.seams is not None and bool(self.seams[last] == self.seams[first])

    def __len__(self) -> int:
        """Number of stored chunks."""
        return int(self.offsets.size)

    @property
    def nbytes(self) -> int:
        """Memory the index holds (its arrays, plus a fixed overhead)."""
        arrays = [self.offsets, self.sizes, self.masks] + [
            a for a in (self.keys, self.seams) if a is not None
        ]
        fill = np.asarray(self.fill).nbytes if self.fill is not None else 0
        return sum(a.nbytes for a in arrays) + fill + _ENTRY_OVERHEAD

    @property
    def strides(self) -> np.ndarray:
        """Chunk numbers between neighbours along each axis (C order over ``grid``)."""
        return np.asarray(
            [math.prod(self.grid[axis + 1 :]) for axis in range(len(self.grid))], dtype=np.int64
        )

    def numbers(self, starts: Sequence[Sequence[int]] | np.ndarray) -> np.ndarray:
        """Chunk numbers (C order over the grid) of chunks given by their first elements."""
        coords = np.asarray(starts, dtype=np.int64).reshape(len(starts), len(self.grid))
        coords = coords // np.asarray(self.chunkshape, dtype=np.int64)  # a new array: never the caller's
        return coords @ self.strides

    def locate(self, starts: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Offsets, sizes and filter masks of chunks given by their first elements.

        A chunk never written has offset ``-1`` (and size 0).
        """
        return self.locate_numbers(self.numbers(starts))

    def locate_numbers(self, numbers: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Offsets, sizes and filter masks of chunks given by their numbers (see :meth:`numbers`)."""
        if self.keys is None:
            return self.offsets[numbers], self.sizes[numbers], self.masks[numbers]
        positions = np.searchsorted(self.keys, numbers)
        found = positions < self.keys.size
        found[found] = self.keys[positions[found]] == numbers[found]
        hits = positions[found]
        offsets = np.full(numbers.shape, -1, dtype=np.int64)
        sizes = np.zeros(numbers.shape, dtype=np.int64)
        masks = np.zeros(numbers.shape, dtype=np.uint32)
        offsets[found], sizes[found], masks[found] = self.offsets[hits], self.sizes[hits], self.masks[hits]
        return offsets, sizes, masks


def _grid(shape: Sequence[int], chunkshape: Sequence[int]) -> tuple[int, ...]:
    return tuple(-(-int(n) // int(c)) for n, c in zip(shape, chunkshape, strict=True))


# ---------------------------------------------------------------------------
# Reading the index from HDF5


def _compiled_module_present() -> bool:
    try:
        from . import _chunkiter  # noqa: F401 - only its presence is checked here
    except ImportError:
        return False
    return True


# What the first read of a 100,000-chunk EArray (64 float32 a chunk) took, measured on the
# 2-core development machine with and without the compiled module.
SLOW_INDEX_COST = (
    "each chunk is looked up on its own, which is quadratic in the number of chunks: the first "
    "read of a 100,000-chunk array took 178.5 s this way, 3.2 s with the module"
)
SLOW_INDEX_CURE = (
    "install a C compiler and Python's headers (Debian/Ubuntu: apt-get install gcc python3-dev; "
    "macOS: xcode-select --install) and reinstall dask-tables (pip install --force-reinstall "
    "--no-deps . in its checkout)"
)


def slow_index_reason() -> str | None:
    """Why chunk indexes are read chunk by chunk in this process, or ``None`` if in one HDF5 call.

    Examples
    --------
    >>> slow_index_reason() is None  # the compiled module was built at install
    True
    """
    if not _compiled_module_present():
        return (
            "the compiled module dask_tables.hdf5._chunkiter is missing (dask-tables was installed "
            f"without a C compiler): {SLOW_INDEX_COST}; {SLOW_INDEX_CURE}"
        )
    if _chunk_iter_address() is None:
        return f"PyTables' HDF5 has no H5Dchunk_iter (HDF5 < 1.14): {SLOW_INDEX_COST}"
    return None


_warned_lock = threading.Lock()
# Guarded by _warned_lock: [True] once this process has issued its SlowChunkIndexWarning.
_warned: list[bool] = []


def _warn_slow_index() -> None:
    """Issue :class:`~dask_tables.SlowChunkIndexWarning` once per process, if the module is missing."""
    if _compiled_module_present():
        return
    with _warned_lock:
        if _warned:
            return
        _warned.append(True)
    warnings.warn(
        f"dask_tables: chunk indexes are read chunk by chunk: {slow_index_reason()}",
        SlowChunkIndexWarning,
        stacklevel=2,
    )


def _chunk_iter_address() -> int | None:
    """The address of ``H5Dchunk_iter`` in PyTables' HDF5, or ``None``.

    ``None`` without the compiled module or in an HDF5 older than 1.14: the
    index is then read chunk by chunk.  ``H5Dchunk_iter`` is called by
    :mod:`dask_tables.hdf5._chunkiter` (C), whose callback needs neither the
    GIL nor Python: a Python (ctypes) callback would run while HDF5 holds
    its global mutex, and deadlock with any thread that holds the GIL while
    it waits for that mutex (as plain PyTables calls do).
    """
    lib = library()
    if lib is None or not _compiled_module_present():
        return None
    return lib.address("H5Dchunk_iter")


def _library_of(leaf: tables.Leaf) -> int | None:
    """The ``H5Dchunk_iter`` of PyTables' HDF5, where its identifier ``leaf._v_objectid`` is this very dataset.

    Identifiers are numbered by each library on its own: one of h5py's HDF5
    may mean another dataset, of another file.  A guard on
    :func:`~dask_tables.hdf5.libhdf5.library`'s rule: the identifier must
    name the leaf's path in the leaf's file.
    """
    address = _chunk_iter_address()
    if address is None:
        return None
    lib, hid = library(), int(leaf._v_objectid)
    file_name = lib.name_of(hid, of_file=True)
    named = lib.name_of(hid) == leaf._v_pathname
    if named and file_name is not None and same_file(file_name, leaf._v_file.filename):
        return address
    return None


def _iterate_chunks(leaf: tables.Leaf) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
    """Every stored chunk of ``leaf`` in one pass: (starts, offsets, sizes, masks), or ``None``.

    ``None`` where HDF5 has no ``H5Dchunk_iter``, the compiled helper is
    missing, or the call fails.  Call with the process lock held and the
    file open.
    """
    address = _library_of(leaf)
    if address is None:
        return None
    from . import _chunkiter

    ndim = len(leaf.shape)
    status, starts, addrs, sizes, masks = _chunkiter.iterate(address, leaf._v_objectid, ndim)
    if status < 0:
        return None
    return (
        np.frombuffer(starts, dtype=np.uint64).astype(np.int64).reshape(-1, ndim),
        np.frombuffer(addrs, dtype=np.uint64).view(np.int64).copy(),  # HADDR_UNDEF -> -1
        np.frombuffer(sizes, dtype=np.uint64).astype(np.int64),
        np.frombuffer(masks, dtype=np.uint32).copy(),
    )


def _agrees_with_chunk_info(leaf: tables.Leaf, starts: np.ndarray, offsets: np.ndarray) -> bool:
    """Whether HDF5's per-chunk lookup finds the first and last listed chunks where the iteration did.

    Guards against an HDF5 whose ``H5Dchunk_iter`` reports chunk
    coordinates instead of element offsets (early 1.14 releases).
    """
    if not starts.shape[0]:
        return True
    chunkshape = np.asarray(leaf.chunkshape, dtype=np.int64)
    if np.any(starts % chunkshape):
        return False
    for row in {0, starts.shape[0] - 1}:  # the first and the last chunk listed
        info = leaf.chunk_info(tuple(int(v) for v in starts[row]))
        if info.offset is None or int(info.offset) != int(offsets[row]):
            return False
    return True


def _lookup_each_chunk(leaf: tables.Leaf) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The fallback: ``chunk_info`` once per chunk of the grid (quadratic in HDF5)."""
    _warn_slow_index()
    shape = tuple(int(n) for n in leaf.shape)
    chunkshape = tuple(int(c) for c in leaf.chunkshape)
    starts, offsets, sizes, masks = [], [], [], []
    for start in itertools.product(*(range(0, n, c) for n, c in zip(shape, chunkshape, strict=True))):
        info = leaf.chunk_info(start)
        if info.offset is None:
            continue
        starts.append(start)
        offsets.append(int(info.offset))
        sizes.append(int(info.size))
        masks.append(int(info.filter_mask))
    return (
        np.asarray(starts, dtype=np.int64).reshape(-1, len(shape)),
        np.asarray(offsets, dtype=np.int64),
        np.asarray(sizes, dtype=np.int64),
        np.asarray(masks, dtype=np.uint32),
    )


def _fill_value(leaf: tables.Leaf, grid: tuple[int, ...], keys: np.ndarray | None) -> Any:
    """What a never-written chunk holds, or ``None`` if every chunk is stored.

    An array's atom carries HDF5's fill value (PyTables reads it into
    ``atom.dflt``).  A table's is not exposed: read one record of the first
    never-written chunk through HDF5 (every such chunk holds the same), in
    the file's own record layout where PyTables' is another (PyTables'
    read of such records may corrupt memory: :func:`other_record_layout`).
    """
    if keys is None:
        return None
    if not isinstance(leaf, tables.Table):
        return np.asarray(leaf.atom.dflt)
    present = np.zeros(int(np.prod(grid, dtype=np.int64)), dtype=bool)
    present[keys] = True
    missing = int(np.argmin(present))
    row = missing * int(leaf.chunkshape[0])
    in_file = other_record_layout(leaf)
    if in_file is not None:
        return read_rows(leaf, range(row, row + 1), in_file).reshape(())
    return leaf.read(row, row + 1).reshape(())


def _seams(offsets: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Running count of chunks that do not continue the one before (see :class:`ChunkIndex`)."""
    seam = np.zeros(offsets.size, dtype=np.int32)
    seam[1:] = (offsets[1:] != offsets[:-1] + sizes[:-1]) | (sizes[1:] != sizes[:-1])
    return np.cumsum(seam, dtype=np.int32)


def build_index(leaf: tables.Leaf) -> ChunkIndex:
    """Read the chunk index of an open chunked ``leaf`` in one pass.

    Call with the process lock held.  Uses ``H5Dchunk_iter`` where HDF5 has
    it, else ``chunk_info`` per chunk.

    Examples
    --------
    >>> import numpy as np, tables
    >>> with tables.open_file("example.h5", "w") as f:
    ...     x = f.create_carray("/", "x", atom=tables.Int8Atom(dflt=7), shape=(10,), chunkshape=(4,))
    ...     x[4:6] = 1
    ...     index = build_index(x)
    >>> index.keys.tolist(), index.fill.item()
    ([1], 7)
    """
    shape = tuple(int(n) for n in leaf.shape)
    chunkshape = tuple(int(c) for c in leaf.chunkshape)
    grid = _grid(shape, chunkshape)
    listed = _iterate_chunks(leaf)
    if listed is None or not _agrees_with_chunk_info(leaf, listed[0], listed[1]):
        listed = _lookup_each_chunk(leaf)
    starts, offsets, sizes, masks = listed
    inside = np.all((starts < np.asarray(shape, dtype=np.int64)) & (offsets[:, None] >= 0), axis=1)
    if not inside.all():  # chunks beyond the extent, or never allocated
        starts, offsets, sizes, masks = starts[inside], offsets[inside], sizes[inside], masks[inside]
    keys = ChunkIndex(chunkshape, grid, None, offsets, sizes, masks).numbers(starts)
    order = np.argsort(keys, kind="stable")
    if keys.size > 1 and np.any(keys[order][1:] == keys[order][:-1]):
        raise ValueError(f"{at_node(None, leaf._v_pathname)}: HDF5 lists a chunk twice")
    keys, offsets, sizes, masks = keys[order], offsets[order], sizes[order], masks[order]
    total = int(np.prod(grid, dtype=np.int64))
    if keys.size == total:  # every chunk stored (keys are then 0..total-1)
        return ChunkIndex(chunkshape, grid, None, offsets, sizes, masks, seams=_seams(offsets, sizes))
    return ChunkIndex(chunkshape, grid, keys, offsets, sizes, masks, fill=_fill_value(leaf, grid, keys))


# ---------------------------------------------------------------------------
# The cache


class _Cache:
    """Chunk indexes of this process, least recently used first.

    Invariants: ``entries`` maps (pid, path, node, fingerprint) to the
    :class:`ChunkIndex` read from that very file version, in this process;
    ``nbytes`` is the sum of their sizes, at most the configured bound after
    every insertion.  ``lock`` guards both (held for dict operations only,
    never during a build or any HDF5 call).  Builds themselves run under
    the process lock (:func:`dask_tables.registry.get_lock`), which makes
    one build per key: a thread that waited for it finds the index built.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.entries: collections.OrderedDict[tuple[Any, ...], ChunkIndex] = collections.OrderedDict()
        self.nbytes = 0

    def get(self, key: tuple[Any, ...]) -> ChunkIndex | None:
        with self.lock:
            index = self.entries.get(key)
            if index is not None:
                self.entries.move_to_end(key)
            return index

    def put(self, key: tuple[Any, ...], index: ChunkIndex, limit: int) -> None:
        size = index.nbytes
        with self.lock:
            old = self.entries.pop(key, None)
            if old is not None:
                self.nbytes -= old.nbytes
            if size > limit:
                return  # larger than the whole cache: used once, not kept
            self.entries[key] = index
            self.nbytes += size
            while self.nbytes > limit:
                _, evicted = self.entries.popitem(last=False)
                self.nbytes -= evicted.nbytes


# The indexes of this process; replaced in a forked child (see _after_fork).
_cache = _Cache()


@after_fork_in_child
def _after_fork() -> None:
    # A forked child builds its own indexes (keys carry the pid too), and its
    # lock must not be one a parent thread held at fork time.
    global _cache, _warned_lock
    _cache = _Cache()
    _warned_lock = threading.Lock()  # _warned stays: the child is the same installation


def cache_limit() -> int:
    """The cache's bound in bytes: ``dask_tables.chunk-index-cache`` (default 256 MiB).

    Examples
    --------
    >>> import dask
    >>> with dask.config.set({"dask_tables.chunk-index-cache": "1 MiB"}):
    ...     cache_limit()
    1048576
    """
    value = dask.config.get("dask_tables.chunk-index-cache", DEFAULT_CACHE_BYTES)
    return int(parse_bytes(value)) if isinstance(value, str) else int(value)


def cache_info() -> dict[str, int]:
    """Entries and bytes held by this process's chunk-index cache, and its bound.

    Examples
    --------
    >>> sorted(cache_info())
    ['entries', 'limit', 'nbytes']
    """
    cache = _cache
    with cache.lock:
        return {"entries": len(cache.entries), "nbytes": cache.nbytes, "limit": cache_limit()}


def clear_cache() -> None:
    """Forget every chunk index of this process.

    Examples
    --------
    >>> clear_cache()
    >>> cache_info()["entries"]
    0
    """
    cache = _cache
    with cache.lock:
        cache.entries.clear()
        cache.nbytes = 0


def chunk_index(path: str, node: str, fingerprint: Fingerprint) -> ChunkIndex:
    """The chunk index of ``node`` in the file ``path`` as fingerprinted: cached, or read once.

    A cached index is returned without any lock but the cache's own (no
    HDF5 call).  Otherwise the file is opened through the synchronized
    registry, under the process lock, checked unchanged, and the index read
    in one pass (:func:`build_index`); threads asking for the same index at
    once wait for that one build.

    Parameters
    ----------
    path, node : str
        The file and the node's path in it (a chunked dataset).
    fingerprint : ~dask_tables.hdf5.fingerprint.Fingerprint
        The file version the index must describe.

    Raises
    ------
    FileChangedError
        The file is no longer the fingerprinted one.
    """
    key = (os.getpid(), path, node, tuple(fingerprint))
    index = _cache.get(key)
    if index is not None:
        diagnostics.add(index_hits=1)
        return index
    with get_lock():
        index = _cache.get(key)  # built by another thread while this one waited
        if index is not None:
            diagnostics.add(index_hits=1)
            return index
        started = time.perf_counter()
        check_unchanged(path, node, fingerprint)
        with synchronized_file(path, "r") as h5:
            index = build_index(h5.get_node(node))
        check_unchanged(path, node, fingerprint)
        diagnostics.add(
            index_builds=1, index_chunks=len(index), index_build_seconds=time.perf_counter() - started
        )
        _cache.put(key, index, cache_limit())
    return index
