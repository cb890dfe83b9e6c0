"""Row ranges of tables as data frame partitions: planning, and sorted-index divisions.

A partition is a row range ``[start, stop)`` of one file's table.  Partitions
are cut at multiples of ``rows`` counted from the table's first row, and
``rows`` is a multiple of the table's HDF5 chunk rows, so no HDF5 chunk is
read by two partitions (except where ``start``/``stop`` cut one).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import dask
import numpy as np
from dask.utils import parse_bytes

__all__ = ["RowRange", "known_divisions", "partition_rows", "plan_partitions", "row_window"]


@dataclass(frozen=True)
class RowRange:
    """Rows ``[start, stop)`` of the table in file number ``file``; ``offset`` numbers its row 0."""

    file: int
    start: int
    stop: int
    offset: int

    @property
    def first_label(self) -> int:
        """The global row number of the range's first row."""
        return self.offset + self.start


def partition_rows(chunksize: int | None, chunk_rows: int, row_nbytes: int) -> int:
    """Rows per partition: ``chunksize`` or dask's ``array.chunk-size`` in bytes, in whole HDF5 chunks.

    Examples
    --------
    >>> partition_rows(1000, 64, 8)
    1024
    >>> partition_rows(None, 1000, 1024)  # 128 MiB of 1 KiB rows
    131000
    """
    if chunksize is None:
        target = parse_bytes(dask.config.get("array.chunk-size")) // max(1, row_nbytes)
    else:
        if int(chunksize) != chunksize or chunksize < 1:
            raise ValueError(f"chunksize={chunksize!r} must be a positive number of rows")
        target = int(chunksize)
    chunk_rows = max(1, chunk_rows)
    return max(chunk_rows, round(target / chunk_rows) * chunk_rows)


def row_window(start: int | None, stop: int | None, total: int, where: str) -> tuple[int, int]:
    """``start``/``stop`` (negative ones count from the end) checked against ``total`` rows.

    Examples
    --------
    >>> row_window(None, -2, 10, "t.h5: node /t")
    (0, 8)
    >>> row_window(0, 11, 10, "t.h5: node /t")
    Traceback (most recent call last):
    ...
    IndexError: t.h5: node /t: stop=11 is out of range for 10 rows
    """
    bounds = []
    for name, value, default in (("start", start, 0), ("stop", stop, total)):
        if value is None:
            bounds.append(default)
            continue
        if int(value) != value:
            raise TypeError(f"{where}: {name}={value!r} must be an integer")
        position = int(value) + total if value < 0 else int(value)
        if not 0 <= position <= total:
            raise IndexError(f"{where}: {name}={value!r} is out of range for {total} rows")
        bounds.append(position)
    low, high = bounds
    if low > high:
        raise ValueError(f"{where}: start={start!r} is after stop={stop!r}")
    return low, high


def plan_partitions(sizes: Sequence[int], rows: int, low: int, high: int) -> list[RowRange]:
    """The partitions of global rows ``[low, high)`` over files of ``sizes`` rows.

    Each file gets its own partitions, cut at multiples of ``rows``; at
    least one (empty) partition is returned.

    Examples
    --------
    >>> [(p.file, p.start, p.stop) for p in plan_partitions([10, 5], 4, 2, 13)]
    [(0, 2, 4), (0, 4, 8), (0, 8, 10), (1, 0, 3)]
    """
    parts: list[RowRange] = []
    offset = 0
    for file, size in enumerate(sizes):
        first, last = max(low - offset, 0), min(high - offset, size)
        cut = first
        while cut < last:
            end = min(last, (cut // rows + 1) * rows)
            parts.append(RowRange(file, cut, end, offset))
            cut = end
        offset += size
    return parts or [RowRange(0, 0, 0, 0)]


def known_divisions(firsts: Sequence[object], lasts: Sequence[object]) -> tuple[object, ...] | None:
    """Divisions from each partition's first and last index value, if they prove an order.

    The values must rise strictly from one partition to the next (a value
    shared by two partitions would break dask's divisions) and never fall
    within a partition's bounds; otherwise ``None`` (unknown divisions).
    Each partition task then checks its own rows are sorted.

    Examples
    --------
    >>> known_divisions([0, 10, 20], [9, 19, 25])
    (0, 10, 20, 25)
    >>> known_divisions([0, 9], [9, 19]) is None
    True
    """
    if not firsts:
        return None
    values = np.array([v for pair in zip(firsts, lasts, strict=True) for v in pair])
    if values.dtype.kind not in "iufMm" or (values.dtype.kind in "fc" and np.isnan(values).any()):
        return None
    if not (np.all(values[0::2] <= values[1::2]) and np.all(values[1:-1:2] < values[2::2])):
        return None
    return (*(v.item() for v in values[0::2]), values[-1].item())
