"""Shared fixtures: real HDF5 files written by PyTables."""

from __future__ import annotations

import numpy as np
import pytest
import tables
from helpers import records
from servers import moto_bucket

from dask_tables.remote import shadow as shadows


@pytest.fixture
def sample_file(tmp_path):
    """A file with one node of each kind from_tables reads, and some it refuses."""
    path = tmp_path / "sample.h5"
    with tables.open_file(path, "w") as f:
        f.create_array("/", "contiguous", obj=np.arange(60, dtype="i2").reshape(6, 10))
        f.create_array("/", "python_list", obj=[1, 2, 3])
        f.create_array("/", "scalar", obj=np.float64(3.5))
        f.create_carray(
            "/",
            "carray",
            obj=np.arange(10_000, dtype="f8").reshape(100, 100),
            chunkshape=(7, 30),
            filters=tables.Filters(complevel=1, complib="zlib"),
        )
        f.create_carray("/", "big_endian", obj=np.arange(50, dtype=">i4"), chunkshape=(8,))
        f.create_carray("/", "cells", atom=tables.Int32Atom(shape=(2,)), shape=(9,), chunkshape=(4,))
        f.root.cells[:] = np.arange(18, dtype="i4").reshape(9, 2)
        f.create_earray("/", "empty_earray", atom=tables.Float32Atom(), shape=(0, 5))
        grown = f.create_earray("/", "earray", atom=tables.Float32Atom(), shape=(0, 5), chunkshape=(16, 5))
        grown.append(np.arange(250, dtype="f4").reshape(50, 5))
        f.create_group("/", "group")
        f.create_table("/group", "table", obj=records(1000), chunkshape=(64,))
        f.create_vlarray("/", "vlarray", tables.Int32Atom())
        f.create_soft_link("/", "link", "/carray")
    return path


@pytest.fixture(scope="module")
def cluster_client():
    """A ``distributed`` client of 2 worker processes x 1 thread, shared by a test module."""
    distributed = pytest.importorskip("distributed")
    with (
        distributed.LocalCluster(
            n_workers=2, processes=True, threads_per_worker=1, dashboard_address=":0"
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        yield client


@pytest.fixture(scope="module")
def s3_bucket():
    """moto's S3 server on 127.0.0.1 with an empty bucket, for one test module: a ``servers.S3Bucket``."""
    pytest.importorskip("boto3")
    pytest.importorskip("moto.server")
    with moto_bucket() as bucket:
        yield bucket


@pytest.fixture
def own_shadow_cache(tmp_path, monkeypatch):
    """The test's own shadow cache folder, and no shadow remembered by the process (the remote tests)."""
    monkeypatch.setenv("DASK_TABLES_CACHE", str(tmp_path / "cache"))
    shadows.clear_process_cache()
    yield
    shadows.clear_process_cache()
