"""Benchmark: how ``from_tables`` scales, with chunk count, cores, files and workers (issue 10).

Every figure is a ratio to an anchor timed in the same run, each scenario
in its own process (so each builds its chunk index cold, as a user's first
compute does):

* ``split-rows``: a (N, 1024) float64 array with (1024, 128) chunks (chunks
  that split rows), blosc2:lz4 and zlib-1, both with shuffle;
* ``default-earray``: 1-D float64 EArrays written by appends with PyTables'
  default chunk shape (``expectedrows=2**26``: 32768 values a chunk),
  uncompressed, zlib-1+shuffle and blosc2:lz4+shuffle;

  each timed as ``mean()`` with a serial PyTables loop over the same row
  blocks (the anchor), ``from_tables`` on ``threads`` and on
  ``synchronous``; printed: threads against serial, threads against
  synchronous, and the share of the synchronous run's time the process
  lock was held (from :mod:`dask_tables.diagnostics`, when present);
* ``cluster``: ``sum()`` of two zlib default-chunk EArray files on a
  ``LocalCluster`` of 2 processes x 1 thread against ``threads`` (2);
* ``many-chunks``: a 1-D float32 EArray of 100,000 chunks of 64 values:
  ``from_tables`` build + ``sum()`` against one PyTables ``read()``;
* ``task-cost``: 1,000 tasks over 10,000 uncompressed chunks of 40 kB:
  seconds per task, against h5py + ``dask.array.from_array(lock=True)``
  and ``dask.array.ones`` (dask's own floor);
* ``many-files``: ``sum()`` over ``--files`` one-block files against the
  same number of tasks over 10 files: seconds per task;
* ``validate``: building over 100 small files with ``validate=True``.

Run: ``python benchmarks/bench_scaling.py`` (``--size-mib``, ``--repeat``,
``--scenarios``, ``--files``, ``--dir``, ``--json``).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import tables
from harness import in_child, machine

from dask_tables.timing import best_of

ZLIB = tables.Filters(complevel=1, complib="zlib", shuffle=True)
BLOSC2 = tables.Filters(complevel=5, complib="blosc2:lz4", shuffle=True)
UNCOMPRESSED = None
SPLIT_ROWS = {"blosc2": BLOSC2, "zlib": ZLIB}
DEFAULT_EARRAY = {"uncompressed": UNCOMPRESSED, "zlib": ZLIB, "blosc2": BLOSC2}
SCENARIOS = ["split-rows", "default-earray", "cluster", "many-chunks", "task-cost", "many-files", "validate"]
TARGETS = {  # (scenario, case, figure) -> minimum, from the issue
    ("split-rows", "blosc2", "threads/serial"): 1.6,
    ("split-rows", "blosc2", "threads/sync"): 1.85,
    ("default-earray", "uncompressed", "threads/serial"): 1.2,
    ("default-earray", "blosc2", "threads/serial"): 1.6,
    ("default-earray", "zlib", "threads/serial"): 5.0,
    ("default-earray", "zlib", "threads/sync"): 1.85,
    ("cluster", "zlib", "cluster/threads"): 0.9,
    ("many-chunks", "float32", "vs one read"): 1.0,
}


# ---------------------------------------------------------------- data (written by the parent)


def rounded_walk(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """A rounded random walk: compresses like measured data, not like noise."""
    return np.round(rng.normal(size=shape).cumsum(axis=-1), 2)


def write_split_rows(path: Path, size_mib: int, filters: tables.Filters | None) -> None:
    rows = max(1024, size_mib * 2**20 // (8 * 1024) // 1024 * 1024)
    rng = np.random.default_rng(0)
    with tables.open_file(path, "w") as f:
        x = f.create_carray(
            "/", "x", atom=tables.Float64Atom(), shape=(rows, 1024), chunkshape=(1024, 128), filters=filters
        )
        for start in range(0, rows, 4096):
            stop = min(start + 4096, rows)
            x[start:stop] = rounded_walk(rng, (stop - start, 1024))


def write_default_earray(path: Path, size_mib: int, filters: tables.Filters | None) -> None:
    values = size_mib * 2**20 // 8
    rng = np.random.default_rng(1)
    with tables.open_file(path, "w") as f:
        e = f.create_earray(
            "/", "x", atom=tables.Float64Atom(), shape=(0,), filters=filters, expectedrows=2**26
        )
        for start in range(0, values, 2**20):
            e.append(rounded_walk(rng, (min(2**20, values - start),)))


def write_chunked_1d(path: Path, chunks: int, chunk: int, dtype: str) -> None:
    """A 1-D EArray of ``chunks`` chunks of ``chunk`` values, written by appends of whole blocks."""
    with tables.open_file(path, "w") as f:
        e = f.create_earray(
            "/", "x", atom=tables.Atom.from_dtype(np.dtype(dtype)), shape=(0,), chunkshape=(chunk,)
        )
        step = chunk * max(1, 2**22 // chunk)
        total = chunks * chunk
        for start in range(0, total, step):
            n = min(step, total - start)
            e.append((np.arange(start, start + n) % 1000).astype(dtype))


def write_small(path: Path, values: int, offset: int = 0) -> None:
    with tables.open_file(path, "w") as f:
        f.create_carray("/", "x", obj=np.arange(offset, offset + values, dtype="f8"), chunkshape=(values,))


# ---------------------------------------------------------------- measurements (in a child process)


def lock_held_share(run: Callable[[], Any]) -> float | None:
    """Seconds the process lock was held during ``run()``, over its wall time (``None`` without diagnostics)."""
    try:
        from dask_tables import diagnostics
    except ImportError:
        return None
    with diagnostics.collect() as counters:
        run()
    return counters["lock_share"]


def serial_mean(path: Path, blocks: tuple[int, ...]) -> float:
    total, count, start = 0.0, 0, 0
    with tables.open_file(path) as f:
        for n in blocks:
            block = f.root.x[start : start + n]
            total += float(block.sum())
            count += block.size
            start += n
    return total / count


def scenario_mean(path: Path, repeat: int) -> dict:
    import dask_tables

    x = dask_tables.from_tables(path, "/x")
    serial, expected = best_of(repeat, lambda: serial_mean(path, x.chunks[0]))
    threads, got_threads = best_of(repeat, lambda: float(x.mean().compute(scheduler="threads")))
    sync, got_sync = best_of(repeat, lambda: float(x.mean().compute(scheduler="synchronous")))
    assert np.isclose(got_threads, expected) and np.isclose(got_sync, expected), (
        expected,
        got_threads,
        got_sync,
    )
    return {
        "serial s": serial,
        "threads s": threads,
        "sync s": sync,
        "threads/serial": serial / threads,
        "threads/sync": sync / threads,
        "lock share (sync)": lock_held_share(lambda: x.mean().compute(scheduler="synchronous")),
        "GB/s (threads)": x.nbytes / threads / 1e9,
    }


def scenario_cluster(paths: list[Path], repeat: int) -> dict:
    import distributed

    import dask_tables

    x = dask_tables.from_tables([str(p) for p in paths], "/x")
    threads, expected = best_of(repeat, lambda: float(x.sum().compute(scheduler="threads", num_workers=2)))
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        on_cluster, got = best_of(repeat, lambda: float(client.compute(x.sum()).result()))
    assert np.isclose(got, expected)
    return {"threads s": threads, "cluster s": on_cluster, "cluster/threads": threads / on_cluster}


def scenario_many_chunks(path: Path) -> dict:
    import dask_tables

    start = time.perf_counter()
    with tables.open_file(path) as f:
        expected = float(f.root.x.read().sum(dtype="f8"))
    one_read = time.perf_counter() - start
    start = time.perf_counter()  # cold: this process has no chunk index yet
    got = float(dask_tables.from_tables(path, "/x").sum(dtype="f8").compute(scheduler="threads"))
    ours = time.perf_counter() - start
    assert np.isclose(got, expected)
    return {"one PyTables read s": one_read, "build + sum s": ours, "vs one read": one_read / ours}


def scenario_task_cost(path: Path, repeat: int, tasks: int) -> dict:
    import dask.array as da
    import h5py

    import dask_tables

    with tables.open_file(path) as f:
        n = int(f.root.x.nrows)
    block = n // tasks
    x = dask_tables.from_tables(path, "/x", chunks=block)
    ours, expected = best_of(repeat, lambda: float(x.sum().compute(scheduler="threads")))
    with h5py.File(path, "r") as f:
        y = da.from_array(f["x"], chunks=block, lock=True, meta=np.empty(0))
        theirs, got = best_of(repeat, lambda: float(y.sum().compute(scheduler="threads")))
    assert np.isclose(got, expected)
    ones = da.ones(n, chunks=block)
    floor, _ = best_of(repeat, lambda: float(ones.sum().compute(scheduler="threads")))
    count = x.numblocks[0]
    return {
        "tasks": count,
        "from_tables ms/task": ours / count * 1e3,
        "h5py+from_array ms/task": theirs / count * 1e3,
        "da.ones ms/task": floor / count * 1e3,
    }


def scenario_many_files(folder: Path, files: int, repeat: int) -> dict:
    import dask_tables

    many = sorted(folder.glob("one-*.h5"))[:files]
    few = sorted(folder.glob("few-*.h5"))
    start = time.perf_counter()
    x = dask_tables.from_tables([str(p) for p in many], "/x")
    build_many = time.perf_counter() - start
    y = dask_tables.from_tables([str(p) for p in few], "/x", chunks=x.chunks[0][0])
    t_many, a = best_of(repeat, lambda: float(x.sum().compute(scheduler="threads")))
    t_few, b = best_of(repeat, lambda: float(y.sum().compute(scheduler="threads")))
    assert np.isclose(a, b)
    return {
        "files": len(many),
        "tasks": x.numblocks[0],
        "build s": build_many,
        f"ms/task over {len(many)} files": t_many / x.numblocks[0] * 1e3,
        "ms/task over 10 files": t_few / y.numblocks[0] * 1e3,
        "many/few": (t_many / x.numblocks[0]) / (t_few / y.numblocks[0]),
    }


def scenario_validate(folder: Path) -> dict:
    import dask_tables

    paths = [str(p) for p in sorted(folder.glob("val-*.h5"))]
    start = time.perf_counter()
    x = dask_tables.from_tables(paths, "/x", validate=True)
    seconds = time.perf_counter() - start
    assert x.shape[0] == 100 * len(paths)
    return {"files": len(paths), "validate=True build s": seconds}


def child(scenario: str, argv: list[str]) -> None:
    repeat = int(argv[-1])
    if scenario == "mean":
        row = scenario_mean(Path(argv[0]), repeat)
    elif scenario == "cluster":
        row = scenario_cluster([Path(p) for p in argv[:-1]], repeat)
    elif scenario == "many-chunks":
        row = scenario_many_chunks(Path(argv[0]))
    elif scenario == "task-cost":
        row = scenario_task_cost(Path(argv[0]), repeat, tasks=1000)
    elif scenario == "many-files":
        row = scenario_many_files(Path(argv[0]), int(argv[1]), repeat)
    else:
        row = scenario_validate(Path(argv[0]))
    print(json.dumps(row))


def measure(scenario: str, *args: Any, repeat: int) -> dict:
    return in_child(__file__, scenario, *args, repeat, timeout=7200)


# ---------------------------------------------------------------- report


def show(title: str, row: dict, scenario: str, case: str) -> None:
    print(f"\n{title}")
    if "error" in row:
        print(f"  failed: {row['error']}")
        return
    for key, value in row.items():
        shown = "n/a" if value is None else (f"{value:.3g}" if isinstance(value, float) else value)
        target = TARGETS.get((scenario, case, key))
        verdict = (
            "" if target is None else f"   (target >= {target}: {'met' if value >= target else 'NOT met'})"
        )
        print(f"  {key:<28} {shown}{verdict}", flush=True)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=256, help="size of each array case (default 256)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--files", type=int, default=10_000, help="files of the many-files scenario")
    parser.add_argument(
        "--scenarios", default=",".join(SCENARIOS), help="comma-separated: " + ", ".join(SCENARIOS)
    )
    parser.add_argument("--dir", default=None, help="folder for the data files (default: a temporary one)")
    parser.add_argument("--json", default=None, help="write the figures here")
    args = parser.parse_args(argv)
    chosen = args.scenarios.split(",")

    results: dict = {
        "machine": machine(),
        "size_mib": args.size_mib,
        "scenarios": {},
    }
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        folder = Path(tmp)

        def record(scenario: str, case: str, title: str, row: dict) -> None:
            results["scenarios"].setdefault(scenario, {})[case] = row
            show(title, row, scenario, case)

        if "split-rows" in chosen:
            for case, filters in SPLIT_ROWS.items():
                path = folder / f"split-{case}.h5"
                write_split_rows(path, args.size_mib, filters)
                row = measure("mean", path, repeat=args.repeat)
                record("split-rows", case, f"split-rows, {case}: (N, 1024) float64, (1024, 128) chunks", row)
                path.unlink()
        if "default-earray" in chosen:
            for case, filters in DEFAULT_EARRAY.items():
                path = folder / f"earray-{case}.h5"
                write_default_earray(path, args.size_mib, filters)
                row = measure("mean", path, repeat=args.repeat)
                record(
                    "default-earray", case, f"default-earray, {case}: 1-D float64, PyTables' chunk shape", row
                )
                path.unlink()
        if "cluster" in chosen:
            paths = [folder / f"cluster-{i}.h5" for i in range(2)]
            for path in paths:
                write_default_earray(path, args.size_mib // 2, ZLIB)
            row = measure("cluster", *paths, repeat=args.repeat)
            record(
                "cluster",
                "zlib",
                "cluster: LocalCluster(2 processes x 1 thread) against threads(2), 2 zlib files",
                row,
            )
        if "many-chunks" in chosen:
            path = folder / "many-chunks.h5"
            write_chunked_1d(path, 100_000, 64, "f4")
            row = measure("many-chunks", path, repeat=1)
            record("many-chunks", "float32", "many-chunks: 100,000 chunks of 64 float32, build + sum()", row)
        if "task-cost" in chosen:
            path = folder / "task-cost.h5"
            write_chunked_1d(path, 10_000, 5_000, "f8")  # 40 kB chunks
            row = measure("task-cost", path, repeat=args.repeat)
            record("task-cost", "uncompressed", "task-cost: 1,000 tasks over 10,000 chunks of 40 kB", row)
        if "many-files" in chosen:
            values = 1000
            for i in range(args.files):
                write_small(folder / f"one-{i:06d}.h5", values, i * values)
            per_file = args.files * values // 10
            for i in range(10):
                with tables.open_file(folder / f"few-{i:02d}.h5", "w") as f:
                    f.create_carray(
                        "/",
                        "x",
                        obj=np.arange(i * per_file, (i + 1) * per_file, dtype="f8"),
                        chunkshape=(values,),
                    )
            row = measure("many-files", folder, args.files, repeat=args.repeat)
            record(
                "many-files",
                "sum",
                f"many-files: sum() over {args.files} one-block files, against 10 files",
                row,
            )
        if "validate" in chosen:
            for i in range(100):
                write_small(folder / f"val-{i:03d}.h5", 100, i * 100)
            row = measure("validate", folder, repeat=1)
            record(
                "validate", "100 files", "validate: from_tables(..., validate=True) over 100 small files", row
            )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3:])
    else:
        main()
