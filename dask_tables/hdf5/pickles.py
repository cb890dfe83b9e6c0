"""Refuse to run pickled objects found in HDF5 attributes (and object VLArrays) while dask_tables reads a file.

PyTables unpickles every attribute of every node it opens (``AttributeSet``
reads them all), so merely opening a hostile file can run code.  While a
thread is inside :func:`refusing_pickles`, the unpickling PyTables does for
that thread only rebuilds plain data (builtins, numpy arrays and scalars,
PyTables' own ``Filters``); any other object is refused, and PyTables then
keeps the attribute as its raw bytes, as it does for any pickle it cannot
load.  The rows of a ``VLArray`` of ``ObjectAtom`` (where pandas' fixed
format pickles its object columns) pass the same gate: a refused row
raises ``pickle.UnpicklingError``.  Other threads unpickle as before.

pandas pickles the ``freq`` and ``tz`` of a ``DatetimeIndex`` into a table's
``info`` attribute, and column labels into ``non_index_axes`` and
``values_block_*_kind``: its date offsets (``Hour``, ``MonthEnd``, ...),
``Timestamp`` and ``Timedelta`` labels (rebuilt by pandas' own
``_unpickle_timestamp``/``_timedelta_unpickle`` from numbers), and time zones
(``zoneinfo.ZoneInfo``, rebuilt through ``getattr(ZoneInfo, "_unpickle")``,
the only ``getattr`` allowed; ``datetime.timezone``; dateutil's ``tzfile``,
rebuilt from its pickled state, never from a file), and ``bytes`` as the old
protocols write them (``_codecs.encode(text, "latin1")``, latin1 only) are
plain data too, and pass.

A refused object is recorded, with the attribute that held it, for the
thread inside ``pickle_refusals``: an error that follows can name it.
"""

from __future__ import annotations

import contextlib
import io
import pickle
import sys
import threading
from collections.abc import Iterator
from typing import Any

import tables.atom
import tables.attributeset

__all__ = ["pickle_refusals", "refusing_pickles"]

_SAFE_GLOBALS = {
    *(
        (module, name)
        for module in ("builtins", "__builtin__")  # protocols 0-2 name the builtins module the Python 2 way
        for name in ("set", "frozenset", "complex", "slice", "range", "bytearray", "object")
    ),
    # old-style pickles of instances (PyTables 1.x stored Filters so): the classes
    # they instantiate must pass this list too
    ("copy_reg", "_reconstructor"),
    ("copyreg", "_reconstructor"),
    ("numpy", "dtype"),
    ("numpy", "ndarray"),
    *(
        (module, name)
        for module in ("numpy.core.multiarray", "numpy._core.multiarray")
        for name in ("_reconstruct", "scalar")
    ),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("tables.filters", "Filters"),
    ("pandas._libs.tslibs.timestamps", "_unpickle_timestamp"),  # Timestamp(value, unit, tz): numbers
    ("pandas._libs.tslibs.timedeltas", "_timedelta_unpickle"),
    ("dateutil.tz.tz", "_ttinfo"),  # the state of a tzfile: its __setstate__ sets its slots
    ("datetime", "timedelta"),  # in pandas' business-day offsets
    ("datetime", "timezone"),
    ("zoneinfo", "ZoneInfo"),
}
_GETATTR = {("builtins", "getattr"), ("__builtin__", "getattr")}


def _refused(what: str, message: str) -> pickle.UnpicklingError:
    """The error for a refused object, recorded with its attribute for ``pickle_refusals``."""
    refused = getattr(_state, "refused", None)
    if refused is not None:
        frame, attribute = sys._getframe(1), None
        while frame is not None and attribute is None:
            if frame.f_globals.get("__name__") == "tables.attributeset":  # its (self, name) method reads it
                attribute = frame.f_locals.get("name")
            frame = frame.f_back
        refused.append((attribute if isinstance(attribute, str) else "?", what))
    return pickle.UnpicklingError(message)


def _zoneinfo_unpickle_only(obj: Any, name: str) -> Any:
    """``getattr`` as a ``ZoneInfo`` pickle uses it, and for nothing else."""
    import zoneinfo

    if obj is zoneinfo.ZoneInfo and name == "_unpickle":
        return zoneinfo.ZoneInfo._unpickle
    raise _refused(
        f"getattr({obj!r}, {name!r})", f"dask_tables refuses getattr({obj!r}, {name!r}) in an HDF5 attribute"
    )


def _dateutil_tzfile(fileobj: Any, filename: Any = None) -> Any:
    """dateutil's ``tzfile`` as its pickle rebuilds it (no file: its state follows), and in no other way."""
    from dateutil.tz import tz

    if fileobj is not None or not isinstance(filename, (str, type(None))):
        raise _refused(
            "dateutil.tz.tz.tzfile(file)", "dask_tables refuses a dateutil tzfile read from a file"
        )
    return tz.tzfile(None, filename)


def _latin1_bytes(text: Any, encoding: Any = "utf-8") -> bytes:
    """``_codecs.encode(text, "latin1")``, as protocols 0-2 pickle ``bytes`` (numpy's ``datetime64`` holidays)."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise _refused(
            f"_codecs.encode({encoding!r})", "dask_tables refuses _codecs.encode but of latin1 text"
        )
    return text.encode("latin1")


def _is_pandas_offset(module: str, name: str) -> bool:
    """Whether ``module.name`` is one of pandas' date offset classes (plain data, like ``Hour(1)``)."""
    if module != "pandas._libs.tslibs.offsets":
        return False
    from pandas._libs.tslibs import offsets

    found = getattr(offsets, name, None)
    return isinstance(found, type) and issubclass(found, offsets.BaseOffset)


# Per thread: whether unpickling for this thread is restricted.  Written
# only by the thread itself.
_state = threading.local()


class _DataOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _SAFE_GLOBALS or _is_pandas_offset(module, name):
            return super().find_class(module, name)
        if (module, name) in _GETATTR:
            return _zoneinfo_unpickle_only
        if (module, name) == ("dateutil.tz.tz", "tzfile"):
            return _dateutil_tzfile
        if (module, name) == ("_codecs", "encode"):
            return _latin1_bytes
        raise _refused(
            f"{module}.{name}", f"dask_tables refuses to unpickle {module}.{name} from an HDF5 attribute"
        )


class _PickleGate:
    """Stands in for the :mod:`pickle` module inside ``tables.attributeset`` and ``tables.atom``."""

    def __getattr__(self, name: str) -> Any:
        return getattr(pickle, name)

    def loads(self, data: bytes, *args: Any, **kwargs: Any) -> Any:
        if getattr(_state, "refuse", False):
            return _DataOnlyUnpickler(io.BytesIO(data), *args, **kwargs).load()
        return pickle.loads(data, *args, **kwargs)


_install_lock = threading.Lock()


def _install() -> None:
    # Guarded by _install_lock: the gate is installed once and stays; it only
    # changes behaviour for threads inside refusing_pickles().
    with _install_lock:
        for module in (tables.attributeset, tables.atom):
            if not isinstance(module.pickle, _PickleGate):
                module.pickle = _PickleGate()


@contextlib.contextmanager
def refusing_pickles(refuse: bool = True) -> Iterator[None]:
    """Within the block, PyTables rebuilds only plain data from pickled attributes (this thread).

    Parameters
    ----------
    refuse : bool, optional
        ``False`` makes the block a no-op (the user opted in to pickles).

    Examples
    --------
    >>> import os, numpy as np, tables
    >>> class Marker:
    ...     def __reduce__(self):
    ...         return (os.getcwd, ())  # any callable: a real attack would run a command
    >>> with tables.open_file("example.h5", "w") as f:
    ...     f.root._v_attrs.evil = Marker()
    >>> with refusing_pickles(), tables.open_file("example.h5") as f:
    ...     type(f.root._v_attrs.evil).__name__  # the raw pickle, not a call's result
    'bytes_'
    """
    if not refuse:
        yield
        return
    _install()
    previous = getattr(_state, "refuse", False)
    _state.refuse = True
    try:
        yield
    finally:
        _state.refuse = previous


@contextlib.contextmanager
def pickle_refusals() -> Iterator[list[tuple[str, str]]]:
    """The ``(attribute, refused global)`` pairs the gate refused in this thread within the block.

    Examples
    --------
    >>> import os, tables
    >>> class Marker:
    ...     def __reduce__(self):
    ...         return (os.getcwd, ())
    >>> with tables.open_file("refused.h5", "w") as f:
    ...     f.root._v_attrs.evil = Marker()
    >>> with refusing_pickles(), pickle_refusals() as refused, tables.open_file("refused.h5") as f:
    ...     _ = f.root._v_attrs.evil
    >>> refused
    [('evil', 'posix.getcwd')]
    """
    previous = getattr(_state, "refused", None)
    _state.refused = found = []
    try:
        yield found
    finally:
        _state.refused = previous
        if previous is not None:
            previous.extend(found)
