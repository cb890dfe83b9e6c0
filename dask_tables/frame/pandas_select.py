"""pandas' ``HDFStore.select``, taken apart: its ``where`` as a PyTables condition, its conversion of records.

``HDFStore.select(key, where, start, stop, columns)`` does three things:

1. pandas' parser (``PyTablesExpr``, behind ``Selection``) turns ``where``
   into the PyTables condition it runs (``"(B > 3) & (s == b's3')"``: dates
   become integers, strings bytes, categories their codes) and into
   "filter" terms it applies in memory after the read (``columns=[...]``,
   a long ``index in [...]``);
2. PyTables reads the rows of ``[start, stop)`` that match the condition
   (``Table.read_where``), in row order;
3. the table's storer converts those records into the frame (values
   blocks, strings, categoricals, datetimes and time zones, the index),
   then keeps the ``columns`` asked for.

:class:`PandasWhere` keeps step 1: the condition pandas would run, or why
pandas must evaluate part of ``where`` in memory (then a local file's
partition read goes through pandas' own ``select``; from a URL,
:meth:`PandasConversion.to_frame` applies those terms with pandas' code).
:class:`PandasConversion` keeps step
3: the storer pandas built for the table (its axes and attributes),
detached from the open file and picklable, so that a partition task
converts records it read directly, outside every lock, with pandas' own
code, and gets the frame ``select`` returns for the same rows.  Step 2 is
:func:`~dask_tables.frame.conditions.read_matching`.

Both use private pandas classes (``Selection``, the storers' ``read``):
:meth:`PandasConversion.of` checks its answer against pandas' own
``select`` on the table's first rows, and declines (``None``) when they
differ, so a pandas release that changes them makes the read slower, never
different.
"""

from __future__ import annotations

import copy
import types
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import tables
from pandas.api.types import infer_dtype, is_list_like
from pandas.core.computation.pytables import PyTablesExpr, PyTablesScope, maybe_expression

from .scope import captured, portable, restored, scope_token, where_names

try:  # pandas' where parser, as HDFStore.select runs it
    from pandas.io.pytables import Selection
except ImportError:  # pragma: no cover - another pandas
    Selection = None

__all__ = ["PandasConversion", "PandasQuery", "PandasWhere"]


@dataclass(frozen=True, eq=False)
class PandasQuery:
    """A pandas ``where`` in any form ``HDFStore.select`` takes, with the values of its names.

    pandas resolves the names of a ``where`` in its caller's scope (locals,
    then globals) and takes a right-hand name it cannot resolve as the string
    of its name; a ``Term`` keeps the scope it was made in.  :meth:`of` does
    the same once, keeping only the names the expression uses, and
    :meth:`where` gives pandas a ``Term`` whose scope is those values alone.

    Attributes
    ----------
    text : str or None
        The expression (the terms of a list joined with ``&``, as pandas
        joins them); ``None`` for row numbers.
    names : tuple
        ``(name, value)`` pairs: the values of the expression's names.
    rows : numpy.ndarray or None
        Row numbers or a boolean mask (a ``where`` that is a list, array or
        index of integers or booleans).

    Examples
    --------
    >>> selector = "b"
    >>> query = PandasQuery.of("s == selector & x > 0", [{"selector": selector}])
    >>> query.text, query.names
    ('s == selector & x > 0', (('selector', 'b'),))
    >>> PandasQuery.of("", [{}]) is None, PandasQuery.of([3, 1], [{}]).rows
    (True, array([3, 1]))
    """

    text: str | None
    names: tuple[tuple[str, Any], ...] = ()
    rows: np.ndarray | None = None

    @classmethod
    def of(cls, where: Any, scopes: Sequence[Mapping[str, Any] | None]) -> PandasQuery | None:
        """``where`` as pandas' ``select`` takes it, its names resolved in ``scopes`` (first wins).

        ``scopes`` are the caller's: ``condvars``, its locals, its globals.
        ``None`` when pandas reads every row (``None``, ``""``, ``[]``,
        ``[None]``).  Raises pandas' ``TypeError`` for a ``where`` of no form
        pandas takes.
        """
        if where is None:
            return None
        if isinstance(where, PyTablesExpr):
            return cls._expression(where.expr, [scopes[0], where.env.scope])
        if isinstance(where, str):
            return cls._expression(where, scopes) if where else None
        if not is_list_like(where) or isinstance(where, (dict, set)):
            raise TypeError("where must be passed as a string, PyTablesExpr, or list-like of PyTablesExpr")
        items = [w for w in where if w is not None] if isinstance(where, (list, tuple)) else list(where)
        if not items:
            return None
        if infer_dtype(items, skipna=False) in ("integer", "boolean"):
            return cls(None, (), np.asarray(items))
        chain: Sequence[Mapping[str, Any] | None] = scopes
        parts = []
        for item in _flatten(items):  # pandas uses the scope of the last term for them all
            if isinstance(item, PyTablesExpr):
                chain = [scopes[0], item.env.scope]
                parts.append(item.expr)
            else:
                chain = scopes if maybe_expression(item) else chain
                parts.append(item)
        return cls._expression(" & ".join(f"({part})" for part in parts), chain)

    @classmethod
    def _expression(cls, text: str, scopes: Sequence[Mapping[str, Any] | None]) -> PandasQuery:
        values = portable(captured(where_names(text), scopes))
        return cls(text, tuple(values.items()))

    def where(self) -> Any:
        """The ``where`` to give pandas: row numbers, or a ``Term`` that sees only the captured names."""
        if self.text is None:
            return self.rows
        term = PyTablesExpr(self.text)
        term.env = PyTablesScope(0, global_dict={}, local_dict=restored(dict(self.names)))
        return term

    def __repr__(self) -> str:
        return repr(self.rows) if self.text is None else repr(self.text)

    def __dask_tokenize__(self) -> tuple[Any, ...]:
        rows = None if self.rows is None else (self.rows.dtype.str, self.rows.tobytes())
        return (type(self).__name__, self.text, scope_token(dict(self.names)), rows)


def _flatten(items: Sequence[Any]) -> list[Any]:
    """The items of nested lists, in order (strings and terms are not lists), as pandas flattens them."""
    flat = []
    for item in items:
        if is_list_like(item) and not isinstance(item, PyTablesExpr):
            flat.extend(_flatten(list(item)))
        else:
            flat.append(item)
    return flat


CHECKED_ROWS = 16  # rows converted by both pandas and the detached storer when the frame is built


@dataclass(frozen=True)
class PandasWhere:
    """A pandas ``where``, translated as ``HDFStore.select`` translates it.

    Attributes
    ----------
    text : str
        The ``where`` expression, as the user wrote it.
    condition : str or None
        The PyTables condition pandas runs with ``Table.read_where``
        (``None``: no condition, all rows are read).
    in_memory : str or None
        Why pandas evaluates part of ``where`` in memory after the read
        (``None``: the condition is the whole of it).
    filtered : bool
        ``where`` has terms pandas applies to the converted rows after the
        read (its "filter": terms on ``columns``, a long ``in`` list):
        :meth:`PandasConversion.to_frame` applies them with pandas' code.

    Examples
    --------
    >>> import pandas as pd
    >>> frame = pd.DataFrame({"a": range(5), "b": list("xyzxy")}, index=pd.RangeIndex(5))
    >>> frame.to_hdf("where.h5", key="f", format="table", data_columns=["b"])
    >>> with pd.HDFStore("where.h5", "r") as store:
    ...     storer = store.get_storer("f")
    ...     PandasWhere.of(storer, "index > 1 & b == 'x'").condition
    ...     PandasWhere.of(storer, "columns = ['a']").in_memory
    "((index > 1) & ((b == b'x')))"
    'pandas applies the terms on columns in memory after the read'
    """

    text: str
    condition: str | None
    in_memory: str | None
    filtered: bool = False

    @classmethod
    def of(cls, storer: Any, where: Any, text: str | None = None) -> PandasWhere:
        """Translate ``where`` for ``storer`` (pandas' storer of an open table, ``HDFStore.get_storer``).

        ``where`` is what ``select`` takes (a string, or a ``Term``, see
        :meth:`PandasQuery.where`); ``text`` says what it was (default: ``where``).
        Raises what pandas raises for an invalid ``where``.
        """
        where, text = where, str(where) if text is None else text
        if Selection is None:  # pragma: no cover - another pandas
            return cls(text, None, "this pandas has no pandas.io.pytables.Selection")
        storer.infer_axes()
        selection = Selection(storer, where=where)
        if selection.coordinates is not None:
            return cls(text, None, "where holds row numbers, which pandas reads itself")
        condition = None if selection.condition is None else selection.condition.format()
        if selection.filter is not None:
            fields = ", ".join(sorted({str(field) for field, _, _ in selection.filter.format()}))
            return cls(
                text, condition, f"pandas applies the terms on {fields} in memory after the read", True
            )
        risky = _indexed_or_of_ands(storer, selection)
        if risky:
            return cls(
                text,
                condition,
                f"it ORs AND-ed terms on the indexed columns {', '.join(risky)}: pandas reads it "
                "itself, with its warning (PyTables' indexed query may miss rows, pandas GH#50598)",
            )
        return cls(text, condition, None)


def _indexed_or_of_ands(storer: Any, selection: Any) -> list[str]:
    """The indexed columns of an OR of AND-ed terms (the shape pandas warns about), if any."""
    from pandas.io import pytables as pandas_tables

    find = getattr(pandas_tables, "_or_of_ands_columns", None)
    if find is None or selection.condition is None:  # pragma: no cover - another pandas
        return []
    table = storer.table
    return sorted(
        name
        for name in find(selection.condition)
        if name in table.colnames and table.colinstances[name].is_indexed
    )


class _Records:
    """Stands for the PyTables ``Table`` a detached storer reads: its ``read`` gives records already read."""

    colnames: tuple[str, ...] = ()  # no column is indexed: pandas' warning for an OR of ANDs stays silent

    def __init__(self, records: np.ndarray, attrs: types.SimpleNamespace) -> None:
        self.records = records
        self.attrs = attrs
        self.nrows = len(records)

    def read(self, start: int | None = None, stop: int | None = None) -> np.ndarray:
        return self.records[start:stop]

    def read_where(self, condition: str, start: int | None = None, stop: int | None = None) -> np.ndarray:
        """The records, which already are the rows matching ``condition`` (read in kernel by the task)."""
        return self.records


class _Group:
    """Stands for the group a detached storer belongs to: its attributes, and the records as its table."""

    def __init__(self, table: _Records, attrs: types.SimpleNamespace) -> None:
        self.table = table
        self._v_attrs = attrs


@dataclass(frozen=True, eq=False)
class PandasConversion:
    """pandas' conversion of one pandas table's records into its frame, detached from the file.

    Build it with :meth:`of` while the store is open; :meth:`to_frame`
    needs no file.

    Attributes
    ----------
    storer : pandas.io.pytables.Table
        pandas' storer of the table (``AppendableFrameTable``...), with its
        axes inferred, and no store, group or PyTables objects left in it.
    group_attrs, table_attrs : dict
        The attributes of the frame's group and of its table, as pandas
        reads them.
    origin : tuple
        The file and its fingerprint when this was built (its dask token).

    Examples
    --------
    >>> import pandas as pd, tables
    >>> frame = pd.DataFrame({"a": [1, 2, 3], "c": pd.Categorical(list("xyx"))})
    >>> frame.to_hdf("conversion.h5", key="f", format="table")
    >>> with pd.HDFStore("conversion.h5", "r") as store:
    ...     conversion = PandasConversion.of(store.get_storer("f"), origin=("conversion.h5",))
    >>> with tables.open_file("conversion.h5") as f:
    ...     records = f.root.f.table.read(1, 3)
    >>> conversion.to_frame(records)
       a  c
    1  2  y
    2  3  x
    """

    # Not in the repr: the detached storer's own repr needs the axes it no longer holds (distributed
    # shows a failed task's repr, and the task's real error was lost behind that AttributeError).
    storer: Any = field(repr=False)
    group_attrs: dict[str, Any] = field(repr=False)
    table_attrs: dict[str, Any] = field(repr=False)
    origin: tuple[Any, ...]

    @classmethod
    def of(cls, storer: Any, origin: tuple[Any, ...]) -> PandasConversion | None:
        """Detach ``storer`` (of an open store); ``None`` if it converts otherwise than pandas' ``select``."""
        if not storer.infer_axes():
            return None
        detached = copy.copy(storer)
        detached.parent = None
        detached.group = None
        detached._cache = {"indexables": [_detached_axis(axis) for axis in storer.indexables]}
        for name in ("index_axes", "values_axes"):  # rebuilt from the cached indexables
            detached.__dict__.pop(name, None)
        conversion = cls(detached, _attrs(storer.group._v_attrs), _attrs(storer.table.attrs), origin)
        stop = min(CHECKED_ROWS, int(storer.table.nrows))
        records = storer.table.read(0, stop)
        expected = storer.parent.select(storer.group._v_pathname, start=0, stop=stop)
        return conversion if _same(conversion.to_frame(records), expected) else None

    def to_frame(
        self, records: np.ndarray, columns: Sequence[Hashable] | None = None, where: Any = None
    ) -> pd.DataFrame | pd.Series:
        """What pandas' ``select(columns=columns)`` returns for the rows ``records`` of the table.

        With ``where`` (a ``where`` with terms pandas applies after the read,
        :attr:`PandasWhere.filtered`): ``records`` are the rows matching its
        condition, and pandas' own code applies those terms to the frame, as
        ``select(where=where, columns=columns)`` does.
        """
        storer = copy.copy(self.storer)
        axes = self._axes(columns if where is None else None)  # pandas' filter may need any column
        storer._cache = {"indexables": [copy.copy(axis) for axis in axes]}
        table = _Records(records, types.SimpleNamespace(**self.table_attrs))
        storer.group = _Group(table, types.SimpleNamespace(**self.group_attrs))
        return storer.read(where=where, columns=None if columns is None else list(columns))

    def _axes(self, columns: Sequence[Hashable] | None) -> list[Any]:
        """The axes to convert: the index, and the values axes that hold a column asked for."""
        axes = self.storer._cache["indexables"]
        if columns is None:
            return axes
        levels = self.group_attrs.get("levels")  # a MultiIndex's levels are columns too
        wanted = {*columns, *(levels if isinstance(levels, list) else [])}
        values = [a for a in axes if not a.is_an_indexable]
        kept = [a for a in values if wanted.intersection(a.values)] or values[:1]
        return [a for a in axes if a.is_an_indexable or any(a is k for k in kept)]

    def __dask_tokenize__(self) -> tuple[Any, ...]:
        return (type(self).__name__, type(self.storer).__name__, self.origin)


def _detached_axis(axis: Any) -> Any:
    """A copy of pandas' axis (``IndexCol``/``DataCol``) without PyTables objects, which do not pickle."""
    axis = copy.copy(axis)
    axis.table = None
    if isinstance(axis.typ, tables.Col):  # convert() only checks it is set
        axis.typ = axis.typ.dtype
    return axis


def _attrs(attrs: tables.AttributeSet) -> dict[str, Any]:
    """The user attributes of a node, by name."""
    return {name: getattr(attrs, name) for name in attrs._f_list("user")}


def _same(ours: pd.DataFrame | pd.Series, theirs: pd.DataFrame | pd.Series) -> bool:
    """Whether two of pandas' answers are equal: type, values, dtypes, index and column labels."""
    if type(ours) is not type(theirs):
        return False
    check = (
        pd.testing.assert_frame_equal if isinstance(ours, pd.DataFrame) else pd.testing.assert_series_equal
    )
    try:
        check(ours, theirs, check_exact=True, check_freq=True, check_flags=True)
    except AssertionError:
        return False
    return True
