"""pandas' default (``fixed``) format read by read_table: equal to pandas.read_hdf (issue 24, item 3)."""

from __future__ import annotations

import decimal

import dask
import dask.dataframe as dd
import numpy as np
import pandas as pd
import pytest
import tables
from helpers import registry_is_empty

import dask_tables
from dask_tables import diagnostics

N = 1000

# pandas warns that it pickles the object columns: that is what is being read here.
pytestmark = pytest.mark.filterwarnings("ignore::pandas.errors.PerformanceWarning")


def _index(kind: str) -> pd.Index:
    return {
        "range": pd.RangeIndex(N),
        "int": pd.Index(np.arange(N) * 3 - 7),
        "float": pd.Index(np.linspace(0, 1, N)),
        "text": pd.Index([f"row{i}" for i in range(N)]),
        "datetime": pd.date_range("2001-01-01", periods=N, freq="h"),
        "datetime_tz": pd.date_range("2001-01-01", periods=N, freq="D", tz="Europe/Zurich", name="when"),
        "timedelta": pd.timedelta_range(0, periods=N, freq="s"),
        "period": pd.period_range("2000-01", periods=N, freq="M"),
        "categorical": pd.CategoricalIndex([f"c{i % 7}" for i in range(N)]),
        "multi": pd.MultiIndex.from_arrays([np.arange(N) % 5, [f"k{i}" for i in range(N)]], names=["a", "b"]),
    }[kind]


def every_dtype() -> pd.DataFrame:
    """A column of each dtype pandas' fixed format stores (it refuses categoricals and nullable ones)."""
    i = np.arange(N)
    objects = np.array([None if k % 11 == 0 else (k if k % 3 else f"t{k}") for k in range(N)], dtype=object)
    return pd.DataFrame(
        {
            "i8": i,
            "i4": i.astype("i4"),
            "i2": i.astype("i2"),
            "u1": (i % 256).astype("u1"),
            "u8": i.astype("u8"),
            "f4": (i / 3).astype("f4"),
            "f8": np.where(i % 13 == 0, np.nan, i / 7),
            "c16": i * (1 + 2j),
            "c8": (i * 1j).astype("c8"),
            "b": i % 2 == 0,
            "text": [f"word {k}" if k % 17 else None for k in range(N)],
            "objects": objects,
            "texts_as_objects": pd.Series([f"o{k}" for k in range(N)], dtype=object),
            "ns": pd.date_range("1999-12-31", periods=N, freq="min").as_unit("ns"),
            "us": pd.date_range("2000-01-01", periods=N, freq="s"),
            "tz": pd.date_range("2000-01-01", periods=N, freq="h", tz="America/New_York"),
            "utc": pd.date_range("2000-01-01", periods=N, freq="h", tz="UTC").as_unit("ns"),
            "td": pd.to_timedelta(i, unit="ms"),
            "period": pd.period_range("2000-01-01", periods=N, freq="D"),
            "nat": pd.Series(pd.date_range("2000", periods=N)).where(i % 5 != 0),
        }
    )


def read(path, key, **kwargs):
    return dask_tables.read_table(path, key, **kwargs)


def assert_same(got, expected):
    if isinstance(expected, pd.Series):
        pd.testing.assert_series_equal(got, expected, check_exact=True)
    else:
        pd.testing.assert_frame_equal(got, expected, check_exact=True)


@pytest.fixture
def exact():
    """dask as pandas: no conversion of text and objects to pyarrow strings."""
    with dask.config.set({"dataframe.convert-string": False}):
        yield


@pytest.mark.parametrize("complevel", [0, 5], ids=["plain", "zlib"])
@pytest.mark.parametrize(
    "index",
    [
        "range",
        "int",
        "float",
        "text",
        "datetime",
        "datetime_tz",
        "timedelta",
        "period",
        "categorical",
        "multi",
    ],
)
def test_every_dtype_and_index_equals_pandas_read_hdf(tmp_path, exact, index, complevel):
    path = tmp_path / "fixed.h5"
    frame = every_dtype().set_axis(_index(index))
    frame.to_hdf(path, key="df", complevel=complevel)
    expected = pd.read_hdf(path, "df")
    df = read(path, "df", chunksize=300)
    assert_same(df.compute(scheduler="threads"), expected)
    sizes = df.map_partitions(len).compute().tolist()
    assert df.npartitions == (4 if complevel == 0 else len(sizes))  # zlib: rows in whole HDF5 chunks
    start = sum(sizes[:-1])
    assert_same(
        df.partitions[-1].compute(scheduler="synchronous"), pd.read_hdf(path, "df", start=start, stop=N)
    )
    assert registry_is_empty()


@pytest.mark.parametrize(
    "series",
    [
        pd.Series(np.arange(N, dtype="f4"), name="x"),
        pd.Series([f"s{i}" for i in range(N)], name="text", index=_index("datetime")),
        pd.Series([i if i % 2 else str(i) for i in range(N)], dtype=object, name=("a", 1)),
        pd.Series(pd.date_range("2000", periods=N, tz="Asia/Tokyo"), index=_index("multi")),
        pd.Series(pd.period_range("2000", periods=N, freq="Q"), name=None),
    ],
    ids=["float", "text", "objects", "tz", "period"],
)
def test_series_equal_pandas_read_hdf(tmp_path, exact, series):
    path = tmp_path / "series.h5"
    series.to_hdf(path, key="s")
    s = read(path, "s", chunksize=250)
    assert isinstance(s, dd.Series)
    assert_same(s.compute(scheduler="threads"), pd.read_hdf(path, "s"))


def test_default_dask_strings_as_dask_makes_them_of_pandas_frame(tmp_path):
    """Under dask's default string conversion, what dd.from_pandas makes of pandas' own read."""
    path = tmp_path / "fixed.h5"
    every_dtype().to_hdf(path, key="df")
    expected = dd.from_pandas(pd.read_hdf(path, "df"), npartitions=1).compute()
    assert_same(read(path, "df", chunksize=400).compute(scheduler="threads"), expected)


def test_numeric_blocks_are_read_directly_and_objects_once_per_process(tmp_path, exact):
    path = tmp_path / "fixed.h5"
    frame = every_dtype()
    frame.to_hdf(path, key="df", complevel=1, complib="zlib")
    df = read(path, "df", chunksize=100)
    with diagnostics.collect() as counts:
        got = df.compute(scheduler="threads")
    assert_same(got, pd.read_hdf(path, "df"))
    with tables.open_file(path) as f:  # pandas compresses numbers, not datetimes and periods
        contiguous = sum(n.chunkshape is None for n in f.root.df if n._v_name.endswith("_values"))
        chunked = sum(isinstance(n, tables.CArray) for n in f.root.df if n._v_name.endswith("_values"))
    assert contiguous and chunked
    assert counts["direct_chunks"] >= chunked * df.npartitions  # decoded outside HDF5's lock
    assert counts["pipeline_reads"] == contiguous * df.npartitions  # only what HDF5 stores unchunked


def test_columns_start_stop_and_many_files(tmp_path, exact):
    paths = []
    frames = []
    for k in range(2):
        frame = every_dtype().iloc[: 500 + k].set_axis(np.arange(500 + k) + 10_000 * k)
        paths.append(tmp_path / f"part{k}.h5")
        frame.to_hdf(paths[-1], key="df")
        frames.append(pd.read_hdf(paths[-1], "df"))
    whole = pd.concat(frames)
    df = read(paths, "df", columns=["f8", "objects", "tz"], chunksize=200, start=100, stop=900)
    assert_same(df.compute(scheduler="threads"), whole[["f8", "objects", "tz"]].iloc[100:900])
    assert list(df.columns) == ["f8", "objects", "tz"]


def test_processes_scheduler(tmp_path, exact):
    path = tmp_path / "fixed.h5"
    every_dtype().to_hdf(path, key="df")
    assert_same(
        read(path, "df", chunksize=500).compute(scheduler="processes", num_workers=2), pd.read_hdf(path, "df")
    )


def test_objects_the_pickle_gate_refuses_need_allow_pickles(tmp_path, exact):
    path = tmp_path / "decimals.h5"
    frame = pd.DataFrame({"d": [decimal.Decimal(i) for i in range(10)], "x": np.arange(10)})
    with pytest.warns(pd.errors.PerformanceWarning):
        frame.to_hdf(path, key="df")
    with pytest.raises(ValueError, match="allow_pickles=True"):
        read(path, "df").compute()
    assert_same(read(path, "df", allow_pickles=True).compute(), pd.read_hdf(path, "df"))
    assert registry_is_empty()


def test_queries_are_refused_as_pandas_refuses_them(tmp_path):
    path = tmp_path / "fixed.h5"
    pd.DataFrame({"a": np.arange(10)}).to_hdf(path, key="df")
    with pytest.raises(TypeError, match=r"'fixed' format.*where"):
        read(path, "df", where="a > 3")
    with pytest.raises(TypeError, match="index"):
        read(path, "df", index="a")
    with pytest.raises(KeyError, match="nope"):
        read(path, "df", columns=["nope"])


def test_empty_frames_and_series(tmp_path, exact):
    path = tmp_path / "empty.h5"
    pd.DataFrame({"a": np.array([], "f8"), "b": np.array([], object)}).to_hdf(path, key="df")
    pd.Series([], dtype="i4", name="s").to_hdf(path, key="s")
    with tables.open_file(path) as f:
        assert "pandas_type" in f.root.df._v_attrs
    assert_same(read(path, "df").compute(), pd.read_hdf(path, "df"))
    assert_same(read(path, "s").compute(), pd.read_hdf(path, "s"))


def test_an_object_block_is_unpickled_once_per_process(tmp_path, exact):
    """Every partition slices the same block: it is read and unpickled once, not once per partition."""
    from helpers import UNPICKLED, Counted

    path = tmp_path / "objects.h5"
    frame = pd.DataFrame({"o": [Counted(k) for k in range(400)], "f": np.arange(400.0)})
    frame.to_hdf(path, key="df")
    UNPICKLED.clear()
    df = read(path, "df", chunksize=100, allow_pickles=True)  # reads the block: are its objects all text?
    assert df.npartitions == 4
    got = df.compute(scheduler="threads")
    assert got["o"].tolist() == frame["o"].tolist()
    assert sorted(UNPICKLED) == list(range(400))  # once each: one read of the block for 4 partitions
    UNPICKLED.clear()
    df.compute(scheduler="threads")
    assert UNPICKLED == []  # kept for the process (same file version)
