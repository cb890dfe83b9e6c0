"""Reliability under load: races of everything at once, killed workers, many files."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import threading
import time

import numpy as np
import pytest
import tables
import tables.file as tables_file
from helpers import last_line, records, registry_is_empty, run_python

from dask_tables import from_tables, patched, synchronized_close_file, synchronized_open_file

THREADS = 32


@pytest.fixture
def busy_files(tmp_path):
    """A zlib array, an uncompressed array, a Blosc2 table, and a file the user writes to."""
    rng = np.random.default_rng(11)
    paths = {name: tmp_path / f"{name}.h5" for name in ("zlib", "plain", "table", "users")}
    with tables.open_file(paths["zlib"], "w") as f:
        f.create_carray(
            "/",
            "x",
            obj=rng.random((400, 50)),
            chunkshape=(50, 50),
            filters=tables.Filters(1, "zlib", shuffle=True),
        )
    with tables.open_file(paths["plain"], "w") as f:
        f.create_carray("/", "x", obj=rng.random((400, 50)), chunkshape=(50, 50))
    with tables.open_file(paths["table"], "w") as f:
        f.create_table(
            "/", "t", obj=records(2000), chunkshape=(250,), filters=tables.Filters(5, "blosc2:lz4")
        )
    with tables.open_file(paths["users"], "w") as f:
        f.create_earray("/", "log", atom=tables.Int64Atom(), shape=(0,))
    return paths


def test_32_threads_mixing_every_way_of_opening(busy_files):
    with tables.open_file(busy_files["zlib"]) as f:
        zlib_sum = f.root.x.read().sum()
    with tables.open_file(busy_files["plain"]) as f:
        plain = f.root.x.read()
    table_sum = records(2000)["pos"]["x"].sum()
    counts = {"from_tables": 0, "synchronized": 0, "patched": 0, "opens": 0}
    errors: list[BaseException] = []
    counter_lock = threading.Lock()
    deadline = time.monotonic() + 20
    start = threading.Barrier(THREADS + 2)  # the workers, the user, this thread

    def count(kind, opens):
        with counter_lock:
            counts[kind] += 1
            counts["opens"] += opens

    def worker(i):
        start.wait()
        n = 0
        while time.monotonic() < deadline and n < 150:
            n += 1
            try:
                kind = (i + n) % 5
                if kind == 0:
                    x = from_tables(busy_files["zlib"], "/x", chunks=(100, 50))
                    assert x.sum().compute(scheduler="threads") == pytest.approx(zlib_sum)
                    count("from_tables", 1 + x.npartitions)
                elif kind == 1:
                    x = from_tables(busy_files["plain"], "/x", chunks=(200, 50), direct=False)
                    np.testing.assert_array_equal(x[::7].compute(scheduler="threads"), plain[::7])
                    count("from_tables", 1 + x.npartitions)
                elif kind == 2:
                    x = from_tables(busy_files["table"], "/t", field="pos/x", chunks=500)
                    assert x.sum().compute(scheduler="threads") == pytest.approx(table_sum)
                    count("from_tables", 1 + x.npartitions)
                elif kind == 3:
                    h5 = synchronized_open_file(busy_files["plain"], mode="r")
                    try:
                        np.testing.assert_array_equal(h5.root.x[n % 400], plain[n % 400])
                    finally:
                        synchronized_close_file(h5)
                    count("synchronized", 1)
                else:
                    with tables.open_file(busy_files["table"], "r") as h5:  # plain PyTables, patched
                        assert h5.root.t[n % 2000]["a"] == n % 2000
                    count("patched", 1)
            except BaseException as err:  # every failure counts
                errors.append(err)

    def user():
        """Holds another file open for writing all along, appending."""
        start.wait()
        with tables.open_file(busy_files["users"], "a") as h5:
            while time.monotonic() < deadline - 15:
                h5.root.log.append(np.arange(10))
                h5.flush()
                time.sleep(0.01)

    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        with patched():
            threads = [threading.Thread(target=worker, args=(i,)) for i in range(THREADS)]
            threads.append(threading.Thread(target=user))
            for t in threads:
                t.start()
            start.wait()
            for t in threads:
                t.join(120)
    finally:
        sys.setswitchinterval(old)
    assert errors == [], errors[:3]
    assert registry_is_empty()
    print(f"\n32 threads: {counts}", file=sys.stderr)
    assert counts["opens"] >= 2000, counts
    assert min(counts["from_tables"], counts["synchronized"], counts["patched"]) > 50


def test_many_files_with_few_file_descriptors(tmp_path):
    """2,000 files through a glob with RLIMIT_NOFILE=256: builds (one open each), computes, holds none."""
    folder = tmp_path / "runs"
    folder.mkdir()
    done = run_python(
        f"""
        import resource, os, glob
        import numpy as np, tables
        folder = {str(folder)!r}
        for i in range(2000):
            with tables.open_file(os.path.join(folder, f"run-{{i:04d}}.h5"), "w") as f:
                f.create_array("/", "x", np.full(3, i, dtype="i4"))
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))
        import dask_tables
        opened = []
        original = tables.File.__init__
        def counting(self, filename, *a, **k):
            opened.append(filename)
            original(self, filename, *a, **k)
        tables.File.__init__ = counting
        x = dask_tables.from_tables(os.path.join(folder, "run-*.h5"), "/x")
        assert len(opened) == 2000 and len(set(opened)) == 2000, len(opened)
        built_with = len(opened)
        assert len(tables.file._open_files) == 0
        assert x.shape == (6000,)
        total = int(x.sum().compute(scheduler="threads"))
        assert total == 3 * sum(range(2000)), total
        assert len(tables.file._open_files) == 0
        fds = len(os.listdir("/proc/self/fd"))
        assert fds < 64, fds
        print("ok", built_with)
        """,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split()[-2:] == ["ok", "2000"]


def slow_identity(block):
    time.sleep(0.2)
    return block


def test_a_killed_worker_process_does_not_lose_the_computation(busy_files):
    distributed = pytest.importorskip("distributed")
    path = busy_files["zlib"]
    with tables.open_file(path) as f:
        expected = f.root.x.read().sum()
    x = from_tables(path, "/x", chunks=(25, 50))  # 16 tasks of 0.2 s on 2 single-thread workers
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        future = client.compute(x.map_blocks(slow_identity, dtype=x.dtype).sum())
        time.sleep(1.0)  # both workers are busy with their first tasks
        victim = sorted(client.run(os.getpid).values())[0]
        os.kill(victim, 9)
        assert float(future.result(timeout=120)) == pytest.approx(expected)
        # No worker holds the file open afterwards: not in PyTables' registry, not as a descriptor.
        still_open = client.run(_holds_open, str(path))
        assert not any(still_open.values()), still_open
    with tables.open_file(path, "w"):
        pass  # the client can truncate it at once


def _holds_open(path: str) -> bool:
    in_registry = len(tables_file._open_files) > 0
    descriptors = []
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            descriptors.append(os.readlink(f"/proc/self/fd/{fd}"))
    return in_registry or path in descriptors


FUZZ_CHILD = """
import hashlib, json, sys, warnings
warnings.simplefilter("ignore")
import numpy as np, tables, dask_tables
path, node = sys.argv[1], sys.argv[2]
out = {}
try:
    got = dask_tables.from_tables(path, node).compute(scheduler="threads")
    out["ours"] = hashlib.sha256(np.ascontiguousarray(got).tobytes()).hexdigest()
except dask_tables.CorruptChunkError:
    out["ours"] = "corrupt"
except Exception as err:
    out["ours"] = "other:" + type(err).__name__
try:
    with tables.open_file(path) as f:
        out["pytables"] = hashlib.sha256(np.ascontiguousarray(f.get_node(node).read()).tobytes()).hexdigest()
except Exception as err:
    out["pytables"] = "error:" + type(err).__name__
print(json.dumps(out))
"""


def test_fuzzed_chunk_bytes_never_crash_hang_or_mislead(tmp_path):
    """Seeded, bounded fuzz of stored chunk bytes: PyTables' answer or an exception; never a crash.

    (Corrupt file *headers* and chunk indexes crash HDF5 itself, PyTables alone
    included: those are out of this library's reach and not fuzzed here.)
    """
    rng = np.random.default_rng(20261125)
    base = tmp_path / "base.h5"
    nodes = {
        "/zlib": tables.Filters(1, "zlib", shuffle=True),
        "/blosc": tables.Filters(5, "blosc:lz4", shuffle=True),
        "/blosc2": tables.Filters(5, "blosc2:zstd", shuffle=True),
        "/bzip2": tables.Filters(3, "bzip2"),
        "/checked": tables.Filters(1, "zlib", fletcher32=True),
    }
    with tables.open_file(base, "w") as f:
        for node, filters in nodes.items():
            f.create_carray(
                "/",
                node[1:],
                obj=np.arange(6000.0).reshape(60, 100) % 97,
                chunkshape=(20, 50),
                filters=filters,
            )
        f.create_table("/", "table", obj=records(600), chunkshape=(100,), filters=tables.Filters(1, "zlib"))
    all_nodes = [*nodes, "/table"]
    outcomes: dict[str, int] = {}
    for case in range(30):
        node = all_nodes[case % len(all_nodes)]
        path = tmp_path / f"case{case}.h5"
        path.write_bytes(base.read_bytes())
        with tables.open_file(path) as f:
            leaf = f.get_node(node)
            starts = (
                [(r, c) for r in range(0, 60, 20) for c in range(0, 100, 50)]
                if leaf.ndim == 2
                else [(r,) for r in range(0, 600, 100)]
            )
            infos = [leaf.chunk_info(s) for s in starts]
        info = infos[rng.integers(len(infos))]
        with open(path, "r+b") as raw:
            for offset in info.offset + rng.integers(0, info.size, rng.integers(1, 6)):
                raw.seek(int(offset))
                raw.write(bytes([int(rng.integers(0, 256))]))
        done = run_python(FUZZ_CHILD, path, node, timeout=60)
        assert done.returncode == 0, f"case {case} ({node}) crashed: {done.returncode} {done.stderr[-500:]}"
        result = json.loads(last_line(done))
        if result["ours"] == "corrupt":
            kind = "CorruptChunkError"
        elif result["ours"] == result["pytables"]:
            kind = "same as PyTables"
        elif result["ours"].startswith("other:") and result["pytables"].startswith("error:"):
            kind = "PyTables' error (PyTables cannot read it either)"
        else:
            raise AssertionError(f"case {case} ({node}): {result}")
        outcomes[kind] = outcomes.get(kind, 0) + 1
        path.unlink()
    print(f"\nfuzz, 30 cases: {outcomes}", file=sys.stderr)
    assert outcomes.get("CorruptChunkError", 0) > 0


class _Planted:
    """Unpickling it touches a marker file: stands for code a hostile file runs."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.fixture
def hostile_file(tmp_path):
    path = tmp_path / "hostile.h5"
    marker = tmp_path / "code-ran"
    with tables.open_file(path, "w") as f:
        f.root._v_attrs.note = _Planted(marker)
        x = f.create_carray(
            "/", "x", obj=np.arange(100.0), chunkshape=(10,), filters=tables.Filters(1, "zlib")
        )
        x._v_attrs.note = _Planted(marker)
        x._v_attrs.TITLE = _Planted(marker)
        t = f.create_table("/", "t", obj=records(50))
        t._v_attrs.note = _Planted(marker)
        t._v_attrs.plain = {"a": [1, 2], "b": {3, 4}}  # plain data still unpickles
        filled = f.create_table("/", "filled", obj=records(50))
        filled._v_attrs.FIELD_0_FILL = _Planted(marker)  # a column default PyTables itself uses
    return path, marker


@pytest.mark.parametrize("direct", [True, False])
@pytest.mark.parametrize("scheduler", ["threads", "processes"])
def test_reading_never_runs_code_pickled_in_attributes(hostile_file, direct, scheduler):
    path, marker = hostile_file
    x = from_tables(path, "/x", direct=direct)
    t = from_tables(path, "/t", field="a", direct=direct)
    np.testing.assert_array_equal(x.compute(scheduler=scheduler), np.arange(100.0))
    np.testing.assert_array_equal(t.compute(scheduler=scheduler), np.arange(50))
    try:  # the refused default leaves PyTables' own table read without a fill value: it may fail
        from_tables(path, "/filled", field="a", direct=direct).compute(scheduler=scheduler)
    except ValueError:
        assert not direct, "the direct path does not need column defaults"
    assert not marker.exists(), "a pickled attribute ran code"


def test_pickles_run_only_when_the_user_opts_in(hostile_file):
    path, marker = hostile_file
    from_tables(path, "/x", allow_pickles=True)
    assert marker.exists(), "opting in restores PyTables' behaviour (and proves the test can fail)"


def test_other_threads_still_unpickle_as_pytables_does(hostile_file):
    from dask_tables.hdf5.pickles import refusing_pickles

    path, marker = hostile_file
    with refusing_pickles(), tables.open_file(path) as f:
        assert f.root.t._v_attrs.plain == {"a": [1, 2], "b": {3, 4}}
        assert isinstance(f.root.x._v_attrs.note, bytes)
    assert not marker.exists()
    with tables.open_file(path) as f:  # outside the block: PyTables as ever
        f.root.x._v_attrs.note  # noqa: B018
    assert marker.exists()


VALIDATE_CHILD = """
import sys, warnings
warnings.simplefilter("ignore")
import numpy as np
import dask_tables
path, node, how, out = sys.argv[1:]
try:
    x = dask_tables.from_tables(path, node, validate=True, direct=how == "direct")
    np.save(out, x.compute(scheduler="threads"))
    print("computed")
except dask_tables.NotHDF5FileError as err:
    print("refused" if "crashed" in str(err) or "did not finish" in str(err) else "damaged")
except dask_tables.CorruptChunkError:
    print("corrupt")
except Exception as err:
    print("error", type(err).__name__, path in str(err))
"""

PYTABLES_CHILD = """
import sys, warnings
warnings.simplefilter("ignore")
import numpy as np, tables
with tables.open_file(sys.argv[1]) as f:
    np.save(sys.argv[3], f.get_node(sys.argv[2]).read())
"""


def test_validate_refuses_files_that_crash_hdf5_instead_of_crashing(tmp_path):
    """Seeded fuzz of headers, chunk indexes and chunks: with validate=True, reading never takes the process down.

    Half the cases damage the first 4 KiB (superblock, object headers), half
    any byte of the file (chunk index, chunk data).  The nodes: zlib chunks
    and plain records read directly, and zlib chunks read through HDF5's own
    filter pipeline (which the probe must then read too).
    """
    rng = np.random.default_rng(7)
    base = tmp_path / "base.h5"
    with tables.open_file(base, "w") as f:
        f.create_carray(
            "/",
            "z",
            obj=np.arange(2000.0).reshape(20, 100),
            chunkshape=(5, 100),
            filters=tables.Filters(1, "zlib"),
        )
        f.create_table("/", "t", obj=records(100))
    size = base.stat().st_size
    outcomes: dict[str, int] = {}
    for case in range(80):  # at least 24 cases, and until one file has crashed HDF5 in the probe
        if case >= 24 and outcomes.get("refused", 0):
            break
        data = bytearray(base.read_bytes())
        limit = 4096 if case % 2 else size
        for offset in rng.integers(0, limit, rng.integers(1, 20)):
            data[int(offset)] ^= int(rng.integers(1, 256))
        path = tmp_path / f"case{case}.h5"
        path.write_bytes(bytes(data))
        node, how = [("/z", "direct"), ("/t", "direct"), ("/z", "pipeline")][case % 3]
        ours, theirs = tmp_path / "ours.npy", tmp_path / "theirs.npy"
        done = run_python(VALIDATE_CHILD, path, node, how, ours, timeout=300)
        assert done.returncode == 0, f"case {case} ({node}, {how}): the process died ({done.returncode})"
        kind, *detail = done.stdout.split()
        if kind == "error":  # an ordinary error of a damaged file: specific, and naming it
            assert detail[0] in {"NoSuchNodeError", "TypeError", "ValueError"} and detail[1] == "True", (
                done.stdout
            )
        if kind == "computed":  # what PyTables itself reads, if it can (in its own process: it may crash)
            pytables = run_python(PYTABLES_CHILD, path, node, theirs, timeout=300)
            if pytables.returncode == 0:
                np.testing.assert_array_equal(np.load(ours), np.load(theirs), err_msg=f"case {case}")
                kind = "computed, equal to PyTables"
            else:
                kind = "computed, PyTables fails"
        outcomes[kind] = outcomes.get(kind, 0) + 1
        path.unlink()
    print(f"\nfuzz with validate=True, {sum(outcomes.values())} cases: {outcomes}", file=sys.stderr)
    assert outcomes.get("refused", 0) > 0, "some of these damaged files crash HDF5: the probe must catch them"


# ---------------------------------------------------------------- validate over many files


def write_small_files(folder, count):
    folder.mkdir(exist_ok=True)
    paths = []
    for i in range(count):
        path = folder / f"part-{i:02d}.h5"
        with tables.open_file(path, "w") as f:
            f.create_carray("/", "x", obj=np.arange(100.0) + 1000 * i, chunkshape=(10,))
        paths.append(path)
    return paths


def make_crasher(path):
    """A valid file whose root group's first attribute name ("TITLE") starts with byte 0xED.

    Opening it makes PyTables crash with SIGSEGV (checked in a subprocess below).
    """
    with tables.open_file(path, "w") as f:
        f.create_carray("/", "x", obj=np.arange(100.0), chunkshape=(10,))
    data = bytearray(path.read_bytes())
    data[data.index(b"TITLE\x00")] = 0xED
    path.write_bytes(bytes(data))
    return path


def make_hanger(path):
    """A file whose damaged dataspace claims 2**21 x 2**21 cells in 1024 x 1024 chunks.

    HDF5 opens it; reading it through HDF5 (the probe of a node read with
    ``direct=False``) decodes 4 TiB of fill values: it never finishes in the
    probe's few seconds.
    """
    with tables.open_file(path, "w") as f:
        f.create_carray("/", "x", obj=np.ones((3001, 3003), "i1"), chunkshape=(1024, 1024))
    data = path.read_bytes()
    for rows in (3001, 3003):
        data = data.replace(rows.to_bytes(8, "little"), (1 << 21).to_bytes(8, "little"))
    path.write_bytes(data)
    return path


def test_the_crasher_really_crashes_pytables(tmp_path):
    path = make_crasher(tmp_path / "crasher.h5")
    done = run_python(f"import tables; tables.open_file({str(path)!r})")
    assert done.returncode < 0, (done.returncode, done.stderr[-500:])


def test_validate_refuses_only_the_crashing_file_among_20(tmp_path):
    from dask_tables import NotHDF5FileError
    from dask_tables.array.validate import probe_files

    paths = write_small_files(tmp_path / "parts", 20)
    paths[10] = make_crasher(tmp_path / "parts" / "part-10.h5")
    refused = probe_files(paths, "/x")
    assert list(refused) == [10]
    assert str(paths[10]) in str(refused[10]) and "/x" in str(refused[10]) and "crashed" in str(refused[10])
    script = f"""
        import dask_tables, numpy as np
        paths = {[str(p) for p in paths]!r}
        try:
            dask_tables.from_tables(paths, "/x", validate=True)
        except dask_tables.NotHDF5FileError as err:
            print("refused", paths[10] in str(err), paths[9] not in str(err))
        good = paths[:10] + paths[11:]
        x = dask_tables.from_tables(good, "/x", validate=True, chunks=10)
        np.save({str(tmp_path / "got.npy")!r}, x.compute(scheduler="threads"))
        """
    done = run_python(script, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["refused", "True", "True"]
    expected = np.concatenate([np.arange(100.0) + 1000 * i for i in range(20) if i != 10])
    np.testing.assert_array_equal(np.load(tmp_path / "got.npy"), expected)
    assert isinstance(refused[10], NotHDF5FileError)


def test_validate_refuses_a_hanging_file_and_judges_the_files_after_it(tmp_path):
    from dask_tables.array.validate import probe_files

    paths = write_small_files(tmp_path / "parts", 8)
    paths[3] = make_hanger(tmp_path / "hanger.h5")
    paths[6] = make_crasher(tmp_path / "crasher.h5")
    refused = probe_files(paths, "/x", timeout=3, direct=False)
    assert sorted(refused) == [3, 6]
    assert str(paths[3]) in str(refused[3]) and "did not finish in 3 s" in str(refused[3])
    assert str(paths[6]) in str(refused[6]) and "crashed" in str(refused[6])


def test_validate_leaves_ordinary_errors_to_the_read(tmp_path):
    from dask_tables import NotHDF5FileError
    from dask_tables.array.validate import probe, probe_files

    paths = write_small_files(tmp_path / "parts", 3)
    text = tmp_path / "text.h5"
    text.write_text("not hdf5\n" * 100)
    wrong_node = tmp_path / "other.h5"
    with tables.open_file(wrong_node, "w") as f:
        f.create_array("/", "y", np.arange(3))
    assert probe_files([paths[0], text, wrong_node, paths[1], paths[2]], "/x") == {}
    probe(paths[0], "/x")
    with pytest.raises(NotHDF5FileError, match=r"text\.h5"):
        from_tables([paths[0], text], "/x", validate=True)
