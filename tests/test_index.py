"""The chunk index: read once per file version and process, cached, bounded, invalidated."""

from __future__ import annotations

import os
import threading

import dask
import numpy as np
import pytest
import tables
from helpers import pytables_read, registry_is_empty, run_python
from numpy.testing import assert_array_equal

from dask_tables import FileChangedError, TablesSource, diagnostics, from_tables
from dask_tables.hdf5 import chunkindex as ci


@pytest.fixture(autouse=True)
def empty_cache():
    ci.clear_cache()
    yield
    ci.clear_cache()


def write_carray(path, node="/x", n=1000, chunk=100, value=0.0, filters=None):
    mode = "a" if os.path.exists(path) else "w"
    with tables.open_file(path, mode) as f:
        f.create_carray(
            "/", node.lstrip("/"), obj=np.arange(n, dtype="f8") + value, chunkshape=(chunk,), filters=filters
        )


def expected(path, node):
    return pytables_read(path, node)


def test_a_cached_index_serves_every_later_compute(tmp_path):
    path = tmp_path / "a.h5"
    write_carray(path, filters=tables.Filters(complevel=1, complib="zlib"))
    x = from_tables(path, "/x", chunks=250)
    with diagnostics.collect() as stats:
        for _ in range(3):
            assert_array_equal(x.compute(scheduler="threads"), expected(path, "/x"))
    assert stats["index_builds"] == 1
    assert stats["index_chunks"] == 10
    assert stats["index_hits"] == 3 * 4 - 1  # 4 tasks per compute, the first one built it
    assert ci.cache_info()["entries"] == 1


def test_one_pass_equals_a_lookup_per_chunk(tmp_path):
    path = tmp_path / "sparse.h5"
    with tables.open_file(path, "w") as f:
        x = f.create_carray("/", "x", atom=tables.Int16Atom(dflt=3), shape=(50, 40), chunkshape=(7, 6))
        x[10:30, 5:33] = 1
        x[45:, :] = 2
        one_pass = ci.build_index(x)
        _, each_offsets, _, _ = ci._lookup_each_chunk(x)
        starts = [(i, j) for i in range(0, 50, 7) for j in range(0, 40, 6)]
        expected_offsets = [x.chunk_info(s).offset for s in starts]
    assert one_pass.keys is not None and len(one_pass) == len(each_offsets) > 0
    offsets, sizes, masks = one_pass.locate(starts)
    assert [None if o < 0 else o for o in offsets.tolist()] == expected_offsets
    assert sorted(offsets[offsets >= 0].tolist()) == sorted(each_offsets.tolist())
    assert (sizes[offsets >= 0] == 7 * 6 * 2).all()
    assert (masks == 0).all()
    assert one_pass.fill.item() == 3


def test_without_chunk_iter_the_fallback_reads_the_same(tmp_path, monkeypatch):
    path = tmp_path / "a.h5"
    with tables.open_file(path, "w") as f:
        x = f.create_carray("/", "x", atom=tables.Float32Atom(), shape=(30, 30), chunkshape=(4, 7))
        x[3:20, 9:] = 1.5
    monkeypatch.setattr(ci, "_chunk_iter_address", lambda: None)  # as with an HDF5 older than 1.14
    got = from_tables(path, "/x", chunks=(9, 11)).compute()
    assert_array_equal(got, expected(path, "/x"))


def test_twenty_thousand_chunks_written_by_appends(tmp_path):
    path = tmp_path / "many.h5"
    with tables.open_file(path, "w") as f:
        e = f.create_earray("/", "e", atom=tables.Int32Atom(), shape=(0,), chunkshape=(16,))
        for start in range(0, 320_000, 4000):
            e.append(np.arange(start, start + 4000, dtype="i4"))
        e.append(np.arange(7, dtype="i4"))  # a last, partial chunk
    x = from_tables(path, "/e", chunks=50_000)
    with diagnostics.collect() as stats:
        got = x.compute(scheduler="threads")
    assert_array_equal(got, expected(path, "/e"))
    assert stats["index_builds"] == 1
    assert stats["index_chunks"] == 20_001
    assert stats["direct_chunks"] == 20_001
    assert_array_equal(x[123_457:200_003:5].compute(), expected(path, "/e")[123_457:200_003:5])


def test_never_written_chunks_of_an_array_read_as_its_fill_value(tmp_path):
    path = tmp_path / "sparse.h5"
    with tables.open_file(path, "w") as f:
        x = f.create_carray(
            "/", "x", atom=tables.Int32Atom(dflt=-9, shape=(2,)), shape=(40,), chunkshape=(6,)
        )
        x[7:20] = np.arange(26, dtype="i4").reshape(13, 2)
    x = from_tables(path, "/x", chunks=11)
    assert_array_equal(x.compute(), expected(path, "/x"))
    assert (x.compute() == -9).any()
    assert ci.chunk_index(str(path), "/x", TablesSource.open(path, "/x").fingerprint).fill.tolist() == [
        -9,
        -9,
    ]


def test_never_written_chunks_of_a_table_read_as_its_fill_value(tmp_path):
    h5py = pytest.importorskip("h5py")
    path = tmp_path / "table.h5"
    record = np.dtype([("a", "<i4"), ("b", "<f8")])
    with h5py.File(path, "w") as f:  # PyTables never leaves a table chunk unwritten: h5py does
        d = f.create_dataset(
            "t",
            shape=(100,),
            maxshape=(None,),
            chunks=(10,),
            dtype=record,
            fillvalue=np.array((7, 2.5), record),
        )
        d[0:15] = np.array([(i, i / 2) for i in range(15)], record)
        d[60:65] = np.array([(-i, i * 3.0) for i in range(5)], record)
    with tables.open_file(path) as f:
        assert isinstance(f.root.t, tables.Table)
    assert TablesSource.open(path, "/t").storage is not None
    assert_array_equal(from_tables(path, "/t", chunks=30).compute(), expected(path, "/t"))
    assert_array_equal(from_tables(path, "/t", field="b", chunks=30).compute(), expected(path, "/t")["b"])
    with diagnostics.collect() as stats:
        from_tables(path, "/t", chunks=30)[20:100:3].compute()
    assert stats["lock_acquisitions"] >= 1  # the graph build opens the file...
    assert stats["index_builds"] == 0  # ...but reading the fill value needs no HDF5 call


def replace_with_another(path):
    other = path.with_name("other.h5")
    write_carray(other, value=100.0)
    os.replace(other, path)


def append_rows(path):
    with tables.open_file(path, "a") as f:
        f.root.x.append(np.arange(50, dtype="f8"))


def rewrite_in_place(path):
    size = os.path.getsize(path)
    with tables.open_file(path, "r+") as f:
        f.root.x[:300] = -f.root.x[:300]
    assert os.path.getsize(path) == size
    stat = os.stat(path)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))


def truncate(path):
    os.truncate(path, os.path.getsize(path) // 2)


def delete(path):
    os.remove(path)


@pytest.mark.parametrize("change", [append_rows, rewrite_in_place, replace_with_another, truncate, delete])
def test_a_changed_file_raises_and_a_rebuilt_array_gets_a_new_index(tmp_path, change):
    path = tmp_path / "a.h5"
    with tables.open_file(path, "w") as f:
        e = f.create_earray("/", "x", atom=tables.Float64Atom(), shape=(0,), chunkshape=(100,))
        e.append(np.arange(1000, dtype="f8"))
    x = from_tables(path, "/x", chunks=250)
    assert_array_equal(x.compute(), expected(path, "/x"))
    change(path)
    with pytest.raises(FileChangedError, match=f"{path}.*/x"):
        x.compute()
    assert registry_is_empty()
    if not path.exists():
        return
    if change is truncate:
        with pytest.raises((OSError, tables.HDF5ExtError)):
            from_tables(path, "/x")
        return
    with diagnostics.collect() as stats:
        again = from_tables(path, "/x", chunks=250).compute()
    assert_array_equal(again, expected(path, "/x"))
    assert stats["index_builds"] == 1


def test_the_cache_respects_its_bound(tmp_path):
    path = tmp_path / "many.h5"
    for k in range(6):
        write_carray(path, node=f"/n{k}", n=2000, chunk=10)  # 200 chunks: 4.8 kB + overhead each
    with tables.open_file(path) as f:
        one = ci.build_index(f.root.n0).nbytes  # about 4.8 kB: the same for every node
    with dask.config.set({"dask_tables.chunk-index-cache": 3 * one + 100}):
        for k in range(6):
            assert_array_equal(from_tables(path, f"/n{k}").compute(), expected(path, f"/n{k}"))
            info = ci.cache_info()
            assert info["nbytes"] <= info["limit"]
        assert ci.cache_info()["entries"] == 3
        with diagnostics.collect() as stats:
            from_tables(path, "/n5").compute()  # most recent: kept
            from_tables(path, "/n0").compute()  # least recent: evicted
        assert (stats["index_hits"], stats["index_builds"]) == (1, 1)
    with dask.config.set({"dask_tables.chunk-index-cache": "1 B"}):
        ci.clear_cache()
        assert_array_equal(from_tables(path, "/n1").compute(), expected(path, "/n1"))
        assert ci.cache_info() == {"entries": 0, "nbytes": 0, "limit": 1}


def test_sixteen_threads_asking_at_once_build_the_index_once(tmp_path):
    path = tmp_path / "a.h5"
    with tables.open_file(path, "w") as f:
        e = f.create_earray("/", "x", atom=tables.Int64Atom(), shape=(0,), chunkshape=(8,))
        e.append(np.arange(40_000, dtype="i8"))
    source = TablesSource.open(path, "/x")
    barrier = threading.Barrier(16)
    results: dict[int, np.ndarray] = {}
    errors: list[BaseException] = []

    def read(k):
        try:
            barrier.wait()
            results[k] = source[k * 2500 : (k + 1) * 2500]
        except BaseException as err:  # reported below
            errors.append(err)

    with diagnostics.collect() as stats:
        threads = [threading.Thread(target=read, args=(k,)) for k in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert not errors
    assert_array_equal(np.concatenate([results[k] for k in range(16)]), expected(path, "/x"))
    assert stats["index_builds"] == 1
    assert stats["index_hits"] == 15


def test_process_workers_build_their_own_index(tmp_path):
    path = tmp_path / "a.h5"
    write_carray(path, filters=tables.Filters(complevel=1, complib="zlib"))
    x = from_tables(path, "/x", chunks=250)
    x.compute()  # this process's index
    assert_array_equal(x.compute(scheduler="processes"), expected(path, "/x"))


def test_a_forked_child_starts_with_an_empty_cache_and_builds_its_own(tmp_path):
    path = tmp_path / "a.h5"
    write_carray(path)
    code = f"""
        import multiprocessing, numpy as np
        from dask_tables import diagnostics, from_tables
        from dask_tables.hdf5 import chunkindex
        x = from_tables({str(path)!r}, "/x", chunks=250)
        x.compute(scheduler="threads")
        assert chunkindex.cache_info()["entries"] == 1

        def child(_):
            before = (chunkindex.cache_info()["entries"], diagnostics.snapshot()["index_builds"])
            with diagnostics.collect() as stats:
                # synchronous: dask's own thread pool hangs in a forked child (da.ones too)
                total = float(x.sum().compute(scheduler="synchronous"))
            return before, stats["index_builds"], total

        with multiprocessing.get_context("fork").Pool(1) as pool:
            print(pool.map(child, [0]))
    """
    done = run_python(code, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"[((0, 0), 1, {float(np.arange(1000.0).sum())})]"


def test_the_one_pass_read_is_available_here():
    """The compiled helper is built by the install, and PyTables' HDF5 exports H5Dchunk_iter."""
    from dask_tables.hdf5 import _chunkiter  # noqa: F401 - a missing build fails here

    assert ci._chunk_iter_address() is not None


@pytest.mark.parametrize("locked", [True, False])
def test_a_thread_using_plain_pytables_while_indexes_are_built_never_deadlocks(tmp_path, locked):
    """H5Dchunk_iter holds HDF5's mutex; its callback is C, so a thread waiting for that mutex with the GIL held is harmless."""
    path = tmp_path / "many.h5"
    with tables.open_file(path, "w") as f:
        e = f.create_earray("/", "e", atom=tables.Float32Atom(), shape=(0,), chunkshape=(16,))
        e.append(np.arange(16 * 20_000, dtype="f4"))
    code = f"""
        import contextlib, sys, threading
        import tables
        from dask_tables import get_lock
        from dask_tables.hdf5 import chunkindex
        from dask_tables.hdf5.fingerprint import Fingerprint

        sys.setswitchinterval(1e-6)
        path, stop = {str(path)!r}, threading.Event()
        guard = get_lock if {locked!r} else contextlib.nullcontext

        def other():
            with get_lock():
                f = tables.open_file(path)
            n = 0
            while not stop.is_set():
                with guard():
                    f.root.e[n % 1000 * 16 : n % 1000 * 16 + 16]
                n += 1
            with get_lock():
                f.close()

        thread = threading.Thread(target=other)
        thread.start()
        for _ in range(30):
            chunkindex.clear_cache()
            assert len(chunkindex.chunk_index(path, "/e", Fingerprint.of(path))) == 20_000
        stop.set()
        thread.join()
        print("done")
    """
    done = run_python(code, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "done"


def test_with_h5py_loaded_the_index_comes_from_pytables_own_hdf5(tmp_path):
    """h5py's HDF5 numbers identifiers on its own: the same number there is another dataset, of another file."""
    h5py = pytest.importorskip("h5py")
    ours, theirs = tmp_path / "ours.h5", tmp_path / "theirs.h5"
    with tables.open_file(ours, "w") as f:
        x = f.create_carray("/", "x", atom=tables.Float64Atom(), shape=(64,), chunkshape=(4,))
        x[8:40] = np.arange(32.0)  # chunks 2..9 stored, the others never written
    with h5py.File(theirs, "w") as g:
        g.create_dataset("x", data=np.arange(64.0) * -1, chunks=(4,))
    handles = [h5py.File(theirs, "r") for _ in range(8)]  # many h5py identifiers in use
    datasets = [h["x"] for h in handles]
    try:
        ci.clear_cache()
        with diagnostics.collect() as stats:
            got = from_tables(ours, "/x", chunks=16).compute(scheduler="threads")
        assert_array_equal(got, expected(ours, "/x"))
        assert stats["index_builds"] == 1
        with tables.open_file(ours) as f:
            assert ci._library_of(f.root.x) == ci._chunk_iter_address()  # PyTables' own, found by name
            assert len(ci.build_index(f.root.x)) == 8
    finally:
        del datasets
        for h in handles:
            h.close()
