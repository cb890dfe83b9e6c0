"""What a PyTables file holds, as the xarray backend shows it: groups, their members, dimension names.

One open of the file under the lock (:func:`survey`) lists every group
and Table (a Table is a group of its columns), each member's dimension
names (HDF5 dimension scales where there are, else phony names shared by
equal lengths across the file) and attributes; soft and external links
from ``group=`` are followed as h5py follows them.  The backend
(:mod:`dask_tables.xarray_backend`) makes variables of what it lists.
"""

from __future__ import annotations

import collections
import contextlib
import os
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import tables

from .errors import at_node, locked_as_such
from .hdf5.dimscales import NOT_A_VARIABLE, dataset_dims, scale_dims
from .hdf5.fields import take_field
from .hdf5.foreign import UNREADABLE, holds_text, opened_dataset, read_attribute, read_dataset
from .hdf5.pickles import refusing_pickles
from .registry import get_lock, synchronized_file
from .remote.shadow import metadata_path
from .remote.urls import display_url, is_url
from .xarray_attrs import foreign_attrs, user_attrs

__all__ = ["Group", "Member", "dataset_path", "phony_names", "quiet_pytables", "survey"]

ROW_DIM = "row"
_LINK_DEPTH = 16  # links followed from group= before giving up (HDF5's own limit is 16 too)


@dataclass(frozen=True)
class Member:
    """One future variable: an array node, or one column of a table."""

    name: str
    node: str
    field: str | None
    shape: tuple[int, ...]
    labels: tuple[str | None, ...]  # per axis: a dimension's name, or None for a phony one
    attrs: dict[str, Any]
    values: np.ndarray | None = None  # read at open: a dimension scale PyTables cannot load


@dataclass
class Group:
    """One future Dataset: a group's arrays, or a table's columns."""

    path: str
    is_table: bool
    attrs: dict[str, Any]
    members: list[Member] = field(default_factory=list)


@contextlib.contextmanager
def quiet_pytables() -> Iterator[None]:
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


def _array_member(leaf: tables.Array, name: str) -> Member:
    """The array ``leaf`` as the variable ``name`` (a soft link's name, where one leads to it)."""
    shape = tuple(int(n) for n in leaf.shape) + tuple(int(n) for n in leaf.atom.dtype.shape)
    labels = list(scale_dims(leaf) or (None,) * len(leaf.shape))
    if labels and _scale_kind(leaf._v_objectid) == "variable":
        labels[0] = leaf._v_name  # a dimension scale is its dimension's coordinate
    labels += [None] * (len(shape) - len(labels))
    return Member(name, leaf._v_pathname, None, shape, tuple(labels), user_attrs(leaf))


def _foreign_member(group: tables.Group, name: str) -> Member | None:
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
        return Member(name, path, None, values.shape, tuple(labels), foreign_attrs(dataset), values)


def _table_group(table: tables.Table) -> Group:
    group = Group(table._v_pathname, True, user_attrs(table))
    for column in table.description._v_pathnames:
        dtype = take_field(table.dtype, column)
        if dtype.names:
            continue  # a nested group of columns: its leaves come on their own
        cells = tuple(int(n) for n in dtype.shape)
        shape = (int(table.nrows), *cells)
        labels = (ROW_DIM,) + (None,) * len(cells)
        group.members.append(Member(column.replace("/", "."), table._v_pathname, column, shape, labels, {}))
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


def _survey_group(group: tables.Group) -> Iterator[Group]:
    here = Group(group._v_pathname, False, user_attrs(group))
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


def survey(
    path: str, top: str, allow_pickles: bool, storage_options: Mapping[str, Any] | None = None
) -> tuple[str, str, list[Group]]:
    """Every group and table of the file, in a fixed order, read in one open under the lock.

    Where ``top`` is a soft or external link, the file and group it leads
    to (links followed as h5py follows them): returns that file, that
    group's path and the groups of that file.
    """
    for _ in range(_LINK_DEPTH):
        with (
            locked_as_such(display_url(path) if is_url(path) else path, top),
            refusing_pickles(not allow_pickles),
            get_lock(),
            synchronized_file(metadata_path(path, storage_options), "r") as h5,  # a URL: its shadow
            quiet_pytables(),
        ):
            target = _link_target(h5, path, top)
            if target is None:
                found: list[Group] = []
                for group in sorted(h5.walk_groups("/"), key=lambda g: g._v_pathname):
                    found.extend(_survey_group(group))
                return path, top, found
        path, top = dataset_path(target[0]), target[1]
    raise ValueError(f"{at_node(path, top)}: more than {_LINK_DEPTH} links in a row")


def phony_names(groups: list[Group]) -> dict[tuple[str, str], tuple[str, ...]]:
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


def dataset_path(filename_or_obj: Any) -> str:
    if not isinstance(filename_or_obj, (str, os.PathLike)):
        raise TypeError(f"engine='tables' opens files by path, not {type(filename_or_obj).__name__} objects")
    if is_url(filename_or_obj):
        return os.fspath(filename_or_obj)  # an object: reached through its shadow
    path = os.path.abspath(os.path.expanduser(os.fspath(filename_or_obj)))
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such file")
    return path
