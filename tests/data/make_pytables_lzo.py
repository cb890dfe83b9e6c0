"""Write ``pytables_lzo.h5``: chunks compressed by PyTables' own lzo filter (id 305).

PyTables' wheels are built without LZO, so this file was written once by a
PyTables built with it (Debian 12's ``python3-tables`` 3.7.0 with liblzo2
2.10): ``/usr/bin/python3 tests/data/make_pytables_lzo.py tests/data/pytables_lzo.h5``.
``tests/test_filters.py`` reads it and compares with :func:`values`.
"""

from __future__ import annotations

import sys

import numpy as np


def values() -> dict[str, tuple[np.ndarray, tuple[int, ...]]]:
    """Each node's values and chunk shape."""
    records = np.zeros(250, [("a", "<i4"), ("b", "<f8")])
    records["a"], records["b"] = np.arange(250), np.arange(250) / 3
    return {
        "carray": (np.arange(5000, dtype="<f8").reshape(100, 50) % 97, (32, 16)),
        "checked": (np.arange(5000, dtype="<i4") // 3, (1000,)),
        # incompressible: LZO does not shrink these chunks, HDF5 stores them raw (filter mask 1)
        "noise": ((np.arange(300, dtype=np.uint64) * 2654435761 % 2**32).astype("<u4"), (64,)),
        "table": (records, (100,)),
    }


def main(path: str) -> None:
    import tables

    found = values()
    with tables.open_file(path, "w") as f:
        data, chunks = found["carray"]
        f.create_carray("/", "carray", obj=data, chunkshape=chunks, filters=tables.Filters(1, "lzo"))
        data, chunks = found["checked"]
        checked = tables.Filters(1, "lzo", shuffle=False, fletcher32=True)
        f.create_carray("/", "checked", obj=data, chunkshape=chunks, filters=checked)
        data, chunks = found["noise"]
        noise = f.create_earray(
            "/",
            "noise",
            tables.UInt32Atom(),
            (0,),
            chunkshape=chunks,
            filters=tables.Filters(1, "lzo", shuffle=False),
        )
        noise.append(data)
        data, chunks = found["table"]
        f.create_table("/", "table", data.dtype, chunkshape=chunks, filters=tables.Filters(1, "lzo")).append(
            data
        )


if __name__ == "__main__":
    main(sys.argv[1])
