"""Benchmark: ``from_tables(...).mean()`` against the tools a user would otherwise pick.

For each case (a ~1 GiB float64 CArray, uncompressed by default) it times, in
the same run and on the same file:

* ``serial``: a plain PyTables loop over the same row blocks as the dask
  array (the baseline of every ratio);
* ``from_tables``: ``from_tables(path, node).mean().compute(scheduler="threads")``;
* ``h5py+from_array``: ``dask.array.from_array(h5py_dataset, lock=True).mean()``
  on threads, with the same chunks;
* ``page-cache``: ``os.preadv`` of the file's bytes into reused buffers plus
  ``np.sum``, on the same number of threads: the limit any reader of this
  file faces once it is in the page cache.

It prints GB/s (of array data) and ratios to the serial loop, the best of
``--repeat`` runs, and writes the figures as JSON.  Peak RSS is not isolated
per method (one process); run a method alone for that.

Run: ``python benchmarks/bench_mean.py [--size-mib 1024] [--repeat 3] [--json out.json]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import dask
import dask.array as da
import numpy as np
import tables

import dask_tables

COLUMNS = 1024
NODE = "/x"


def write_case(path: Path, size_mib: int, filters: tables.Filters | None) -> None:
    rows = size_mib * 2**20 // (8 * COLUMNS)
    rng = np.random.default_rng(0)
    with tables.open_file(path, "w") as f:
        x = f.create_carray(
            "/",
            NODE[1:],
            atom=tables.Float64Atom(),
            shape=(rows, COLUMNS),
            chunkshape=(128, COLUMNS),
            filters=filters,
        )
        for start in range(0, rows, 4096):
            stop = min(start + 4096, rows)
            x[start:stop] = rng.random((stop - start, COLUMNS))


def serial_loop(path: Path, rows_per_block: int) -> float:
    total = 0.0
    with tables.open_file(path) as f:
        x = f.get_node(NODE)
        for start in range(0, x.shape[0], rows_per_block):
            total += float(x[start : start + rows_per_block].sum())
        return total / (x.shape[0] * x.shape[1])


def with_from_tables(path: Path, workers: int) -> float:
    x = dask_tables.from_tables(path, NODE)
    return float(x.mean().compute(scheduler="threads", num_workers=workers))


def with_h5py(path: Path, chunks: tuple[tuple[int, ...], ...], workers: int) -> float:
    import h5py

    with h5py.File(path, "r") as f:
        x = da.from_array(f[NODE], chunks=chunks, lock=True)
        return float(x.mean().compute(scheduler="threads", num_workers=workers))


def page_cache_limit(path: Path, workers: int, block: int = 8 * 2**20) -> float:
    size = os.path.getsize(path)
    fd = os.open(path, os.O_RDONLY)
    try:
        per_thread = threading.local()

        def read(offset: int) -> float:
            if not hasattr(per_thread, "buffer"):
                per_thread.buffer = np.empty(block // 8, dtype=np.float64)
            n = os.preadv(fd, [per_thread.buffer], offset)
            return float(per_thread.buffer[: n // 8].sum())

        with ThreadPoolExecutor(workers) as pool:
            return sum(pool.map(read, range(0, size, block)))
    finally:
        os.close(fd)


def best_of(repeat: int, func, *args) -> tuple[float, float]:
    times = []
    result = None
    for _ in range(repeat):
        start = time.perf_counter()
        result = func(*args)
        times.append(time.perf_counter() - start)
    return min(times), result


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--dir", default=None, help="folder for the data files (default: a temporary one)")
    parser.add_argument("--json", default=None, help="write the figures here")
    args = parser.parse_args(argv)

    cases = {"uncompressed": None}
    results: dict = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "tables": tables.__version__,
        },
        "size_mib": args.size_mib,
        "workers": args.workers,
        "cases": {},
    }
    with tempfile.TemporaryDirectory(dir=args.dir) as folder:
        for case, filters in cases.items():
            path = Path(folder) / f"{case}.h5"
            write_case(path, args.size_mib, filters)
            x = dask_tables.from_tables(path, NODE)
            nbytes = x.nbytes
            serial_loop(path, x.chunks[0][0])  # warm the page cache
            timings = {
                "serial": best_of(args.repeat, serial_loop, path, x.chunks[0][0]),
                "from_tables": best_of(args.repeat, with_from_tables, path, args.workers),
                "h5py+from_array": best_of(args.repeat, with_h5py, path, x.chunks, args.workers),
                "page-cache": best_of(args.repeat, page_cache_limit, path, args.workers),
            }
            means = [timings[k][1] for k in ("serial", "from_tables", "h5py+from_array")]
            assert np.allclose(means, means[0], rtol=1e-9), means
            serial_seconds = timings["serial"][0]
            rows = {
                name: {
                    "seconds": seconds,
                    "GB/s": nbytes / seconds / 1e9,
                    "vs serial": serial_seconds / seconds,
                }
                for name, (seconds, _) in timings.items()
            }
            results["cases"][case] = {
                "nbytes": nbytes,
                "chunks": [list(c[:1]) for c in x.chunks],
                "methods": rows,
            }
            print(f"\n{case}: {nbytes / 2**30:.2f} GiB, dask blocks {x.chunksize}, {args.workers} threads")
            print(f"  {'method':<18} {'seconds':>8} {'GB/s':>7} {'vs serial':>10}")
            for name, row in rows.items():
                print(f"  {name:<18} {row['seconds']:8.3f} {row['GB/s']:7.2f} {row['vs serial']:9.2f}x")
            limit = rows["page-cache"]["GB/s"]
            print(f"  from_tables reaches {rows['from_tables']['GB/s'] / limit:.0%} of the page-cache limit")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    with dask.config.set({"array.slicing.split_large_chunks": False}):
        main()
