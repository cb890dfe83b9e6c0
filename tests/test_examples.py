"""Every program in examples/ runs and prints the mean PyTables reads."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import tables
from helpers import run_child

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.mark.parametrize(
    ("script", "args"),
    [
        ("simple_threading.py", []),
        ("threading_monkeypatch.py", []),
        ("from_tables_mean.py", []),
        ("from_tables_mean.py", ["processes"]),
        ("xarray_open.py", []),
        ("xarray_open.py", ["processes"]),
    ],
)
def test_example_prints_the_true_mean(tmp_path, script, args):
    done = run_child(EXAMPLES / script, *args, cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    printed = float(done.stdout.strip().removeprefix("Mean: "))
    (h5,) = tmp_path.glob("*.h5")
    with tables.open_file(h5) as f:
        expected = f.root.array.read().mean()
    assert printed == pytest.approx(expected, rel=1e-12)


def test_every_example_is_tested():
    tested = {
        "simple_threading.py",
        "threading_monkeypatch.py",
        "from_tables_mean.py",
        "read_table_where.py",
        "xarray_open.py",
        "frame_to_tables.py",
    }
    assert {p.name for p in EXAMPLES.glob("*.py")} == tested


@pytest.mark.parametrize("scheduler", ["threads", "processes"])
def test_read_table_example_prints_what_pytables_selects(tmp_path, scheduler):
    done = run_child(EXAMPLES / "read_table_where.py", scheduler, cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr
    first, *per_detector = done.stdout.strip().splitlines()
    with tables.open_file(tmp_path / "events.h5") as f:
        selected = f.root.events.read_where("energy > 10.5")
    assert float(first.removeprefix("Mean: ")) == pytest.approx(selected["energy"].mean(), rel=1e-12)
    printed = {int(line.split()[0]): float(line.split()[1]) for line in per_detector[1:]}
    expected = {d: selected["energy"][selected["detector"] == d].mean() for d in range(4)}
    assert printed == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("scheduler", ["threads", "processes"])
def test_frame_to_tables_example_prints_what_pandas_reads(tmp_path, scheduler):
    done = run_child(EXAMPLES / "frame_to_tables.py", scheduler, cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr
    selected, mean, longest = done.stdout.strip().splitlines()
    written = pd.read_hdf(tmp_path / "frame.h5", "events")
    assert len(written) == 50_000
    assert written.index.is_monotonic_increasing
    high = written[written["energy"] > 10.5]
    assert int(selected.removeprefix("Selected: ")) == len(high)
    assert float(mean.removeprefix("Mean: ")) == pytest.approx(high["energy"].mean(), rel=1e-12)
    assert int(longest.removeprefix("Longest station: ")) == len("station-xxxx0")
