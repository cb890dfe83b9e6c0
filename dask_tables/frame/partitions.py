"""Row ranges of tables as data frame partitions: planning, and sorted-index divisions.

A partition is a row range ``[start, stop)`` of one file's table.  Partitions
are cut at multiples of ``rows`` counted from the table's first row, and
``rows`` is a multiple of the table's HDF5 chunk rows where the asked
``chunksize`` holds a chunk, so no HDF5 chunk is read by two partitions
(except where ``start``/``stop`` cut one, or ``chunksize`` is below a chunk).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import dask
import numpy as np
import pandas as pd
from dask.utils import parse_bytes

from ..errors import MissingFilterError
from ..hdf5.calls import other_record_layout, read_rows
from ..hdf5.fields import take_field

__all__ = [
    "RowRange",
    "coordinate_partitions",
    "divisions_or_reason",
    "known_divisions",
    "partition_rows",
    "plan_partitions",
    "row_window",
    "sample_divisions",
    "sample_rows",
    "sorted_divisions",
    "unsorted_reason",
]


@dataclass(frozen=True)
class RowRange:
    """Rows ``[start, stop)`` of the table in file number ``file``; ``offset`` numbers its row 0.

    ``rows``, when set, are the rows to read (of the file, in ``[start,
    stop)``, in this order): a ``where`` of row numbers.
    """

    file: int
    start: int
    stop: int
    offset: int
    rows: tuple[int, ...] | None = None

    @property
    def first_label(self) -> int:
        """The global row number of the range's first row."""
        return self.offset + self.start


def partition_rows(chunksize: int | None, chunk_rows: int, row_nbytes: int) -> int:
    """Rows per partition: at most ``chunksize`` (as in ``dd.read_hdf``), in whole HDF5 chunks where it allows.

    ``chunksize`` is rounded down to whole HDF5 chunks when it holds one at
    least, else taken as is (partitions then share chunks).  Without it:
    about dask's ``array.chunk-size`` in bytes, in whole HDF5 chunks.

    Examples
    --------
    >>> partition_rows(1000, 64, 8)
    960
    >>> partition_rows(2, 3855, 8)  # never more rows than asked
    2
    >>> partition_rows(None, 1000, 1024)  # 128 MiB of 1 KiB rows
    131000
    """
    chunk_rows = max(1, chunk_rows)
    if chunksize is None:
        target = parse_bytes(dask.config.get("array.chunk-size")) // max(1, row_nbytes)
        return max(chunk_rows, round(target / chunk_rows) * chunk_rows)
    if isinstance(chunksize, bool) or int(chunksize) != chunksize or chunksize < 1:
        raise ValueError(
            f"chunksize={chunksize!r}: the chunksize must be a positive integer (rows per partition)"
        )
    chunksize = int(chunksize)
    return chunksize // chunk_rows * chunk_rows if chunksize >= chunk_rows else chunksize


def row_window(start: int | None, stop: int | None, total: int, where: str) -> tuple[int, int]:
    """``start``/``stop`` (negative ones count from the end) checked against ``total`` rows.

    Out of range raises :class:`ValueError` in dask's words (``dd.read_hdf``'s
    "number of rows", "is above or equal to"), which users' code matches.

    Examples
    --------
    >>> row_window(None, -2, 10, "t.h5: node /t")
    (0, 8)
    >>> row_window(0, 11, 10, "t.h5: node /t")
    Traceback (most recent call last):
    ...
    ValueError: t.h5: node /t: stop=11 exceeds the number of rows (10)
    >>> row_window(12, None, 10, "t.h5: node /t")
    Traceback (most recent call last):
    ...
    ValueError: t.h5: node /t: start=12 is above or equal to the number of rows (10)
    """
    bounds = []
    for name, value, default in (("start", start, 0), ("stop", stop, total)):
        if value is None:
            bounds.append(default)
            continue
        if int(value) != value:
            raise TypeError(f"{where}: {name}={value!r} must be an integer")
        position = int(value) + total if value < 0 else int(value)
        if position < 0:
            raise ValueError(
                f"{where}: {name}={value!r} is before the first row (the number of rows is {total})"
            )
        if position > total:
            if name == "stop":
                raise ValueError(f"{where}: stop={value!r} exceeds the number of rows ({total})")
            raise ValueError(f"{where}: start={value!r} is above or equal to the number of rows ({total})")
        bounds.append(position)
    low, high = bounds
    if low > high:
        raise ValueError(f"{where}: start={start!r} is above or equal to stop={stop!r} (row {high})")
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


def coordinate_partitions(parts: Sequence[RowRange], numbers: np.ndarray) -> list[RowRange]:
    """Partitions that read the global row ``numbers``, in their order: each run that falls in one of ``parts``.

    Examples
    --------
    >>> parts = plan_partitions([10, 5], 4, 0, 15)
    >>> [(p.file, p.start, p.stop, p.rows) for p in coordinate_partitions(parts, np.array([1, 2, 9, 12, 3]))]
    [(0, 1, 3, (1, 2)), (0, 9, 10, (9,)), (1, 2, 3, (2,)), (0, 3, 4, (3,))]
    """
    if len(numbers) == 0:
        return [RowRange(0, 0, 0, 0, ())]
    firsts = np.array([p.first_label for p in parts])
    owner = np.searchsorted(firsts, numbers, side="right") - 1
    breaks = np.flatnonzero(np.diff(owner)) + 1
    found = []
    for run, run_owner in zip(np.split(numbers, breaks), owner[np.r_[0, breaks]], strict=True):
        part = parts[int(run_owner)]
        local = run - part.offset
        found.append(
            RowRange(part.file, int(local.min()), int(local.max()) + 1, part.offset, tuple(local.tolist()))
        )
    return found


SAMPLES_PER_PARTITION = 16


def sample_rows(part: RowRange) -> np.ndarray:
    """The rows of ``part`` whose index values are sampled: evenly spaced, first and last included.

    Examples
    --------
    >>> sample_rows(RowRange(0, 100, 104, 0))
    array([100, 101, 102, 103])
    """
    spaced = np.linspace(part.start, part.stop - 1, SAMPLES_PER_PARTITION).round().astype(np.int64)
    return np.unique(spaced)


def divisions_or_reason(samples: Sequence[Any]) -> tuple[tuple[Any, ...] | None, str]:
    """Divisions from sampled index values of each partition, or ``None`` and why not.

    ``samples`` holds, per partition, the index values of its
    :func:`sample_rows` (numpy arrays or pandas indexes: numbers, or
    datetimes with or without a time zone).

    Examples
    --------
    >>> divisions_or_reason([np.array([0, 5, 9]), np.array([10, 19])])
    ((0, 10, 19), '')
    >>> divisions_or_reason([np.array([False, True])])[1]
    'the index has dtype bool: divisions need a numeric or datetime index'
    """
    if not samples or any(len(s) == 0 for s in samples):
        return None, "no rows were sampled"
    labels = [s if isinstance(s, pd.Index) else pd.Index(np.asarray(s)) for s in samples]
    values = labels[0].append(labels[1:])
    if values.dtype.kind not in "iufM":
        return None, f"the index has dtype {values.dtype}: divisions need a numeric or datetime index"
    if values.hasnans:
        return None, "the index holds NaN or NaT values"
    if not values.is_monotonic_increasing:
        return None, "the index is not sorted"
    if any(a[-1] >= b[0] for a, b in itertools.pairwise(labels)):
        return None, "an index value spans two partitions"
    return (*(_scalar(s[0]) for s in labels), _scalar(labels[-1][-1])), ""


def unsorted_reason(values: Iterable[tuple[RowRange, Any]]) -> str:
    """Why index values read in full are not sorted for divisions, or ``""`` if they are.

    ``values`` gives each non-empty partition with all its index values,
    in order.  Sorted means never falling within a partition and rising
    strictly from one partition to the next, with no NaN or NaT: exactly
    what known divisions promise.  Stops at the first partition that breaks it.

    Examples
    --------
    >>> parts = [RowRange(0, 0, 3, 0), RowRange(0, 3, 6, 0)]
    >>> unsorted_reason(zip(parts, [[1, 2, 3], [4, 5, 6]]))
    ''
    >>> unsorted_reason(zip(parts, [[1, 2, 3], [4, 9, 6]]))
    'the index is not sorted: it falls in rows 3..5 of file 0'
    """
    last = None
    for part, read in values:
        labels = read if isinstance(read, pd.Index) else pd.Index(np.asarray(read))
        where = f"rows {part.start}..{part.stop - 1} of file {part.file}"
        if labels.hasnans:
            return f"the index holds NaN or NaT values in {where}"
        if not labels.is_monotonic_increasing:
            return f"the index is not sorted: it falls in {where}"
        if len(labels) and last is not None and not last < labels[0]:
            return f"the index is not sorted, or an index value spans two partitions, at the start of {where}"
        if len(labels):
            last = labels[-1]
    return ""


def _scalar(value: Any) -> Any:
    """A numpy scalar as a Python number; a ``pandas.Timestamp`` unchanged."""
    return value.item() if isinstance(value, np.generic) else value


def known_divisions(samples: Sequence[Any]) -> tuple[object, ...] | None:
    """Divisions from evenly spaced index values of each partition (first and last included), if sorted.

    The values must never fall, and rise strictly from one partition to the
    next (a value shared by two partitions would break dask's divisions);
    otherwise ``None`` (unknown divisions).  Samples cannot prove a partition
    sorted between them, so each partition task checks its own rows again.
    See :func:`divisions_or_reason` for why they are unknown.

    Examples
    --------
    >>> known_divisions([np.array([0, 5, 9]), np.array([10, 19]), np.array([20, 25])])
    (0, 10, 20, 25)
    >>> known_divisions([np.array([0, 9]), np.array([9, 19])]) is None
    True
    >>> known_divisions([np.array([0, 7, 3, 9])]) is None
    True
    """
    return divisions_or_reason(samples)[0]


def sample_values(source: Any, field: str, parts: Sequence[RowRange]) -> list[np.ndarray]:
    """Evenly spaced values of ``field`` in each of ``parts`` (all of one file), in one open.

    ``source`` is a :class:`~dask_tables.TablesSource` of the file's table.
    PyTables reads them (``read_coordinates``), except where it must not or
    cannot: records the file lays out otherwise than PyTables (gaps,
    padding, mixed byte order), whose PyTables read may corrupt memory, are
    read in the file's own layout, or decoded directly; a filter PyTables'
    HDF5 lacks is decoded directly where the source can.
    """
    if source.storage is not None and (source.storage.memory is not None or source.remote is not None):
        # an object in a store: HDF5 must not read its chunks (never fetched to local disk)
        return [_sampled_directly(source, field, part) for part in parts]

    def read(table: Any) -> list[np.ndarray]:
        in_file = other_record_layout(table)
        if in_file is not None:
            return [
                np.concatenate([take_field(read_rows(table, range(r, r + 1), in_file), field) for r in rows])
                for rows in (sample_rows(part).tolist() for part in parts)
            ]
        return [np.asarray(table.read_coordinates(sample_rows(part), field=field)) for part in parts]

    try:
        return source.with_leaf(read)
    except MissingFilterError:
        if source.storage is None:
            raise
        return [_sampled_directly(source, field, part) for part in parts]


def _sampled_directly(source: Any, field: str, part: RowRange) -> np.ndarray:
    """The :func:`sample_rows` values of ``field`` in ``part``, each HDF5 chunk holding them decoded once."""
    rows = sample_rows(part)
    chunk_rows = source.chunkshape[0] if source.chunkshape else part.stop - part.start
    values = []
    for number in np.unique(rows // chunk_rows).tolist():
        first = max(part.start, number * chunk_rows)
        last = min(part.stop, (number + 1) * chunk_rows)
        mine = rows[(rows >= first) & (rows < last)]
        values.append(np.asarray(take_field(source[first:last], field))[mine - first])
    return np.concatenate(values)


def sample_divisions(sources: Sequence[Any], field: str, parts: Sequence[RowRange]) -> list[np.ndarray]:
    """The sampled values of the ``field`` index of each non-empty partition of ``parts`` of ``sources``."""
    samples: list[np.ndarray] = []
    for number, source in enumerate(sources):
        mine = [p for p in parts if p.file == number and p.stop > p.start]
        if mine:
            samples += sample_values(source, field, mine)
    return samples


def read_index_values(
    source: Any, field: str, parts: Sequence[RowRange]
) -> Iterator[tuple[RowRange, np.ndarray]]:
    """Each of ``parts`` (of ``source``'s file) with all the values of its ``field``: read directly where possible."""
    for part in parts:
        if part.stop > part.start:
            yield part, np.asarray(take_field(source[part.start : part.stop], field))


def sorted_divisions(sources: Sequence[Any], field: str, parts: Sequence[RowRange]) -> tuple[Any, ...] | None:
    """Known divisions of the ``field`` index over ``parts`` of ``sources``, or ``None``.

    See :func:`known_divisions`; reads a few rows a partition.
    """
    return known_divisions(sample_divisions(sources, field, parts))
