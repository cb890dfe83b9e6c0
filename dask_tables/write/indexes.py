"""A table's PyTables indexes, built in a file of their own while the rows are still being encoded.

pandas indexes a table's index and data columns.  Writing a frame partition
by partition (``HDFStore.append`` per partition, as ``dd.to_hdf`` does), it
indexes the first partition's rows (``Column.create_index``) and PyTables
adds each later partition's rows to the index as they are flushed.  Built in
the commit, after every partition is encoded, this is most of a frame
write, serial under HDF5's lock.  Here it is a task of its own, run as soon
as the schema is known, beside the tasks that encode the partitions (those
take no lock):

1. :func:`build_indexes`: the indexed columns of every partition's staged
   records go into a table of their own, in a side file, with the same path,
   column dtypes, chunk shape and partitions as the final table, indexed as
   pandas' appends index them: every index array is the one pandas would
   write into that table.
2. :func:`copy_indexes`: the commit copies the indexes group (``_i_<table>``)
   beside the final table.  PyTables knows a column is indexed from that
   group alone, so the table opens indexed.

Indexing all rows at once (one ``create_index`` after the last partition)
sorts them into fewer slices, but takes three times as long (6.3 s against
2.1 s for 4 million rows), and PyTables' queries ran as fast on either index.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import numpy as np
import tables

from ..hdf5.calls import copy_object
from ..registry import get_lock, synchronized_file
from .records import FieldKey, Records, matching_key, widen
from .staging import load_records

__all__ = ["build_indexes", "copy_indexes"]


# The side file's table only carries the indexed values while PyTables indexes
# them (its indexes are what the commit copies): compressed, it took 2/3 of the
# final file's size on disk (a 1M-row datetime index, uncompressed).
_CARRIER_FILTERS = tables.Filters(complevel=1, complib="blosc2:lz4", shuffle=True)


def build_indexes(
    path: str,
    table_path: str,
    dtype: np.dtype,
    chunkshape: tuple[int, ...],
    columns: Sequence[tuple[FieldKey, str]],
    parts: Sequence[tuple[str, dict[FieldKey, str]]],
    after_part: Callable[[str], None] | None = None,
) -> str:
    """The indexes of ``columns``, built on a table at ``table_path`` in the side file ``path``.

    Parameters
    ----------
    path : str
        The side file, created here.
    table_path : str
        The final table's path (the indexes group is named after it, and its
        title names it).
    dtype : numpy.dtype
        The final table's record dtype.
    chunkshape : tuple of int
        The final table's chunk shape.  A PyTables index records, for its
        lighter kinds (all but ``"full"``), the table *chunk* of each value,
        not its row: built on a table with other chunks, it points to the
        wrong rows.
    columns : sequence of tuple
        ``(key, field)``: what each indexed column holds, and its field in
        ``dtype``, in the order the indexes are made.
    parts : sequence of tuple
        ``(file, fields)``: each partition's staged records (a file of
        ``write.staging.save_records``) and its fields, in
        row order: one append each, as pandas appends them.
    after_part : callable, optional
        Called with each partition's file once it is read.

    Returns
    -------
    str
        ``path``.

    Examples
    --------
    >>> import tempfile
    >>> folder = tempfile.mkdtemp()
    >>> from dask_tables.write.staging import save_records
    >>> staged = os.path.join(folder, "records-0.rec")
    >>> save_records(staged, np.array([(3, 1.5), (1, 2.5)], [("index", "<i8"), ("v", "<f8")]))
    >>> side = build_indexes(os.path.join(folder, "idx.h5"), "/df/table", np.dtype([("index", "<i8"),
    ...     ("v", "<f8")]), (1024,), [("index", "index")], [(staged, {"index": "index"})])
    >>> with tables.open_file(side) as h5:
    ...     h5.root.df.table.cols.index.is_indexed, int(h5.root.df.table.nrows)
    (True, 2)
    """
    indexed = np.dtype([(field, dtype.fields[field][0]) for _, field in columns])
    target = {key: field for key, field in columns}
    with get_lock(), synchronized_file(path, "w") as h5:  # every HDF5 call of the task, under the lock
        parent, name = table_path.rsplit("/", 1)
        table = h5.create_table(
            parent or "/",
            name,
            description=indexed,
            chunkshape=chunkshape,
            createparents=True,
            filters=_CARRIER_FILTERS,
        )
        for number, (file, fields) in enumerate(parts):
            staged = load_records(file)
            picked = {matching_key(fields, key): fields[matching_key(fields, key)] for key in target}
            table.append(widen(Records(staged, picked), indexed, target))
            if after_part is not None:
                after_part(file)
            table.flush()  # PyTables adds the rows to the indexes made after the first partition
            if number == 0:
                for _, field in columns:
                    table.colinstances[field].create_index()
    return path


def copy_indexes(path: str, table_path: str, group: tables.Group) -> None:
    """Copy the indexes group of the table at ``table_path`` in the side file ``path`` into ``group``.

    ``group`` holds the final table, of the same name.

    Examples
    --------
    See :func:`build_indexes`; the commit of a frame write calls this with
    the group that holds the final table.
    """
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: the indexes built for table {table_path} are gone")
    parent, name = table_path.rsplit("/", 1)
    with get_lock(), synchronized_file(path, "r") as side:
        copy_object(side.get_node(parent or "/"), f"_i_{name}", group)  # PyTables will not copy a hidden node
