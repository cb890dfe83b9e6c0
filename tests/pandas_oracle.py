"""A pytest plugin: every table select of pandas' own tests, run through ``read_table`` too and compared.

Loaded into a run of pandas' shipped ``pandas/tests/io/pytables`` (``-p
pandas_oracle``, with this directory on ``PYTHONPATH``; see
``tests/test_pandas_oracle.py``).  It wraps ``HDFStore.select`` and
``pandas.read_hdf``: each call returns pandas' own result (or raises
pandas' own error) to the test unchanged, and the same select (key,
``where`` as the test wrote it, ``columns``, ``start``, ``stop``) runs
through ``dask_tables.read_table(...).compute()`` on a byte copy of the
file, taken just before pandas reads it.  ``read_table`` is called from a
frame whose locals and globals are the test's, so the names in ``where``
resolve as they do for pandas.

Each call is tallied as one of:

- ``equal``: both returned, and ``assert_frame_equal`` (or
  ``assert_series_equal``) passes, with dask's ``dataframe.convert-string``
  off;
- ``different``: both returned, and they differ;
- ``pandas_raised_we_returned``: pandas raised, ``read_table`` returned;
- ``refused``: pandas returned, ``read_table`` raised;
- ``both_raised``;
- ``left_out:<why>``: iterator selects, fixed-format keys, tables that
  PyTables wrote, not pandas (``read_table`` reads those as PyTables
  tables: PyTables conditions, the row numbers as index), stores not on
  disk, closed stores, nested calls.

At the end of the session (of each xdist worker) the tally and the details
of every call that is not ``equal`` or ``both_raised`` are written as JSON
into the directory named by ``DASK_TABLES_ORACLE_DIR``.
"""

from __future__ import annotations

import collections
import functools
import json
import os
import shutil
import sys
import tempfile
import threading
import traceback
import warnings
from pathlib import Path
from types import FrameType
from typing import Any

import dask
import pandas as pd
from pandas.io import pytables as pandas_tables

import dask_tables

TALLY: collections.Counter[str] = collections.Counter()
DETAILS: list[dict[str, Any]] = []
_state = threading.local()  # per thread: inside a wrapped call; the pending read_hdf call's arguments
_originals: dict[str, Any] = {}
_ours_running = threading.Event()  # set while read_table runs: its selects (in dask's threads) pass through
_CALL = "__oracle_read_table(__oracle_path, __oracle_key, where=__oracle_where, columns=__oracle_columns, start=__oracle_start, stop=__oracle_stop)"


def _same(ours: Any, theirs: Any) -> str | None:
    """``None`` when equal, else why not."""
    try:
        if isinstance(theirs, pd.Series):
            pd.testing.assert_series_equal(ours, theirs)
        else:
            pd.testing.assert_frame_equal(ours, theirs)
    except AssertionError as err:
        return str(err)[:2000]
    return None


def _ours(frame: FrameType, path: str, key: str, where: Any, columns: Any, start: Any, stop: Any) -> Any:
    """``read_table(...).compute()`` called from a frame with the test's locals and globals."""
    names = dict(frame.f_locals)
    names.update(
        __oracle_read_table=dask_tables.read_table,
        __oracle_path=path,
        __oracle_key=key,
        __oracle_where=where,
        __oracle_columns=columns,
        __oracle_start=start,
        __oracle_stop=stop,
    )
    lazy = eval(_CALL, frame.f_globals, names)
    return lazy.compute(scheduler="threads")


def _copy(store: pd.HDFStore, key: str, workdir: str) -> str | tuple[str] | None:
    """A byte copy of the store's file, or why the call is left out."""
    if not store.is_open:
        return ("closed store",)
    try:
        storer = store.get_storer(key)
    except Exception:
        return ("no storer",)
    if not storer.is_table:
        return ("fixed format",)
    if isinstance(
        storer, pandas_tables.GenericTable
    ):  # read_table reads it as PyTables' table, row numbers and all
        return ("PyTables table",)
    if store._handle.params["DRIVER"] not in (None, "H5FD_SEC2") or not os.path.exists(store._path):
        return ("not on disk",)
    if store._handle.mode != "r":
        store._handle.flush()
    copy = os.path.join(workdir, f"copy{len(os.listdir(workdir))}.h5")
    shutil.copyfile(store._path, copy)
    return copy


def _as_called_from(frame: FrameType, call: functools.partial) -> Any:
    """``call()``, its warnings raised again as from ``frame`` where pandas blamed this wrapper."""
    try:
        with warnings.catch_warnings(record=True) as caught:
            return call()
    finally:
        for warning in caught:
            mine = warning.filename == __file__
            filename = frame.f_code.co_filename if mine else warning.filename
            lineno = frame.f_lineno if mine else warning.lineno
            warnings.warn_explicit(warning.message, warning.category, filename, lineno)


def _record(outcome: str, **details: Any) -> None:
    TALLY[outcome] += 1
    if outcome not in ("equal", "both_raised") and not outcome.startswith("left_out"):
        DETAILS.append({"outcome": outcome, "test": os.environ.get("PYTEST_CURRENT_TEST", "?"), **details})


def _select(self: pd.HDFStore, key: str, where: Any = None, start: Any = None, stop: Any = None,
            columns: Any = None, iterator: bool = False, chunksize: Any = None, **kwargs: Any) -> Any:  # fmt: skip
    # pandas captures the scope of select's caller: the test's, not this wrapper's
    terms = pandas_tables._ensure_term(where, scope_level=1)
    original = functools.partial(
        _originals["select"], self, key, terms, start, stop, columns, iterator, chunksize, **kwargs
    )
    if _ours_running.is_set():  # read_table's own calls, from any of dask's threads
        return original()
    if getattr(_state, "inside", False):  # pandas' calls within a select
        TALLY["left_out:nested"] += 1
        return _as_called_from(sys._getframe(1), original)
    pending, _state.pending = getattr(_state, "pending", None), None
    frame, written = (pending[0], pending[1]) if pending else (sys._getframe(1), where)
    if iterator or chunksize is not None:
        TALLY["left_out:iterator"] += 1
        return _as_called_from(frame, original)
    _state.inside = True
    workdir = tempfile.mkdtemp(prefix="oracle-")
    try:
        try:
            copied = _copy(self, key, workdir)
        except Exception as err:
            copied = (f"copy failed: {type(err).__name__}",)
        if isinstance(copied, tuple):
            TALLY[f"left_out:{copied[0]}"] += 1
            return _as_called_from(frame, original)
        try:
            theirs, raised = _as_called_from(frame, original), None
        except Exception as err:
            theirs, raised = None, err
        details = {"key": key, "where": repr(written)[:300], "columns": repr(columns)[:200], "start": start,
                   "stop": stop}  # fmt: skip
        try:
            with warnings.catch_warnings(), dask.config.set({"dataframe.convert-string": False}):
                warnings.simplefilter("ignore")
                _ours_running.set()
                ours, failed = _ours(frame, copied, key, written, columns, start, stop), None
        except Exception as err:
            ours, failed = None, err
        finally:
            _ours_running.clear()
        if raised is not None:
            if failed is None:
                _record("pandas_raised_we_returned", pandas=f"{type(raised).__name__}: {raised}"[:500],
                        rows=len(ours), **details)  # fmt: skip
            else:
                _record("both_raised")
            raise raised
        if failed is not None:
            where_failed = traceback.extract_tb(failed.__traceback__)[-1]
            _record("refused", error=f"{type(failed).__name__}: {failed}"[:800],
                    at=f"{where_failed.filename}:{where_failed.lineno}", **details)  # fmt: skip
        else:
            why = _same(ours, theirs)
            _record(
                "equal" if why is None else "different", **({} if why is None else {"why": why}), **details
            )
        return theirs
    finally:
        frame = None
        _state.inside = False
        shutil.rmtree(workdir, ignore_errors=True)


def _read_hdf(path_or_buf: Any, key: Any = None, mode: str = "r", errors: str = "strict", where: Any = None,
              start: Any = None, stop: Any = None, columns: Any = None, iterator: bool = False,
              chunksize: Any = None, **kwargs: Any) -> Any:  # fmt: skip
    terms = None if where is None else pandas_tables._ensure_term(where, scope_level=1)  # the test's scope
    if _ours_running.is_set() or getattr(_state, "inside", False) or getattr(_state, "pending", None):
        return _originals["read_hdf"](path_or_buf, key, mode, errors, terms, start, stop, columns, iterator,
                                      chunksize, **kwargs)  # fmt: skip
    _state.pending = (sys._getframe(1), where)
    try:
        return _originals["read_hdf"](path_or_buf, key, mode, errors, terms, start, stop, columns, iterator,
                                      chunksize, **kwargs)  # fmt: skip
    finally:
        _state.pending = None


def pytest_configure(config: Any) -> None:
    _originals["select"] = pd.HDFStore.select
    _originals["read_hdf"] = pandas_tables.read_hdf
    pd.HDFStore.select = _select
    pandas_tables.read_hdf = _read_hdf
    pd.read_hdf = _read_hdf


def pytest_sessionfinish(session: Any) -> None:
    out = os.environ.get("DASK_TABLES_ORACLE_DIR")
    if not out:
        return
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    Path(out, f"tally-{worker}.json").write_text(
        json.dumps({"tally": TALLY, "details": DETAILS}, default=str)
    )
