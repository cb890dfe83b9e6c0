"""Many files as one array: each task reaches its own file, whatever the number of files."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import tables
from helpers import pytables_read

from dask_tables import from_tables


def write_files(folder, sizes, width=3):
    """One EArray ``/x`` per file, file ``i`` holding rows ``i * 1000 + row``, chunkshape 4 rows."""
    folder.mkdir(exist_ok=True)
    paths = []
    for i, n in enumerate(sizes):
        path = folder / f"part-{i:04d}.h5"
        rows = (i * 1000 + np.arange(n, dtype="f8"))[:, None] + np.arange(width) / 10
        with tables.open_file(path, "w") as f:
            f.create_earray("/", "x", obj=rows.reshape(n, width), chunkshape=(4, width))
        paths.append(path)
    return paths


def expected(paths):
    return np.concatenate([pytables_read(p, "/x") for p in paths])


def task_of(x, key):
    return dict(x.__dask_graph__())[key]


@pytest.mark.parametrize("inline_array", [True, False])
@pytest.mark.parametrize("scheduler", ["synchronous", "threads", "processes"])
def test_many_files_equal_pytables(tmp_path, inline_array, scheduler):
    paths = write_files(tmp_path / "parts", [9, 0, 4, 13, 1, 6])
    x = from_tables(paths, "/x", chunks=(5, 2), inline_array=inline_array)
    np.testing.assert_array_equal(x.compute(scheduler=scheduler), expected(paths))
    np.testing.assert_array_equal(x[3:30:4, 1:].compute(scheduler=scheduler), expected(paths)[3:30:4, 1:])


def test_blocks_stop_at_file_boundaries(tmp_path):
    paths = write_files(tmp_path / "parts", [10, 5, 0, 7])
    x = from_tables(paths, "/x", chunks=(7, 2))
    assert x.chunks == ((7, 3, 5, 7), (2, 1))
    for row, file_index in enumerate([0, 0, 1, 3]):
        for column in range(2):
            block = x.blocks[row, column].compute(scheduler="synchronous")
            assert np.all(block // 1000 == file_index), (row, column, block)


def test_inline_array_task_carries_only_its_own_file(tmp_path):
    paths = write_files(tmp_path / "parts", [8] * 12)
    x = from_tables(paths, "/x", chunks=(4, 3), inline_array=True)
    assert len(x.__dask_graph__()) == x.npartitions == 24, "no other keys than the blocks"
    for row in range(24):
        task = pickle.dumps(task_of(x, (x.name, row, 0)))
        carried = [i for i, p in enumerate(paths) if str(p).encode() in task]
        assert carried == [row // 2], (row, carried)


def test_without_inline_array_each_file_is_stored_once_and_tasks_refer_to_it(tmp_path):
    paths = write_files(tmp_path / "parts", [8, 0, 8, 8])
    x = from_tables(paths, "/x", chunks=(4, 3))
    graph = dict(x.__dask_graph__())
    stored = sorted(k for k in graph if k[0] == "original-" + x.name)
    assert stored == [("original-" + x.name, i) for i in (0, 2, 3)], "an empty file has no blocks"
    for row, file_index in enumerate([0, 0, 2, 2, 3, 3]):
        assert graph[(x.name, row, 0)].dependencies == {("original-" + x.name, file_index)}


def test_a_task_does_not_grow_with_the_number_of_files(tmp_path):
    few = write_files(tmp_path / "fff", [4] * 3)  # folder names of one length: paths of one length
    many = write_files(tmp_path / "mmm", [4] * 300)
    for inline_array in (True, False):
        small = from_tables(few, "/x", chunks=4, inline_array=inline_array)
        large = from_tables(many, "/x", chunks=4, inline_array=inline_array)
        a = pickle.dumps(task_of(small, (small.name, 1, 0)))
        b = pickle.dumps(task_of(large, (large.name, 1, 0)))
        assert abs(len(a) - len(b)) <= 16, (inline_array, len(a), len(b))  # inode numbers may differ in size


@pytest.mark.parametrize("inline_array", [True, False])
def test_slices_fuse_into_the_reads_of_their_own_files(tmp_path, monkeypatch, inline_array):
    """x[:3] of 40 files opens only the first file; x[-2:] only the last."""
    paths = write_files(tmp_path / "parts", [5] * 40)
    x = from_tables(paths, "/x", chunks=(5, 3), inline_array=inline_array, direct=False)
    opened = []
    original = tables.File.__init__

    def counting_init(self, filename, *args, **kwargs):
        opened.append(str(filename))
        original(self, filename, *args, **kwargs)

    first, last = pytables_read(paths[0], "/x"), pytables_read(paths[-1], "/x")
    monkeypatch.setattr(tables.File, "__init__", counting_init)
    head = x[:3].compute(scheduler="synchronous")
    assert opened == [str(paths[0])]
    opened.clear()
    tail = x[-2:, 2].compute(scheduler="synchronous")
    assert opened == [str(paths[-1])]
    np.testing.assert_array_equal(head, first[:3])
    np.testing.assert_array_equal(tail, last[-2:, 2])


def test_name_is_deterministic_and_given_names_name_the_keys(tmp_path):
    paths = write_files(tmp_path / "parts", [6, 6])
    a = from_tables(paths, "/x", chunks=3)
    assert a.name == from_tables(paths, "/x", chunks=3).name
    assert a.name.startswith("from-tables-")
    assert a.name != from_tables(paths, "/x", chunks=2).name
    assert a.name != from_tables(paths[::-1], "/x", chunks=3).name
    mine = from_tables(paths, "/x", chunks=3, name="mine")
    assert {k[0] for k in dict(mine.__dask_graph__())} == {"mine", "original-mine"}
    np.testing.assert_array_equal(mine.compute(), expected(paths))


def test_all_files_empty(tmp_path):
    paths = write_files(tmp_path / "parts", [0, 0, 0])
    for inline_array in (True, False):
        x = from_tables(paths, "/x", inline_array=inline_array)
        assert x.shape == (0, 3)
        assert x.compute().shape == (0, 3)


def test_the_graph_of_many_files_pickles_and_runs_under_distributed(tmp_path):
    distributed = pytest.importorskip("distributed")
    paths = write_files(tmp_path / "parts", [7, 3, 11, 5])
    x = from_tables(paths, "/x", chunks=(4, 3))
    pickle.loads(pickle.dumps(dict(x.__dask_graph__())))
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
        ) as cluster,
        distributed.Client(cluster),
    ):
        np.testing.assert_array_equal(x.compute(), expected(paths))
        assert float(x.sum().compute()) == pytest.approx(expected(paths).sum())
