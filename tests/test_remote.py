"""Reads of HDF5 files on HTTP servers and in S3 (moto's server), started here on 127.0.0.1.

Every read is compared with the same read of the local copy; the servers
inject 503s, bodies cut short and replaced objects.
"""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import tables
from helpers import pytables_read, records, run_child
from servers import RangeServer

import dask_tables
from dask_tables import diagnostics
from dask_tables.errors import FileChangedError, NotHDF5FileError
from dask_tables.remote import shadow as shadows
from dask_tables.remote.transport import RemoteFile
from dask_tables.remote.urls import StorageOptions

pytest.importorskip("obstore")
pytest.importorskip("h5py")

pytestmark = pytest.mark.usefixtures("own_shadow_cache")

SECRET = "SECRETXYZ-never-shown"
DATA = np.arange(300 * 200, dtype="f8").reshape(300, 200) * 0.5


def write_sample(path) -> None:
    """Nodes of each kind the direct path reads, plus a small and a large contiguous array."""
    with tables.open_file(path, "w") as f:
        f.create_carray("/", "zlib", obj=DATA, chunkshape=(10, 200), filters=tables.Filters(1, shuffle=True))
        f.create_carray(
            "/", "blosc2", obj=DATA, chunkshape=(16, 50), filters=tables.Filters(5, complib="blosc2:zstd")
        )
        e = f.create_earray("/", "earray", atom=tables.Int32Atom(), shape=(0, 3), chunkshape=(64, 3))
        e.append(np.arange(3000, dtype="i4").reshape(1000, 3))
        f.create_group("/", "g", title="a group")
        f.create_table("/g", "table", obj=records(2000), chunkshape=(128,))
        f.create_array("/", "small", obj=np.arange(10))
        f.create_array("/", "large_contiguous", obj=np.arange(100_000, dtype="f8"))
        f.root.zlib.attrs.units = "m/s"


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """An HTTP server over a folder holding ``sample.h5``."""
    root = tmp_path_factory.mktemp("served")
    write_sample(root / "sample.h5")
    with RangeServer(root) as server:
        yield server, root


@pytest.fixture(scope="module")
def s3(s3_bucket, tmp_path_factory):
    """The S3 bucket holding ``sample.h5``, ``run-1.h5`` and ``run-2.h5``: (bucket, options, folder).

    The options give the secret SECRET (moto takes any), nested as s3fs
    nests the endpoint.
    """
    root = tmp_path_factory.mktemp("s3")
    write_sample(root / "sample.h5")
    for key in ("sample.h5", "run-1.h5", "run-2.h5"):
        s3_bucket.put(key, root / "sample.h5")
    options = {
        "key": "testing",
        "secret": SECRET,
        "client_kwargs": {"endpoint_url": s3_bucket.endpoint, "region_name": "us-east-1"},
    }
    return s3_bucket, options, root


@pytest.mark.parametrize(
    ("node", "field"),
    [("/zlib", None), ("/blosc2", None), ("/earray", None), ("/g/table", "pos/x"), ("/g/table", None)],
)
def test_http_equals_local(served, node, field) -> None:
    server, root = served
    x = dask_tables.from_tables(server.url + "/sample.h5", node, field=field)
    expected = pytables_read(root / "sample.h5", node, field)
    np.testing.assert_array_equal(x.compute(scheduler="threads"), expected)
    np.testing.assert_array_equal(x[5:37:3].compute(), expected[5:37:3])
    assert x.name == dask_tables.from_tables(server.url + "/sample.h5", node, field=field).name


def test_small_contiguous_node_reads_large_one_is_refused(served) -> None:
    server, _ = served
    url = server.url + "/sample.h5"
    np.testing.assert_array_equal(dask_tables.from_tables(url, "/small").compute(), np.arange(10))
    with pytest.raises(ValueError, match=r"sample\.h5: node /large_contiguous: reads go through HDF5"):
        dask_tables.from_tables(url, "/large_contiguous")


def test_s3_equals_local_and_glob(s3) -> None:
    _, options, root = s3
    x = dask_tables.from_tables("s3://bucket/sample.h5", "/zlib", storage_options=options)
    np.testing.assert_array_equal(x.compute(), DATA)
    both = dask_tables.from_tables("s3://bucket/run-*.h5", "/blosc2", storage_options=options)
    np.testing.assert_array_equal(both.compute(), np.concatenate([DATA, DATA]))
    table = dask_tables.from_tables("s3://bucket/sample.h5", "/g/table", storage_options=options)
    np.testing.assert_array_equal(table.compute(), pytables_read(root / "sample.h5", "/g/table"))


def test_s3_replaced_object_raises_naming_the_url(s3) -> None:
    bucket, options, root = s3
    bucket.put("replaced.h5", root / "sample.h5")
    x = dask_tables.from_tables("s3://bucket/replaced.h5", "/zlib", storage_options=options)
    bucket.put("replaced.h5", (root / "sample.h5").read_bytes()[:-1] + b"!")
    with pytest.raises(
        FileChangedError, match=r"s3://bucket/replaced\.h5: node /zlib: the file changed"
    ) as err:
        x.compute()
    assert SECRET not in str(err.value)


def test_secrets_never_shown(s3) -> None:
    _, options, _ = s3
    x = dask_tables.from_tables("s3://bucket/sample.h5", "/zlib", storage_options=options)
    source = next(v for v in x.dask.values() if isinstance(v, dask_tables.TablesSource))
    assert SECRET not in repr(source) and SECRET not in repr(source.remote) and SECRET not in str(x.dask)
    assert pickle.loads(pickle.dumps(source)).remote.options["secret"] == SECRET  # travels to workers
    with pytest.raises(FileNotFoundError, match=r"s3://bucket/missing\.h5: no such object") as err:
        dask_tables.from_tables("s3://bucket/missing.h5", "/zlib", storage_options=options)
    assert SECRET not in str(err.value)
    with pytest.raises(ValueError, match="storage_options not accepted") as err:
        dask_tables.from_tables("s3://bucket/sample.h5", "/zlib", storage_options={"no_such_option": SECRET})
    assert SECRET not in str(err.value)


def test_url_password_and_query_never_shown_and_the_query_is_sent(tmp_path) -> None:
    """A presigned URL's query goes with every request; it and a URL's password never show in a message."""
    write_sample(tmp_path / "a.h5")
    with RangeServer(tmp_path, token="sig-S3CR3T") as server:
        host = server.url.removeprefix("http://")
        signed = f"http://reader:pw-S3CR3T@{host}/a.h5?X-Amz-Expires=60&token=sig-S3CR3T"
        x = dask_tables.from_tables(signed, "/zlib", chunks=(100, 200))
        np.testing.assert_array_equal(x.compute(scheduler="threads"), DATA)
        assert "S3CR3T" not in repr(x) and "S3CR3T" not in str(x.dask)
        with pytest.raises(PermissionError, match=r"a\.h5: access denied") as err:  # the query left out
            dask_tables.from_tables(f"http://reader:pw-S3CR3T@{host}/a.h5", "/zlib")
        assert "S3CR3T" not in str(err.value)
        server.inject(*["503"] * 40)  # more than the retries: the store's own error quotes the URL
        with pytest.raises(OSError, match=r"a\.h5") as err:
            x.compute(scheduler="threads")
        assert "S3CR3T" not in str(err.value), str(err.value)


def test_replaced_file_on_http_raises(tmp_path) -> None:
    write_sample(tmp_path / "a.h5")
    with RangeServer(tmp_path) as server:
        x = dask_tables.from_tables(server.url + "/a.h5", "/zlib", chunks=(100, 200))
        shutil.copy(tmp_path / "a.h5", tmp_path / "b.h5")
        (tmp_path / "b.h5").replace(tmp_path / "a.h5")  # same bytes, another version
        with pytest.raises(FileChangedError, match=r"/a\.h5: node /zlib: the file changed.*from_tables"):
            x.compute()


def test_throttling_and_cut_bodies_are_retried(tmp_path) -> None:
    write_sample(tmp_path / "a.h5")
    with RangeServer(tmp_path) as server:
        x = dask_tables.from_tables(server.url + "/a.h5", "/zlib", chunks=(100, 200))
        server.inject("503", "503", "truncate", "503", "truncate")
        np.testing.assert_array_equal(x.compute(scheduler="threads"), DATA)


def test_a_slice_moves_only_its_chunks(tmp_path) -> None:
    rows = np.arange(100_000 * 16, dtype="f8").reshape(100_000, 16)
    with tables.open_file(tmp_path / "a.h5", "w") as f:
        f.create_carray("/", "x", obj=rows, chunkshape=(1000, 16))  # uncompressed: 12.8 MB
    size = (tmp_path / "a.h5").stat().st_size
    with RangeServer(tmp_path) as server:
        x = dask_tables.from_tables(server.url + "/a.h5", "/x")
        server.reset_counts()
        with diagnostics.collect() as stats:
            np.testing.assert_array_equal(x[:1000].compute(), rows[:1000])
        assert server.bytes_sent <= 0.05 * size
        assert stats["remote_requests"] >= 1
        server.reset_counts()
        np.testing.assert_array_equal(x.compute(scheduler="threads"), rows)
        assert server.bytes_sent <= 1.05 * size  # no whole-object download on top of the reads


def test_shadow_built_once_per_version_and_found_on_disk(served) -> None:
    server, _ = served
    remote = RemoteFile(server.url + "/sample.h5", StorageOptions()).resolve()
    built = shadows.shadow_of(remote)
    assert built.requests >= 1
    shadows.clear_process_cache()
    server.reset_counts()
    found = shadows.shadow_of(remote)
    assert (found.path, found.requests, server.requests) == (built.path, 0, 0)


def far_metadata_file(path) -> None:
    """Metadata written after 2 MB of chunks: groups, attributes, a table, more arrays."""
    with tables.open_file(path, "w") as f:
        f.create_carray("/", "first", obj=np.arange(250_000, dtype="f8"), chunkshape=(4096,))
    with tables.open_file(path, "a") as f:
        group = f.create_group("/", "later", title="written last")
        group._v_attrs.note = {"a": [1, 2, 3]}
        f.create_table(group, "t", obj=records(300), chunkshape=(32,))
        f.create_carray(group, "z", obj=np.arange(50_000.0), chunkshape=(1000,), filters=tables.Filters(3))
        f.root.first.attrs.units = "m"


WALK = """
import sys, tables
sys.path.insert(0, {root!r})
from dask_tables.array.verdict import direct_storage
from dask_tables.hdf5.chunkindex import build_index
out = []
with tables.open_file(sys.argv[1]) as f:
    for node in f.walk_nodes():
        attrs = {{n: repr(node._v_attrs[n]) for n in node._v_attrs._v_attrnames}}
        out.append((node._v_pathname, type(node).__name__, sorted(attrs.items())))
        if isinstance(node, tables.Leaf):
            out.append((repr(node.dtype), node.shape, node.chunkshape, repr(node.filters)))
            if node.chunkshape is not None:
                index = build_index(node)
                out.append((index.offsets.tolist(), index.sizes.tolist(), direct_storage(node) is not None))
            if isinstance(node, tables.Table):
                out.append(repr(node.description))
print(repr(out))
"""


def test_unfetched_bytes_never_read(tmp_path) -> None:
    """Opening and walking a shadow reads only fetched bytes: two poisons give the local file's walk."""
    far_metadata_file(tmp_path / "far.h5")
    script = tmp_path / "walk.py"
    script.write_text(WALK.format(root=str(Path(dask_tables.__file__).parent.parent)))
    with RangeServer(tmp_path) as server:
        remote = RemoteFile(server.url + "/far.h5", StorageOptions()).resolve()
        paths = [
            shadows.build_shadow(remote, tmp_path / "shadows" / name, poison, poison_holes=True).path
            for name, poison in (("a.h5", b"\xa5"), ("b.h5", b"\x5a"))
        ]
    walks = [_walk_in_child(script, path) for path in [*paths, tmp_path / "far.h5"]]
    assert walks[0] == walks[1] == walks[2]
    assert "/later/t" in walks[0]
    shadow_bytes = (tmp_path / "shadows" / "a.h5").stat().st_size
    assert shadow_bytes == (tmp_path / "far.h5").stat().st_size


def _walk_in_child(script: Path, path) -> str:
    done = run_child(script, path, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_poison_fails_loudly(tmp_path) -> None:
    """A byte of metadata that was not fetched (poisoned here on purpose) makes the open fail, not read zeros."""
    far_metadata_file(tmp_path / "far.h5")
    with RangeServer(tmp_path) as server:
        remote = RemoteFile(server.url + "/far.h5", StorageOptions()).resolve()
        shadow = shadows.build_shadow(remote, tmp_path / "shadow.h5")
    import h5py

    with h5py.File(tmp_path / "far.h5", "r") as f:
        header = h5py.h5o.get_info(f["later/t"].id).addr  # the table's object header
    blob = bytearray((tmp_path / "shadow.h5").read_bytes())
    blob[header : header + 64] = shadows.POISON * 64  # as if those bytes had not been fetched
    (tmp_path / "shadow.h5").write_bytes(bytes(blob))
    names = ["/first", "/later", "/later/t", "/later/z"]
    with pytest.raises(
        NotHDF5FileError, match=r"far\.h5: PyTables does not find 1 of the object.s nodes.*first: /later/t"
    ):
        shadows.verify_shadow(shadow.path, names, remote.name)


def test_read_table_on_urls_equals_local(served, s3) -> None:
    server, root = served
    _, options, _ = s3
    local = dask_tables.read_table(
        root / "sample.h5", "/g/table", columns=["a", "pos/x"], where="a % 7 == 1", chunksize=300
    )
    expected = local.compute()
    for url, storage_options in ((server.url + "/sample.h5", None), ("s3://bucket/sample.h5", options)):
        frame = dask_tables.read_table(
            url, "/g/table", columns=["a", "pos/x"], where="a % 7 == 1", chunksize=300,
            storage_options=storage_options,
        )  # fmt: skip
        got = frame.compute(scheduler="threads")
        assert frame.divisions == local.divisions
        assert got.equals(expected)
    indexed = dask_tables.read_table(server.url + "/sample.h5", "/g/table", index="a", columns=["pos/y"])
    assert indexed.known_divisions
    assert indexed.compute().equals(
        dask_tables.read_table(root / "sample.h5", "/g/table", index="a", columns=["pos/y"]).compute()
    )


def test_read_table_of_a_pandas_frame_on_a_url(tmp_path) -> None:
    """Once refused (NotImplementedError); now equal to the local read (tests/test_remote_frames.py has more)."""
    import pandas as pd

    pd.DataFrame({"x": np.arange(10)}).to_hdf(tmp_path / "p.h5", key="df", format="table")
    with RangeServer(tmp_path) as server:
        got = dask_tables.read_table(server.url + "/p.h5", "/df").compute()
    pd.testing.assert_frame_equal(got, dask_tables.read_table(tmp_path / "p.h5", "/df").compute())


def test_cluster_of_processes_reads_urls(served, cluster_client) -> None:
    """Workers (other processes) build or find the shadow and the chunk index themselves."""
    server, _ = served
    x = dask_tables.from_tables(server.url + "/sample.h5", "/blosc2", chunks=(64, 200))
    np.testing.assert_array_equal(cluster_client.compute(x).result(), DATA)
    frame = dask_tables.read_table(server.url + "/sample.h5", "/g/table", columns=["a"], where="a > 1500")
    got = cluster_client.compute(frame).result()
    assert got["a"].tolist() == list(range(1501, 2000))


def test_each_worker_reads_a_chunk_index_once(served, cluster_client) -> None:
    """Two reductions of one URL on 2 worker processes: a worker that read chunks built the index once."""
    server, root = served
    write_sample(root / "indexed.h5")  # an object no worker has read yet
    x = dask_tables.from_tables(server.url + "/indexed.h5", "/zlib", chunks=(30, 200))
    before = diagnostics.gather(cluster_client)
    assert cluster_client.compute(x.sum()).result() == DATA.sum()
    np.testing.assert_array_equal(cluster_client.compute(x.mean(axis=0)).result(), DATA.mean(axis=0))
    after = diagnostics.gather(cluster_client)
    grown = {
        worker: {key: after[worker][key] - before[worker][key] for key in ("index_builds", "remote_requests")}
        for worker in after
    }
    assert len(grown) == 2
    for counts in grown.values():  # a worker that read no chunk built nothing
        assert counts["index_builds"] == (1 if counts["remote_requests"] else 0), grown
    assert sum(counts["remote_requests"] for counts in grown.values()) >= 2 * x.npartitions


def test_server_without_etag_uses_last_modified(tmp_path) -> None:
    """No ETag: reads are conditional on Last-Modified (If-Unmodified-Since); a replaced file raises."""
    import os

    write_sample(tmp_path / "sample.h5")
    with RangeServer(tmp_path, etags=False) as server:
        url = server.url + "/sample.h5"
        remote = RemoteFile(url, StorageOptions()).resolve()
        assert remote.version is not None and remote.version.etag is None
        x = dask_tables.from_tables(url, "/zlib")
        small = dask_tables.from_tables(url, "/small")  # read from the shadow: only HEAD guards it
        np.testing.assert_array_equal(x.compute(), DATA)
        np.testing.assert_array_equal(small.compute(), np.arange(10))
        with tables.open_file(tmp_path / "sample.h5", "a") as f:  # same size, new values
            f.root.zlib[0] = -1.0
            f.root.small[0] = -1
        later = os.stat(tmp_path / "sample.h5").st_mtime + 10
        os.utime(tmp_path / "sample.h5", (later, later))
        with pytest.raises(FileChangedError, match=r"sample\.h5.*no longer has last modified"):
            x.compute()  # the ranged GET's If-Unmodified-Since fails (412)
        with pytest.raises(FileChangedError, match=r"sample\.h5.*last modified"):
            small.compute()  # the HEAD finds another Last-Modified


def test_validate_on_a_url_probes_the_shadow(served) -> None:
    """validate=True probes, in a child process, the shadow PyTables will open: reads as without it."""
    server, root = served
    x = dask_tables.from_tables(server.url + "/sample.h5", "/zlib", validate=True)
    np.testing.assert_array_equal(x.compute(), pytables_read(root / "sample.h5", "/zlib"))
