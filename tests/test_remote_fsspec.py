"""Schemes read through fsspec (``dask_tables.remote.fsspec_store``): ftp:// from pyftpdlib's server
started here on 127.0.0.1, and fsspec's memory:// filesystem.

Values equal the same reads of the local file; an object replaced after the graph was built
raises ``FileChangedError`` naming the URL (fsspec reads are not conditional: the version is
asked again after each batch); writes are refused with the reason; the password never shows.
"""

from __future__ import annotations

import os
import shutil

import dask
import fsspec
import numpy as np
import pandas as pd
import pytest
import tables
from servers import FtpServer

import dask_tables
import dask_tables.optimize
from dask_tables.remote.transport import RemoteFile
from dask_tables.remote.urls import StorageOptions

pytest.importorskip("pyftpdlib")
pytest.importorskip("h5py")

pytestmark = pytest.mark.usefixtures("own_shadow_cache")

ARRAY = np.arange(60000.0).reshape(3000, 20)
FRAME = pd.DataFrame({"a": np.arange(5000), "b": np.arange(5000) * 0.25})


def _write(path, scale: float = 1.0) -> None:
    with tables.open_file(path, "w") as f:
        f.create_carray(
            "/", "x", obj=ARRAY * scale, chunkshape=(32, 20), filters=tables.Filters(1, shuffle=True)
        )
    FRAME.to_hdf(path, key="df", format="table", data_columns=["a"])


@pytest.fixture(scope="module")
def ftp(tmp_path_factory):
    """An FTP server over a folder holding ``data.h5`` and ``run-0.h5``, ``run-1.h5``."""
    root = tmp_path_factory.mktemp("ftp")
    _write(root / "data.h5")
    for i in range(2):
        _write(root / f"run-{i}.h5", scale=i + 1)
    with FtpServer(root, lifetime=300) as server:
        yield server, root


@pytest.mark.parametrize("scheduler", ["threads", "processes"])
def test_ftp_array_equals_local(ftp, scheduler) -> None:
    server, _ = ftp
    x = dask_tables.from_tables(f"{server.url}/data.h5", "/x", storage_options=server.storage_options)
    with dask.config.set(scheduler=scheduler):
        np.testing.assert_array_equal(x[5:2900:7].compute(), ARRAY[5:2900:7])
        assert float(x.mean().compute()) == ARRAY.mean()


def test_ftp_tables_and_globs_equal_local(ftp) -> None:
    server, root = ftp
    options = server.storage_options
    for kwargs in ({}, {"where": "a > 4100"}, {"columns": ["b"]}):
        got = dask_tables.read_table(f"{server.url}/data.h5", "/df", storage_options=options, **kwargs)
        want = dask_tables.read_table(root / "data.h5", "/df", **kwargs)
        pd.testing.assert_frame_equal(got.compute(), want.compute())
    runs = dask_tables.from_tables(f"{server.url}/run-*.h5", "/x", storage_options=options)
    np.testing.assert_array_equal(runs.compute(), np.concatenate([ARRAY, ARRAY * 2]))


def test_ftp_replaced_object_raises_naming_the_url(ftp, tmp_path) -> None:
    server, root = ftp
    shutil.copy(root / "data.h5", root / "moving.h5")
    url = f"{server.url}/moving.h5"
    x = dask_tables.from_tables(url, "/x", storage_options=server.storage_options)
    _write(tmp_path / "new.h5", scale=3)
    os.replace(tmp_path / "new.h5", root / "moving.h5")
    stat = os.stat(root / "moving.h5")
    os.utime(root / "moving.h5", (stat.st_atime, stat.st_mtime + 5))  # FTP's MLSD times are to the second
    with pytest.raises(dask_tables.FileChangedError, match=r"moving\.h5"):
        x.sum().compute(scheduler="threads")


def test_ftp_writes_refused_and_password_never_shown(ftp, tmp_path) -> None:
    server, _ = ftp
    options = server.storage_options
    with pytest.raises(ValueError, match="reads ftp:// through fsspec, and writes only where"):
        dask_tables.to_tables(np.ones(3), f"{server.url}/new.h5", "/x", storage_options=options)
    with pytest.raises(FileNotFoundError) as missing:
        dask_tables.from_tables(f"{server.url}/absent.h5", "/x", storage_options=options)
    assert "absent.h5" in str(missing.value) and server.PASSWORD not in str(missing.value)
    remote = RemoteFile(f"{server.url}/data.h5", StorageOptions(options))
    assert server.PASSWORD not in repr(remote)


def test_ftp_optimize_source_downloaded_and_destination_refused(ftp, tmp_path) -> None:
    server, root = ftp
    options = server.storage_options
    dask_tables.optimize.optimize_file(
        f"{server.url}/data.h5", tmp_path / "paged.h5", storage_options=options
    )
    np.testing.assert_array_equal(dask_tables.from_tables(tmp_path / "paged.h5", "/x").compute(), ARRAY)
    with pytest.raises(ValueError, match="reads ftp:// through fsspec"):
        dask_tables.optimize.optimize_file(
            root / "data.h5", f"{server.url}/out.h5", dst_storage_options=options
        )
    assert not (root / "out.h5").exists()


def test_memory_scheme_reads_and_globs(tmp_path) -> None:
    fs = fsspec.filesystem("memory")
    for i in range(2):
        _write(tmp_path / f"m{i}.h5", scale=i + 1)
        fs.pipe(f"/dask-tables-test/m{i}.h5", (tmp_path / f"m{i}.h5").read_bytes())
    try:
        x = dask_tables.from_tables("memory://dask-tables-test/m*.h5", "/x")
        np.testing.assert_array_equal(x.compute(scheduler="threads"), np.concatenate([ARRAY, ARRAY * 2]))
        got = dask_tables.read_table("memory://dask-tables-test/m1.h5", "/df", where="a < 10")
        pd.testing.assert_frame_equal(got.compute(), FRAME[FRAME.a < 10])
        one = dask_tables.from_tables("memory://dask-tables-test/m0.h5", "/x")
        fs.pipe("/dask-tables-test/m0.h5", (tmp_path / "m1.h5").read_bytes())  # replaced: a new object
        with pytest.raises(dask_tables.FileChangedError, match=r"m0\.h5"):
            one.sum().compute(scheduler="threads")
    finally:
        fs.rm("/dask-tables-test", recursive=True)


def test_pattern_in_a_chained_url_is_refused_with_the_reason() -> None:
    with pytest.raises(ValueError, match=r"chained URL \(with ::\) is not expanded"):
        dask_tables.from_tables("zip://d/x-*.h5::memory://dask-tables-test/archive.zip", "/x")


def test_scheme_fsspec_does_not_know() -> None:
    with pytest.raises(ValueError, match=r"nosuch://host/a\.h5: .*fsspec knows no nosuch://"):
        dask_tables.from_tables("nosuch://host/a.h5", "/x")
