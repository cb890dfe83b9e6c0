"""The cookbook's mean, as a dask graph: ``from_tables(...).mean()``.

No threads, queues or locks to write: ``from_tables`` builds a dask array
whose tasks open, read and close the file through dask_tables' synchronized
registry; dask runs them on a thread pool (or processes, or a cluster).

Run: ``python from_tables_mean.py [scheduler]`` (writes ``from_tables_mean.h5`` here);
scheduler is ``threads`` (default), ``processes`` or ``synchronous``.
"""

import os
import sys

import numpy as np
import tables as tb

import dask_tables

SIZE = 100
FILENAME = "from_tables_mean.h5"
H5PATH = "/array"


def create_test_file(filename):
    data = np.random.rand(SIZE, SIZE)
    with tb.open_file(filename, "w") as h5file:
        h5file.create_carray("/", "array", title="Test Array", obj=data, chunkshape=(20, SIZE))


def main(scheduler="threads"):
    if not os.path.exists(FILENAME):
        create_test_file(FILENAME)
    x = dask_tables.from_tables(FILENAME, H5PATH, chunks=(20, SIZE))
    mean_ = x.mean().compute(scheduler=scheduler)
    print(f"Mean: {mean_}")


if __name__ == "__main__":
    main(*sys.argv[1:])
