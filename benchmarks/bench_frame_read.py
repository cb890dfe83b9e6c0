"""Benchmark: reading a pandas-written table with ``read_table(where=)`` against ``dd.read_hdf`` and pandas.

The file: ``--rows`` rows (10 million by default) with an int64, a float64,
a string (``str``, up to 12 characters) and a categorical column and a
DatetimeIndex, written by pandas' ``DataFrame.to_hdf(format="table",
data_columns=[...])`` (every column a data column, with pandas' PyTables
indexes), zlib level 1 + shuffle.

Tasks:

* ``scattered 1%``: ``where="i < 10000"`` (``i`` uniform in 0..1M): matching
  rows in every chunk;
* ``clustered 1%``: ``where`` on an index range holding 1% of the rows;
* ``projection``: the sum of the float column, no ``where``.

Methods (dask on its threads scheduler):

* ``pd.read_hdf``: ``pandas.read_hdf(where=..., columns=...)``, serial;
* ``dd.read_hdf + filter``: ``dask.dataframe.read_hdf`` then the same
  condition as a dask filter (or the column, for the projection);
* ``read_table``: ``dask_tables.read_table(where=..., columns=...)``.

Every answer is checked against pandas'.  Prints seconds (best of
``--repeat``) and each method's speed relative to ``pd.read_hdf`` and to
``dd.read_hdf + filter`` (higher is faster).

With ``--baseline CHECKOUT`` (a folder holding another version's
``dask_tables``, e.g. from ``git worktree add``), ``read_table`` of that
version and of this one run each task in a fresh process of its own on the
same file: the first read (the process's caches empty) and the best of
``--repeat``, each answer's row count checked against pandas', so "no
slower than before" is measured, not recalled.

Run: ``python benchmarks/bench_frame_read.py`` (options: ``--rows``,
``--repeat``, ``--dir``, ``--json``, ``--baseline``).  Targets (2 cores):
scattered 1% at least 1x ``pd.read_hdf`` and 2x ``dd.read_hdf + filter``;
clustered 1% and projection no slower than the baseline.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dask
import dask.dataframe as dd
import numpy as np
import pandas as pd
from harness import in_child

import dask_tables

VOCABULARY = np.array([f"name-{i:0{1 + i % 7}d}" for i in range(1000)], dtype=object)
START = pd.Timestamp("2020-01-01")
METHODS = ["pd.read_hdf", "dd.read_hdf + filter", "read_table"]


def frame(rows: int) -> pd.DataFrame:
    """The benchmark's frame (deterministic)."""
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "i": rng.integers(0, 1_000_000, rows),
            "f": rng.random(rows),
            "s": pd.array(VOCABULARY[rng.integers(0, len(VOCABULARY), rows)], dtype="str"),
            "c": pd.Categorical.from_codes(rng.integers(0, 8, rows), categories=list("abcdefgh")),
        },
        index=pd.date_range(START, periods=rows, freq="s", name="time"),
    )


def tasks(rows: int) -> dict[str, tuple[str | None, list[str] | None, Callable[[dd.DataFrame], Any]]]:
    """Task name -> (pandas where, columns, the same as a dask filter)."""
    first = START + pd.Timedelta(seconds=rows // 2)
    last = first + pd.Timedelta(seconds=rows // 100)
    return {
        "scattered 1%": ("i < 10000", None, lambda df: df[df.i < 10000]),
        "clustered 1%": (
            f"index >= '{first}' & index < '{last}'",
            None,
            lambda df: df.map_partitions(lambda p: p[(p.index >= first) & (p.index < last)]),
        ),
        "projection": (None, ["f"], lambda df: df[["f"]]),
    }


def run(
    method: str, path: Path, where: str | None, columns: list[str] | None, dask_filter: Callable
) -> pd.DataFrame:
    if method == "pd.read_hdf":
        return pd.read_hdf(path, "df", where=where, columns=columns)
    if method == "dd.read_hdf + filter":
        return dask_filter(dd.read_hdf(str(path), "/df")).compute(scheduler="threads")
    return dask_tables.read_table(path, "df", where=where, columns=columns).compute(scheduler="threads")


def check(got: pd.DataFrame, expected: pd.DataFrame, what: str) -> None:
    """The answer has pandas' rows, index and values (text dtypes aside: dask makes them pyarrow strings)."""
    if not (got.index.equals(expected.index) and list(got.columns) == list(expected.columns)):
        raise AssertionError(f"{what}: rows or columns differ from pandas'")
    for name in got:
        if not np.array_equal(got[name].to_numpy(object), expected[name].to_numpy(object)):
            raise AssertionError(f"{what}: column {name!r} differs from pandas'")


def child(path: str, rows: int, repeat: int, task: str) -> None:
    """In a fresh process: ``task``'s ``read_table``, the seconds of each of ``1 + repeat`` reads (prints JSON).

    The dask_tables here may be another checkout's (``--baseline``), which
    may have no :mod:`dask_tables.timing`: each read is timed here, the
    parent takes the first and the best.
    """
    where, columns, _ = tasks(rows)[task]
    times = []
    for _ in range(1 + repeat):
        start = time.perf_counter()
        got = dask_tables.read_table(path, "df", where=where, columns=columns).compute(scheduler="threads")
        times.append(time.perf_counter() - start)
    print(json.dumps({"dask_tables": dask_tables.__file__, "times": times, "rows": len(got)}))


def against_baseline(
    path: Path, rows: int, repeat: int, baseline: str, expected: dict[str, int]
) -> dict[str, Any]:
    """``read_table`` of the ``baseline`` checkout and of this one, a fresh process per task; prints them.

    ``expected``: each task's row count (pandas'), which both versions must return.
    """
    runs: dict[str, dict[str, Any]] = {"baseline": {}, "this": {}}
    for task in tasks(rows):
        for name, folder in (("baseline", baseline), ("this", None)):
            run = in_child(__file__, path, rows, repeat, task, timeout=3600, pythonpath=folder)
            if "error" in run:
                raise RuntimeError(f"{name} read_table, {task}: {run['error']}")
            run.update(first=run["times"][0], best=min(run["times"][1:]))
            if run["rows"] != expected[task]:
                raise AssertionError(
                    f"{name} read_table, {task}: {run['rows']} rows, pandas {expected[task]}"
                )
            runs[name][task] = run
        old, new = runs["baseline"][task], runs["this"][task]
        print(
            f"  {task:13s} first read {old['first']:6.3f} -> {new['first']:6.3f} s "
            f"({old['first'] / new['first']:.2f}x), best {old['best']:6.3f} -> {new['best']:6.3f} s "
            f"({old['best'] / new['best']:.2f}x)",
            flush=True,
        )
    print(f"  baseline: {next(iter(runs['baseline'].values()))['dask_tables']}")
    return runs


def main() -> None:
    if sys.argv[1:2] == ["--child"]:
        child(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--dir", default=None, help="folder for the file (default: a temporary one)")
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    parser.add_argument(
        "--baseline", default=None, help="a folder holding another version's dask_tables, timed against this"
    )
    args = parser.parse_args()
    from dask_tables.timing import best_of  # here, not above: a --baseline child's dask_tables may lack it

    print(
        f"{args.rows:,} rows; dask {dask.__version__}, pandas {pd.__version__}; load {os.getloadavg()[0]:.2f}"
    )
    figures: dict[str, Any] = {"rows": args.rows, "tasks": {}}
    with tempfile.TemporaryDirectory(dir=args.dir) as folder:
        path = Path(folder) / "frame.h5"
        start = time.perf_counter()
        frame(args.rows).to_hdf(
            path, key="df", format="table", data_columns=True, complib="zlib", complevel=1, mode="w"
        )
        size = os.path.getsize(path) / 2**20
        print(f"  written by pandas in {time.perf_counter() - start:.1f} s: {size:.1f} MiB", flush=True)
        for task, (where, columns, dask_filter) in tasks(args.rows).items():
            expected = pd.read_hdf(path, "df", where=where, columns=columns)
            seconds: dict[str, float] = {}
            for method in METHODS:
                reading = functools.partial(run, method, path, where, columns, dask_filter)
                best, got = best_of(args.repeat, reading, warm_up=False)
                check(got, expected, f"{task}, {method}")
                seconds[method] = best
                print(f"  {task:13s} {method:22s} {best:7.3f} s  ({len(got):,} rows)", flush=True)
            ours = seconds["read_table"]
            ratios = {f"vs {m}": seconds[m] / ours for m in METHODS if m != "read_table"}
            print(
                f"  {task}: read_table " + ", ".join(f"{r:.2f}x {m}" for m, r in ratios.items()), flush=True
            )
            figures["tasks"][task] = {"seconds": seconds, "read_table": ratios, "rows": len(expected)}
        if args.baseline:
            print("read_table, each version in fresh processes (baseline -> this; speed-up):", flush=True)
            expected = {task: figures["tasks"][task]["rows"] for task in figures["tasks"]}
            figures["baseline"] = against_baseline(path, args.rows, args.repeat, args.baseline, expected)
        figures["load"] = os.getloadavg()[0]
    scattered = figures["tasks"]["scattered 1%"]["read_table"]
    print(
        f"targets: scattered 1% >= 1x pd.read_hdf ({scattered['vs pd.read_hdf']:.2f}x), "
        f">= 2x dd.read_hdf + filter ({scattered['vs dd.read_hdf + filter']:.2f}x)"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
