"""Project hygiene that CI must enforce: the docs build cleanly, the code is ruff clean."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_docs_build_with_warnings_as_errors(tmp_path):
    pytest.importorskip("sphinx")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "sphinx",
            "-W",
            "--keep-going",
            "-b",
            "html",
            str(ROOT / "docs"),
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "api.html").exists()
    assert "from_tables" in (tmp_path / "api.html").read_text()


@pytest.mark.parametrize("command", [["check"], ["format", "--check"]])
def test_ruff_clean(command):
    done = subprocess.run(
        [sys.executable, "-m", "ruff", *command, str(ROOT)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_readme_commands_are_the_ci_commands():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "pip install ." in readme and "dask-tables demo" in readme
    assert 'pip install -e ".[test]"' in readme and '-e ".[test]"' in ci
    assert "python -m pytest" in readme and "python -m pytest" in ci


def test_benchmark_runs_and_reports_ratios(tmp_path):
    pytest.importorskip("h5py")
    out = tmp_path / "figures.json"
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "bench_read.py"),
            *("--size-mib", "4", "--table-rows", "50000", "--repeat", "1", "--rss-gib", "0.02"),
            *("--cases", "uncompressed,zlib,table", "--dir", str(tmp_path), "--json", str(out)),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    assert "vs serial" in done.stdout and "peak RSS" in done.stdout
    figures = json.loads(out.read_text())
    for case in ("uncompressed", "zlib", "table"):
        methods = figures["cases"][case]["methods"]
        assert set(methods) == {"serial", "from_tables", "h5py+from_array", "naive", "page-cache"}
        assert all("error" not in row for row in methods.values()), methods
        assert methods["serial"]["vs serial"] == 1.0
    assert figures["rss_check"]["peak_rss"] > 0
    assert not list(tmp_path.glob("*/*.h5")), "the data files are removed"


def test_table_benchmark_runs_and_reports_ratios(tmp_path):
    out = tmp_path / "table.json"
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "bench_table.py"),
            *("--rows", "20000", "--repeat", "1", "--dir", str(tmp_path), "--json", str(out)),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    assert "targets" in done.stdout
    figures = json.loads(out.read_text())
    assert set(figures["tasks"]) == {"mean", "count clustered", "count scattered"}
    assert figures["tasks"]["mean"]["serial Table.read"]["vs serial Table.read"] == 1.0
    assert set(figures["tasks"]["count scattered"]) == {
        "serial read_where",
        "read_table",
        "read_table (pandas file)",
        "pandas.read_hdf",
        "dd.read_hdf + filter",
    }
    assert not list(tmp_path.glob("*/*.h5")), "the data files are removed"


def test_write_benchmark_runs_and_reports_ratios(tmp_path):
    pytest.importorskip("h5py")
    pytest.importorskip("hdf5plugin")
    out = tmp_path / "figures.json"
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "bench_write.py"),
            *("--size", "4", "--repeat", "1", "--dir", str(tmp_path), "--json", str(out)),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    assert "vs serial" in done.stdout and "vs to_hdf5" in done.stdout and "target:" in done.stdout
    figures = json.loads(out.read_text())
    assert set(figures["cases"]) == {"uncompressed", "zlib", "blosc2"}
    for case in figures["cases"].values():
        methods = case["methods"]
        assert set(methods) == {"serial", "to_tables", "to_tables-existing", "to_hdf5"}
        assert all("error" not in row for row in methods.values()), methods
        assert methods["serial"]["vs serial"] == 1.0 and methods["to_hdf5"]["vs to_hdf5"] == 1.0
        assert all(row["GB/s"] > 0 for row in methods.values())
    assert not list(tmp_path.glob("*/*.h5")), "the data files are removed"
