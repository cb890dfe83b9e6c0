"""``to_tables``, the public front end of every write: what is written, and where, decides the writer.

- a URL (``s3://``, ``gs://``, ``az://``): the write runs into a local
  temporary file, uploaded once complete (:mod:`dask_tables.write.remote`);
- an open pandas ``HDFStore``: its file, the store closed while the write
  commits;
- a dask or pandas DataFrame or Series: the frame writer
  (:mod:`dask_tables.write.frames`);
- an array, or a dict of them: the array writer
  (:mod:`dask_tables.write.arrays`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import tables
from dask.delayed import Delayed

from ..hdf5.paths import file_path, node_or_key, node_path
from ..remote.urls import is_url
from .arrays import array_to_tables

__all__ = ["to_tables"]


def to_tables(
    x: Any,
    path: str | os.PathLike[str],
    node: str | None = None,
    *,
    key: str | None = None,
    filters: tables.Filters | None = None,
    chunkshape: Sequence[int] | int | None = None,
    title: str = "",
    createparents: bool = True,
    overwrite: bool = False,
    extendable: bool | None = None,
    region: tuple[slice, ...] | slice | None = None,
    compute: bool = True,
    format: str = "pandas",
    data_columns: Sequence[str] | bool | None = None,
    index: bool = True,
    append: bool = False,
    min_itemsize: Mapping[str, int] | int | None = None,
    mode: str = "a",
    name_function: Callable[[int], str] | None = None,
    storage_options: Mapping[str, Any] | None = None,
) -> Delayed | list[str] | None:
    """Write a dask array into a PyTables node, compressing in parallel, all or nothing.

    Creates a ``CArray`` (an ``EArray`` with ``extendable=True``; a ``Table``
    for a structured dtype; a scalar ``Array``, without filters, for a 0-d
    array) shaped like ``x`` and writes every block.  Tasks
    compress their HDF5 chunks outside every lock (zlib, bzip2, Blosc2,
    shuffle and Fletcher-32 are encoded by dask_tables; other filters go
    through HDF5's pipeline under the lock), and the target file changes
    only in one final step, after every block was computed.  Works under
    every dask scheduler, ``dask.distributed`` included.

    A dask (or pandas) DataFrame or Series becomes a table instead: pandas'
    ``HDFStore`` "table" format (``format="pandas"``, read back by
    ``pandas.read_hdf``), or a plain PyTables ``Table`` (``format="pytables"``);
    see the frame parameters below and ``docs/writing.rst``.

    Parameters
    ----------
    x : dask.array.Array, numpy.ndarray, dict, dask.dataframe.DataFrame or pandas.DataFrame
        What to write.  A dict (node name -> array) writes several nodes of ``path`` from one
        graph, with one final step (``node`` must then be ``None``).  A
        dask or pandas DataFrame or Series is written as a table.
    path : str, os.PathLike or pandas.HDFStore
        The HDF5 file (``~`` expanded).  Its next version is built whole in
        a hidden folder beside it and moved into place by ``os.replace``: a
        new file, or a copy of an existing one with the new nodes (see
        ``docs/writing.rst``, "Crash safety").  For a frame, one ``*``
        writes one file per partition, named by ``name_function``, as
        ``dask.dataframe.to_hdf`` does.  An open ``HDFStore`` (mode "a" or
        "w") is closed while the write commits and opened again on the new
        file.  An ``s3://``, ``gs://`` or ``az://`` URL names a new object:
        the file is built whole in a local temporary folder (dask's
        ``temporary-directory``), then uploaded in one put, which never
        replaces an object that appeared meanwhile unless ``mode="w"``
        (files over 5000 MiB: a check first, then a multipart upload; see
        ``docs/writing.rst``, "Writing to object storage").  A ``*`` in
        the URL writes one object per partition of a frame.
    node : str
        Path of the node in the file, e.g. ``"/results/mean_field"``
        (``"res"`` is ``"/res"``, as pandas takes keys).  For a frame, one
        ``*`` writes one node per partition.
    key : str, optional
        pandas' and dask's name for ``node`` (``to_tables(df, path, key="res")``).
    filters : tables.Filters, optional
        Compression of a new node (``tables.Filters(complib="blosc2:zstd",
        complevel=5, shuffle=True)``...).  Default: none; with
        ``overwrite=True``, those of the node replaced (give
        ``tables.Filters()`` for none).
    chunkshape : tuple of int, optional
        HDF5 chunk shape of a new node.  By default one that divides the
        dask blocks (about 1 MiB); a given one that does not makes
        ``to_tables`` rechunk ``x`` to multiples of it, with a
        :class:`~dask_tables.RechunkWarning`.  With ``overwrite=True``, that of the
        node replaced where the dask blocks are multiples of it.
    title : str, optional
        Title of a new node.
    createparents : bool, optional
        Create missing groups on the way to ``node`` (default ``True``).
    overwrite : bool, optional
        Replace an existing node (only in the final step: until then the
        old node is untouched).  Without it an existing node raises
        :class:`dask_tables.NodeExistsError`.
    extendable : bool, optional
        Create an ``EArray`` (extendable along axis 0) instead of a ``CArray``.
        Default: ``False``; with ``overwrite=True``, whether the node
        replaced was an ``EArray``.
    region : tuple of slice, optional
        Write ``x`` into this region of an existing node (array or table) of
        the same dtype (or one it casts to safely), which keeps its filters
        and chunk shape.
    compute : bool, optional
        Run the write now (default) and return ``None``; ``False`` returns a
        ``dask.delayed.Delayed`` that writes when computed.
    format : {"pandas", "table", "t", "pytables"}, optional
        Frames only.  ``"pandas"`` (default; pandas' own names ``"table"``
        and ``"t"`` too): pandas' ``HDFStore`` "table" format under the key
        ``node`` (a group holding ``table``), read back by
        ``pandas.read_hdf``, ``HDFStore.select(where=...)`` and
        :func:`dask_tables.read_table`.  ``"pytables"`` (formerly
        ``"tables"``, still taken): a plain ``Table``, one column per frame
        column (``"a/b"`` nests ``b`` in ``a``), strings as UTF-8 bytes.
        pandas' ``"fixed"`` is refused with what to use instead.
    data_columns : list of str or True, optional
        Frames, ``format="pandas"``: the columns stored as their own table
        columns (queryable in ``where``), as in pandas.
    index : bool, optional
        Frames.  ``format="pandas"``: make PyTables indexes on the index and
        the data columns, as pandas does (default ``True``).
        ``format="pytables"``: store the frame's index as the first column,
        named by the index name (or ``"index"``).
    append : bool, optional
        Frames, ``format="pandas"``: add the rows to the existing table
        ``node``, whose schema the frame must match (else ``ValueError``
        naming the column).  Also all or nothing.
    min_itemsize : dict or int, optional
        Frames: an int sizes every string column at least that many bytes,
        as in pandas; a dict maps column name -> the stored size in bytes of string columns (a column name,
        ``"index"``, or ``"values"`` for every string column that is not a
        data column); by default the longest string of any partition.
        A size smaller than a column's longest string raises ``ValueError``
        naming the column.  As in pandas, a column named here becomes a data
        column.

    mode : {"a", "w", "r+"}, optional
        As pandas: ``"a"`` (default) adds to the file or creates it;
        ``"w"`` replaces the file by one holding only this write (atomically,
        at the commit); ``"r+"`` requires the file to exist.
    name_function : callable, optional
        Frames with a ``*`` in ``path`` or ``node``: partition number ->
        the text in place of ``*`` (default: the number, zero-padded so
        that names sort in partition order), as ``dask.dataframe.to_hdf``.
    storage_options : dict, optional
        For a URL: credentials and endpoint, as :func:`dask_tables.from_tables`
        takes them (``key``, ``secret``, ``endpoint_url``...).

    Returns
    -------
    None, list of str or dask.delayed.Delayed
        For an array ``None``; for a frame the file (or URL) each partition
        was written to, as ``dask.dataframe.to_hdf`` returns them
        (``["out.h5", "out.h5"]`` for two partitions in one file); with
        ``compute=False``, a ``Delayed``.

    Raises
    ------
    PermissionError
        The file, or its folder, is read-only.
    FileExistsError
        An object exists at the URL (``mode="w"`` replaces it).
    dask_tables.NodeExistsError
        ``node`` exists and ``overwrite`` is false.
    dask_tables.RegionMismatchError
        ``region`` does not fit the node, or the dtype does not.
    dask_tables.NotHDF5FileError
        ``path`` is not an HDF5 file, or its folder is missing.
    IsADirectoryError
        ``path`` is not an HDF5 file, or its folder is missing.
    FileNotFoundError
        ``path`` is not an HDF5 file, or its folder is missing.
    tables.NoSuchNodeError
        ``region`` names a missing node, or a parent group is missing and
        ``createparents`` is false.
    TypeError
        ``x`` is not an array, has a dtype PyTables cannot store, or a bad
        node name or chunk shape.
    ValueError
        ``x`` is not an array, has a dtype PyTables cannot store, or a bad
        node name or chunk shape.

    Notes
    -----
    Each of these errors is raised before any task runs, with the file
    untouched.

    A failure in any task (an exception, a killed worker, a full disk)
    leaves the target file as it was: the blocks are staged in a hidden
    folder next to it (``.<name>.dask-tables-<token>``), which is removed
    (with ``compute=False``, only a run that reaches the final step removes
    it).  A new file is created by ``os.replace``, atomically; if the file
    appeared meanwhile (two lazy writes of one new file computed together),
    the nodes are added to it as to any existing file, with the same checks.  Into an existing file, the
    final step copies the staged chunks (no compression left to do) while
    holding the file open for writing: a process killed during that step
    can damage the file, since HDF5 keeps no journal; an exception in it
    removes what it added.  Writes into a ``region`` of an existing node
    happen in place during that step.

    Examples
    --------
    >>> import dask.array as da, numpy as np, tables
    >>> import dask_tables
    >>> x = da.arange(1000.0, chunks=250).reshape(100, 10)
    >>> dask_tables.to_tables(x, "out.h5", "/results/field",
    ...                       filters=tables.Filters(complib="zlib", complevel=1, shuffle=True))
    >>> with tables.open_file("out.h5") as f:
    ...     field = f.root.results.field
    ...     print(field.chunkshape == (25, 10), field[3, 2])
    True 32.0
    >>> dask_tables.to_tables(-x[:10], "out.h5", "/results/field", region=(slice(90, 100),))
    >>> float(dask_tables.from_tables("out.h5", "/results/field")[95, 0].compute())
    -50.0

    A data frame, in pandas' format:

    >>> import dask.dataframe as dd, pandas as pd
    >>> df = dd.from_pandas(pd.DataFrame({"a": range(6), "s": list("uvwxyz")}), npartitions=2)
    >>> dask_tables.to_tables(df, "out.h5", "/frame", data_columns=["a"])  # each partition's file
    ['out.h5', 'out.h5']
    >>> pd.read_hdf("out.h5", "frame", where="a > 3")["s"].tolist()
    ['y', 'z']
    """
    node = node_or_key(node, key, "to_tables")
    if is_url(path):
        from .remote import write_object

        def write(
            local: str, compute: bool, mode: str, name_function: Callable[[int], str] | None = name_function
        ) -> Delayed | list[str] | None:
            return to_tables(
                x, local, node, filters=filters, chunkshape=chunkshape, title=title,
                createparents=createparents, overwrite=overwrite, extendable=extendable, compute=compute,
                format=format, data_columns=data_columns, index=index, min_itemsize=min_itemsize, mode=mode,
                name_function=name_function,
            )  # fmt: skip

        frame = _is_frame(x)
        return write_object(
            write,
            os.fsdecode(path),
            storage_options,
            compute=compute,
            mode=mode,
            append=append,
            region=region,
            node=node if isinstance(node, str) else None,
            partitions=getattr(x, "npartitions", 1) if frame else None,
            name_function=name_function,
        )
    if _is_hdf_store(path):
        return _through_store(
            x, path, node, filters=filters, chunkshape=chunkshape, title=title, createparents=createparents,
            overwrite=overwrite, extendable=extendable, region=region, compute=compute, format=format,
            data_columns=data_columns, index=index, append=append, min_itemsize=min_itemsize, mode=mode,
            name_function=name_function,
        )  # fmt: skip
    shown = file_path(path)
    path = os.path.abspath(shown)
    node = _absolute(node)
    if _is_frame(x):
        from .frames import frame_to_tables

        if region is not None or extendable is not None:
            raise TypeError(f"{path}: region= and extendable= are for arrays, not data frames")
        if node is None:
            raise TypeError("to_tables: give the node to write, e.g. to_tables(df, 'out.h5', '/df')")
        return frame_to_tables(
            x,
            path,
            node,
            mode=mode,
            name_function=name_function,
            shown_path=shown,
            format=format,
            data_columns=data_columns,
            index=index,
            filters=filters,
            chunkshape=chunkshape,
            title=title,
            createparents=createparents,
            append=append,
            overwrite=overwrite,
            min_itemsize=min_itemsize,
            compute=compute,
        )
    _refuse_frame_options(format, data_columns, index, append, min_itemsize, name_function)
    return array_to_tables(
        x, path, node, filters=filters, chunkshape=chunkshape, title=title, createparents=createparents,
        overwrite=overwrite, extendable=extendable, region=region, compute=compute, mode=mode,
    )  # fmt: skip


def _refuse_frame_options(
    format: str,
    data_columns: Sequence[str] | bool | None,
    index: bool,
    append: bool,
    min_itemsize: Mapping[str, int] | int | None,
    name_function: Callable[[int], str] | None,
) -> None:
    """Raise if an option only data frames have is given with arrays."""
    frame_only = {"format": format != "pandas", "data_columns": data_columns is not None, "index": not index}
    frame_only.update(
        append=append, min_itemsize=min_itemsize is not None, name_function=name_function is not None
    )
    if any(frame_only.values()):
        given = ", ".join(k for k, v in frame_only.items() if v)
        raise TypeError(f"to_tables: {given} are for data frames, not arrays")


def _absolute(node: Any) -> Any:
    """A node path as pandas takes a key: ``"res"`` is ``"/res"``."""
    return node_path(node) if isinstance(node, str) and node else node


def _is_hdf_store(path: Any) -> bool:
    """A pandas ``HDFStore`` (checked without importing pandas)."""
    return type(path).__name__ == "HDFStore" and type(path).__module__.startswith("pandas")


def _through_store(x: Any, store: Any, node: str | None, **kwargs: Any) -> Delayed | list[str] | None:
    """``to_tables`` into the file of an open pandas ``HDFStore``, as ``dd.to_hdf`` takes one.

    The store is closed while the write commits (the commit replaces the
    file: an open handle would keep writing to the old one), then opened
    again on the new file, in a mode that keeps what was written.
    """
    if kwargs["compute"] is False:
        raise TypeError(f"{store.filename}: with compute=False, give the file's path, not an open HDFStore")
    mode = store._mode
    if mode == "r":
        raise ValueError(f"{store.filename}: the HDFStore is open read-only; open it with mode='a' to write")
    filename = store.filename
    was_open = store.is_open
    store.close()
    try:
        return to_tables(x, filename, node, **kwargs)
    finally:
        if was_open:
            store.open("a" if mode in ("a", "w") else mode)


def _is_frame(x: Any) -> bool:
    """A pandas or dask DataFrame or Series (checked without importing pandas for arrays)."""
    module = type(x).__module__
    if not (module.startswith("pandas") or module.startswith("dask")):
        return False
    import dask.dataframe as dd
    import pandas as pd

    return isinstance(x, (pd.DataFrame, pd.Series, dd.DataFrame, dd.Series))
