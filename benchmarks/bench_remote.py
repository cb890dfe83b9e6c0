"""Reading an HDF5 file over HTTP with 20 ms a request: from_tables against the anchors.

``pip install ".[bench,remote]" && python benchmarks/bench_remote.py [--mb 136] [--section read|optimize|all]``

Serves a zlib CArray from 127.0.0.1 with the tests' Range server
(``tests/servers.py``), which waits 20 ms before answering each request
(the latency of a nearby object store), and times ``x.mean()``:

- ``from_tables`` on the local file (the anchor), in a fresh process, the
  file in the page cache (read once before);
- ``from_tables`` on the URL, cold: in a fresh process with its own empty
  ``DASK_TABLES_CACHE`` folder (shadow and chunk index fetched first), and
  warm: in this process, the graph computed again after a first compute;
- h5py on an fsspec HTTP file object (``fsspec[http]``);
- download the whole object, then PyTables;
- kerchunk (``kerchunk.hdf.SingleHdf5ToZarr`` over an fsspec HTTP file
  object): the references built, then the array read through them with
  zarr and fsspec's reference filesystem, each timed and counted apart
  (skipped, saying why, without kerchunk);

and counts requests and bytes moved for the whole read and for a 1% slice.
Prints ratios against the anchors of the same run, and the issue's targets.

The local and cold reads are each the best of ``--repeat`` fresh processes
(``benchmarks/harness.py``'s ``in_child``: this script with ``--child``),
timed the same way: the clock starts after the child's imports (dask_tables,
numpy, PyTables, pandas, and what a first read imports lazily) and covers
building the collection and computing its mean, not the interpreter's
start-up.  The server runs in this process and counts the children's
requests.  The other reads are the best of ``--repeat`` in this process,
without a warm-up.

``--section optimize`` (also part of the default ``all``) counts, through
the same server, the requests and bytes of a cold metadata walk (building
the collection: HEAD, the metadata and chunk index, the small datasets) and
of a whole read, for a pandas table (``--rows``, 2M by default, a data
column, zlib) and for the CArray, each as written and after
``dask-tables optimize`` (HDF5 paged aggregation, 4 MiB pages).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import tables
from harness import in_child

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


class Runs:
    """Best-of timings, printed as they come, with the requests and bytes a run moved through the server."""

    def __init__(self, repeat: int, folder: Path) -> None:
        self.repeat = repeat
        self.folder = folder
        self.seconds: dict[str, float] = {}
        self.moved: dict[str, tuple[float, float]] = {}

    def best(self, name: str, run, server=None, show=lambda value: f"mean {value:.6f}"):
        """The best of ``repeat`` calls of ``run`` in this process."""
        # no warm-up: each named run counts its own requests, self.repeat of them
        if server is not None:
            server.reset_counts()
        seconds, value = best_of(self.repeat, run, warm_up=False)
        return self.record(name, seconds, value, server, show)

    def best_in_children(self, name: str, target: str | Path, server=None) -> float:
        """The best of ``repeat`` fresh processes, each timing one read of ``target`` (:func:`child`)."""
        if server is not None:
            server.reset_counts()
        seconds = []
        for _ in range(self.repeat):
            cache = tempfile.mkdtemp(prefix="cache-", dir=self.folder)  # empty: no shadow, no index
            answer = in_child(__file__, target, cache, timeout=600)
            if "error" in answer:
                raise RuntimeError(f"{name}: {answer['error']}")
            seconds.append(answer["seconds"])
        return self.record(name, min(seconds), answer["mean"], server)

    def record(self, name: str, seconds: float, value, server=None, show=lambda value: f"mean {value:.6f}"):
        self.seconds[name] = seconds
        if server is not None:
            self.moved[name] = (server.requests / self.repeat, server.bytes_sent / self.repeat)
        print(f"  {name:<34} {seconds:7.2f} s   ({show(value)})")
        return value


# imported lazily by a first read: by dask's first compute (when installed), the remote path, the zlib filter
LAZY_IMPORTS = ("distributed", "h5py", "obstore", "imagecodecs", "dask_tables.array.remote")


def child(target: str, cache: str) -> None:
    """One read in a fresh process: ``from_tables(target, "/x").mean()``, built and computed, timed.

    The clock starts after the imports: this module's (dask_tables, numpy,
    PyTables, pandas) and those a first read would make (``LAZY_IMPORTS``),
    with ``cache`` (an empty folder) as the shadow cache.  Prints the seconds
    and the mean as JSON, the last line.
    """
    for name in LAZY_IMPORTS:  # each is needed by the read anyway: a missing one fails here, loudly
        importlib.import_module(name)
    os.environ["DASK_TABLES_CACHE"] = cache
    started = time.perf_counter()
    mean = float(dask_tables.from_tables(target, "/x").mean().compute())
    print(json.dumps({"seconds": time.perf_counter() - started, "mean": mean}))


def read_section(args: argparse.Namespace, folder: Path, path: Path) -> None:
    """from_tables of the CArray from a URL, cold and warm, against the anchors; the issue's targets."""
    from servers import RangeServer

    runs = Runs(args.repeat, folder)
    path.read_bytes()  # into the page cache
    local = runs.best_in_children("from_tables, local disk", path)
    with RangeServer(folder, latency=LATENCY) as server:
        url = f"{server.url}/data.h5"
        part = from_tables_remote(runs, server, url, local)
        h5py_and_download(runs, server, url, folder)
        kerchunk_anchor(runs, server, url)
    report(runs, part, path.stat().st_size)


def from_tables_remote(runs: Runs, server, url: str, local: float) -> tuple[float, int, int]:
    """Cold (fresh processes) and warm (this one) whole reads of the URL; a 1% slice's mean, requests and bytes."""
    remote = runs.best_in_children("from_tables, URL, cold", url, server)
    x = dask_tables.from_tables(url, "/x")
    x.mean().compute()
    runs.best("from_tables, URL, warm", lambda: x.mean().compute(), server)
    server.reset_counts()
    part = x[: x.shape[0] // 100].mean().compute()
    assert abs(remote - local) < 1e-9
    return float(part), server.requests, server.bytes_sent


def h5py_and_download(runs: Runs, server, url: str, folder: Path) -> None:
    """The anchors: h5py on an fsspec HTTP file object; the whole object downloaded, then PyTables."""

    def h5py_fsspec() -> float:
        import fsspec
        import h5py

        with fsspec.open(url, "rb") as f, h5py.File(f, "r") as h5:
            return float(h5["x"][:].mean())

    runs.best("h5py on an fsspec file object", h5py_fsspec, server)

    def download() -> float:
        import obstore
        from obstore.store import HTTPStore

        store = HTTPStore.from_url(server.url, client_options={"allow_http": True})
        local_copy = folder / "download.h5"
        local_copy.write_bytes(bytes(obstore.get(store, "data.h5").bytes()))
        with tables.open_file(local_copy) as f:
            return float(f.root.x[:].mean())

    runs.best("download, then PyTables", download)


def kerchunk_anchor(runs: Runs, server, url: str) -> None:
    """kerchunk's references of /x (h5py on an fsspec HTTP file), then /x read through them with zarr.

    Each build starts from a new file object; each read from a new reference
    filesystem and zarr store (no chunk cached), references built once.  zarr 3
    reads through an asynchronous filesystem only, so the reference filesystem
    and its HTTP target are both made asynchronous.
    """
    try:
        import fsspec
        import zarr
        from kerchunk.hdf import SingleHdf5ToZarr
    except ImportError as error:
        print(f'  kerchunk: anchor skipped, {error} (pip install ".[bench]")')
        return

    def build() -> dict:
        # closed: its h5py.File, left open, is closed by HDF5 at exit through the fsspec file, and
        # calls into a finalized interpreter (a segfault)
        with fsspec.open(url, "rb") as f, contextlib.closing(SingleHdf5ToZarr(f, url)) as translator:
            return translator.translate()

    def read() -> float:
        fs = fsspec.filesystem(
            "reference", fo=refs, remote_protocol="http", remote_options={"asynchronous": True},
            asynchronous=True, skip_instance_cache=True,
        )  # fmt: skip
        array = zarr.open_array(zarr.storage.FsspecStore(fs, read_only=True), path="x", mode="r")
        return float(array[:].mean())

    with warnings.catch_warnings(record=True) as quashed:
        warnings.simplefilter("always")
        try:
            refs = runs.best("kerchunk: build references", build, server, lambda r: f"{len(r['refs'])} keys")
            runs.best("kerchunk: read through zarr", read, server)
        except Exception as error:  # an anchor: say why kerchunk cannot read the file, run the rest
            why = "; ".join(" ".join(str(w.message).split())[:240] for w in quashed)
            print(
                f"  kerchunk cannot read /x: {type(error).__name__}: {error}" + (f" ({why})" if why else "")
            )


def report(runs: Runs, part: tuple[float, int, int], size: int) -> None:
    """Requests and bytes moved, then the ratios against the anchors of this run and the issue's targets."""
    seconds, moved = runs.seconds, runs.moved
    print()
    for label, name in [
        ("cold whole read", "from_tables, URL, cold"),
        ("warm whole read", "from_tables, URL, warm"),
        ("h5py + fsspec", "h5py on an fsspec file object"),
        ("kerchunk references", "kerchunk: build references"),
        ("kerchunk read", "kerchunk: read through zarr"),
    ]:
        if name in moved:
            requests, sent = moved[name]
            print(f"  requests / MB moved, {label + ':':<20} {requests:.0f} / {sent / 1e6:.1f}")
    mean, slice_requests, slice_bytes = part
    print(
        f"  1% slice: {slice_requests} requests, {slice_bytes / 1e6:.2f} MB "
        f"= {100 * slice_bytes / size:.1f}% of the file (mean {mean:.4f})"
    )
    local, cold, warm = (seconds[f"from_tables, {n}"] for n in ("local disk", "URL, cold", "URL, warm"))
    checks = [
        ("cold / local", cold / local, "<= 2.0"),
        ("warm / local", warm / local, "<= 1.4"),
        ("h5py+fsspec / warm", seconds["h5py on an fsspec file object"] / warm, ">= 2"),
        ("download+PyTables / warm", seconds["download, then PyTables"] / warm, ">= 2.5"),
    ]
    if "kerchunk: read through zarr" in seconds:
        build, read = seconds["kerchunk: build references"], seconds["kerchunk: read through zarr"]
        checks += [
            ("kerchunk read / warm", read / warm, "none (an anchor)"),
            ("kerchunk build+read / cold", (build + read) / cold, "none (an anchor)"),
        ]
    checks.append(("1% slice bytes / file", slice_bytes / size, "<= 0.05"))
    print()
    for name, ratio, target in checks:
        print(f"  {name:<26} {ratio:6.2f}   target {target}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        child(*sys.argv[2:4])
    else:
        main()
