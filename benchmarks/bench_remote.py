"""Reading an HDF5 file over HTTP with 20 ms a request: from_tables against the anchors.

``pip install ".[bench,remote]" && python benchmarks/bench_remote.py [--mb 136] [--section read|optimize|all]``

Serves a zlib CArray from 127.0.0.1 with the tests' Range server
(``tests/servers.py``), which waits 20 ms before answering each request
(the latency of a nearby object store), and times ``x.mean()``:

- ``from_tables`` on the local file (the anchor);
- ``from_tables`` on the URL, cold (shadow and chunk index fetched first,
  caches empty) and warm (the graph computed again);
- h5py on an fsspec HTTP file object (``fsspec[http]``);
- download the whole object, then PyTables;

and counts requests and bytes moved for the whole read and for a 1% slice.
Prints ratios against the anchors of the same run, and the issue's targets.

``--section optimize`` (also part of the default ``all``) counts, through
the same server, the requests and bytes of a cold metadata walk (building
the collection: HEAD, the metadata and chunk index, the small datasets) and
of a whole read, for a pandas table (``--rows``, 2M by default, a data
column, zlib) and for the CArray, each as written and after
``dask-tables optimize`` (HDF5 paged aggregation, 4 MiB pages).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import tables

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import dask_tables
from dask_tables.hdf5.chunkindex import clear_cache
from dask_tables.optimize import optimize_file
from dask_tables.remote import shadow as shadows
from dask_tables.timing import best_of

LATENCY = 0.020


def write_file(path: Path, mb: int) -> None:
    rows = mb * 2**20 // (8 * 1024)
    rng = np.random.default_rng(0)
    with tables.open_file(path, "w") as f:
        x = f.create_carray(
            "/", "x", atom=tables.Float64Atom(), shape=(rows, 1024), chunkshape=(128, 1024),
            filters=tables.Filters(complevel=1, complib="zlib", shuffle=True),
        )  # fmt: skip
        for start in range(0, rows, 4096):
            stop = min(rows, start + 4096)
            block = np.round(rng.random((stop - start, 1024)) * 100, 1)  # compresses ~2.5x
            x[start:stop] = block


def write_pandas_table(path: Path, rows: int) -> None:
    """A frame as pandas writes it: table format, an indexed data column, zlib."""
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"a": np.arange(rows), "b": np.round(rng.random(rows) * 100, 1)})
    frame.to_hdf(path, key="df", format="table", data_columns=["a"], complib="zlib", complevel=1)


def forget(folder: Path) -> None:
    """Empty every cache of a remote read: shadows (in memory and on disk) and chunk indexes."""
    shadows.clear_process_cache()
    clear_cache()
    for leftover in (folder / "cache" / "remote").glob("*"):
        leftover.unlink()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=136, help="raw size of the array (MiB)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--rows", type=int, default=2_000_000, help="rows of the pandas table (optimize)")
    parser.add_argument("--section", choices=("read", "optimize", "all"), default="all")
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="bench-remote-"))
    os.environ["DASK_TABLES_CACHE"] = str(folder / "cache")
    path = folder / "data.h5"
    write_file(path, args.mb)
    size = path.stat().st_size
    print(f"file: {size / 1e6:.1f} MB zlib CArray, {os.cpu_count()} cores, {LATENCY * 1000:.0f} ms a request")
    try:
        if args.section in ("read", "all"):
            read_section(args, folder, path)
        if args.section in ("optimize", "all"):
            optimize_section(args, folder, path)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def optimize_section(args: argparse.Namespace, folder: Path, carray: Path) -> None:
    """Requests, bytes and seconds of a cold metadata walk and of a whole read, plain and paged."""
    from servers import RangeServer

    write_pandas_table(folder / "table.h5", args.rows)
    plain = {"table": folder / "table.h5", "carray": carray}
    cases = []
    for kind, path in plain.items():
        paged = path.with_name(path.stem + "-paged.h5")
        started = time.perf_counter()
        optimize_file(path, paged)
        print(f"optimize {path.name}: {time.perf_counter() - started:.2f} s")
        cases += [(kind, "plain", path), (kind, "paged", paged)]

    def build(kind: str, url: str):
        if kind == "table":
            return dask_tables.read_table(url, "/df")
        return dask_tables.from_tables(url, "/x")

    def whole(kind: str, collection) -> float:
        if kind == "table":
            return float(collection["b"].sum().compute())
        return float(collection.mean().compute())

    print()
    print(f"optimize: a cold read through the Range server, {LATENCY * 1000:.0f} ms a request")
    print(f"  {'file':<34} {'MB':>6} | {'metadata + index':>22} | {'whole read':>22}")
    print(f"  {'':<34} {'':>6} | {'req':>6} {'MB':>7} {'s':>7} | {'req':>6} {'MB':>7} {'s':>7}")
    rows = {}
    with RangeServer(folder, latency=LATENCY) as server:
        kind, _, path = cases[0]
        whole(kind, build(kind, f"{server.url}/{path.name}"))  # a warm-up: imports, thread pools
        for kind, layout, path in cases:
            url = f"{server.url}/{path.name}"
            forget(folder)
            server.reset_counts()
            started = time.perf_counter()
            collection = build(kind, url)
            meta = (server.requests, server.bytes_sent, time.perf_counter() - started)
            server.reset_counts()
            started = time.perf_counter()
            value = whole(kind, collection)
            read = (server.requests, server.bytes_sent, time.perf_counter() - started)
            rows[kind, layout] = value
            name = (f"pandas table {args.rows:,} rows" if kind == "table" else "zlib CArray") + f", {layout}"
            print(
                f"  {name:<34} {path.stat().st_size / 1e6:6.1f} | {meta[0]:6d} {meta[1] / 1e6:7.2f} {meta[2]:7.2f}"
                f" | {read[0]:6d} {read[1] / 1e6:7.1f} {read[2]:7.2f}"
            )
    forget(folder)
    for kind in plain:
        assert rows[kind, "plain"] == rows[kind, "paged"], "the paged copy reads other values"


def read_section(args: argparse.Namespace, folder: Path, path: Path) -> None:
    """from_tables of the CArray from a URL, cold and warm, against the anchors; the issue's targets."""
    from servers import RangeServer

    size = path.stat().st_size
    results: dict[str, float] = {}

    def best(name: str, run) -> float:
        # no warm-up: each named run counts its own requests, args.repeat of them
        results[name], value = best_of(args.repeat, run, warm_up=False)
        print(f"  {name:<34} {results[name]:7.2f} s   (mean {value:.6f})")
        return float(value)

    local = best("from_tables, local disk", lambda: dask_tables.from_tables(path, "/x").mean().compute())
    with RangeServer(folder, latency=LATENCY) as server:
        url = f"{server.url}/data.h5"

        def cold() -> float:
            forget(folder)
            return dask_tables.from_tables(url, "/x").mean().compute()

        server.reset_counts()
        remote = best("from_tables, URL, cold", cold)
        cold_requests, cold_bytes = server.requests / args.repeat, server.bytes_sent / args.repeat
        x = dask_tables.from_tables(url, "/x")
        x.mean().compute()
        server.reset_counts()
        best("from_tables, URL, warm", lambda: x.mean().compute())
        warm_requests, warm_bytes = server.requests / args.repeat, server.bytes_sent / args.repeat
        server.reset_counts()
        part = x[: x.shape[0] // 100].mean().compute()
        slice_requests, slice_bytes = server.requests, server.bytes_sent
        assert abs(remote - local) < 1e-9

        def h5py_fsspec() -> float:
            import fsspec
            import h5py

            with fsspec.open(url, "rb") as f, h5py.File(f, "r") as h5:
                return float(h5["x"][:].mean())

        server.reset_counts()
        best("h5py on an fsspec file object", h5py_fsspec)
        h5py_requests, h5py_bytes = server.requests / args.repeat, server.bytes_sent / args.repeat

        def download() -> float:
            import obstore
            from obstore.store import HTTPStore

            store = HTTPStore.from_url(server.url, client_options={"allow_http": True})
            local_copy = folder / "download.h5"
            local_copy.write_bytes(bytes(obstore.get(store, "data.h5").bytes()))
            with tables.open_file(local_copy) as f:
                return float(f.root.x[:].mean())

        best("download, then PyTables", download)
    print()
    print(f"  requests / MB moved, cold whole read: {cold_requests:.0f} / {cold_bytes / 1e6:.1f}")
    print(f"  requests / MB moved, warm whole read: {warm_requests:.0f} / {warm_bytes / 1e6:.1f}")
    print(f"  requests / MB moved, h5py + fsspec:   {h5py_requests:.0f} / {h5py_bytes / 1e6:.1f}")
    print(
        f"  1% slice: {slice_requests} requests, {slice_bytes / 1e6:.2f} MB "
        f"= {100 * slice_bytes / size:.1f}% of the file (mean {part:.4f})"
    )
    local_s = results["from_tables, local disk"]
    checks = [
        ("cold / local", results["from_tables, URL, cold"] / local_s, "<= 2.0"),
        ("warm / local", results["from_tables, URL, warm"] / local_s, "<= 1.4"),
        ("h5py+fsspec / warm", results["h5py on an fsspec file object"] / results["from_tables, URL, warm"], ">= 2"),
        ("download+PyTables / warm", results["download, then PyTables"] / results["from_tables, URL, warm"], ">= 2.5"),
        ("1% slice bytes / file", slice_bytes / size, "<= 0.05"),
    ]  # fmt: skip
    print()
    for name, ratio, target in checks:
        print(f"  {name:<26} {ratio:6.2f}   target {target}")


if __name__ == "__main__":
    main()
