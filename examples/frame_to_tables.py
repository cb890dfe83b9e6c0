"""A dask DataFrame written into an HDF5 file with ``to_tables``, and read back by pandas.

Builds a dask DataFrame of detector events (numbers, a categorical, a
timestamp index, and station names that grow longer from partition to
partition, which makes ``dask.dataframe.to_hdf`` fail), writes it in
pandas' table format into ``frame.h5`` here with ``to_tables`` (compressed,
``energy`` as a data column, so pandas indexes and queries it), then reads
it back twice: pandas' ``read_hdf`` with a ``where`` on ``energy``, and
``dask_tables.read_table``.

Run: ``python frame_to_tables.py [scheduler]``; scheduler is ``threads``
(default), ``processes`` or ``synchronous``.  Prints the number of selected
events, their mean energy, and the longest station name read back.
"""

import sys

import dask
import dask.dataframe as dd
import numpy as np
import pandas as pd
import tables

import dask_tables

FILENAME = "frame.h5"
N = 50_000
PARTS = 5


def events(number: int) -> pd.DataFrame:
    rng = np.random.default_rng(number)
    rows = N // PARTS
    start = pd.Timestamp("2026-01-01") + pd.Timedelta(minutes=rows * number)
    return pd.DataFrame(
        {
            "energy": rng.exponential(5.0, rows),
            "detector": pd.Categorical(rng.integers(0, 4, rows).astype(str), categories=list("0123")),
            "station": [f"station-{'x' * number}{i % 7}" for i in range(rows)],  # longer each partition
        },
        index=pd.date_range(start, periods=rows, freq="min", name="time"),
    )


def main(scheduler: str = "threads") -> None:
    parts = [dask.delayed(events)(number) for number in range(PARTS)]
    df = dd.from_delayed(parts, meta=events(0).iloc[:0])
    with dask.config.set(scheduler=scheduler):
        dask_tables.to_tables(
            df,
            FILENAME,
            "/events",
            data_columns=["energy"],
            filters=tables.Filters(complib="zlib", complevel=1, shuffle=True),
            overwrite=True,
        )
    selected = pd.read_hdf(FILENAME, "events", where="energy > 10.5")
    print(f"Selected: {len(selected)}")
    print(f"Mean: {selected['energy'].mean()}")
    back = dask_tables.read_table(FILENAME, "/events")
    print(f"Longest station: {back['station'].str.len().max().compute(scheduler=scheduler)}")


if __name__ == "__main__":
    main(*sys.argv[1:])
