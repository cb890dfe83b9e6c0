"""PyTables query conditions, checked when the graph is built and evaluated per partition.

``Table.read_where("energy > 10.5")`` compiles the condition with numexpr
and evaluates it "in kernel", chunk by chunk, or answers it from the
column's index.  :class:`Condition` keeps what a partition task needs to do
the same, picklable:

- the condition, and its variables: table columns by path, other values
  as numpy arrays (``tables.Column`` objects in ``condvars`` are accepted
  and kept by path, so they travel to other processes);
- the numexpr type of each variable, to compile the same function again
  in a task without opening the file;
- whether PyTables would use an index for it (not for an OR of ANDs,
  which PyTables' indexed query gets wrong: :func:`or_of_ands`).

For an indexed condition, PyTables' index says which HDF5 chunks may hold
matches (the "chunk map" its own indexed query computes, a few milliseconds
under the registry lock); the task reads only those chunks.  Either way the
task reads its rows directly, decoding outside every lock, and applies the
same compiled numexpr function that PyTables uses in kernel, with no lock
held: the rows equal ``read_where``'s.  :func:`read_matching` is that
partition read.

An enum column (read as a categorical) is compared with its names:
``kind == 'gamma'`` (or ``!=``, against a string constant or a string
variable) becomes ``kind == 2``, the name's value in the column's
``tables.Enum``, before PyTables compiles the condition.
"""

from __future__ import annotations

import ast
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numexpr as ne
import numpy as np
import tables
from tables.conditions import compile_condition

try:  # the chunk map of PyTables' indexed queries
    from tables.table import _table__where_indexed
except ImportError:  # pragma: no cover - another PyTables
    _table__where_indexed = None

from ..array.source import TablesSource
from ..errors import at_node
from ..hdf5.calls import other_record_layout
from ..hdf5.fields import take_field

__all__ = ["Condition", "enum_names_to_values", "read_matching"]


@dataclass(frozen=True)
class Condition:
    """A PyTables condition over one table's columns, ready for partition tasks.

    Attributes
    ----------
    text : str
        The condition, e.g. ``"(energy > 10.5) & (time < t0)"``.
    columns : tuple
        ``(variable name, column path)`` pairs, for the variables that are
        columns.
    values : tuple
        ``(variable name, numpy.ndarray)`` pairs, for the other variables.
    types : tuple
        ``(variable name, numexpr type)`` pairs, to compile the condition
        again.
    indexed : bool
        PyTables would answer the condition from a column index.

    Examples
    --------
    >>> import numpy as np, tables
    >>> rows = np.array([(1, 0.5), (2, 1.5), (3, 2.5)], dtype=[("n", "i4"), ("x", "f8")])
    >>> with tables.open_file("where.h5", "w") as f:
    ...     condition = Condition.of(f.create_table("/", "t", obj=rows), "x > lim", {"lim": 1.0})
    >>> condition.mask(rows)
    array([False,  True,  True])
    """

    text: str
    columns: tuple[tuple[str, str], ...]
    values: tuple[tuple[str, np.ndarray], ...]
    types: tuple[tuple[str, type], ...]
    indexed: bool

    @classmethod
    def of(
        cls,
        table: tables.Table,
        text: str,
        condvars: Mapping[str, Any] | None = None,
        names: Mapping[str, Any] | None = None,
    ) -> Condition:
        """Check ``text`` against ``table`` and keep what tasks need.

        A name of ``text`` is looked up as ``tables.Table.where`` looks
        it up: in ``condvars``, else among the table's columns, else (only
        without ``condvars``) in ``names``, the caller's variables.

        Raises
        ------
        SyntaxError, NameError, TypeError, ValueError
            The condition does not parse, names an unknown column or
            variable, is not boolean, or uses an unsupported operation;
            the message names the file and node.
        """
        where = at_node(table._v_file.filename, table._v_pathname)
        if not isinstance(text, str):
            raise TypeError(f"{where}: where={text!r} must be a PyTables condition string")
        if condvars is None:  # the caller's variables, where no column has the name
            condvars = {k: v for k, v in (names or {}).items() if k not in table.colinstances}
        own = {
            name: table.cols._f_col(value.pathname) if isinstance(value, tables.Column) else value
            for name, value in condvars.items()
        }
        original = text
        try:
            text = enum_names_to_values(table, text, own)
            variables = table._required_expr_vars(text, own)
            compiled = table._compile_condition(text, variables)
            indexed = bool(compiled.index_expressions) and not or_of_ands(text)
        except (SyntaxError, NameError, TypeError, ValueError, KeyError, NotImplementedError) as err:
            kind = type(err) if isinstance(err, (SyntaxError, NameError, TypeError)) else ValueError
            raise kind(f"{where}: invalid condition {original!r}: {err}") from None
        columns = tuple(
            (name, value.pathname) for name, value in variables.items() if isinstance(value, tables.Column)
        )
        values = tuple(
            (name, np.asarray(value))
            for name, value in variables.items()
            if not isinstance(value, tables.Column)
        )
        types = tuple(
            (name, _numexpr_type(value.dtype if isinstance(value, tables.Column) else value))
            for name, value in variables.items()
        )
        return cls(text, columns, values, types, indexed)

    def condvars(self, table: tables.Table) -> dict[str, Any]:
        """The ``condvars`` for PyTables' own query methods on ``table`` (an open node)."""
        variables: dict[str, Any] = {name: table.cols._f_col(path) for name, path in self.columns}
        variables.update(self.values)
        return variables

    def rows(self, table: tables.Table, start: int, stop: int) -> np.ndarray:
        """Numbers of the rows in ``[start, stop)`` that match: PyTables answers (indexes used)."""
        return table.get_where_list(self.text, self.condvars(table), start=start, stop=stop)

    def chunk_map(self, table: tables.Table, start: int, stop: int) -> np.ndarray | None:
        """Which HDF5 chunks of ``table`` may hold matches, from the column indexes (a few ms).

        This is the map PyTables' own indexed query computes before it
        evaluates the condition in kernel over the chunks it flags.  ``None``
        when PyTables would not use an index here (or its internals differ
        from what this version expects): then :meth:`rows` answers.
        """
        try:
            variables = table._required_expr_vars(self.text, self.condvars(table))
            compiled = table._compile_condition(self.text, variables)
            if not compiled.index_expressions:
                return None
            found = _table__where_indexed(table, compiled, self.text, variables, start, stop, 1)
        except (AttributeError, TypeError, AssertionError):  # pragma: no cover - another PyTables
            return None
        if isinstance(found, np.ndarray):
            return found.astype(bool, copy=False)
        if isinstance(found, type(iter([]))):  # PyTables' answer for "no row matches"
            return np.zeros(-(-int(table.nrows) // int(table.chunkshape[0])), dtype=bool)
        return None  # pragma: no cover - a cached row sequence: not with a fresh handle

    def mask(self, records: np.ndarray) -> np.ndarray:
        """Which of ``records`` match, with PyTables' in-kernel function; no lock needed."""
        function, parameters, kwargs = _compiled(self.text, self.types)
        columns = dict(self.columns)
        values = dict(self.values)
        args = []
        for name in parameters:
            if name in columns:
                column = take_field(records, columns[name])
                args.append(np.ascontiguousarray(column, dtype=column.dtype.newbyteorder("=")))
            else:
                args.append(values[name])
        if len(records) == 0:
            return np.zeros(0, dtype=bool)
        return np.asarray(function(*args, **kwargs), dtype=bool)


def read_matching(
    source: TablesSource, condition: Condition, start: int, stop: int
) -> tuple[np.ndarray, np.ndarray]:
    """The records of rows ``[start, stop)`` of ``source``'s table that match ``condition``, and their numbers.

    The records equal ``Table.read_where(condition.text, start=start,
    stop=stop)``, in row order.  With an index, PyTables' chunk map (under
    the registry lock) says which HDF5 chunks to read; the chunks are read
    like any others (decoded outside every lock where the direct path
    applies) and the condition is evaluated on them with no lock held.
    Where the map is not available, PyTables answers which rows match
    (except for records the file lays out otherwise than PyTables, with
    gaps, padding or mixed byte order, whose PyTables reads may corrupt
    memory: every chunk is then read and evaluated in kernel).

    Examples
    --------
    >>> import numpy as np, tables
    >>> rows = np.array([(1, 0.5), (2, 1.5), (3, 2.5)], dtype=[("n", "i4"), ("x", "f8")])
    >>> with tables.open_file("matching.h5", "w") as f:
    ...     condition = Condition.of(f.create_table("/", "t", obj=rows), "x > 1")
    >>> records, numbers = read_matching(TablesSource.open("matching.h5", "/t"), condition, 0, 3)
    >>> records["n"], numbers
    (array([2, 3], dtype=int32), array([1, 2]))
    """
    chunk_map = None
    if condition.indexed and source.remote is None:  # an object's index data is not on local disk: scan
        chunk_map = _shared_chunk_map(source, condition)
        if chunk_map is None:
            rows = source.with_leaf(lambda table: _rows_answered(condition, table, start, stop))
            if rows is not None:
                first = int(rows[0]) if len(rows) else start
                last = int(rows[-1]) + 1 if len(rows) else start
                return source[first:last][rows - first], rows
    chunk_rows = source.chunkshape[0] if source.chunkshape else max(1, stop - start)
    records, rows = [source[0:0]], [np.zeros(0, np.int64)]
    for run_start, run_stop in _row_runs(start, stop, chunk_rows, chunk_map):
        block = source[run_start:run_stop]
        matches = condition.mask(block)
        records.append(block[matches])
        rows.append(np.flatnonzero(matches) + run_start)
    return np.concatenate(records), np.concatenate(rows)


# (path, node, fingerprint, condition) -> the table's chunk map: partitions in one process share it
_CHUNK_MAPS: dict[tuple[Any, ...], np.ndarray | None] = {}
_CHUNK_MAPS_LOCK = threading.Lock()
_CHUNK_MAPS_KEPT = 64


def _shared_chunk_map(source: TablesSource, condition: Condition) -> np.ndarray | None:
    """:meth:`Condition.chunk_map` of the whole table, computed once per process for all its partitions.

    PyTables' chunk map covers the whole table whatever rows are asked
    (``Index.get_chunkmap``), and takes 0.1 to 0.2 s on 10 million rows:
    every partition of a read computed it again.  Keyed by the file's
    fingerprint, so a changed file gets a new one.
    """
    values = tuple((name, value.dtype.str, value.tobytes()) for name, value in condition.values)
    key = (source.path, source.node, source.fingerprint, condition.text, condition.columns, values)
    with _CHUNK_MAPS_LOCK:
        if key in _CHUNK_MAPS:
            return _CHUNK_MAPS[key]
    rows = int(source.shape[0])
    found = source.with_leaf(lambda table: condition.chunk_map(table, 0, rows))
    if found is not None:
        found.setflags(write=False)  # shared by every partition
    with _CHUNK_MAPS_LOCK:
        while len(_CHUNK_MAPS) >= _CHUNK_MAPS_KEPT:
            del _CHUNK_MAPS[next(iter(_CHUNK_MAPS))]
        _CHUNK_MAPS[key] = found
    return found


def _rows_answered(condition: Condition, table: tables.Table, start: int, stop: int) -> np.ndarray | None:
    """PyTables' numbers of the matching rows in ``[start, stop)``; ``None`` where it must not read ``table``.

    PyTables' query reads rows with its own read, which may corrupt memory
    on records the file lays out otherwise (gaps, padding, mixed byte
    order): those are evaluated in kernel over every chunk instead,
    decoded directly.  (Its chunk map reads only the index: it is used.)
    """
    if other_record_layout(table) is not None:
        return None
    return np.asarray(condition.rows(table, start, stop), np.int64)


def or_of_ands(text: str) -> bool:
    """Whether ``text`` ORs terms that AND conditions: a shape PyTables' indexed query gets wrong.

    PyTables' indexed query drops matching rows of ``(a < 5) & (b < 5) |
    (a > 9) & (b > 9)`` on indexed columns (PyTables#564, pandas GH#50598):
    its ``get_where_list`` returns no row where five match.  Such a
    condition is evaluated in kernel over every chunk instead, as PyTables
    evaluates it without an index: the right rows, never fewer.

    Examples
    --------
    >>> or_of_ands("(a < 5) & (b < 5) | (a > 9) & (b > 9)"), or_of_ands("(a < 5) | (b > 9)")
    (True, False)
    """
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError:
        return False
    return any(
        isinstance(node, ast.BinOp)
        and isinstance(node.op, ast.BitOr)
        and any(isinstance(inner, ast.BinOp) and isinstance(inner.op, ast.BitAnd) for inner in ast.walk(node))
        for node in ast.walk(tree)
    )


def _row_runs(start: int, stop: int, chunk_rows: int, chunk_map: np.ndarray | None) -> list[tuple[int, int]]:
    """Row ranges of ``[start, stop)`` to read: all of it, or the runs of chunks the map flags.

    Examples
    --------
    >>> _row_runs(5, 95, 10, np.array([1, 1, 0, 0, 1, 0, 0, 0, 1], dtype=bool))
    [(5, 20), (40, 50), (80, 95)]
    """
    if chunk_map is None:
        return [(start, stop)] if stop > start else []
    first, last = start // chunk_rows, -(-stop // chunk_rows)
    if len(chunk_map) < last:  # chunks the index does not cover are read
        chunk_map = np.concatenate([chunk_map, np.ones(last - len(chunk_map), dtype=bool)])
    flagged = np.flatnonzero(chunk_map[first:last]) + first
    if len(flagged) == 0:
        return []
    breaks = np.flatnonzero(np.diff(flagged) > 1)
    starts = np.concatenate([flagged[:1], flagged[breaks + 1]])
    ends = np.concatenate([flagged[breaks], flagged[-1:]]) + 1
    return [
        (max(start, int(a) * chunk_rows), min(stop, int(b) * chunk_rows))
        for a, b in zip(starts, ends, strict=True)
    ]


def enum_names_to_values(table: tables.Table, text: str, condvars: Mapping[str, Any] | None = None) -> str:
    """``text`` with enum names compared to enum columns replaced by their values.

    ``kind == 'gamma'`` (``==`` or ``!=``; the name a string or bytes
    constant, or a string variable of ``condvars``) becomes ``kind == 2``
    when ``kind`` is an enum column of ``table`` (by name, or a
    ``tables.Column`` in ``condvars``) and ``gamma`` has the value 2 in its
    ``tables.Enum``.  Any other text comes back unchanged.

    Raises
    ------
    ValueError
        A name that is not in the enum (the message lists the enum's
        names), or an order comparison (``<``...) of an enum column with a name.

    Examples
    --------
    >>> import numpy as np, tables
    >>> kinds = tables.Enum(["alpha", "beta", "gamma"])
    >>> with tables.open_file("enum.h5", "w") as f:
    ...     t = f.create_table("/", "t", {"kind": tables.EnumCol(kinds, "alpha", base="uint8"),
    ...                                   "x": tables.Int32Col()})
    ...     enum_names_to_values(t, "(kind == 'gamma') | (kind == 'alpha') & (x > 3)")
    '(kind == 2) | (kind == 0) & (x > 3)'
    """
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError:
        return text  # PyTables reports it
    rewriter = _EnumNames(table, condvars or {})
    rewriter.visit(tree)
    return ast.unparse(tree) if rewriter.changed else text


class _EnumNames(ast.NodeTransformer):
    """Replaces names compared to enum columns by their values (see :func:`enum_names_to_values`)."""

    def __init__(self, table: tables.Table, condvars: Mapping[str, Any]) -> None:
        self.table = table
        self.condvars = condvars
        self.changed = False

    def _enum(self, node: ast.expr) -> tuple[str, tables.Enum] | None:
        """The column path and enum of ``node`` if it names an enum column."""
        if not isinstance(node, ast.Name):
            return None
        value = self.condvars.get(node.id, node.id)  # a variable, or else a column of the table
        if node.id in self.condvars and not isinstance(value, tables.Column):
            return None
        path = value.pathname if isinstance(value, tables.Column) else value
        if self.table.coltypes.get(path) != "enum":
            return None
        return path, self.table.coldescrs[path].enum

    def _name(self, node: ast.expr) -> str | None:
        """The string ``node`` stands for (a constant or a ``condvars`` variable), if any."""
        if isinstance(node, ast.Constant):
            value = node.value
        elif isinstance(node, ast.Name) and node.id in self.condvars:
            value = self.condvars[node.id]
        else:
            return None
        if isinstance(value, (bytes, np.bytes_)):
            return bytes(value).decode("utf-8", "replace")
        return str(value) if isinstance(value, str) else None

    def visit_Compare(self, node: ast.Compare) -> ast.Compare:
        self.generic_visit(node)
        operands = [node.left, *node.comparators]
        for position, op in enumerate(node.ops):
            for this, other in ((position, position + 1), (position + 1, position)):
                column, name = self._enum(operands[this]), self._name(operands[other])
                if column is None or name is None:
                    continue
                operands[other] = ast.Constant(self._value(column, name, op))
                self.changed = True
        node.left, node.comparators = operands[0], operands[1:]
        return node

    def _value(self, column: tuple[str, tables.Enum], name: str, op: ast.cmpop) -> int:
        path, enum = column
        names = dict(enum._names)
        if not isinstance(op, (ast.Eq, ast.NotEq)):
            raise ValueError(
                f"the enum column {path!r} compares with its names by == or != only; compare its "
                f"values to order them ({', '.join(f'{n}={v}' for n, v in names.items())})"
            )
        if name not in names:
            raise ValueError(
                f"{name!r} is not a name of the enum column {path!r}; its names are {', '.join(names)}"
            )
        return int(names[name])


def _numexpr_type(value: Any) -> type:
    if isinstance(value, np.dtype):
        return tables.table._nxtype_from_nptype[value.type]
    return ne.necompiler.getType(np.asarray(value))


# Compiled conditions of this thread, by (text, types).  Per thread: a numexpr
# function object keeps its scratch registers inside itself, so two threads
# calling the same object corrupt each other's memory (we saw segfaults).
_per_thread = threading.local()


def _compiled(text: str, types: tuple[tuple[str, type], ...]) -> tuple[Any, list[str], dict[str, Any]]:
    # numexpr function objects do not pickle either: each thread of each process compiles its own.
    cache = getattr(_per_thread, "cache", None)
    if cache is None:
        cache = _per_thread.cache = {}
    key = (text, types)
    if key not in cache:
        if len(cache) > 64:
            cache.clear()
        compiled = compile_condition(text, dict(types), frozenset())
        cache[key] = compiled.function, list(compiled.parameters), compiled.kwargs
    return cache[key]
