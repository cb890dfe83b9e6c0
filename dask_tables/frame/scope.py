"""The names of a ``where``, resolved where the caller of ``read_table`` sees them.

Both query languages read variables from the caller's scope:
``tables.Table.where`` looks a name up in ``condvars``, else among the
table's columns, else (only without ``condvars``) in the locals, then the
globals, of the frame that called it; pandas' ``HDFStore.select`` resolves
the names of a ``where`` in the locals, then the globals, of its caller,
and takes a right-hand name it cannot resolve as the string of its name
(``"users = selector"`` with no variable ``selector`` compares with
``'selector'``).  Resolved in ``read_table``'s own frames instead, a
caller's variable silently becomes a string, or one of ``read_table``'s
parameters.

So ``read_table`` takes its caller's frame once, when the frame is built,
and keeps only the values of the names the ``where`` uses (:func:`captured`):
the graph holds no frame, pickles, and tokenizes the same way each time
(:func:`scope_token`).
"""

from __future__ import annotations

import io
import re
import tokenize as python_tokens
import types
from collections.abc import Iterable, Mapping
from typing import Any

import numexpr as ne

__all__ = ["captured", "pytables_names", "scope_token", "where_names"]


def where_names(text: str) -> list[str]:
    """The names in ``text``, an expression, in order (a superset of those it uses; none in strings).

    Examples
    --------
    >>> where_names("ts >= Timestamp('2012-02-01') & users = selector")
    ['ts', 'Timestamp', 'users', 'selector']
    """
    names: dict[str, None] = {}
    try:
        for token in python_tokens.generate_tokens(io.StringIO(text).readline):
            if token.type == python_tokens.NAME:
                names[token.string] = None
    except (python_tokens.TokenError, SyntaxError, IndentationError):
        return list(dict.fromkeys(re.findall(r"[^\W\d]\w*", text)))
    return list(names)


def pytables_names(text: str) -> list[str]:
    """The variables PyTables looks up for the condition ``text`` (as ``Table._required_expr_vars``).

    Examples
    --------
    >>> pytables_names("(energy > lim) & (where(x < 0, -x, x) > 1.5) & True")
    ['energy', 'lim', 'x']
    """
    try:
        names = compile(text, "<string>", "eval").co_names
    except (SyntaxError, ValueError):
        return []  # PyTables reports it when the condition is checked
    return [n for n in names if n not in ("None", "False", "True") and n not in ne.expressions.functions]


def captured(names: Iterable[str], scopes: Iterable[Mapping[str, Any] | None]) -> dict[str, Any]:
    """The values of ``names`` found in ``scopes``, the first scope that has a name winning.

    Examples
    --------
    >>> captured(["a", "b", "c"], [{"a": 1}, None, {"a": 2, "b": 3}])
    {'a': 1, 'b': 3}
    """
    found: dict[str, Any] = {}
    layers = [s for s in scopes if s is not None]
    for name in names:
        for layer in layers:
            if name in layer:
                found[name] = layer[name]
                break
    return found


def scope_token(values: Mapping[str, Any]) -> tuple[Any, ...]:
    """A deterministic token of captured values: modules, classes and functions by their names."""
    from dask.base import tokenize

    def token(value: Any) -> Any:
        if isinstance(value, types.ModuleType):
            return ("module", value.__name__)
        if isinstance(value, (type, types.FunctionType, types.BuiltinFunctionType)):
            return ("object", getattr(value, "__module__", None), getattr(value, "__qualname__", repr(value)))
        return tokenize(value)

    return tuple((name, token(values[name])) for name in sorted(values))


class ModuleRef:
    """A module in a captured scope, kept by name so the scope pickles (``np`` in ``"x > np.pi"``)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __reduce__(self) -> tuple[Any, ...]:
        return (ModuleRef, (self.name,))

    def module(self) -> types.ModuleType:
        """The module, imported."""
        import importlib

        return importlib.import_module(self.name)


def portable(values: Mapping[str, Any]) -> dict[str, Any]:
    """``values`` with modules as :class:`ModuleRef`; :func:`restored` undoes it."""
    return {k: ModuleRef(v.__name__) if isinstance(v, types.ModuleType) else v for k, v in values.items()}


def restored(values: Mapping[str, Any]) -> dict[str, Any]:
    """The values :func:`portable` made portable, modules imported again."""
    return {k: v.module() if isinstance(v, ModuleRef) else v for k, v in values.items()}
