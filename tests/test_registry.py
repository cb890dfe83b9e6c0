"""The synchronized registry: lock, synchronized open/close, reversible patch."""

from __future__ import annotations

import atexit
import contextlib
import pickle
import sys
import threading
import unittest
import warnings

import numpy as np
import pytest
import tables
import tables.file as tables_file
from helpers import registry_is_empty, run_python

from dask_tables.registry import (
    get_lock,
    is_patched,
    patch,
    patched,
    synchronized_close_file,
    synchronized_file,
    synchronized_open_file,
    unpatch,
)

THREADS = 16
CYCLES = 300


@pytest.fixture(autouse=True)
def _never_leave_patched():
    yield
    unpatch()


@pytest.fixture
def array_file(tmp_path):
    path = tmp_path / "array.h5"
    with tables.open_file(path, "w") as f:
        f.create_carray(
            "/", "array", obj=np.arange(200 * 300, dtype="i8").reshape(200, 300), chunkshape=(20, 30)
        )
    return str(path)


@contextlib.contextmanager
def fast_thread_switching():
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(old)


def hammer(cycle, threads=THREADS, cycles=CYCLES):
    """Run ``cycle(thread, i)`` threads x cycles times; return the exceptions raised."""
    errors: list[BaseException] = []
    start = threading.Barrier(threads)

    def worker(thread):
        start.wait()
        for i in range(cycles):
            try:
                cycle(thread, i)
            except BaseException as err:  # every failure counts
                errors.append(err)

    workers = [threading.Thread(target=worker, args=(t,)) for t in range(threads)]
    with fast_thread_switching():
        for w in workers:
            w.start()
        for w in workers:
            w.join()
    return errors


def expected_block(i):
    rows = slice(i % 190, i % 190 + 10)
    return np.arange(200 * 300, dtype="i8").reshape(200, 300)[rows, 5:9], rows


def test_lock_is_one_reentrant_lock_per_process_and_pickles_to_it():
    lock = get_lock()
    assert get_lock() is lock
    assert pickle.loads(pickle.dumps(lock)) is lock
    with lock, lock:
        assert lock.acquire(blocking=False)
        lock.release()
    done = run_python(
        f"""
        import pickle
        from dask_tables.registry import get_lock, RegistryLock
        lock = pickle.loads({pickle.dumps(lock)!r})
        assert isinstance(lock, RegistryLock) and lock is get_lock()
        print("ok")
        """
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_synchronized_functions_survive_16_threads_x_300_cycles(array_file):
    def cycle(thread, i):
        expected, rows = expected_block(i)
        if i % 2:
            h5 = synchronized_open_file(array_file, mode="r")
            try:
                np.testing.assert_array_equal(h5.root.array[rows, 5:9], expected)
            finally:
                synchronized_close_file(h5)
        else:
            with synchronized_file(array_file, "r") as h5:
                np.testing.assert_array_equal(h5.root.array[rows, 5:9], expected)

    errors = hammer(cycle)
    assert errors == []
    assert registry_is_empty()


def test_plain_pytables_survives_16_threads_x_300_cycles_while_patched(array_file):
    def cycle(thread, i):
        expected, rows = expected_block(i)
        if i % 3 == 0:
            with tables.open_file(array_file, mode="r") as h5:
                np.testing.assert_array_equal(h5.root.array[rows, 5:9], expected)
        elif i % 3 == 1:
            h5 = tables.open_file(array_file, mode="r")
            np.testing.assert_array_equal(h5.root.array[rows, 5:9], expected)
            h5.close()
        else:
            h5 = tables.File(array_file, "r")
            np.testing.assert_array_equal(h5.root.array[rows, 5:9], expected)
            h5.close()

    with patched():
        errors = hammer(cycle)
        assert len(tables_file._open_files) == 0
    assert errors == []
    assert registry_is_empty()


def test_the_race_is_real_without_the_lock(array_file):
    """The stress test above detects the race: unsynchronized PyTables fails it."""
    done = run_python(
        f"""
        import sys, threading
        import tables
        sys.setswitchinterval(1e-6)
        errors = []
        def worker():
            for _ in range({CYCLES}):
                try:
                    with tables.open_file({array_file!r}, "r") as h5:
                        h5.root.array[0, 0]
                except Exception as err:
                    errors.append(type(err).__name__)
        import time
        deadline = time.monotonic() + 60
        while not errors and time.monotonic() < deadline:
            threads = [threading.Thread(target=worker) for _ in range({THREADS})]
            for t in threads: t.start()
            for t in threads: t.join()
        print(len(errors))
        """,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert int(done.stdout.split()[-1]) > 0


def pytables_state():
    """Everything patch() replaces, and the registry object it must keep."""
    return (
        tables.open_file,
        tables_file.open_file,
        tables.File.__init__,
        tables.File.close,
        type(tables_file._open_files),
        tables_file._open_files,
    )


def test_patch_is_reversible_exactly():
    before = pytables_state()
    patch()
    assert is_patched()
    assert tables.open_file is not before[0] and tables.open_file is tables_file.open_file
    assert tables.File.__init__ is not before[2] and tables.File.close is not before[3]
    assert tables_file._open_files is before[5], "the registry object must be kept (atexit closes it)"
    patch()  # twice is harmless
    unpatch()
    assert not is_patched()
    after = pytables_state()
    assert all(a is b for a, b in zip(after, before, strict=True))
    unpatch()  # twice is harmless


def test_patched_context_nests_and_restores():
    with patched():
        with patched():
            assert is_patched()
        assert is_patched(), "an inner patched() must not unpatch the outer one"
    assert not is_patched()
    patch()
    with patched():
        pass
    assert is_patched(), "patched() leaves an earlier patch() in force"


# PyTables' half-built root group of a bad root_uep complains in its __del__.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.parametrize("how", ["synchronized", "patched_open_file", "patched_File"])
def test_failed_open_leaves_registry_clean(tmp_path, how):
    not_hdf5 = tmp_path / "not.h5"
    not_hdf5.write_bytes(b"this is not HDF5" * 100)
    good = tmp_path / "good.h5"
    with tables.open_file(good, "w") as f:
        f.create_array("/", "x", np.arange(3))
    opener = {
        "synchronized": synchronized_open_file,
        "patched_open_file": lambda *a, **k: tables.open_file(*a, **k),
        "patched_File": lambda *a, **k: tables.File(*a, **k),
    }[how]
    with patched() if how != "synchronized" else contextlib.nullcontext():
        with pytest.raises(tables.HDF5ExtError):
            opener(str(not_hdf5), "r")
        with pytest.raises((tables.HDF5ExtError, tables.NoSuchNodeError)):
            opener(str(good), "r", root_uep="/missing_group")
        assert registry_is_empty()
        # The half-built handle of the bad root_uep was closed: the file can be truncated.
        with tables.open_file(good, "w") as f:
            f.create_array("/", "y", np.arange(2))
    assert registry_is_empty()


def test_close_all_works_while_patched(tmp_path):
    paths = [tmp_path / f"f{i}.h5" for i in range(3)]
    with patched():
        handles = [tables.open_file(p, "w") for p in paths]
        with pytest.warns(tables.UnclosedFileWarning):
            tables_file._open_files.close_all()
        assert not any(h.isopen for h in handles)
        assert len(tables_file._open_files) == 0
    assert registry_is_empty()


def test_registry_is_a_copy_safe_view_while_patched(array_file):
    with patched():
        h5 = tables.open_file(array_file)
        handlers = tables_file._open_files.handlers
        h5.close()
        assert h5 in handlers, "handlers is a copy, not the live set"
        assert array_file not in tables_file._open_files
        assert tables_file._open_files.get_handlers_by_name("never-opened.h5") == set()
    assert registry_is_empty()


def test_pytables_atexit_hook_still_closes_files_opened_while_patched(tmp_path):
    path = tmp_path / "left_open.h5"
    done = run_python(
        f"""
        import numpy as np, tables
        from dask_tables.registry import patch
        patch()
        f = tables.open_file({str(path)!r}, "w")
        f.create_array("/", "x", np.arange(5))
        # exit without closing: PyTables' atexit hook must close (and flush) it
        """
    )
    assert done.returncode == 0, done.stderr
    assert "Closing remaining open file" in done.stderr
    assert "Traceback" not in done.stderr
    with tables.open_file(path) as f:
        np.testing.assert_array_equal(f.root.x[:], np.arange(5))


def test_atexit_registration_is_untouched():
    n_before = atexit._ncallbacks()
    patch()
    assert atexit._ncallbacks() == n_before
    unpatch()
    assert atexit._ncallbacks() == n_before


def test_pytables_own_threading_test_passes_while_patched():
    from tables.tests.test_basics import ThreadingTestCase

    suite = unittest.defaultTestLoader.loadTestsFromTestCase(ThreadingTestCase)
    with patched(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = unittest.TextTestRunner(verbosity=0, stream=open("/dev/null", "w")).run(suite)  # noqa: SIM115
    assert result.testsRun == 1
    assert result.wasSuccessful(), result.errors + result.failures


def test_forked_child_is_not_blocked_by_a_lock_held_in_the_parent(array_file):
    done = run_python(
        f"""
        import os, threading, time
        from dask_tables.registry import get_lock, synchronized_file
        held = threading.Event()
        def hold():
            with get_lock():
                held.set()
                time.sleep(5)
        threading.Thread(target=hold, daemon=True).start()
        held.wait()
        pid = os.fork()
        if pid == 0:
            with synchronized_file({array_file!r}) as h5:
                os._exit(0 if h5.root.array[1, 1] == 301 else 1)
        _, status = os.waitpid(pid, 0)
        print(os.waitstatus_to_exitcode(status))
        """,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "0"


def test_patched_blocks_in_several_threads_keep_the_patch_until_the_last_ends():
    first_in, second_in, first_out = threading.Event(), threading.Event(), threading.Event()
    seen = {}

    def first():
        with patched():
            first_in.set()
            second_in.wait(10)
        first_out.set()

    def second():
        first_in.wait(10)
        with patched():
            second_in.set()
            first_out.wait(10)
            seen["inside, after the first block ended"] = is_patched()
        seen["after both"] = is_patched()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert seen == {"inside, after the first block ended": True, "after both": False}


def test_patch_inside_a_block_outlives_it_and_unpatch_waits_for_blocks():
    with patched():
        patch()
    assert is_patched()
    with patched():
        unpatch()
        assert is_patched(), "a running patched() block keeps the patch"
    assert not is_patched()


def test_unpatch_restores_what_was_there_at_patch_time_not_at_import(array_file):
    """Wrappers installed by others before patch() come back, and run while patched."""
    calls = []
    plain_open, plain_init, plain_class = (
        tables.open_file,
        tables.File.__init__,
        type(tables_file._open_files),
    )

    def traced_open(*args, **kwargs):
        calls.append("open")
        return plain_open(*args, **kwargs)

    def traced_init(self, *args, **kwargs):
        calls.append("init")
        plain_init(self, *args, **kwargs)

    class CustomRegistry(plain_class):
        pass

    tables.open_file = tables_file.open_file = traced_open
    tables.File.__init__ = traced_init
    tables_file._open_files.__class__ = CustomRegistry
    try:
        patch()
        assert isinstance(tables_file._open_files, CustomRegistry)
        with tables.open_file(array_file, "r"):
            pass
        assert calls == ["open", "init"]
        unpatch()
        assert tables.open_file is traced_open and tables_file.open_file is traced_open
        assert tables.File.__init__ is traced_init
        assert type(tables_file._open_files) is CustomRegistry
    finally:
        unpatch()
        tables.open_file = tables_file.open_file = plain_open
        tables.File.__init__ = plain_init
        tables_file._open_files.__class__ = plain_class
