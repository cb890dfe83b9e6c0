"""dask_tables.diagnostics: counters against reads whose counts are known."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import tables
from helpers import pytables_read
from numpy.testing import assert_array_equal

from dask_tables import diagnostics, from_tables, get_lock
from dask_tables.cli import main
from dask_tables.hdf5 import chunkindex


@pytest.fixture(autouse=True)
def empty_cache():
    chunkindex.clear_cache()
    yield
    chunkindex.clear_cache()


@pytest.fixture
def ten_chunks(tmp_path):
    """An uncompressed and a zlib CArray of 10 chunks of 100 float64, and a sparse one."""
    path = tmp_path / "ten.h5"
    with tables.open_file(path, "w") as f:
        f.create_carray("/", "plain", obj=np.arange(1000.0), chunkshape=(100,))
        f.create_carray(
            "/",
            "zlib",
            obj=np.arange(1000.0) % 7,
            chunkshape=(100,),
            filters=tables.Filters(complevel=1, complib="zlib"),
        )
        sparse = f.create_carray(
            "/", "sparse", atom=tables.Float64Atom(dflt=2.0), shape=(1000,), chunkshape=(100,)
        )
        sparse[150:420] = 1.0  # chunks 1..4 written, 6 never
    return path


def test_a_direct_read_counts_its_chunks_and_bytes(ten_chunks):
    x = from_tables(ten_chunks, "/plain", chunks=200)  # 5 tasks of 2 chunks
    with diagnostics.collect() as stats:
        assert_array_equal(x.compute(scheduler="threads"), pytables_read(ten_chunks, "/plain"))
    assert stats["direct_chunks"] == 10
    assert stats["direct_bytes_read"] == 10 * 800
    assert stats["direct_bytes_decoded"] == 10 * 800
    assert stats["pipeline_reads"] == stats["pipeline_bytes"] == 0
    assert stats["index_builds"] == 1
    assert stats["index_hits"] == 4


def test_a_compressed_read_counts_stored_and_decoded_bytes(ten_chunks):
    with tables.open_file(ten_chunks) as f:
        stored = sum(f.root.zlib.chunk_info((k,)).size for k in range(0, 1000, 100))
    assert stored < 8000
    with diagnostics.collect() as stats:
        from_tables(ten_chunks, "/zlib", chunks=500).compute()
    assert (stats["direct_chunks"], stats["direct_bytes_read"]) == (10, stored)
    assert stats["direct_bytes_decoded"] == 8000


def test_never_written_chunks_count_as_filled(ten_chunks):
    with diagnostics.collect() as stats:
        got = from_tables(ten_chunks, "/sparse", chunks=1000).compute()
    assert_array_equal(got, pytables_read(ten_chunks, "/sparse"))
    assert (stats["direct_chunks"], stats["direct_fill_chunks"]) == (4, 6)


def test_a_pipeline_read_counts_as_pipeline(ten_chunks):
    x = from_tables(ten_chunks, "/plain", chunks=200, direct=False)
    with diagnostics.collect() as stats:
        x.compute(scheduler="threads")
        x[120:130].compute()
    assert stats["pipeline_reads"] == 5 + 1
    assert stats["pipeline_chunks"] == 10 + 1
    assert stats["pipeline_bytes"] == 8000 + 80
    assert stats["direct_chunks"] == stats["index_builds"] == 0
    assert stats["lock_acquisitions"] >= 5


def test_the_steady_state_takes_no_lock(ten_chunks):
    x = from_tables(ten_chunks, "/zlib", chunks=100)
    x.compute(scheduler="threads")
    with diagnostics.collect() as stats:
        assert_array_equal(x.compute(scheduler="threads"), pytables_read(ten_chunks, "/zlib"))
    assert stats["lock_acquisitions"] == 0
    assert stats["lock_held_seconds"] == stats["lock_wait_seconds"] == 0
    assert stats["index_builds"] == 0
    assert stats["index_hits"] == 10
    assert stats["lock_share"] == 0


def test_only_the_outermost_acquisition_of_the_lock_counts():
    lock = get_lock()
    with diagnostics.collect() as stats:
        with lock, lock, lock:
            pass
        assert lock.acquire(blocking=False)
        lock.release()
    assert stats["lock_acquisitions"] == 2
    assert stats["lock_held_seconds"] > 0


def test_counts_of_every_thread_add_up_also_after_it_ended():
    with diagnostics.collect() as stats:
        threads = [threading.Thread(target=diagnostics.add, kwargs={"direct_chunks": k}) for k in range(1, 9)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        del threads
    assert stats["direct_chunks"] == sum(range(1, 9))


def test_reset_starts_from_zero():
    diagnostics.add(index_hits=5, pipeline_bytes=7)
    diagnostics.reset()
    counts = diagnostics.snapshot()
    assert all(counts[name] == 0 for name in diagnostics.COUNTERS)
    diagnostics.add(index_hits=1)
    assert diagnostics.snapshot()["index_hits"] == 1


def test_gather_collects_every_worker_of_a_cluster(ten_chunks):
    distributed = pytest.importorskip("distributed")
    x = from_tables(ten_chunks, "/zlib", chunks=100)
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
        ) as c,
        distributed.Client(c) as client,
    ):
        client.run(diagnostics.reset)
        assert float(client.compute(x.sum(), sync=True)) == pytest.approx(
            pytables_read(ten_chunks, "/zlib").sum()
        )
        stats = diagnostics.gather(client)
        addresses = sorted(client.scheduler_info()["workers"])
    assert sorted(stats) == addresses
    assert sum(s["direct_chunks"] for s in stats.values()) == 10
    assert 1 <= sum(s["index_builds"] for s in stats.values()) <= 2  # once per worker process that read
    assert len({s["pid"] for s in stats.values()}) == 2


def test_stats_profile_prints_the_counters(ten_chunks, capsys):
    assert (
        main(["stats", str(ten_chunks), "/plain", "--chunks", "200", "--scheduler", "threads", "--profile"])
        == 0
    )
    out = capsys.readouterr().out
    assert "diagnostics, this process:" in out
    lines = dict(
        line.split() for line in out.splitlines() if line.startswith("  ") and len(line.split()) == 2
    )
    assert lines["direct_chunks"] == "10"
    assert lines["direct_bytes_read"] == "8000"
    assert lines["index_builds"] == "1"
