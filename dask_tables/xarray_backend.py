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

import inspect
import os
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

import numpy as np
import tables
import xarray as xr
from xarray import conventions
from xarray.backends import BackendArray, BackendEntrypoint
from xarray.core import indexing

from .array.source import TablesSource
from .errors import at_node
from .hdf5.files import is_hdf5_file
from .hdf5.paths import node_path
from .xarray_survey import Group, Member, dataset_path, phony_names, quiet_pytables, survey

__all__ = ["TablesBackendArray", "TablesBackendEntrypoint"]

EXTENSIONS = (".h5", ".hdf5", ".h5f")


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


def _variable(
    path: str,
    member: Member,
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
    group: Group,
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
    coords = xr.Coordinates(coord_vars, indexes={}) if _XARRAY_MAKES_INDEXES else coord_vars
    ds = xr.Dataset(data_vars, coords=coords, attrs=attrs)
    ds.set_close(_nothing_to_close)
    return ds


# xarray >= 2025.07 makes the default indexes in open_dataset (create_default_indexes=): the
# backend leaves them to it, as xarray's own backends do; older xarray needs them made here.
_XARRAY_MAKES_INDEXES = "create_default_indexes" in inspect.signature(xr.open_dataset).parameters


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
        path = dataset_path(filename_or_obj)
        top = node_path((group or "").strip("/"))
        with quiet_pytables():
            path, top, groups = survey(path, top, allow_pickles, storage_options)
            chosen = [g for g in groups if g.path == top]
            if not chosen:
                raise TypeError(_not_a_dataset(path, top))
            return _dataset(
                path,
                chosen[0],
                phony_names(groups),
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
        path = dataset_path(filename_or_obj)
        top = node_path((group or "").strip("/"))
        drop = _drop_set(drop_variables)
        decoders = _decoders(
            mask_and_scale, decode_times, concat_characters, decode_coords, use_cftime, decode_timedelta
        )
        with quiet_pytables():
            path, top, groups = survey(path, top, allow_pickles, storage_options)
            dims = phony_names(groups)
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
