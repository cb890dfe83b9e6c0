"""``dask-tables optimize``: a paged copy that PyTables, pandas and h5py read as the original.

The remote metadata walk of both files is counted on our Range server (127.0.0.1).
"""

from __future__ import annotations

import h5py
import numpy as np
import pandas as pd
import pytest
import tables
from servers import RangeServer

import dask_tables
from dask_tables.cli import main
from dask_tables.remote import shadow as shadows

pytest.importorskip("obstore")


def write_mixed(path) -> None:
    """A CArray, an EArray, a Table, attributes of each kind, and a pandas table with a data column."""
    with tables.open_file(path, "w", title="mixed") as f:
        c = f.create_carray(
            "/",
            "c",
            obj=np.arange(20_000.0).reshape(200, 100),
            chunkshape=(10, 100),
            filters=tables.Filters(1),
        )
        c.attrs.units = "m/s"
        c.attrs.flag = True
        c.attrs.scale = np.float32(0.5)
        e = f.create_earray("/g", "e", atom=tables.Int32Atom(), shape=(0, 3), createparents=True)
        e.append(np.arange(3000, dtype="i4").reshape(1000, 3))
        rows = np.array(
            [(i, i * 0.5, b"ab") for i in range(500)], dtype=[("a", "i4"), ("b", "f8"), ("s", "S3")]
        )
        f.create_table(
            "/g", "t", obj=rows, chunkshape=(64,), filters=tables.Filters(5, shuffle=True, fletcher32=True)
        )
    frame = pd.DataFrame({"a": np.arange(2000), "s": [f"v{i % 11}" for i in range(2000)]})
    frame.to_hdf(path, key="df", format="table", data_columns=["a"], complib="zlib", complevel=1)


def test_optimized_copy_reads_as_the_original(tmp_path, capsys) -> None:
    write_mixed(tmp_path / "plain.h5")
    assert main(["optimize", str(tmp_path / "plain.h5"), str(tmp_path / "paged.h5")]) == 0
    with h5py.File(tmp_path / "paged.h5") as f:
        plist = f.id.get_create_plist()
        assert plist.get_file_space_strategy()[0] == h5py.h5f.FSPACE_STRATEGY_PAGE
        assert plist.get_file_space_page_size() == 4 * 2**20
    with tables.open_file(tmp_path / "plain.h5") as a, tables.open_file(tmp_path / "paged.h5") as b:
        assert b.root._v_title == "mixed"
        for node in a.walk_nodes():
            copy = b.get_node(node._v_pathname)
            assert type(copy) is type(node)
            names = node._v_attrs._f_list("all")
            assert copy._v_attrs._f_list("all") == names
            for name in names:
                was, now = node._v_attrs[name], copy._v_attrs[name]
                assert type(now) is type(was) and repr(now) == repr(was), (node, name)
            if isinstance(node, tables.Leaf):
                assert copy.chunkshape == node.chunkshape
                assert repr(copy.filters) == repr(node.filters)
                np.testing.assert_array_equal(copy.read(), node.read())
    plain, paged = pd.read_hdf(tmp_path / "plain.h5", "df"), pd.read_hdf(tmp_path / "paged.h5", "df")
    pd.testing.assert_frame_equal(paged, plain)
    pd.testing.assert_frame_equal(
        pd.read_hdf(tmp_path / "paged.h5", "df", where="a > 1990"), plain[plain.a > 1990]
    )
    with h5py.File(tmp_path / "plain.h5") as a, h5py.File(tmp_path / "paged.h5") as b:
        a.visititems(
            lambda name, obj: (
                np.testing.assert_array_equal(b[name][()], obj[()]) if isinstance(obj, h5py.Dataset) else None
            )
        )
    assert main(["optimize", str(tmp_path / "plain.h5"), str(tmp_path / "paged.h5")]) == 2
    assert "never overwritten" in capsys.readouterr().err


def test_paged_copy_needs_fewer_requests(tmp_path, monkeypatch) -> None:
    write_mixed(tmp_path / "plain.h5")
    dask_tables.optimize.optimize_file(tmp_path / "plain.h5", tmp_path / "paged.h5")
    counts = {}
    with RangeServer(tmp_path, lifetime=120) as server:
        for name in ("plain.h5", "paged.h5"):
            monkeypatch.setenv("DASK_TABLES_CACHE", str(tmp_path / f"cache-{name}"))
            shadows.clear_process_cache()
            server.reset_counts()
            x = dask_tables.from_tables(f"{server.url}/{name}", "/c")  # the metadata walk: a cold shadow
            counts[name] = server.requests
            np.testing.assert_array_equal(x.compute(), np.arange(20_000.0).reshape(200, 100))
    shadows.clear_process_cache()
    print("metadata walk requests:", counts)
    assert counts["paged.h5"] < counts["plain.h5"]
