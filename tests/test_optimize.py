"""``dask-tables optimize``: a paged copy that PyTables, pandas and h5py read as the original.

The remote metadata walk of both files is counted on our Range server (127.0.0.1); copies from
and to URLs go through moto's S3 server and the Range server, both on 127.0.0.1.
"""

from __future__ import annotations

import json
import logging
import os

import h5py
import numpy as np
import pandas as pd
import pytest
import tables
from helpers import ROOT, run_child
from servers import RangeServer, moto_server

import dask_tables
from dask_tables.cli import main
from dask_tables.remote import shadow as shadows
from dask_tables.remote.transport import RemoteFile
from dask_tables.remote.urls import StorageOptions

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


@pytest.fixture(scope="module")
def s3():
    """moto's S3 server with an empty bucket: (boto3 client, storage_options)."""
    boto3 = pytest.importorskip("boto3")
    pytest.importorskip("moto.server")
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    with moto_server() as endpoint:
        client = boto3.client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            region_name="us-east-1",
        )
        client.create_bucket(Bucket="bucket")
        yield (
            client,
            {"key": "testing", "secret": "testing", "endpoint_url": endpoint, "region_name": "us-east-1"},
        )


def assert_same_contents(plain, paged) -> None:
    """``paged`` is paged, and h5py and pandas read from it what they read from ``plain``."""
    with h5py.File(plain) as a, h5py.File(paged) as b:
        assert b.id.get_create_plist().get_file_space_strategy()[0] == h5py.h5f.FSPACE_STRATEGY_PAGE
        names = []

        def same(name, obj) -> None:
            names.append(name)
            assert sorted(b[name].attrs) == sorted(obj.attrs), name
            if isinstance(obj, h5py.Dataset):
                np.testing.assert_array_equal(b[name][()], obj[()])
                assert b[name].chunks == obj.chunks and b[name].compression == obj.compression

        a.visititems(same)
        assert len(names) > 10
    pd.testing.assert_frame_equal(pd.read_hdf(paged, "df"), pd.read_hdf(plain, "df"))


def test_optimize_from_and_to_s3(s3, tmp_path, monkeypatch, capsys) -> None:
    client, options = s3
    monkeypatch.setenv("DASK_TABLES_CACHE", str(tmp_path / "cache"))
    write_mixed(tmp_path / "plain.h5")
    client.upload_file(str(tmp_path / "plain.h5"), "bucket", "in/plain.h5")
    # an object to a local file
    dask_tables.optimize.optimize_file("s3://bucket/in/plain.h5", tmp_path / "a.h5", storage_options=options)
    assert_same_contents(tmp_path / "plain.h5", tmp_path / "a.h5")
    # a local file to a new object, then an object to an object, by the command line
    dask_tables.optimize.optimize_file(tmp_path / "plain.h5", "s3://bucket/out/b.h5", storage_options=options)
    spec = json.dumps(options)
    assert (
        main(["optimize", "s3://bucket/in/plain.h5", "s3://bucket/out/c.h5", "--storage-options", spec]) == 0
    )
    assert "s3://bucket/out/c.h5: written, paged" in capsys.readouterr().out
    for key in ("b.h5", "c.h5"):
        client.download_file("bucket", f"out/{key}", str(tmp_path / key))
        assert_same_contents(tmp_path / "plain.h5", tmp_path / key)
    shadows.clear_process_cache()
    np.testing.assert_array_equal(
        dask_tables.from_tables("s3://bucket/out/c.h5", "/c", storage_options=options).compute(),
        np.arange(20_000.0).reshape(200, 100),
    )
    shadows.clear_process_cache()
    # an existing object is never replaced, and nothing is read before that is known
    was = client.get_object(Bucket="bucket", Key="out/b.h5")["ETag"]
    assert (
        main(["optimize", str(tmp_path / "plain.h5"), "s3://bucket/out/b.h5", "--storage-options", spec]) == 2
    )
    error = capsys.readouterr().err
    assert "s3://bucket/out/b.h5: exists" in error and "never overwritten" in error and "testing" not in error
    assert client.get_object(Bucket="bucket", Key="out/b.h5")["ETag"] == was
    with pytest.raises(FileNotFoundError, match=r"s3://bucket/in/missing\.h5"):
        dask_tables.optimize.optimize_file(
            "s3://bucket/in/missing.h5", tmp_path / "d.h5", storage_options=options
        )
    assert not (tmp_path / "d.h5").exists()


def test_optimize_from_http_to_s3(s3, tmp_path, monkeypatch) -> None:
    client, options = s3
    monkeypatch.setenv("DASK_TABLES_CACHE", str(tmp_path / "cache"))
    (tmp_path / "served").mkdir()
    write_mixed(tmp_path / "served" / "plain.h5")
    with RangeServer(tmp_path / "served", lifetime=120) as server:
        url = f"{server.url}/plain.h5"
        with pytest.raises(ValueError, match="an HTTP server is read-only"):
            dask_tables.optimize.optimize_file(tmp_path / "served" / "plain.h5", f"{server.url}/new.h5")
        assert server.requests == 0
        dask_tables.optimize.optimize_file(
            url, "s3://bucket/from-http.h5", dst_storage_options=options, storage_options={}
        )
        size = (tmp_path / "served" / "plain.h5").stat().st_size
        assert server.bytes_sent == size  # the source read once, whole
    client.download_file("bucket", "from-http.h5", str(tmp_path / "from-http.h5"))
    assert_same_contents(tmp_path / "served" / "plain.h5", tmp_path / "from-http.h5")
    assert os.listdir(tmp_path / "served") == ["plain.h5"]


def test_download_in_parts_and_of_a_replaced_object(tmp_path) -> None:
    data = np.random.default_rng(0).bytes(10_000)
    (tmp_path / "obj.bin").write_bytes(data)
    with RangeServer(tmp_path, lifetime=60) as server:
        remote = RemoteFile(f"{server.url}/obj.bin", StorageOptions()).resolve()
        server.reset_counts()
        remote.download(tmp_path / "copy.bin", part=1_000)
        assert (tmp_path / "copy.bin").read_bytes() == data
        assert server.requests == 10 and server.bytes_sent == 10_000
        with pytest.raises(FileExistsError):
            remote.download(tmp_path / "copy.bin")
        (tmp_path / "obj.bin").write_bytes(data[:-1] + b"x")  # replaced after the version was taken
        with pytest.raises(dask_tables.FileChangedError, match=r"obj\.bin"):
            remote.download(tmp_path / "stale.bin", part=1_000)
        assert not (tmp_path / "stale.bin").exists()


def test_remote_benchmark_reports_requests_before_and_after_optimize() -> None:
    done = run_child(
        ROOT / "benchmarks" / "bench_remote.py",
        "--section",
        "optimize",
        "--mb",
        1,
        "--rows",
        5000,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert any("metadata + index" in line and "whole read" in line for line in lines)
    for name in ("pandas table 5,000 rows, plain", "pandas table 5,000 rows, paged", "zlib CArray, paged"):
        row = next(line for line in lines if line.strip().startswith(name))
        requests = int(row.split("|")[1].split()[0])
        assert requests >= 1, row


def test_remote_benchmark_read_section_reports_every_anchor() -> None:
    """The read section runs small: every anchor prints a time and the mean the local read gives."""
    done = run_child(
        ROOT / "benchmarks" / "bench_remote.py", "--section", "read", "--mb", 1, "--repeat", 1, timeout=300
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    means = {
        line.split("(mean ")[1].rstrip(")") for line in lines if "(mean " in line and "slice" not in line
    }
    assert len(means) == 1, done.stdout  # every anchor read the same values
    for name in ("from_tables, local disk", "URL, cold", "URL, warm", "h5py on an fsspec", "download, then"):
        assert any(name in line for line in lines), (name, done.stdout)
    assert any(line.lstrip().startswith("kerchunk") for line in lines), (
        done.stdout
    )  # timed, or skipped saying why
