"""Benchmark: ``read_table`` against the tools a user would otherwise pick for HDF5 tables.

Two files hold the same ``--rows``-row table (``energy`` uniform in [0, 100),
``time`` sorted, ``count``, ``x``): one written by PyTables (``Table.append``,
completely sorted indexes on ``energy`` and ``time``), one by pandas
(``to_hdf(format="table", data_columns=["energy", "time"])``, which indexes
them too); both zlib level 1 + shuffle unless ``--complib`` says otherwise.
In the same run it times, best of ``--repeat`` (page cache warm):

* ``mean``: the mean of the ``energy`` column;
* ``count clustered``: how many rows have ``time < rows/100`` (1% of them,
  together at the start: the index finds them and little is read);
* ``count scattered``: how many rows have ``energy < 1`` (1% of them, spread
  over every chunk: whatever finds them must decode the whole table).

Both counts use the column's index (PyTables' and pandas' files index both columns).

Methods: ``read_table`` (threads) on both files; serial PyTables
``Table.read(field=...)`` / ``read_where``; ``pandas.read_hdf`` (with
``where``); ``dask.dataframe.read_hdf`` (threads; for ``count`` it reads the
column and filters, as it has no ``where``).  It prints seconds, ratios to
the anchors, checks the issue's targets, and writes JSON.

Run: ``python benchmarks/bench_table.py`` (options: ``--rows``, ``--repeat``,
``--complib``, ``--dir``, ``--json``).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import warnings
from collections.abc import Callable

import dask
import dask.dataframe as dd
import numpy as np
import pandas as pd
import tables
from harness import machine

import dask_tables
from dask_tables.timing import best_of

NODE = "/events"
KEY = "events"


def write_files(directory: str, rows: int, complib: str) -> tuple[str, str]:
    """The PyTables-written and pandas-written files, with the same rows."""
    rng = np.random.default_rng(42)
    frame = pd.DataFrame(
        {
            "energy": rng.uniform(0, 100, rows),
            "time": np.arange(rows, dtype="i8"),
            "count": rng.integers(0, 1000, rows, dtype="i4"),
            "x": rng.normal(size=rows),
        }
    )
    filters = tables.Filters(complevel=0) if complib == "none" else tables.Filters(1, complib, shuffle=True)
    plain = os.path.join(directory, "plain.h5")
    with tables.open_file(plain, "w") as f:
        table = f.create_table("/", "events", obj=frame.to_records(index=False), filters=filters)
        table.cols.energy.create_csindex()
        table.cols.time.create_csindex()
    written_by_pandas = os.path.join(directory, "pandas.h5")
    options = {} if complib == "none" else {"complevel": 1, "complib": complib}
    frame.to_hdf(written_by_pandas, key=KEY, format="table", data_columns=["energy", "time"], **options)
    return plain, written_by_pandas


def methods(plain: str, by_pandas: str, rows: int) -> dict[str, dict[str, Callable[[], float]]]:
    """For each task, the methods that compute its answer."""

    def serial_mean() -> float:
        with tables.open_file(plain) as f:
            return float(f.root.events.read(field="energy").mean())

    def serial_count(condition: str) -> float:
        with tables.open_file(plain) as f:
            return float(len(f.root.events.read_where(condition)))

    def threads(value: object) -> float:
        return float(dask.compute(value, scheduler="threads")[0])

    def count_methods(condition: str, column: str, bound: float) -> dict[str, Callable[[], float]]:
        return {
            "serial read_where": lambda: serial_count(condition),
            "read_table": lambda: threads(
                dask_tables.read_table(plain, NODE, columns=[column], where=condition)[column].count()
            ),
            "read_table (pandas file)": lambda: threads(
                dask_tables.read_table(by_pandas, KEY, columns=[column], where=condition)[column].count()
            ),
            "pandas.read_hdf": lambda: float(
                len(pd.read_hdf(by_pandas, KEY, columns=[column], where=condition))
            ),
            "dd.read_hdf + filter": lambda: threads(
                (dd.read_hdf(by_pandas, KEY, columns=[column])[column] < bound).sum()
            ),
        }

    return {
        "mean": {
            "serial Table.read": serial_mean,
            "read_table": lambda: threads(
                dask_tables.read_table(plain, NODE, columns=["energy"]).energy.mean()
            ),
            "read_table (pandas file)": lambda: threads(
                dask_tables.read_table(by_pandas, KEY, columns=["energy"]).energy.mean()
            ),
            "pandas.read_hdf": lambda: float(pd.read_hdf(by_pandas, KEY, columns=["energy"]).energy.mean()),
            "dd.read_hdf": lambda: threads(dd.read_hdf(by_pandas, KEY, columns=["energy"]).energy.mean()),
        },
        **{
            task: count_methods(condition, column, bound)
            for task, condition, column, bound in (
                ("count clustered", f"time < {rows // 100}", "time", rows // 100),
                ("count scattered", "energy < 1.0", "energy", 1.0),
            )
        },
    }


COUNT_ANCHORS = ("serial read_where", "dd.read_hdf + filter")
ANCHORS = {
    "mean": ("serial Table.read", "dd.read_hdf"),
    "count clustered": COUNT_ANCHORS,
    "count scattered": COUNT_ANCHORS,
}
TARGETS = {
    ("mean", "serial Table.read"): 1.5,
    ("mean", "dd.read_hdf"): 2.0,
    ("count clustered", "serial read_where"): 1.0,
    ("count clustered", "dd.read_hdf + filter"): 5.0,
    ("count scattered", "serial read_where"): 1.0,
    ("count scattered", "dd.read_hdf + filter"): 5.0,
}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--complib", default="zlib", help="zlib, blosc2:lz4, ... or none")
    parser.add_argument("--dir", default=None)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore", tables.NaturalNameWarning)
    report: dict = {
        "rows": args.rows,
        "complib": args.complib,
        "machine": machine(),
        "tasks": {},
    }
    with tempfile.TemporaryDirectory(dir=args.dir) as directory:
        plain, by_pandas = write_files(directory, args.rows, args.complib)
        print(
            f"{args.rows:,} rows, {args.complib}; files {os.path.getsize(plain) / 2**20:.0f} MiB (PyTables), "
            f"{os.path.getsize(by_pandas) / 2**20:.0f} MiB (pandas); {os.cpu_count()} CPUs"
        )
        for task, candidates in methods(plain, by_pandas, args.rows).items():
            timings = {name: best_of(args.repeat, function) for name, function in candidates.items()}
            answers = {round(answer, 6) for _, answer in timings.values()}
            if len(answers) != 1:
                raise SystemExit(f"{task}: the methods disagree: {timings}")
            rows = {}
            for name, (seconds, _) in timings.items():
                ratios = {f"vs {a}": timings[a][0] / seconds for a in ANCHORS[task]}
                rows[name] = {"seconds": seconds, **ratios}
            report["tasks"][task] = rows
            print(f"\n{task}: " + ", ".join(f"{r} = {timings[r][0]:.3f} s" for r in ANCHORS[task]))
            for name, row in rows.items():
                ratio_text = "  ".join(f"{k} {v:5.2f}x" for k, v in row.items() if k.startswith("vs"))
                print(f"  {name:26s} {row['seconds']:8.3f} s  {ratio_text}")
    print("\ntargets (read_table on the PyTables file):")
    report["targets"] = {}
    for (task, anchor), target in TARGETS.items():
        ratio = report["tasks"][task]["read_table"][f"vs {anchor}"]
        met = ratio >= target
        report["targets"][f"{task} vs {anchor}"] = {"ratio": ratio, "target": target, "met": met}
        print(f"  {task} vs {anchor}: {ratio:.2f}x (target {target}x) {'met' if met else 'NOT met'}")
    if args.json:
        with open(args.json, "w") as out:
            json.dump(report, out, indent=2)
    return report


if __name__ == "__main__":
    main()
