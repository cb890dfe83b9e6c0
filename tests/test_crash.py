"""A write killed at any instant loses nothing: crash injection at each step of the commit, as SQLite tests its own.

Each write runs in a child process with ``DASK_TABLES_CRASH_AT=commit:<step>``,
which SIGKILLs the process that commits at that step
(:mod:`dask_tables.write.engine`).  Afterwards PyTables and pandas read the
file: every node that existed reads as before, and the new data is all
there (the kill came after the rename) or absent (before it).  Then kills at
random times, Ctrl-C, and a later write that finds a dead writer's leftovers.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pandas as pd
import pytest
import tables
from helpers import held_open_for_writing, run_child, run_python

import dask_tables
from dask_tables.write.engine import CRASH_ENV

STEPS = ["locked", "copied", "applied", "synced", "checked", "replaced", "durable"]
REPLACED_AT = STEPS.index("replaced")

OLD_ROWS = 1000
NEW_ROWS = 3000

# What the child writes: each kind of write, into the file the test made (``p``).
WRITES = {
    "append": "to_tables(new_frame, p, '/df', append=True)",
    "frame_new_node": "to_tables(new_frame, p, '/df2', data_columns=True)",
    "frame_overwrite": "to_tables(new_frame, p, '/df', overwrite=True, data_columns=True)",
    "array_new_node": "to_tables(x, p, '/new', filters=tables.Filters(complib='zlib', complevel=1))",
    "array_overwrite": "to_tables(x * 2, p, '/kept', overwrite=True)",
    "region": "to_tables(-x[:250], p, '/kept', region=(slice(100, 350),))",
    "new_file": "to_tables(x, new_path, '/x')",
    "frame_new_file": "to_tables(new_frame, new_path, '/df', data_columns=True)",
}

CHILD = """
import os, sys
import dask, dask.array as da, dask.dataframe as dd, numpy as np, pandas as pd, tables
from dask_tables import to_tables
p, new_path, scheduler = sys.argv[1], sys.argv[2], sys.argv[3]
dask.config.set(scheduler=scheduler)
new_frame = dd.from_pandas(pd.DataFrame({{
    "a": np.arange({old}, {old} + {new}, dtype="i8"),
    "b": np.arange({new}, dtype="f8") / 7,
    "s": ["row%d" % i for i in range({new})],
}}, index=pd.RangeIndex({old}, {old} + {new})), npartitions=3)
x = da.arange(1000.0, chunks=300)
{write}
print("finished")
"""


def old_frame() -> pd.DataFrame:
    return _frame(
        {
            "a": np.arange(OLD_ROWS, dtype="i8"),
            "b": np.arange(OLD_ROWS, dtype="f8") / 3,
            "s": [f"old{i}" for i in range(OLD_ROWS)],
        }
    )


def new_frame() -> pd.DataFrame:
    return _frame(
        {
            "a": np.arange(OLD_ROWS, OLD_ROWS + NEW_ROWS, dtype="i8"),
            "b": np.arange(NEW_ROWS, dtype="f8") / 7,
            "s": [f"row{i}" for i in range(NEW_ROWS)],
        },
        index=pd.RangeIndex(OLD_ROWS, OLD_ROWS + NEW_ROWS),
    )


def _frame(*args, **kwargs) -> pd.DataFrame:
    return pd.DataFrame(*args, **kwargs).astype({"s": object})


def make_file(path) -> None:
    old_frame().to_hdf(path, key="df", format="table", data_columns=True, min_itemsize={"s": 10})
    with tables.open_file(path, "a") as f:
        f.create_carray("/", "kept", obj=np.arange(1000.0), chunkshape=(100,))


def write_in_child(kind: str, path, new_path, scheduler: str = "threads", env=None, timeout: float = 120):
    """A write of ``kind`` from ``path`` to ``new_path`` in a child process; ``env`` sets its crash point."""
    code = CHILD.format(old=OLD_ROWS, new=NEW_ROWS, write=WRITES[kind])
    return run_python(code, path, new_path, scheduler, timeout=timeout, env=env)


def pandas_rows(path, key="df") -> pd.DataFrame:
    """pandas' read, text as Python strings (dask writes pyarrow strings, pandas its own: same values)."""
    return pd.read_hdf(path, key).astype({"s": object})


def state(kind: str, path, new_path) -> str:
    """``"old"`` or ``"new"``: which version every node shows; raises if any node is neither (data lost)."""
    if kind in ("new_file", "frame_new_file"):
        if not os.path.exists(new_path):
            return "old"
        if kind == "new_file":
            with tables.open_file(new_path) as f:
                np.testing.assert_array_equal(f.root.x[:], np.arange(1000.0))
        else:
            pd.testing.assert_frame_equal(pandas_rows(new_path), new_frame())
        return "new"
    with tables.open_file(path) as f:
        kept = f.root.kept[:]
        names = set(f.root._v_children)
    frame = pandas_rows(path)
    versions = set()
    # /kept
    if kind == "array_overwrite":
        versions.add(
            "new"
            if np.array_equal(kept, 2 * np.arange(1000.0))
            else "old"
            if np.array_equal(kept, np.arange(1000.0))
            else "?"
        )
    elif kind == "region":
        changed = np.arange(1000.0)
        changed[100:350] = -np.arange(250.0)
        versions.add("new" if np.array_equal(kept, changed) else "old")
    else:
        np.testing.assert_array_equal(kept, np.arange(1000.0))
    # /df
    if kind == "append":
        expected_new = pd.concat([old_frame(), new_frame()])
        if len(frame) == OLD_ROWS:
            pd.testing.assert_frame_equal(frame, old_frame())
            versions.add("old")
        else:
            pd.testing.assert_frame_equal(frame, expected_new)
            # the indexes hold the new rows too: a query through them finds them
            hit = pd.read_hdf(path, "df", where="a >= 3990")
            assert len(hit) == OLD_ROWS + NEW_ROWS - 3990
            versions.add("new")
    elif kind == "frame_overwrite":
        if len(frame) == OLD_ROWS:
            pd.testing.assert_frame_equal(frame, old_frame())
            versions.add("old")
        else:
            pd.testing.assert_frame_equal(frame, new_frame())
            versions.add("new")
    else:
        pd.testing.assert_frame_equal(frame, old_frame())
    # new nodes
    if kind == "frame_new_node":
        if "df2" in names:
            pd.testing.assert_frame_equal(pandas_rows(path, "df2"), new_frame())
        versions.add("new" if "df2" in names else "old")
    if kind == "array_new_node":
        if "new" in names:
            with tables.open_file(path) as f:
                np.testing.assert_array_equal(f.root.new[:], np.arange(1000.0))
        versions.add("new" if "new" in names else "old")
    assert len(versions) == 1 and "?" not in versions, versions
    return versions.pop()


def leftovers(folder) -> list[str]:
    return sorted(n for n in os.listdir(folder) if ".dask-tables-" in n)


@pytest.mark.parametrize("step", STEPS)
@pytest.mark.parametrize("kind", sorted(WRITES))
def test_a_kill_at_each_step_of_the_commit_loses_nothing(tmp_path, kind, step):
    path, new_path = tmp_path / "f.h5", tmp_path / "new.h5"
    make_file(path)
    before = path.read_bytes()
    done = write_in_child(kind, path, new_path, env={CRASH_ENV: f"commit:{step}"})
    assert done.returncode == -signal.SIGKILL, done.stderr[-3000:]
    assert "HDF5-DIAG" not in done.stderr
    expected = "new" if STEPS.index(step) >= REPLACED_AT else "old"
    assert state(kind, path, new_path) == expected
    if expected == "old":
        assert path.read_bytes() == before, "the target changed although the commit never replaced it"
    # A later write is not blocked by the dead writer's folder, and removes it (its process is gone).
    assert leftovers(tmp_path) != [] or STEPS.index(step) > REPLACED_AT
    dask_tables.to_tables(np.ones(3), new_path if "new_file" in kind else path, "/later")
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("kind", sorted(WRITES))
@pytest.mark.parametrize("step", ["applied", "replaced"])
def test_a_kill_of_the_worker_process_that_commits(tmp_path, kind, step):
    """Under ``processes`` the commit runs in a worker process: it is the one killed."""
    path, new_path = tmp_path / "f.h5", tmp_path / "new.h5"
    make_file(path)
    done = write_in_child(kind, path, new_path, "processes", env={CRASH_ENV: f"commit:{step}"}, timeout=180)
    assert done.returncode != 0 and "finished" not in done.stdout, done.stderr[-3000:]
    assert state(kind, path, new_path) == ("new" if step == "replaced" else "old")


@pytest.mark.parametrize("step", ["applied", "replaced"])
def test_a_kill_under_the_synchronous_scheduler(tmp_path, step):
    path, new_path = tmp_path / "f.h5", tmp_path / "new.h5"
    make_file(path)
    done = write_in_child("append", path, new_path, "sync", env={CRASH_ENV: f"commit:{step}"})
    assert done.returncode == -signal.SIGKILL, done.stderr[-3000:]
    assert state("append", path, new_path) == ("new" if step == "replaced" else "old")


def test_the_crash_hook_is_silent_when_not_set(tmp_path):
    path, new_path = tmp_path / "f.h5", tmp_path / "new.h5"
    make_file(path)
    done = write_in_child("append", path, new_path)
    assert done.returncode == 0 and "finished" in done.stdout, done.stderr[-3000:]
    assert state("append", path, new_path) == "new"
    assert leftovers(tmp_path) == []


def _kill_after(kind: str, path, new_path, delay: float, sig: int) -> subprocess.CompletedProcess:
    code = CHILD.format(old=OLD_ROWS, new=NEW_ROWS, write=WRITES[kind])
    child = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), str(path), str(new_path), "threads"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(delay)
    child.send_signal(sig)
    out, err = child.communicate(timeout=120)
    return subprocess.CompletedProcess(child.args, child.returncode, out, err)


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["kill", "ctrl-c"])
def test_kills_and_ctrl_c_at_random_times_leave_the_file_old_or_complete(tmp_path, sig):
    """The child's life spans imports, graph, tasks and commit: a signal anywhere in it is survived."""
    first = tmp_path / "timing"
    first.mkdir()
    make_file(first / "f.h5")
    started = time.perf_counter()
    assert write_in_child("append", first / "f.h5", first / "n.h5").returncode == 0
    lifetime = time.perf_counter() - started
    rng = random.Random(22)
    seen = set()
    for attempt in range(6):
        folder = tmp_path / f"try{attempt}"
        folder.mkdir()
        path = folder / "f.h5"
        make_file(path)
        before = path.read_bytes()
        _kill_after("append", path, folder / "n.h5", rng.uniform(0.3, lifetime * 1.1), sig)
        version = state("append", path, folder / "n.h5")
        if version == "old":
            assert path.read_bytes() == before
        seen.add(version)
        dask_tables.to_tables(np.ones(3), path, "/later")
        assert leftovers(folder) == []
    assert seen  # each attempt was checked


def test_no_hdf5_diagnostics_on_stderr_from_worker_threads(tmp_path):
    """HDF5's error printing is off in every thread that calls HDF5 (dask's workers included)."""
    path = tmp_path / "f.h5"
    make_file(path)
    done = run_python(
        f"""
        import dask, dask.array as da, numpy as np
        import dask_tables
        p = {str(path)!r}
        def bad(block):
            import tables
            from dask_tables.registry import synchronized_open_file
            try:
                synchronized_open_file(p + ".missing-dir/x.h5", "r")
            except Exception:
                pass
            return block
        x = da.ones(4, chunks=1).map_blocks(bad)
        x.compute(scheduler="threads")
        print("ok")
        """
    )
    assert done.returncode == 0, done.stderr
    assert "HDF5-DIAG" not in done.stderr, done.stderr[:2000]


DISTRIBUTED_CHILD = """
import sys
import dask.dataframe as dd, numpy as np, pandas as pd
from distributed import Client, LocalCluster
from dask_tables import to_tables
p = sys.argv[1]
new_frame = dd.from_pandas(pd.DataFrame({{
    "a": np.arange({old}, {old} + {new}, dtype="i8"),
    "b": np.arange({new}, dtype="f8") / 7,
    "s": ["row%d" % i for i in range({new})],
}}, index=pd.RangeIndex({old}, {old} + {new})), npartitions=3)
if __name__ == "__main__":
    import dask
    # A worker killed in the commit holds the writers' distributed.Lock until its lease times out
    # (30 s by default): the rerun waits for that. Shorter here, for the test's time only.
    dask.config.set({{
        "distributed.scheduler.locks.lease-timeout": "3s",
        "distributed.scheduler.locks.lease-validation-interval": "500ms",
    }})
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \\
            Client(cluster):
        try:
            to_tables(new_frame, p, "/df", append=True)
            print("finished")
        except Exception as err:
            print("failed", type(err).__name__)
"""


@pytest.mark.parametrize("step", ["applied", "replaced"])
def test_a_killed_worker_during_the_commit_on_a_cluster(tmp_path, step):
    """distributed runs the commit again after its worker died: the file is old, or new exactly once."""
    path = tmp_path / "f.h5"
    make_file(path)
    script = tmp_path / "child.py"
    script.write_text(textwrap.dedent(DISTRIBUTED_CHILD.format(old=OLD_ROWS, new=NEW_ROWS)))
    done = run_child(script, path, timeout=300, env={CRASH_ENV: f"commit:{step}"})
    assert done.returncode == 0, done.stderr[-3000:]
    if step == "replaced":
        # the retried commit finds the new version in place: the write succeeded, rows appended once
        assert "finished" in done.stdout, done.stdout + done.stderr[-3000:]
        assert state("append", path, tmp_path / "n.h5") == "new"
    else:
        # the rerun finds the staged rows used up by the killed run: the write is lost, the file old
        assert "failed WriteInterruptedError" in done.stdout, done.stdout + done.stderr[-3000:]
        assert state("append", path, tmp_path / "n.h5") == "old"


def test_a_running_writers_folder_is_never_removed(tmp_path):
    """Leftovers go only when their writer is provably gone: a live one's folder (its lock held) stays."""
    from dask_tables.write.engine import make_work, new_job, remove_abandoned, remove_work

    path = tmp_path / "f.h5"
    running = new_job(str(path), made_by_caller=True)
    make_work(running)  # this process: alive, and holding the owner lock
    try:
        assert remove_abandoned(str(path)) == []
        dask_tables.to_tables(np.ones(3), path, "/x")  # another write of the same file meanwhile
        assert os.path.isdir(running.work)
    finally:
        remove_work(running.work)
    # The same folder, its writer dead: a child made it and was killed.
    code = f"""
        import os, signal
        from dask_tables.write.engine import make_work, new_job
        make_work(new_job({str(path)!r}, made_by_caller=True))
        os.kill(os.getpid(), signal.SIGKILL)
        """
    assert run_python(code).returncode == -signal.SIGKILL
    assert len(leftovers(tmp_path)) == 1
    assert len(remove_abandoned(str(path))) == 1 and leftovers(tmp_path) == []


def test_a_target_another_process_holds_open_for_writing_is_left_alone(tmp_path):
    """HDF5's file locking is respected, when the write is planned and when it commits."""
    path = tmp_path / "f.h5"
    make_file(path)
    before = path.read_bytes()
    with (
        held_open_for_writing(path),
        pytest.raises(dask_tables.FileLockedError, match="locked by another process"),
    ):
        dask_tables.to_tables(np.ones(3), path, "/x")
    lazy = dask_tables.to_tables(np.ones(3), path, "/x", compute=False)  # planned before the writer opens
    with (
        held_open_for_writing(path),
        pytest.raises(BlockingIOError, match=r"open for writing elsewhere.*nothing was written"),
    ):
        lazy.compute()
    assert path.read_bytes() == before
    assert leftovers(tmp_path) == []


def test_a_commit_run_again_after_its_process_died_before_the_rename(tmp_path):
    """The killed run left its commit.h5 (and its note of it) in the work folder: the rerun starts over."""
    from dask_tables.write.engine import commit, make_work, new_job

    path = tmp_path / "f.h5"
    make_file(path)
    job = new_job(str(path), made_by_caller=True)
    make_work(job)
    with open(job.commit_file, "wb") as stale:
        stale.write(b"half a file")
    with open(os.path.join(job.work, "committed"), "w") as note:
        note.write("1 2")  # a version that never replaced the target

    def apply(h5):
        h5.create_array("/", "added", obj=np.arange(5))

    commit(job, apply)
    with tables.open_file(path) as f:
        np.testing.assert_array_equal(f.root.added[:], np.arange(5))
    assert state("append", path, tmp_path / "n.h5") == "old"  # the rest as it was
    assert leftovers(tmp_path) == []
