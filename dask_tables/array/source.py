"""The lazy, picklable array behind every dask chunk: one node of one file.

A :class:`TablesSource` records what graph construction learned about a node
(shape, dtype, chunkshape) and the file's :class:`~dask_tables.hdf5.fingerprint.Fingerprint`.
It holds no open handle: every ``source[key]`` opens the file through the
synchronized registry, reads, and closes it again, so the source pickles
with plain :mod:`pickle` and travels to processes and cluster workers.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import dask
import numpy as np
import tables

from .. import diagnostics
from ..errors import (
    MissingFilterError,
    at_node,
    change_advice,
    rebuild_advice,
    unreadable_file,
)
from ..filters import filter_class
from ..hdf5.calls import other_record_layout, read_rows
from ..hdf5.fields import repacked, take_field
from ..hdf5.files import check_hdf5_file
from ..hdf5.fingerprint import Fingerprint, check_unchanged
from ..hdf5.paths import PathLike, file_path, node_path
from ..hdf5.pickles import refusing_pickles
from ..hdf5.storednode import StoredFilter, StoredNode, hdf5_can_apply, stored_filters
from ..registry import get_lock, synchronized_file
from ..remote.urls import is_url, local_path
from .direct import read_direct
from .selection import plan_read
from .verdict import direct_read_reason, direct_storage

__all__ = ["TablesSource"]


T = TypeVar("T")

# What PyTables raises on a damaged file, besides HDF5's own errors: a damaged
# attribute's bytes are decoded as UTF-8, or given to Python with a negative size.
DAMAGED_FILE_ERRORS = (tables.HDF5ExtError, UnicodeDecodeError, SystemError)


def _nothing(leaf: tables.Leaf) -> None:
    return None


def _ints(values: Any) -> tuple[int, ...]:
    # PyTables reports shapes as tuples of np.int64.
    return tuple(int(v) for v in values)


def refuse_missing_filter(leaf: tables.Leaf, path: str, node: str) -> None:
    """Raise :class:`~dask_tables.MissingFilterError` if ``leaf`` has a filter HDF5 cannot apply.

    Call with the file open and the process lock held, after an HDF5 read
    of ``leaf`` failed: a missing filter is the real reason, not a damaged
    file.  Returns where every filter is available to HDF5 (or a filter's
    id is unknown).

    Examples
    --------
    >>> import numpy as np, tables
    >>> with tables.open_file("example.h5", "w") as f:
    ...     x = f.create_carray("/", "x", obj=np.arange(4), chunkshape=(2,), filters=tables.Filters(1))
    ...     refuse_missing_filter(x, "example.h5", "/x")  # zlib: HDF5 has it
    """
    if leaf.chunkshape is None:
        return
    for stored in stored_filters(leaf):
        if stored.id < 0 or hdf5_can_apply(stored.id):
            continue
        raise MissingFilterError(
            path, node, stored.id, stored.stored_name or "no name recorded", _why_not_decoded(leaf, stored)
        )


def _why_not_decoded(leaf: tables.Leaf, stored: StoredFilter) -> str:
    """Why dask_tables' own decoders do not read ``leaf`` (a filter HDF5 lacks is in its pipeline)."""
    if filter_class(stored.name) is None:
        return "dask_tables has no decoder for it"
    reason = direct_read_reason(leaf)
    if reason is None:
        return "dask_tables decodes it only on the direct path, which was turned off (direct=False)"
    return f"dask_tables decodes it, but cannot read this node directly: {reason}"


def _resolve_node(h5file: tables.File, path: str, node: str) -> tables.Leaf:
    """Return the leaf at ``node``, following soft links; specific errors otherwise."""
    try:
        obj = h5file.get_node(node)
        if isinstance(obj, tables.link.SoftLink):
            target = obj()
            if target is None:
                raise tables.NoSuchNodeError(f"soft link {node} points to missing {obj.target}")
            obj = target
    except tables.NoSuchNodeError as err:
        raise tables.NoSuchNodeError(f"{path}: no node {node!r} in the file ({err})") from None
    if isinstance(obj, (tables.Table, tables.Array)):
        return obj
    kind = type(obj).__name__
    raise TypeError(
        f"{at_node(path, node)} is a {kind}, not an array-like node "
        "(Array, CArray, EArray or Table); dask_tables cannot read it"
    )


def _field_dtype(table: tables.Table, path: str, field: str) -> tuple[np.dtype, tuple[int, ...]]:
    names = table.description._v_pathnames
    if field not in names:
        raise ValueError(
            f"{at_node(path, table._v_pathname)}: the table has no field {field!r}; "
            f"its fields are {', '.join(names)}"
        )
    return _split_cell(take_field(table.dtype, field))


def _split_cell(dtype: np.dtype) -> tuple[np.dtype, tuple[int, ...]]:
    """Split a subarray dtype (``('<f4', (2, 3))``) into base dtype and cell shape."""
    if dtype.subdtype is None:
        return dtype, ()
    base, cell_shape = dtype.subdtype
    return base, _ints(cell_shape)


@dataclass(frozen=True)
class TablesSource:
    """A node of a PyTables file, read lazily: the array that dask chunks.

    Build it with :meth:`TablesSource.open`.  Indexing it (``source[key]``)
    opens the file, checks that it is unchanged, reads exactly
    ``node[key]`` (or one column of a table, with ``field``) and closes the
    file, all under the process-wide registry lock.

    Attributes
    ----------
    path : str
        Absolute path of the file.
    node : str
        Path of the node inside the file.
    shape : tuple of int
        Shape of the array that indexing returns.
    dtype : numpy.dtype
        Its dtype (the record dtype for a whole table).
    chunkshape : tuple of int or None
        The node's HDF5 chunk shape in the same axes, ``None`` if contiguous.
    fingerprint : Fingerprint
        The file's identity and version when the source was built.
    field : str or None
        The table column read, ``"group/name"`` for nested columns.
    read_ndim : int
        Leading axes that HDF5 slices; the rest are cell dimensions.
    storage : StoredNode or None
        How the node's chunks are stored, when they are read directly
        (:mod:`dask_tables.array.direct`); ``None`` reads through PyTables.
    row_nbytes : int or None
        For a table: bytes of one whole record, what reading a row costs
        even for one column.
    allow_pickles : bool
        Let PyTables unpickle any object stored in the file's attributes
        (by default only plain data: see :mod:`dask_tables.hdf5.pickles`).
    made_by : str
        The call the user made to build the collection (``"from_tables"``,
        ``"read_table"``, ``"xarray.open_dataset"``): a
        :class:`~dask_tables.FileChangedError` says to make it again.
    remote : dask_tables.remote.transport.RemoteFile or None
        For an object in a store (``path`` is then its URL): the object, its
        ``storage_options`` and the version every read must find
        (``dask_tables.array.remote``); ``None`` for a local file.

    Examples
    --------
    >>> import numpy as np, tables
    >>> with tables.open_file("example.h5", "w") as f:
    ...     _ = f.create_carray("/", "array", obj=np.arange(10.0), chunkshape=(4,))
    >>> source = TablesSource.open("example.h5", "/array")
    >>> source.shape, source.chunkshape
    ((10,), (4,))
    >>> source[2:5]
    array([2., 3., 4.])
    """

    path: str
    node: str
    shape: tuple[int, ...]
    dtype: np.dtype
    chunkshape: tuple[int, ...] | None
    fingerprint: Fingerprint
    field: str | None = None
    read_ndim: int = 0
    storage: StoredNode | None = None
    row_nbytes: int | None = None
    allow_pickles: bool = False
    made_by: str = "from_tables"
    remote: Any = None  # a dask_tables.remote.transport.RemoteFile

    @classmethod
    def open(
        cls,
        path: PathLike,
        node: str,
        field: str | None = None,
        direct: bool | None = None,
        allow_pickles: bool = False,
        *,
        made_by: str = "from_tables",
        storage_options: Mapping[str, Any] | None = None,
    ) -> TablesSource:
        """Open ``path`` once, read the metadata of ``node`` and close it.

        Parameters
        ----------
        path : str, bytes or os.PathLike
            An HDF5 file.
        node : str
            Path of an ``Array``, ``CArray``, ``EArray`` or ``Table`` in it
            (``"group/array"`` is taken as ``"/group/array"``).
        field : str, optional
            For a ``Table``: the column to read (``"pos/x"`` for nested ones).
        direct : bool, optional
            Read chunks directly and decode them outside every lock, where
            the node's filters allow (default: the ``dask_tables.direct``
            configuration value, ``True`` unless set).
        allow_pickles : bool, optional
            Let PyTables unpickle arbitrary objects from the file's
            attributes, which runs code stored in the file.  Only for files
            you trust; by default only plain data is unpickled.
        made_by : str, optional
            The call the user made (``"from_tables"``, ``"read_table"``,
            ``"xarray.open_dataset"``...), which a
            :class:`~dask_tables.FileChangedError` names as the one to make again.
        storage_options : dict, optional
            For a URL (``s3://``, ``gs://``, ``az://``, ``https://``): how to
            reach the store (credentials, endpoint), as fsspec takes them
            (``docs/remote.rst``).

        Returns
        -------
        TablesSource

        Raises
        ------
        FileNotFoundError
            ``path`` is missing, a directory, not HDF5, or damaged.
        IsADirectoryError
            ``path`` is missing, a directory, not HDF5, or damaged.
        NotHDF5FileError
            ``path`` is missing, a directory, not HDF5, or damaged.
        tables.NoSuchNodeError
            ``node`` is not in the file.
        TypeError
            ``node`` is not array-like (a group, VLArray, unimplemented node).
        ValueError
            ``field`` is given for a non-table, or is not a column.

        Examples
        --------
        >>> import numpy as np, tables
        >>> with tables.open_file("example.h5", "w") as f:
        ...     _ = f.create_table("/", "t", obj=np.zeros(3, "i4,f8"))
        >>> TablesSource.open("example.h5", "/t", field="f1").dtype
        dtype('float64')
        """
        source, _ = cls.open_inspecting(
            path,
            node,
            _nothing,
            field,
            direct,
            allow_pickles,
            made_by=made_by,
            storage_options=storage_options,
        )
        return source

    @classmethod
    def open_inspecting(
        cls,
        path: PathLike,
        node: str,
        inspect: Callable[[tables.Leaf], T],
        field: str | None = None,
        direct: bool | None = None,
        allow_pickles: bool = False,
        *,
        made_by: str = "from_tables",
        storage_options: Mapping[str, Any] | None = None,
    ) -> tuple[TablesSource, T]:
        """Like :meth:`open`, and also return ``inspect(leaf)``, called while the file is open.

        ``inspect`` runs under the registry lock, for the other metadata a
        caller needs (column descriptions, indexes, ...) from the same
        single open of the file.

        Examples
        --------
        >>> import numpy as np, tables
        >>> with tables.open_file("example.h5", "w") as f:
        ...     _ = f.create_table("/", "t", obj=np.zeros(3, "i4,f8"))
        >>> source, names = TablesSource.open_inspecting("example.h5", "/t", lambda t: t.colnames)
        >>> names
        ['f0', 'f1']
        """
        node = node_path(node)
        if is_url(path):
            return cls._open_remote(
                os.fsdecode(os.fspath(path)),
                node,
                inspect,
                field,
                direct,
                allow_pickles,
                made_by,
                storage_options,
            )
        path = os.path.abspath(local_path(file_path(path)))
        check_hdf5_file(path, f"asked for node {node}")
        before = Fingerprint.of(path)
        try:
            # the lock covers every HDF5 call of the metadata read, not only open/close
            with refusing_pickles(not allow_pickles), get_lock(), synchronized_file(path, "r") as h5:
                leaf = _resolve_node(h5, path, node)
                source = cls._from_leaf(leaf, path, node, field, before)
                if direct is None:
                    direct = dask.config.get("dask_tables.direct", True)
                storage = direct_storage(leaf) if direct else None
                source = dataclasses.replace(
                    source, storage=storage, allow_pickles=allow_pickles, made_by=made_by
                )
                found = inspect(leaf)
        except DAMAGED_FILE_ERRORS as err:
            damaged = f"{path}: damaged or unreadable HDF5 file (asked for node {node})"
            raise unreadable_file(path, node, err, damaged) from err
        check_unchanged(path, node, before)  # nothing changed while the metadata was read
        return source, found

    @classmethod
    def _open_remote(
        cls,
        url: str,
        node: str,
        inspect: Callable[[tables.Leaf], T],
        field: str | None,
        direct: bool | None,
        allow_pickles: bool,
        made_by: str,
        storage_options: Mapping[str, Any] | None,
    ) -> tuple[TablesSource, T]:
        """:meth:`open_inspecting` of an object in a store: PyTables opens its shadow (metadata fetched once)."""
        from ..remote.shadow import shadow_of
        from ..remote.transport import RemoteFile
        from ..remote.urls import StorageOptions

        remote = RemoteFile(url, StorageOptions(storage_options)).resolve()
        shadow = shadow_of(remote)
        name = remote.name
        # the version is the fingerprint (the shadow's own differs on every machine): caches keyed
        # by a source's fingerprint (chunk maps, frames) tell two versions apart by it
        version = hashlib.sha256(repr(tuple(remote.version)).encode()).digest()
        fingerprint = Fingerprint(0, int.from_bytes(version[:8], "little"), remote.version.size, 0, 0)
        try:
            with refusing_pickles(not allow_pickles), get_lock(), synchronized_file(shadow.path, "r") as h5:
                leaf = _resolve_node(h5, name, node)
                source = cls._from_leaf(leaf, name, node, field, fingerprint)
                if direct is None:
                    direct = dask.config.get("dask_tables.direct", True)
                storage = direct_storage(leaf) if direct else None
                if storage is None and leaf._v_pathname not in shadow.complete:
                    reason = direct_read_reason(leaf) if direct else "direct=False"
                    raise ValueError(
                        f"{at_node(name, source.node)}: reads go through HDF5 ({reason}), which needs "
                        "the node's stored bytes on local disk; from a URL, dask_tables reads nodes "
                        "the direct path reads, and nodes stored in at most 256 KiB: copy the file "
                        "to local disk to read this one"
                    )
                source = dataclasses.replace(
                    source, storage=storage, allow_pickles=allow_pickles, made_by=made_by, remote=remote
                )
                found = inspect(leaf)
        except DAMAGED_FILE_ERRORS as err:
            damaged = f"{name}: damaged or unreadable HDF5 file (asked for node {node})"
            raise unreadable_file(name, node, err, damaged) from err
        return source, found

    @classmethod
    def _from_leaf(
        cls, leaf: tables.Leaf, path: str, node: str, field: str | None, fingerprint: Fingerprint
    ) -> TablesSource:
        leaf_shape = _ints(leaf.shape)
        leaf_chunks = None if leaf.chunkshape is None else _ints(leaf.chunkshape)
        if isinstance(leaf, tables.Table):
            if field is None:
                dtype, cell_shape = leaf.dtype, ()
            else:
                dtype, cell_shape = _field_dtype(leaf, path, field)
        else:
            if field is not None:
                raise ValueError(
                    f"{at_node(path, node)} is a {type(leaf).__name__}, not a Table: "
                    f"field={field!r} applies to tables only"
                )
            # An atom with a shape (Int32Atom(shape=(2,))) reads as extra axes.
            dtype, cell_shape = _split_cell(leaf.dtype)
        return cls(
            path=path,
            node=leaf._v_pathname,
            shape=leaf_shape + cell_shape,
            dtype=np.dtype(dtype),
            chunkshape=None if leaf_chunks is None else leaf_chunks + cell_shape,
            fingerprint=fingerprint,
            field=field,
            read_ndim=len(leaf_shape),
            row_nbytes=int(leaf.dtype.itemsize) if isinstance(leaf, tables.Table) else None,
        )

    @property
    def ndim(self) -> int:
        """Number of dimensions of the array."""
        return len(self.shape)

    @property
    def size(self) -> int:
        """Number of elements of the array."""
        return int(np.prod(self.shape, dtype=np.int64))

    def __getitem__(self, key: Any) -> np.ndarray:
        slab, remainder = plan_read(key, self.shape, self.read_ndim)
        with refusing_pickles(not self.allow_pickles), change_advice(rebuild_advice(self.made_by)):
            if self.storage is not None and self.remote is not None:
                from .remote import read_remote

                data = read_remote(self.remote, self.node, self.storage, slab, self.field)
            elif self.storage is not None:
                data = read_direct(self.path, self.node, self.fingerprint, self.storage, slab, self.field)
            else:
                data = self.with_leaf(lambda leaf: self._read_slab(leaf, slab))
                diagnostics.add(
                    pipeline_reads=1, pipeline_chunks=self._chunks_touched(slab), pipeline_bytes=data.nbytes
                )
        return data[remainder]

    def _chunks_touched(self, slab: tuple[slice, ...]) -> int:
        """How many of the node's chunks a slab reads (0 for a contiguous node)."""
        if self.chunkshape is None:
            return 0
        count = 1
        for sel, chunk in zip(slab, self.chunkshape, strict=False):
            picked = range(sel.start, sel.stop, sel.step)
            if not picked:
                return 0
            if sel.step >= chunk:
                count *= len(picked)
            else:
                count *= picked[-1] // chunk - picked[0] // chunk + 1
        return count

    def with_leaf(self, action: Callable[[tables.Leaf], T]) -> T:
        """Return ``action(leaf)``, called with the node open, under the registry lock.

        The file is checked unchanged before and after, and closed again.
        An HDF5 error becomes :class:`~dask_tables.MissingFilterError` where
        the node has a filter that PyTables' HDF5 lacks (naming it), else
        :class:`~dask_tables.NotHDF5FileError` (a damaged file); both name
        the path and node.

        Examples
        --------
        >>> import numpy as np, tables
        >>> with tables.open_file("example.h5", "w") as f:
        ...     _ = f.create_array("/", "array", np.arange(3))
        >>> TablesSource.open("example.h5", "/array").with_leaf(lambda leaf: int(leaf.nrows))
        3
        """
        if self.remote is not None:
            return self._with_remote_leaf(action)
        with (
            refusing_pickles(not self.allow_pickles),
            change_advice(rebuild_advice(self.made_by)),
            get_lock(),
        ):
            self.check_unchanged()
            try:
                with synchronized_file(self.path, "r") as h5:
                    leaf = _resolve_node(h5, self.path, self.node)
                    try:
                        result = action(leaf)
                    except DAMAGED_FILE_ERRORS:
                        self.check_unchanged()
                        refuse_missing_filter(leaf, self.path, self.node)
                        raise
            except DAMAGED_FILE_ERRORS as err:
                self.check_unchanged()  # a file changed underneath says so first
                damaged = f"{at_node(self.path, self.node)}: HDF5 could not read it (damaged file?)"
                raise unreadable_file(self.path, self.node, err, damaged) from err
            self.check_unchanged()
        return result

    def _with_remote_leaf(self, action: Callable[[tables.Leaf], T]) -> T:
        """:meth:`with_leaf` of an object in a store: its shadow, checked to be the object's version."""
        from ..remote.shadow import shadow_of

        shadow = shadow_of(self.remote)
        with refusing_pickles(not self.allow_pickles), change_advice(rebuild_advice(self.made_by)):
            self.check_unchanged()
            with get_lock(), synchronized_file(shadow.path, "r") as h5:
                leaf = _resolve_node(h5, self.path, self.node)
                if leaf._v_pathname not in shadow.complete:  # never read bytes that were not fetched
                    raise ValueError(
                        f"{at_node(self.path, self.node)}: HDF5 would read stored bytes that were not "
                        "fetched from the object; copy the file to local disk to read it this way"
                    )
                return action(leaf)

    def check_unchanged(self) -> None:
        """Raise :class:`~dask_tables.FileChangedError` if the file changed since the build.

        Examples
        --------
        >>> import numpy as np, tables
        >>> with tables.open_file("example.h5", "w") as f:
        ...     _ = f.create_array("/", "array", np.arange(3))
        >>> source = TablesSource.open("example.h5", "/array")
        >>> source.check_unchanged()
        >>> with tables.open_file("example.h5", "a") as f:
        ...     _ = f.create_array("/", "other", np.arange(3))
        >>> source.check_unchanged()
        Traceback (most recent call last):
        ...
        dask_tables.errors.FileChangedError: ...
        """
        with change_advice(rebuild_advice(self.made_by)):
            if self.remote is not None:
                self.remote.check_unchanged(self.node)
            else:
                check_unchanged(self.path, self.node, self.fingerprint)

    def _read_slab(self, leaf: tables.Leaf, slab: tuple[slice, ...]) -> np.ndarray:
        if isinstance(leaf, tables.Table):
            (rows,) = slab
            in_file = other_record_layout(leaf)
            if in_file is not None:
                # records laid out otherwise in the file: PyTables' read may corrupt memory
                records = read_rows(leaf, range(rows.start, rows.stop, rows.step), in_file)
                data = take_field(records, self.field) if self.field else repacked(records, leaf.dtype)
                return np.asarray(data, dtype=self.dtype)
            data = leaf.read(rows.start, rows.stop, rows.step, field=self.field)
        elif self.read_ndim == 0:
            data = leaf.read()
        else:
            data = leaf[slab]
        # Arrays of "python" flavor come back as lists and Python scalars.
        return np.asarray(data, dtype=self.dtype)

    def __dask_tokenize__(self) -> tuple[Any, ...]:
        version = None if self.remote is None else tuple(self.remote.version)
        return (type(self).__name__, self.path, self.node, self.field, tuple(self.fingerprint), version)

    def __repr__(self) -> str:
        field = f", field={self.field!r}" if self.field else ""
        return f"TablesSource({self.path!r}, {self.node!r}{field}, shape={self.shape}, dtype={self.dtype})"
