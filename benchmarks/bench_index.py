"""Benchmark: the chunk index, the lock share and the cost of a task (issue 10, parts 1, 3, 4).

Three cases, each against an anchor measured in the same run:

* ``many``: a 1-D float32 EArray of ``--chunks`` chunks of 64 values, written
  by appends: ``from_tables`` build + ``sum()`` (the index built from
  nothing) against one serial PyTables read;
* ``lock``: a 1-D float64 EArray of ``--size-mib`` MiB with PyTables'
  default chunkshape (``expectedrows=2**26``), uncompressed: the share of
  ``mean()``'s wall time the process lock is held, first compute and steady
  state (from :mod:`dask_tables.diagnostics`), and the ratio to a serial loop;
* ``tasks``: 1,000 tasks over 10,000 uncompressed chunks of 40 kB: seconds
  per task of ``sum()`` against h5py + ``da.from_array(lock=True)`` and
  ``da.ones`` (dask's own floor), synchronous and on threads.

Run: ``python benchmarks/bench_index.py`` (options: ``--dir``, ``--chunks``,
``--size-mib``, ``--cases``, ``--repeat``).  One process, best of
``--repeat`` after a warm-up.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

import dask.array as da
import numpy as np
import tables

import dask_tables
from dask_tables import diagnostics
from dask_tables.hdf5 import chunkindex
from dask_tables.timing import best_of


def many_chunks(directory: str, chunks: int, repeat: int) -> None:
    path = os.path.join(directory, f"many-{chunks}.h5")
    if not os.path.exists(path):
        with tables.open_file(path, "w") as f:
            e = f.create_earray("/", "e", atom=tables.Float32Atom(), shape=(0,), chunkshape=(64,))
            for start in range(0, chunks * 64, 64_000):
                e.append(np.arange(start, min(start + 64_000, chunks * 64), dtype="f4"))

    def serial() -> float:
        with tables.open_file(path) as f:
            return float(f.root.e.read().sum(dtype="f8"))

    def ours() -> float:
        chunkindex.clear_cache()
        return float(dask_tables.from_tables(path, "/e").sum(dtype="f8").compute())

    assert serial() == ours()
    (t_serial, _), (t_ours, _) = best_of(repeat, serial, warm_up=False), best_of(repeat, ours, warm_up=False)
    with diagnostics.collect() as stats:
        ours()
    print(
        f"many: {chunks:,} chunks of 64 float32: serial read {t_serial:.3f} s, from_tables build + sum "
        f"{t_ours:.3f} s: {t_serial / t_ours:.2f}x (index built in {stats['index_build_seconds']:.3f} s, "
        f"{chunkindex.cache_info()['nbytes'] / 2**20:.1f} MiB)"
    )


def lock_share(directory: str, size_mib: int, repeat: int) -> None:
    path = os.path.join(directory, f"default-{size_mib}.h5")
    n = size_mib * 2**20 // 8
    if not os.path.exists(path):
        with tables.open_file(path, "w") as f:
            e = f.create_earray("/", "e", atom=tables.Float64Atom(), shape=(0,), expectedrows=2**26)
            for start in range(0, n, 2**22):
                e.append(np.arange(start, min(start + 2**22, n), dtype="f8"))

    def serial() -> float:
        with tables.open_file(path) as f:
            return sum(float(f.root.e[s : s + 2**24].sum()) for s in range(0, n, 2**24)) / n

    t_serial, _ = best_of(repeat, serial)
    for scheduler in ("synchronous", "threads"):
        chunkindex.clear_cache()
        x = dask_tables.from_tables(path, "/e")
        with diagnostics.collect() as first:
            x.mean().compute(scheduler=scheduler)
        runs = []
        for _ in range(repeat):
            with diagnostics.collect() as steady:
                x.mean().compute(scheduler=scheduler)
            runs.append(steady)
        fastest = min(runs, key=lambda r: r["wall_seconds"])
        print(
            f"lock: {size_mib} MiB uncompressed EArray, default chunks, mean(), {scheduler}: lock held "
            f"{first['lock_share']:.2%} of the first compute, {fastest['lock_share']:.2%} in steady state "
            f"({fastest['lock_acquisitions']} acquisitions); {t_serial / fastest['wall_seconds']:.2f}x the serial loop"
        )


def per_task(directory: str, repeat: int) -> None:
    import h5py

    path = os.path.join(directory, "tasks.h5")
    n = 50_000_000
    if not os.path.exists(path):
        with tables.open_file(path, "w") as f:
            c = f.create_carray("/", "x", atom=tables.Float64Atom(), shape=(n,), chunkshape=(5000,))
            for start in range(0, n, 5_000_000):
                c[start : start + 5_000_000] = np.arange(start, start + 5_000_000, dtype="f8")
    ours = dask_tables.from_tables(path, "/x", chunks=50_000)
    with h5py.File(path, "r") as f:
        theirs = da.from_array(f["x"], chunks=50_000, lock=True)
        ones = da.ones(n, chunks=50_000)
        for scheduler in ("synchronous", "threads"):
            figures = []
            for array in (ours, theirs, ones):
                seconds, _ = best_of(repeat, lambda a=array, s=scheduler: a.sum().compute(scheduler=s))
                figures.append(seconds / array.numblocks[0] * 1e3)
            print(
                f"tasks: 1,000 tasks over 10,000 chunks of 40 kB, {scheduler}: from_tables {figures[0]:.2f} ms "
                f"a task, h5py + from_array(lock=True) {figures[1]:.2f}, da.ones {figures[2]:.2f}"
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", default=None, help="folder for the files (default: a temporary one)")
    parser.add_argument("--chunks", type=int, default=100_000, help="chunks of the 'many' case")
    parser.add_argument("--size-mib", type=int, default=1024, help="size of the 'lock' case's array")
    parser.add_argument("--cases", default="many,lock,tasks")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch:
        directory = args.dir or scratch
        cases = args.cases.split(",")
        if "many" in cases:
            many_chunks(directory, args.chunks, args.repeat)
        if "lock" in cases:
            lock_share(directory, args.size_mib, args.repeat)
        if "tasks" in cases:
            per_task(directory, args.repeat)
    return 0


if __name__ == "__main__":
    sys.exit(main())
