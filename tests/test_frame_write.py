"""to_tables of dask DataFrames and Series: what pandas reads back, every scheduler, failures, appends."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import cloudpickle
import dask
import dask.dataframe as dd
import numpy as np
import pandas as pd
import pytest
import tables
from dask.delayed import Delayed
from helpers import registry_is_empty

import dask_tables

cloudpickle.register_pickle_by_value(sys.modules[__name__])  # worker processes lack tests/ on sys.path

ZLIB = tables.Filters(complib="zlib", complevel=1, shuffle=True)


class Boom(RuntimeError):
    pass


def frame(n: int = 40, index: str = "named") -> pd.DataFrame:
    """Every dtype the pandas format stores, with strings that grow from partition to partition."""
    rows = np.arange(n)
    data = pd.DataFrame(
        {
            "i": rows * 7 - 100,
            "u": (rows * 3).astype("u2"),
            "f": rows / 4,
            "b": rows % 3 == 0,
            "when": pd.date_range("2020-01-01", periods=n, freq="h"),
            "tz": pd.date_range("2021-06-01", periods=n, freq="min", tz="Europe/Paris"),
            "dt": pd.to_timedelta(rows, unit="s"),
            "cat": pd.Categorical(np.array(["lo", "mid", "hi"])[rows % 3], categories=["lo", "mid", "hi"]),
            "text": pd.array(["x" * (1 + r // 4) for r in rows], dtype="str"),
            "obj": pd.Series([None if r % 5 == 0 else f"é{r}" * (1 + r // 10) for r in rows], dtype=object),
        }
    )
    if index == "named":
        data.index = pd.Index(rows * 10, name="row")
    elif index == "datetime":
        data.index = pd.date_range("2022-01-01", periods=n, freq="D", name="day")
    elif index == "unnamed":
        data.index = pd.Index(rows[::-1] * 2)
    return data  # "range": the RangeIndex


def pandas_wrote(df: dd.DataFrame, path: Path, **kwargs: object) -> pd.DataFrame:
    """What pandas writes and reads back for the same frame."""
    df.compute().to_hdf(path, key="df", format="table", **kwargs)
    return pd.read_hdf(path, "df")


def assert_same(ours: pd.DataFrame | pd.Series, theirs: pd.DataFrame | pd.Series) -> None:
    # A 1-row sample defines our table, so an index's freq (which pandas keeps
    # from the whole frame) is not stored.
    if isinstance(ours, pd.Series):
        pd.testing.assert_series_equal(ours, theirs, check_freq=False)
    else:
        pd.testing.assert_frame_equal(ours, theirs, check_freq=False)


def indexed_columns(path: Path, key: str) -> dict[str, bool]:
    with tables.open_file(path) as f:
        return dict(f.get_node(f"/{key}/table").colindexed)


@pytest.mark.parametrize("index", ["named", "unnamed", "range", "datetime"])
def test_pandas_format_reads_back_as_what_pandas_writes(tmp_path, index):
    df = dd.from_pandas(frame(index=index), npartitions=4)
    columns = ["i", "text", "when"]
    expected = pandas_wrote(df, tmp_path / "pandas.h5", data_columns=columns)
    dask_tables.to_tables(df, tmp_path / "ours.h5", "/df", data_columns=columns, filters=ZLIB)
    assert_same(pd.read_hdf(tmp_path / "ours.h5", "df"), expected)
    assert indexed_columns(tmp_path / "ours.h5", "df") == indexed_columns(tmp_path / "pandas.h5", "df")
    on_index = "index > '2022-01-05'" if index == "datetime" else "index > 5"
    for where in ["i > 0 & i < 60", "text == 'xxx'", "when >= '2020-01-02'", on_index]:
        with (
            pd.HDFStore(tmp_path / "ours.h5", "r") as ours,
            pd.HDFStore(tmp_path / "pandas.h5", "r") as theirs,
        ):
            assert_same(ours.select("df", where=where), theirs.select("df", where=where))
    # read_table reads pandas' attributes, which hold pickled time zones and frequencies
    read = dask_tables.read_table(tmp_path / "ours.h5", "/df", allow_pickles=True).compute()
    assert_same(read, dask_tables.read_table(tmp_path / "pandas.h5", "/df", allow_pickles=True).compute())
    # without time zones, no attribute needs unpickling (the index's freq is not stored)
    plain = read.drop(columns="tz")
    assert_same(
        dask_tables.read_table(tmp_path / "ours.h5", "/df", columns=list(plain.columns)).compute(), plain
    )
    assert registry_is_empty()


def test_a_later_partition_with_longer_strings_fits_in_one_pass(tmp_path):
    parts = [
        pd.DataFrame({"s": ["a" * n] * 3, "o": pd.Series(["b" * 2 * n] * 3, dtype=object)})
        for n in (1, 5, 18)
    ]
    df = dd.from_pandas(pd.concat(parts, ignore_index=True), npartitions=3, sort=False)
    assert df.npartitions == 3
    calls = []

    def counted(part: pd.DataFrame) -> pd.DataFrame:
        calls.append(len(part))
        return part

    df = df.map_partitions(counted, meta=df._meta)
    with dask.config.set(scheduler="sync"):
        dask_tables.to_tables(df, tmp_path / "ours.h5", "/df", data_columns=["s"])
    assert len(calls) == 3, "each partition computed once"
    expected = pandas_wrote(df, tmp_path / "pandas.h5", data_columns=["s"])
    assert_same(pd.read_hdf(tmp_path / "ours.h5", "df"), expected)
    with tables.open_file(tmp_path / "ours.h5") as f:
        assert f.root.df.table.coldtypes["s"] == np.dtype("S18")


def test_min_itemsize_sets_the_size_and_a_too_small_one_names_the_column(tmp_path):
    df = dd.from_pandas(pd.DataFrame({"s": ["ab", "abcdef"], "v": ["x", "y"]}), npartitions=2)
    dask_tables.to_tables(df, tmp_path / "ours.h5", "/df", min_itemsize={"s": 30, "values": 9})
    with tables.open_file(tmp_path / "ours.h5") as f:
        table = f.root.df.table
        assert table.coldtypes["s"] == np.dtype("S30")  # named in min_itemsize: a data column, as in pandas
        assert table.coldtypes["values_block_0"].base == np.dtype("S9")
    assert pd.read_hdf(tmp_path / "ours.h5", "df", where="s == 'abcdef'")["v"].tolist() == ["y"]
    with pytest.raises(ValueError, match=r"min_itemsize\['s'\]=3.*column 's' holds strings of 6 bytes"):
        dask_tables.to_tables(df, tmp_path / "other.h5", "/df", min_itemsize={"s": 3})
    assert not (tmp_path / "other.h5").exists()


def test_append_adds_rows_and_updates_the_indexes(tmp_path):
    path = tmp_path / "ours.h5"
    first = dd.from_pandas(frame(30), npartitions=2)
    second = dd.from_pandas(frame(20), npartitions=3)
    second.index = second.index + 1000
    dask_tables.to_tables(first, path, "/df", data_columns=["i", "text"])
    dask_tables.to_tables(second, path, "/df", append=True)
    pandas_path = tmp_path / "pandas.h5"
    first.compute().to_hdf(pandas_path, key="df", format="table", data_columns=["i", "text"])
    second.compute().to_hdf(pandas_path, key="df", format="table", append=True)
    assert_same(pd.read_hdf(path, "df"), pd.read_hdf(pandas_path, "df"))
    for where in ["i > 40", "text == 'xxxxx'", "index >= 1000"]:
        assert_same(pd.read_hdf(path, "df", where=where), pd.read_hdf(pandas_path, "df", where=where))
    with tables.open_file(path) as f:
        table = f.root.df.table
        assert table.cols.i.index.nelements == 50


def snapshot(path: Path) -> bytes:
    return path.read_bytes()


def test_append_with_another_schema_raises_naming_the_column_and_changes_nothing(tmp_path):
    path = tmp_path / "ours.h5"
    dask_tables.to_tables(pd.DataFrame({"a": [1, 2], "s": ["x", "yy"]}), path, "/df", data_columns=["s"])
    before = snapshot(path)
    with pytest.raises(ValueError, match=r"\[a\]"):
        dask_tables.to_tables(pd.DataFrame({"a": [1.5], "s": ["z"]}), path, "/df", append=True)
    longer_later = dd.from_pandas(pd.DataFrame({"a": [3, 4], "s": ["z", "zzzzz"]}), npartitions=2)
    with pytest.raises(ValueError, match=r"column 's' holds strings of 5 bytes.*at most 2"):
        dask_tables.to_tables(longer_later, path, "/df", append=True)
    assert snapshot(path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ours.h5"]


def explode_at(number: int):
    def fn(part: pd.DataFrame, partition_info=None) -> pd.DataFrame:
        if partition_info is not None and partition_info["number"] == number:
            raise Boom(f"partition {number}")
        return part

    return fn


def exploding(n: int = 40) -> dd.DataFrame:
    df = dd.from_pandas(frame(n), npartitions=4)
    return df.map_partitions(explode_at(2), meta=df._meta)


@pytest.mark.parametrize("mode", ["new node", "overwrite", "append"])
@pytest.mark.parametrize("scheduler", ["threads", "processes"])
def test_a_failing_partition_leaves_the_file_byte_identical(tmp_path, mode, scheduler):
    path = tmp_path / "ours.h5"
    dask_tables.to_tables(frame(10), path, "/df", data_columns=["i"])
    before = snapshot(path)
    kwargs = {"new node": {}, "overwrite": {"overwrite": True}, "append": {"append": True}}[mode]
    node = "/other" if mode == "new node" else "/df"
    with pytest.raises(Boom), dask.config.set(scheduler=scheduler):
        dask_tables.to_tables(exploding(), path, node, **kwargs)
    assert snapshot(path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ours.h5"], "no work folder left behind"


def test_a_failing_partition_creates_no_file(tmp_path):
    with pytest.raises(Boom):
        dask_tables.to_tables(exploding(), tmp_path / "ours.h5", "/df")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("scheduler", ["sync", "threads", "processes", "distributed"])
def test_every_scheduler_writes_the_same_table(tmp_path, scheduler, request):
    df = dd.from_pandas(frame(200, "datetime"), npartitions=5)
    expected = pandas_wrote(df, tmp_path / "pandas.h5", data_columns=["f", "obj"])
    if scheduler == "distributed":
        request.getfixturevalue("cluster_client")
        dask_tables.to_tables(df, tmp_path / "ours.h5", "/df", data_columns=["f", "obj"], filters=ZLIB)
        dask_tables.to_tables(df, tmp_path / "ours.h5", "/df", append=True)
    else:
        with dask.config.set(scheduler=scheduler):
            dask_tables.to_tables(df, tmp_path / "ours.h5", "/df", data_columns=["f", "obj"], filters=ZLIB)
            dask_tables.to_tables(df, tmp_path / "ours.h5", "/df", append=True)
    assert_same(pd.read_hdf(tmp_path / "ours.h5", "df"), pd.concat([expected, expected]))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ours.h5", "pandas.h5"]


def test_a_series_is_written_as_pandas_writes_it(tmp_path):
    series = dd.from_pandas(pd.Series(["a", "bb", "ccc"] * 5, name="word", dtype=object), npartitions=3)
    dask_tables.to_tables(series, tmp_path / "ours.h5", "/s")
    series.compute().to_hdf(tmp_path / "pandas.h5", key="s", format="table")
    assert_same(pd.read_hdf(tmp_path / "ours.h5", "s"), pd.read_hdf(tmp_path / "pandas.h5", "s"))


def test_a_pandas_frame_is_written_too(tmp_path):
    df = frame(15)
    dask_tables.to_tables(df, tmp_path / "ours.h5", "/df")
    df.to_hdf(tmp_path / "pandas.h5", key="df", format="table")
    assert_same(pd.read_hdf(tmp_path / "ours.h5", "df"), pd.read_hdf(tmp_path / "pandas.h5", "df"))


def test_an_existing_frame_needs_overwrite(tmp_path):
    path = tmp_path / "ours.h5"
    dask_tables.to_tables(frame(5), path, "/df")
    with pytest.raises(dask_tables.NodeExistsError, match="/df"):
        dask_tables.to_tables(frame(7), path, "/df")
    dask_tables.to_tables(frame(7), path, "/df", overwrite=True)
    assert len(pd.read_hdf(path, "df")) == 7


def test_compute_false_returns_a_delayed_that_writes(tmp_path):
    path = tmp_path / "ours.h5"
    df = dd.from_pandas(frame(12), npartitions=3)
    delayed = dask_tables.to_tables(df, path, "/df", compute=False)
    assert isinstance(delayed, Delayed)
    assert not path.exists()
    delayed.compute()
    assert_same(pd.read_hdf(path, "df"), pandas_wrote(df, tmp_path / "pandas.h5"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ours.h5", "pandas.h5"]


def test_unknown_categories_are_refused_before_any_task(tmp_path):
    df = dd.from_pandas(frame(12), npartitions=3)
    df["cat"] = df["cat"].cat.as_unknown()
    with pytest.raises(ValueError, match=r"column 'cat'.*as_known"):
        dask_tables.to_tables(df, tmp_path / "ours.h5", "/df")
    assert list(tmp_path.iterdir()) == []


def test_partitions_with_other_categories_raise_naming_the_column(tmp_path):
    parts = [pd.DataFrame({"c": pd.Categorical(["a"], categories=cats)}) for cats in (["a"], ["a", "b"])]
    df = dd.from_delayed([dask.delayed(p) for p in parts], meta=parts[0], verify_meta=False)
    with pytest.raises(ValueError, match=r"column 'c' has categories"):
        dask_tables.to_tables(df, tmp_path / "ours.h5", "/df")


# ---------------------------------------------------------------- format="tables"


def test_tables_format_is_a_plain_table_with_nested_columns(tmp_path):
    df = pd.DataFrame(
        {
            "pos/x": np.arange(9.0),
            "pos/y": -np.arange(9.0),
            "n": np.arange(9, dtype="i2"),
            "ok": np.arange(9) % 2 == 0,
            "name": pd.array(["é" * (1 + r) for r in range(9)], dtype="str"),
        },
        index=pd.Index(np.arange(9) * 3, name="id"),
    )
    path = tmp_path / "ours.h5"
    dask_tables.to_tables(dd.from_pandas(df, npartitions=3), path, "/t", format="tables", filters=ZLIB)
    with tables.open_file(path) as f:
        table = f.root.t
        assert table.colnames == ["id", "pos", "n", "ok", "name"]
        np.testing.assert_array_equal(table.col("pos")["x"], df["pos/x"].to_numpy())
        assert table.coldtypes["name"] == np.dtype("S18")
    read = dask_tables.read_table(path, "/t", index="id").compute()
    pd.testing.assert_frame_equal(read, df, check_dtype=False)
    assert read["name"].tolist() == df["name"].tolist()


def test_tables_format_without_the_index_and_its_refusals(tmp_path):
    df = pd.DataFrame({"a": [1, 2, 3]})
    dask_tables.to_tables(df, tmp_path / "ours.h5", "/t", format="tables", index=False)
    with tables.open_file(tmp_path / "ours.h5") as f:
        assert f.root.t.colnames == ["a"]
    with pytest.raises(TypeError, match=r"column 'when'.*format='pandas'"):
        dask_tables.to_tables(frame(5)[["when"]], tmp_path / "ours.h5", "/u", format="tables")
    with pytest.raises(ValueError, match=r"column 'obj' has missing values"):
        dask_tables.to_tables(frame(6)[["obj"]], tmp_path / "ours.h5", "/u", format="tables")
    with pytest.raises(ValueError, match="format="):
        dask_tables.to_tables(df, tmp_path / "ours.h5", "/u", format="parquet")


def _index_nodes(path: Path) -> dict[str, tuple[object, dict[str, object]]]:
    """Every node of the frame's indexes group: its values (leaves) and attributes."""
    found = {}
    with tables.open_file(path) as h5:
        for node in h5.walk_nodes("/df/_i_table"):
            attrs = {k: repr(node._v_attrs[k]) for k in node._v_attrs._v_attrnames}
            found[node._v_pathname] = (node.read() if isinstance(node, tables.Leaf) else None, attrs)
    return found


@pytest.mark.parametrize("rows", [40, 45_000])
def test_the_indexes_are_the_ones_pandas_appends_make(tmp_path, rows):
    """pandas appending the frame partition by partition (as dd.to_hdf does) writes the same index arrays."""
    whole = frame(rows, index="datetime").drop(columns=["obj"])
    whole["text"] = pd.array([f"t{r % 977}" for r in range(rows)][::-1], dtype="str")
    df = dd.from_pandas(whole, npartitions=3)
    with pd.HDFStore(tmp_path / "pandas.h5", mode="w") as store:
        for part in df.partitions:
            store.append("df", part.compute(), format="table", data_columns=["i", "text"])
        chunkshape = store.get_storer("df").table.chunkshape[0]  # the index records table chunks
    dask_tables.to_tables(df, tmp_path / "ours.h5", "/df", data_columns=["i", "text"], chunkshape=chunkshape)
    ours, theirs = _index_nodes(tmp_path / "ours.h5"), _index_nodes(tmp_path / "pandas.h5")
    assert ours.keys() == theirs.keys() and {"/df/_i_table/index", "/df/_i_table/text"} <= ours.keys()
    for name, (values, attrs) in theirs.items():
        assert attrs == ours[name][1], name
        assert (values is None and ours[name][0] is None) or np.array_equal(values, ours[name][0]), name
    with tables.open_file(tmp_path / "ours.h5") as h5:
        table = h5.root.df.table
        assert {c for c, on in table.colindexed.items() if on} == {"index", "i", "text"}
        assert table.will_query_use_indexing("i < 5") == frozenset({"i"})
    picked = pd.read_hdf(tmp_path / "ours.h5", "df", where="text == 't5' & i > 0")
    pd.testing.assert_frame_equal(
        picked, pd.read_hdf(tmp_path / "pandas.h5", "df", where="text == 't5' & i > 0"), check_freq=False
    )


def test_indexed_queries_find_the_rows_whatever_the_chunk_shape(tmp_path):
    """The indexes are built on a side table of the indexed columns alone: its chunks must be the table's.

    A PyTables index records the table chunk of each value: built on a table
    whose chunks hold other rows, its queries return the wrong rows or raise.
    """
    rows = 300_000
    code = np.arange(rows) % 1000
    whole = pd.DataFrame(
        {"i": code, "s": np.array([f"{c:04d}" + "x" * 196 for c in code], dtype=object)},
        index=pd.date_range("2020-01-01", periods=rows, freq="s", name="time"),
    )
    df = dd.from_pandas(whole, npartitions=3)
    dask_tables.to_tables(df, tmp_path / "a.h5", "/df", data_columns=["i", "s"])
    wanted = "0010" + "x" * 196
    where = f"index >= '2020-01-02 10:00' & index < '2020-01-03 11:00' & s == '{wanted}'"
    inside = (whole.index >= "2020-01-02 10:00") & (whole.index < "2020-01-03 11:00")
    expected = whole[inside & (whole.s == wanted)]
    assert len(expected) == 90
    with tables.open_file(tmp_path / "a.h5") as h5:
        table = h5.root.df.table
        assert table.will_query_use_indexing("s == b'x'") == frozenset({"s"})
        found = table.get_where_list(f"s == b'{wanted}'")  # through the index's chunk map
        assert np.array_equal(found, np.flatnonzero(whole.s == wanted))
    for got in (
        pd.read_hdf(tmp_path / "a.h5", "df", where=where),
        dask_tables.read_table(tmp_path / "a.h5", "df", where=where).compute(),
    ):
        assert got.index.equals(expected.index) and got["i"].tolist() == expected["i"].tolist()
        assert got["s"].astype(object).tolist() == expected["s"].tolist()


# ---------------------------------------------------------------- pandas' and dask's spellings (issue 24)


def _small():
    return pd.DataFrame({"x": list("abcd"), "y": [1, 2, 3, 4]}, index=[1.0, 2.0, 3.0, 4.0]).astype(
        {"x": object}
    )


def test_relative_keys_and_pandas_format_names(tmp_path):
    path = tmp_path / "f.h5"
    frame = _small()
    dask_tables.to_tables(dd.from_pandas(frame, npartitions=2), path, "res", format="table")
    dask_tables.to_tables(dd.from_pandas(frame, npartitions=2), path, "short", format="t")
    dask_tables.to_tables(dd.from_pandas(frame, npartitions=2), path, "/plain", format="tables")
    dask_tables.to_tables(
        dd.from_pandas(frame, npartitions=2), path, "/plain2", format="pytables", index=False
    )
    for key in ("res", "short"):
        pd.testing.assert_frame_equal(pd.read_hdf(path, key).astype({"x": object}), frame)
    with tables.open_file(path) as f:
        assert isinstance(f.root.plain, tables.Table) and f.root.plain2.colnames == ["x", "y"]
    with pytest.raises(ValueError, match=r"fixed format stores a frame whole.*format='table'"):
        dask_tables.to_tables(dd.from_pandas(frame, npartitions=1), path, "fx", format="fixed")


def test_key_is_pandas_name_for_the_node_and_each_partitions_file_is_returned(tmp_path):
    """Issue 24 items 4 and 7: ``key=`` as pandas and dask spell it; the files written, as dd.to_hdf."""
    path = tmp_path / "f.h5"
    frame = _small()
    written = dask_tables.to_tables(dd.from_pandas(frame, npartitions=2), path, key="res")
    assert written == [str(path), str(path)]
    pd.testing.assert_frame_equal(pd.read_hdf(path, key="res").astype({"x": object}), frame)
    back = dask_tables.read_table(path, key="res").compute().astype({"x": object})
    pd.testing.assert_frame_equal(back, frame)
    assert dask_tables.to_tables(np.arange(3.0), path, key="/arr") is None  # arrays return nothing
    np.testing.assert_array_equal(dask_tables.from_tables(path, "/arr").compute(), np.arange(3.0))
    with pytest.raises(TypeError, match="give the node or key="):
        dask_tables.to_tables(dd.from_pandas(frame, npartitions=2), path, "/a", key="b")
    with pytest.raises(TypeError, match="give the node or key="):
        dask_tables.read_table(path, "/a", key="b")
    assert len(dask_tables.read_table(path, "/res", key="res")) == len(frame)  # one node, spelled twice
    with pytest.raises(TypeError, match="read_table: give the node to read"):
        dask_tables.read_table(path)


def test_one_node_per_partition_with_a_star_in_the_key(tmp_path):
    path = tmp_path / "f.h5"
    frame = pd.DataFrame({"x": np.arange(16.0)}, index=np.arange(16))
    written = dask_tables.to_tables(dd.from_pandas(frame, npartitions=4), path, "/data*")
    assert written == [str(path)] * 4  # each partition's file, as dd.to_hdf returns them
    with pd.HDFStore(path, "r") as store:
        assert sorted(store.keys()) == ["/data0", "/data1", "/data2", "/data3"]
    back = pd.concat([pd.read_hdf(path, f"data{i}") for i in range(4)])
    pd.testing.assert_frame_equal(back, frame)
    named = tmp_path / "named.h5"
    dask_tables.to_tables(
        dd.from_pandas(frame, npartitions=4), named, "/d_*", name_function=lambda i: "abcd"[i]
    )
    with pd.HDFStore(named, "r") as store:
        assert sorted(store.keys()) == ["/d_a", "/d_b", "/d_c", "/d_d"]
    with pytest.warns(UserWarning, match="name_function must preserve the order"):
        dask_tables.to_tables(
            dd.from_pandas(frame, npartitions=4), tmp_path / "w.h5", "/d_*", name_function=lambda i: "dcba"[i]
        )


def test_one_file_per_partition_with_a_star_in_the_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    frame = _small()
    written = dask_tables.to_tables(dd.from_pandas(frame, npartitions=2), "part*.h5", "key")
    assert written == ["part0.h5", "part1.h5"]
    back = pd.concat([pd.read_hdf(name, "key") for name in written]).astype({"x": object})
    pd.testing.assert_frame_equal(back, frame)
    with pytest.raises(ValueError, match="A maximum of one asterisk"):
        dask_tables.to_tables(dd.from_pandas(frame, npartitions=2), "p*.h5", "/k*")
    assert sorted(os.listdir(tmp_path)) == ["part0.h5", "part1.h5"]


def test_min_itemsize_as_an_int_sizes_every_string_column(tmp_path):
    frame = pd.DataFrame({"A": ["a", "aaaa"], "B": ["b", "bb"]})
    path = tmp_path / "f.h5"
    dask_tables.to_tables(dd.from_pandas(frame, npartitions=2), path, "foo4", min_itemsize=7)
    pd.testing.assert_frame_equal(pd.read_hdf(path, "foo4").astype(object), frame.astype(object))
    with tables.open_file(path) as f:
        table_dtype = f.root.foo4.table.dtype
        texts = [table_dtype[n].base for n in table_dtype.names if table_dtype[n].base.kind == "S"]
        assert texts and all(t.itemsize == 7 for t in texts)


def test_an_open_hdf_store_as_the_target_stays_usable(tmp_path):
    path = tmp_path / "f.h5"
    frame = _small()
    with pd.HDFStore(path) as store:
        store.put("before", frame, format="table")
        dask_tables.to_tables(dd.from_pandas(frame, npartitions=2), store, "/data*")
        assert sorted(store.keys()) == ["/before", "/data0", "/data1"]  # it sees the new file
        store.put("after", frame)
    with pd.HDFStore(path, "r") as store:
        assert sorted(store.keys()) == ["/after", "/before", "/data0", "/data1"]
    with pd.HDFStore(path, "r") as store, pytest.raises(ValueError, match="read-only"):
        dask_tables.to_tables(dd.from_pandas(frame, npartitions=2), store, "/x")


def test_mode_w_replaces_the_file_and_r_plus_needs_one(tmp_path):
    path = tmp_path / "f.h5"
    frame = _small()
    frame.to_hdf(path, key="old", format="table")
    dask_tables.to_tables(dd.from_pandas(frame, npartitions=2), path, "new", mode="w")
    with pd.HDFStore(path, "r") as store:
        assert store.keys() == ["/new"]
    with pytest.raises(FileNotFoundError, match="mode='r\\+'"):
        dask_tables.to_tables(dd.from_pandas(frame, npartitions=2), tmp_path / "none.h5", "k", mode="r+")
    with pytest.raises(ValueError, match="mode='x'"):
        dask_tables.to_tables(dd.from_pandas(frame, npartitions=2), path, "k", mode="x")
