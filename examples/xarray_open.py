"""The cookbook's mean in xarray: ``xr.open_dataset(path, engine="tables", chunks={})``.

The dask_tables backend makes each array of a group an xarray variable
(dimension names from HDF5 dimension scales, else phony names shared by
equal lengths) and reads it lazily through the same source as
``from_tables``; ``chunks={}`` gives dask blocks of whole HDF5 chunks,
read directly and decoded outside every lock.

Run: ``python xarray_open.py [scheduler]`` (writes ``xarray_open.h5`` here);
scheduler is ``threads`` (default), ``processes`` or ``synchronous``.
"""

import os
import sys

import numpy as np
import tables as tb
import xarray as xr

SIZE = 100
FILENAME = "xarray_open.h5"


def create_test_file(filename):
    data = np.random.rand(SIZE, SIZE)
    with tb.open_file(filename, "w") as h5file:
        array = h5file.create_carray(
            "/",
            "array",
            title="Test Array",
            obj=data,
            chunkshape=(20, SIZE),
            filters=tb.Filters(complevel=1, complib="zlib", shuffle=True),
        )
        array.attrs.units = "K"


def main(scheduler="threads"):
    if not os.path.exists(FILENAME):
        create_test_file(FILENAME)
    ds = xr.open_dataset(FILENAME, engine="tables", chunks={})  # blocks of whole HDF5 chunks
    rows, columns = ds.array.dims  # phony_dim_0, phony_dim_1: the file has no dimension scales
    per_row = ds.array.mean(columns)  # lazy: a dask graph over the file's chunks
    mean_ = per_row.mean(rows).compute(scheduler=scheduler)
    print(f"Mean: {float(mean_)}")


if __name__ == "__main__":
    main(*sys.argv[1:])
