"""An xarray backend, ``engine="tables"``: PyTables files as xarray Datasets and DataTrees.

``xr.open_dataset(path, engine="tables", group="/g")`` makes a variable of
each ``Array``, ``CArray`` and ``EArray`` of the group (and of each array a
soft link in it leads to, and of each dataset of variable-length text,
read at open); ``group=`` naming a ``Table`` makes a variable of each
column along the dimension ``"row"``.
Every variable reads lazily through the same :class:`~dask_tables.TablesSource`
that :func:`~dask_tables.from_tables` uses: no file stays open, each read
opens the file (or reads chunks directly) under the process-wide lock,
checks that the file is unchanged and closes it, so datasets pickle and
compute under every dask scheduler, ``distributed`` included.

Dimension names come from HDF5 dimension scales where a dataset has them
(:mod:`dask_tables.hdf5.dimscales`), else from phony names shared by equal
lengths, as h5netcdf's ``phony_dims="sort"`` makes them (numbered across
the whole file, so that one name is one length everywhere in it).  The
scales are coordinate variables, read once when the dataset opens (PyTables
cannot load them: :mod:`dask_tables.hdf5.foreign` reads them).  Attributes
are what h5netcdf gives (:mod:`dask_tables.xarray_attrs`).  Values are
CF-decoded as xarray's netCDF backends decode them, by default (times,
``_FillValue`` and ``scale_factor``, ``coordinates``...), with xarray's
keywords (``decode_cf=False``, ``decode_times=False``...).

Nested table columns are named with a dot (``"pos.x"`` for the column
PyTables calls ``"pos/x"``): xarray's DataTree forbids ``/`` in variable
names, and netCDF does too.
"""

from __future__ import annotations

import collections
import contextlib
import os
import warnings
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import tables
import xarray as xr
from xarray import conventions
from xarray.backends import BackendArray, BackendEntrypoint
from xarray.core import indexing

from .array.source import TablesSource
from .errors import at_node, locked_as_such
from .hdf5.dimscales import NOT_A_VARIABLE, dataset_dims, scale_dims
from .hdf5.fields import take_field
from .hdf5.files import is_hdf5_file
from .hdf5.foreign import UNREADABLE, holds_text, opened_dataset, read_attribute, read_dataset
from .hdf5.paths import node_path
from .hdf5.pickles import refusing_pickles
from .registry import get_lock, synchronized_file
from .remote.shadow import metadata_path
from .remote.urls import display_url, is_url
from .xarray_attrs import foreign_attrs, user_attrs

__all__ = ["TablesBackendArray", "TablesBackendEntrypoint"]

ROW_DIM = "row"
EXTENSIONS = (".h5", ".hdf5", ".h5f")
_LINK_DEPTH = 16  # links followed from group= before giving up (HDF5's own limit is 16 too)


class TablesBackendArray(BackendArray):
    """A lazily read node (or table column) for xarray: outer indexing over a :class:`~dask_tables.TablesSource`.

    xarray hands it basic, outer and vectorized keys;
    :func:`xarray.core.indexing.explicit_indexing_adapter` turns them into
    outer keys (integers, slices, integer arrays per axis) read here as
    one slab, and applies the rest with numpy.  The source takes the
    registry lock itself, so no lock is needed around it.

    Examples
    --------
    >>> import numpy as np, tables
    >>> from xarray.core import indexing
    >>> with tables.open_file("example.h5", "w") as f:
    ...     _ = f.create_array("/", "x", np.arange(12).reshape(3, 4))
    >>> array = TablesBackendArray(TablesSource.open("example.h5", "/x"))
    >>> array[indexing.OuterIndexer((np.array([0, 2]), slice(1, 3)))]
    array([[ 1,  2],
           [ 9, 10]])
    """

    __slots__ = ("dtype", "shape", "source")

    def __init__(self, source: TablesSource) -> None:
        self.source = source
        self.shape = source.shape
        self.dtype = source.dtype

    def __getitem__(self, key: indexing.ExplicitIndexer) -> np.ndarray:
        return indexing.explicit_indexing_adapter(
            key, self.shape, indexing.IndexingSupport.OUTER, self._read_outer
        )

    def _read_outer(self, key: tuple[Any, ...]) -> np.ndarray:
        """Read an outer key: each integer array becomes its covering slice, then is taken from the slab."""
        slab: list[Any] = []
        picks: list[np.ndarray | None] = []
        for item, length in zip(key, self.shape, strict=True):
            if isinstance(item, np.ndarray):
                positions = np.where(item < 0, item + length, item).astype(np.int64)
                low = int(positions.min()) if positions.size else 0
                high = int(positions.max()) + 1 if positions.size else 0
                slab.append(slice(low, high))
                picks.append(positions - low)
            else:
                slab.append(item)
                picks.append(None)
        data = self.source[tuple(slab)]
        axis = 0
        for item, pick in zip(key, picks, strict=True):
            if isinstance(item, (int, np.integer)):
                continue  # the axis is gone
            if pick is not None:
                data = np.take(data, pick, axis=axis)
            axis += 1
        return data

    def __repr__(self) -> str:
        return f"TablesBackendArray({self.source!r})"


@dataclass(frozen=True)
class _Member:
    """One future variable: an array node, or one column of a table."""

    name: str
    node: str
    field: str | None
    shape: tuple[int, ...]
    labels: tuple[str | None, ...]  # per axis: a dimension's name, or None for a phony one
    attrs: dict[str, Any]
    values: np.ndarray | None = None  # read at open: a dimension scale PyTables cannot load


@dataclass
class _Group:
    """One future Dataset: a group's arrays, or a table's columns."""

    path: str
    is_table: bool
    attrs: dict[str, Any]
    members: list[_Member] = field(default_factory=list)


@contextlib.contextmanager
def _quiet_pytables() -> Iterator[None]:
    """PyTables warns about what it cannot load (references of dimension scales): the survey skips those.

    Only around opening (metadata), never around reads in tasks:
    :class:`warnings.catch_warnings` changes process-wide state.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=tables.exceptions.DataTypeWarning)
        warnings.filterwarnings("ignore", message="problems loading leaf", category=UserWarning)
        yield


def _scale_kind(object_id: int) -> str | None:
    """``"variable"`` for a dimension scale, ``"dimension"`` for netCDF's scale of a dimension
    without a coordinate variable, ``None`` for any other dataset."""
    try:
        kind = read_attribute(object_id, "CLASS")
    except KeyError:
        return None
    if not (isinstance(kind, bytes) and kind == b"DIMENSION_SCALE"):
        return None
    try:
        name = read_attribute(object_id, "NAME")
    except KeyError:
        return "variable"
    return "dimension" if isinstance(name, bytes) and name.startswith(NOT_A_VARIABLE) else "variable"


def _array_member(leaf: tables.Array, name: str) -> _Member:
    """The array ``leaf`` as the variable ``name`` (a soft link's name, where one leads to it)."""
    shape = tuple(int(n) for n in leaf.shape) + tuple(int(n) for n in leaf.atom.dtype.shape)
    labels = list(scale_dims(leaf) or (None,) * len(leaf.shape))
    if labels and _scale_kind(leaf._v_objectid) == "variable":
        labels[0] = leaf._v_name  # a dimension scale is its dimension's coordinate
    labels += [None] * (len(shape) - len(labels))
    return _Member(name, leaf._v_pathname, None, shape, tuple(labels), user_attrs(leaf))


def _foreign_member(group: tables.Group, name: str) -> _Member | None:
    """A dataset PyTables cannot load, read now: a dimension scale (a coordinate variable), or text
    (variable-length strings); ``None`` for other datasets, and for netCDF's scales of dimensions
    without a variable."""
    with opened_dataset(group._v_objectid, name) as dataset:
        kind = None if dataset is None else _scale_kind(dataset)
        if dataset is None or kind == "dimension":
            return None
        if kind is None and not holds_text(dataset):
            return None  # other data PyTables cannot load: not read whole when the dataset opens
        values = read_dataset(dataset)
        if values is UNREADABLE:
            return None
        values = np.asarray(values, dtype=object) if isinstance(values, str) else values
        if kind == "variable" and values.ndim == 0:
            return None
        labels = list(dataset_dims(dataset, values.ndim) or (None,) * values.ndim)
        if kind == "variable":
            labels[0] = name
        path = group._v_pathname.rstrip("/") + "/" + name
        return _Member(name, path, None, values.shape, tuple(labels), foreign_attrs(dataset), values)


def _table_group(table: tables.Table) -> _Group:
    group = _Group(table._v_pathname, True, user_attrs(table))
    for column in table.description._v_pathnames:
        dtype = take_field(table.dtype, column)
        if dtype.names:
            continue  # a nested group of columns: its leaves come on their own
        cells = tuple(int(n) for n in dtype.shape)
        shape = (int(table.nrows), *cells)
        labels = (ROW_DIM,) + (None,) * len(cells)
        group.members.append(_Member(column.replace("/", "."), table._v_pathname, column, shape, labels, {}))
    return group


def _load_leaf(group: tables.Group, name: str) -> tables.Leaf | bool | None:
    """The leaf (the array a soft link leads to), ``None`` where PyTables cannot load it, ``False`` for
    a link to anything else.

    A dimension scale written by h5py or netCDF fails even as an
    ``UnImplemented`` node: PyTables cannot read its ``REFERENCE_LIST``
    attribute (a compound holding references) and raises ``KeyError``.
    """
    try:
        if name in group._v_links:  # a soft link: its array, as h5py follows it (not a table's)
            link = group._v_links[name]
            try:
                target = link() if isinstance(link, tables.link.SoftLink) else None
            except tables.NoSuchNodeError:  # dangling: h5py and h5netcdf skip it too
                return False
            return target if isinstance(target, tables.Array) else False
        return group._v_leaves[name]
    except (KeyError, ValueError, TypeError, tables.HDF5ExtError):
        return None


def _is_reference(leaf: tables.Array) -> bool:
    """HDF5 object references: PyTables follows them (h5netcdf gives h5py's ``Reference`` objects)."""
    return leaf.atom.kind == "reference"  # tables.ReferenceAtom (PyTables 3.10 and later)


def _survey_group(group: tables.Group) -> Iterator[_Group]:
    here = _Group(group._v_pathname, False, user_attrs(group))
    tables_here = []
    for name in sorted({*group._v_leaves, *group._v_links}):
        leaf = _load_leaf(group, name)
        if isinstance(leaf, tables.Table):
            tables_here.append(_table_group(leaf))
        elif isinstance(leaf, tables.Array) and not _is_reference(leaf):
            here.members.append(_array_member(leaf, name))
        elif leaf is None or isinstance(leaf, tables.UnImplemented):
            member = _foreign_member(group, name)
            if member is not None:
                here.members.append(member)
    yield here
    yield from tables_here


def _link_target(h5: tables.File, path: str, top: str) -> tuple[str, str] | None:
    """Where ``top`` leads if it is a soft or external link: ``(file, node)``; ``None`` if it is no link."""
    if top not in h5:
        raise tables.NoSuchNodeError(f"{path}: no group or table {top!r} in the file")
    node = h5.get_node(top)
    if isinstance(node, tables.link.SoftLink):
        target = node.target if node.target.startswith("/") else node._v_parent._g_join(node.target)
        return path, target
    if isinstance(node, tables.link.ExternalLink):
        filename, _, inner = node.target.partition(":/")
        return _external_file(path, filename), "/" + inner
    return None


def _external_file(path: str, filename: str) -> str:
    """The file an external link of ``path`` names: as HDF5 looks for a relative name, next to ``path``
    first, then in the working directory."""
    if is_url(path):
        raise ValueError(
            f"{display_url(path)}: an external link to {filename!r} is not followed from an object; "
            "open the file it names instead"
        )
    if os.path.isabs(filename):
        return filename
    beside = os.path.join(os.path.dirname(path), filename)
    return beside if os.path.exists(beside) else os.path.abspath(filename)


def _survey(
    path: str, top: str, allow_pickles: bool, storage_options: Mapping[str, Any] | None = None
) -> tuple[str, str, list[_Group]]:
    """Every group and table of the file, in a fixed order, read in one open under the lock.

    Where ``top`` is a soft or external link, the file and group it leads
    to (links followed as h5py follows them): returns that file, that
    group's path and the groups of that file.
    """
    for _ in range(_LINK_DEPTH):
        with (
            locked_as_such(path, top),
            refusing_pickles(not allow_pickles),
            get_lock(),
            synchronized_file(metadata_path(path, storage_options), "r") as h5,  # a URL: its shadow
            _quiet_pytables(),
        ):
            target = _link_target(h5, path, top)
            if target is None:
                found: list[_Group] = []
                for group in sorted(h5.walk_groups("/"), key=lambda g: g._v_pathname):
                    found.extend(_survey_group(group))
                return path, top, found
        path, top = _normalize(target[0]), target[1]
    raise ValueError(f"{at_node(path, top)}: more than {_LINK_DEPTH} links in a row")


def _phony_names(groups: list[_Group]) -> dict[tuple[str, str], tuple[str, ...]]:
    """Dimension names of every member: its labels, and phony names for the unlabeled axes.

    As h5netcdf's ``phony_dims="sort"``: in each group, the unlabeled axes
    of one length share names, as many as the one variable with the most
    axes of that length needs; names are numbered across the file.
    """
    dims: dict[tuple[str, str], tuple[str, ...]] = {}
    counter = 0
    for group in groups:
        needed: dict[int, int] = {}
        for member in group.members:
            sizes = collections.Counter(
                n for n, label in zip(member.shape, member.labels, strict=True) if label is None
            )
            for size, count in sizes.items():
                needed[size] = max(needed.get(size, 0), count)
        names: dict[tuple[int, int], str] = {}
        for size, count in needed.items():
            for k in range(count):
                names[(size, k)] = f"phony_dim_{counter}"
                counter += 1
        for member in group.members:
            seen: collections.Counter[int] = collections.Counter()
            member_dims = []
            for size, label in zip(member.shape, member.labels, strict=True):
                if label is None:
                    label = names[(size, seen[size])]
                    seen[size] += 1
                member_dims.append(label)
            dims[(group.path, member.name)] = tuple(member_dims)
    return dims


def _variable(
    path: str,
    member: _Member,
    dims: tuple[str, ...],
    direct: bool | None,
    allow_pickles: bool,
    storage_options: Mapping[str, Any] | None = None,
) -> xr.Variable:
    if member.values is not None:  # a dimension scale, read when the file was surveyed
        encoding = {"source": path, "node": member.node, "dtype": member.values.dtype}
        return xr.Variable(dims, member.values, member.attrs, encoding)
    source = TablesSource.open(
        path,
        member.node,
        member.field,
        direct,
        allow_pickles,
        made_by="xarray.open_dataset",
        storage_options=storage_options,
    )
    data = indexing.LazilyIndexedArray(TablesBackendArray(source))
    encoding: dict[str, Any] = {"source": path, "node": member.node, "dtype": source.dtype}
    if member.field is not None:
        encoding["field"] = member.field
    if source.chunkshape is not None:
        encoding["chunksizes"] = source.chunkshape
        encoding["preferred_chunks"] = dict(zip(dims, source.chunkshape, strict=True))
    return xr.Variable(dims, data, member.attrs, encoding)


def _dataset(
    path: str,
    group: _Group,
    dims: dict[tuple[str, str], tuple[str, ...]],
    drop_variables: set[str],
    direct: bool | None,
    allow_pickles: bool,
    storage_options: Mapping[str, Any] | None,
    decoders: Mapping[str, Any],
) -> xr.Dataset:
    """The group's variables, CF-decoded as ``decoders`` say, as xarray's netCDF backends decode them.

    As ``xarray.backends.StoreBackendEntrypoint`` does for h5netcdf and
    netCDF4: ``xarray.conventions.decode_cf_variables`` (lazily: values
    are decoded when read), then the dimension coordinates and those the
    ``coordinates`` attributes name are coordinates, without indexes
    (xarray's ``open_dataset`` makes them, unless ``create_default_indexes=False``).
    With every decoder ``False`` (``decode_cf=False``) it still takes the two
    steps those backends take: a variable with the attribute ``dtype: bool``
    becomes ``bool``, and big-endian values native.
    """
    variables = {
        m.name: _variable(path, m, dims[(group.path, m.name)], direct, allow_pickles, storage_options)
        for m in group.members
        if m.name not in drop_variables
    }
    variables, attrs, coord_names = conventions.decode_cf_variables(variables, group.attrs, **decoders)
    data_vars = {}
    coord_vars = {}
    for name, variable in variables.items():
        if name in coord_names or variable.dims == (name,):
            coord_vars[name] = variable
        else:
            data_vars[name] = variable
    ds = xr.Dataset(data_vars, coords=xr.Coordinates(coord_vars, indexes={}), attrs=attrs)
    ds.set_close(_nothing_to_close)
    return ds


def _decoders(
    mask_and_scale: Any,
    decode_times: Any,
    concat_characters: Any,
    decode_coords: Any,
    use_cftime: Any,
    decode_timedelta: Any,
) -> dict[str, Any]:
    return {
        "mask_and_scale": mask_and_scale,
        "decode_times": decode_times,
        "concat_characters": concat_characters,
        "decode_coords": decode_coords,
        "use_cftime": use_cftime,
        "decode_timedelta": decode_timedelta,
    }


def _nothing_to_close() -> None:
    """A dataset's closer: nothing stays open, every read opens and closes the file itself."""


def _normalize(filename_or_obj: Any) -> str:
    if not isinstance(filename_or_obj, (str, os.PathLike)):
        raise TypeError(f"engine='tables' opens files by path, not {type(filename_or_obj).__name__} objects")
    if is_url(filename_or_obj):
        return os.fspath(filename_or_obj)  # an object: reached through its shadow
    path = os.path.abspath(os.path.expanduser(os.fspath(filename_or_obj)))
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such file")
    return path


def _drop_set(drop_variables: str | Iterable[str] | None) -> set[str]:
    if drop_variables is None:
        return set()
    if isinstance(drop_variables, str):
        return {drop_variables}
    return set(drop_variables)


def _within(path: str, top: str) -> bool:
    return top == "/" or path == top or path.startswith(top + "/")


def _not_a_dataset(path: str, top: str) -> str:
    """Why ``group=`` names no dataset: an array, or a PyTables index (a hidden ``_i_<table>`` group)."""
    parts = top.split("/")
    for k, part in enumerate(parts):
        if part.startswith("_i_"):
            table = "/".join([*parts[:k], part[3:]]) or "/"
            return (
                f"{at_node(path, top)} is a PyTables index group, PyTables' own bookkeeping for the "
                f"indexed columns of the Table {table}: neither a group nor a Table of data; open the "
                f"Table {table} instead"
            )
    return f"{at_node(path, top)} is neither a group nor a Table; open its group instead"


class TablesBackendEntrypoint(BackendEntrypoint):
    """xarray's ``engine="tables"``: PyTables files, read lazily and in parallel by dask_tables.

    Examples
    --------
    >>> import numpy as np, tables, xarray as xr
    >>> with tables.open_file("example.h5", "w") as f:
    ...     x = f.create_carray("/", "x", obj=np.arange(12.0).reshape(3, 4), chunkshape=(1, 4))
    ...     x.attrs.units = "m"
    >>> ds = xr.open_dataset("example.h5", engine="tables")
    >>> ds.x.dims, ds.x.attrs["units"]
    (('phony_dim_0', 'phony_dim_1'), 'm')
    >>> float(ds.x[1:, ::2].sum())
    28.0
    >>> xr.open_dataset("example.h5", engine="tables", chunks={}).x.chunks
    ((1, 1, 1), (4,))
    """

    description: ClassVar[str] = (
        "PyTables/HDF5 files read with dask_tables (Arrays, CArrays, EArrays, Tables)"
    )
    url: ClassVar[str] = "https://github.com/dask-tables/dask-tables"
    open_dataset_parameters: ClassVar[tuple[str, ...]] = (
        "filename_or_obj",
        "mask_and_scale",
        "decode_times",
        "concat_characters",
        "decode_coords",
        "drop_variables",
        "use_cftime",
        "decode_timedelta",
        "group",
        "direct",
        "allow_pickles",
        "storage_options",
    )
    supports_groups: ClassVar[bool] = True

    def open_dataset(  # type: ignore[override]
        self,
        filename_or_obj: str | os.PathLike[str],
        *,
        mask_and_scale: Any = True,
        decode_times: Any = True,
        concat_characters: Any = True,
        decode_coords: Any = True,
        drop_variables: str | Iterable[str] | None = None,
        use_cftime: Any = None,
        decode_timedelta: Any = None,
        group: str | None = None,
        direct: bool | None = None,
        allow_pickles: bool = False,
        storage_options: Mapping[str, Any] | None = None,
    ) -> xr.Dataset:
        """One group's arrays (or one table's columns) as a Dataset.

        Parameters
        ----------
        filename_or_obj : str or os.PathLike
            A PyTables/HDF5 file, or the URL of one (``s3://``, ``https://``...,
            see ``docs/remote.rst``).
        mask_and_scale, decode_times, concat_characters, decode_coords, use_cftime, decode_timedelta
            CF decoding, as :func:`xarray.open_dataset` takes them for every
            netCDF backend, with its defaults: decoded.  ``decode_cf=False``
            given to :func:`xarray.open_dataset` turns them all off.
        drop_variables : str or list of str, optional
            Variables not to open.
        group : str, optional
            A group (default ``"/"``) or a ``Table``.
        direct : bool, optional
            Read chunks directly (see :func:`dask_tables.from_tables`).
        allow_pickles : bool, optional
            Let PyTables unpickle any attribute (files you trust only).
        storage_options : dict, optional
            For a URL: how to reach the store, as :func:`dask_tables.from_tables` takes them.

        Returns
        -------
        xarray.Dataset
        """
        path = _normalize(filename_or_obj)
        top = node_path((group or "").strip("/"))
        with _quiet_pytables():
            path, top, groups = _survey(path, top, allow_pickles, storage_options)
            chosen = [g for g in groups if g.path == top]
            if not chosen:
                raise TypeError(_not_a_dataset(path, top))
            return _dataset(
                path,
                chosen[0],
                _phony_names(groups),
                _drop_set(drop_variables),
                direct,
                allow_pickles,
                storage_options,
                _decoders(
                    mask_and_scale,
                    decode_times,
                    concat_characters,
                    decode_coords,
                    use_cftime,
                    decode_timedelta,
                ),
            )

    def open_groups_as_dict(  # type: ignore[override]
        self,
        filename_or_obj: str | os.PathLike[str],
        *,
        mask_and_scale: Any = True,
        decode_times: Any = True,
        concat_characters: Any = True,
        decode_coords: Any = True,
        drop_variables: str | Iterable[str] | None = None,
        use_cftime: Any = None,
        decode_timedelta: Any = None,
        group: str | None = None,
        direct: bool | None = None,
        allow_pickles: bool = False,
        storage_options: Mapping[str, Any] | None = None,
    ) -> dict[str, xr.Dataset]:
        """Every group and table under ``group`` as a Dataset, keyed by path relative to it.

        Tables become nodes of their own (their columns are the node's
        variables), children of the group that holds them.  Each is
        CF-decoded as :meth:`open_dataset` decodes it.
        """
        path = _normalize(filename_or_obj)
        top = node_path((group or "").strip("/"))
        drop = _drop_set(drop_variables)
        decoders = _decoders(
            mask_and_scale, decode_times, concat_characters, decode_coords, use_cftime, decode_timedelta
        )
        with _quiet_pytables():
            path, top, groups = _survey(path, top, allow_pickles, storage_options)
            dims = _phony_names(groups)
            result = {}
            for g in groups:
                if _within(g.path, top):
                    key = "/" + g.path[len(top) :].strip("/") if top != "/" else g.path
                    result[key] = _dataset(
                        path, g, dims, drop, direct, allow_pickles, storage_options, decoders
                    )
        return result

    def open_datatree(  # type: ignore[override]
        self,
        filename_or_obj: str | os.PathLike[str],
        *,
        mask_and_scale: Any = True,
        decode_times: Any = True,
        concat_characters: Any = True,
        decode_coords: Any = True,
        drop_variables: str | Iterable[str] | None = None,
        use_cftime: Any = None,
        decode_timedelta: Any = None,
        group: str | None = None,
        direct: bool | None = None,
        allow_pickles: bool = False,
        storage_options: Mapping[str, Any] | None = None,
    ) -> xr.DataTree:
        """The file's hierarchy (under ``group``) as a DataTree: groups and tables are its nodes."""
        groups = self.open_groups_as_dict(
            filename_or_obj,
            mask_and_scale=mask_and_scale,
            decode_times=decode_times,
            concat_characters=concat_characters,
            decode_coords=decode_coords,
            drop_variables=drop_variables,
            use_cftime=use_cftime,
            decode_timedelta=decode_timedelta,
            group=group,
            direct=direct,
            allow_pickles=allow_pickles,
            storage_options=storage_options,
        )
        return xr.DataTree.from_dict(groups)

    def guess_can_open(self, filename_or_obj: Any) -> bool:
        """Whether this is a ``.h5``, ``.hdf5`` or ``.h5f`` file that PyTables can open."""
        if not isinstance(filename_or_obj, (str, os.PathLike)):
            return False
        path = os.fspath(filename_or_obj)
        if not path.lower().endswith(EXTENSIONS):
            return False
        try:
            return is_hdf5_file(path)
        except (OSError, tables.HDF5ExtError):
            return False
