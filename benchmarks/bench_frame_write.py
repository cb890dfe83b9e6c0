"""Benchmark: writing a dask DataFrame with ``to_tables`` against ``dd.to_hdf`` and pandas' ``to_hdf``.

The frame: ``--rows`` rows (10 million by default) in ``--partitions``
partitions, an int64, a float64, a string (``str``, up to 12 characters)
and a categorical column, and a DatetimeIndex; every method writes pandas'
table format (``format="table"``, no data columns), with zlib level 1 +
shuffle, and uncompressed.  Each dask method builds the partitions inside
its graph (``dd.from_map``, so the processes scheduler generates them where
it writes them); pandas gets the whole frame, built before the clock starts.

* ``pandas``: ``DataFrame.to_hdf`` of the whole frame (serial);
* ``dd.to_hdf``: ``dask.dataframe.DataFrame.to_hdf`` (threads; it writes one
  partition after another under a lock);
* ``to_tables``: ``dask_tables.to_tables`` on dask's threads;
* ``to_tables-processes``: the same on the processes scheduler.

Every file is read back with ``pandas.read_hdf`` and compared with the frame.
Prints seconds and the ratio of each to ``dd.to_hdf`` (higher is faster),
and each method's peak extra disk (every file in the folder, sampled every
5 ms while it writes) against the bytes the write added to the folder.

``--append``: appends instead.  A pandas table of ``--existing`` rows with
every column a data column (indexed, as pandas indexes them) is written
first; each method then appends the frame to it, with 1 and with
``--partitions`` partitions (pandas' ``to_hdf(append=True)`` of the whole
frame; ``dd.to_hdf(append=True)``; ``to_tables(append=True)``).

Run: ``python benchmarks/bench_frame_write.py`` (options: ``--rows``,
``--partitions``, ``--cases``, ``--methods``, ``--dir``, ``--append``,
``--existing``).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import dask
import dask.dataframe as dd
import numpy as np
import pandas as pd
import tables

import dask_tables

CASES = {"zlib": ("zlib", 1), "uncompressed": (None, 0)}
METHODS = ["pandas", "dd.to_hdf", "to_tables", "to_tables-processes"]
VOCABULARY = np.array([f"name-{i:0{1 + i % 7}d}" for i in range(1000)], dtype=object)


def partition(number: int, rows: int) -> pd.DataFrame:
    """Partition ``number`` of the frame (deterministic)."""
    rng = np.random.default_rng(number)
    start = pd.Timestamp("2020-01-01") + pd.Timedelta(seconds=rows * number)
    return pd.DataFrame(
        {
            "i": rng.integers(0, 1_000_000, rows),
            "f": rng.random(rows),
            "s": pd.array(VOCABULARY[rng.integers(0, len(VOCABULARY), rows)], dtype="str"),
            "c": pd.Categorical.from_codes(rng.integers(0, 8, rows), categories=list("abcdefgh")),
        },
        index=pd.date_range(start, periods=rows, freq="s", name="time"),
    )


def dask_frame(rows: int, partitions: int) -> dd.DataFrame:
    per = rows // partitions
    return dd.from_map(partition, range(partitions), rows=per, meta=partition(0, 0))


def write(method: str, path: Path, case: str, rows: int, partitions: int, whole: pd.DataFrame) -> None:
    complib, complevel = CASES[case]
    if method == "pandas":
        whole.to_hdf(path, key="df", format="table", complib=complib, complevel=complevel, mode="w")
    elif method == "dd.to_hdf":
        kwargs = {"complib": complib, "complevel": complevel} if complib else {}
        dask_frame(rows, partitions).to_hdf(path, "/df", format="table", scheduler="threads", **kwargs)
    else:
        filters = tables.Filters(complib=complib, complevel=complevel, shuffle=True) if complib else None
        scheduler = "processes" if method.endswith("processes") else "threads"
        with dask.config.set(scheduler=scheduler):
            dask_tables.to_tables(dask_frame(rows, partitions), path, "/df", filters=filters)


def append(method: str, path: Path, rows: int, partitions: int, whole: pd.DataFrame) -> None:
    """Append the frame to the table at ``path`` (zlib 1 + shuffle, as the table was written)."""
    if method == "pandas":
        whole.to_hdf(path, key="df", format="table", append=True, data_columns=True)
    elif method == "dd.to_hdf":
        dask_frame(rows, partitions).to_hdf(path, "/df", format="table", append=True, scheduler="threads")
    else:
        scheduler = "processes" if method.endswith("processes") else "threads"
        with dask.config.set(scheduler=scheduler):
            dask_tables.to_tables(dask_frame(rows, partitions), path, "/df", append=True)


def folder_bytes(folder: str) -> int:
    """Bytes every file under ``folder`` takes on disk (allocated blocks)."""
    total = 0
    for root, _, files in os.walk(folder):
        for name in files:
            with contextlib.suppress(FileNotFoundError):
                total += os.lstat(os.path.join(root, name)).st_blocks * 512
    return total


class PeakDisk:
    """The largest extra disk use of a folder while the block runs (sampled every 5 ms)."""

    def __init__(self, folder: str) -> None:
        self.folder = folder
        self.start = folder_bytes(folder)
        self.peak = self.start
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, folder_bytes(self.folder))

    def __enter__(self) -> PeakDisk:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.end = folder_bytes(self.folder)

    def ratio(self) -> float:
        """Peak extra disk over the bytes the write added (pandas: about 1.0)."""
        return (self.peak - self.start) / max(self.end - self.start, 1)


def time_methods(
    methods: list[str],
    folder: str,
    case: str,
    anchor: str,
    write_one: Callable[[str, Path], None],
    after: Callable[[Path, PeakDisk], str],
    start_from: Path | None = None,
) -> None:
    """Each method's ``write_one(method, path)`` in a fresh folder, timed, its peak disk watched; prints a table.

    ``start_from`` is copied to ``path`` first, untimed (the table an append
    grows).  ``after(path, disk)`` checks the file and gives the rest of the
    method's row.  The last row: each method's speed against ``anchor``.
    """
    seconds: dict[str, float] = {}
    for method in methods:
        work = Path(folder) / f"{case}-{method}".lstrip("-")
        work.mkdir()
        path = work / "f.h5"
        if start_from is not None:
            shutil.copyfile(start_from, path)
        start = time.perf_counter()
        with PeakDisk(str(work)) as disk:
            write_one(method, path)
        seconds[method] = time.perf_counter() - start
        label = f"{case:13s} " if case else ""
        print(f"  {label}{method:20s} {seconds[method]:7.2f} s  {after(path, disk)}", flush=True)
        shutil.rmtree(work)
    if anchor in seconds:
        ratios = ", ".join(f"{m} {seconds[anchor] / s:.2f}x" for m, s in seconds.items() if m != anchor)
        print(f"  {case + ': ' if case else ''}speed vs {anchor}: {ratios}")


def run_appends(args: argparse.Namespace, folder: str) -> None:
    existing = partition(10_000, args.existing)
    existing.index = existing.index - pd.Timedelta(days=3650)  # before every appended row
    base = Path(folder) / "base.h5"
    existing.to_hdf(base, key="df", format="table", data_columns=True, complib="zlib", complevel=1)
    for parts in sorted({1, args.partitions}):
        rows = args.rows // parts * parts
        whole = dask_frame(rows, parts).compute(scheduler="threads")
        print(f"append {rows:,} rows in {parts} partition(s) to a table of {len(existing):,} rows:")
        time_methods(
            args.methods,
            folder,
            "",
            "pandas",
            functools.partial(append, rows=rows, partitions=parts, whole=whole),
            functools.partial(appended, whole=whole, existing=len(existing)),
            start_from=base,
        )


def written(path: Path, disk: PeakDisk, whole: pd.DataFrame) -> str:
    """The rest of a write's row: the file holds ``whole``; its size, and the peak disk against it."""
    check_equal(pd.read_hdf(path, "df"), whole)
    return f"{os.path.getsize(path) / 2**20:7.1f} MiB  peak disk {disk.ratio():.2f}x the file"


def appended(path: Path, disk: PeakDisk, whole: pd.DataFrame, existing: int) -> str:
    """The rest of an append's row: ``whole`` follows the ``existing`` rows; the peak extra disk."""
    check_equal(pd.read_hdf(path, "df").iloc[existing:], whole)
    return f"peak extra disk {disk.ratio():.2f}x the bytes added"


def check_equal(back: pd.DataFrame, whole: pd.DataFrame) -> None:
    """``back`` holds ``whole``'s values (``assert_frame_equal`` boxes every categorical value: minutes)."""
    assert back.index.equals(whole.index) and list(back.columns) == list(whole.columns)
    for name in whole.columns:
        have, want = back[name], whole[name]
        if isinstance(want.dtype, pd.CategoricalDtype):
            assert list(have.cat.categories) == list(want.cat.categories), name
            assert np.array_equal(have.cat.codes.to_numpy(), want.cat.codes.to_numpy()), name
        else:
            assert np.array_equal(have.to_numpy(dtype=object), want.to_numpy(dtype=object)), name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--methods", nargs="+", default=METHODS, choices=METHODS)
    parser.add_argument("--dir", default=None, help="folder for the files (default: a temporary one)")
    parser.add_argument("--append", action="store_true", help="time appends to an existing table")
    parser.add_argument("--existing", type=int, default=100_000, help="rows of the table appended to")
    args = parser.parse_args()
    if args.append:
        with tempfile.TemporaryDirectory(dir=args.dir) as folder:
            run_appends(args, folder)
        return
    rows = args.rows // args.partitions * args.partitions
    whole = dask_frame(rows, args.partitions).compute(scheduler="threads")
    print(f"{rows:,} rows in {args.partitions} partitions; dask {dask.__version__}, pandas {pd.__version__}")
    with tempfile.TemporaryDirectory(dir=args.dir) as folder:
        for case in args.cases:
            time_methods(
                args.methods,
                folder,
                case,
                "dd.to_hdf",
                functools.partial(write, case=case, rows=rows, partitions=args.partitions, whole=whole),
                functools.partial(written, whole=whole),
            )


if __name__ == "__main__":
    main()
