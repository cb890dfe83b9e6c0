"""pandas' own HDFStore tests as the oracle: every table select they make, made by read_table too, must agree.

One test: it runs the ``pandas/tests/io/pytables`` that the installed
pandas ships, in a child pytest with the plugin :mod:`pandas_oracle`
(``tests/pandas_oracle.py``), on 2 workers, and asserts on the plugin's
tally: no select where ``read_table`` returns other rows than pandas, and
none where pandas raised and ``read_table`` returned.  ``equal`` is
``pandas.testing.assert_frame_equal`` with dask's ``dataframe.convert-string``
off.  About 1-2 minutes on 2 cores.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
from helpers import last_line, run_child

HERE = Path(__file__).resolve().parent
PANDAS_TESTS = Path(pd.__file__).parent / "tests" / "io" / "pytables"


@pytest.mark.skipif(not PANDAS_TESTS.is_dir(), reason="this pandas does not ship its tests")
@pytest.mark.timeout(1200)
def test_pandas_own_selects_equal_read_table(tmp_path):
    out = tmp_path / "tally"
    out.mkdir()
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    # Not this session's pytest-xdist worker name: the child's own controller would take it, and
    # write its (empty) tally over that of its own worker of the same name.
    env = {
        **{k: None for k in os.environ if k.startswith("PYTEST_XDIST")},
        "DASK_TABLES_ORACLE_DIR": str(out),
        "PYTHONPATH": os.pathsep.join([str(HERE.parent), str(HERE), os.environ.get("PYTHONPATH", "")]),
    }
    done = run_child(
        *("-m", "pytest", PANDAS_TESTS),
        *("-c", tmp_path / "pytest.ini", "--rootdir", tmp_path),
        *("-p", "pandas_oracle", "-p", "no:cacheprovider", "-q", "-n", "2"),
        *("--no-strict-data-files", "--timeout", "120"),
        cwd=tmp_path,
        env=env,
        timeout=1100,
    )
    summary = last_line(done) or done.stderr[-2000:]
    assert done.returncode == 0, (
        f"pandas' own tests failed under the plugin: {summary}\n{done.stdout[-5000:]}"
    )
    tally: Counter[str] = Counter()
    details: list[dict] = []
    for worker in out.glob("tally-*.json"):
        found = json.loads(worker.read_text())
        tally.update(found["tally"])
        details += found["details"]
    compared = sum(n for outcome, n in tally.items() if not outcome.startswith("left_out"))
    print(f"pandas {pd.__version__}: {summary}; {compared} selects compared: {dict(sorted(tally.items()))}")
    assert compared > 500, tally  # the plugin saw pandas' selects
    wrong = [d for d in details if d["outcome"] in ("different", "pandas_raised_we_returned")]
    assert not wrong, json.dumps(wrong, indent=1, default=str)[:20000]
