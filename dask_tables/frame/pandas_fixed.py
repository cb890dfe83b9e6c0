"""Frames and Series pandas wrote in its default ``fixed`` format, read as dask collections.

``df.to_hdf(path, key="df")`` writes a group ``/df`` holding the frame's
axes (``axis0``: the columns, ``axis1``: the index) and its blocks: per
block of same-typed columns, ``blockN_items`` (their labels) and
``blockN_values`` (the values, rows first).  A Series is ``index`` and
``values``.  Numbers, bools, datetimes, timedeltas and periods are plain
arrays; text and other objects are one ``VLArray`` row of ``ObjectAtom``:
the whole block, pickled.

Partitions are row ranges.  Each task reads its rows of every numeric
block through a :class:`~dask_tables.TablesSource` (directly, decoding
outside every lock where the node is chunked: the blocks are read in
parallel), the index through pandas' own storer under the registry lock,
and takes its rows of an object block from that block unpickled once per
process (through the pickle gate, :mod:`dask_tables.hdf5.pickles`).  Values
are converted as pandas' ``read_hdf`` converts them (its ``read_array`` and
``BlockManagerFixed.read``).  What this module does not know how to convert
(an empty frame's placeholder, a value type it has not seen) is read by
pandas itself, ``HDFStore.select(key, start=, stop=)`` per partition, under
the lock.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import threading
from collections import OrderedDict
from collections.abc import Hashable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import dask.dataframe as dd
import numpy as np
import pandas as pd
import tables

from ..array.source import TablesSource
from ..errors import at_node
from ..hdf5.fingerprint import Fingerprint, check_unchanged
from ..hdf5.pickles import refusing_pickles
from ..registry import get_lock, synchronized_file
from ..remote.shadow import open_shadow, require_complete
from ..remote.urls import is_url
from .partitions import RowRange, partition_rows, plan_partitions, row_window

__all__ = ["is_pandas_fixed", "read_pandas_fixed"]


def is_pandas_fixed(path: str, node: str) -> bool:
    """Whether ``node`` of ``path`` is a frame or Series pandas wrote in the ``fixed`` format.

    Examples
    --------
    >>> import pandas as pd
    >>> pd.DataFrame({"a": [1, 2]}).to_hdf("example.h5", key="df")
    >>> is_pandas_fixed("example.h5", "/df")
    True
    """
    with refusing_pickles(), get_lock(), synchronized_file(path, "r") as h5:
        try:
            group = h5.get_node(node)
        except tables.NoSuchNodeError:
            return False
        if not isinstance(group, tables.Group):
            return False
        kind = group._v_attrs._v_attrnamesuser
        return "pandas_type" in kind and str(group._v_attrs.pandas_type) in ("frame", "series")


@dataclass(frozen=True)
class _Block:
    """One stored array of values: a frame's block of same-typed columns, or a Series' values."""

    node: str
    items: pd.Index | None  # the block's column labels (None: a Series)
    source: TablesSource | None  # numbers: read rows directly; None: pickled objects
    value_type: str | None
    tz: Any
    transposed: bool
    strings: bool  # objects pandas makes ``str`` (all text), decided on the whole block
    width: int  # columns of an object block


# Per process: object blocks, unpickled, keyed by (path, node, fingerprint,
# allow_pickles).  Filled and read under _objects_lock (a fill also takes the
# registry lock, always in that order); at most _OBJECTS_KEPT blocks, the
# least recently used dropped first.  A changed file has another fingerprint.
_objects: OrderedDict[tuple[Any, ...], np.ndarray] = OrderedDict()
_objects_lock = threading.Lock()
_OBJECTS_KEPT = 8


def _object_block(path: str, node: str, fingerprint: Fingerprint, allow_pickles: bool) -> np.ndarray:
    """The whole object block ``node`` (one ``VLArray`` row), unpickled once per process."""
    key = (path, node, tuple(fingerprint), allow_pickles)
    with _objects_lock:
        if key in _objects:
            _objects.move_to_end(key)
            return _objects[key]
        with refusing_pickles(not allow_pickles), get_lock(), synchronized_file(path, "r") as h5:
            check_unchanged(path, node, fingerprint)
            try:
                values = np.asarray(h5.get_node(node)[0])
            except pickle.UnpicklingError as err:
                raise ValueError(
                    f"{at_node(path, node)}: pandas pickled objects into this block that dask_tables "
                    f"refuses to unpickle ({err}); pass allow_pickles=True if you trust the file"
                ) from None
            check_unchanged(path, node, fingerprint)
        _objects[key] = values
        while len(_objects) > _OBJECTS_KEPT:
            _objects.popitem(last=False)
        return values


def _pandas_converters() -> tuple[Any, Any, Any]:
    """pandas' own conversions of fixed-format values (private helpers of ``pandas.io.pytables``)."""
    from pandas._config import using_string_dtype
    from pandas._libs.lib import is_string_array
    from pandas.io.pytables import _set_tz

    return _set_tz, is_string_array, using_string_dtype


@dataclass(frozen=True)
class FixedFile:
    """One file's fixed-format frame or Series: how each task reads its rows.

    Attributes
    ----------
    path, key : str
        The file and the frame's key.
    fingerprint : Fingerprint
        The file when the frame was built.
    series : bool
        A Series (``index`` and ``values``) rather than a frame.
    name : hashable
        The Series' name.
    items : pandas.Index or None
        The frame's columns (``axis0``).
    blocks : tuple of _Block
        What to read; empty where pandas reads every partition itself.
    allow_pickles : bool
        Let PyTables unpickle any object.
    rows : int
        Rows stored.
    remote : dask_tables.remote.transport.RemoteFile or None
        For an object in a store: the object (``path`` is its shadow, which
        holds the metadata and the small datasets pandas reads).
    index_source : TablesSource or None
        For an object whose index is not in the shadow: the index node,
        read from the object.
    """

    path: str
    key: str
    fingerprint: Fingerprint
    series: bool
    name: Hashable
    items: pd.Index | None
    blocks: tuple[_Block, ...]
    allow_pickles: bool
    rows: int
    remote: Any = None  # for an object: its RemoteFile (``path`` is then its shadow)
    index_source: TablesSource | None = None  # for an object: the index read from it, where not in the shadow

    def read(self, start: int, stop: int) -> pd.DataFrame | pd.Series:
        """Rows ``[start, stop)``, equal to ``pandas.read_hdf(path, key, start=start, stop=stop)``."""
        if not self.blocks:
            return self._through_pandas(start, stop)
        index = self._index(start, stop)
        values = [self._values(block, start, stop) for block in self.blocks]
        if self.series:
            return pd.Series(values[0], index=index, name=self.name, copy=False)
        assert self.items is not None
        frames = []
        for block, value in zip(self.blocks, values, strict=True):
            arr = value.T
            if isinstance(arr, np.ndarray):
                arr = np.asfortranarray(arr)
            frame = pd.DataFrame(
                arr, columns=self.items[self.items.get_indexer(block.items)], index=index, copy=False
            )
            if block.strings:
                frame = frame.astype(pd.StringDtype(na_value=np.nan))
            frames.append(frame)
        return pd.concat(frames, axis=1).reindex(columns=self.items)

    def _values(self, block: _Block, start: int, stop: int) -> Any:
        """As pandas' ``GenericFixed.read_array``, rows ``[start, stop)`` read as described above."""
        set_tz, _, _ = _pandas_converters()
        kind = block.value_type
        if block.source is None:
            if stop > start:
                if self.remote is not None:
                    self.remote.check_unchanged(block.node)
                ret = _object_block(self.path, block.node, self.fingerprint, self.allow_pickles)[start:stop]
            else:
                # an extension array (a value type) and a Series are 1-D, an object block 2-D
                flat = kind is not None or block.items is None
                ret = np.empty((0,) if flat else (0, block.width), dtype=object)
            if kind is not None:
                ret = pd.array(ret, dtype=kind)
        else:
            ret = block.source[start:stop]
            if kind and kind.startswith("datetime64"):
                ret = set_tz(ret, block.tz, "datetime64[ns]" if kind == "datetime64" else kind)
            elif kind and kind.startswith("timedelta64"):
                ret = np.asarray(ret, dtype="m8[ns]" if kind == "timedelta64" else kind)
            elif kind and kind.startswith("period"):
                dtype = pd.PeriodDtype.construct_from_string(kind)
                ret = pd.arrays.PeriodArray._simple_new(np.asarray(ret, dtype="i8"), dtype=dtype)
        return ret.T if block.transposed else ret

    def _index(self, start: int, stop: int) -> pd.Index:
        """The index of rows ``[start, stop)``, read by pandas' storer under the registry lock."""
        with self._store() as store:
            storer = store.get_storer(self.key)
            if self.index_source is None:
                return storer.read_index("index" if self.series else "axis1", start, stop)
            node = getattr(storer.group, "index" if self.series else "axis1")
            return storer.read_index_node(_RowsOf(node, self.index_source), start, stop)

    def _through_pandas(self, start: int, stop: int) -> pd.DataFrame | pd.Series:
        with self._store() as store:
            if self.rows == 0:  # pandas' select of rows fails on its empty placeholder
                return store.select(self.key)
            return store.select(self.key, start=start, stop=stop)

    @contextlib.contextmanager
    def _store(self) -> Iterator[pd.HDFStore]:
        if self.remote is not None:
            self.remote.check_unchanged(self.key)  # the shadow holds the version the frame was built on
        with refusing_pickles(not self.allow_pickles), get_lock():
            check_unchanged(self.path, self.key, self.fingerprint)
            with pd.HDFStore(self.path, mode="r") as store:
                yield store
            check_unchanged(self.path, self.key, self.fingerprint)


class _RowsOf:
    """An index node whose rows come from ``source`` (read from an object), attributes from ``node``."""

    def __init__(self, node: tables.Leaf, source: TablesSource) -> None:
        self._v_attrs, self._v_name, self.source = node._v_attrs, node._v_name, source

    def __getitem__(self, key: slice) -> np.ndarray:
        return self.source[key]


@dataclass(frozen=True)
class FixedReader:
    """A partition of fixed-format frames (one per file): the function :func:`dask.dataframe.from_map` maps."""

    files: tuple[FixedFile, ...]
    columns: tuple[Hashable, ...] | None

    def __call__(self, part: RowRange) -> pd.DataFrame | pd.Series:
        data = self.files[part.file].read(part.start, part.stop)
        return data if self.columns is None else data[list(self.columns)]


# value types this module converts itself (others: pandas reads the partitions)
_ARRAY_TYPES = ("datetime64", "timedelta64", "period")


def _describe(
    path: str, key: str, allow_pickles: bool, direct: bool | None, storage_options: Any = None
) -> FixedFile:
    """What the tasks need to read the fixed-format frame ``key``, learned in one open of the file.

    For a URL, pandas opens the object's shadow: what it reads through
    HDF5 (labels, small arrays, object blocks) must be stored whole there;
    numeric blocks, and an index that is not, are read from the object.
    """
    remote, shadow = None, None
    url = path
    if is_url(path):
        remote, shadow = open_shadow(path, storage_options)
        path = shadow.path
    fingerprint = Fingerprint.of(path)
    with refusing_pickles(not allow_pickles), get_lock(), pd.HDFStore(path, mode="r") as store:
        storer = store.get_storer(key)
        series = str(storer.pandas_type) == "series"
        group = storer.group
        if series:
            nodes = [("values", None)]
            items = None
        else:
            items = storer.read_index("axis0")
            nodes = [
                (f"block{i}_values", storer.read_index(f"block{i}_items")) for i in range(storer.nblocks)
            ]
        rows = _stored_rows(group, "index" if series else "axis1")
        described = [_block_of(getattr(group, name), block_items) for name, block_items in nodes]
        name = storer.name if series else None
        index_node = getattr(group, "index" if series else "axis1", None)
        index_path = None if index_node is None else index_node._v_pathname
    check_unchanged(path, key, fingerprint)
    whole = any(d is None for d in described) or rows == 0
    if shadow is not None:
        return _describe_remote(url, path, key, fingerprint, series, name, items, described, rows, shadow,
                                remote, index_path, whole, direct, allow_pickles, storage_options)  # fmt: skip
    if whole:
        return FixedFile(path, key, fingerprint, series, name, items, (), allow_pickles, rows)
    blocks = tuple(_finish(path, fingerprint, d, direct, allow_pickles) for d in described if d is not None)
    return FixedFile(path, key, fingerprint, series, name, items, blocks, allow_pickles, rows)


def _describe_remote(
    url: str,
    path: str,
    key: str,
    fingerprint: Fingerprint,
    series: bool,
    name: Hashable,
    items: pd.Index | None,
    described: list[dict[str, Any] | None],
    rows: int,
    shadow: Any,
    remote: Any,
    index_path: str | None,
    whole: bool,
    direct: bool | None,
    allow_pickles: bool,
    storage_options: Any,
) -> FixedFile:
    """:func:`_describe`'s end for an object: each node read from the shadow only if stored whole in it."""
    with get_lock(), synchronized_file(path, "r") as h5:
        leaves = [n._v_pathname for n in h5.get_node(key)._f_walknodes("Leaf")]
    direct_nodes = set() if whole else {d["node"] for d in described if d is not None and not d["objects"]}
    direct_nodes.add(index_path)
    # labels, multi-index levels and pickled objects: pandas reads them through HDF5, from the shadow
    require_complete(
        shadow, [n for n in leaves if whole or n not in direct_nodes], remote.name, "pandas reads it"
    )
    if whole:
        return FixedFile(path, key, fingerprint, series, name, items, (), allow_pickles, rows, remote)
    index_source = None
    if index_path is not None and index_path not in shadow.complete:
        index_source = TablesSource.open(url, index_path, direct=direct, allow_pickles=allow_pickles,
                                         made_by="read_table", storage_options=storage_options)  # fmt: skip
    blocks = []
    for d in described:
        assert d is not None
        if d["objects"]:
            blocks.append(_finish(path, fingerprint, d, direct, allow_pickles))
        else:
            source = TablesSource.open(url, d["node"], direct=direct, allow_pickles=allow_pickles,
                                       made_by="read_table", storage_options=storage_options)  # fmt: skip
            width = 0 if d["items"] is None else len(d["items"])
            blocks.append(
                _Block(d["node"], d["items"], source, d["value_type"], d["tz"], d["transposed"], False, width)
            )
    return FixedFile(path, key, fingerprint, series, name, items, tuple(blocks), allow_pickles, rows, remote,
                     index_source)  # fmt: skip


def _stored_rows(group: tables.Group, axis: str) -> int:
    """Rows of the frame: the length of its index (of a MultiIndex's codes); 0 for pandas' empty placeholder."""
    multi = str(getattr(group._v_attrs, f"{axis}_variety", "regular")) == "multi"
    node = getattr(group, f"{axis}_label0" if multi else axis)
    return 0 if "shape" in node._v_attrs._v_attrnamesuser else int(node.shape[0])


def _block_of(node: tables.Leaf, items: pd.Index | None) -> dict[str, Any] | None:
    """A block's node and attributes; ``None`` where pandas must read it (a placeholder, an unknown type)."""
    attrs = node._v_attrs
    names = attrs._v_attrnamesuser
    if "shape" in names:
        return None  # pandas' placeholder of an empty array
    value_type = str(attrs.value_type) if "value_type" in names else None
    objects = isinstance(node, tables.VLArray)
    if objects != isinstance(getattr(node, "atom", None), tables.ObjectAtom):
        return None
    if not objects and value_type is not None and not value_type.startswith(_ARRAY_TYPES):
        return None
    return {
        "node": node._v_pathname,
        "items": items,
        "objects": objects,
        "value_type": value_type,
        "tz": attrs.tz if "tz" in names else None,
        "transposed": bool(attrs.transposed) if "transposed" in names else False,
    }


def _finish(
    path: str, fingerprint: Fingerprint, d: dict[str, Any], direct: bool | None, allow_pickles: bool
) -> _Block:
    width = 0 if d["items"] is None else len(d["items"])
    if not d["objects"]:
        source = TablesSource.open(path, d["node"], direct=direct, allow_pickles=allow_pickles)
        return _Block(d["node"], d["items"], source, d["value_type"], d["tz"], d["transposed"], False, width)
    strings = False
    _, is_string_array, using_string_dtype = _pandas_converters()
    if d["value_type"] is None and d["items"] is not None and using_string_dtype():
        # pandas makes an object block of text ``str``, judged on the whole block: so is it here
        whole = _object_block(path, d["node"], fingerprint, allow_pickles)
        strings = bool(is_string_array(whole.T if d["transposed"] else whole, skipna=True))
    return _Block(d["node"], d["items"], None, d["value_type"], d["tz"], d["transposed"], strings, width)


def read_pandas_fixed(
    files: Sequence[str],
    node: str,
    *,
    columns: Sequence[Hashable] | None = None,
    where: str | None = None,
    condvars: Any = None,
    chunksize: int | None = None,
    index: str | None = None,
    sorted_index: bool | None = None,
    start: int | None = None,
    stop: int | None = None,
    direct: bool | None = None,
    allow_pickles: bool = False,
    storage_options: Any = None,
) -> dd.DataFrame | dd.Series:
    """Read frames (or Series) pandas wrote in its ``fixed`` format as one dask DataFrame (or Series).

    What :func:`dask_tables.read_table` calls for such a key; see the
    module's description for how partitions are read.

    Parameters
    ----------
    files : sequence of str
        The files, each giving its own partitions, in order.
    node : str
        The key (``"/df"``).
    columns : list, optional
        The columns to keep (only their blocks are read).
    where, condvars, index, sorted_index : None
        Refused, as pandas refuses them for this format: it has no
        columns to query or to index by.
    chunksize : int, optional
        Rows per partition (default: about dask's ``array.chunk-size``).
    start, stop : int, optional
        Rows of the files concatenated.
    direct : bool, optional
        Read chunked numeric blocks directly (see :func:`dask_tables.from_tables`).
    allow_pickles : bool, optional
        Unpickle any object of an object block (files you trust only).
    storage_options : dict, optional
        For URLs: how to reach the store (``docs/remote.rst``).

    Returns
    -------
    dask.dataframe.DataFrame or dask.dataframe.Series
        Equal to :func:`pandas.read_hdf` of the files, concatenated; the
        divisions are unknown.

    Examples
    --------
    >>> import pandas as pd
    >>> pd.DataFrame({"a": range(5), "b": list("vwxyz")}).to_hdf("example.h5", key="df")
    >>> df = read_pandas_fixed(["example.h5"], "/df", chunksize=2)
    >>> df.npartitions, df.b.compute().tolist()
    (3, ['v', 'w', 'x', 'y', 'z'])
    """
    key = node.rstrip("/") or "/"
    given = {"where": where, "condvars": condvars, "index": index, "sorted_index": sorted_index}
    refused = [name for name, value in given.items() if value is not None]
    if refused:
        raise TypeError(
            f"{at_node(files[0] if is_url(files[0]) else os.path.abspath(files[0]), key)} was written by pandas in its 'fixed' format, "
            f"which pandas reads only whole: {', '.join(refused)} cannot apply; write it with "
            "format='table' to query it"
        )
    described = tuple(
        _describe(f if is_url(f) else os.path.abspath(f), key, allow_pickles, direct, storage_options)
        for f in files
    )
    first = described[0]
    if first.series and columns is not None:
        raise ValueError(
            f"{at_node(first.path, key)} holds a pandas Series, which has no columns: leave out columns="
        )
    selected = None if columns is None else tuple([columns] if isinstance(columns, str) else columns)
    if selected is not None and first.items is not None:
        missing = [c for c in selected if c not in first.items]
        if missing:
            raise KeyError(
                f"{at_node(first.path, key)}: no columns {missing!r}; its columns are {list(first.items)}"
            )
        described = tuple(_only(d, selected) for d in described)
    reader = FixedReader(described, selected)
    meta = reader(RowRange(0, 0, 0, 0))
    for other in described[1:]:
        if not _same_kind(FixedReader((other,), selected)(RowRange(0, 0, 0, 0)), meta):
            raise ValueError(
                f"{at_node(other.path, key)} does not hold what {first.path} holds (columns, dtypes)"
            )
    low, high = row_window(start, stop, sum(d.rows for d in described), at_node(first.path, key))
    rows = partition_rows(chunksize, _chunk_rows(first), _row_nbytes(first))
    parts = plan_partitions([d.rows for d in described], rows, low, high)
    return dd.from_map(reader, parts, meta=meta, label="read-fixed", enforce_metadata=False)


def _same_kind(one: pd.DataFrame | pd.Series, other: pd.DataFrame | pd.Series) -> bool:
    """Same kind, columns and dtypes (what concatenating the files' partitions needs)."""
    if isinstance(one, pd.Series) or isinstance(other, pd.Series):
        return isinstance(one, pd.Series) and isinstance(other, pd.Series) and one.dtype == other.dtype
    return one.dtypes.equals(other.dtypes)


def _only(described: FixedFile, selected: tuple[Hashable, ...]) -> FixedFile:
    """Only the blocks holding a selected column."""
    if not described.blocks:
        return described
    kept = tuple(b for b in described.blocks if b.items is not None and b.items.isin(selected).any())
    items = described.items[described.items.isin(pd.Index([i for b in kept for i in b.items]))]
    return FixedFile(**{**described.__dict__, "blocks": kept, "items": items})


def _chunk_rows(described: FixedFile) -> int:
    for block in described.blocks:
        if block.source is not None and block.source.chunkshape:
            return block.source.chunkshape[0]
    return 1


def _row_nbytes(described: FixedFile) -> int:
    total = 8  # the index
    for block in described.blocks:
        if block.source is not None:
            total += block.source.dtype.itemsize * int(np.prod(block.source.shape[1:], dtype=np.int64))
        else:
            total += 8 * max(block.width, 1)
    return total
