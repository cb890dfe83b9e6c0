"""What building a frame learns from each pandas-written table, before any partition is planned.

pandas opens each file (or, for an object in a store, its local shadow,
:mod:`dask_tables.remote.shadow`) once, under the registry lock: the table's
sizes, whether it holds a Series, pandas' conversion of its records
(:class:`~dask_tables.frame.pandas_select.PandasConversion`) and the
``where`` translated as pandas translates it
(:class:`~dask_tables.frame.pandas_select.PandasWhere`), checked by pandas'
own ``select`` of no rows.  :func:`describe_files` is that phase of
:func:`~dask_tables.frame.pandas_format.read_pandas_table`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Hashable, Iterator, Sequence
from dataclasses import dataclass

import pandas as pd
import tables

from ..errors import at_node, unreadable_file
from ..hdf5.fingerprint import Fingerprint, check_unchanged
from ..hdf5.pickles import pickle_refusals, refusing_pickles
from ..registry import get_lock, synchronized_file
from .pandas_select import PandasConversion, PandasQuery, PandasWhere

__all__ = ["FIXED_FORMAT", "Described", "describe_files", "is_pandas_node", "store_key"]


# dask.dataframe.read_hdf's message for a 'fixed' store, word for word: users' code matches it.
FIXED_FORMAT = """
This HDFStore is not partitionable and can only be use monolithically with
pandas.  In the future when creating HDFStores use the ``format='table'``
option to ensure that your dataset can be parallelized"""


def is_pandas_node(node: tables.Node) -> bool:
    """Whether ``node`` is a pandas ``format="table"`` frame (its group, or the table in it).

    Examples
    --------
    >>> import pandas as pd, tables
    >>> pd.DataFrame({"a": [1, 2]}).to_hdf("node.h5", key="f", format="table")
    >>> with tables.open_file("node.h5") as h5:
    ...     is_pandas_node(h5.root.f), is_pandas_node(h5.root.f.table)
    (True, True)
    """
    group = node if isinstance(node, tables.Group) else node._v_parent
    if isinstance(node, tables.Table) and node._v_name != "table":
        return False
    return "pandas_type" in group._v_attrs._v_attrnamesuser


def store_key(path: str, node: str) -> str:
    """The store key of ``node``: its group when it is the table in a pandas group (``/frame/table``).

    A key may itself be named ``table`` (``"/table"``, or ``"/table/table"``
    for its table): the file says which.

    Examples
    --------
    >>> import pandas as pd
    >>> pd.DataFrame({"a": [1, 2]}).to_hdf("key.h5", key="f", format="table")
    >>> store_key("key.h5", "/f/table"), store_key("key.h5", "/f")
    ('/f', '/f')
    """
    if not node.endswith("/table"):
        return node
    with refusing_pickles(), get_lock(), synchronized_file(path, "r") as h5:
        try:
            leaf = h5.get_node(node)
        except tables.NoSuchNodeError:
            return node
        return leaf._v_parent._v_pathname if isinstance(leaf, tables.Table) and is_pandas_node(leaf) else node


@dataclass(frozen=True)
class Described:
    """What the build learns from one file's pandas table.

    Attributes
    ----------
    rows, chunk_rows, row_nbytes : int
        Rows of the table, rows per HDF5 chunk, bytes per row.
    series : bool
        The node holds a pandas Series (named ``name``).
    name : hashable
        The Series' name.
    conversion : PandasConversion or None
        pandas' conversion, detached; ``None`` when it converts otherwise
        than pandas' ``select`` (pandas must then read the partitions).
    where : PandasWhere or None
        ``where``, translated (``None`` without one, or for row numbers).
    """

    rows: int
    chunk_rows: int
    row_nbytes: int
    series: bool
    name: Hashable
    conversion: PandasConversion | None
    where: PandasWhere | None

    @property
    def by_pandas(self) -> bool:
        """Whether pandas' ``select`` reads this table's partitions best (its where or conversion)."""
        return self.conversion is None or (self.where is not None and self.where.in_memory is not None)


def describe_files(
    paths: Sequence[str],
    fingerprints: Sequence[Fingerprint],
    key: str,
    where: PandasQuery | None,
    columns: Sequence[str] | None,
    index: str | None,
    allow_pickles: bool,
    names: Sequence[str] | None = None,
) -> list[Described]:
    """What the build learns from the pandas table ``key`` of each of ``paths``, which must not change meanwhile.

    ``names`` say how messages show the files (the URLs whose shadows are
    ``paths``).

    Examples
    --------
    >>> import pandas as pd
    >>> from dask_tables.hdf5.fingerprint import Fingerprint
    >>> pd.DataFrame({"a": range(10)}).to_hdf("described.h5", key="f", format="table")
    >>> [d.rows for d in describe_files(["described.h5"], [Fingerprint.of("described.h5")], "/f", None, None, None, False)]
    [10]
    """
    read_columns = None if columns is None else list(dict.fromkeys([*columns, *([index] if index else [])]))
    try:
        described = [
            _describe(path, fingerprint, key, where, read_columns, index, allow_pickles, shown)
            for path, fingerprint, shown in zip(paths, fingerprints, names or paths, strict=True)
        ]
    except tables.HDF5ExtError as err:  # pragma: no cover - locked or damaged after the first open
        damaged = f"{paths[0]}: damaged HDF5 file (asked for node {key})"
        raise unreadable_file(paths[0], key, err, damaged) from err
    for path, fingerprint in zip(paths, fingerprints, strict=True):
        check_unchanged(path, key, fingerprint)
    return described


def _describe(
    path: str,
    fingerprint: Fingerprint,
    key: str,
    where: PandasQuery | None,
    columns: Sequence[str] | None,
    index: str | None,
    allow_pickles: bool,
    shown: str,
) -> Described:
    """Sizes, kind and pandas' conversion of the pandas table ``key``; checks ``where`` and translates it."""
    with (
        _refused_pickle_explained(shown, key, allow_pickles),
        refusing_pickles(not allow_pickles),
        get_lock(),
        pd.HDFStore(path, mode="r") as store,
    ):
        storer = store.get_storer(key)
        if not storer.is_table:
            raise TypeError(
                f"{at_node(shown, key)} was written by pandas in the 'fixed' format, which has no rows "
                f"to partition; read it with pandas.read_hdf, or write it with format='table'.{FIXED_FORMAT}"
            )
        table = storer.table
        sizes = int(table.nrows), int(table.chunkshape[0]) if table.chunkshape else 1, int(table.rowsize)
        stored = store.select(key, start=0, stop=0)
        series = isinstance(stored, pd.Series)
        name = stored.name if series else None
        if series and (columns is not None or index is not None):
            raise ValueError(
                f"{at_node(shown, key)} holds a pandas Series (name {name!r}), which has no columns: "
                "leave out columns= and index="
            )
        translated = None
        if where is not None and where.rows is None:
            with _invalid_where_explained(shown, key, where):
                store.select(key, where=where.where(), start=0, stop=0)  # pandas checks it all
                translated = PandasWhere.of(storer, where.where(), repr(where))
        conversion = PandasConversion.of(storer, (path, fingerprint))
        return Described(*sizes, series, name, conversion, translated)


@contextlib.contextmanager
def _refused_pickle_explained(path: str, key: str, allow_pickles: bool) -> Iterator[None]:
    """Turn pandas' failure after the pickle gate refused an attribute into an error naming it, and the way out."""
    with pickle_refusals() as refused:
        try:
            yield
        except Exception as err:
            if allow_pickles or not refused:
                raise
            named = ", ".join(
                f"{attribute!r} (a pickled {kind})" for attribute, kind in dict.fromkeys(refused)
            )
            raise ValueError(
                f"{at_node(path, key)}: pandas needs the attributes {named} of this table, which dask_tables "
                f"does not unpickle: they could run code; pass allow_pickles=True if you trust the file "
                f"(pandas then failed with {type(err).__name__}: {err})"
            ) from None


@contextlib.contextmanager
def _invalid_where_explained(path: str, key: str, where: PandasQuery) -> Iterator[None]:
    """Turn pandas' errors on an invalid ``where`` into ours, naming the file and node."""
    try:
        yield
    except (
        ValueError,
        SyntaxError,
        NameError,
        TypeError,
        KeyError,
        AttributeError,
        NotImplementedError,
    ) as err:
        kind = type(err) if isinstance(err, (SyntaxError, NameError, TypeError)) else ValueError
        raise kind(f"{at_node(path, key)}: invalid pandas where {where!r}: {err}") from None
