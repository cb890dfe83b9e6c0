"""``dask-tables info``: what a file holds, compared with PyTables, and how dask_tables reads each node."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tables
from helpers import records, registry_is_empty

from dask_tables import NotHDF5FileError, TablesSource
from dask_tables.cli import main
from dask_tables.info import NodeInfo, direct_read_reason, format_table, inspect_file, to_json


@pytest.fixture
def info_file(tmp_path):
    """PyTables nodes of every kind, plus h5py datasets that HDF5 must read itself."""
    h5py = pytest.importorskip("h5py")
    path = tmp_path / "info.h5"
    with tables.open_file(path, "w") as f:
        f.create_array("/", "plain", obj=np.arange(10, dtype="i2"))
        f.create_carray(
            "/",
            "zipped",
            obj=np.zeros((100, 40)),
            chunkshape=(10, 40),
            filters=tables.Filters(complevel=3, complib="zlib", shuffle=True),
        )
        group = f.create_group("/", "group")
        f.create_table(group, "table", obj=records(100), chunkshape=(32,))
        f.create_vlarray(group, "ragged", tables.Int32Atom())
        f.create_soft_link("/", "link", "/zipped")
    with h5py.File(path, "a") as f:
        f.create_dataset("scaled", data=np.arange(1000.0), chunks=(100,), scaleoffset=2)
        twelve_bits = h5py.h5t.STD_I16LE.copy()
        twelve_bits.set_precision(12)
        dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
        dcpl.set_chunk((10,))
        h5py.h5d.create(f.id, b"p12", twelve_bits, h5py.h5s.create_simple((40,)), dcpl=dcpl)
        f.create_dataset("mixed", data=np.zeros(10, dtype=[("a", "<i4"), ("b", ">i4")]), chunks=(5,))
    return path


def by_path(infos):
    return {info.path: info for info in infos}


def test_every_node_is_described_as_pytables_sees_it(info_file):
    infos = inspect_file(info_file)
    assert [i.path for i in infos] == [
        "/",
        "/group",
        "/group/ragged",
        "/group/table",
        "/link",
        "/mixed",
        "/p12",
        "/plain",
        "/scaled",
        "/zipped",
    ]
    found = by_path(infos)
    with tables.open_file(info_file) as f:
        for info in infos:
            node = f.get_node(info.path)
            expected_kind = "Group" if isinstance(node, tables.Group) else type(node).__name__
            assert info.kind == expected_kind
            if isinstance(node, tables.Leaf):
                assert info.shape == tuple(node.shape)
                assert info.chunkshape == (None if node.chunkshape is None else tuple(node.chunkshape))
                if not isinstance(node, tables.VLArray):  # HDF5 cannot tell a VLArray's size
                    assert info.size_on_disk == node.size_on_disk
    assert found["/group/table"].depth == 2 and found["/group"].depth == 1 and found["/"].depth == 0
    assert found["/zipped"].dtype == "float64"
    assert found["/group/table"].dtype == "5 columns"  # a, pos/x, pos/y, m, s
    assert [name for name, _ in found["/zipped"].filters] == ["shuffle", "deflate"]
    assert found["/zipped"].ratio == pytest.approx(100 * 40 * 8 / found["/zipped"].size_on_disk)
    assert found["/zipped"].ratio > 10
    assert registry_is_empty()


def test_read_path_and_its_reason(info_file):
    found = by_path(inspect_file(info_file))
    assert (found["/zipped"].read, found["/zipped"].reason) == ("direct", None)
    assert found["/group/table"].read == "direct"
    assert (found["/plain"].read, found["/plain"].reason) == ("hdf5", "contiguous (not chunked)")
    assert found["/scaled"].read == "hdf5" and "'scaleoffset'" in found["/scaled"].reason
    assert found["/p12"].read == "hdf5" and "converts on read" in found["/p12"].reason
    assert found["/mixed"].read == "hdf5" and "mixed byte order" in found["/mixed"].reason
    assert found["/group/ragged"].read is None and "VLArray" in found["/group/ragged"].reason
    assert found["/link"].read is None and found["/link"].reason == "link to /zipped"
    assert found["/group"].read is None


def test_the_verdict_is_the_one_the_reads_use(info_file):
    """info's direct/HDF5 column agrees with the storage from_tables reads directly, for every readable node."""
    for info in inspect_file(info_file):
        if info.read is not None:
            storage = TablesSource.open(info_file, info.path).storage
            assert (storage is not None) == (info.read == "direct"), info.path


def test_direct_read_reason_of_an_open_leaf(info_file):
    with tables.open_file(info_file) as f:
        assert direct_read_reason(f.root.zipped) is None
        assert direct_read_reason(f.root.plain) == "contiguous (not chunked)"


def test_a_leaf_or_a_subtree(info_file):
    assert [i.path for i in inspect_file(info_file, "/zipped")] == ["/zipped"]
    assert [i.path for i in inspect_file(info_file, "group")] == ["/group", "/group/ragged", "/group/table"]


def test_table_text_lists_every_column_for_every_node(info_file):
    infos = inspect_file(info_file)
    lines = format_table(infos).splitlines()
    assert lines[0].split() == [
        "node",
        "kind",
        "shape",
        "dtype",
        "chunkshape",
        "filters",
        "on",
        "disk",
        "ratio",
        "read",
    ]
    assert len(lines) == 1 + len(infos)
    zipped = next(line for line in lines if line.lstrip().startswith("zipped"))
    assert zipped.split()[:8] == [
        "zipped",
        "CArray",
        "(100,",
        "40)",
        "float64",
        "(10,",
        "40)",
        "shuffle+deflate(3)",
    ]
    assert zipped.endswith("direct")
    plain = next(line for line in lines if line.lstrip().startswith("plain"))
    assert plain.endswith("HDF5: contiguous (not chunked)")
    assert next(line for line in lines if " Table " in line).startswith("    table ")  # indented under group/


def test_json_is_the_same_information(info_file):
    infos = inspect_file(info_file)
    loaded = json.loads(to_json(infos))
    assert [r["path"] for r in loaded] == [i.path for i in infos]
    zipped = next(r for r in loaded if r["path"] == "/zipped")
    assert zipped["shape"] == [100, 40] and zipped["chunkshape"] == [10, 40]
    assert zipped["filters"] == [{"name": "shuffle", "params": [8]}, {"name": "deflate", "params": [3]}]
    assert zipped["read"] == "direct" and zipped["ratio"] == pytest.approx(by_path(infos)["/zipped"].ratio)


def test_cli_prints_the_table_and_json(info_file, capsys):
    assert main(["info", str(info_file)]) == 0
    assert capsys.readouterr().out.strip() == format_table(inspect_file(info_file))
    assert main(["info", str(info_file), "/group", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == json.loads(to_json(inspect_file(info_file, "/group")))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing.h5"], "missing.h5: no such file"),
        (["notes.h5"], "notes.h5: not an HDF5 file"),
        (["."], "is a directory"),
        (["info.h5", "/nope"], "info.h5: no node '/nope'"),
    ],
)
def test_cli_bad_input_exits_2_with_a_message(info_file, capsys, monkeypatch, args, message):
    monkeypatch.chdir(info_file.parent)
    (info_file.parent / "notes.h5").write_text("not HDF5")
    assert main(["info", *args]) == 2
    captured = capsys.readouterr()
    assert message in captured.err and captured.out == ""


def test_cli_without_a_file_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["info"])
    assert exit_info.value.code == 2
    assert "usage" in capsys.readouterr().err


def test_errors_are_specific(tmp_path):
    with pytest.raises(FileNotFoundError):
        inspect_file(tmp_path / "missing.h5")
    (tmp_path / "notes.h5").write_text("x")
    with pytest.raises(NotHDF5FileError):
        inspect_file(tmp_path / "notes.h5")


def test_dimension_scales_show_as_nodes_pytables_cannot_load(tmp_path):
    h5py = pytest.importorskip("h5py")
    path = tmp_path / "scales.h5"
    with h5py.File(path, "w") as f:
        scale = f.create_dataset("time", data=np.arange(4.0))
        scale.make_scale("time")
        f.create_dataset("v", data=np.zeros(4), chunks=(2,)).dims[0].attach_scale(scale)
    found = by_path(inspect_file(path))
    assert found["/time"].kind == "UnImplemented" and "cannot" in found["/time"].reason
    assert found["/v"].read == "direct"


def test_node_info_ratio_without_data():
    assert NodeInfo("/", "Group", 0).ratio is None
    assert NodeInfo("/x", "EArray", 0, size_on_disk=0, size_in_memory=0).ratio is None
