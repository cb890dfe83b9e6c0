"""Fields of numpy records: take one column, compare record by record, repack into another layout.

The reader (:mod:`dask_tables.array`), the frame reader (:mod:`dask_tables.frame`)
and the writer (:mod:`dask_tables.write`) all handle a table's records as
numpy structured arrays; these are the helpers they share.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["repacked", "same_values", "take_field"]


def take_field(records: Any, field: str | None) -> Any:
    """The ``field`` column (``"pos/x"`` for nested ones) of records or of a record dtype; all without one.

    Examples
    --------
    >>> import numpy as np
    >>> take_field(np.dtype([("pos", [("x", "f8"), ("y", "i2")])]), "pos/y")
    dtype('int16')
    """
    if field is not None:
        for name in field.split("/"):
            records = records[name]
    return records


def same_values(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal bytes, field by field (padding between record members ignored).

    Examples
    --------
    >>> import numpy as np
    >>> padded = np.dtype({"names": ["a"], "formats": ["i1"], "itemsize": 4})
    >>> same_values(np.zeros(2, padded), np.zeros(2, [("a", "i1")]))
    True
    """
    if a.dtype.names:
        return all(same_values(a[name], b[name]) for name in a.dtype.names)
    return a.tobytes() == b.tobytes()


def repacked(records: np.ndarray, memory: np.dtype) -> np.ndarray:
    """``records`` in the ``memory`` layout, member by member (nested records too).

    Examples
    --------
    >>> import numpy as np
    >>> gapped = np.dtype({"names": ["a", "b"], "formats": ["i1", "<i2"], "offsets": [0, 4], "itemsize": 8})
    >>> repacked(np.ones(1, gapped), np.dtype([("a", "i1"), ("b", "<i2")]))
    array([(1, 1)], dtype=[('a', 'i1'), ('b', '<i2')])
    >>> stored = np.array([((1.0, 2.0),)], dtype=[("z", [("r", "<f8"), ("i", "<f8")])])
    >>> repacked(stored, np.dtype([("z", "c16")]))  # a complex member, as HDF5 lays it out
    array([(1.+2.j,)], dtype=[('z', '<c16')])
    """
    out = np.empty(records.shape, dtype=memory)
    _copy_members(records, out)
    return out


def _copy_members(source: np.ndarray, target: np.ndarray) -> None:
    if target.dtype.kind == "c" and source.dtype.names:  # HDF5 stores a complex as a compound (r, i)
        real, imag = source.dtype.names[:2]
        target.real, target.imag = source[real], source[imag]
        return
    if target.dtype.names is None:
        target[...] = source
        return
    for name in target.dtype.names:
        _copy_members(source[name], target[name])
