"""Write ``weather.h5``, the file whose ``dask-tables info`` output docs/cli.rst shows.

Run: ``python weather.py [directory]``, then ``dask-tables info weather.h5``.
tests/test_project.py runs it and checks that the output in docs/cli.rst is
what ``dask-tables info`` prints for it (sizes on disk vary with the
libraries' versions and are not compared).
"""

import sys
from pathlib import Path

import h5py
import numpy as np
import tables


class Reading(tables.IsDescription):
    station = tables.Int32Col()
    day = tables.Int16Col()
    hour = tables.Int8Col()
    value = tables.Float64Col(dflt=np.nan)


def write(path):
    rng = np.random.default_rng(2026)
    with tables.open_file(path, "w") as f:
        f.create_array("/", "hours", obj=np.arange(24, dtype=np.int8))
        f.create_carray(
            "/",
            "temperature",
            obj=rng.normal(10, 8, (365, 24)).astype(np.float32),
            chunkshape=(73, 24),
            filters=tables.Filters(complevel=5, complib="zlib", shuffle=True),
        )
        stations = f.create_group("/", "stations")
        f.create_carray(
            stations,
            "pressure",
            obj=np.full((365, 24), 1013.25),
            chunkshape=(365, 24),
            filters=tables.Filters(complevel=5, complib="blosc2", shuffle=False),
        )
        readings = f.create_table(stations, "readings", Reading, chunkshape=(256,))
        readings.append([(i % 10, i // 24 % 365, i % 24, rng.normal(10, 8)) for i in range(1000)])
    # HDF5's scale-offset filter: PyTables' HDF5 applies it, dask_tables has no decoder for it.
    with h5py.File(path, "a") as f:
        f["stations"].create_dataset(
            "elevation", data=rng.uniform(0, 3000, 1000).round(1), chunks=(100,), scaleoffset=1
        )
    return path


if __name__ == "__main__":
    print(write(Path(sys.argv[1] if len(sys.argv) > 1 else ".") / "weather.h5"))
