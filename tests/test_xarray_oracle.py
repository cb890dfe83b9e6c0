"""engine="tables" against engine="h5netcdf" on every HDF5 file the installed packages ship, and on
netCDF-4 files xarray writes through h5netcdf and netCDF-C (issue 24, the xarray goal).

Each group of each file is opened with both engines in a child process
(``tests/oracle_child.py``: a crash must not take pytest down) and compared:
values, dimensions, coordinates and attributes, raw (both with
``decode_cf=False``) and CF-decoded (both with xarray's defaults).
Every group where the two differ, or one refuses, is in ``KNOWN`` below with
its reason, and ``docs/xarray.rst`` gives each reason (``REASONS``).
"""

from __future__ import annotations

import fnmatch
import importlib.util
import json
import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import run_python

xr = pytest.importorskip("xarray")
h5py = pytest.importorskip("h5py")
pytest.importorskip("h5netcdf")

ROOT = Path(__file__).resolve().parent.parent
CHILD = Path(__file__).resolve().parent / "oracle_child.py"
# the packages whose HDF5 files are compared (PyTables' and h5py's test files; the others ship none
# today, and are looked in so that a new one is compared)
PACKAGES = ("tables", "h5py", "h5netcdf", "netCDF4", "xarray")
SIGNATURE = b"\x89HDF\r\n\x1a\n"

# Why a group differs or is refused: the words docs/xarray.rst says it in.
REASONS = {
    "pickles": "Pickled attributes",
    "index groups": "PyTables' index groups",
    "h5netcdf: a dtype with a shape": "h5netcdf loads more axes than it names dimensions",
    "h5netcdf: types": "h5netcdf refuses types numpy has no equivalent for",
    "h5netcdf: sequences": "h5netcdf fails on variable-length sequences",
}
# Applied to every group before comparing (oracle_child.py), each with its reason in the docs too.
NORMALISATIONS = {
    "Tables are datasets of their own": "Tables are datasets of their own",
    "PyTables' own attributes": "PyTables' own attributes",
    "object references": "HDF5 object references",
    "phony dimension names": "Phony dimension names are numbered across the whole file",
}
# (file, group pattern) -> reason: every group that differs or is refused by either engine.
KNOWN = {
    ("tables/tests/issue_368.h5", "/"): "pickles",
    ("tables/tests/issue_560.h5", "/"): "pickles",
    ("tables/tests/zerodim-attrs-1.3.h5", "/"): "pickles",
    ("tables/tests/idx-std-1.x.h5", "/_i_table*"): "index groups",
    ("tables/tests/indexes_2_0.h5", "/_i_table1*"): "index groups",
    ("tables/tests/indexes_2_1.h5", "/_i_table1*"): "index groups",
    ("tables/tests/array_mdatom.h5", "/"): "h5netcdf: a dtype with a shape",
    ("tables/tests/ex-noattr.h5", "/columns"): "h5netcdf: a dtype with a shape",
    ("tables/tests/attr-u16.h5", "/wfm_group0/axes/axis0"): "h5netcdf: types",
    ("tables/tests/float.h5", "/"): "h5netcdf: types",
    ("tables/tests/time-table-vlarray-1_x.h5", "/"): "h5netcdf: types",
    ("tables/tests/times-nested-be.h5", "/"): "h5netcdf: types",
    ("tables/tests/flavored_vlarrays-format1.6.h5", "/"): "h5netcdf: sequences",
    ("tables/tests/oldflavor_numeric.h5", "/"): "h5netcdf: sequences",
    ("tables/tests/vlunicode_endian.h5", "/"): "h5netcdf: sequences",
}


def is_hdf5(path: Path) -> bool:
    """HDF5's signature at 0, 512, 1024, 2048... bytes (after a user block, as MATLAB files have)."""
    with open(path, "rb") as f:
        offset = 0
        while True:
            f.seek(offset)
            head = f.read(8)
            if len(head) < 8:
                return False
            if head == SIGNATURE:
                return True
            offset = 512 if offset == 0 else offset * 2


def shipped_files() -> dict[str, Path]:
    """Every HDF5 file in the packages' folders, by its name there ("tables/tests/x.h5")."""
    found = {}
    for package in PACKAGES:
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            continue
        top = Path(next(iter(spec.submodule_search_locations)))
        for path in sorted(top.rglob("*")):
            if path.is_file() and path.suffix not in {".py", ".pyc", ".so", ".pyx", ".pxd"} and is_hdf5(path):
                found[f"{package}/{path.relative_to(top).as_posix()}"] = path
    return found


def cf_dataset(n_time: int = 30) -> xr.Dataset:
    """Coordinates (a curvilinear grid too), CF time with bounds, timedeltas, bools, _FillValue,
    packed values, text (variable and fixed length), attributes of every kind."""
    time = pd.date_range("2000-01-01", periods=n_time, freq="D")
    temp = np.random.default_rng(0).normal(size=(n_time, 5, 4)).astype("f4")
    temp[0, 0, 0] = np.nan
    ds = xr.Dataset(
        {
            "temp": (("time", "y", "x"), temp, {"units": "K", "long_name": "temperature"}),
            "flag": ("time", np.arange(n_time) % 2 == 0),
            "packed": (("y", "x"), np.linspace(0, 1, 20).reshape(5, 4)),
            "time_bnds": (("time", "nv"), np.stack([time, time + pd.Timedelta("1D")], axis=1)),
            "name": ("station", np.array(["davos", "bern", "z\u00fcrich"], dtype=object)),
            "code": ("station", np.array([b"DAV", b"BER", b"ZRH"])),
            "wait": ("time", pd.to_timedelta(np.arange(n_time), "h")),
            "big": ("x", np.arange(4, dtype=">f8")),
        },
        coords={
            "time": time,
            "xc": (("y", "x"), np.arange(20.0).reshape(5, 4)),
            "yc": (("y", "x"), -np.arange(20.0).reshape(5, 4)),
            "height": 2.0,
            "station": ["a", "b", "c"],
        },
        attrs={
            "title": "a CF file",
            "history": "made by a test.",
            "numbers": [1, 2, 3],
            "texts": ["a", "bc"],
        },
    )
    ds.time.attrs["bounds"] = "time_bnds"
    ds.temp.attrs["coordinates"] = "xc yc"
    ds.temp.encoding.update(_FillValue=-999.0)
    for name in ("time", "time_bnds"):
        ds[name].encoding.update(units="days since 2000-01-01", calendar="proleptic_gregorian")
    ds.packed.encoding.update(dtype="i2", scale_factor=0.01, add_offset=1.0, _FillValue=-1)
    return ds


def written_files(folder: Path) -> dict[str, Path]:
    """netCDF-4 files xarray writes through h5netcdf and netCDF-C: a dataset (unlimited time, a
    big-endian variable through h5netcdf) and a DataTree of nested groups."""
    engines = ["h5netcdf"] + (["netcdf4"] if importlib.util.find_spec("netCDF4") else [])
    ds = cf_dataset()
    tree = xr.DataTree.from_dict(
        {
            "/": xr.Dataset(attrs={"tree": "root"}),
            "/a": ds.isel(time=slice(0, 5)),
            "/a/b": xr.Dataset({"v": ("n", np.arange(3.0))}),
            "/c": ds[["name"]],
        }
    )
    found = {}
    for engine in engines:
        path = folder / f"cf_{engine}.nc"
        ds.to_netcdf(path, engine=engine, unlimited_dims=["time"])  # h5netcdf keeps "big" big-endian
        found[f"written/{path.name}"] = path
        path = folder / f"tree_{engine}.nc"
        tree.to_netcdf(path, engine=engine)
        found[f"written/{path.name}"] = path
    return found


def known_reason(name: str, group: str) -> str | None:
    for (file, pattern), reason in KNOWN.items():
        if file == name and fnmatch.fnmatchcase(group, pattern):
            return reason
    return None


def check_known(record: dict, reason: str) -> None:
    """The group differs the way its reason says, and only so."""
    where = f"{record['name']} {record['group']}"
    if reason == "pickles":
        assert record["tables"] is None and record["h5netcdf"] is None, where
        for diff in (record["raw"], record["cf"]):  # only attributes, each a pickle's text there
            assert "Differing attributes" in diff or "Differing variable attributes" in diff, where
            assert "pickle" in diff.lower() or "Unpickler" in diff, where
    elif reason == "index groups":
        assert record["h5netcdf"] is None, where
        assert "is a PyTables index group" in record["tables"] and "open the Table" in record["tables"], where
    else:  # h5netcdf fails; engine="tables" opens and loads the group
        assert record["tables"] is None and record["h5netcdf"] is not None, where


@pytest.fixture(scope="module")
def compared(tmp_path_factory) -> list[dict]:
    files = {**shipped_files(), **written_files(tmp_path_factory.mktemp("oracle"))}
    out = tmp_path_factory.mktemp("oracle_out") / "records.jsonl"
    done = run_python(
        f"import runpy, sys; sys.argv = {[str(CHILD), str(out), *map(str, files.values())]!r}; "
        f"runpy.run_path({str(CHILD)!r}, run_name='__main__')",
        timeout=600,
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT)},  # this checkout's dask_tables, whatever is installed
    )
    assert done.returncode == 0, done.stderr[-3000:]
    names = {str(path): name for name, path in files.items()}
    records = [json.loads(line) for line in out.read_text().splitlines()]
    for record in records:
        record["name"] = names[record["file"]]
    return records


def test_every_group_is_what_h5netcdf_gives_or_a_documented_difference(compared):
    groups = [r for r in compared if "group" in r]
    unexplained = []
    seen = set()
    for record in groups:
        assert "harness" not in record, record
        reason = known_reason(record["name"], record["group"])
        differs = any(record.get(k) for k in ("tables", "h5netcdf", "raw", "cf"))
        if reason is None:
            if differs:
                unexplained.append({k: v for k, v in record.items() if v})
            continue
        assert differs, f"{record['name']} {record['group']}: now the same; take it out of KNOWN"
        check_known(record, reason)
        seen.add(
            next(k for k in KNOWN if k[0] == record["name"] and fnmatch.fnmatchcase(record["group"], k[1]))
        )
    assert not unexplained, json.dumps(unexplained, indent=1)[:6000]
    shipped = {r["name"] for r in groups}
    assert {k for k in KNOWN if k[0] in shipped} <= seen, "KNOWN lists a group no file has"
    same = [r for r in groups if not any(r.get(k) for k in ("tables", "h5netcdf", "raw", "cf"))]
    # tables 3.11, h5py 3.16, netCDF4: 58 files, 131 groups, 106 the same
    assert len({r["name"] for r in groups}) >= 50 and len(groups) >= 120 and len(same) >= 95, len(same)
    assert sum(r["variables"] for r in same) >= 100  # compared variables (114), not only empty groups


def test_netcdf4_files_are_the_same_as_a_tree_and_group_by_group(compared):
    written = [r for r in compared if r["name"].startswith("written/")]
    names = {r["name"] for r in written}
    engines = 2 if importlib.util.find_spec("netCDF4") else 1
    assert len(names) == 2 * engines
    trees = [r for r in written if "tree" in r]
    assert len(trees) == len(names) and all(r["tree"] is None for r in trees), trees
    for record in (r for r in written if "group" in r):
        assert not any(record.get(k) for k in ("tables", "h5netcdf", "raw", "cf")), record
    assert sum(r.get("variables", 0) for r in written) >= 20 * engines


def test_the_written_files_hold_what_they_are_said_to(tmp_path):
    """Unlimited and big-endian variables, variable- and fixed-length text, groups: really in the files."""
    files = written_files(tmp_path)
    with h5py.File(files["written/cf_h5netcdf.nc"]) as f:
        assert f["temp"].maxshape[0] is None  # unlimited
        assert h5py.check_string_dtype(f["name"].dtype).length is None  # variable-length text
        assert f["packed"].dtype == np.int16 and f["temp"].attrs["_FillValue"] == -999.0
        assert f["big"].dtype.byteorder == ">"  # netCDF-C (xarray's netcdf4) writes native order
    if "written/cf_netcdf4.nc" in files:
        with h5py.File(files["written/cf_netcdf4.nc"]) as f:
            assert f["code"].dtype == "S1"  # netCDF's char
            assert isinstance(f["temp"].attrs["units"], np.bytes_)  # netCDF-C's fixed-length text
    with h5py.File(files["written/tree_h5netcdf.nc"]) as f:
        assert "v" in f["a/b"]


def test_every_reason_is_documented():
    text = re.sub(r"\s+", " ", (ROOT / "docs" / "xarray.rst").read_text())
    for phrase in [*REASONS.values(), *NORMALISATIONS.values()]:
        assert phrase in text, phrase
    assert set(KNOWN.values()) == set(REASONS)


def test_the_comparison_sees_a_difference():
    """The child's comparison can fail: one attribute, one value, one dimension name apart."""
    sys.path.insert(0, str(CHILD.parent))
    try:
        import oracle_child
    finally:
        sys.path.remove(str(CHILD.parent))
    ds = xr.Dataset({"v": ("phony_dim_3", np.arange(3.0), {"units": "m"})}, attrs={"title": "t"})
    same = xr.Dataset({"v": ("phony_dim_0", np.arange(3.0), {"units": "m"})}, attrs={"title": "t"})
    canonical = oracle_child.canonical_dims
    assert oracle_child.difference(canonical(ds), canonical(same)) is None
    for other in (
        same.assign_attrs(title="u"),
        same.assign(v=same.v + 1),
        same.assign(v=same.v.assign_attrs(units="km")),
        same.rename_dims(phony_dim_0="x"),
    ):
        assert oracle_child.difference(canonical(ds), canonical(other)) is not None
    assert oracle_child.difference(ds, ValueError("refused")) is not None
    assert oracle_child.difference(KeyError("a"), KeyError("b")) is None
