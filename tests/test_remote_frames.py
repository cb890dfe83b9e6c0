"""pandas-written frames (table and fixed format) and node patterns read from URLs.

Every read is compared with the same read of the local copy; the objects
are served by our Range server and moto's S3 server on 127.0.0.1.
"""

from __future__ import annotations

import warnings

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
    """A pandas table with data columns, a Series table, fixed frames (compressed and small), noise and two keys."""
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
    noise = pd.DataFrame(np.random.default_rng(5).random((N, 2)), columns=["x", "y"])
    noise.to_hdf(path, key="noise", format="table")  # 640 kB stored: not in the shadow
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


PICKS = list(range(0, 2 * N, 2 * 997))  # 41 index values: more than pandas puts in a condition
CODES = [*range(3, 6), *range(100, 140)]  # 43 values of c


@pytest.mark.parametrize(
    "where",
    [
        "columns = ['a', 's']",  # pandas keeps the columns after the read
        "index in picks",  # too many values for a condition: pandas filters the read rows
        "c in codes & index > 2000",  # a condition, then a filter on a data column
        "index > 3000 & columns = ['b']",
    ],
)
def test_where_pandas_evaluates_in_memory_on_a_url_equals_pandas(served, where) -> None:
    """A ``where`` pandas applies partly after the read: from a URL, the values of ``pd.read_hdf``."""
    url, local, _ = served
    names = {"picks": PICKS, "codes": CODES}
    picks, codes = PICKS, CODES  # noqa: F841 - pandas takes the where's names from its caller
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # pandas' warning for an OR of ANDs on indexed columns
        got = same(url, local, node="/events", where=where, condvars=names, chunksize=9000)
        expected = pd.read_hdf(local, "events", where=where)
    assert 0 < len(got) < N or "columns" in where
    pd.testing.assert_frame_equal(got, expected, check_dtype=False)


def test_or_of_ands_on_an_indexed_column_on_a_url_gets_every_matching_row(served) -> None:
    """pandas' own select misses rows here (PyTables' indexed query, pandas GH#50598); a URL's scan does not."""
    url, local, _ = served
    where = "(c == 3 & index < 2000) | (c == 5 & index > 60000)"
    got = dask_tables.read_table(url, "/events", where=where, chunksize=9000).compute()
    full = pd.read_hdf(local, "events")
    truth = full[((full.c == 3) & (full.index < 2000)) | ((full.c == 5) & (full.index > 60000))]
    assert len(truth) == 846
    pd.testing.assert_frame_equal(got, truth, check_dtype=False)


def test_dask_projection_after_a_where_pandas_filters(served) -> None:
    """``frame[["a"]]`` of a where that filters on another column: the rows of the whole read (URL and local)."""
    url, local, _ = served
    codes = CODES  # noqa: F841 - the where's name
    expected = pd.read_hdf(local, "events", where="c in codes & index > 2000")[["a"]]
    for path in (url, local):
        frame = dask_tables.read_table(path, "/events", where="c in codes & index > 2000", chunksize=9000)
        pd.testing.assert_frame_equal(frame[["a"]].compute(), expected)
        assert frame["a"].sum().compute() == expected["a"].sum()


@pytest.mark.parametrize(
    "rows",
    [
        [5, 17, 30_001, 9000, 39_999],  # out of order, across partitions
        (np.arange(N) % 7 == 3).tolist(),  # a boolean mask
        [],
    ],
    ids=["numbers", "mask", "none"],
)
def test_where_of_row_numbers_on_a_url_equals_pandas(served, rows) -> None:
    url, local, _ = served
    got = same(url, local, node="/events", where=rows, chunksize=9000)
    pd.testing.assert_frame_equal(got, pd.read_hdf(local, "events", where=rows or None), check_dtype=False)


def test_conversion_pandas_must_do_itself_is_refused_on_a_url(served, monkeypatch) -> None:
    """Where pandas' detached conversion declines (a pandas release that converts otherwise), a clear error."""
    from dask_tables.frame import pandas_describe

    url, local, _ = served
    monkeypatch.setattr(pandas_describe.PandasConversion, "of", classmethod(lambda cls, storer, origin: None))
    with pytest.raises(
        NotImplementedError, match=r"frames\.h5: node /runs/a/data: pandas' conversion .* local disk"
    ):
        dask_tables.read_table(url, "/runs/a/data")
    got = dask_tables.read_table(local, "/runs/a/data").compute()  # a local file: pandas' own select
    pd.testing.assert_frame_equal(got, pd.read_hdf(local, "/runs/a/data"), check_dtype=False)


def test_table_read_through_hdf5_on_a_url(served) -> None:
    """A table HDF5 must read (``direct=False``): from the shadow when it holds the table whole, else an error."""
    url, local, _ = served
    got = same(url, local, node="/runs/a/data", direct=False, where="index > 100")
    pd.testing.assert_frame_equal(
        got, pd.read_hdf(local, "/runs/a/data", where="index > 100"), check_dtype=False
    )
    with pytest.raises(
        ValueError, match=r"frames\.h5: node /noise/table: reads go through HDF5 \(direct=False\)"
    ):
        dask_tables.read_table(url, "/noise", direct=False)


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
    for node, kwargs in (
        ("/t", {"where": "a > 2500"}),
        ("/t", {"where": "a > 2500 & columns = ['b']"}),  # pandas filters the columns after the read
        ("/t", {"where": [7, 2999, 3]}),
        ("/f", {}),
    ):
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
