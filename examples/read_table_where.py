"""A PyTables Table as a dask DataFrame: columns and a query pushed into the read.

Writes ``events.h5`` here (a table of detector events, with a nested
``pos`` column and an index on ``energy``), then counts and averages the
high-energy events per detector with ``read_table``: only the asked-for
columns are converted, and the ``where`` condition runs inside each
partition's read (answered from the index).

Run: ``python read_table_where.py [scheduler]``; scheduler is ``threads``
(default), ``processes`` or ``synchronous``.  Prints the mean energy of the
selected events, then the same per detector.
"""

import os
import sys

import numpy as np
import tables as tb

import dask_tables

FILENAME = "events.h5"
N = 100_000


class Event(tb.IsDescription):
    energy = tb.Float64Col(pos=0)
    detector = tb.Int8Col(pos=1)

    class pos(tb.IsDescription):
        _v_pos = 2
        x = tb.Float32Col()
        y = tb.Float32Col()


def create_events(filename):
    rng = np.random.default_rng(0)
    rows = np.zeros(N, tb.Description(Event().columns)._v_dtype)
    rows["energy"] = rng.exponential(5.0, N)
    rows["detector"] = rng.integers(0, 4, N)
    rows["pos"]["x"] = rng.normal(size=N)
    with tb.open_file(filename, "w") as f:
        table = f.create_table("/", "events", Event, filters=tb.Filters(1, "zlib", shuffle=True))
        table.append(rows)
        table.cols.energy.create_csindex()


def main(scheduler="threads"):
    if not os.path.exists(FILENAME):
        create_events(FILENAME)
    df = dask_tables.read_table(
        FILENAME, "/events", columns=["energy", "detector", "pos/x"], where="energy > 10.5", chunksize=20_000
    )
    mean_energy = df.energy.mean().compute(scheduler=scheduler)
    per_detector = df.groupby("detector").energy.mean().compute(scheduler=scheduler)
    print(f"Mean: {mean_energy}")
    print(per_detector.sort_index().to_string())


if __name__ == "__main__":
    main(*sys.argv[1:])
