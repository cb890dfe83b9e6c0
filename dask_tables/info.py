"""What a file holds and how dask_tables reads it: the logic of ``dask-tables info``.

For each node: kind, shape, dtype, chunk shape, HDF5 filters, size on disk
and compression ratio, and whether dask_tables reads it directly
(:mod:`dask_tables.array.direct`) or through HDF5, and if through HDF5, why.
:func:`~dask_tables.array.verdict.direct_read_reason` (the array layer's
verdict, re-exported here) names the condition under which
:func:`~dask_tables.array.verdict.direct_storage` refuses a node.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import tables

from .array.verdict import direct_read_reason
from .errors import RecordLayoutError, locked_as_such
from .hdf5.files import check_hdf5_file
from .hdf5.paths import file_path, node_path
from .hdf5.pickles import refusing_pickles
from .hdf5.storednode import stored_filters
from .registry import get_lock, synchronized_file
from .remote.shadow import metadata_path
from .remote.urls import display_url, is_url

__all__ = ["NodeInfo", "direct_read_reason", "format_table", "inspect_file", "to_json"]

# Where each compressor's parameters hold its level (in HDF5's cd_values).
_LEVEL_AT = {"deflate": 0, "bzip2": 0, "blosc": 4, "blosc2": 4}


@dataclass(frozen=True)
class NodeInfo:
    """One node of a file, as ``dask-tables info`` reports it.

    Attributes
    ----------
    path : str
        The node's path in the file.
    kind : str
        Its PyTables class (``Group``, ``CArray``, ``Table``, ``SoftLink``...).
    depth : int
        How deep under the node asked for (0 for that node).
    shape, dtype, chunkshape
        As PyTables reports them (``None`` where they do not apply).
    filters : list of tuple
        The HDF5 filter pipeline in write order: ``(name, params)`` pairs.
    size_on_disk, size_in_memory : int or None
        Bytes stored, and bytes once read.
    read : str or None
        ``"direct"``, ``"hdf5"``, or ``None`` for nodes dask_tables does not read.
    reason : str or None
        Why reads go through HDF5 (or why the node is not read).
    """

    path: str
    kind: str
    depth: int
    shape: tuple[int, ...] | None = None
    dtype: str | None = None
    chunkshape: tuple[int, ...] | None = None
    filters: list[tuple[str, tuple[int, ...]]] = field(default_factory=list)
    size_on_disk: int | None = None
    size_in_memory: int | None = None
    read: str | None = None
    reason: str | None = None

    @property
    def ratio(self) -> float | None:
        """Bytes read per byte stored (``None`` where nothing is stored)."""
        if not self.size_on_disk or self.size_in_memory is None:
            return None
        return self.size_in_memory / self.size_on_disk


def _filters(leaf: tables.Leaf) -> list[tuple[str, tuple[int, ...]]]:
    if leaf.chunkshape is None:
        return []
    return [(f.name, f.params) for f in stored_filters(leaf)]


def _size_on_disk(leaf: tables.Leaf) -> int | None:
    try:
        return int(leaf.size_on_disk)
    except NotImplementedError:  # a VLArray: HDF5 cannot tell
        return None


def _leaf_info(leaf: tables.Leaf, depth: int) -> NodeInfo:
    kind = type(leaf).__name__
    chunks = None if leaf.chunkshape is None else tuple(int(n) for n in leaf.chunkshape)
    common = {
        "path": leaf._v_pathname,
        "kind": kind,
        "depth": depth,
        "shape": tuple(int(n) for n in leaf.shape),
        "chunkshape": chunks,
        "filters": _filters(leaf),
        "size_on_disk": _size_on_disk(leaf),
    }
    if isinstance(leaf, (tables.Table, tables.Array)):
        try:
            reason = direct_read_reason(leaf)
        except RecordLayoutError as err:  # refused: neither read is safe
            return NodeInfo(**common, dtype=_record_summary(leaf), reason=f"refused: {err.reason}")
        return NodeInfo(
            **common,
            dtype=str(leaf.dtype) if not isinstance(leaf, tables.Table) else _record_summary(leaf),
            size_in_memory=int(leaf.size_in_memory),
            read="direct" if reason is None else "hdf5",
            reason=reason,
        )
    return NodeInfo(**common, reason=f"dask_tables does not read a {kind}")


def _record_summary(table: tables.Table) -> str:
    return f"{len(table.colpathnames)} columns"


def _node_info(node: tables.Node, depth: int) -> NodeInfo:
    if isinstance(node, tables.Group):
        return NodeInfo(node._v_pathname, "Group", depth)
    if isinstance(node, tables.link.Link):
        target = getattr(node, "target", "?")
        return NodeInfo(node._v_pathname, type(node).__name__, depth, reason=f"link to {target}")
    if isinstance(node, tables.UnImplemented):
        return NodeInfo(node._v_pathname, "UnImplemented", depth, reason="PyTables cannot read it")
    return _leaf_info(node, depth)


def _children(group: tables.Group) -> Iterator[tables.Node | str]:
    """A group's children by name; the path of one that PyTables cannot load at all."""
    for name in sorted(group._v_children):
        try:
            yield group._v_children[name]
        except (KeyError, ValueError, TypeError, tables.HDF5ExtError):
            # a dimension scale written by h5py or netCDF (a REFERENCE_LIST attribute)
            yield group._v_pathname.rstrip("/") + "/" + name


def _walk(node: tables.Node, depth: int) -> Iterator[NodeInfo]:
    yield _node_info(node, depth)
    if isinstance(node, tables.Group):
        for child in _children(node):
            if isinstance(child, str):
                yield NodeInfo(child, "UnImplemented", depth + 1, reason="PyTables cannot load it")
            else:
                yield from _walk(child, depth + 1)


def inspect_file(
    path: str | os.PathLike[str],
    node: str = "/",
    allow_pickles: bool = False,
    storage_options: Mapping[str, Any] | None = None,
) -> list[NodeInfo]:
    """Describe ``node`` (default the whole file) and everything under it, in tree order.

    Parameters
    ----------
    path : str, bytes or os.PathLike
        An HDF5 file (``~`` is the home folder).
    node : str, optional
        A group (its subtree is described) or a leaf.
    allow_pickles : bool, optional
        Let PyTables unpickle any attribute while reading (files you trust).
    storage_options : dict, optional
        For a URL (``s3://bucket/key``, ``https://...``): how to reach the
        store.  The object's metadata is fetched once (its shadow,
        ``docs/remote.rst``), no chunk beyond each node's first.

    Returns
    -------
    list of NodeInfo

    Raises
    ------
    FileNotFoundError
        ``path`` is missing.
    IsADirectoryError
        ``path`` is a directory.
    dask_tables.NotHDF5FileError
        ``path`` is not an HDF5 file (or is damaged).
    tables.NoSuchNodeError
        ``node`` is not in the file.

    Examples
    --------
    >>> import numpy as np, tables
    >>> with tables.open_file("example.h5", "w") as f:
    ...     _ = f.create_carray("/", "x", obj=np.zeros(1000), chunkshape=(100,),
    ...                         filters=tables.Filters(complevel=1, complib="zlib"))
    >>> [(n.path, n.kind, n.read) for n in inspect_file("example.h5")]
    [('/', 'Group', None), ('/x', 'CArray', 'direct')]
    >>> inspect_file("example.h5", "/x")[0].ratio > 10
    True
    """
    node = node_path(node)
    if is_url(path):
        url = os.fsdecode(os.fspath(path))
        return _inspect(metadata_path(url, storage_options), node, allow_pickles, display_url(url))
    path = file_path(path)
    check_hdf5_file(path)
    return _inspect(path, node, allow_pickles, path)


def _inspect(path: str, node: str, allow_pickles: bool, shown: str) -> list[NodeInfo]:
    """:func:`inspect_file` of the local file ``path`` (an object's shadow), named ``shown`` in messages."""
    with warnings.catch_warnings():
        # PyTables warns about what it cannot load (dimension scales' references): reported as rows
        warnings.simplefilter("ignore", tables.exceptions.DataTypeWarning)
        warnings.filterwarnings("ignore", message="problems loading leaf", category=UserWarning)
        with (
            locked_as_such(shown, node),
            refusing_pickles(not allow_pickles),
            get_lock(),
            synchronized_file(path, "r") as h5,
        ):
            try:
                top = h5.get_node(node)
            except tables.NoSuchNodeError:
                raise tables.NoSuchNodeError(f"{shown}: no node {node!r} in the file") from None
            return list(_walk(top, 0))


def _size(nbytes: int | None) -> str:
    if nbytes is None:
        return ""
    value = float(nbytes)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{nbytes} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return ""  # pragma: no cover


def _filters_text(filters: list[tuple[str, tuple[int, ...]]]) -> str:
    parts = []
    for name, params in filters:
        at = _LEVEL_AT.get(name)
        parts.append(f"{name}({params[at]})" if at is not None and len(params) > at else name)
    return "+".join(parts)


def _shape_text(shape: tuple[int, ...] | None) -> str:
    return "" if shape is None else "(" + ", ".join(map(str, shape)) + ("," if len(shape) == 1 else "") + ")"


def _row(info: NodeInfo) -> list[str]:
    name = info.path if info.depth == 0 else "  " * info.depth + info.path.rsplit("/", 1)[-1]
    if info.kind == "Group" and not name.endswith("/"):
        name += "/"
    read = {"direct": "direct", "hdf5": f"HDF5: {info.reason}", None: info.reason or ""}[info.read]
    ratio = "" if info.ratio is None else f"{info.ratio:.2f}"
    return [
        name,
        info.kind,
        _shape_text(info.shape),
        info.dtype or "",
        _shape_text(info.chunkshape),
        _filters_text(info.filters),
        _size(info.size_on_disk),
        ratio,
        read,
    ]


HEADER = ["node", "kind", "shape", "dtype", "chunkshape", "filters", "on disk", "ratio", "read"]


def format_table(infos: list[NodeInfo]) -> str:
    """The nodes as an aligned text table, one row per node, indented as the tree.

    Examples
    --------
    >>> print(format_table([NodeInfo("/", "Group", 0)]))
    node  kind   shape  dtype  chunkshape  filters  on disk  ratio  read
    /     Group
    """
    rows = [HEADER, *(_row(info) for info in infos)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADER) - 1)]
    lines = [
        "  ".join([*(cell.ljust(w) for cell, w in zip(row, widths, strict=False)), row[-1]]).rstrip()
        for row in rows
    ]
    return "\n".join(lines)


def to_json(infos: list[NodeInfo]) -> str:
    """The nodes as JSON: a list of objects with the fields of :class:`NodeInfo` and ``ratio``, one a line.

    Examples
    --------
    >>> print(to_json([NodeInfo("/", "Group", 0)]))  # doctest: +ELLIPSIS
    [
      {"path": "/", "kind": "Group", "depth": 0, "shape": null, ..., "ratio": null}
    ]
    """
    records: list[dict[str, Any]] = []
    for info in infos:
        record = asdict(info)
        record["filters"] = [{"name": name, "params": list(params)} for name, params in info.filters]
        record["ratio"] = info.ratio
        records.append(record)
    return "[\n" + ",\n".join("  " + json.dumps(record) for record in records) + "\n]"
