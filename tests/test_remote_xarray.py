"""xarray's engine="tables" on URLs: our Range server and moto's S3 server on 127.0.0.1.

Every variable is compared with the same file opened from local disk.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
import tables
from servers import RangeServer

pytestmark = pytest.mark.usefixtures("own_shadow_cache")

xr = pytest.importorskip("xarray")
pytest.importorskip("obstore")
pytest.importorskip("h5py")


def write_grid(path) -> None:
    """Arrays sharing lengths, attributes (CF ones too), a soft link, a group and a table."""
    with tables.open_file(path, "w") as f:
        f.root._v_attrs.history = "made for a test"
        t = f.create_carray(
            "/", "temperature", obj=np.arange(12_000.0).reshape(120, 100), filters=tables.Filters(1)
        )
        t.attrs.units = "K"
        f.create_array("/", "depth", obj=np.arange(120.0))
        f.create_array("/", "time", obj=np.arange(120.0)).attrs.units = "days since 2000-01-01"
        packed = f.create_array("/", "packed", obj=np.arange(120, dtype="i2"))
        packed.attrs.scale_factor = 0.5
        f.create_group("/", "run")
        f.create_earray("/run", "counts", obj=np.arange(300, dtype="i4").reshape(100, 3))
        rows = np.array([(i, i * 0.5) for i in range(200)], dtype=[("a", "i4"), ("b", "f8")])
        f.create_table("/run", "events", obj=rows, chunkshape=(32,))
        f.create_soft_link("/", "alias", "/run")


def same(url: str, local, **kwargs) -> None:
    remote = xr.open_dataset(url, engine="tables", **kwargs)
    expected = xr.open_dataset(
        local, engine="tables", **{k: v for k, v in kwargs.items() if k != "storage_options"}
    )
    xr.testing.assert_identical(remote.load(), expected.load())
    assert set(remote.variables) == set(expected.variables) and remote.variables


def test_open_dataset_over_http(tmp_path) -> None:
    write_grid(tmp_path / "grid.h5")
    with RangeServer(tmp_path, lifetime=120) as server:
        url = server.url + "/grid.h5"
        for group in (None, "run", "run/events", "alias"):
            same(url, tmp_path / "grid.h5", group=group)
        same(url, tmp_path / "grid.h5", decode_cf=False)
        decoded = xr.open_dataset(url, engine="tables")  # CF-decoded by default, lazily, over the URL
        assert decoded["time"].dtype.kind == "M" and decoded["packed"].dtype.kind == "f"
        np.testing.assert_array_equal(decoded["packed"].values, np.arange(120) * 0.5)
        raw = xr.open_dataset(url, engine="tables", decode_cf=False)
        assert raw["time"].dtype == np.float64 and raw["packed"].dtype == np.int16
        chunked = xr.open_dataset(url, engine="tables", chunks={})
        np.testing.assert_array_equal(chunked["temperature"].mean().compute(), np.arange(12_000.0).mean())
        tree = xr.open_datatree(url, engine="tables")
        xr.testing.assert_identical(
            tree.load(), xr.open_datatree(tmp_path / "grid.h5", engine="tables").load()
        )
        assert tree["time"].dtype.kind == "M"


def test_open_dataset_from_s3(tmp_path, s3_bucket) -> None:
    write_grid(tmp_path / "grid.h5")
    options = s3_bucket.storage_options
    same(
        s3_bucket.put("grid.h5", tmp_path / "grid.h5"),
        tmp_path / "grid.h5",
        storage_options=options,
        group="run",
    )
    missing = s3_bucket.url("missing.h5")
    with pytest.raises(FileNotFoundError, match=re.escape(missing)):
        xr.open_dataset(missing, engine="tables", storage_options=options)


def test_open_mfdataset_of_urls(tmp_path) -> None:
    """Several objects as one dataset, as open_mfdataset combines local files."""
    for k in range(2):
        with tables.open_file(tmp_path / f"run-{k}.h5", "w") as f:
            f.create_carray("/", "v", obj=np.arange(50.0) + 100 * k, filters=tables.Filters(1))
    with RangeServer(tmp_path, lifetime=120) as server:
        urls = [server.url + f"/run-{k}.h5" for k in range(2)]
        remote = xr.open_mfdataset(urls, engine="tables", combine="nested", concat_dim="phony_dim_0")
        local = xr.open_mfdataset(
            [tmp_path / f"run-{k}.h5" for k in range(2)],
            engine="tables",
            combine="nested",
            concat_dim="phony_dim_0",
        )
        xr.testing.assert_identical(remote.load(), local.load())
        np.testing.assert_array_equal(
            remote["v"].values, np.concatenate([np.arange(50.0), np.arange(50.0) + 100])
        )
