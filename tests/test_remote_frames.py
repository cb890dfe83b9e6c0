"""pandas-written frames (table and fixed format) and node patterns read from URLs.

Every read is compared with the same read of the local copy; the objects
are served by our Range server and moto's S3 server on 127.0.0.1.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from servers import RangeServer

import dask_tables

pytestmark = pytest.mark.usefixtures("own_shadow_cache")

pytest.importorskip("obstore")
pytest.importorskip("h5py")

N = 40_000  # rows: the table and the fixed frame's blocks are stored in more than 256 KiB


def write_frames(path) -> None:
    """A pandas table with data columns, a Series table, fixed frames (compressed and small) and two keys."""
    frame = pd.DataFrame(
        {
            "a": np.arange(N, dtype="i8"),
            "b": np.arange(N) * 0.25,
            "c": np.arange(N) % 13,
            "s": [f"t{i % 97}" for i in range(N)],
        },
        index=pd.Index(np.arange(N) * 2, name="i"),
    )
    frame.to_hdf(path, key="events", format="table", data_columns=["c"], complib="zlib", complevel=1)
    frame["b"].to_hdf(path, key="series", format="table")
    frame.to_hdf(path, key="fixed", complib="zlib", complevel=1)
    frame.iloc[:50].to_hdf(path, key="small_fixed")
    for key in ("/runs/a/data", "/runs/b/data"):
        frame.iloc[:300].to_hdf(path, key=key, format="table")


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("frames")
    write_frames(root / "frames.h5")
    with RangeServer(root, lifetime=300) as server:
        yield server.url + "/frames.h5", root / "frames.h5", server


def same(url, local, **kwargs) -> pd.DataFrame:
    """``read_table`` of ``url`` and of ``local``: equal values and divisions; returns the computed frame."""
    remote = dask_tables.read_table(url, **kwargs)
    mine = dask_tables.read_table(local, **kwargs)
    got = remote.compute(scheduler="threads")
    expected = mine.compute(scheduler="sync")
    pd.testing.assert_frame_equal(got, expected) if isinstance(
        got, pd.DataFrame
    ) else pd.testing.assert_series_equal(got, expected)
    assert remote.divisions == mine.divisions
    assert remote.npartitions == mine.npartitions
    return got


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"columns": ["b", "s"]},
        {"where": "c == 3 & index > 100", "chunksize": 7000},
        {"where": "index < 5000", "columns": ["a"]},
        {"index": "c", "chunksize": 10_000},
        {"start": 100, "stop": 20_000, "chunksize": 6000},
    ],
)
def test_pandas_table_on_http_equals_local(served, kwargs) -> None:
    url, local, _ = served
    got = same(url, local, node="/events", **kwargs)
    assert len(got) > 0
    expected = pd.read_hdf(local, "events", where=kwargs.get("where"), columns=kwargs.get("columns"))
    if "index" not in kwargs and "start" not in kwargs:  # and pandas' own values (dask's str dtype aside)
        pd.testing.assert_frame_equal(got, expected, check_dtype=False)


def test_pandas_table_divisions_known_on_a_url(served) -> None:
    url, _, _ = served
    frame = dask_tables.read_table(url, "/events", chunksize=9000)
    assert frame.known_divisions and frame.divisions[0] == 0 and frame.divisions[-1] == 2 * (N - 1)


def test_pandas_series_and_fixed_frames_on_http_equal_local(served) -> None:
    url, local, _ = served
    series = same(url, local, node="/series")
    pd.testing.assert_series_equal(series, pd.read_hdf(local, "series"))
    fixed = same(url, local, node="/fixed", chunksize=7000)
    pd.testing.assert_frame_equal(fixed, pd.read_hdf(local, "fixed"), check_dtype=False)
    same(url, local, node="/fixed", columns=["s", "a"], start=10, stop=30_000)
    small = same(url, local, node="/small_fixed")  # every node in the shadow, strings pickled
    pd.testing.assert_frame_equal(small, pd.read_hdf(local, "small_fixed"), check_dtype=False)


def test_node_patterns_on_a_url(served) -> None:
    url, local, _ = served
    got = same(url, local, node="/runs/*/data")
    assert len(got) == 600


def test_where_pandas_evaluates_in_memory_is_refused_on_a_url(served) -> None:
    url, _, _ = served
    with pytest.raises(
        NotImplementedError, match=r"frames\.h5: node /events: this where .* pandas' own select"
    ):
        dask_tables.read_table(url, "/events", where="columns = ['a', 'b']")  # pandas filters after the read


def test_replaced_object_raises(tmp_path) -> None:
    pd.DataFrame({"x": np.arange(100)}).to_hdf(tmp_path / "p.h5", key="df")
    with RangeServer(tmp_path, lifetime=120) as server:
        frame = dask_tables.read_table(server.url + "/p.h5", "/df")
        pd.DataFrame({"x": np.arange(100) + 1}).to_hdf(tmp_path / "p.h5", key="df")
        with pytest.raises(dask_tables.FileChangedError, match=r"p\.h5"):
            frame.compute()


def test_pandas_frames_in_s3(tmp_path, s3_bucket) -> None:
    frame = pd.DataFrame({"a": np.arange(3000), "b": np.arange(3000) * 0.5})
    frame.to_hdf(tmp_path / "p.h5", key="t", format="table", data_columns=True)
    frame.to_hdf(tmp_path / "p.h5", key="f")
    url = s3_bucket.put("p.h5", tmp_path / "p.h5")
    for node, kwargs in (("/t", {"where": "a > 2500"}), ("/f", {})):
        got = dask_tables.read_table(url, node, storage_options=s3_bucket.storage_options, **kwargs).compute()
        pd.testing.assert_frame_equal(
            got, dask_tables.read_table(tmp_path / "p.h5", node, **kwargs).compute()
        )


def test_cli_info_and_stats_of_a_url_equal_local(served, capsys) -> None:
    """``dask-tables info URL`` and ``stats URL NODE`` print what they print for the local copy."""
    from dask_tables.cli import main

    url, local, _ = served
    outputs = []
    for where in (url, str(local)):
        assert main(["info", where, "--json", "--storage-options", "{}"]) == 0
        assert main(["stats", where, "/fixed/block0_values"]) == 0
        outputs.append(capsys.readouterr().out.replace(where, "FILE"))
    assert outputs[0] == outputs[1]
    assert '"/events/table"' in outputs[0] and "mean" in outputs[0]
    with pytest.raises(SystemExit):
        main(["info", url, "--storage-options", "[1]"])
