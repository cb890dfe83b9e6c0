"""``to_tables`` into new objects of moto's S3 server (and refused on HTTP), started here on 127.0.0.1.

What is written is read back from the URL and, downloaded, by PyTables and pandas.
"""

from __future__ import annotations

import gc
import os
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
