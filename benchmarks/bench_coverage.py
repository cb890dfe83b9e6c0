"""Benchmark: the filters PyTables cannot decode (hdf5plugin's, szip), read by from_tables on threads.

For each filter it writes one (N, 1024, 256) float32 array (``--mib``, 256
MiB by default) with h5py and hdf5plugin, in chunks of (1, 1024, 256) = 1
MiB, values rounded to one decimal (they compress about 2x), then times
``from_tables(...).sum()`` on dask's threads (2 workers) against the
synchronous scheduler, best of ``--repeat``, after one warm-up read (page
cache, chunk index).  Also h5py's own serial read (hdf5plugin's compiled
filters) as the anchor: what those files' users had.

The ratio threads(2)/sync is the speed-up of two threads: near 2.0 the
decoders really run two chunks at once (the target is 1.8); on a machine
loaded by other work it is lower, so the load average is printed first.
It is measured twice: with dask chunks of 8 planes (8 MiB, 32 tasks) and
with ``from_tables``' default chunks (what a user gets without ``chunks=``).

The anchor for that ratio is the machine's own (``plain threads``): the
same stored chunks, read into memory beforehand, decoded by the same
decoders (:mod:`dask_tables.filters`) into a reused buffer and summed, by
one and by two plain threads, no dask and no file.  Two cores that share
memory bandwidth cannot speed a decoder up more than this, so it is the
ceiling of the ratio above; the gap between the two is ours and dask's.

Run: ``PYTHONPATH=. python benchmarks/bench_coverage.py`` (options:
``--mib``, ``--repeat``, ``--filters``, ``--dir``).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

import dask_tables


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
            dset = f.create_dataset(
                name, shape=(planes, 1024, 256), dtype="f4", chunks=(1, 1024, 256), **kwargs
            )
            for i in range(0, planes, 16):
                n = min(16, planes - i)
                dset[i : i + n] = (rng.normal(size=(n, 1024, 256)) * 100).astype("f4").round(1)
    return planes * 1024 * 256 * 4


def best(run, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def plain_threads(path: Path, name: str, repeat: int) -> float:
    """The machine's ceiling of threads(2)/sync for this filter: plain threads decoding the stored chunks."""
    from concurrent.futures import ThreadPoolExecutor

    import h5py
    import tables

    from dask_tables.array.direct import chunk_decoder
    from dask_tables.array.verdict import direct_storage

    with tables.open_file(path) as f:
        storage = direct_storage(f.get_node("/" + name))
    if storage is None:
        raise RuntimeError(f"{name}: not read on the direct path")
    decoder = chunk_decoder(storage)
    with h5py.File(path, "r") as f:
        dset = f[name]
        stored = [dset.id.read_direct_chunk((i, 0, 0)) for i in range(dset.shape[0])]

    def decode(chunks: list[tuple[int, bytes]]) -> None:
        out = np.empty(storage.chunk_nbytes, dtype=np.uint8)
        for mask, raw in chunks:
            decoder.decode(raw, mask, out=out)
            out.view(np.float32).sum()

    one = best(lambda: decode(stored), repeat)
    with ThreadPoolExecutor(2) as pool:
        two = best(lambda: list(pool.map(decode, [stored[0::2], stored[1::2]])), repeat)
    return one / two


def threads_over_sync(x: Any, repeat: int) -> tuple[float, float]:
    """Seconds of ``x.sum()`` on the synchronous scheduler and on 2 threads, best of ``repeat``."""
    x.sum().compute(scheduler="sync")  # warm-up: page cache, chunk index
    sync = best(lambda: x.sum().compute(scheduler="sync"), repeat)
    threads = best(lambda: x.sum().compute(scheduler="threads", num_workers=2), repeat)
    return sync, threads


def bench(path: Path, name: str, nbytes: int, repeat: int) -> dict[str, float]:
    import h5py
    import hdf5plugin  # noqa: F401 - h5py's HDF5 decodes the plugin filters

    sync, threads = threads_over_sync(dask_tables.from_tables(path, name, chunks=(8, 1024, 256)), repeat)
    default = dask_tables.from_tables(path, name)
    default_sync, default_threads = threads_over_sync(default, repeat)

    def h5py_read():
        with h5py.File(path, "r") as f:
            dset = f[name]
            for i in range(0, dset.shape[0], 8):
                dset[i : i + 8].sum()

    serial = best(h5py_read, repeat)
    return {
        "sync": nbytes / sync / 1e9,
        "threads": nbytes / threads / 1e9,
        "default": default_sync / default_threads,
        "default planes": default.chunksize[0],
        "plain threads": plain_threads(path, name, repeat),
        "h5py": nbytes / serial / 1e9,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=256, help="array size per filter (MiB)")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--filters", default="", help="comma-separated subset of the filters")
    parser.add_argument(
        "--dir", default=None, help="where to write the file (default: a temporary directory)"
    )
    args = parser.parse_args(argv)

    filters = plugin_filters()
    if args.filters:
        filters = {k: v for k, v in filters.items() if k in args.filters.split(",")}
    print(f"load average: {' '.join(f'{v:.2f}' for v in os.getloadavg())} on {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        path = Path(tmp) / "coverage.h5"
        nbytes = write(path, args.mib, filters)
        print(
            f"{'filter':20s} {'h5py serial':>12s} {'sync':>10s} {'threads(2)':>11s} {'threads/sync':>13s} "
            f"{'default chunks':>15s} {'plain threads':>14s}"
        )
        for name in filters:
            r = bench(path, name, nbytes, args.repeat)
            print(
                f"{name:20s} {r['h5py']:9.2f} GB/s {r['sync']:7.2f} GB/s {r['threads']:8.2f} GB/s "
                f"{r['threads'] / r['sync']:12.2f}x {r['default']:9.2f}x ({r['default planes']:3d}) "
                f"{r['plain threads']:13.2f}x",
                flush=True,
            )


if __name__ == "__main__":
    main()
