"""Benchmark: reading with ``from_tables`` against the tools a user would otherwise pick.

For each case (an array of ``--size-mib`` MiB: uncompressed, zlib+shuffle
level 1, blosc2:lz4+shuffle, blosc:zstd+shuffle; and one float64 column of a
10-million-row Table, zlib+shuffle level 1) it times ``mean()`` of the data,
in the same run, with:

* ``serial``: a plain PyTables loop over the same row blocks as the dask
  array (the baseline of every ratio);
* ``from_tables``: ``from_tables(path, node).mean().compute(scheduler="threads")``
  (direct chunk reads);
* ``h5py+from_array``: ``dask.array.from_array(h5py_dataset, lock=True)``,
  same chunks, threads (``hdf5plugin`` for Blosc);
* ``naive``: the cookbook design on dask threads: each block opens the file,
  reads and closes it under one lock;
* ``page-cache``: ``os.preadv`` of the file's bytes into reused buffers
  plus ``np.sum``, same threads: what the file system itself delivers (its
  GB/s count the file's bytes, which are fewer than the data's when the
  file is compressed).

Each method runs in its own process (warm-up, then the best of
``--repeat``), which also gives its peak RSS.  It prints GB/s (of the data
the mean covers) and ratios to the serial loop, checks the issue's targets,
writes JSON and a PNG chart, and measures the peak RSS of
``from_tables(...).mean()`` over a ``--rss-gib`` GiB array.

Run: ``python benchmarks/bench_read.py`` (options: ``--size-mib``,
``--repeat``, ``--cases``, ``--dir``, ``--json``, ``--png``, ``--rss-gib``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import tables
from harness import in_child, machine

from dask_tables.timing import best_of

COLUMNS = 1024
ROW_CHUNK = 128
TABLE_ROWS = 10_000_000
CASES = {
    "uncompressed": None,
    "zlib": tables.Filters(complevel=1, complib="zlib", shuffle=True),
    "blosc2": tables.Filters(complevel=5, complib="blosc2:lz4", shuffle=True),
    "blosc": tables.Filters(complevel=5, complib="blosc:zstd", shuffle=True),
    "table": tables.Filters(complevel=1, complib="zlib", shuffle=True),
}
METHODS = ["serial", "from_tables", "h5py+from_array", "naive", "page-cache"]
TARGETS = {  # case -> minimum from_tables / serial, and of the page-cache limit
    "uncompressed": (2.0, 0.5),
    "zlib": (5.0, None),
    "blosc2": (1.6, None),
    "blosc": (1.6, None),
}


# ---------------------------------------------------------------- data


def write_array(path: Path, size_mib: int, filters: tables.Filters | None) -> None:
    rows = size_mib * 2**20 // (8 * COLUMNS)
    rng = np.random.default_rng(0)
    with tables.open_file(path, "w") as f:
        x = f.create_carray(
            "/",
            "x",
            atom=tables.Float64Atom(),
            shape=(rows, COLUMNS),
            chunkshape=(ROW_CHUNK, COLUMNS),
            filters=filters,
        )
        for start in range(0, rows, 4096):
            stop = min(start + 4096, rows)
            # a rounded random walk: compresses like measured data, not like noise
            x[start:stop] = np.round(rng.normal(size=(stop - start, COLUMNS)).cumsum(axis=1), 2)


def write_table(path: Path, rows: int, filters: tables.Filters) -> None:
    rng = np.random.default_rng(1)
    dtype = np.dtype([("id", "i8"), ("energy", "f8"), ("time", "f8"), ("channel", "i4")])
    with tables.open_file(path, "w") as f:
        t = f.create_table("/", "events", description=dtype, filters=filters, expectedrows=rows)
        for start in range(0, rows, 1_000_000):
            n = min(1_000_000, rows - start)
            block = np.empty(n, dtype)
            block["id"] = np.arange(start, start + n)
            block["energy"] = np.round(rng.exponential(10.0, n), 3)
            block["time"] = np.arange(start, start + n) * 1e-3
            block["channel"] = rng.integers(0, 64, n)
            t.append(block)


def node_of(case: str) -> tuple[str, str | None]:
    return ("/events", "energy") if case == "table" else ("/x", None)


# ---------------------------------------------------------------- methods (run in a child process)


def _blocks(path: Path, case: str) -> tuple[tuple[int, ...], int]:
    import dask_tables

    node, field = node_of(case)
    x = dask_tables.from_tables(path, node, field=field)
    return x.chunks[0], x.nbytes


def serial(path: Path, case: str, workers: int) -> float:
    node, field = node_of(case)
    rows, _ = _blocks(path, case)
    total, count = 0.0, 0
    with tables.open_file(path) as f:
        leaf = f.get_node(node)
        start = 0
        for n in rows:
            block = leaf.read(start, start + n, field=field) if field else leaf[start : start + n]
            total += float(block.sum())
            count += block.size
            start += n
    return total / count


def from_tables(path: Path, case: str, workers: int) -> float:
    import dask_tables

    node, field = node_of(case)
    x = dask_tables.from_tables(path, node, field=field)
    return float(x.mean().compute(scheduler="threads", num_workers=workers))


def h5py_from_array(path: Path, case: str, workers: int) -> float:
    import dask.array as da
    import h5py

    if case in ("blosc", "blosc2"):
        import hdf5plugin  # noqa: F401 - registers the Blosc filters with h5py's HDF5

    node, field = node_of(case)
    rows, _ = _blocks(path, case)
    with h5py.File(path, "r") as f:
        dataset = f[node]
        if field:
            dataset = dataset.fields(field)
            shape = (f[node].shape[0],)
        else:
            shape = dataset.shape
        chunks = (rows, *shape[1:])
        x = da.from_array(dataset, chunks=chunks, lock=True, meta=np.empty((0,) * len(shape)))
        return float(x.mean().compute(scheduler="threads", num_workers=workers))


def naive(path: Path, case: str, workers: int) -> float:
    node, field = node_of(case)
    rows, _ = _blocks(path, case)
    lock = threading.Lock()
    starts = np.concatenate([[0], np.cumsum(rows)[:-1]])

    def block_sum(start_n: tuple[int, int]) -> tuple[float, int]:
        start, n = start_n
        with lock, tables.open_file(path) as f:
            leaf = f.get_node(node)
            block = leaf.read(start, start + n, field=field) if field else leaf[start : start + n]
        return float(block.sum()), block.size

    with ThreadPoolExecutor(workers) as pool:
        parts = list(pool.map(block_sum, zip(starts.tolist(), rows, strict=True)))
    return sum(p[0] for p in parts) / sum(p[1] for p in parts)


def page_cache(path: Path, case: str, workers: int, block: int = 8 * 2**20) -> float:
    size = os.path.getsize(path)
    per_thread = threading.local()
    fd = os.open(path, os.O_RDONLY)
    try:

        def read(offset: int) -> float:
            if not hasattr(per_thread, "buffer"):
                per_thread.buffer = np.empty(block // 8, dtype=np.float64)
            n = os.preadv(fd, [per_thread.buffer], offset)
            return float(per_thread.buffer[: n // 8].sum())

        with ThreadPoolExecutor(workers) as pool:
            return sum(pool.map(read, range(0, size, block)))
    finally:
        os.close(fd)


RUNNERS = {
    "serial": serial,
    "from_tables": from_tables,
    "h5py+from_array": h5py_from_array,
    "naive": naive,
    "page-cache": page_cache,
}


def child(method: str, path: str, case: str, workers: int, repeat: int) -> None:
    run = RUNNERS[method]
    best, result = best_of(repeat, lambda: run(Path(path), case, workers))  # the warm-up fills the page cache
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"seconds": best, "result": result, "peak_rss": peak}))


def measure(method: str, path: Path, case: str, workers: int, repeat: int) -> dict:
    return in_child(__file__, method, path, case, workers, repeat, timeout=3600)


# ---------------------------------------------------------------- report


def chart(results: dict, png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cases = list(results["cases"])
    fig, ax = plt.subplots(figsize=(10, 4.5))
    width = 0.8 / len(METHODS)
    for i, method in enumerate(METHODS):
        rates = [results["cases"][c]["methods"].get(method, {}).get("GB/s", 0) for c in cases]
        ax.bar(np.arange(len(cases)) + i * width, rates, width, label=method)
    ax.set_xticks(np.arange(len(cases)) + width * (len(METHODS) - 1) / 2, cases)
    ax.set_ylabel("GB/s (data; page-cache: file bytes)")
    ax.set_yscale("log")
    ax.set_title(f"mean() over {results['size_mib']} MiB per case, {results['workers']} threads")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(png, dpi=110)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024, help="size of each array case (default 1024)")
    parser.add_argument("--table-rows", type=int, default=TABLE_ROWS, help="rows of the table case")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--cases", default=",".join(CASES), help="comma-separated, from: " + ", ".join(CASES))
    parser.add_argument(
        "--methods", default=",".join(METHODS), help="comma-separated, from: " + ", ".join(METHODS)
    )
    parser.add_argument("--dir", default=None, help="folder for the data files (default: a temporary one)")
    parser.add_argument("--json", default=None, help="write the figures here")
    parser.add_argument("--png", default=None, help="draw the chart here")
    parser.add_argument(
        "--rss-gib", type=float, default=4, help="peak-RSS check over this many GiB (0: skip)"
    )
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
            path = Path(folder) / f"{case}.h5"
            if case == "table":
                write_table(path, args.table_rows, CASES[case])
            else:
                write_array(path, args.size_mib, CASES[case])
            _, nbytes = _blocks(path, case)
            rows = {m: measure(m, path, case, args.workers, args.repeat) for m in methods}
            serial_seconds = rows.get("serial", {}).get("seconds")
            means = [r["result"] for m, r in rows.items() if "result" in r and m != "page-cache"]
            if means and not np.allclose(means, means[0], rtol=1e-9):
                raise SystemExit(f"{case}: the methods disagree on the mean: {means}")
            file_bytes = path.stat().st_size
            for method, row in rows.items():
                if "seconds" in row:
                    # the page-cache limit moves the file's bytes; the readers deliver the data's
                    row["GB/s"] = (file_bytes if method == "page-cache" else nbytes) / row["seconds"] / 1e9
                    if serial_seconds:
                        row["vs serial"] = serial_seconds / row["seconds"]
            results["cases"][case] = {"nbytes": nbytes, "file_bytes": file_bytes, "methods": rows}
            print(f"\n{case}: {nbytes / 2**30:.2f} GiB of data, file {path.stat().st_size / 2**30:.2f} GiB")
            print(f"  {'method':<16} {'GB/s':>7} {'vs serial':>10} {'peak RSS':>10}")
            for name, row in rows.items():
                if "error" in row:
                    print(f"  {name:<16} failed: {row['error']}")
                    continue
                ratio = f"{row['vs serial']:9.2f}x" if "vs serial" in row else ""
                print(f"  {name:<16} {row['GB/s']:7.2f} {ratio:>10} {row['peak_rss'] / 2**20:7.0f} MiB")
            if case in TARGETS and "from_tables" in rows and "vs serial" in rows["from_tables"]:
                want_serial, want_cache = TARGETS[case]
                got = rows["from_tables"]["vs serial"]
                line = f"  target: from_tables >= {want_serial}x serial: {got:.2f}x {'met' if got >= want_serial else 'NOT met'}"
                if want_cache and "page-cache" in rows and "GB/s" in rows["page-cache"]:
                    share = rows["from_tables"]["GB/s"] / rows["page-cache"]["GB/s"]
                    line += f"; >= {want_cache:.0%} of page cache: {share:.0%} {'met' if share >= want_cache else 'NOT met'}"
                print(line, flush=True)
            path.unlink()
        if args.rss_gib:
            path = Path(folder) / "rss.h5"
            write_array(path, int(args.rss_gib * 1024), None)
            row = measure("from_tables", path, "uncompressed", args.workers, 1)
            results["rss_check"] = {"gib": args.rss_gib, **row}
            verdict = "met" if row.get("peak_rss", 2**40) < 2**30 else "NOT met"
            print(
                f"\npeak RSS of from_tables(...).mean() over {args.rss_gib:g} GiB, default chunks: "
                f"{row.get('peak_rss', 0) / 2**20:.0f} MiB (target < 1024 MiB: {verdict})"
            )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    if args.png:
        chart(results, Path(args.png))
    return results


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        method, path, case, workers, repeat = sys.argv[2:7]
        child(method, path, case, int(workers), int(repeat))
    else:
        main()
