"""engine="tables" on netCDF-4 and h5py files: what engine="h5netcdf" gives, decoded and raw.

Issue 24, items 12-15: text attributes netCDF-C writes (fixed-length
strings), dimension scales as coordinate variables, attributes PyTables
misreads (enums, big-endian numbers, one-element arrays, netCDF's
bookkeeping), and groups reached through links; and CF decoding by default,
with xarray's decoder keywords, as every netCDF backend decodes.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import tables
from helpers import registry_is_empty

from dask_tables import FileChangedError

xr = pytest.importorskip("xarray")
h5py = pytest.importorskip("h5py")
pytest.importorskip("h5netcdf")

# PyTables warns about the dimension scales' references it cannot load.
pytestmark = pytest.mark.filterwarnings("ignore::tables.exceptions.DataTypeWarning")


def open_tables(path, **kwargs):
    return xr.open_dataset(path, engine="tables", **kwargs)


def open_h5netcdf(path, **kwargs):
    return xr.open_dataset(path, engine="h5netcdf", phony_dims="sort", **kwargs)


def assert_same_as_h5netcdf(path, **kwargs):
    """The dataset equals h5netcdf's (values, dims, coordinates, attributes): both opened with xarray's
    defaults (CF-decoded), and both with ``decode_cf=False``.  Returns ours, decoded."""
    ours = open_tables(path, **kwargs)
    xr.testing.assert_identical(ours, open_h5netcdf(path, **kwargs))
    raw = open_tables(path, decode_cf=False, **kwargs)
    xr.testing.assert_identical(raw, open_h5netcdf(path, decode_cf=False, **kwargs))
    return ours


def cf_dataset(n_time=30, start="2000-01-01"):
    """A CF dataset: a time axis with bounds, bools, packed values, a scalar coordinate."""
    time = pd.date_range(start, periods=n_time, freq="D")
    rng = np.random.default_rng(0)
    ds = xr.Dataset(
        {
            "temp": (("time", "lat"), rng.normal(size=(n_time, 50)).astype("f4"), {"units": "K"}),
            "flag": ("time", np.arange(n_time) % 2 == 0),
            "packed": ("lat", np.linspace(0, 1, 50)),
            "time_bnds": (("time", "nv"), np.stack([time, time + pd.Timedelta("1D")], axis=1)),
        },
        coords={"time": time, "lat": np.arange(50.0), "height": 2.0},
        attrs={"title": "a CF file", "history": "made by a test."},
    )
    ds.time.attrs["bounds"] = "time_bnds"
    ds.time.encoding.update(units="days since 2000-01-01", calendar="proleptic_gregorian")
    ds.time_bnds.encoding.update(units="days since 2000-01-01", calendar="proleptic_gregorian")
    ds.packed.encoding.update(dtype="i2", scale_factor=0.01, _FillValue=-1)
    return ds


@pytest.fixture
def netcdf_c_file(tmp_path):
    """A file netCDF-C writes (through the netCDF4 package): fixed-length text attributes."""
    pytest.importorskip("netCDF4")
    path = tmp_path / "netcdf_c.nc"
    cf_dataset().to_netcdf(path, engine="netcdf4")
    return path


# ---------------------------------------------------------------- CF decoding by default


@pytest.fixture(params=["h5netcdf", "netcdf4"])
def cf_file(request, tmp_path):
    """A CF file written by xarray through h5netcdf or netCDF-C: times with bounds, timedeltas, bools,
    packed values, netCDF's char text (``S1`` along a string dimension), ``coordinates``."""
    if request.param == "netcdf4":
        pytest.importorskip("netCDF4")
    ds = cf_dataset().assign(
        wait=("time", pd.to_timedelta(np.arange(30), "h")),
        code=("station", np.array([b"DAV", b"BER", b"ZRH"])),
    )
    path = tmp_path / f"cf_{request.param}.nc"
    ds.to_netcdf(path, engine=request.param)
    return path


def test_a_cf_file_is_decoded_by_default_and_sel_by_dates_is_h5netcdfs(cf_file):
    """xarray users' habit: ``sel(time=slice("2000-01-10", "2000-01-20"))`` with no decode_cf call."""
    ds = xr.open_dataset(cf_file, engine="tables")
    assert ds.time.dtype.kind == "M" and ds.time_bnds.dtype.kind == "M" and ds.wait.dtype.kind == "m"
    assert ds.flag.dtype == bool and ds.packed.dtype == np.float64 and ds.code.dtype == "S3"
    assert "height" in ds.coords  # the `coordinates` attribute applied
    picked = ds.sel(time=slice("2000-01-10", "2000-01-20"))
    theirs = open_h5netcdf(cf_file).sel(time=slice("2000-01-10", "2000-01-20"))
    assert picked.sizes["time"] == 11
    np.testing.assert_array_equal(
        picked.time.values, pd.date_range("2000-01-10", "2000-01-20", freq="D").values
    )
    np.testing.assert_array_equal(picked.temp.values, cf_dataset().temp.values[9:20])
    xr.testing.assert_identical(picked.load(), theirs.load())
    raw = xr.open_dataset(cf_file, engine="tables", decode_cf=False)
    assert raw.time.dtype.kind in "iuf" and raw.packed.dtype == np.int16 and raw.code.dtype == "S1"
    assert raw.flag.dtype == bool  # the one step netCDF backends take even with decode_cf=False
    assert assert_same_as_h5netcdf(cf_file).time.dtype.kind == "M"
    assert registry_is_empty()


@pytest.mark.filterwarnings("ignore:Usage of 'use_cftime' as a kwarg is deprecated:FutureWarning")
@pytest.mark.parametrize(
    "keywords",
    [
        {"decode_times": False},
        {"decode_times": False, "decode_timedelta": True},
        {"decode_timedelta": False},
        {"mask_and_scale": False},
        {"concat_characters": False},
        {"decode_coords": False},
        {"decode_coords": "all"},
        {"use_cftime": True},
        {"decode_times": xr.coders.CFDatetimeCoder(use_cftime=True)},
    ],
    ids=lambda k: ",".join(
        f"{n}={type(v).__name__ if n == 'decode_times' and v else v}" for n, v in k.items()
    ),
)
def test_each_decoder_keyword_does_what_it_does_for_h5netcdf(cf_file, keywords):
    ours = xr.open_dataset(cf_file, engine="tables", **keywords)
    xr.testing.assert_identical(ours, open_h5netcdf(cf_file, **keywords))
    with pytest.raises(AssertionError):  # the keyword took effect: not what the defaults give
        xr.testing.assert_identical(ours, xr.open_dataset(cf_file, engine="tables"))


def test_datatree_and_groups_are_decoded_as_h5netcdf_decodes_them(tmp_path):
    ds = cf_dataset()
    tree = xr.DataTree.from_dict(
        {
            "/": xr.Dataset(attrs={"tree": "root"}),
            "/a": ds,
            "/b": ds.isel(time=slice(0, 5)),
            "/b/c": xr.Dataset({"v": ("n", np.arange(3.0))}),
        }
    )
    path = tmp_path / "tree.nc"
    tree.to_netcdf(path, engine="h5netcdf")
    for options in ({}, {"decode_cf": False}, {"decode_times": False, "mask_and_scale": False}):
        ours = xr.open_datatree(path, engine="tables", **options)
        xr.testing.assert_identical(ours, xr.open_datatree(path, engine="h5netcdf", **options))
        groups = xr.open_groups(path, engine="tables", **options)
        theirs = xr.open_groups(path, engine="h5netcdf", **options)
        assert sorted(groups) == sorted(theirs) == ["/", "/a", "/b", "/b/c"]
        for name, group in groups.items():
            xr.testing.assert_identical(group, theirs[name])
    decoded = xr.open_datatree(path, engine="tables")
    assert decoded["b"].time.dtype.kind == "M" and decoded["a"].packed.dtype == np.float64
    assert xr.open_datatree(path, engine="tables", decode_cf=False)["b"].time.dtype.kind in "iuf"
    under = xr.open_datatree(path, engine="tables", group="b")
    xr.testing.assert_identical(under, xr.open_datatree(path, engine="h5netcdf", group="b"))
    assert under.time.dtype.kind == "M"


def test_decoded_variables_stay_lazy(tmp_path):
    path = tmp_path / "cf.nc"
    cf_dataset().to_netcdf(path, engine="h5netcdf")
    ds = xr.open_dataset(path, engine="tables", create_default_indexes=False)
    assert not ds.indexes  # xarray makes the indexes, as for its own backends
    for name in ("temp", "packed", "flag", "time_bnds"):
        assert not ds[name].variable._in_memory, name
    with h5py.File(path, "a") as f:  # the file is not held open, and the values were not read
        f["temp"][0, 0] = 1.0
    with pytest.raises(FileChangedError, match=r"cf\.nc"):
        ds.packed.values  # noqa: B018 - decoded lazily: read (and scaled) now
    assert registry_is_empty()


# ---------------------------------------------------------------- 12: text attributes


def test_netcdf_c_text_attributes_are_str_and_decode_as_with_h5netcdf(netcdf_c_file):
    with h5py.File(netcdf_c_file) as f:  # what the issue is about: netCDF-C's fixed-length strings
        assert isinstance(f["temp"].attrs["units"], np.bytes_)
    decoded = assert_same_as_h5netcdf(netcdf_c_file)
    raw = open_tables(netcdf_c_file, decode_cf=False)
    for ds in (decoded, raw):
        assert ds.temp.attrs["units"] == "K" and type(ds.temp.attrs["units"]) is str
        assert type(ds.attrs["title"]) is str and ds.attrs["history"] == "made by a test."
    assert type(raw.time.attrs["units"]) is str and raw.time.dtype.kind in "iuf"
    expected = cf_dataset()
    assert decoded.time.dtype.kind == "M"
    np.testing.assert_array_equal(decoded.time.values, expected.time.values)
    np.testing.assert_array_equal(decoded.time_bnds.values, expected.time_bnds.values)
    assert decoded.flag.dtype == bool
    np.testing.assert_array_equal(decoded.flag.values, expected.flag.values)
    assert "height" in decoded.coords  # the `coordinates` attribute applied
    np.testing.assert_allclose(decoded.packed.values, expected.packed.values, atol=0.005)
    assert registry_is_empty()


def test_fixed_length_text_of_old_pytables_files_decodes(tmp_path):
    """PyTables returns np.bytes_ for fixed-length strings, the text attributes of old PyTables files."""
    path = tmp_path / "old.h5"
    with tables.open_file(path, "w") as f:
        time = f.create_array("/", "time", obj=np.arange(3.0))
        time.attrs.units = np.bytes_(b"hours since 2001-02-03")
        time.attrs.calendar = np.bytes_(b"standard")
        flag = f.create_array("/", "flag", obj=np.array([1, 0, 1], dtype="i1"))
        flag.attrs.dtype = np.bytes_(b"bool")
        flag.attrs.coordinates = np.bytes_(b"time")
        f.root._v_attrs.note = np.bytes_("d\u00e9j\u00e0 vu".encode())
    decoded = open_tables(path)  # decoded by default, as the bytes attributes are text
    assert decoded.attrs["note"] == "d\u00e9j\u00e0 vu"
    np.testing.assert_array_equal(
        decoded.time.values, pd.date_range("2001-02-03", periods=3, freq="h").values
    )
    assert decoded.flag.dtype == bool
    assert "time" in decoded.coords


# ---------------------------------------------------------------- 13: dimension scales


def write_scaled(path, time, values, *, bounds=True):
    """A file h5py writes as netCDF tools do: dimension scales time and lat attached to v."""
    with h5py.File(path, "w") as f:
        t = f.create_dataset("time", data=time)
        t.make_scale("time")
        t.attrs["units"] = "days since 2000-01-01"
        lat = f.create_dataset("lat", data=np.linspace(-45, 45, values.shape[1]))
        lat.make_scale("lat")
        lat.attrs["units"] = "degrees_north"
        v = f.create_dataset("v", data=values, chunks=(5, values.shape[1]), compression="gzip")
        v.dims[0].attach_scale(t)
        v.dims[1].attach_scale(lat)
        if bounds:
            t.attrs["bounds"] = "time_bnds"
            b = f.create_dataset("time_bnds", data=np.stack([time, time + 1.0], axis=1))
            nv = f.create_dataset("nv", data=np.zeros(2, dtype="f4"))
            nv.make_scale("This is a netCDF dimension but not a netCDF variable.         2")
            b.dims[0].attach_scale(t)
            b.dims[1].attach_scale(nv)
            b.attrs["units"] = "days since 2000-01-01"


def test_dimension_scales_are_coordinates_and_sel_is_by_label(tmp_path):
    path = tmp_path / "scales.h5"
    values = np.arange(30 * 50, dtype="f8").reshape(30, 50)
    write_scaled(path, np.arange(100.0, 130.0) - 100, values)
    decoded = assert_same_as_h5netcdf(path)
    ds = open_tables(path, decode_cf=False)
    assert set(ds.coords) == {"time", "lat"} and ds.indexes["time"].size == 30
    assert ds.v.sel(time=slice(10, 20)).shape == (11, 50)  # by label, as with h5netcdf
    assert (
        ds.v.sel(time=slice(10, 20)).shape
        == open_h5netcdf(path, decode_cf=False).v.sel(time=slice(10, 20)).shape
    )
    np.testing.assert_array_equal(ds.v.sel(time=slice(10, 20)).values, values[10:21])
    # decoded by default: the bounds variable decodes with its coordinate, sel by dates
    assert decoded.time.dtype.kind == "M" and decoded.time_bnds.dtype.kind == "M"
    assert decoded.time.attrs["bounds"] == "time_bnds"
    np.testing.assert_array_equal(decoded.v.sel(time=slice("2000-01-11", "2000-01-21")).values, values[10:21])
    chunked = open_tables(path, chunks={})
    np.testing.assert_array_equal(chunked.v.sel(lat=slice(-45, 0)).values, values[:, :25])
    assert registry_is_empty()


def test_open_mfdataset_with_its_defaults_combines_by_coordinates(tmp_path):
    parts = []
    for i in range(2):
        values = np.full((10, 4), float(i))
        write_scaled(tmp_path / f"part{i}.h5", np.arange(10.0) + 10 * i, values, bounds=False)
        parts.append(values)
    paths = [tmp_path / "part1.h5", tmp_path / "part0.h5"]  # out of order: combined by coordinate
    for options in ({"decode_cf": False}, {}):
        ours = xr.open_mfdataset(paths, engine="tables", **options)
        theirs = xr.open_mfdataset(paths, engine="h5netcdf", **options)
        np.testing.assert_array_equal(ours.v.values, np.concatenate(parts))
        xr.testing.assert_identical(ours.compute(), theirs.compute())
        ours.close()
        theirs.close()
    raw = xr.open_mfdataset(paths, engine="tables", decode_cf=False)
    np.testing.assert_array_equal(raw.time.values, np.arange(20.0))
    decoded = xr.open_mfdataset(paths, engine="tables")
    np.testing.assert_array_equal(
        decoded.time.values, pd.date_range("2000-01-01", periods=20, freq="D").values
    )


def test_netcdf_dimensions_without_variables_stay_without_coordinates(netcdf_c_file):
    ds = open_tables(netcdf_c_file)
    assert ds.time_bnds.dims == ("time", "nv")
    assert "nv" not in ds.variables  # netCDF's scale of a dimension without a variable
    assert set(ds.indexes) == {"time", "lat"}


# ---------------------------------------------------------------- 14: attributes


@pytest.fixture
def h5py_attrs_file(tmp_path):
    path = tmp_path / "attrs.h5"
    with h5py.File(path, "w") as f:
        x = f.create_dataset("x", data=np.arange(3.0))
        x.attrs["flag"] = np.bool_(True)  # h5py writes numpy bools as an HDF5 enum
        x.attrs["flags"] = np.array([True, False])
        x.attrs["complex_big"] = np.array(4.3 + 1j, dtype=">c16")
        x.attrs["complex_one"] = np.array([4.3 - 2j], dtype=">c8")
        x.attrs["float_big"] = np.array(2.5, dtype=">f8")
        x.attrs["ints_big"] = np.array([7, 8], dtype=">i4")
        x.attrs["scale_factor"] = np.array([0.5])  # netCDF-C writes scalars as 1-element arrays
        x.attrs["_FillValue"] = np.array([-1.0])
        x.attrs["empty"] = h5py.Empty("f8")
        x.attrs["text"] = "variable length"
        x.attrs["texts"] = ["a", "bc"]
        x.attrs["fixed"] = np.bytes_(b"fixed")
        x.attrs["fixeds"] = np.array([b"ab", b"cde"])
        x.attrs["_Netcdf4Dimid"] = np.int32(0)
        x.attrs["_Netcdf4Coordinates"] = np.array([0], dtype="i4")
        f.attrs["_NCProperties"] = np.bytes_(b"version=2,netcdf=4.9.2,hdf5=1.14.3")
        f.attrs["count"] = np.array([3], dtype=">u2")
    return path


def test_attributes_pytables_misreads_are_read_as_h5netcdf_reads_them(h5py_attrs_file):
    decoded = assert_same_as_h5netcdf(h5py_attrs_file)
    assert decoded.x.encoding["scale_factor"] == 0.5  # decoded: the packing is the encoding's
    np.testing.assert_array_equal(decoded.x.values, [0.0, 0.5, 1.0])
    ds = open_tables(h5py_attrs_file, decode_cf=False)
    attrs = ds.x.attrs
    assert attrs["flag"] is np.True_
    np.testing.assert_array_equal(attrs["flags"], [True, False])
    assert attrs["complex_big"] == 4.3 + 1j and attrs["complex_one"] == np.complex64(4.3 - 2j)
    assert attrs["float_big"] == 2.5
    np.testing.assert_array_equal(attrs["ints_big"], [7, 8])
    assert attrs["scale_factor"] == 0.5 and np.ndim(attrs["scale_factor"]) == 0
    assert attrs["_FillValue"] == -1.0 and np.ndim(attrs["_FillValue"]) == 0
    assert attrs["empty"].shape == (0,)
    assert attrs["texts"] == ["a", "bc"] and attrs["fixeds"] == ["ab", "cde"]
    assert "_Netcdf4Dimid" not in attrs and "_Netcdf4Coordinates" not in attrs
    assert ds.attrs == {"count": 3}  # no _NCProperties


def test_attributes_write_back_to_netcdf(h5py_attrs_file, tmp_path):
    ds = open_tables(h5py_attrs_file).load()
    out = tmp_path / "out.nc"
    ds.to_netcdf(out, engine="h5netcdf", invalid_netcdf=True)  # bools are not netCDF: h5netcdf's flag
    back = xr.open_dataset(out, engine="h5netcdf", decode_cf=False)
    assert back.x.attrs["flag"] is np.True_ and back.x.attrs["complex_big"] == 4.3 + 1j
    back.close()


def test_refused_pickles_stay_bytes_and_text_ending_in_a_dot_is_text(tmp_path):
    class Marker:
        def __reduce__(self):
            return (print, ("ran",))

    path = tmp_path / "pickles.h5"
    with tables.open_file(path, "w") as f:
        x = f.create_array("/", "x", obj=np.arange(3))
        x.attrs.evil = Marker()
        x.attrs.sentence = np.bytes_(b"Made by a test.")
        x.attrs.short = np.bytes_(b"N.")  # a valid pickle: PyTables unpickles it, as always
    attrs = open_tables(path).x.attrs
    assert type(attrs["evil"]) is bytes and attrs["evil"].endswith(b".")
    assert attrs["sentence"] == "Made by a test."


# ---------------------------------------------------------------- 15: links


@pytest.fixture
def linked_files(tmp_path):
    target = tmp_path / "target.h5"
    with tables.open_file(target, "w") as f:
        data = f.create_group("/", "data")
        data._v_attrs.note = "outside"
        f.create_array(data, "x", obj=np.arange(5.0))
    path = tmp_path / "links.h5"
    with tables.open_file(path, "w") as f:
        real = f.create_group("/", "real")
        real._v_attrs.note = "inside"
        f.create_carray(real, "y", obj=np.arange(12).reshape(3, 4), chunkshape=(1, 4))
        f.create_table(real, "t", obj=np.zeros(4, "i4,f8"))
        f.create_soft_link("/", "soft", "/real")
        f.create_soft_link("/", "soft_to_soft", "soft")
        f.create_soft_link("/real", "relative", "t")
        f.create_soft_link("/", "dangling", "/nowhere")
        f.create_external_link("/", "external", "target.h5:/data")
    return path, target


def test_groups_reached_through_soft_and_external_links(linked_files, monkeypatch, tmp_path):
    path, target = linked_files
    real = open_tables(path, group="/real")
    for link in ("soft", "/soft_to_soft"):
        xr.testing.assert_identical(open_tables(path, group=link), real)
    xr.testing.assert_identical(open_tables(path, group="/real/relative"), open_tables(path, group="/real/t"))
    monkeypatch.chdir(tmp_path.parent)  # a relative external name is looked for next to the file first
    outside = open_tables(path, group="external", chunks={})
    xr.testing.assert_identical(outside, open_tables(target, group="/data", chunks={}))
    assert outside.attrs == {"note": "outside"}
    np.testing.assert_array_equal(outside.x.values, np.arange(5.0))
    tree = xr.open_datatree(path, engine="tables", group="soft")
    assert sorted(tree.children) == ["t"] and tree.attrs == {"note": "inside"}
    with pytest.raises(tables.NoSuchNodeError, match="nowhere"):
        open_tables(path, group="dangling")
    assert registry_is_empty()


# ---------------------------------------------------------------- what the package-wide comparison found


def test_soft_links_variable_length_text_and_references_as_h5netcdf_gives_them(tmp_path):
    """A soft link to an array is a variable, text datasets too; arrays of references are left out."""
    path = tmp_path / "kinds.h5"
    with h5py.File(path, "w") as f:
        x = f.create_dataset("x", data=np.arange(4.0))
        x.attrs["units"] = "m"
        f["alias"] = h5py.SoftLink("/x")
        f.create_dataset("names", data=["davos", "z\u00fcrich", ""], dtype=h5py.string_dtype())
        f.create_dataset("note", data="one text", dtype=h5py.string_dtype())
        f.create_dataset("refs", data=[x.ref], dtype=h5py.ref_dtype)
        f.attrs["matrix"] = np.array([["a", "bc"], ["def", "g"]], dtype=h5py.string_dtype())
        f.attrs["fixed_matrix"] = np.array([[b"ab", b"cd"], [b"ef", b"gh"]])
    ds = open_tables(path)
    assert sorted(ds.variables) == ["alias", "names", "note", "x"]
    for options in ({}, {"decode_cf": False}):
        theirs = open_h5netcdf(path, drop_variables=["refs"], **options)
        xr.testing.assert_identical(open_tables(path, **options), theirs)
        theirs.close()
    np.testing.assert_array_equal(ds.alias.values, np.arange(4.0))
    assert ds.alias.attrs == {"units": "m"} and ds.names.values.tolist() == ["davos", "z\u00fcrich", ""]
    assert ds.note.values[()] == "one text"
    assert ds.attrs["matrix"] == [["a", "bc"], ["def", "g"]]  # variable-length: nested, as h5netcdf
    assert ds.attrs["fixed_matrix"] == ["ab", "cd", "ef", "gh"]  # fixed-length: flat, as h5netcdf
    with h5py.File(path, "a") as f:
        f["dangling"] = h5py.SoftLink("/nowhere")  # h5netcdf fails on it; left out here
    assert sorted(open_tables(path).variables) == ["alias", "names", "note", "x"]
    assert registry_is_empty()


def test_a_pytables_index_group_is_named_as_such(tmp_path):
    path = tmp_path / "indexed.h5"
    with tables.open_file(path, "w") as f:
        t = f.create_table("/", "t", obj=np.zeros(10, "i4,f8"))
        t.cols.f0.create_index()
    with h5py.File(path) as f:  # PyTables hides them
        hidden = ["/" + name for name in f if name.startswith("_i_")]
        hidden += [f"{hidden[0]}/{name}" for name in f[hidden[0]]]
    assert hidden == ["/_i_t", "/_i_t/f0"]
    for group in hidden:
        with pytest.raises(TypeError, match=r"is a PyTables index group.*open the Table /t instead") as err:
            open_tables(path, group=group)
        assert str(path) in str(err.value) and f"node {group}" in str(err.value)
