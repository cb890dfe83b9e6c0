"""The dask-tables command: demo and stats, run as a user runs them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tables
from helpers import records

from dask_tables.cli import main
from dask_tables.demo import ensure_demo_file


def run_cli(*args, env=None, timeout=300):
    command = shutil.which("dask-tables")
    argv = [command] if command else [sys.executable, "-m", "dask_tables"]
    return subprocess.run([*argv, *args], capture_output=True, text=True, timeout=timeout, env=env)


def test_demo_writes_its_file_once_and_agrees(tmp_path):
    done = run_cli("demo", "--dir", str(tmp_path), "--size-mib", "8")
    assert done.returncode == 0, done.stderr
    assert "results agree" in done.stdout
    path = tmp_path / "demo-8MiB.h5"
    with tables.open_file(path) as f:
        data = f.root.array.read()
    assert data.nbytes == 8 * 2**20
    means = [
        float(line.split("mean = ")[1].split()[0]) for line in done.stdout.splitlines() if "mean = " in line
    ]
    assert len(means) == 3, "serial loop, cookbook threads, from_tables"
    assert means == pytest.approx([data.mean()] * 3, rel=1e-9)
    mtime = path.stat().st_mtime_ns
    assert run_cli("demo", "--dir", str(tmp_path), "--size-mib", "8").returncode == 0
    assert path.stat().st_mtime_ns == mtime, "the demo file is reused, not rewritten"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".demo-")], "no temporary file left"


def test_demo_uses_the_cache_folder_by_default(tmp_path):
    env = {**os.environ, "DASK_TABLES_CACHE": str(tmp_path / "cache")}
    done = run_cli("demo", "--size-mib", "1", env=env)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "cache" / "demo-1MiB.h5").exists()


def test_demo_never_overwrites_a_users_file(tmp_path):
    user_file = tmp_path / "demo-1MiB.h5"
    with tables.open_file(user_file, "w") as f:
        f.create_array("/", "array", np.arange(5.0))
    before = user_file.read_bytes()
    done = run_cli("demo", "--dir", str(tmp_path), "--size-mib", "1")
    assert done.returncode == 2
    assert "not overwriting" in done.stderr
    assert user_file.read_bytes() == before
    with pytest.raises(FileExistsError):
        ensure_demo_file(tmp_path, 1)


@pytest.fixture
def stats_file(tmp_path):
    path = tmp_path / "stats.h5"
    with tables.open_file(path, "w") as f:
        f.create_carray("/", "x", obj=np.linspace(-3, 7, 5000).reshape(50, 100), chunkshape=(10, 100))
        f.create_table("/", "t", obj=records(300))
    return path


def parse_stats(stdout):
    values = {}
    for line in stdout.splitlines()[1:]:
        key, value = line.split()
        values[key] = float(value)
    return values


@pytest.mark.parametrize("scheduler", ["threads", "processes", "synchronous"])
def test_stats_equals_numpy(stats_file, scheduler):
    done = run_cli("stats", str(stats_file), "/x", "--scheduler", scheduler, "--chunks", "20")
    assert done.returncode == 0, done.stderr
    assert "100%" in done.stderr, "a progress bar"
    data = np.linspace(-3, 7, 5000)
    assert parse_stats(done.stdout) == pytest.approx(
        {"count": 5000, "mean": data.mean(), "std": data.std(), "min": -3.0, "max": 7.0}
    )


def test_stats_of_a_table_column_in_process(stats_file, capsys):
    assert main(["stats", str(stats_file), "/t", "--field", "pos/x"]) == 0
    column = records(300)["pos"]["x"]
    assert parse_stats(capsys.readouterr().out) == pytest.approx(
        {"count": 300, "mean": column.mean(), "std": column.std(), "min": column.min(), "max": column.max()}
    )


def test_stats_on_a_distributed_scheduler_address(stats_file):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(
        n_workers=1, threads_per_worker=2, processes=True, dashboard_address=":0"
    ) as cluster:
        done = run_cli("stats", str(stats_file), "/x", "--scheduler", cluster.scheduler_address)
    assert done.returncode == 0, done.stderr
    assert parse_stats(done.stdout)["max"] == 7.0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["stats", "{dir}/missing.h5", "/x"], "missing.h5"),
        (["stats", "{file}", "/nope"], "/nope"),
        (["stats", "{file}", "/t"], "--field"),
        (["stats", "{file}", "/t", "--field", "s"], "not numbers"),
        (["stats", "{file}", "/x", "--chunks", "abc"], "--chunks: must be a positive integer or 'auto'"),
        (["stats", "{file}", "/x", "--chunks", "-5"], "--chunks: must be a positive integer or 'auto'"),
        (["stats", "{file}", "/x", "--scheduler", "thread"], "neither threads, processes, synchronous nor"),
    ],
)
def test_stats_reports_bad_input_without_a_traceback(stats_file, args, message):
    argv = [a.format(dir=stats_file.parent, file=stats_file) for a in args]
    done = run_cli(*argv)
    assert done.returncode == 2
    assert message in done.stderr
    assert "Traceback" not in done.stderr


def test_stats_of_an_empty_earray(tmp_path):
    path = tmp_path / "empty.h5"
    with tables.open_file(path, "w") as f:
        f.create_earray("/", "e", atom=tables.Float32Atom(), shape=(0, 5))
    done = run_cli("stats", str(path), "/e")
    assert done.returncode == 0, done.stderr
    assert "Warning" not in done.stderr
    values = parse_stats(done.stdout)
    assert values["count"] == 0
    assert all(np.isnan(values[k]) for k in ("mean", "std", "min", "max"))
