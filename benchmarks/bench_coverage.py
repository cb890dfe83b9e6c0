"""Benchmark: the filters PyTables cannot decode (hdf5plugin's, szip), read by from_tables on threads.

For each filter it writes one (N, 1024, 256) float32 array (``--mib``, 256
MiB by default) with h5py and hdf5plugin, in chunks of (1, 1024, 256) = 1
MiB, values rounded to one decimal (they compress about 2x; for szip, which
stores such chunks as they are, int32: a slope plus noise), then times
``from_tables(...).sum()`` on dask's threads (2 workers) against the
synchronous scheduler, best of ``--repeat``, after one warm-up read (page
cache, chunk index).  Also h5py's own serial read (hdf5plugin's compiled
filters) as the anchor: what those files' users had.

The ratio threads(2)/sync is the speed-up of two threads: near 2.0 the
decoders really run two chunks at once (the target is 1.8); on a machine
loaded by other work it is lower, so the load average is printed first.
It is measured twice: with dask chunks of 8 planes (8 MiB, 32 tasks) and
with ``from_tables``' default chunks (what a user gets without ``chunks=``).

Three more ratios tell where a shortfall comes from.  ``dask ceiling``:
the same ``x.sum()`` graph, its tasks sleeping as long as this filter's
take on the synchronous scheduler (no CPU, no memory used): the speed-up
dask's scheduler leaves at that task size (a little more, as that time
includes the scheduler's own share).  Then 2 plain threads against
1, no dask:

* ``without dask``: from_tables' own read (its ``TablesSource`` slabs of 8
  planes, each summed), on a plain thread pool;
* ``ceiling``: the same work with neither dask nor from_tables: per task,
  ``os.preadv`` of each chunk's stored bytes (located by h5py), the same
  decoder (:mod:`dask_tables.filters`) into a fresh task array, its sum.
  Two cores that share memory bandwidth cannot do better.

``without dask`` near ``ceiling`` means the read path scales as far as the
machine does; threads/sync is then bounded by both ceilings.  A first line
gives the most two threads get from this machine on pure computation (zlib
inflating 64 KiB held in cache, no memory traffic, no dask).

Run: ``PYTHONPATH=. python benchmarks/bench_coverage.py`` (options:
``--mib``, ``--repeat``, ``--filters``, ``--dir``).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

import dask_tables
from dask_tables.timing import best_of


def plugin_filters() -> dict[str, dict]:
    """name -> h5py dataset keywords."""
    import h5py
    import hdf5plugin

    filters = {
        "bitshuffle+lz4": dict(hdf5plugin.Bitshuffle(nelems=0, cname="lz4")),
        "bitshuffle+zstd": dict(hdf5plugin.Bitshuffle(nelems=0, cname="zstd")),
        "lz4": dict(hdf5plugin.LZ4()),
        "zstd": dict(hdf5plugin.Zstd()),
        "blosc(32001):lz4": dict(hdf5plugin.Blosc(cname="lz4", clevel=5, shuffle=hdf5plugin.Blosc.SHUFFLE)),
        "blosc2(32026):lz4": dict(
            hdf5plugin.Blosc2(cname="lz4", clevel=5, filters=hdf5plugin.Blosc2.SHUFFLE)
        ),
    }
    if h5py.h5z.filter_avail(h5py.h5z.FILTER_SZIP):
        filters["szip"] = {"compression": "szip"}
    return filters


def write(path: Path, mib: int, filters: dict[str, dict]) -> int:
    """One dataset per filter; returns the array's bytes."""
    import h5py

    planes = max(1, mib)
    rng = np.random.default_rng(0)
    with h5py.File(path, "w") as f:
        for name, kwargs in filters.items():
            dtype = "i4" if name == "szip" else "f4"
            dset = f.create_dataset(
                name, shape=(planes, 1024, 256), dtype=dtype, chunks=(1, 1024, 256), **kwargs
            )
            for i in range(0, planes, 16):
                n = min(16, planes - i)
                dset[i : i + n] = plane_values(rng, n, dtype)
            if dset.id.get_chunk_info(0).filter_mask:
                raise RuntimeError(f"{name}: HDF5 stored the chunks unfiltered (the filter gave up)")
    return planes * 1024 * 256 * 4


def plane_values(rng: np.random.Generator, n: int, dtype: str) -> np.ndarray:
    """``n`` planes of values: noisy floats with one decimal, or (for szip, which gives up on
    those and stores the chunks as they are) a slope of integers plus noise, which it codes."""
    if dtype == "f4":
        return (rng.normal(size=(n, 1024, 256)) * 100).astype("f4").round(1)
    slope = np.arange(1024 * 256, dtype=np.int32).reshape(1024, 256) % 977
    return (slope + rng.integers(0, 8, size=(n, 1024, 256))).astype(dtype)


PLANES = 8  # dask chunks of 8 planes (8 MiB): 32 tasks on 256 MiB


def one_and_two_threads(task: Callable[[Any], Any], items: list[Any], repeat: int) -> float:
    """Speed-up of ``task`` over ``items`` on 2 plain threads against 1 (best of ``repeat`` each)."""
    from concurrent.futures import ThreadPoolExecutor

    for item in items:  # warm-up
        task(item)
    one, _ = best_of(repeat, lambda: [task(item) for item in items], warm_up=False)
    with ThreadPoolExecutor(2) as pool:
        two, _ = best_of(repeat, lambda: list(pool.map(task, items)), warm_up=False)
    return one / two


def without_dask(path: Path, name: str, repeat: int) -> float:
    """threads(2)/sync of from_tables' own reads, with no dask: its source's slabs summed on a plain pool."""
    source = dask_tables.TablesSource.open(path, name)
    slabs = [(slice(i, i + PLANES), slice(None), slice(None)) for i in range(0, source.shape[0], PLANES)]
    return one_and_two_threads(lambda slab: source[slab].sum(), slabs, repeat)


def ceiling(path: Path, name: str, repeat: int) -> float:
    """The machine's threads(2)/sync for this filter: the same work with neither dask nor from_tables.

    Per task of ``PLANES`` chunks: ``os.preadv`` each chunk's stored bytes
    (located by h5py) into a reused buffer, decode it with the same decoder
    into a fresh task array (a chunk stored as it is: read straight there),
    sum the array.
    """
    import h5py
    import tables

    from dask_tables.array.direct import chunk_decoder
    from dask_tables.array.verdict import direct_storage

    with tables.open_file(path) as f:
        storage = direct_storage(f.get_node("/" + name))
    if storage is None:
        raise RuntimeError(f"{name}: not read on the direct path")
    decoder, nbytes = chunk_decoder(storage), storage.chunk_nbytes
    with h5py.File(path, "r") as f:
        found = [f[name].id.get_chunk_info(i) for i in range(f[name].id.get_num_chunks())]
    chunks = [(c.byte_offset, c.size, c.filter_mask) for c in found]

    def task(run: list[tuple[int, int, int]]) -> float:
        fd = os.open(path, os.O_RDONLY)
        try:
            raw, out = np.empty(2 * nbytes, dtype=np.uint8), np.empty(len(run) * nbytes, dtype=np.uint8)
            for k, (offset, size, mask) in enumerate(run):
                target = out[k * nbytes : (k + 1) * nbytes]
                if size == nbytes and mask == (1 << len(storage.filters)) - 1:  # stored as it is
                    os.preadv(fd, [target], offset)
                    continue
                os.preadv(fd, [raw[:size]], offset)
                decoder.decode(raw[:size], mask, out=target)
        finally:
            os.close(fd)
        return out.view(storage.dtype_on_disk).sum()

    return one_and_two_threads(task, [chunks[i : i + PLANES] for i in range(0, len(chunks), PLANES)], repeat)


def compute_ceiling(repeat: int) -> float:
    """Two plain threads against one on pure computation (zlib inflating 64 KiB held in cache): the
    most any decoder can get from this machine's two cores, with no memory traffic and no dask."""
    import zlib

    stored = zlib.compress(np.random.default_rng(0).integers(0, 50, 64 * 2**10, dtype=np.uint8).tobytes(), 1)
    return one_and_two_threads(lambda n: [zlib.decompress(stored) for _ in range(n)], [500] * 8, repeat)


def dask_ceiling(task_seconds: float, tasks: int, repeat: int) -> float:
    """dask's own threads(2)/sync for ``x.sum()`` over ``tasks`` chunks whose tasks take ``task_seconds``.

    Each task sleeps (the GIL released, no CPU or memory used): what is
    left of the speed-up is the cost of dask's scheduler at that task size.
    """
    import dask.array as da

    def block(chunk: np.ndarray) -> np.ndarray:
        time.sleep(task_seconds)
        return np.ones(chunk.shape, dtype=np.float32)

    blocks = da.zeros((tasks * PLANES, 1, 1), chunks=(PLANES, 1, 1), dtype=np.float32)
    x = blocks.map_blocks(block, dtype=np.float32)
    sync, threads = threads_over_sync(x, repeat)
    return sync / threads


def threads_over_sync(x: Any, repeat: int) -> tuple[float, float]:
    """Seconds of ``x.sum()`` on the synchronous scheduler and on 2 threads, best of ``repeat``."""
    x.sum().compute(scheduler="sync")  # warm-up: page cache, chunk index
    sync, _ = best_of(repeat, lambda: x.sum().compute(scheduler="sync"), warm_up=False)
    threads, _ = best_of(repeat, lambda: x.sum().compute(scheduler="threads", num_workers=2), warm_up=False)
    return sync, threads


def bench(path: Path, name: str, nbytes: int, repeat: int) -> dict[str, float]:
    import h5py
    import hdf5plugin  # noqa: F401 - h5py's HDF5 decodes the plugin filters

    x = dask_tables.from_tables(path, name, chunks=(PLANES, 1024, 256))
    sync, threads = threads_over_sync(x, repeat)
    tasks = x.numblocks[0]
    default = dask_tables.from_tables(path, name)
    default_sync, default_threads = threads_over_sync(default, repeat)

    def h5py_read():
        with h5py.File(path, "r") as f:
            dset = f[name]
            for i in range(0, dset.shape[0], 8):
                dset[i : i + 8].sum()

    serial, _ = best_of(repeat, h5py_read, warm_up=False)
    return {
        "sync": nbytes / sync / 1e9,
        "threads": nbytes / threads / 1e9,
        "default": default_sync / default_threads,
        "default planes": default.chunksize[0],
        "dask ceiling": dask_ceiling(sync / tasks, tasks, repeat),
        "without dask": without_dask(path, name, repeat),
        "ceiling": ceiling(path, name, repeat),
        "h5py": nbytes / serial / 1e9,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=256, help="array size per filter (MiB)")
    parser.add_argument("--repeat", type=int, default=9)
    parser.add_argument("--filters", default="", help="comma-separated subset of the filters")
    parser.add_argument(
        "--dir", default=None, help="where to write the file (default: a temporary directory)"
    )
    args = parser.parse_args(argv)

    filters = plugin_filters()
    if args.filters:
        filters = {k: v for k, v in filters.items() if k in args.filters.split(",")}
    print(f"load average: {' '.join(f'{v:.2f}' for v in os.getloadavg())} on {os.cpu_count()} cores")
    print(f"two threads on pure computation (zlib, in cache): {compute_ceiling(args.repeat):.2f}x one")
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        path = Path(tmp) / "coverage.h5"
        nbytes = write(path, args.mib, filters)
        print(
            f"{'filter':20s} {'h5py serial':>12s} {'sync':>10s} {'threads(2)':>11s} {'threads/sync':>13s} "
            f"{'default chunks':>15s} {'dask ceiling':>13s} {'without dask':>13s} {'ceiling':>8s}"
        )
        for name in filters:
            r = bench(path, name, nbytes, args.repeat)
            print(
                f"{name:20s} {r['h5py']:9.2f} GB/s {r['sync']:7.2f} GB/s {r['threads']:8.2f} GB/s "
                f"{r['threads'] / r['sync']:12.2f}x {r['default']:9.2f}x ({r['default planes']:3d}) "
                f"{r['dask ceiling']:12.2f}x {r['without dask']:12.2f}x {r['ceiling']:7.2f}x",
                flush=True,
            )


if __name__ == "__main__":
    main()
