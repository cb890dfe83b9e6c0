"""dask's own tests of its HDF I/O, run on dask_tables: read_table and to_tables as drop-ins.

dask's wheel ships ``dask/dataframe/io/tests/test_hdf.py``.  It runs here in
a child process (about 45 s) with a thin adapter in place of ``dd.read_hdf``
and ``dd.to_hdf`` (and the ``to_hdf`` methods): argument names mapped,
``append=False`` as ``overwrite=True``, nothing else added.  The module is skipped unless
dask's ``dataframe.convert-string`` is False, so the child runs with it
False; its 12 tests skipped on Python >= 3.11 for PyTables' old segfault
(PyTables issue 977) are run.  Each dask test is one test here; the two
where dask_tables differs on purpose are strict xfails that say why
(``DIFFERENT``).
"""

from __future__ import annotations

import fcntl
import importlib.util
import json
import os
from pathlib import Path

import pytest
from helpers import run_child

ROOT = Path(__file__).resolve().parent.parent

ADAPTER = '''
"""pytest plugin: dask's test_hdf.py with dask_tables in place of dd.read_hdf and dd.to_hdf."""

import contextlib
import json
import os

import dask
import dask.dataframe as dd

import dask_tables


def read_hdf(pattern, key, start=0, stop=None, columns=None, chunksize=1000000, sorted_index=False,
             lock=True, mode="r"):
    # lock and mode: dask_tables takes its own lock and reads read-only
    return dask_tables.read_table(
        pattern, key, start=start, stop=stop, columns=columns, chunksize=chunksize, sorted_index=sorted_index
    )


def to_hdf(df, path, key, mode="a", append=False, scheduler=None, name_function=None, compute=True,
           lock=None, dask_kwargs=None, **kwargs):
    # lock: dask_tables takes its own locks
    chosen = dask.config.set(scheduler=scheduler) if scheduler else contextlib.nullcontext()
    with chosen:
        return dask_tables.to_tables(
            df, path, key, append=append, overwrite=not append, compute=compute, mode=mode,
            name_function=name_function, **kwargs
        )


dd.read_hdf = read_hdf
dd.to_hdf = to_hdf
dd.DataFrame.to_hdf = to_hdf
dd.Series.to_hdf = to_hdf


def pytest_collection_modifyitems(config, items):
    for item in items:  # PyTables' segfault of issue 977 is long fixed: run those tests too
        item.own_markers = [
            m for m in item.own_markers if not (m.name == "skipif" and "977" in str(m.kwargs.get("reason")))
        ]


OUTCOMES = {}


def pytest_runtest_logreport(report):
    name = report.nodeid.split("::", 1)[1]
    if report.failed:
        OUTCOMES[name] = "failed: " + str(report.longrepr).strip().splitlines()[-1][:300]
    elif report.when == "call" or report.skipped:
        OUTCOMES.setdefault(name, report.outcome)


def pytest_sessionfinish(session):
    with open(os.environ["DASK_TABLES_OUTCOMES"], "w") as out:
        json.dump(OUTCOMES, out, indent=1)
'''

# Where dask_tables differs from dd.read_hdf/dd.to_hdf on purpose (each a strict xfail, with why).
DIFFERENT = {
    "test_to_hdf_modes_multiple_files": (
        "dd.to_hdf with '*' in the path writes partitions 1.. with append=True even when append=False "
        "(a file that held the node gets the partition appended); to_tables replaces each file's node "
        "as asked"
    ),
    "test_hdf_empty_dataframe": (
        "read_table reads pandas' fixed format (issue 24), which dd.read_hdf refuses with a TypeError"
    ),
}
SCHEDULERS = [
    f"test_to_hdf_schedulers[{n}-{s}]" for n in (1, 4, 10) for s in ("sync", "threads", "processes")
]
DASK_TESTS = [
    "test_to_hdf",
    "test_to_hdf_multiple_nodes",
    "test_to_hdf_multiple_files",
    "test_to_hdf_modes_multiple_nodes",
    "test_to_hdf_modes_multiple_files",
    "test_to_hdf_lock_delays",
    "test_to_hdf_exceptions",
    *SCHEDULERS,
    "test_to_hdf_kwargs",
    "test_to_fmt_warns",
    "test_read_hdf[data0-assert_frame_equal]",
    "test_read_hdf[data1-assert_series_equal]",
    "test_read_hdf_multiply_open",
    "test_read_hdf_multiple",
    "test_read_hdf_start_stop_values",
    "test_hdf_globbing",
    "test_hdf_file_list",
    "test_read_hdf_pattern_pathlike",
    "test_to_hdf_path_pathlike",
    "test_read_hdf_doesnt_segfault",
    "test_hdf_filenames",
    "test_hdf_path_exceptions",
    "test_hdf_nonpandas_keys",
    "test_hdf_empty_dataframe",
]


def _dask_test_file() -> Path:
    spec = importlib.util.find_spec("dask")
    assert spec is not None and spec.submodule_search_locations
    return Path(spec.submodule_search_locations[0]) / "dataframe" / "io" / "tests" / "test_hdf.py"


def _run_dask_suite(where: Path) -> dict[str, str]:
    """Run dask's test_hdf.py through the adapter in a child process; each test's outcome."""
    where.mkdir(exist_ok=True)
    (where / "dask_tables_hdf_adapter.py").write_text(ADAPTER)
    (where / "pytest.ini").write_text("[pytest]\ntimeout = 120\n")
    outcomes = where / "outcomes.json"
    env = {
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(where)]),
        "DASK_DATAFRAME__CONVERT_STRING": "False",
        "DASK_TABLES_OUTCOMES": str(outcomes),
    }
    done = run_child(
        *("-m", "pytest", _dask_test_file(), "-p", "dask_tables_hdf_adapter"),
        *("-p", "no:cacheprovider", "-q", "-c", where / "pytest.ini", "--rootdir", where),
        cwd=where,  # test_hdf_filenames writes into the working directory
        env=env,
        timeout=420,
    )
    assert outcomes.exists(), done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads(outcomes.read_text())


@pytest.fixture(scope="module")
def dask_outcomes(tmp_path_factory):
    """The outcomes, computed once for every pytest-xdist worker (shared through a locked file)."""
    if not _dask_test_file().exists():
        pytest.skip("this dask does not ship dask/dataframe/io/tests/test_hdf.py")
    base = tmp_path_factory.getbasetemp()
    # this session's folder: under pytest-xdist each worker's basetemp lies in it
    shared = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "dask-hdf-suite"
    shared.mkdir(exist_ok=True)
    with open(shared / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        found = shared / "outcomes-of-all.json"
        if not found.exists():
            found.write_text(json.dumps(_run_dask_suite(shared / "run")))
        return json.loads(found.read_text())


def test_the_adapted_suite_runs_every_dask_test(dask_outcomes):
    assert sorted(dask_outcomes) == sorted(DASK_TESTS)


@pytest.mark.timeout(600)
@pytest.mark.parametrize(
    "name",
    [
        pytest.param(name, marks=pytest.mark.xfail(strict=True, reason=DIFFERENT[name]))
        if name in DIFFERENT
        else name
        for name in DASK_TESTS
    ],
)
def test_dask_hdf_test_passes_on_dask_tables(dask_outcomes, name):
    assert dask_outcomes[name] == "passed"
