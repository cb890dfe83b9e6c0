"""xarray's engine="tables": every value compared with what PyTables reads."""

from __future__ import annotations

import os
import pickle
import warnings
from importlib.metadata import entry_points
from pathlib import Path

import numpy as np
import pytest
import tables
import tomllib
from helpers import pytables_read, records, registry_is_empty
from numpy.testing import assert_array_equal

xr = pytest.importorskip("xarray")
da = pytest.importorskip("dask.array")

from dask_tables import FileChangedError  # noqa: E402
from dask_tables.xarray_backend import TablesBackendArray, TablesBackendEntrypoint  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent

# PyTables warns about attributes and nodes it cannot load (dimension scales' references).
pytestmark = pytest.mark.filterwarnings("ignore::tables.exceptions.DataTypeWarning")


ARRAYS = ["big_endian", "carray", "cells", "contiguous", "earray", "empty_earray", "python_list", "scalar"]


def open_tables(path, **kwargs):
    return xr.open_dataset(path, engine="tables", **kwargs)


@pytest.fixture
def grid_file(tmp_path):
    """Arrays of shared lengths, attributes on the file, a group and an array."""
    path = tmp_path / "grid.h5"
    with tables.open_file(path, "w") as f:
        f.root._v_attrs.experiment = "run 7"
        x = f.create_carray(
            "/",
            "x",
            obj=np.arange(120.0).reshape(6, 20),
            chunkshape=(2, 5),
            filters=tables.Filters(complevel=1, complib="zlib", shuffle=True),
        )
        x.attrs.units = "m"
        x.attrs.scale = np.float32(0.5)
        f.create_array("/", "y", obj=np.arange(20, dtype="i2"))
        f.create_array("/", "square", obj=np.arange(400, dtype="u1").reshape(20, 20))
        group = f.create_group("/", "g", "a group")
        group._v_attrs.note = "inner"
        f.create_earray(group, "e", obj=np.arange(6, dtype="f4"), chunkshape=(4,))
    return path


# ---------------------------------------------------------------- datasets


def test_every_array_of_a_group_is_a_variable_equal_to_pytables(sample_file):
    ds = open_tables(sample_file)
    # the soft link /link -> /carray is a variable, as h5py and h5netcdf follow it (issue 24);
    # the VLArray and the group are not variables
    assert sorted(ds.data_vars) == sorted([*ARRAYS, "link"])
    assert ds["link"].dims == ds["carray"].dims and ds["link"].encoding["node"] == "/carray"
    for name in [*ARRAYS, "link"]:
        expected = pytables_read(sample_file, "/" + name)
        assert ds[name].shape == expected.shape
        assert ds[name].dtype == expected.dtype.newbyteorder("=")
        assert_array_equal(ds[name].values, expected)
    assert registry_is_empty()


def test_variables_are_read_lazily_and_only_what_is_selected(grid_file):
    ds = open_tables(grid_file)
    assert not ds.x.variable._in_memory
    with tables.open_file(grid_file, "a") as f:  # the file is not held open
        f.root.y[0] = 99
    with pytest.raises(FileChangedError, match=r"grid\.h5"):
        ds.y.values  # noqa: B018 - the file changed after the dataset was opened


def test_phony_dims_are_shared_by_equal_lengths_as_h5netcdf_sort(grid_file):
    ds = open_tables(grid_file)
    # sorted names: square (20, 20), x (6, 20), y (20,); two axes of 20 in one variable need two names
    assert ds.square.dims == ("phony_dim_0", "phony_dim_1")
    assert ds.x.dims == ("phony_dim_2", "phony_dim_0")
    assert ds.y.dims == ("phony_dim_0",)
    inner = open_tables(grid_file, group="/g")
    assert inner.e.dims == ("phony_dim_3",)  # numbered across the file: no clash with the parent's


def test_attributes_of_file_group_and_nodes(grid_file):
    ds = open_tables(grid_file)
    assert ds.attrs == {"experiment": "run 7"}
    assert ds.x.attrs["units"] == "m"
    assert ds.x.attrs["scale"] == np.float32(0.5)
    assert set(ds.x.attrs) == {"units", "scale"}  # not PyTables' own CLASS, VERSION, TITLE...
    assert open_tables(grid_file, group="g").attrs == {"note": "inner"}


class _Marker:
    def __reduce__(self):
        return (os.getcwd, ())  # any callable: a hostile file would run a command


def test_pickled_attributes_go_through_the_pickle_gate(tmp_path):
    path = tmp_path / "hostile.h5"
    with tables.open_file(path, "w") as f:
        f.root._v_attrs.evil = _Marker()
        f.create_array("/", "x", obj=np.arange(3)).attrs.evil = _Marker()
    ds = open_tables(path)
    assert isinstance(ds.attrs["evil"], bytes)  # the raw pickle: nothing ran
    assert isinstance(ds.x.attrs["evil"], bytes)
    trusted = open_tables(path, allow_pickles=True)
    assert trusted.attrs["evil"] == os.getcwd()


def test_drop_variables(grid_file):
    assert sorted(open_tables(grid_file, drop_variables=["x", "square"]).data_vars) == ["y"]
    assert sorted(open_tables(grid_file, drop_variables="y").data_vars) == ["square", "x"]


# ---------------------------------------------------------------- CF decoding


def test_pytables_files_without_cf_attributes_are_what_pytables_reads_decoded_or_not(sample_file):
    for group in ("/", "/group/table"):
        decoded = open_tables(sample_file, group=group)
        raw = open_tables(sample_file, group=group, decode_cf=False)
        xr.testing.assert_identical(decoded, raw)  # nothing to decode: decoding changes nothing
        assert decoded.data_vars
        for variable in decoded.data_vars.values():
            node, field = variable.encoding["node"], variable.encoding.get("field")
            assert_array_equal(variable.values, pytables_read(sample_file, node, field))


@pytest.fixture
def cf_pytables_file(tmp_path):
    """A file PyTables writes with CF attributes: a time axis, a _FillValue, packed values, a bool flag."""
    path = tmp_path / "cf.h5"
    with tables.open_file(path, "w") as f:
        time = f.create_array("/", "time", obj=np.arange(4.0))
        time.attrs.units = "hours since 2001-02-03"
        counts = f.create_carray("/", "counts", obj=np.array([5, -1, 7, 9], dtype="i4"), chunkshape=(2,))
        counts.attrs._FillValue = np.int32(-1)
        packed = f.create_array("/", "packed", obj=np.array([0, 10, 20, 30], dtype="i2"))
        packed.attrs.scale_factor = 0.5
        packed.attrs.add_offset = 1.0
        flag = f.create_array("/", "flag", obj=np.array([1, 0, 0, 1], dtype="i1"))
        flag.attrs.dtype = "bool"
    return path


def test_cf_attributes_of_pytables_files_are_decoded_by_default(cf_pytables_file):
    ds = open_tables(cf_pytables_file)
    assert_array_equal(ds.time.values, np.datetime64("2001-02-03T00") + np.arange(4) * np.timedelta64(1, "h"))
    assert_array_equal(ds.counts.values, [5.0, np.nan, 7.0, 9.0])
    assert_array_equal(ds.packed.values, [1.0, 6.0, 11.0, 16.0])
    assert ds.flag.dtype == bool and ds.flag.values.tolist() == [True, False, False, True]
    assert ds.counts.encoding["_FillValue"] == -1 and "_FillValue" not in ds.counts.attrs
    raw = open_tables(cf_pytables_file, decode_cf=False)
    for name in ("time", "counts", "packed"):  # raw: what PyTables reads, attributes as they are
        assert_array_equal(raw[name].values, pytables_read(cf_pytables_file, "/" + name))
        assert raw[name].dtype == pytables_read(cf_pytables_file, "/" + name).dtype
    assert raw.packed.attrs == {"scale_factor": 0.5, "add_offset": 1.0}
    assert raw.flag.dtype == bool  # as xarray's netCDF backends, even with decode_cf=False
    assert_array_equal(raw.flag.values.astype("i1"), pytables_read(cf_pytables_file, "/flag"))
    xr.testing.assert_identical(ds, xr.decode_cf(raw))
    only_times = open_tables(cf_pytables_file, mask_and_scale=False)
    assert only_times.time.dtype.kind == "M" and only_times.counts.dtype == np.int32
    assert_array_equal(only_times.counts.values, pytables_read(cf_pytables_file, "/counts"))


def test_undecodable_times_are_refused_as_xarray_refuses_them(tmp_path):
    path = tmp_path / "odd.h5"
    with tables.open_file(path, "w") as f:
        f.create_array("/", "t", obj=np.arange(3.0)).attrs.units = "seconds since the start"
    with pytest.raises(ValueError, match="decode_times=False"):
        open_tables(path)
    ds = open_tables(path, decode_times=False)
    assert ds.t.attrs["units"] == "seconds since the start"
    assert_array_equal(ds.t.values, pytables_read(path, "/t"))


# ---------------------------------------------------------------- indexing


@pytest.mark.parametrize("chunks", [None, {}], ids=["lazy", "dask"])
@pytest.mark.parametrize(
    ("select", "numpy_key"),
    [
        (lambda v: v[2], np.s_[2]),
        (lambda v: v[1:5, 3:17:4], np.s_[1:5, 3:17:4]),
        (lambda v: v[::-2, -3], np.s_[::-2, -3]),
        (lambda v: v[[0, 2, 5], 1:3], np.s_[[0, 2, 5], 1:3]),
        (lambda v: v[[4, 1, 1], [19, 0]], np.ix_([4, 1, 1], [19, 0])),
        (lambda v: v[[-1], :], np.s_[[-1], :]),
        (lambda v: v[[], 0], np.s_[[], 0]),
        (lambda v: v[np.array([True, False, True, False, False, True])], np.s_[[0, 2, 5]]),
    ],
    ids=["int", "slices", "negative", "outer", "outer-both", "negative-array", "empty", "boolean"],
)
def test_basic_and_outer_indexing_equal_numpy_on_pytables_read(grid_file, chunks, select, numpy_key):
    expected = pytables_read(grid_file, "/x")[numpy_key]
    ds = open_tables(grid_file, chunks=chunks)
    assert_array_equal(select(ds.x).values, expected)


@pytest.mark.parametrize("chunks", [None, {}], ids=["lazy", "dask"])
def test_vectorized_indexing_equals_pointwise_numpy(grid_file, chunks):
    expected = pytables_read(grid_file, "/x")
    ds = open_tables(grid_file, chunks=chunks)
    rows, cols = [0, 5, 3], [19, 1, 7]
    dim0, dim1 = ds.x.dims
    points = ds.x.isel({dim0: xr.DataArray(rows, dims="p"), dim1: xr.DataArray(cols, dims="p")})
    assert points.dims == ("p",)
    assert_array_equal(points.values, expected[rows, cols])
    grid = ds.x.isel(
        {dim0: xr.DataArray([[1, 2], [3, 4]], dims=("a", "b")), dim1: xr.DataArray([0, 2], dims="b")}
    )
    assert_array_equal(grid.values, expected[np.array([[1, 2], [3, 4]]), np.array([0, 2])])


def test_scalar_and_cells_index_like_pytables(sample_file):
    ds = open_tables(sample_file)
    assert ds.scalar.shape == ()
    assert float(ds.scalar) == 3.5
    cells = pytables_read(sample_file, "/cells")
    assert_array_equal(ds.cells[[8, 0], 1].values, cells[[8, 0], 1])


# ---------------------------------------------------------------- dask


def test_chunks_empty_gives_whole_hdf5_chunks(grid_file):
    ds = open_tables(grid_file, chunks={})
    assert isinstance(ds.x.data, da.Array)
    assert ds.x.data.chunks == ((2, 2, 2), (5, 5, 5, 5))
    assert ds.x.encoding["preferred_chunks"] == dict(zip(ds.x.dims, (2, 5), strict=True))
    assert_array_equal(ds.x.values, pytables_read(grid_file, "/x"))
    assert float(ds.x.sum().compute(scheduler="threads")) == pytables_read(grid_file, "/x").sum()


def test_chunks_auto_gives_multiples_of_hdf5_chunks(grid_file):
    with __import__("dask").config.set({"array.chunk-size": "1KiB"}):
        ds = open_tables(grid_file, chunks="auto")
    for blocks, chunk in zip(ds.x.data.chunks, (2, 5), strict=True):
        assert all(b % chunk == 0 for b in blocks[:-1])
    assert_array_equal(ds.x.values, pytables_read(grid_file, "/x"))


def backend_array(variable):
    """The TablesBackendArray under xarray's wrappers (copy-on-write, memory cache, lazy indexing)."""
    data = variable.variable._data
    while not isinstance(data, TablesBackendArray):
        data = data.array
    return data


@pytest.mark.parametrize("direct", [True, False])
def test_direct_and_pipeline_reads_agree(grid_file, direct):
    source = backend_array(open_tables(grid_file, direct=direct).x).source
    assert (source.storage is not None) == direct  # a zlib CArray: the direct path reads it
    ds = open_tables(grid_file, chunks={}, direct=direct)
    assert_array_equal(ds.x.values, pytables_read(grid_file, "/x"))


@pytest.mark.parametrize("scheduler", ["threads", "processes", "synchronous"])
def test_dask_schedulers_compute_what_pytables_reads(grid_file, scheduler):
    ds = open_tables(grid_file, chunks={})
    total = (ds.x * 2).sum().compute(scheduler=scheduler)
    assert float(total) == 2 * pytables_read(grid_file, "/x").sum()
    assert registry_is_empty()


# ---------------------------------------------------------------- tables


def test_table_columns_are_variables_along_row(sample_file):
    ds = open_tables(sample_file, group="/group/table")
    assert list(ds.data_vars) == ["a", "pos.x", "pos.y", "m", "s"]
    for name in ds.data_vars:
        field = name.replace(".", "/")
        assert ds[name].dims[0] == "row"
        assert_array_equal(ds[name].values, pytables_read(sample_file, "/group/table", field))
    # the cells of a (2, 3) column; the root's arrays took phony_dim_0 .. phony_dim_9 (numbered file-wide)
    assert ds.m.dims[1:] == ("phony_dim_10", "phony_dim_11")
    assert ds["pos.x"].encoding["field"] == "pos/x"
    assert_array_equal(ds["pos.y"][[999, 3]].values, records(1000)["pos"]["y"][[999, 3]])


def test_a_pandas_table_file_opens_as_its_groups_and_table(tmp_path):
    """pandas' group attributes (non_index_axes is a ragged list, pickled) used to crash the open."""
    import pandas as pd

    path = tmp_path / "frame.h5"
    frame = pd.DataFrame({"x": np.arange(5), "y": np.arange(5) * 0.5})
    frame.to_hdf(path, key="df", format="table", data_columns=["x"])
    assert not open_tables(path).data_vars
    group = open_tables(path, group="df")
    assert group.attrs["non_index_axes"] == (1, ["x", "y"]) and group.attrs["pandas_type"] == "frame_table"
    table = open_tables(path, group="df/table")
    assert_array_equal(table["x"].values, frame["x"].to_numpy())
    assert_array_equal(table["values_block_0"].values[:, 0], frame["y"].to_numpy())
    assert list(xr.open_datatree(path, engine="tables").subtree_with_keys)[-1][0] == "df/table"


def test_table_attributes_are_the_tables_own(tmp_path):
    path = tmp_path / "events.h5"
    with tables.open_file(path, "w") as f:
        table = f.create_table("/", "events", obj=records(10), title="events of run 7")
        table.attrs.instrument = "CMS"
    ds = open_tables(path, group="events")
    assert ds.attrs == {"instrument": "CMS"}  # not CLASS, TITLE, NROWS, FIELD_0_NAME...
    assert_array_equal(ds.s.values, records(10)["s"])


def test_table_columns_chunk_by_the_tables_chunkshape(sample_file):
    ds = open_tables(sample_file, group="/group/table", chunks={})
    assert set(ds.a.data.chunks[0][:-1]) == {64}
    assert_array_equal(ds.a.values, records(1000)["a"])
    assert_array_equal(ds.m.mean("row").values, records(1000)["m"].mean(axis=0))


# ---------------------------------------------------------------- datatree


def test_datatree_gives_the_hierarchy(sample_file):
    tree = xr.open_datatree(sample_file, engine="tables")
    assert sorted(node.path for node in tree.subtree) == ["/", "/group", "/group/table"]
    assert sorted(tree.data_vars) == sorted([*ARRAYS, "link"])  # the soft link to /carray too
    assert_array_equal(tree["carray"].values, pytables_read(sample_file, "/carray"))
    assert_array_equal(tree["group/table"]["pos.x"].values, records(1000)["pos"]["x"])


def test_datatree_under_a_group_and_dask(grid_file):
    tree = xr.open_datatree(grid_file, engine="tables", group="/g", chunks={})
    assert [node.path for node in tree.subtree] == ["/"]
    assert_array_equal(tree["e"].values, np.arange(6, dtype="f4"))
    groups = xr.open_groups(grid_file, engine="tables")
    assert sorted(groups) == ["/", "/g"]


# ---------------------------------------------------------------- dimension scales


def test_dimension_scales_name_the_dimensions(tmp_path):
    h5py = pytest.importorskip("h5py")
    path = tmp_path / "scales.h5"
    values = np.arange(12.0).reshape(4, 3)
    with h5py.File(path, "w") as f:
        time = f.create_dataset("time", data=np.arange(4.0))
        time.make_scale("time")
        station = f.create_dataset("station", data=np.arange(3))
        station.make_scale("station")
        v = f.create_dataset("v", data=values, chunks=(2, 3), compression="gzip")
        v.dims[0].attach_scale(time)
        v.dims[1].attach_scale(station)
        half = f.create_dataset("half", data=values)  # only its first axis has a scale
        half.dims[0].attach_scale(time)
        inner = f.create_group("g").create_dataset("w", data=np.ones(4))
        inner.dims[0].attach_scale(time)
    ds = open_tables(path)
    assert ds.v.dims == ("time", "station")
    assert ds.half.dims == ("time", "phony_dim_0")
    assert_array_equal(ds.v.values, values)
    tree = xr.open_datatree(path, engine="tables")
    assert tree["g"]["w"].dims == ("time",)
    assert sorted(ds.data_vars) == ["half", "v"]  # the scales are coordinates (tests/test_xarray_netcdf.py)


# ---------------------------------------------------------------- many files, pickles, clusters


def test_open_mfdataset_concatenates_files(tmp_path):
    (tmp_path / "runs").mkdir()
    parts = []
    for i in range(3):
        rows = records(50 + i)
        rows["a"] += 1000 * i
        parts.append(rows)
        with tables.open_file(tmp_path / "runs" / f"run{i}.h5", "w") as f:
            f.create_table("/", "events", obj=rows, chunkshape=(16,))
            f.create_carray("/", "field", obj=np.full((4, 5), float(i)), chunkshape=(2, 5))
    pattern = str(tmp_path / "runs" / "*.h5")
    events = xr.open_mfdataset(pattern, engine="tables", group="/events", combine="nested", concat_dim="row")
    assert_array_equal(events.a.values, np.concatenate([p["a"] for p in parts]))
    assert_array_equal(events["pos.x"].values, np.concatenate([p["pos"]["x"] for p in parts]))
    fields = xr.open_mfdataset(pattern, engine="tables", combine="nested", concat_dim="run")
    assert fields.field.shape == (3, 4, 5)
    assert_array_equal(fields.field.values[:, 0, 0], [0.0, 1.0, 2.0])
    events.close()
    fields.close()
    assert registry_is_empty()


@pytest.mark.parametrize("chunks", [None, {}], ids=["lazy", "dask"])
def test_datasets_pickle(grid_file, chunks):
    ds = open_tables(grid_file, chunks=chunks)
    back = pickle.loads(pickle.dumps(ds))
    assert_array_equal(back.x[1:3].values, pytables_read(grid_file, "/x")[1:3])


@pytest.mark.timeout(300)
def test_distributed_computes_and_leaves_no_file_open(grid_file):
    distributed = pytest.importorskip("distributed")
    ds = open_tables(grid_file, chunks={})
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        warnings.simplefilter("ignore", UserWarning)  # distributed's port and memory notices
        total, inner = client.compute([ds.x.sum(), ds.y.mean()], sync=True)
        assert set(client.run(lambda: len(tables.file._open_files)).values()) == {0}
    assert float(total) == pytables_read(grid_file, "/x").sum()
    assert float(inner) == pytables_read(grid_file, "/y").mean()


def test_no_file_stays_open_after_compute_or_close(grid_file):
    ds = open_tables(grid_file, chunks={})
    ds.x.sum().compute()
    assert registry_is_empty()
    ds.close()
    assert registry_is_empty()
    with tables.open_file(grid_file, "a") as f:  # writable right away
        f.root.y[0] = 5


# ---------------------------------------------------------------- the contract


def test_engine_is_registered_by_entry_point():
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"]
    assert declared["xarray.backends"] == {"tables": "dask_tables.xarray_backend:TablesBackendEntrypoint"}
    installed = {ep.name: ep for ep in entry_points(group="xarray.backends")}
    assert installed["tables"].load() is TablesBackendEntrypoint
    assert isinstance(xr.backends.list_engines()["tables"], TablesBackendEntrypoint)


def test_guess_can_open(tmp_path, grid_file):
    backend = TablesBackendEntrypoint()
    for suffix in (".h5", ".hdf5", ".h5f", ".HDF5"):
        copy = tmp_path / f"copy{suffix}"
        copy.write_bytes(grid_file.read_bytes())
        assert backend.guess_can_open(copy)
        assert backend.guess_can_open(str(copy))
    other = tmp_path / "copy.nc"
    other.write_bytes(grid_file.read_bytes())
    assert not backend.guess_can_open(other)  # not our extension
    text = tmp_path / "notes.h5"
    text.write_text("not HDF5")
    assert not backend.guess_can_open(text)
    assert not backend.guess_can_open(tmp_path / "missing.h5")
    assert not backend.guess_can_open(tmp_path)
    assert not backend.guess_can_open(b"\x89HDF")
    assert xr.open_dataset(grid_file).x.dims  # no engine given: xarray guesses ours


def test_bad_input_raises_specific_errors(tmp_path, grid_file):
    with pytest.raises(FileNotFoundError, match=r"missing\.h5"):
        open_tables(tmp_path / "missing.h5")
    with pytest.raises(LookupError, match=r"grid\.h5.*'/nope'"):
        open_tables(grid_file, group="/nope")
    with pytest.raises(TypeError, match=r"grid\.h5.*/x is neither a group nor a Table"):
        open_tables(grid_file, group="/x")
    with pytest.raises(TypeError, match="by path"), open(grid_file, "rb") as handle:
        TablesBackendEntrypoint().open_dataset(handle)
    text = tmp_path / "text.h5"
    text.write_text("not HDF5")
    with pytest.raises((OSError, tables.HDF5ExtError), match=r"text\.h5"):
        open_tables(text)
