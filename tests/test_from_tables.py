"""from_tables: node kinds, chunks, names, selections, files changing underneath."""

from __future__ import annotations

import os
import pickle
import time

import dask
import dask.array as da
import numpy as np
import pytest
import tables
from helpers import held_open_for_writing, pytables_read, records, registry_is_empty

import dask_tables
import dask_tables.cli
import dask_tables.info
from dask_tables import CorruptChunkError, FileChangedError, NotHDF5FileError, TablesSource, from_tables

READABLE_NODES = [
    "/contiguous",
    "/python_list",
    "/scalar",
    "/carray",
    "/big_endian",
    "/cells",
    "/empty_earray",
    "/earray",
    "/group/table",
    "/link",
]


@pytest.mark.parametrize("node", READABLE_NODES)
def test_every_array_like_node_reads_as_pytables_reads_it(sample_file, node):
    x = from_tables(sample_file, node)
    assert isinstance(x, da.Array)
    expected = pytables_read(sample_file, node)
    assert x.shape == expected.shape
    assert x.dtype == expected.dtype
    assert all(isinstance(n, int) for n in x.shape)
    result = x.compute(scheduler="threads")
    assert result.dtype == expected.dtype
    np.testing.assert_array_equal(result, expected)
    assert registry_is_empty()


@pytest.mark.parametrize("field", ["a", "pos", "pos/x", "pos/y", "m", "s"])
def test_table_field_gives_one_column(sample_file, field):
    x = from_tables(sample_file, "/group/table", chunks=100, field=field)
    expected = pytables_read(sample_file, "/group/table", field=field)
    assert (x.shape, x.dtype) == (expected.shape, expected.dtype)
    np.testing.assert_array_equal(x.compute(scheduler="threads"), expected)
    np.testing.assert_array_equal(x[5:17].compute(), expected[5:17])


def test_multidimensional_column_has_its_cell_axes(sample_file):
    x = from_tables(sample_file, "/group/table", field="m")
    assert x.shape == (1000, 2, 3)
    assert x.chunks[1:] == ((2,), (3,))
    np.testing.assert_array_equal(x[10:20, 1, ::-1].compute(), records(1000)["m"][10:20, 1, ::-1])


def test_mean_of_a_carray_matches_numpy(sample_file):
    x = from_tables(sample_file, "/carray", chunks=(20, 50))
    assert x.numblocks == (5, 2)
    assert float(x.mean().compute(scheduler="threads")) == pytest.approx(np.arange(10_000).mean())
    np.testing.assert_array_equal(x.sum(axis=0).compute(), np.arange(10_000).reshape(100, 100).sum(axis=0))


def aligned(blocks, chunk):
    """All block boundaries but the array's end fall on multiples of ``chunk``."""
    edges = np.cumsum(blocks)[:-1]
    return all(edge % chunk == 0 for edge in edges)


@pytest.mark.parametrize(
    ("shape", "chunkshape", "chunk_size"),
    [((1000, 1000), (7, 30), "64KiB"), ((200_000,), (1000,), "100KiB"), ((50, 60, 70), (3, 5, 7), "32KiB")],
)
def test_auto_chunks_are_multiples_of_the_hdf5_chunkshape(tmp_path, shape, chunkshape, chunk_size):
    path = tmp_path / "auto.h5"
    with tables.open_file(path, "w") as f:
        f.create_carray("/", "x", atom=tables.Float64Atom(), shape=shape, chunkshape=chunkshape)
    with dask.config.set({"array.chunk-size": chunk_size}):
        x = from_tables(path, "/x")
        limit = dask.utils.parse_bytes(chunk_size)
    assert x.npartitions > 1
    for blocks, chunk in zip(x.chunks, chunkshape, strict=True):
        assert aligned(blocks, chunk), (blocks, chunk)
    block_bytes = np.prod([max(b) for b in x.chunks]) * 8
    assert block_bytes <= limit
    assert block_bytes >= limit / 8, "blocks near the configured chunk size, not tiny"


@pytest.mark.parametrize(
    ("chunks", "expected"),
    [
        (10, ((10,) * 10, (10,) * 10)),
        ((50, 25), ((50, 50), (25,) * 4)),
        (-1, ((100,), (100,))),
        ({0: 30, 1: -1}, ((30, 30, 30, 10), (100,))),
        (((60, 40), (100,)), ((60, 40), (100,))),
    ],
)
def test_explicit_chunks_follow_dask(sample_file, chunks, expected):
    x = from_tables(sample_file, "/carray", chunks=chunks)
    assert x.chunks == expected
    np.testing.assert_array_equal(x.compute(), pytables_read(sample_file, "/carray"))


def test_auto_per_axis(sample_file):
    with dask.config.set({"array.chunk-size": "8KiB"}):
        x = from_tables(sample_file, "/carray", chunks=("auto", -1))
    assert x.chunks[1] == (100,)
    assert aligned(x.chunks[0], 7)


def test_name_is_deterministic_and_follows_the_file(sample_file):
    a = from_tables(sample_file, "/carray")
    b = from_tables(sample_file, "/carray")
    assert a.name == b.name
    assert a.name.startswith("from-tables-")
    assert from_tables(sample_file, "/carray", chunks=10).name != a.name
    assert (
        from_tables(sample_file, "/group/table", field="a").name
        != from_tables(sample_file, "/group/table", field="pos/x").name
    )
    with tables.open_file(sample_file, "a") as f:
        f.create_array("/", "extra", np.arange(3))
    assert from_tables(sample_file, "/carray").name != a.name
    assert from_tables(sample_file, "/carray", name="mine").name == "mine"


def count_opens(monkeypatch):
    """Count files PyTables opens (a pass-through spy on File.__init__)."""
    opened = []
    original = tables.File.__init__

    def counting_init(self, filename, *args, **kwargs):
        opened.append(os.fspath(filename))
        original(self, filename, *args, **kwargs)

    monkeypatch.setattr(tables.File, "__init__", counting_init)
    return opened


def test_building_the_graph_opens_the_file_once(sample_file, monkeypatch):
    opened = count_opens(monkeypatch)
    x = from_tables(sample_file, "/carray", chunks=(10, 100))
    assert opened == [str(sample_file)]
    x[:3].compute(scheduler="synchronous")
    assert len(opened) == 2, "x[:3] is one block: one open"
    assert registry_is_empty()


@pytest.mark.parametrize(
    ("direct", "error"), [(True, CorruptChunkError), (False, dask_tables.NotHDF5FileError)]
)
def test_a_slice_reads_only_what_it_needs(tmp_path, direct, error):
    """Corrupt the second HDF5 chunk: x[:10] still reads, x[:] fails."""
    path = tmp_path / "corrupt.h5"
    with tables.open_file(path, "w") as f:
        arr = f.create_carray(
            "/",
            "x",
            obj=np.random.default_rng(0).random(2000),
            chunkshape=(1000,),
            filters=tables.Filters(complevel=1, complib="zlib"),
        )
        second = arr.chunk_info((1000,))
    with open(path, "r+b") as raw:
        raw.seek(second.offset)
        raw.write(b"\xff" * second.size)
    x = from_tables(path, "/x", chunks=2000, direct=direct)
    assert x.numblocks == (1,)
    expected = pytables_read_first_rows(path, 10)
    np.testing.assert_array_equal(x[:10].compute(scheduler="threads"), expected)
    with pytest.raises(error, match=r"corrupt\.h5: node /x"):
        x.compute(scheduler="threads")
    assert registry_is_empty()


def pytables_read_first_rows(path, n):
    with tables.open_file(path) as f:
        return f.root.x[:n]


SELECTIONS = [
    (slice(None, 10),),
    (slice(95, None), slice(None, None, 7)),
    (slice(None, None, -3), 4),
    (-1,),
    (Ellipsis, 99),
    (slice(10, 80, 9), slice(90, 5, -11)),
    ([3, 1, 60, 99], slice(None)),
]


@pytest.mark.parametrize("key", SELECTIONS)
def test_selections_equal_pytables(sample_file, key):
    x = from_tables(sample_file, "/carray", chunks=(30, 40))
    expected = pytables_read(sample_file, "/carray")[key]
    np.testing.assert_array_equal(x[key].compute(scheduler="threads"), expected)


def test_source_indexing_with_integer_arrays_and_newaxis(sample_file):
    source = dask_tables.TablesSource.open(sample_file, "/carray")
    full = pytables_read(sample_file, "/carray")
    for key in [(np.array([5, -1, 7]), [0, 2, 2]), (None, 3, slice(None, None, -1)), (full[:, 0] > 5000,)]:
        np.testing.assert_array_equal(source[key], full[key])
    with pytest.raises(IndexError):
        source[100]


@pytest.mark.parametrize("scheduler", ["threads", "synchronous", "processes"])
def test_every_local_scheduler(sample_file, scheduler):
    x = from_tables(sample_file, "/earray", chunks=(16, 5))
    y = from_tables(sample_file, "/group/table", field="pos/x", chunks=128)
    mean_x, sum_y = dask.compute(x.mean(), y.sum(), scheduler=scheduler)
    assert float(mean_x) == pytest.approx(np.arange(250).mean())
    assert float(sum_y) == pytest.approx(records(1000)["pos"]["x"].sum())
    assert registry_is_empty()
    with tables.open_file(sample_file, "w"):
        pass  # no handle left open: the file can be truncated at once


def test_the_graph_pickles_with_plain_pickle(sample_file):
    x = from_tables(sample_file, "/carray", chunks=25)
    graph = dict(x.__dask_graph__())
    restored = pickle.loads(pickle.dumps(graph))
    assert restored.keys() == graph.keys()
    source = dask_tables.TablesSource.open(sample_file, "/carray")
    clone = pickle.loads(pickle.dumps(source))
    assert clone == source
    np.testing.assert_array_equal(clone[3:5], source[3:5])


def test_distributed_local_cluster_with_processes(sample_file):
    distributed = pytest.importorskip("distributed")
    x = from_tables(sample_file, "/carray", chunks=(10, 100))
    t = from_tables(sample_file, "/group/table", field="a", chunks=100)
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=2, processes=True, dashboard_address=":0"
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        mean, total = client.compute([x.mean(), t.sum()], sync=True)
        assert float(mean) == pytest.approx(np.arange(10_000).mean())
        assert int(total) == int(np.arange(1000).sum())
        open_in_workers = client.run(lambda: len(tables.file._open_files))
        assert set(open_in_workers.values()) == {0}
    with tables.open_file(sample_file, "w"):
        pass


# ---------------------------------------------------------------- files changing


def rewrite_in_place(path):
    with tables.open_file(path, "a") as f:
        f.root.carray[0, 0] = -1.0


def truncate(path):
    with open(path, "r+b") as raw:
        raw.truncate(os.path.getsize(path) // 2)


def append_rows(path):
    with tables.open_file(path, "a") as f:
        f.root.earray.append(np.ones((3, 5), "f4"))


def replace_file(path):
    tmp = str(path) + ".new"
    with tables.open_file(tmp, "w") as f:
        f.create_carray("/", "carray", obj=np.zeros((100, 100)))
        f.create_earray("/", "earray", obj=np.zeros((50, 5), "f4"))
    os.replace(tmp, path)


def delete(path):
    os.remove(path)


def remove_node(path):
    with tables.open_file(path, "a") as f:
        f.remove_node("/carray")
        f.remove_node("/earray")


@pytest.mark.parametrize(
    "change", [rewrite_in_place, truncate, append_rows, replace_file, delete, remove_node]
)
@pytest.mark.parametrize("node", ["/carray", "/earray"])
def test_a_changed_file_raises_instead_of_returning_stale_data(sample_file, change, node):
    x = from_tables(sample_file, node)
    # File times tick with the kernel's coarse clock (a few ms): a same-size
    # rewrite within one tick of building is invisible to os.stat (documented).
    time.sleep(0.05)
    change(sample_file)
    with pytest.raises(FileChangedError) as err:
        x.sum().compute(scheduler="threads")
    assert str(sample_file) in str(err.value)
    assert node in str(err.value)
    assert registry_is_empty()


def test_rebuilding_after_a_change_reads_the_new_data(sample_file):
    x = from_tables(sample_file, "/earray")
    append_rows(sample_file)
    y = from_tables(sample_file, "/earray")
    assert y.shape == (53, 5) and y.name != x.name
    np.testing.assert_array_equal(y.compute(), pytables_read(sample_file, "/earray"))


def test_change_between_tasks_of_one_compute(sample_file):
    """A task that starts after the file changed raises, even if earlier tasks read."""
    x = from_tables(sample_file, "/carray", chunks=(10, 100))
    blocks = [x.blocks[i] for i in range(x.numblocks[0])]
    first = blocks[0].compute()
    time.sleep(0.05)  # see test_a_changed_file_raises_instead_of_returning_stale_data
    rewrite_in_place(sample_file)
    np.testing.assert_array_equal(first, np.arange(1000.0).reshape(10, 100))
    with pytest.raises(FileChangedError):
        blocks[1].compute()


def test_file_changed_error_pickles(sample_file):
    err = FileChangedError(str(sample_file), "/x", "modified")
    clone = pickle.loads(pickle.dumps(err))
    assert (clone.path, clone.node, str(clone)) == (err.path, err.node, str(err))


# ---------------------------------------------------------------- many files


def write_parts(tmp_path, sizes, dtype="f8", width=4):
    paths = []
    for i, n in enumerate(sizes):
        path = tmp_path / f"part-{i:02d}.h5"
        with tables.open_file(path, "w") as f:
            f.create_earray("/", "x", obj=np.full((n, width), i, dtype=dtype), chunkshape=(5, width))
        paths.append(path)
    return paths


def test_a_list_of_files_concatenates_along_axis_0(tmp_path):
    paths = write_parts(tmp_path, [7, 0, 12, 3])
    x = from_tables([paths[2], paths[0], paths[1], paths[3]], "/x")
    assert x.shape == (22, 4)
    expected = np.concatenate([np.full((n, 4), i, "f8") for i, n in [(2, 12), (0, 7), (1, 0), (3, 3)]])
    np.testing.assert_array_equal(x.compute(scheduler="threads"), expected)


def test_a_glob_reads_its_files_in_sorted_order(tmp_path, monkeypatch):
    write_parts(tmp_path, [3] * 12)
    opened = count_opens(monkeypatch)
    x = from_tables(str(tmp_path / "part-*.h5"), "/x")
    assert len(opened) == 12 and len(set(opened)) == 12, "each file opened once to build"
    assert registry_is_empty()
    np.testing.assert_array_equal(x[:, 0].compute(), np.repeat(np.arange(12.0), 3))


@pytest.mark.parametrize(("dtype", "width"), [("f4", 4), ("f8", 5)])
def test_files_that_do_not_concatenate_name_the_culprit(tmp_path, dtype, width):
    good = write_parts(tmp_path, [3, 3])
    odd = tmp_path / "odd.h5"
    with tables.open_file(odd, "w") as f:
        f.create_earray("/", "x", obj=np.zeros((2, width), dtype))
    with pytest.raises(ValueError, match=r"odd\.h5"):
        from_tables([*good, odd], "/x")


def test_an_empty_glob_raises(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nothing-\*\.h5.*/x"):
        from_tables(str(tmp_path / "nothing-*.h5"), "/x")
    with pytest.raises(ValueError, match="the list of paths is empty"):  # as dd.read_hdf([])
        from_tables([], "/x")


# ---------------------------------------------------------------- bad input


def test_bad_input_raises_specific_errors_naming_path_and_node(sample_file, tmp_path):
    missing = tmp_path / "missing.h5"
    not_hdf5 = tmp_path / "text.h5"
    not_hdf5.write_text("not hdf5\n" * 100)
    cases = [
        (FileNotFoundError, missing, "/carray", {}),
        (IsADirectoryError, tmp_path, "/carray", {}),
        (NotHDF5FileError, not_hdf5, "/carray", {}),
        (tables.NoSuchNodeError, sample_file, "/nope", {}),
        (TypeError, sample_file, "/group", {}),
        (TypeError, sample_file, "/vlarray", {}),
        (ValueError, sample_file, "/group/table", {"field": "nope"}),
        (ValueError, sample_file, "/carray", {"field": "a"}),
        (ValueError, sample_file, "/carray", {"chunks": (10,)}),
        (ValueError, sample_file, "/carray", {"chunks": ((50, 40), (100,))}),
        (ValueError, sample_file, "/carray", {"chunks": 0}),
        (ValueError, sample_file, "/carray", {"chunks": "lots"}),
    ]
    for error, path, node, kwargs in cases:
        with pytest.raises(error) as info:
            from_tables(path, node, **kwargs)
        message = str(info.value)
        assert str(path) in message, (error, message)
        assert node in message, (error, message)
        assert registry_is_empty()
    for node, kind in [("/group", "Group"), ("/vlarray", "VLArray")]:
        with pytest.raises(TypeError, match=kind):
            from_tables(sample_file, node)
    assert isinstance(tables.NoSuchNodeError("x"), LookupError)


def test_unimplemented_node_is_a_type_error(tmp_path):
    """A dataset PyTables cannot map (here: a 2-D variable-length string) reads as UnImplemented."""
    h5py = pytest.importorskip("h5py")
    path = tmp_path / "foreign.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset(
            "vlen", data=np.array([["a", "bc"], ["d", "e"]], dtype=object), dtype=h5py.string_dtype()
        )
    with tables.open_file(path) as f:
        kind = type(f.root.vlen).__name__
    with pytest.raises(TypeError, match=kind):
        from_tables(path, "/vlen")


def test_a_slice_of_many_files_opens_only_the_files_it_needs(tmp_path, monkeypatch):
    paths = write_parts(tmp_path, [30] * 10)
    x = from_tables(str(tmp_path / "part-*.h5"), "/x", chunks=(10, 4))
    assert x.numblocks == (30, 1)
    opened = count_opens(monkeypatch)
    np.testing.assert_array_equal(x[:10].compute(scheduler="synchronous"), np.zeros((10, 4)))
    assert opened == [str(paths[0])]
    opened.clear()
    np.testing.assert_array_equal(x[295:, 1].compute(scheduler="synchronous"), np.full(5, 9.0))
    assert opened == [str(paths[9])]


def test_a_selection_across_files_equals_numpy(tmp_path):
    write_parts(tmp_path, [7, 0, 12, 3, 9])
    x = from_tables(str(tmp_path / "part-*.h5"), "/x", chunks=(4, 2))
    full = np.concatenate([np.full((n, 4), i, "f8") for i, n in enumerate([7, 0, 12, 3, 9])])
    for key in [slice(None), slice(5, 25, 3), slice(None, None, -4), ([0, 30, 7, 20],), (slice(6, 9), 3)]:
        np.testing.assert_array_equal(x[key].compute(scheduler="threads"), full[key])
    assert all(b > 0 for b in x.chunks[0]), "no empty blocks for empty files"


def test_auto_chunks_never_split_an_hdf5_chunk(tmp_path):
    path = tmp_path / "bigchunks.h5"
    with tables.open_file(path, "w") as f:
        f.create_carray("/", "x", atom=tables.Float64Atom(), shape=(4000, 4000), chunkshape=(1000, 1000))
    with dask.config.set({"array.chunk-size": "4MiB"}):
        x = from_tables(path, "/x")
        y = from_tables(path, "/x", chunks=("auto", 500))
    assert x.chunks == ((1000,) * 4, (1000,) * 4)
    assert y.chunks[0] == (1000,) * 4 and y.chunks[1] == (500,) * 8


@pytest.mark.parametrize("chunks", [-5, (-5, 10), {0: -2}, 0, (10, 0)])
def test_block_sizes_that_are_not_positive_name_path_node_and_chunks(sample_file, chunks):
    with pytest.raises(ValueError) as info:
        from_tables(sample_file, "/carray", chunks=chunks)
    message = str(info.value)
    assert str(sample_file) in message and "/carray" in message and f"chunks={chunks!r}" in message
    assert "positive" in message
    assert "Empty tuples" not in message and "division" not in message, message


def test_chunks_with_the_wrong_number_of_axes(sample_file):
    with pytest.raises(ValueError, match=r"scalar|axes"):
        from_tables(sample_file, "/scalar", chunks=(5,))


def test_a_rewrite_that_restores_the_modification_time_is_still_seen(sample_file):
    """As `touch -r`, `cp -p` or `rsync --inplace -t` leave it: same size, same mtime."""
    x = from_tables(sample_file, "/big_endian")
    before = os.stat(sample_file)
    time.sleep(0.05)
    with tables.open_file(sample_file, "a") as f:
        f.root.big_endian[:5] = -7  # uncompressed: the file keeps its size
    os.utime(sample_file, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert os.stat(sample_file).st_size == before.st_size
    with pytest.raises(FileChangedError, match="set back"):
        x.sum().compute()


def test_a_damaged_hdf5_file_is_named(sample_file, tmp_path):
    damaged = tmp_path / "damaged.h5"
    damaged.write_bytes(sample_file.read_bytes()[:2048])  # the superblock survives, the rest is gone
    with pytest.raises(NotHDF5FileError, match="damaged") as info:
        from_tables(damaged, "/carray")
    assert str(damaged) in str(info.value) and "/carray" in str(info.value)
    assert registry_is_empty()


def test_a_node_path_without_its_leading_slash(sample_file):
    np.testing.assert_array_equal(
        from_tables(sample_file, "group/table", field="a").compute(), records(1000)["a"]
    )


def test_auto_chunks_of_a_table_column_count_whole_records(tmp_path):
    path = tmp_path / "wide.h5"
    dtype = np.dtype([("a", "f8"), ("pad", "S120")])  # 128-byte records, an 8-byte column
    with tables.open_file(path, "w") as f:
        f.create_table("/", "t", description=dtype, expectedrows=100_000).append(np.zeros(100_000, dtype))
    with dask.config.set({"array.chunk-size": "1MiB"}):
        x = from_tables(path, "/t", field="a")
    assert max(x.chunks[0]) * 128 <= 2**20, "a block reads at most ~1 MiB of records"
    assert x.npartitions >= 12


def test_a_change_between_two_tasks_of_one_compute(sample_file):
    """Within one compute, a task that runs after the file changed raises; none returns mixed data."""
    from dask.graph_manipulation import bind

    x = from_tables(sample_file, "/carray", chunks=(50, 100))
    first, second = x.blocks[0], x.blocks[1]

    def change(_):
        time.sleep(0.05)
        rewrite_in_place(sample_file)
        return True

    changed = dask.delayed(change)(first.sum())
    second_after_change = bind(second, changed)  # the second block's read waits for the change
    with pytest.raises(FileChangedError, match="/carray"):
        dask.compute(first.sum(), second_after_change.sum(), scheduler="threads")
    assert registry_is_empty()


def test_file_changed_error_names_the_call_that_built_the_collection(sample_file):
    array = from_tables(sample_file, "/carray")
    frame = dask_tables.read_table(sample_file, "/group/table", columns=["a", "s"])
    source = TablesSource.open(sample_file, "/carray", made_by="xarray.open_dataset")
    time.sleep(0.05)  # see test_a_changed_file_raises_instead_of_returning_stale_data
    rewrite_in_place(sample_file)
    with pytest.raises(FileChangedError, match=r"rebuild the array with from_tables$"):
        array.sum().compute(scheduler="threads")
    with pytest.raises(FileChangedError, match=r"rebuild the frame with read_table$"):
        frame.compute(scheduler="threads")
    for read in (lambda: source[:2], source.check_unchanged, lambda: source.with_leaf(len)):
        with pytest.raises(FileChangedError, match=r"call xarray\.open_dataset again$"):
            read()


def test_file_changed_error_after_open_dataset_names_open_dataset(sample_file):
    xr = pytest.importorskip("xarray")
    ds = xr.open_dataset(sample_file, engine="tables")
    time.sleep(0.05)
    rewrite_in_place(sample_file)
    with pytest.raises(FileChangedError, match=r"open_dataset again$"):
        ds["carray"].values  # noqa: B018 - reads


@pytest.mark.timeout(120)
def test_a_file_another_process_writes_is_locked_not_damaged(sample_file, capsys):
    xr = pytest.importorskip("xarray")
    with held_open_for_writing(sample_file):
        for build in (
            lambda: from_tables(sample_file, "/carray"),
            lambda: dask_tables.read_table(sample_file, "/group/table", columns=["a", "s"]),
            lambda: xr.open_dataset(sample_file, engine="tables", group="/group"),
            lambda: dask_tables.info.inspect_file(sample_file),
        ):
            with pytest.raises(dask_tables.FileLockedError) as err:
                build()
            message = str(err.value)
            assert str(sample_file) in message and "locked by another process" in message
            assert "HDF5_USE_FILE_LOCKING=FALSE" in message and "damaged" not in message.replace(
                "not damaged", ""
            )
            assert isinstance(err.value, OSError) and not isinstance(err.value, NotHDF5FileError)
        assert dask_tables.cli.main(["info", str(sample_file)]) == 2
        assert "locked by another process" in capsys.readouterr().err
    np.testing.assert_array_equal(
        from_tables(sample_file, "/carray").compute(), pytables_read(sample_file, "/carray")
    )


@pytest.mark.timeout(120)
def test_a_writer_that_opens_the_file_after_the_build_is_named_at_compute_time(sample_file):
    """Issue 24, item 17: a task says the file is locked (not a raw HDF5 error, not "changed")."""
    built = [  # (what the message says to rebuild, the node it names, the collection)
        ("the array with from_tables", "/carray", from_tables(sample_file, "/carray")),  # direct
        ("the array with from_tables", "/earray", from_tables(sample_file, "/earray", direct=False)),
        (
            "the frame with read_table",
            "/group/table",
            dask_tables.read_table(sample_file, "/group/table", columns=["a", "s"]),
        ),
    ]
    with held_open_for_writing(sample_file):
        for what, node, collection in built:
            with pytest.raises(dask_tables.FileLockedError) as err:
                collection.compute(scheduler="threads")
            message = str(err.value)
            assert message.startswith(f"{sample_file}: the file is locked by another process")
            assert f"node {node}" in message and "after the graph was built" in message
            assert f"then rebuild {what}" in message and "HDF5_USE_FILE_LOCKING=FALSE" in message
            assert "damaged" not in message.replace("not damaged", "")
            again = pickle.loads(pickle.dumps(err.value))  # as a process worker sends it back
            assert type(again) is dask_tables.FileLockedError and str(again) == message
    # the writer closed it: the file did change after the build (HDF5 marked it open), so rebuild
    with pytest.raises(FileChangedError, match=r"rebuild the array with from_tables$"):
        built[0][2].compute()
    np.testing.assert_array_equal(
        from_tables(sample_file, "/carray").compute(), pytables_read(sample_file, "/carray")
    )
