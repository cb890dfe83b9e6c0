"""to_tables: round trips, every scheduler, failures that leave the file as it was."""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path

import cloudpickle
import dask
import dask.array as da
import numpy as np
import pytest
import tables
from dask.delayed import Delayed
from helpers import RECORD, pytables_read, records, registry_is_empty, run_python

import dask_tables
from dask_tables.write.plan import plan_new_node

cloudpickle.register_pickle_by_value(sys.modules[__name__])  # worker processes lack tests/ on sys.path

LZO = tables.which_lib_version("lzo") is not None
FILTERS = {
    "none": None,
    "zlib+shuffle": tables.Filters(complib="zlib", complevel=1, shuffle=True),
    "blosc2:zstd": tables.Filters(complib="blosc2:zstd", complevel=5, shuffle=True),
    "blosc:lz4": tables.Filters(complib="blosc:lz4", complevel=5, shuffle=True),
    "bzip2": tables.Filters(complib="bzip2", complevel=3, shuffle=False),
    "fletcher32": tables.Filters(complib="zlib", complevel=4, shuffle=True, fletcher32=True),
    "fletcher32-only": tables.Filters(fletcher32=True),
    "blosc2:lz4+bitshuffle": tables.Filters(complib="blosc2:lz4", complevel=5, bitshuffle=True),
    "lzo": tables.Filters(complib="lzo", complevel=1) if LZO else None,
}
# The filters whose chunks dask_tables encodes itself (the others go through HDF5's pipeline).
ENCODED = {
    "none",
    "zlib+shuffle",
    "blosc2:zstd",
    "bzip2",
    "fletcher32",
    "fletcher32-only",
    "blosc2:lz4+bitshuffle",
}
DTYPES = ["i1", "u2", "<i4", "i8", "f4", "f8", "?", "c16", ">i4", ">f8", "S7", "record"]


def sample(dtype: str, shape: tuple[int, ...]) -> np.ndarray:
    if dtype == "record":
        return records(shape[0])
    n = int(np.prod(shape))
    values = np.arange(n, dtype="i8") * 7919 % 1013 - 500
    if dtype == "?":
        return (values % 3 == 0).reshape(shape)
    if dtype.startswith("S"):
        return np.array([f"v{v}".encode() for v in values], dtype=dtype).reshape(shape)
    if dtype == "c16":
        return (values + 1j * values[::-1]).reshape(shape)
    return (values / (4 if np.dtype(dtype).kind in "fc" else 1)).astype(dtype).reshape(shape)


def assert_round_trip(path: Path, node: str, expected: np.ndarray) -> None:
    """What PyTables reads, and what from_tables reads both ways, equals ``expected``."""
    got = pytables_read(path, node)
    assert got.shape == expected.shape
    np.testing.assert_array_equal(got, expected)
    assert got.dtype.newbyteorder("=") == expected.dtype.newbyteorder("=")
    for direct in (False, True):
        np.testing.assert_array_equal(
            dask_tables.from_tables(path, node, direct=direct).compute(scheduler="sync"), expected
        )
    assert registry_is_empty()


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def snapshot(path: Path) -> tuple[bytes, list[str]]:
    with tables.open_file(path) as f:
        nodes = sorted(n._v_pathname for n in f.walk_nodes())
    return path.read_bytes(), nodes


def existing_file(path: Path) -> None:
    with tables.open_file(path, "w") as f:
        f.create_carray("/", "keep", obj=np.arange(1000.0).reshape(100, 10), chunkshape=(10, 10))
        f.create_group("/", "group")
        f.create_table("/group", "table", obj=records(100))


# ---------------------------------------------------------------- round trips


@pytest.mark.parametrize("filters", list(FILTERS))
@pytest.mark.parametrize("dtype", DTYPES)
def test_round_trip_dtypes_and_filters(tmp_path, dtype, filters):
    if filters == "lzo" and not LZO:
        pytest.skip("PyTables was built without LZO")
    shape = (53,) if dtype == "record" else (53, 13)
    expected = sample(dtype, shape)
    x = da.from_array(expected, chunks=(20,) if dtype == "record" else (20, 13))
    path = tmp_path / "out.h5"
    dask_tables.to_tables(x, path, "/g/x", filters=FILTERS[filters], title="T")
    assert_round_trip(path, "/g/x", expected)
    with tables.open_file(path) as f:
        leaf = f.get_node("/g/x")
        assert isinstance(leaf, tables.Table if dtype == "record" else tables.CArray)
        assert leaf.title == "T"
        assert leaf.chunkshape == ((20,) if dtype == "record" else (20, 13))
        assert leaf.filters == (FILTERS[filters] or tables.Filters())
        if dtype == ">i4":
            assert leaf.byteorder == "big"
    assert listing(tmp_path) == ["out.h5"]


@pytest.mark.parametrize("filters", [f for f in FILTERS if f != "lzo"])
def test_the_encoders_are_used_exactly_where_they_read_back(filters):
    """The parallel path is not silently disabled: every filter the read side decodes is encoded."""
    for dtype in DTYPES:
        shape = (53,) if dtype == "record" else (53, 13)
        x = da.from_array(sample(dtype, shape), chunks=20)
        write, _ = plan_new_node(x, "/x", FILTERS[filters], None, False, "", False, True)
        assert write.encode is (filters in ENCODED), (dtype, write)


@pytest.mark.parametrize(
    ("shape", "chunks"),
    [
        ((0,), 5),
        ((0, 4), (5, 4)),
        ((1,), 1),
        ((37,), 10),
        ((50, 13), (16, 5)),
        ((9, 7, 5), (4, 3, 5)),
        ((9, 7, 5), (9, 7, 5)),
        ((3000, 200), (1000, 200)),  # chunks smaller than blocks: several per block
    ],
)
@pytest.mark.parametrize("filters", ["zlib+shuffle", "blosc2:zstd", "blosc:lz4"])
def test_round_trip_shapes(tmp_path, shape, chunks, filters):
    expected = sample("f8", shape)
    path = tmp_path / "out.h5"
    dask_tables.to_tables(da.from_array(expected, chunks=chunks), path, "/x", filters=FILTERS[filters])
    assert_round_trip(path, "/x", expected)


def test_chunkshape_divides_the_blocks_or_the_array_is_rechunked(tmp_path):
    x = da.from_array(sample("i4", (100, 30)), chunks=(40, 30))
    dask_tables.to_tables(x, tmp_path / "a.h5", "/x")
    with tables.open_file(tmp_path / "a.h5") as f:
        assert f.root.x.chunkshape == (40, 30)
    dask_tables.to_tables(x, tmp_path / "b.h5", "/x", chunkshape=(20, 10))  # divides: no rechunk
    with pytest.warns(dask_tables.RechunkWarning, match=r"chunkshape \(16, 30\)"):
        dask_tables.to_tables(x, tmp_path / "c.h5", "/x", chunkshape=(16, 30))
    for name, chunkshape in [("b.h5", (20, 10)), ("c.h5", (16, 30))]:
        with tables.open_file(tmp_path / name) as f:
            assert f.root.x.chunkshape == chunkshape
        assert_round_trip(tmp_path / name, "/x", x.compute())


def test_extendable_makes_an_earray_that_grows(tmp_path):
    expected = sample("f4", (45, 6))
    path = tmp_path / "out.h5"
    dask_tables.to_tables(da.from_array(expected, chunks=(10, 6)), path, "/e", extendable=True)
    assert_round_trip(path, "/e", expected)
    with tables.open_file(path, "a") as f:
        assert isinstance(f.root.e, tables.EArray)
        f.root.e.append(np.ones((5, 6), "f4"))
    np.testing.assert_array_equal(
        pytables_read(path, "/e"), np.concatenate([expected, np.ones((5, 6), "f4")])
    )


def test_numpy_input_and_compute_false(tmp_path):
    expected = sample("i8", (30,))
    path = tmp_path / "out.h5"
    task = dask_tables.to_tables(expected, path, "/x", compute=False)
    assert isinstance(task, Delayed)
    assert not path.exists()
    task.compute()
    assert_round_trip(path, "/x", expected)
    assert listing(tmp_path) == ["out.h5"]


def test_a_dict_writes_several_nodes_from_one_graph(tmp_path):
    path = tmp_path / "out.h5"
    existing_file(path)
    a, b = sample("f8", (40, 5)), records(33)
    task = dask_tables.to_tables(
        {"/new/a": da.from_array(a, chunks=(10, 5)), "/group/b": da.from_array(b, chunks=10)},
        path,
        filters=FILTERS["zlib+shuffle"],
        compute=False,
    )
    commits = [
        k
        for k in task.dask
        if isinstance(k, str) and k.startswith("to-tables-") and "-stage-" not in k and "-prepare-" not in k
    ]
    assert commits == [task.key]
    task.compute(scheduler="threads")
    assert_round_trip(path, "/new/a", a)
    assert_round_trip(path, "/group/b", b)
    np.testing.assert_array_equal(pytables_read(path, "/keep"), np.arange(1000.0).reshape(100, 10))


# ---------------------------------------------------------------- schedulers


@pytest.mark.parametrize("scheduler", ["sync", "threads", "processes", "distributed"])
@pytest.mark.parametrize("target", ["new", "existing"])
def test_round_trip_under_every_scheduler(tmp_path, scheduler, target, request):
    path = tmp_path / "out.h5"
    if target == "existing":
        existing_file(path)
    a = sample("f8", (300, 40))
    b = sample("record", (90,))
    arrays = {"/a": da.from_array(a, chunks=(50, 40)), "/t/b": da.from_array(b, chunks=30)}
    if scheduler == "distributed":
        client = request.getfixturevalue("cluster_client")
        dask_tables.to_tables(arrays, path, filters=FILTERS["blosc2:zstd"])
        client.run(lambda: None)  # the workers are alive
    else:
        with dask.config.set(scheduler=scheduler):
            dask_tables.to_tables(arrays, path, filters=FILTERS["zlib+shuffle"])
    assert_round_trip(path, "/a", a)
    assert_round_trip(path, "/t/b", b)
    assert listing(tmp_path) == ["out.h5"]


# ---------------------------------------------------------------- failures


class Boom(RuntimeError):
    pass


def explode_at(block_index: tuple[int, ...]):
    def fn(block, block_info=None):
        if tuple(block_info[0]["chunk-location"]) == block_index:
            raise Boom(f"block {block_index}")
        return block

    return fn


@pytest.mark.parametrize("scheduler", ["threads", "processes", "distributed"])
@pytest.mark.parametrize("overwrite", [False, True])
def test_an_exception_in_one_block_leaves_the_file_byte_identical(tmp_path, scheduler, overwrite, request):
    path = tmp_path / "out.h5"
    existing_file(path)
    before = snapshot(path)
    files = listing(tmp_path)
    x = da.from_array(sample("f8", (100, 10)), chunks=(10, 10)).map_blocks(explode_at((6, 0)), dtype="f8")
    node = "/keep" if overwrite else "/new"
    kwargs = {"scheduler": scheduler} if scheduler != "distributed" else {}
    if scheduler == "distributed":
        request.getfixturevalue("cluster_client")
    with pytest.raises(Boom), dask.config.set(**kwargs):
        dask_tables.to_tables(x, path, node, overwrite=overwrite, filters=FILTERS["zlib+shuffle"])
    assert snapshot(path) == before
    assert listing(tmp_path) == files, "no sidecar left behind"


def test_an_exception_in_one_block_creates_no_new_file(tmp_path):
    x = da.from_array(sample("f8", (100,)), chunks=10).map_blocks(explode_at((3,)), dtype="f8")
    with pytest.raises(Boom):
        dask_tables.to_tables(x, tmp_path / "out.h5", "/x")
    assert listing(tmp_path) == []


def test_a_dict_with_one_failing_array_writes_none_of_them(tmp_path):
    path = tmp_path / "out.h5"
    existing_file(path)
    before = snapshot(path)
    good = da.ones((50, 10), chunks=(10, 10))
    bad = da.ones((50, 10), chunks=(10, 10)).map_blocks(explode_at((4, 0)), dtype="f8")
    with pytest.raises(Boom):
        dask_tables.to_tables({"/good": good, "/bad": bad}, path)
    assert snapshot(path) == before


def kill_once(marker: str):
    def fn(block, block_info=None):
        if tuple(block_info[0]["chunk-location"]) == (3, 0):
            try:
                fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                return block
            os.close(fd)
            os.kill(os.getpid(), signal.SIGKILL)
        return block

    return fn


@pytest.mark.parametrize("target", ["new", "existing"])
def test_a_killed_worker_still_finishes_with_correct_data(tmp_path, cluster_client, target):
    path = tmp_path / "out.h5"
    if target == "existing":
        existing_file(path)
    marker = tmp_path.parent / f"{tmp_path.name}-killed"
    expected = sample("f8", (120, 10))
    x = da.from_array(expected, chunks=(10, 10)).map_blocks(kill_once(str(marker)), dtype="f8")
    dask_tables.to_tables(x, path, "/x", filters=FILTERS["zlib+shuffle"])
    assert marker.exists(), "a worker was killed"
    assert_round_trip(path, "/x", expected)
    assert listing(tmp_path) == ["out.h5"]
    cluster_client.wait_for_workers(2, timeout=60)


# ---------------------------------------------------------------- overwrite and regions


def test_an_existing_node_is_replaced_only_with_overwrite(tmp_path):
    path = tmp_path / "out.h5"
    existing_file(path)
    before = snapshot(path)
    x = da.from_array(sample("i4", (20, 3)), chunks=(5, 3))
    ran = tmp_path.parent / f"{tmp_path.name}-ran"
    with pytest.raises(dask_tables.NodeExistsError, match=r"out\.h5: node /keep exists"):
        dask_tables.to_tables(x.map_blocks(touch(ran), dtype="i4"), path, "/keep")
    with pytest.raises(dask_tables.NodeExistsError, match="/group exists"):
        dask_tables.to_tables(x, path, "/group")
    assert snapshot(path) == before and not ran.exists()
    dask_tables.to_tables(x, path, "/keep", overwrite=True)
    assert_round_trip(path, "/keep", x.compute())
    np.testing.assert_array_equal(pytables_read(path, "/group/table"), records(100))
    with tables.open_file(path) as f:
        assert sorted(n._v_pathname for n in f.walk_nodes()) == before[1]


def touch(marker: Path):
    def fn(block):
        if block.size:  # not the meta that map_blocks computes while building the graph
            marker.touch()
        return block

    return fn


@pytest.mark.parametrize(
    "region",
    [
        (slice(10, 40),),  # aligned with the chunks: encoded
        (slice(13, 43), slice(2, 8)),  # unaligned: written through HDF5
        (slice(70, 100),),  # reaches the node's end
    ],
)
@pytest.mark.parametrize("filters", ["zlib+shuffle", "blosc2:zstd", "blosc:lz4"])
def test_region_writes_into_an_existing_array(tmp_path, region, filters):
    path = tmp_path / "out.h5"
    base = np.arange(1000.0).reshape(100, 10)
    with tables.open_file(path, "w") as f:
        f.create_carray("/", "x", obj=base, chunkshape=(10, 10), filters=FILTERS[filters])
        f.create_array("/", "other", obj=np.arange(5))
    target = base[region]
    new = -np.arange(target.size, dtype="f4").reshape(target.shape)  # f4 casts safely to f8
    dask_tables.to_tables(da.from_array(new, chunks=(10, 3)), path, "/x", region=region)
    expected = base.copy()
    expected[region] = new
    assert_round_trip(path, "/x", expected)
    np.testing.assert_array_equal(pytables_read(path, "/other"), np.arange(5))
    assert listing(tmp_path) == ["out.h5"]


def test_region_writes_into_a_table_and_a_big_endian_array(tmp_path):
    path = tmp_path / "out.h5"
    with tables.open_file(path, "w") as f:
        f.create_table("/", "t", obj=records(200), chunkshape=(32,), filters=FILTERS["zlib+shuffle"])
        f.create_carray("/", "b", obj=np.arange(50, dtype=">i4"), chunkshape=(8,))
    rows = records(64)
    rows["a"] += 1000
    dask_tables.to_tables(da.from_array(rows, chunks=32), path, "/t", region=(slice(64, 128),))
    expected = records(200)
    expected[64:128] = rows
    assert_round_trip(path, "/t", expected)
    dask_tables.to_tables(da.arange(16, dtype="i2", chunks=8) * -1, path, "/b", region=(slice(8, 24),))
    expected_b = np.arange(50, dtype=">i4")
    expected_b[8:24] = -np.arange(16)
    assert_round_trip(path, "/b", expected_b)


def test_region_of_a_table_with_members_of_both_byte_orders_is_written_through_hdf5(tmp_path):
    """h5py stores a record with a little- and a big-endian member; PyTables shows both native.

    A chunk encoded from PyTables' record would store the big-endian member
    byte-swapped: such a node is written through HDF5, which converts.
    """
    h5py = pytest.importorskip("h5py")
    path = tmp_path / "mixed.h5"
    mixed = np.dtype([("a", "<i4"), ("b", ">f8")])
    with h5py.File(path, "w") as f:
        f.create_dataset("t", data=np.zeros(40, mixed), chunks=(10,), compression="gzip")
    with tables.open_file(path) as f:
        assert f.root.t.byteorder == "mixed"
        rows = np.zeros(20, f.root.t.dtype)
    rows["a"], rows["b"] = np.arange(20) + 1, np.arange(20) * 0.5
    dask_tables.to_tables(da.from_array(rows, chunks=10), path, "/t", region=(slice(10, 30),))
    with h5py.File(path, "r") as f:
        back = f["t"][...]
    expected = np.zeros(40, mixed)
    expected["a"][10:30], expected["b"][10:30] = rows["a"], rows["b"]
    np.testing.assert_array_equal(back, expected)


@pytest.mark.parametrize(
    ("x", "region", "match"),
    [
        (da.ones((10, 10)), (slice(0, 20),), r"region .* has shape \(20, 10\), the array \(10, 10\)"),
        (da.ones((10, 10), dtype="c16"), (slice(0, 10),), "dtype complex128 does not fit"),
        (da.ones((10,)), (slice(0, 10), slice(0, 1), slice(0, 1)), "more axes"),
        (da.ones((5, 10)), (slice(0, 10, 2),), "step"),
    ],
)
def test_region_mismatch_raises_before_any_task(tmp_path, x, region, match):
    path = tmp_path / "out.h5"
    existing_file(path)
    before = snapshot(path)
    with pytest.raises(dask_tables.RegionMismatchError, match=match):
        dask_tables.to_tables(x, path, "/keep", region=region)
    assert snapshot(path) == before
    with pytest.raises(tables.NoSuchNodeError, match="/missing"):
        dask_tables.to_tables(x, path, "/missing", region=region)


# ---------------------------------------------------------------- bad inputs


def test_bad_inputs_raise_before_any_task_and_touch_nothing(tmp_path):
    path = tmp_path / "out.h5"
    existing_file(path)
    before = snapshot(path)
    ran = tmp_path.parent / f"{tmp_path.name}-ran"
    x = da.ones((10, 10), chunks=5).map_blocks(touch(ran), dtype="f8")
    cases = [
        (TypeError, "not list", lambda: dask_tables.to_tables([1, 2, 3], path, "/y")),
        (ValueError, "absolute", lambda: dask_tables.to_tables(x, path, "")),
        (ValueError, "empty name", lambda: dask_tables.to_tables(x, path, "/a//b")),
        (ValueError, "reserved", lambda: dask_tables.to_tables(x, path, "/_dask_tables_tmp_x")),
        (TypeError, "either a dict", lambda: dask_tables.to_tables({"/a": x}, path, "/a")),
        (TypeError, "give the node", lambda: dask_tables.to_tables(x, path)),
        (TypeError, "dtype <U3", lambda: dask_tables.to_tables(np.array(["abc"]), path, "/y")),
        (
            ValueError,
            "a structured array becomes a Table",
            lambda: dask_tables.to_tables(da.from_array(np.zeros((), "i4,f8")), path, "/y"),
        ),
        (ValueError, "is a CArray, not a group", lambda: dask_tables.to_tables(x, path, "/keep/y")),
        (
            tables.NoSuchNodeError,
            "createparents",
            lambda: dask_tables.to_tables(x, path, "/nogroup/y", createparents=False),
        ),
        (ValueError, "chunkshape", lambda: dask_tables.to_tables(x, path, "/y", chunkshape=(5,))),
        (ValueError, "cannot both", lambda: dask_tables.to_tables({"/a": x, "/a/b": x}, path)),
    ]
    for error, match, call in cases:
        with pytest.raises(error, match=match):
            call()
    assert snapshot(path) == before and not ran.exists()
    assert listing(tmp_path) == ["out.h5"]


def test_read_only_or_foreign_files_are_refused_before_any_task(tmp_path):
    ran = tmp_path.parent / f"{tmp_path.name}-ran"
    x = da.ones((10,), chunks=5).map_blocks(touch(ran), dtype="f8")
    path = tmp_path / "ro.h5"
    existing_file(path)
    before = snapshot(path)
    path.chmod(0o444)
    try:
        with pytest.raises(
            PermissionError, match=r"ro\.h5: the file is read-only \(asked to write node /y\)"
        ):
            dask_tables.to_tables(x, path, "/y")
    finally:
        path.chmod(0o644)
    assert snapshot(path) == before
    text = tmp_path / "text.h5"
    text.write_text("not hdf5")
    with pytest.raises(dask_tables.NotHDF5FileError, match=r"text\.h5"):
        dask_tables.to_tables(x, text, "/y")
    with pytest.raises(IsADirectoryError):
        dask_tables.to_tables(x, tmp_path, "/y")
    with pytest.raises(FileNotFoundError, match="no folder"):
        dask_tables.to_tables(x, tmp_path / "missing" / "out.h5", "/y")
    assert not ran.exists()
    assert text.read_text() == "not hdf5"


def test_a_file_open_for_reading_elsewhere_is_written_after_compute(tmp_path):
    """The target closes between the plan and the commit: no handle of ours stays open."""
    path = tmp_path / "out.h5"
    existing_file(path)
    x = dask_tables.from_tables(path, "/keep") * 2
    dask_tables.to_tables(x, path, "/double")
    np.testing.assert_array_equal(pytables_read(path, "/double"), np.arange(1000.0).reshape(100, 10) * 2)
    assert registry_is_empty()


def test_a_record_dtype_with_subarrays_round_trips_through_a_table(tmp_path):
    expected = records(257)
    path = tmp_path / "out.h5"
    dask_tables.to_tables(da.from_array(expected, chunks=64), path, "/t", filters=FILTERS["blosc2:zstd"])
    assert_round_trip(path, "/t", expected)
    assert pytables_read(path, "/t").dtype == RECORD


def test_a_process_that_died_holding_the_new_file_open_fails_the_write(tmp_path):
    """The marker a process leaves when it dies inside the write window stops the commit."""
    path = tmp_path / "out.h5"
    task = dask_tables.to_tables(da.ones((40, 10), chunks=(10, 10)), path, "/x", compute=False)
    token = task.key.removeprefix("to-tables-")
    work = tmp_path / f".out.h5.dask-tables-{token}"
    work.mkdir()
    (work / "writing").touch()  # what a process killed while writing leaves behind
    with pytest.raises(dask_tables.WriteInterruptedError, match=r"out\.h5: a process died"):
        task.compute(scheduler="threads")
    assert not path.exists()
    assert listing(tmp_path) == [work.name], "with compute=False a failed run leaves its work folder"


FULL_DISK = """
import hashlib, os, resource, signal, sys
import dask.array as da, numpy as np
import dask_tables
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG, like a full disk
target, new = sys.argv[1], sys.argv[2]
before = hashlib.sha256(open(target, "rb").read()).hexdigest()
resource.setrlimit(resource.RLIMIT_FSIZE, (os.path.getsize(target) + (1 << 20),) * 2)
x = da.random.default_rng(0).random((2000, 1000), chunks=(250, 1000))  # 16 MiB that does not compress
for path, node in ((target, "/big"), (new, "/big")):
    try:
        dask_tables.to_tables(x, path, node)
        print("written", path)
    except Exception as err:  # EFBIG surfaces as OSError, or as HDF5's error from write_chunk
        print("refused", type(err).__name__)
after = hashlib.sha256(open(target, "rb").read()).hexdigest()
print("unchanged" if after == before else "CHANGED")
print("new file absent" if not os.path.exists(new) else "NEW FILE LEFT")
print("leftovers", sorted(n for n in os.listdir(os.path.dirname(target)) if n.startswith(".")))
"""


def test_a_full_disk_while_staging_leaves_the_file_as_it_was(tmp_path):
    """RLIMIT_FSIZE makes every write past the limit fail (EFBIG), as a full disk would."""
    target = tmp_path / "target.h5"
    with tables.open_file(target, "w") as f:
        f.create_array("/", "kept", np.arange(100))
    done = run_python(
        FULL_DISK.replace("sys.argv[1], sys.argv[2]", f"{str(target)!r}, {str(tmp_path / 'new.h5')!r}")
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert all(line.startswith("refused") for line in lines[:2]), done.stdout
    assert lines[2:] == ["unchanged", "new file absent", "leftovers []"], done.stdout
    np.testing.assert_array_equal(pytables_read(target, "/kept"), np.arange(100))


# ---------------------------------------------------------------- found by review


def test_a_preparation_run_again_keeps_the_chunks_already_staged(tmp_path):
    """After a lost worker the scheduler may recompute the preparation: it must not empty the new file."""
    from dask_tables.write.arrays import _prepare

    path = tmp_path / "new.h5"
    delayed = dask_tables.to_tables(da.ones((4, 10), chunks=(2, 10)), path, "/x", compute=False)
    graph = dict(delayed.__dask_graph__())
    (prepare,) = [task for key, task in graph.items() if str(key).startswith("to-tables-prepare")]
    plan = prepare[1]
    _prepare(plan)
    with tables.open_file(plan.temp_file, "a") as f:
        f.root.x[0] = np.arange(10.0)
    _prepare(plan)  # as after a lost worker
    with tables.open_file(plan.temp_file) as f:
        np.testing.assert_array_equal(f.root.x[0], np.arange(10.0))
    dask_tables.write.engine.remove_work(plan.job.work)


def test_record_fields_are_matched_by_name_not_position(tmp_path):
    rows = np.zeros(3, dtype=[("a", "f8"), ("b", "f8"), ("c", "i4")])
    rows["a"], rows["b"] = 1.0, 2.0
    reordered = rows[["b", "a"]]  # fields b, a at offsets 8, 0
    dask_tables.to_tables(da.from_array(reordered, chunks=3), tmp_path / "t.h5", "/t")
    back = pytables_read(tmp_path / "t.h5", "/t")
    np.testing.assert_array_equal(back["a"], 1.0)
    np.testing.assert_array_equal(back["b"], 2.0)


def test_a_dict_whose_commit_fails_changes_no_existing_node(tmp_path):
    path = tmp_path / "f.h5"
    with tables.open_file(path, "w") as f:
        f.create_array("/", "a", np.full(4, 111))
    delayed = dask_tables.to_tables(
        {"/a": da.zeros(4, chunks=2), "/g/x": da.zeros(4, chunks=2)}, path, overwrite=True, compute=False
    )
    with tables.open_file(path, "a") as f:  # another writer, between the plan and the commit
        f.create_array("/", "g", np.arange(3))
    with pytest.raises(ValueError, match=r"f\.h5: /g is a Array, not a group"):
        delayed.compute()
    np.testing.assert_array_equal(pytables_read(path, "/a"), np.full(4, 111))


def test_overwrite_never_replaces_a_group(tmp_path):
    path = tmp_path / "f.h5"
    with tables.open_file(path, "w") as f:
        f.create_array("/results/run1", "data", np.arange(3), createparents=True)
    with pytest.raises(dask_tables.NodeExistsError, match=r"/results is a group"):
        dask_tables.to_tables(da.zeros(3, chunks=3), path, "/results", overwrite=True)
    np.testing.assert_array_equal(pytables_read(path, "/results/run1/data"), np.arange(3))


def test_writers_of_one_file_in_several_threads(tmp_path):
    path = tmp_path / "f.h5"
    with tables.open_file(path, "w") as f:
        f.create_array("/", "keep", np.arange(5))
    errors = []

    def write(thread: int) -> None:
        for i in range(6):
            try:
                dask_tables.to_tables(da.full(40, thread * 100 + i, chunks=10), path, f"/t{thread}_{i}")
            except Exception as err:
                errors.append(err)

    threads = [threading.Thread(target=write, args=(t,)) for t in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert errors == []
    with tables.open_file(path) as f:
        for thread in range(3):
            for i in range(6):
                np.testing.assert_array_equal(f.get_node(f"/t{thread}_{i}")[:], thread * 100 + i)
        np.testing.assert_array_equal(f.root.keep[:], np.arange(5))
    assert registry_is_empty()


def test_a_file_this_process_holds_open_read_only_is_refused_before_any_task(tmp_path):
    path = tmp_path / "f.h5"
    with tables.open_file(path, "w") as f:
        f.create_array("/", "a", np.arange(3))
    with tables.open_file(path) as held:
        with pytest.raises(ValueError, match=r"f\.h5: the file is open read-only in this process"):
            dask_tables.to_tables(da.zeros(3, chunks=3), path, "/b")
        assert held.root.a[0] == 0


def test_least_significant_digit_quantizes_as_pytables_does(tmp_path):
    values = np.random.default_rng(0).random(5000) * 100
    filters = tables.Filters(complevel=1, complib="zlib", least_significant_digit=2)
    dask_tables.to_tables(da.from_array(values, chunks=1000), tmp_path / "ours.h5", "/x", filters=filters)
    with tables.open_file(tmp_path / "theirs.h5", "w") as f:
        f.create_carray("/", "x", obj=values, filters=filters)
    np.testing.assert_array_equal(
        pytables_read(tmp_path / "ours.h5", "/x"), pytables_read(tmp_path / "theirs.h5", "/x")
    )
    assert not np.array_equal(pytables_read(tmp_path / "ours.h5", "/x"), values)


@pytest.mark.parametrize("name", ["/_i_x", "/x\x00y"])
def test_reserved_and_nul_names_are_refused_before_any_task(tmp_path, name):
    with pytest.raises(ValueError, match=r"reserved|NUL"):
        dask_tables.to_tables(da.zeros(3, chunks=3), tmp_path / "f.h5", name)
    assert not list(tmp_path.iterdir())


def test_a_long_file_name_leaves_room_for_the_work_folder(tmp_path):
    path = tmp_path / ("n" * 240 + ".h5")
    dask_tables.to_tables(da.arange(10, chunks=5), path, "/x")
    dask_tables.to_tables(da.arange(10, chunks=5), path, "/y")
    np.testing.assert_array_equal(pytables_read(path, "/y"), np.arange(10))


def test_irregular_blocks_are_rechunked_rather_than_written_in_tiny_chunks(tmp_path):
    x = da.ones(200_006, chunks=((50_000, 50_000, 100_001, 5),))
    with pytest.warns(dask_tables.RechunkWarning):
        dask_tables.to_tables(x, tmp_path / "f.h5", "/x")
    with tables.open_file(tmp_path / "f.h5") as f:
        assert f.root.x.chunkshape[0] >= 1000
        np.testing.assert_array_equal(f.root.x[:], 1.0)


def test_a_preparation_that_runs_after_a_failed_call_does_not_make_the_work_folder_again(tmp_path):
    """With compute=True the caller owns the work folder: a late preparation task finds it gone and stops."""
    import dataclasses

    from dask_tables.write.arrays import _prepare

    delayed = dask_tables.to_tables(da.ones(4, chunks=2), tmp_path / "new.h5", "/x", compute=False)
    (prepare,) = [
        t for k, t in dict(delayed.__dask_graph__()).items() if str(k).startswith("to-tables-prepare")
    ]
    plan = prepare[1]
    abandoned = dataclasses.replace(plan, job=dataclasses.replace(plan.job, made_by_caller=True))
    with pytest.raises(FileNotFoundError, match="the write was abandoned"):
        _prepare(abandoned)
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- what a new user hit (issue 15)


@pytest.mark.parametrize("scheduler", ["sync", "threads", "distributed"])
def test_two_lazy_writes_of_one_new_file_keep_both_nodes(tmp_path, scheduler, request):
    path = tmp_path / "two.h5"
    a = dask_tables.to_tables(da.arange(10.0, chunks=5), path, "/a", compute=False)
    b = dask_tables.to_tables(
        -da.arange(10.0, chunks=5),
        path,
        "/g/b",
        compute=False,
        filters=FILTERS["zlib+shuffle"],
        chunkshape=(5,),
    )
    if scheduler == "distributed":
        request.getfixturevalue("cluster_client")
        dask.compute(a, b)
    else:
        dask.compute(a, b, scheduler=scheduler)
    np.testing.assert_array_equal(pytables_read(path, "/a"), np.arange(10.0))
    np.testing.assert_array_equal(pytables_read(path, "/g/b"), -np.arange(10.0))
    with tables.open_file(path) as f:  # the node added to the file that appeared keeps its storage
        assert f.root.g.b.chunkshape == (5,)
        assert f.root.g.b.filters.complib == "zlib" and f.root.g.b.filters.shuffle
    assert listing(tmp_path) == ["two.h5"]


def test_two_lazy_writes_of_one_new_node_keep_the_first_and_raise(tmp_path):
    path = tmp_path / "two.h5"
    a = dask_tables.to_tables(da.ones(10, chunks=5), path, "/a", compute=False)
    b = dask_tables.to_tables(da.zeros(10, chunks=5), path, "/a", compute=False)
    with pytest.raises(dask_tables.NodeExistsError, match=r"two\.h5.*/a"):
        dask.compute(a, b, scheduler="sync")
    kept = pytables_read(path, "/a")  # whichever final step ran first, whole
    assert kept.tolist() in ([1.0] * 10, [0.0] * 10)
    assert listing(tmp_path) == ["two.h5"]


def test_a_second_write_from_a_graph_that_read_the_file_fails_up_front_and_says_what_to_do(tmp_path):
    path = tmp_path / "f.h5"
    with tables.open_file(path, "w") as f:
        f.create_array("/", "x", np.arange(10.0))
    x = dask_tables.from_tables(path, "/x")
    dask_tables.to_tables(x * 2, path, "/double")
    before = snapshot(path)
    with pytest.raises(dask_tables.FileChangedError, match=r"f\.h5: node /x: .*to_tables\(\{node: array"):
        dask_tables.to_tables(x * 3, path, "/triple")
    assert snapshot(path) == before and listing(tmp_path) == ["f.h5"]
    # inline_array=True hides the source from the plan: the compute says the same
    y = dask_tables.from_tables(path, "/x", inline_array=True)
    dask_tables.to_tables(y * 2, path, "/double2")
    with pytest.raises(dask_tables.FileChangedError, match=r"to_tables\(\{node: array"):
        dask_tables.to_tables(y * 3, path, "/triple")
    # what the message advises: both results in one call
    z = dask_tables.from_tables(path, "/x")
    dask_tables.to_tables({"/a": z * 2, "/b": z * 3}, path)
    np.testing.assert_array_equal(pytables_read(path, "/b"), np.arange(10.0) * 3)


@pytest.mark.parametrize("spelling", ["relative", "dot"])
def test_a_file_open_read_only_under_another_spelling_is_refused_before_any_task(
    tmp_path, monkeypatch, spelling
):
    monkeypatch.chdir(tmp_path)
    with tables.open_file("rec.h5", "w") as f:
        f.create_array("/", "a", np.arange(3))
    with tables.open_file("rec.h5" if spelling == "relative" else "./rec.h5") as held:
        with pytest.raises(ValueError, match=r"rec\.h5: the file is open read-only in this process"):
            dask_tables.to_tables(da.ones(3, chunks=3), str(tmp_path / "rec.h5"), "/x")
        with pytest.raises(ValueError, match=r"the file is open read-only in this process"):
            dask_tables.to_tables(da.ones(3, chunks=3), "rec.h5", "/x")
        assert held.root.a[0] == 0


def test_a_file_this_process_holds_open_for_writing_is_named_in_the_change_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "w.h5"
    with tables.open_file(path, "w") as f:
        f.create_array("/", "x", np.arange(10.0))
    with tables.open_file("w.h5", "a") as held:  # PyTables refuses a second open under the same name
        held.create_array("/", "z", np.arange(5.0))
        with pytest.raises(
            dask_tables.FileChangedError, match=r"holds the file open for writing \(mode 'a'\)"
        ):
            dask_tables.from_tables(path, "/x").sum().compute()  # the build or the compute raises
    assert float(dask_tables.from_tables(path, "/x").sum().compute()) == 45.0


def test_an_int_chunkshape_applies_to_every_axis(tmp_path):
    dask_tables.to_tables(da.ones((10, 12), chunks=(5, 10)), tmp_path / "f.h5", "/x", chunkshape=5)
    with tables.open_file(tmp_path / "f.h5") as f:
        assert f.root.x.chunkshape == (5, 5)
        np.testing.assert_array_equal(f.root.x[:], 1.0)
    with pytest.raises(ValueError, match=r"node /y: chunkshape 'ab' is not a sequence of ints"):
        dask_tables.to_tables(da.ones((10, 12)), tmp_path / "f.h5", "/y", chunkshape="ab")
    with pytest.raises(ValueError, match=r"node /y: chunkshape \(2, 2, 2\) does not fit shape \(10, 12\)"):
        dask_tables.to_tables(da.ones((10, 12)), tmp_path / "f.h5", "/y", chunkshape=(2, 2, 2))


def test_overwrite_keeps_the_replaced_nodes_filters_chunkshape_and_kind_unless_given(tmp_path):
    path = tmp_path / "f.h5"
    with tables.open_file(path, "w") as f:
        f.create_earray(
            "/",
            "e",
            obj=np.arange(100.0),
            chunkshape=(10,),
            filters=tables.Filters(complevel=1, complib="zlib", shuffle=True),
        )
    dask_tables.to_tables(da.arange(200.0, chunks=50), path, "/e", overwrite=True)
    with tables.open_file(path) as f:
        e = f.root.e
        assert isinstance(e, tables.EArray) and e.chunkshape == (10,)
        assert (e.filters.complib, e.filters.complevel, e.filters.shuffle) == ("zlib", 1, True)
        np.testing.assert_array_equal(e[:], np.arange(200.0))
    dask_tables.to_tables(
        da.arange(7.0, chunks=7),
        path,
        "/e",
        overwrite=True,
        filters=tables.Filters(),
        chunkshape=(7,),
        extendable=False,
    )
    with tables.open_file(path) as f:
        e = f.root.e
        assert type(e) is tables.CArray and e.chunkshape == (7,) and e.filters.complevel == 0


@pytest.mark.parametrize(
    "dtype, hint",
    [("M8[s]", "datetimes as int64"), ("m8[ms]", "durations as int64"), ("U3", "fixed-size bytes")],
)
def test_an_unstorable_dtype_says_what_to_store_instead(tmp_path, dtype, hint):
    with pytest.raises(TypeError, match=hint):
        dask_tables.to_tables(da.from_array(np.zeros(3, dtype)), tmp_path / "f.h5", "/x")
    assert listing(tmp_path) == []


@pytest.mark.parametrize("target", ["new", "existing"])
def test_a_0d_array_becomes_a_scalar_array_that_from_tables_reads(tmp_path, target):
    path = tmp_path / "f.h5"
    if target == "existing":
        existing_file(path)
    dask_tables.to_tables(da.from_array(np.array(3.5)), path, "/s")
    dask_tables.to_tables({"/g/b": da.from_array(np.array(7, ">i4")), "/a": da.arange(4, chunks=2)}, path)
    with tables.open_file(path) as f:
        assert type(f.root.s) is tables.Array and f.root.s.shape == () and f.root.s.read() == 3.5
        assert f.root.g.b.read() == 7 and f.root.g.b.byteorder == "big"
    assert float(dask_tables.from_tables(path, "/s").compute()) == 3.5
    dask_tables.to_tables(da.from_array(np.array(-1.25)), path, "/s", overwrite=True)
    assert pytables_read(path, "/s") == -1.25
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.h5"]


def test_enumerated_columns_read_by_from_tables_are_written_back_as_enums(tmp_path):
    colors = tables.Enum(["red", "green", "blue"])

    class Row(tables.IsDescription):
        kind = tables.EnumCol(colors, "green", base="uint8", pos=0)

        class pos(tables.IsDescription):
            _v_pos = 1
            x = tables.Float64Col(pos=0)
            kind = tables.EnumCol(colors, "blue", base="int16", pos=1)

        v = tables.Float32Col(pos=2)

    source = tmp_path / "in.h5"
    with tables.open_file(source, "w") as f:
        t = f.create_table("/", "t", Row, chunkshape=(8,))
        t.append([(i % 3, (i * 0.5, (i + 1) % 3), -i) for i in range(50)])
    x = dask_tables.from_tables(source, "/t", chunks=16)
    dask_tables.to_tables({"/t": x, "/half": x[::2]}, tmp_path / "out.h5")
    with tables.open_file(source) as f, tables.open_file(tmp_path / "out.h5") as g:
        for node, rows in (("/t", slice(None)), ("/half", slice(None, None, 2))):
            written = g.get_node(node)
            for column in ("kind", "pos/kind"):
                assert written.get_enum(column) == f.root.t.get_enum(column)
                assert written.coldescrs[column].dflt == f.root.t.coldescrs[column].dflt
            np.testing.assert_array_equal(written.read(), f.root.t.read()[rows])
    # plain integers stay plain integers
    dask_tables.to_tables(dask_tables.from_tables(source, "/t", field="kind"), tmp_path / "out.h5", "/k")
    with tables.open_file(tmp_path / "out.h5") as g:
        assert type(g.root.k) is tables.CArray and g.root.k.dtype == np.uint8


def test_a_non_hdf5_file_that_appears_at_a_new_files_path_is_left_alone(tmp_path):
    path = tmp_path / "new.h5"
    lazy = dask_tables.to_tables(da.ones(10, chunks=5), path, "/a", compute=False)
    path.write_text("someone else's notes\n")
    with pytest.raises(FileExistsError, match=r"new\.h5: something that is not an HDF5 file appeared"):
        dask.compute(lazy, scheduler="sync")
    assert path.read_text() == "someone else's notes\n"
    assert listing(tmp_path) == ["new.h5"]


def test_a_relative_node_name_is_taken_from_the_root_as_pandas_takes_keys(tmp_path):
    dask_tables.to_tables(da.arange(10.0, chunks=5), tmp_path / "f.h5", "g/x")
    np.testing.assert_array_equal(pytables_read(tmp_path / "f.h5", "/g/x"), np.arange(10.0))
