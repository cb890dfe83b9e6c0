"""``to_tables`` into new objects of moto's S3 server (and refused on HTTP), started here on 127.0.0.1.

What is written is read back from the URL and, downloaded, by PyTables and pandas.
"""

from __future__ import annotations

import gc
import os
import re
from pathlib import Path

import dask
import dask.array as da
import dask.dataframe as dd
import numpy as np
import pandas as pd
import pytest
import tables
from dask.delayed import Delayed
from servers import RangeServer

import dask_tables
from dask_tables.remote import shadow as shadows

pytest.importorskip("obstore")
pytest.importorskip("h5py")

DATA = np.arange(400 * 30, dtype="f8").reshape(400, 30) * 0.5


@pytest.fixture(autouse=True)
def _own_folders(tmp_path, own_shadow_cache):
    """Each test its own shadow cache and temporary folder (to see what a write leaves there)."""
    (tmp_path / "tmp").mkdir()
    with dask.config.set({"temporary-directory": str(tmp_path / "tmp")}):
        yield tmp_path / "tmp"


def download(bucket, key: str, path) -> str:
    Path(path).write_bytes(bucket.get(key))
    return str(path)


def test_array_written_to_new_object(s3_bucket, tmp_path, _own_folders) -> None:
    bucket, options = s3_bucket, s3_bucket.storage_options
    x = da.from_array(DATA, chunks=(100, 30))
    url = s3_bucket.url("out/array.h5")
    filters = tables.Filters(complib="zlib", complevel=1, shuffle=True)
    assert dask_tables.to_tables(x, url, "/g/x", filters=filters, storage_options=options) is None
    back = dask_tables.from_tables(url, "/g/x", storage_options=options)
    np.testing.assert_array_equal(back.compute(), DATA)
    with tables.open_file(download(bucket, "out/array.h5", tmp_path / "copy.h5")) as f:
        np.testing.assert_array_equal(f.root.g.x[:], DATA)
        assert isinstance(f.root.g.x, tables.CArray)
        assert f.root.g.x.filters.complib == "zlib"
    assert os.listdir(_own_folders) == []


def test_frame_written_to_new_object(s3_bucket, tmp_path, _own_folders) -> None:
    bucket, options = s3_bucket, s3_bucket.storage_options
    frame = pd.DataFrame(
        {"a": np.arange(500), "b": np.arange(500) * 0.5, "s": [f"v{i % 7}" for i in range(500)]}
    )
    url = s3_bucket.url("frame.h5")
    dask_tables.to_tables(
        dd.from_pandas(frame, npartitions=3), url, "/df", data_columns=["a"], storage_options=options
    )
    local = download(bucket, "frame.h5", tmp_path / "frame.h5")
    remote = dask_tables.read_table(url, "/df", storage_options=options).compute()
    pd.testing.assert_frame_equal(remote, dask_tables.read_table(local, "/df").compute())
    pd.testing.assert_frame_equal(pd.read_hdf(local, "df"), frame)
    pd.testing.assert_frame_equal(pd.read_hdf(local, "df", where="a > 495"), frame[frame.a > 495])
    assert os.listdir(_own_folders) == []


def test_lazy_write_uploads_when_computed(s3_bucket, _own_folders) -> None:
    bucket, options = s3_bucket, s3_bucket.storage_options
    url = s3_bucket.url("lazy.h5")
    result = dask_tables.to_tables({"/a": DATA, "/b": -DATA}, url, storage_options=options, compute=False)
    assert isinstance(result, Delayed)
    assert "lazy.h5" not in bucket.listing()
    result.compute(scheduler="threads")
    for node, expected in (("/a", DATA), ("/b", -DATA)):
        got = dask_tables.from_tables(url, node, storage_options=options).compute()
        np.testing.assert_array_equal(got, expected)
    assert os.listdir(_own_folders) == []


def fail(block: np.ndarray) -> np.ndarray:
    if block[0, 0] >= 100:
        raise ZeroDivisionError("a block failed")
    return block


@pytest.mark.parametrize("compute", [True, False])
def test_failed_write_leaves_no_object_and_no_file(s3_bucket, compute, _own_folders) -> None:
    bucket, options = s3_bucket, s3_bucket.storage_options
    x = da.from_array(DATA, chunks=(100, 30)).map_blocks(fail)
    url = s3_bucket.url(f"failed-{compute}.h5")
    with pytest.raises(ZeroDivisionError):
        result = dask_tables.to_tables(x, url, "/x", storage_options=options, compute=compute)
        if not compute:
            result.compute(scheduler="threads")
    assert f"failed-{compute}.h5" not in bucket.listing()
    if not compute:
        del result
        gc.collect()  # the lazy write's temporary folder goes with its graph
    assert os.listdir(_own_folders) == []


def test_existing_object_is_refused_unless_replaced(s3_bucket, _own_folders) -> None:
    options = s3_bucket.storage_options
    url = s3_bucket.url("existing.h5")
    dask_tables.to_tables(DATA, url, "/x", storage_options=options)
    for kwargs in ({}, {"overwrite": True}):
        with pytest.raises(FileExistsError, match="download it, write into the local copy"):
            dask_tables.to_tables(-DATA, url, "/y", storage_options=options, **kwargs)
    with pytest.raises(ValueError, match="append=True writes into an existing file"):
        dask_tables.to_tables(pd.DataFrame({"a": [1]}), url, "/df", append=True, storage_options=options)
    with pytest.raises(ValueError, match="region= writes into an existing file"):
        dask_tables.to_tables(DATA[:1], url, "/x", region=(slice(0, 1),), storage_options=options)
    np.testing.assert_array_equal(dask_tables.from_tables(url, "/x", storage_options=options).compute(), DATA)
    dask_tables.to_tables(-DATA, url, "/y", mode="w", storage_options=options)  # replaces the object
    shadows.clear_process_cache()
    np.testing.assert_array_equal(
        dask_tables.from_tables(url, "/y", storage_options=options).compute(), -DATA
    )
    with pytest.raises(tables.NoSuchNodeError):
        dask_tables.from_tables(url, "/x", storage_options=options)
    assert os.listdir(_own_folders) == []


def test_object_that_appears_meanwhile_is_kept(s3_bucket, _own_folders) -> None:
    bucket, options = s3_bucket, s3_bucket.storage_options
    url = s3_bucket.url("raced.h5")
    result = dask_tables.to_tables(DATA, url, "/x", storage_options=options, compute=False)
    bucket.put("raced.h5", b"another writer")
    with pytest.raises(FileExistsError, match="appeared there while the file was written"):
        result.compute()
    assert bucket.get("raced.h5") == b"another writer"
    assert os.listdir(_own_folders) == []


def test_http_is_refused_before_anything_runs(tmp_path, _own_folders) -> None:
    with RangeServer(tmp_path, lifetime=60) as server:
        with pytest.raises(ValueError, match="an HTTP server is read-only to dask_tables"):
            dask_tables.to_tables(DATA, server.url + "/new.h5", "/x")
        assert server.requests == 0
    assert not (tmp_path / "new.h5").exists()
    assert os.listdir(_own_folders) == []


PARTS = pd.DataFrame({"a": np.arange(90), "b": np.arange(90) * 0.25, "s": [f"t{i % 5}" for i in range(90)]})


def pieces(df: dd.DataFrame) -> list[pd.DataFrame]:
    """The rows of PARTS in each partition of ``df``, as pandas reads them back (not dask's string dtype)."""
    stops = np.cumsum(df.map_partitions(len).compute().tolist())
    return [PARTS.iloc[stop - n : stop] for stop, n in zip(stops, np.diff([0, *stops]), strict=True)]


def test_frame_one_object_per_partition(s3_bucket, tmp_path, _own_folders) -> None:
    """As locally (and dd.to_hdf): a ``*`` in the URL writes one object per partition, named by name_function."""
    bucket, options = s3_bucket, s3_bucket.storage_options
    df = dd.from_pandas(PARTS, npartitions=3)
    written = dask_tables.to_tables(df, "s3://bucket/parts/data_*.h5", "/df", storage_options=options)
    assert written == [f"s3://bucket/parts/data_{i}.h5" for i in range(3)]
    assert [k for k in bucket.listing() if k.startswith("parts/")] == [f"parts/data_{i}.h5" for i in range(3)]
    for i, expected in enumerate(pieces(df)):
        local = download(bucket, f"parts/data_{i}.h5", tmp_path / f"data_{i}.h5")
        pd.testing.assert_frame_equal(pd.read_hdf(local, "df"), expected)
    named = dask_tables.to_tables(
        df, "s3://bucket/named/run-*.h5", "/df", name_function=lambda i: f"p{i + 10}", storage_options=options
    )
    assert named == [f"s3://bucket/named/run-p{i}.h5" for i in (10, 11, 12)]
    local = download(bucket, "named/run-p11.h5", tmp_path / "p11.h5")
    pd.testing.assert_frame_equal(pd.read_hdf(local, "df"), pieces(df)[1])
    assert os.listdir(_own_folders) == []


def test_star_key_into_one_object(s3_bucket, tmp_path, _own_folders) -> None:
    """A ``*`` in the key: one node per partition, in the one object at the URL."""
    bucket, options = s3_bucket, s3_bucket.storage_options
    df = dd.from_pandas(PARTS, npartitions=3)
    url = "s3://bucket/nodes.h5"
    written = dask_tables.to_tables(df, url, "/data*", data_columns=["a"], storage_options=options)
    assert written == [url] * 3  # each partition's object, as dd.to_hdf returns its files
    local = download(bucket, "nodes.h5", tmp_path / "nodes.h5")
    oracle = str(tmp_path / "pandas.h5")  # the same nodes written by pandas: what its where selects
    for i, expected in enumerate(pieces(df)):
        expected.to_hdf(oracle, key=f"data{i}", format="table", data_columns=["a"])
        pd.testing.assert_frame_equal(pd.read_hdf(local, f"data{i}"), expected)
        pd.testing.assert_frame_equal(
            pd.read_hdf(local, f"data{i}", where="a > 40"), pd.read_hdf(oracle, f"data{i}", where="a > 40")
        )
    assert os.listdir(_own_folders) == []


def test_lazy_star_write_uploads_every_object_when_computed(s3_bucket, tmp_path, _own_folders) -> None:
    bucket, options = s3_bucket, s3_bucket.storage_options
    df = dd.from_pandas(PARTS, npartitions=2)
    result = dask_tables.to_tables(
        df, "s3://bucket/lazy/x-*.h5", "/df", storage_options=options, compute=False
    )
    assert isinstance(result, Delayed)
    assert not [k for k in bucket.listing() if k.startswith("lazy/")]
    result.compute(scheduler="threads")
    assert [k for k in bucket.listing() if k.startswith("lazy/")] == ["lazy/x-0.h5", "lazy/x-1.h5"]
    local = download(bucket, "lazy/x-1.h5", tmp_path / "x1.h5")
    pd.testing.assert_frame_equal(pd.read_hdf(local, "df"), pieces(df)[1])
    assert os.listdir(_own_folders) == []


def test_star_write_refuses_before_anything_runs(s3_bucket, _own_folders) -> None:
    """An object already at one of the URLs (mode="a"), two ``*``, or an array: nothing is written."""
    bucket, options = s3_bucket, s3_bucket.storage_options
    bucket.put("taken/y-1.h5", b"kept")
    df = dd.from_pandas(PARTS, npartitions=3)
    with pytest.raises(FileExistsError, match=re.escape("s3://bucket/taken/y-1.h5: the object exists")):
        dask_tables.to_tables(df, "s3://bucket/taken/y-*.h5", "/df", storage_options=options)
    assert [k for k in bucket.listing() if k.startswith("taken/")] == ["taken/y-1.h5"]
    assert bucket.get("taken/y-1.h5") == b"kept"
    with pytest.raises(ValueError, match="A maximum of one asterisk"):
        dask_tables.to_tables(df, "s3://bucket/two/z-*.h5", "/df*", storage_options=options)
    with pytest.raises(ValueError, match="one object per partition"):
        dask_tables.to_tables(DATA, "s3://bucket/two/a-*.h5", "/x", storage_options=options)
    assert not [k for k in bucket.listing() if k.startswith("two/")]
    # mode="w" replaces: every partition's object, the one that was there too
    dask_tables.to_tables(df, "s3://bucket/taken/y-*.h5", "/df", mode="w", storage_options=options)
    assert [k for k in bucket.listing() if k.startswith("taken/")] == [f"taken/y-{i}.h5" for i in range(3)]
    assert os.listdir(_own_folders) == []


BIG = np.random.default_rng(7).random((800_000,))  # 6.4 MB: more than one 5 MiB part


def test_file_over_the_single_put_limit_goes_up_in_parts(
    s3_bucket, tmp_path, monkeypatch, _own_folders
) -> None:
    """Above the limit: a HEAD, then a streamed multipart upload (the limit lowered to reach it here)."""
    from dask_tables.write import upload

    bucket, options = s3_bucket, s3_bucket.storage_options
    monkeypatch.setattr(upload, "SINGLE_PUT_LIMIT", 1 << 20)
    url = "s3://bucket/big/a.h5"
    dask_tables.to_tables(da.from_array(BIG, chunks=200_000), url, "/x", storage_options=options)
    with tables.open_file(download(bucket, "big/a.h5", tmp_path / "a.h5")) as f:
        np.testing.assert_array_equal(f.root.x[:], BIG)
    result = dask_tables.to_tables(BIG, "s3://bucket/big/b.h5", "/x", storage_options=options, compute=False)
    bucket.put("big/b.h5", b"another writer")
    with pytest.raises(FileExistsError, match="appeared there while the file was written"):
        result.compute()
    assert bucket.get("big/b.h5") == b"another writer"
    assert os.listdir(_own_folders) == []


def test_conditional_upload_does_not_copy_the_file_into_memory(s3_bucket, tmp_path) -> None:
    """The conditional PUT's body is the mapped file: the uploading process's heap does not grow by its size.

    In a child process (moto's server, here, keeps the object in this one's memory): a 32 MB
    file put with mode="create"; its peak anonymous memory (RssAnon) is sampled during the put.
    obstore given the path grows it by ~1.3x the file.
    """
    from helpers import run_python

    options = s3_bucket.storage_options
    code = f"""
        import os, threading, time
        import numpy as np
        from dask_tables.remote.transport import RemoteFile
        from dask_tables.remote.urls import StorageOptions
        from dask_tables.write.upload import put_file

        path = {str(tmp_path / "big.bin")!r}
        with open(path, "wb") as f:
            f.write(np.random.default_rng(1).bytes(32 << 20))

        def anon():
            for line in open("/proc/self/status"):
                if line.startswith("RssAnon"):
                    return int(line.split()[1]) << 10

        target = RemoteFile("s3://bucket/memory.bin", StorageOptions({options!r}))
        put_file(path, RemoteFile("s3://bucket/warm.bin", target.options), "create")  # the client set up
        base, peak, done = anon(), [0], threading.Event()

        def sample():
            while not done.is_set():
                peak[0] = max(peak[0], anon())
                time.sleep(0.002)

        sampler = threading.Thread(target=sample)
        sampler.start()
        put_file(path, target, "create")
        done.set()
        sampler.join()
        print((peak[0] - base) >> 20)
    """
    done = run_python(code, timeout=120)
    assert done.returncode == 0, done.stderr
    grown = int(done.stdout.split()[-1])
    assert grown < 12, f"the upload grew the heap by {grown} MiB for a 32 MiB file"
