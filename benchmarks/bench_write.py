"""Benchmark: writing with ``to_tables`` against the tools a user would otherwise pick.

For each case (a float64 array of ``--size-mib`` MiB, 1024 columns, in dask
blocks of 16 MiB, HDF5 chunks of 128 x 1024 (1 MiB): uncompressed,
zlib level 1 + shuffle, blosc2:lz4 level 5 + shuffle) it times writing the
same in-memory blocks into a new HDF5 file, in the same run, with:

The dask methods get the same dask array (``da.from_array`` of the data in
16 MiB blocks, made before the clock starts: making it copies the blocks);
the serial loop gets the same blocks as numpy slices.

* ``serial``: a plain PyTables loop writing each block into a ``CArray``
  with the same filters and chunk shape (the baseline of ``vs serial``);
* ``to_tables``: ``dask_tables.to_tables(x, path, "/x", ...)`` on dask's
  threads (a new file: built aside, then ``os.replace``);
* ``to_tables-existing``: the same into an existing file (blocks staged in
  sidecar files, then copied in by the final step);
* ``to_hdf5``: ``dask.array.to_hdf5`` (h5py, dask's ``store`` with its
  lock), same chunk shape and filters (``hdf5plugin`` for Blosc2).

Each method runs in its own process (warm-up, then the best of
``--repeat``); every file written is read back and compared with the data.
Prints GB/s (of the data written) and ratios to the serial loop and to
``to_hdf5``, checks the issue's targets, writes JSON.

Run: ``python benchmarks/bench_write.py`` (options: ``--size-mib``,
``--repeat``, ``--cases``, ``--methods``, ``--dir``, ``--json``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import tables
from harness import in_child, machine

COLUMNS = 1024
CHUNK_ROWS = 128
BLOCK_ROWS = 2048  # 16 MiB dask blocks
CASES = {
    "uncompressed": None,
    "zlib": tables.Filters(complevel=1, complib="zlib", shuffle=True),
    "blosc2": tables.Filters(complevel=5, complib="blosc2:lz4", shuffle=True),
}
METHODS = ["serial", "to_tables", "to_tables-existing", "to_hdf5"]
TARGETS = {  # case -> (method, anchor, minimum ratio)
    "zlib": ("to_tables", "serial", 1.7),
    "uncompressed": ("to_tables", "to_hdf5", 1.0),
}


def make_data(size_mib: int) -> np.ndarray:
    rows = max(1, size_mib * 2**20 // (8 * COLUMNS))
    rng = np.random.default_rng(0)
    # a rounded random walk: compresses like measured data, not like noise
    return np.round(rng.normal(size=(rows, COLUMNS)).cumsum(axis=1), 2)


# ---------------------------------------------------------------- methods (run in a child process)


def serial(data: np.ndarray, x: Any, path: Path, case: str, workers: int) -> None:
    with tables.open_file(path, "w") as f:
        x = f.create_carray(
            "/",
            "x",
            atom=tables.Float64Atom(),
            shape=data.shape,
            chunkshape=(CHUNK_ROWS, COLUMNS),
            filters=CASES[case],
        )
        for start in range(0, len(data), BLOCK_ROWS):
            x[start : start + BLOCK_ROWS] = data[start : start + BLOCK_ROWS]


def _dask(data: np.ndarray):
    import dask.array as da

    # name=False: no hashing of the data (a computed array is not hashed either)
    return da.from_array(data, chunks=(BLOCK_ROWS, COLUMNS), name=False)


def to_tables(data: np.ndarray, x: Any, path: Path, case: str, workers: int) -> None:
    import dask

    import dask_tables

    with dask.config.set(scheduler="threads", num_workers=workers):
        dask_tables.to_tables(x, path, "/x", filters=CASES[case], chunkshape=(CHUNK_ROWS, COLUMNS))


def to_tables_existing(data: np.ndarray, x: Any, path: Path, case: str, workers: int) -> None:
    with tables.open_file(path, "w") as f:
        f.create_array("/", "other", obj=np.arange(10))
    to_tables(data, x, path, case, workers)


def to_hdf5(data: np.ndarray, x: Any, path: Path, case: str, workers: int) -> None:
    import dask
    import dask.array as da

    kwargs: dict = {}
    if case == "zlib":
        kwargs = {"compression": "gzip", "compression_opts": 1, "shuffle": True}
    elif case == "blosc2":
        import hdf5plugin

        kwargs = dict(hdf5plugin.Blosc2(cname="lz4", clevel=5, filters=hdf5plugin.Blosc2.SHUFFLE))
    with dask.config.set(scheduler="threads", num_workers=workers):
        da.to_hdf5(path, "/x", x, chunks=(CHUNK_ROWS, COLUMNS), **kwargs)


RUNNERS = {
    "serial": serial,
    "to_tables": to_tables,
    "to_tables-existing": to_tables_existing,
    "to_hdf5": to_hdf5,
}


def check(path: Path, data: np.ndarray, case: str) -> None:
    """The file holds the data (read back by PyTables, block by block)."""
    if case == "blosc2":
        import hdf5plugin  # noqa: F401 - PyTables reads Blosc2 itself; harmless otherwise
    with tables.open_file(path) as f:
        x = f.root.x
        assert x.shape == data.shape, (x.shape, data.shape)
        for start in range(0, len(data), BLOCK_ROWS * 4):
            if not np.array_equal(x[start : start + BLOCK_ROWS * 4], data[start : start + BLOCK_ROWS * 4]):
                raise SystemExit(f"{path}: rows from {start} differ from the data written")


def child(method: str, folder: str, case: str, workers: int, repeat: int, size_mib: int) -> None:
    data = make_data(size_mib)
    run = RUNNERS[method]
    best = float("inf")
    runs = []
    for attempt in range(repeat + 1):  # the first is a warm-up
        path = Path(folder) / f"{method}-{case}-{attempt}.h5"
        x = _dask(data)  # the array to write is given: making it (a copy of the blocks) is not timed
        start = time.perf_counter()
        run(data, x, path, case, workers)
        seconds = time.perf_counter() - start
        runs.append(seconds)
        if attempt:
            best = min(best, seconds)
        if attempt == repeat:
            check(path, data, case)
            file_bytes = path.stat().st_size
        path.unlink()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(
        json.dumps(
            {"seconds": best, "runs": runs, "peak_rss": peak, "file_bytes": file_bytes, "nbytes": data.nbytes}
        )
    )


def measure(method: str, folder: str, case: str, workers: int, repeat: int, size_mib: int) -> dict:
    return in_child(__file__, method, folder, case, workers, repeat, size_mib, timeout=3600)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--size-mib", "--size", type=int, default=1024, help="MiB of data per case (default 1024)"
    )
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--cases", default=",".join(CASES), help="comma-separated, from: " + ", ".join(CASES))
    parser.add_argument(
        "--methods", default=",".join(METHODS), help="comma-separated, from: " + ", ".join(METHODS)
    )
    parser.add_argument("--dir", default=None, help="folder for the files (default: a temporary one)")
    parser.add_argument("--json", default=None, help="write the figures here")
    args = parser.parse_args(argv)

    results: dict = {
        "machine": machine(),
        "size_mib": args.size_mib,
        "workers": args.workers,
        "cases": {},
    }
    methods = args.methods.split(",")
    with tempfile.TemporaryDirectory(dir=args.dir) as folder:
        for case in args.cases.split(","):
            rows = {m: measure(m, folder, case, args.workers, args.repeat, args.size_mib) for m in methods}
            nbytes = next((r["nbytes"] for r in rows.values() if "nbytes" in r), 0)
            anchors = {a: rows.get(a, {}).get("seconds") for a in ("serial", "to_hdf5")}
            for row in rows.values():
                if "seconds" in row:
                    row["GB/s"] = row["nbytes"] / row["seconds"] / 1e9
                    for anchor, seconds in anchors.items():
                        if seconds:
                            row[f"vs {anchor}"] = seconds / row["seconds"]
            results["cases"][case] = {"nbytes": nbytes, "methods": rows}
            print(f"\n{case}: {nbytes / 2**30:.2f} GiB of data")
            print(
                f"  {'method':<20} {'GB/s':>7} {'vs serial':>10} {'vs to_hdf5':>11} {'file':>9} {'peak RSS':>9}"
            )
            for name, row in rows.items():
                if "error" in row:
                    print(f"  {name:<20} failed: {row['error']}")
                    continue
                ratios = [f"{row[k]:.2f}x" if k in row else "" for k in ("vs serial", "vs to_hdf5")]
                print(
                    f"  {name:<20} {row['GB/s']:7.2f} {ratios[0]:>10} {ratios[1]:>11} "
                    f"{row['file_bytes'] / 2**20:6.0f} MiB {row['peak_rss'] / 2**20:5.0f} MiB"
                )
            if case in TARGETS:
                method, anchor, want = TARGETS[case]
                got = rows.get(method, {}).get(f"vs {anchor}")
                if got is not None:
                    verdict = "met" if got >= want else "NOT met"
                    print(f"  target: {method} >= {want}x {anchor}: {got:.2f}x {verdict}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        method, folder, case, workers, repeat, size_mib = sys.argv[2:8]
        child(method, folder, case, int(workers), int(repeat), int(size_mib))
    else:
        main()
