"""read_table: PyTables (and pandas-written) tables as dask DataFrames, against PyTables' and pandas' own reads."""

from __future__ import annotations

import contextlib
import os
import warnings

import dask
import numpy as np
import pandas as pd
import pytest
import tables
from helpers import registry_is_empty, run_python

import dask_tables
from dask_tables import FileChangedError, read_table
from dask_tables.info import inspect_file

Color = tables.Enum({"red": 3, "green": 1, "blue": 7})


class Event(tables.IsDescription):
    energy = tables.Float64Col(pos=0)
    time = tables.Int64Col(pos=1)
    count = tables.Int16Col(pos=2)
    flag = tables.BoolCol(pos=3)
    color = tables.EnumCol(Color, "red", base="uint8", pos=4)
    name = tables.StringCol(6, pos=5)
    z = tables.ComplexCol(16, pos=6)

    class pos(tables.IsDescription):
        _v_pos = 7
        x = tables.Float32Col(pos=0)
        y = tables.Float64Col(pos=1)


N = 5000


def _fill(numbers: np.ndarray) -> np.ndarray:
    dtype = tables.Description(Event().columns)._v_dtype
    rows = np.zeros(len(numbers), dtype)
    rows["energy"] = (numbers * 7919) % 1000 / 10.0
    rows["time"] = numbers * 3
    rows["count"] = numbers % 300 - 150
    rows["flag"] = numbers % 3 == 0
    rows["color"] = np.array([3, 1, 7])[numbers % 3]
    rows["name"] = [f"ev{i}".encode() for i in numbers]
    rows["z"] = numbers + 1j
    rows["pos"]["x"] = numbers * 0.5
    rows["pos"]["y"] = -numbers
    return rows


def write_events(path, n=N, first=0, filters=None, chunkshape=(256,), index=None) -> None:
    with tables.open_file(path, "w") as f:
        group = f.create_group("/", "detector")
        table = f.create_table(group, "events", Event, filters=filters, chunkshape=chunkshape)
        table.append(_fill(np.arange(first, first + n)))
        if index:
            getattr(table.cols, index).create_csindex()
        f.create_array("/", "array", np.arange(10))


def expected_frame(records: np.ndarray, rows: np.ndarray, columns=None) -> pd.DataFrame:
    """The data frame read_table must give for ``records`` (PyTables' read), built by hand."""
    flat = {
        "energy": records["energy"],
        "time": records["time"],
        "count": records["count"],
        "flag": records["flag"],
        "color": pd.Categorical.from_codes(
            np.searchsorted([1, 3, 7], records["color"]), categories=["green", "red", "blue"]
        ),
        "name": pd.array([s.decode() for s in records["name"]], dtype=pd.StringDtype("pyarrow")),
        "z": records["z"],
        "pos/x": records["pos"]["x"],
        "pos/y": records["pos"]["y"],
    }
    frame = pd.DataFrame(flat, index=pd.Index(np.asarray(rows, dtype=np.int64)))
    return frame if columns is None else frame[columns]


@pytest.fixture
def events(tmp_path):
    path = tmp_path / "events.h5"
    write_events(path, filters=tables.Filters(complevel=1, complib="zlib", shuffle=True))
    return path


def pytables_rows(path, condition=None, condvars=None, start=None, stop=None):
    with tables.open_file(path) as f:
        table = f.root.detector.events
        if condition is None:
            records = table.read(start, stop)
            return records, np.arange(start or 0, (start or 0) + len(records))
        if condvars == "column":
            condvars = {"x": table.cols.pos.x}
        rows = table.get_where_list(condition, condvars, start=start, stop=stop)
        return table.read_where(condition, condvars, start=start, stop=stop), rows


# ---------------------------------------------------------------- whole tables, columns


@pytest.mark.parametrize("direct", [True, False])
def test_whole_table_equals_pytables(events, direct):
    df = read_table(events, "/detector/events", chunksize=1000, direct=direct)
    assert df.npartitions == 7  # at most 1000 rows: 768, whole 256-row chunks
    assert df.divisions == (*range(0, N, 768), N - 1)
    result = df.compute(scheduler="threads")
    records, rows = pytables_rows(events)
    pd.testing.assert_frame_equal(result, expected_frame(records, rows))
    assert list(result.columns) == ["energy", "time", "count", "flag", "color", "name", "z", "pos/x", "pos/y"]
    assert registry_is_empty()


def test_columns_nested_names_and_groups(events):
    df = read_table(events, "detector/events", columns=["pos", "energy"])
    assert list(df.columns) == ["pos/x", "pos/y", "energy"]
    records, rows = pytables_rows(events)
    pd.testing.assert_frame_equal(df.compute(), expected_frame(records, rows, ["pos/x", "pos/y", "energy"]))


def test_meta_has_the_dtypes_of_the_data(events):
    df = read_table(events, "/detector/events")
    computed = df.compute()
    assert df.dtypes.to_dict() == computed.dtypes.to_dict()
    assert isinstance(df.dtypes["color"], pd.CategoricalDtype)


def test_meta_and_partitions_are_built_without_reading_rows(tmp_path):
    path = tmp_path / "damaged.h5"
    write_events(path, filters=tables.Filters(complevel=1, complib="zlib"))
    with tables.open_file(path) as f:
        info = f.root.detector.events.chunk_info((512,))
    with open(path, "r+b") as raw:
        raw.seek(info.offset + 10)
        raw.write(b"\xff" * 40)
    df = read_table(path, "/detector/events", chunksize=256)  # builds: no row is read
    assert df.npartitions == 20
    with pytest.raises(dask_tables.CorruptChunkError, match=r"damaged\.h5"):
        df.compute()
    assert len(df.partitions[0].compute()) == 256  # the other chunks still read


def test_column_projection_reaches_the_read(tmp_path):
    path = tmp_path / "bytes.h5"
    rows = np.array([(1, b"ok"), (2, b"\xff\xfe")], dtype=[("n", "i8"), ("s", "S2")])
    with tables.open_file(path, "w") as f:
        f.create_table("/", "t", obj=rows)
    df = read_table(path, "/t")
    with pytest.raises(UnicodeDecodeError, match=r"bytes.h5: node /t: column 's', row 1"):
        df.compute()
    # dask pushes the selection into the task: the bad column is never converted
    assert df["n"].sum().compute() == 3
    assert df[["n"]].compute()["n"].tolist() == [1, 2]
    raw = read_table(path, "/t", encoding=None).compute()
    assert raw["s"].tolist() == [b"ok", b"\xff\xfe"]


def test_multidimensional_column_says_how_to_read_it(tmp_path):
    path = tmp_path / "cells.h5"
    with tables.open_file(path, "w") as f:
        f.create_table("/", "t", obj=np.zeros(4, dtype=[("a", "i4"), ("m", "f4", (2, 3))]))
    with pytest.raises(ValueError, match=r"cells.h5: node /t: column 'm'.*from_tables\(\.\.\., field='m'\)"):
        read_table(path, "/t")
    assert read_table(path, "/t", columns=["a"]).compute()["a"].tolist() == [0, 0, 0, 0]


def test_empty_table_gives_an_empty_frame(tmp_path):
    path = tmp_path / "empty.h5"
    write_events(path, n=0)
    df = read_table(path, "/detector/events", where="energy > 1")
    result = df.compute()
    assert len(result) == 0
    assert result.dtypes.to_dict() == df.dtypes.to_dict()
    assert list(result.columns) == list(df.columns)


# ---------------------------------------------------------------- where


@pytest.mark.parametrize(
    ("condition", "condvars"),
    [
        ("energy > 50.5", None),
        ("(energy > lim) & (count < 0)", {"lim": 20.0}),
        ("(name == b'ev42') | flag", None),
        ("(x > 100) & (x < 200)", "column"),
    ],
)
@pytest.mark.parametrize("indexed", [False, True])
def test_where_equals_pytables_read_where(tmp_path, condition, condvars, indexed):
    path = tmp_path / "where.h5"
    write_events(
        path, filters=tables.Filters(complevel=1, complib="blosc2:lz4"), index="energy" if indexed else None
    )
    if condvars == "column":
        with tables.open_file(path) as f:  # a Column object of the user's own handle: kept by path
            df = read_table(
                path, "/detector/events", where=condition, condvars={"x": f.root.detector.events.cols.pos.x}
            )
    else:
        df = read_table(path, "/detector/events", where=condition, condvars=condvars, chunksize=700)
    records, rows = pytables_rows(path, condition, condvars)
    result = df.compute(scheduler="threads")
    assert 0 < len(result) < N
    pd.testing.assert_frame_equal(result, expected_frame(records, rows))


def test_indexed_condition_uses_the_index(tmp_path):
    path = tmp_path / "indexed.h5"
    write_events(path, index="time")
    df = read_table(path, "/detector/events", where="(time >= 300) & (time < 330)", chunksize=256)
    graph_reader = next(iter(df.dask.values()))
    assert len(df.compute()) == 10
    assert graph_reader is not None
    with tables.open_file(path) as f:
        assert f.root.detector.events.will_query_use_indexing("(time >= 300) & (time < 330)")


@pytest.mark.parametrize(
    "condition",
    [
        "((a > 100000000) & (b > 100000000)) | ((a < 5) & (b < 5))",
        "((a < 5) & (b < 5)) | ((a > 100000000) & (b > 100000000))",
        "(a < 5) & (b < 5) | (a > 199990) & (b > 199990)",
    ],
)
def test_or_of_ands_on_indexed_columns_returns_every_matching_row(tmp_path, condition):
    # PyTables' indexed query drops these rows (PyTables#564, pandas GH#50598): the
    # frame evaluates such a condition over every chunk, as PyTables does unindexed.
    path = tmp_path / "or-of-ands.h5"
    rows = np.zeros(200_000, dtype=[("a", "i8"), ("b", "i8")])
    rows["a"] = rows["b"] = np.arange(len(rows))
    with tables.open_file(path, "w") as f:
        table = f.create_table("/", "t", obj=rows, chunkshape=(1000,))
        table.cols.a.create_index()
        table.cols.b.create_index()
    a, b = rows["a"], rows["b"]  # noqa: F841 - the condition's names
    expected = rows[eval(condition)]  # numpy evaluates the same operators
    assert len(expected) >= 5
    got = read_table(path, "/t", where=condition, chunksize=50_000).compute(scheduler="threads")
    np.testing.assert_array_equal(got["a"].to_numpy(), expected["a"])
    np.testing.assert_array_equal(got["b"].to_numpy(), expected["b"])


@pytest.mark.parametrize(
    ("condition", "error", "message"),
    [
        ("energy >", SyntaxError, "invalid condition"),
        ("nosuch > 1", NameError, "nosuch"),
        ("energy + 1", TypeError, "boolean"),
        ("x > 1", NameError, "x"),  # a nested column needs condvars
    ],
)
def test_bad_conditions_raise_when_the_frame_is_built(events, condition, error, message):
    with pytest.raises(error, match=message) as info:
        read_table(events, "/detector/events", where=condition)
    assert "events.h5: node /detector/events" in str(info.value)


def test_where_variables_are_looked_up_as_table_where_looks_them_up(events):
    """condvars, else the table's columns, else (without condvars) the caller's locals, then globals."""
    lim, energy, time = 10.5, -1.0, np.int64(3000)  # the column energy wins over the local
    with tables.open_file(events) as f:
        table = f.root.detector.events
        want_rows = [
            r.nrow
            for r in table.where("(energy > lim) & (time < time_limit)", {"lim": lim, "time_limit": time})
        ]
        with pytest.raises(NameError):  # with condvars, PyTables reads no frame
            table.read_where("energy > lim", {})
    assert energy < 0 and 0 < len(want_rows) < 3000
    got = read_table(events, "/detector/events", where="(energy > lim) & (time < limit)", chunksize=1000)
    assert got.compute(scheduler="threads").index.tolist() == want_rows
    with pytest.raises(NameError, match="lim"):
        read_table(events, "/detector/events", where="energy > lim", condvars={})


limit = np.int64(3000)  # a global read by the where of the test above


# ---------------------------------------------------------------- index and divisions


def test_sorted_index_column_gives_known_divisions(events):
    df = read_table(events, "/detector/events", index="time", chunksize=1024)
    assert df.known_divisions
    assert df.divisions == (0, 3072, 6144, 9216, 12288, 3 * (N - 1))
    records, _ = pytables_rows(events)
    expected = expected_frame(records, np.arange(N)).set_index("time")
    pd.testing.assert_frame_equal(df.compute(), expected)
    # known divisions make a lookup read one partition
    assert df.loc[3072:3075].npartitions == 1
    assert df.loc[3072:3075].compute()["energy"].tolist() == expected.loc[3072:3075, "energy"].tolist()


def test_unsorted_index_column_has_unknown_divisions(events):
    df = read_table(events, "/detector/events", index="energy", chunksize=1024)
    assert not df.known_divisions
    assert len(df.compute()) == N


def test_index_sorted_only_where_sampled_gives_unknown_divisions_found_when_built(tmp_path):
    path = tmp_path / "edges.h5"
    rows = np.zeros(2000, dtype=[("k", "i8"), ("v", "f8")])
    rows["k"] = np.arange(2000)
    rows["k"][[5, 6]] = [6, 5]  # between two of the 16 rows sampled per partition
    with tables.open_file(path, "w") as f:
        f.create_table("/", "t", obj=rows, chunkshape=(1000,))
    df = read_table(path, "/t", index="k", chunksize=1000)
    assert not df.known_divisions
    assert df.compute().index.tolist() == rows["k"].tolist()
    with pytest.raises(
        ValueError, match=r"edges\.h5: node /t: sorted_index=True.*not sorted: it falls in rows 0\.\.999"
    ):
        read_table(path, "/t", index="k", chunksize=1000, sorted_index=True)


def test_almost_sorted_pandas_index_reads_as_pandas_reads_it(tmp_path):
    path = tmp_path / "late.h5"
    index = np.arange(400_000)
    index[[1000, 200_000, 300_000]] -= 500  # three late rows
    frame = pd.DataFrame({"a": np.arange(400_000) / 2}, index=index)
    frame.to_hdf(path, key="df", format="table")
    df = read_table(path, "df")
    assert not df.known_divisions
    pd.testing.assert_frame_equal(df.compute(), pd.read_hdf(path, "df"))
    by_column = read_table(path, "df", index="a")  # a sorted column packed with others: known
    assert by_column.known_divisions
    assert by_column.compute().index.equals(pd.Index(frame["a"], name="a"))
    with pytest.raises(ValueError, match=r"late\.h5: node /df: sorted_index=True.*the index is not sorted"):
        read_table(path, "df", sorted_index=True)
    sorted_frame = frame.sort_index()
    sorted_frame.to_hdf(path, key="sorted", format="table")
    df = read_table(path, "sorted", chunksize=100_000)
    chunk = _chunk_rows(path, "sorted")
    _check_divisions(df, sorted_frame, 100_000 // chunk * chunk)
    pd.testing.assert_frame_equal(df.compute(), sorted_frame)


def test_sorted_index_true_refuses_an_unsorted_column(events):
    with pytest.raises(ValueError, match=r"events\.h5: node /detector/events: sorted_index=True.*'energy'"):
        read_table(events, "/detector/events", index="energy", sorted_index=True)
    assert read_table(events, "/detector/events", index="time", sorted_index=True).known_divisions


def test_sorted_index_true_names_the_cause(events):
    with pytest.raises(
        ValueError, match=r"sorted_index=True, but the index column 'energy' .*: the index is not sorted"
    ):
        read_table(events, "/detector/events", index="energy", sorted_index=True)
    with pytest.raises(ValueError, match=r"index column 'name' .*: it holds string values"):
        read_table(events, "/detector/events", index="name", sorted_index=True)
    assert not read_table(events, "/detector/events", index="name").known_divisions


# ---------------------------------------------------------------- many files, start and stop


def test_glob_of_files_in_sorted_order_with_global_row_numbers(tmp_path):
    for i in (2, 0, 1):
        write_events(tmp_path / f"run{i}.h5", n=1000, first=1000 * i)
    df = read_table(str(tmp_path / "run*.h5"), "/detector/events", chunksize=512)
    assert df.npartitions == 6  # each file its own two partitions
    assert df.divisions == (0, 512, 1000, 1512, 2000, 2512, 2999)
    expected = expected_frame(_fill(np.arange(3000)), np.arange(3000))
    pd.testing.assert_frame_equal(df.compute(), expected)
    sliced = read_table(str(tmp_path / "run*.h5"), "/detector/events", start=900, stop=-900, index="time")
    pd.testing.assert_frame_equal(sliced.compute(), expected.iloc[900:2100].set_index("time"))


def test_files_with_different_tables_are_refused(tmp_path):
    write_events(tmp_path / "a.h5", n=10)
    with tables.open_file(tmp_path / "b.h5", "w") as f:
        f.create_group("/", "detector")
        f.create_table("/detector", "events", obj=np.zeros(3, "i4,f8"))
    with pytest.raises(ValueError, match=r"b\.h5: node /detector/events"):
        read_table([tmp_path / "a.h5", tmp_path / "b.h5"], "/detector/events")


def test_start_and_stop(events):
    df = read_table(events, "/detector/events", start=100, stop=1100, chunksize=256, where="flag")
    records, rows = pytables_rows(events, "flag", start=100, stop=1100)
    pd.testing.assert_frame_equal(df.compute(), expected_frame(records, rows))
    assert df.divisions[0] == 100


@pytest.mark.parametrize(
    ("start", "stop", "phrase"),
    [
        (N + 1, None, "is above or equal to the number of rows"),
        (None, N + 1, "exceeds the number of rows"),
        (-N - 1, None, "is before the first row"),
        (10, 5, "is above or equal to stop=5"),
    ],
)
def test_start_stop_out_of_range(events, start, stop, phrase):
    # ValueError in dask's words ("number of rows", "is above or equal to"), as dd.read_hdf raises
    with pytest.raises(ValueError, match=rf"events\.h5: node /detector/events: .*{phrase}"):
        read_table(events, "/detector/events", start=start, stop=stop)


# ---------------------------------------------------------------- bad input


def test_bad_input_errors_name_file_and_node(events, tmp_path):
    with pytest.raises(tables.NoSuchNodeError, match=r"events.h5: no node '/nosuch'"):
        read_table(events, "/nosuch")
    with pytest.raises(TypeError, match=r"events.h5: node /array is a Array, not a Table"):
        read_table(events, "/array")
    with pytest.raises(TypeError, match=r"node /detector is a Group"):
        read_table(events, "/detector")
    with pytest.raises(KeyError, match=r"events.h5: node /detector/events: no column 'nosuch'"):
        read_table(events, "/detector/events", columns=["energy", "nosuch"])
    with pytest.raises(KeyError, match=r"index='nosuch' is not a column"):
        read_table(events, "/detector/events", index="nosuch")
    with pytest.raises(FileNotFoundError, match=r"missing\.h5"):
        read_table(tmp_path / "missing.h5", "/detector/events")
    with pytest.raises(ValueError, match="chunksize"):
        read_table(events, "/detector/events", chunksize=0)


def test_changed_file_raises(events):
    df = read_table(events, "/detector/events")
    with tables.open_file(events, "a") as f:
        f.root.detector.events.append(_fill(np.arange(3)))
    with pytest.raises(FileChangedError, match=r"events\.h5.*rebuild the frame with read_table"):
        df.compute()


# ---------------------------------------------------------------- schedulers


@pytest.mark.parametrize("scheduler", ["synchronous", "threads", "processes"])
def test_every_local_scheduler(events, scheduler):
    df = read_table(events, "/detector/events", columns=["energy", "count", "color"], chunksize=1024)
    records, _ = pytables_rows(events)
    mean, counts = dask.compute(
        df.energy.mean(), df.groupby("color", observed=True)["count"].sum(), scheduler=scheduler
    )
    assert mean == pytest.approx(records["energy"].mean())
    assert counts["red"] == records["count"][records["color"] == 3].sum()
    assert registry_is_empty()


@contextlib.contextmanager
def local_client(workers: int):
    """A client of its own LocalCluster (``workers`` processes x 1 thread), for one test."""
    distributed = pytest.importorskip("distributed")
    with (
        warnings.catch_warnings(),
        distributed.LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0"
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        warnings.simplefilter("ignore", UserWarning)  # distributed's port and memory notices
        yield client


def test_distributed_local_cluster(events):
    df = read_table(events, "/detector/events", where="energy > 50.5", chunksize=1024)
    records, _ = pytables_rows(events, "energy > 50.5")
    with local_client(workers=2) as client:
        total, count = client.compute([df.energy.sum(), df.energy.count()], sync=True)
        assert set(client.run(lambda: len(tables.file._open_files)).values()) == {0}
    assert count == len(records)
    assert total == pytest.approx(records["energy"].sum())


# ---------------------------------------------------------------- pandas-written tables


@pytest.fixture
def pandas_file(tmp_path):
    path = tmp_path / "pandas.h5"
    n = 3000
    frame = pd.DataFrame(
        {
            "A": np.arange(n, dtype="f8") / 7,
            "B": np.arange(n) % 11,
            "C": np.arange(n, dtype="i4"),
            "s": [f"s{i % 13}" for i in range(n)],
            "t": pd.date_range("2021-01-01", periods=n, freq="min"),
        },
        index=pd.RangeIndex(5, 5 + n),
    )
    frame.to_hdf(path, key="frame", format="table", data_columns=["B", "t"], complevel=1, complib="zlib")
    return path


def pandas_expected(path, **kwargs):
    expected = pd.read_hdf(path, "frame", **kwargs)
    # dask turns text columns into pyarrow strings, as dask.dataframe.read_hdf does
    return expected.astype({c: pd.StringDtype("pyarrow") for c in expected if expected[c].dtype == "str"})


@pytest.mark.parametrize("node", ["frame", "/frame", "/frame/table"])
def test_pandas_table_equals_pandas_read_hdf(pandas_file, node):
    df = read_table(pandas_file, node, chunksize=1000)
    pd.testing.assert_frame_equal(df.compute(scheduler="threads"), pandas_expected(pandas_file))


def test_pandas_where_columns_and_start_stop(pandas_file):
    where = "(B > 3) & (index < 2000) & (t > '2021-01-01 02:00')"
    df = read_table(pandas_file, "frame", where=where, columns=["A", "s"], start=100, stop=2500)
    expected = pandas_expected(pandas_file, where=where, columns=["A", "s"], start=100, stop=2500)
    assert len(expected) > 100
    pd.testing.assert_frame_equal(df.compute(), expected)
    assert df.A.sum().compute() == pytest.approx(expected.A.sum())


def test_pandas_index_column(pandas_file):
    df = read_table(pandas_file, "frame", index="C", columns=["A"])
    pd.testing.assert_frame_equal(df.compute(), pandas_expected(pandas_file).set_index("C")[["A"]])


def test_pandas_bad_input(pandas_file, tmp_path):
    with pytest.raises(ValueError, match=r"pandas.h5: node /frame: invalid pandas where"):
        read_table(pandas_file, "frame", where="Z > 3")
    with pytest.raises(ValueError, match=r"pandas.h5: node /frame: invalid pandas where"):
        read_table(pandas_file, "frame", where="B >> 3")
    fixed = tmp_path / "fixed.h5"
    pd.DataFrame({"a": [1, 2]}).to_hdf(fixed, key="f", format="fixed")
    # the fixed format is read (tests/test_pandas_fixed.py), but not queried, as pandas does not query it
    pd.testing.assert_frame_equal(read_table(fixed, "f").compute(), pd.read_hdf(fixed, "f"))
    with pytest.raises(TypeError, match=r"fixed.h5: node /f was written by pandas in its 'fixed' format"):
        read_table(fixed, "f", where="a > 1")


def test_pandas_file_changed(pandas_file):
    df = read_table(pandas_file, "frame")
    os.utime(pandas_file, ns=(0, 0))
    with pytest.raises(FileChangedError, match=r"pandas\.h5.*rebuild the frame with read_table"):
        df.compute()


def test_pandas_file_changed_on_a_cluster_names_the_change(pandas_file):
    """A worker shows a failed task's repr: the pandas reader's must not fail and hide the real error."""
    df = read_table(pandas_file, "frame")
    tasks = [getattr(t, "func", None) for t in dict(df.dask).values()]
    reader = next(f for f in tasks if type(f).__name__ == "PandasTableReader")
    assert "PandasConversion(origin=" in repr(reader)  # the detached storer is left out of reprs
    os.utime(pandas_file, ns=(0, 0))
    with (
        local_client(workers=1) as client,
        pytest.raises(FileChangedError, match=r"pandas\.h5.*rebuild the frame with read_table"),
    ):
        client.compute(df, sync=True)


def test_in_kernel_conditions_from_many_threads_do_not_crash(tmp_path):
    """numexpr functions keep scratch memory inside: one per thread, or the process crashes."""
    path = tmp_path / "race.h5"
    write_events(path, n=20_000, chunkshape=(64,))
    code = f"""
        import dask, numpy as np, tables
        from dask_tables import read_table
        with tables.open_file({str(path)!r}) as f:
            expected = len(f.root.detector.events.get_where_list("(energy * 2 > count) & ~flag"))
        for _ in range(6):
            df = read_table({str(path)!r}, "/detector/events", columns=["energy"], chunksize=64,
                            where="(energy * 2 > count) & ~flag")
            assert len(df.compute(scheduler="threads", num_workers=8)) == expected
        print("ok")
    """
    done = run_python(code, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "ok"


def numeric_frame(n: int, index: pd.Index) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "a": np.arange(n) / 3,
            "b": np.arange(n, dtype="i2") % 7,
            "c": np.arange(n, dtype="u4") * 2,
            "d": np.arange(n) % 3 == 0,
            "e": np.arange(n, dtype="f4"),
            "g": -np.arange(n, dtype="i8"),
        },
        index=index,
    )


@pytest.mark.parametrize(
    ("index", "known"),
    [
        (pd.RangeIndex(0, 4000), True),
        (pd.Index(np.arange(4000) * 2.5, name="when"), True),
        (pd.Index((np.arange(4000) * 7919) % 4001), False),
    ],
)
@pytest.mark.parametrize("complib", [None, "blosc2:lz4"])
def test_numeric_pandas_tables_decode_directly(tmp_path, index, known, complib):
    path = tmp_path / "numeric.h5"
    options = {"complevel": 1, "complib": complib} if complib else {}
    numeric_frame(4000, index).to_hdf(path, key="frame", format="table", data_columns=["b", "g"], **options)
    df = read_table(path, "frame", chunksize=1000)
    assert df.known_divisions == known
    pd.testing.assert_frame_equal(df.compute(scheduler="threads"), pd.read_hdf(path, "frame"))
    subset = read_table(path, "frame", columns=["g", "d", "a"], start=10, stop=3990)
    pd.testing.assert_frame_equal(
        subset.compute(), pd.read_hdf(path, "frame", columns=["g", "d", "a"], start=10, stop=3990)
    )
    assert df.e.sum().compute() == pytest.approx(np.arange(4000).sum())


def test_pandas_index_sorted_only_at_partition_edges_gives_unknown_divisions(tmp_path):
    path = tmp_path / "edges.h5"
    labels = np.arange(4000)
    labels[5], labels[6] = labels[6], labels[5]  # between two sampled rows
    numeric_frame(4000, pd.Index(labels)).to_hdf(path, key="frame", format="table")
    with tables.open_file(path) as f:
        chunk_rows = f.root.frame.table.chunkshape[0]
    assert chunk_rows < 3000
    df = read_table(path, "frame", chunksize=chunk_rows)
    assert not df.known_divisions  # found when the frame is built, never by a task
    pd.testing.assert_frame_equal(df.compute(), pd.read_hdf(path, "frame"))
    with pytest.raises(ValueError, match=r"edges\.h5: node /frame: sorted_index=True.*falls in rows 0\.\."):
        read_table(path, "frame", chunksize=chunk_rows, sorted_index=True)


@pytest.mark.parametrize("autoindex", [True, False])
def test_where_after_appending_to_an_indexed_table(tmp_path, autoindex):
    path = tmp_path / "appended.h5"
    write_events(path, n=3000, index="energy")
    with tables.open_file(path, "a") as f:
        table = f.root.detector.events
        table.autoindex = autoindex
        table.append(_fill(np.arange(3000, 4100)))
        table.flush()
        uses_index = bool(table.will_query_use_indexing("energy < 5.0"))
    assert uses_index == autoindex  # a dirty index is not used
    df = read_table(path, "/detector/events", where="energy < 5.0", chunksize=512)
    records, rows = pytables_rows(path, "energy < 5.0")
    assert rows.max() >= 3000  # matches in the appended rows too
    pd.testing.assert_frame_equal(df.compute(), expected_frame(records, rows))


# ---------------------------------------------------------------- pandas Series (issue 15, item 2)


def _arrow_strings(data):
    """What dask gives for pandas' text columns: pyarrow strings (as dask.dataframe.read_hdf)."""
    string = pd.StringDtype("pyarrow")
    if isinstance(data, pd.Series):
        return data.astype(string) if data.dtype == "str" else data
    return data.astype({c: string for c in data if data[c].dtype == "str"})


S = 20_000  # rows: several HDF5 chunks of pandas' default chunkshape

SERIES = {
    "named": (pd.Series(np.arange(S) / 7, name="v"), "index > 12000"),
    "unnamed": (pd.Series(np.arange(S, dtype="i4")), "index < 7000"),
    "strings": (pd.Series([f"s{i % 17}" for i in range(S)], name="word"), "index > 15000"),
    "datetime index": (
        pd.Series(np.arange(S) % 13, index=pd.date_range("2021-01-01", periods=S, freq="min"), name="n"),
        "index > '2021-01-03 10:00'",
    ),
    "tz-aware index": (
        pd.Series(
            np.arange(S) / 3,
            index=pd.date_range("2021-03-27", periods=S, freq="min", tz="Europe/Paris"),
            name="x",
        ),
        "index < '2021-03-28 12:00'",
    ),
}


def _chunk_rows(path, key):
    with tables.open_file(path) as f:
        return int(f.get_node(f"/{key}/table").chunkshape[0])


@pytest.mark.parametrize("kind", list(SERIES))
def test_pandas_series_reads_as_a_dask_series_like_read_hdf(tmp_path, kind):
    series, where = SERIES[kind]
    path = tmp_path / "series.h5"
    series.to_hdf(path, key="s", format="table")
    rows = _chunk_rows(path, "s")
    for condition in (None, where):
        expected = pd.read_hdf(path, "s", where=condition)
        assert isinstance(expected, pd.Series)  # what pandas gives, with and without where
        assert 0 < len(expected) < len(series) or condition is None
        result = read_table(path, "s", where=condition, chunksize=rows)
        assert isinstance(result, dask.dataframe.Series)
        assert result.name == expected.name
        pd.testing.assert_series_equal(result.compute(scheduler="threads"), _arrow_strings(expected))
    whole = read_table(path, "s", chunksize=rows)
    assert whole.npartitions == -(-S // rows) > 1
    assert whole.divisions == (*series.index[::rows], series.index[-1])  # a sorted index: known
    if series.dtype.kind in "if":
        assert whole.sum().compute() == pytest.approx(series.sum())


def test_pandas_series_has_no_columns(tmp_path):
    path = tmp_path / "series.h5"
    pd.Series(np.arange(10.0), name="v").to_hdf(path, key="s", format="table")
    for kwargs in ({"columns": ["v"]}, {"index": "v"}):
        with pytest.raises(ValueError, match=r"series\.h5: node /s holds a pandas Series \(name 'v'\)"):
            read_table(path, "s", **kwargs)


# ---------------------------------------------------------------- pandas table divisions (issue 15, item 10)


OTHER_COLUMNS = {
    "string": [f"s{i % 13}" for i in range(S)],
    "datetime": pd.date_range("2021-01-01", periods=S, freq="min"),
    "tz-aware datetime": pd.date_range("2021-01-01", periods=S, freq="min", tz="America/New_York"),
    "categorical": pd.Categorical(np.array(["a", "b", "c"])[np.arange(S) % 3]),
    "bool": np.arange(S) % 2 == 0,
}


def _check_divisions(df, expected, rows):
    """The divisions are the first label of every ``rows`` rows, and each partition's first label."""
    assert df.divisions == (*expected.index[::rows], expected.index[-1])
    for number in range(df.npartitions):
        assert df.get_partition(number).compute().index[0] == df.divisions[number]


@pytest.mark.parametrize("column", list(OTHER_COLUMNS))
@pytest.mark.parametrize("data_column", [False, True])
def test_pandas_index_divisions_whatever_the_other_columns(tmp_path, column, data_column):
    path = tmp_path / "mixed.h5"
    frame = pd.DataFrame({"a": np.arange(S) / 3, "other": OTHER_COLUMNS[column]}, index=np.arange(S) * 2)
    frame.to_hdf(path, key="frame", format="table", data_columns=["other"] if data_column else None)
    rows = _chunk_rows(path, "frame")
    expected = _arrow_strings(pd.read_hdf(path, "frame"))
    df = read_table(path, "frame", chunksize=rows)
    assert df.npartitions > 1
    _check_divisions(df, expected, rows)
    pd.testing.assert_frame_equal(df.compute(scheduler="threads"), expected)
    middle = slice(rows - 10, 2 * rows + 10)
    pd.testing.assert_frame_equal(df.loc[middle].compute(), expected.loc[middle])
    assert read_table(path, "frame", chunksize=rows, sorted_index=True).divisions == df.divisions


@pytest.mark.parametrize("tz", [None, "Europe/Paris"])
@pytest.mark.parametrize("freq", [True, False])
def test_pandas_datetime_index_divisions(tmp_path, tz, freq):
    path = tmp_path / "times.h5"
    when = pd.date_range("2021-03-27", periods=S, freq="min", tz=tz)
    when = when if freq else pd.DatetimeIndex(list(when))  # pandas pickles a freq into the attributes
    frame = pd.DataFrame({"a": np.arange(S), "s": [f"s{i % 5}" for i in range(S)]}, index=when)
    frame.to_hdf(path, key="frame", format="table", data_columns=["a"])
    rows = _chunk_rows(path, "frame")
    expected = _arrow_strings(pd.read_hdf(path, "frame"))
    df = read_table(path, "frame", chunksize=rows)
    assert df.npartitions > 1
    _check_divisions(df, expected, rows)
    assert all(d.tz == expected.index.tz for d in df.divisions)
    pd.testing.assert_frame_equal(df.compute(scheduler="threads"), expected)
    middle = slice(when[rows // 2], when[rows + rows // 2])
    pd.testing.assert_frame_equal(df.loc[middle].compute(), expected.loc[middle])
    where = read_table(path, "frame", chunksize=rows, where="(a > 100) & (a < 15000)")
    assert where.divisions == df.divisions
    pd.testing.assert_frame_equal(
        where.compute(), _arrow_strings(pd.read_hdf(path, "frame", where="(a > 100) & (a < 15000)"))
    )


def test_pandas_index_column_divisions(pandas_file):
    df = read_table(pandas_file, "frame", index="C", columns=["A", "s"], chunksize=1000)
    assert df.known_divisions
    expected = pandas_expected(pandas_file).set_index("C")[["A", "s"]]
    pd.testing.assert_frame_equal(df.compute(), expected)
    chunk = _chunk_rows(pandas_file, "frame")
    _check_divisions(df, expected, 1000 // chunk * chunk or 1000)  # at most 1000 rows, whole chunks if any


def test_pandas_sorted_index_true_names_the_real_cause(tmp_path):
    path = tmp_path / "causes.h5"
    values = {"a": np.arange(3000) / 3, "s": [f"s{i % 5}" for i in range(3000)]}
    pd.DataFrame(values, index=(np.arange(3000) * 7919) % 3001).to_hdf(path, key="shuffled", format="table")
    pd.DataFrame(values, index=[f"k{i:05d}" for i in range(3000)]).to_hdf(path, key="words", format="table")
    with pytest.raises(
        ValueError, match=r"causes\.h5: node /shuffled: sorted_index=True.*the index is not sorted"
    ):
        read_table(path, "shuffled", chunksize=1000, sorted_index=True)
    with pytest.raises(ValueError, match=r"causes\.h5: node /words: sorted_index=True.*the index has dtype"):
        read_table(path, "words", chunksize=1000, sorted_index=True)
    assert not read_table(path, "shuffled", chunksize=1000).known_divisions
    assert not read_table(path, "words", chunksize=1000).known_divisions


def test_pandas_index_unsorted_between_samples_gives_unknown_divisions_with_strings(tmp_path):
    path = tmp_path / "edges.h5"
    labels = np.arange(4000)
    labels[5], labels[6] = labels[6], labels[5]  # between two sampled rows
    frame = pd.DataFrame({"s": [f"s{i}" for i in range(4000)]}, index=labels)
    frame.to_hdf(path, key="frame", format="table")
    df = read_table(path, "frame", chunksize=1000)
    assert not df.known_divisions
    pd.testing.assert_frame_equal(df.compute(), _arrow_strings(pd.read_hdf(path, "frame")))


def test_pandas_pickled_metadata_reads_and_a_hostile_pickle_is_named(tmp_path):
    """pandas' own pickles (dateutil time zones, Timestamp labels, axes=['columns']) read; others are named."""
    dateutil_tz = pytest.importorskip("dateutil.tz")
    path = tmp_path / "dateutil.h5"
    when = pd.date_range("2021-01-01", periods=10, freq="h", tz=dateutil_tz.gettz("Asia/Tokyo"))
    pd.Series(np.arange(10), index=when, name="n").to_hdf(path, key="s", format="table")
    frame = pd.DataFrame({pd.Timestamp("2020-01-01"): [1.0, 2.0], pd.Timestamp("2020-01-02"): [3.0, 4.0]})
    frame.to_hdf(path, key="labels", format="table")
    with pd.HDFStore(path) as store:
        store.append("columns", pd.DataFrame(np.ones((4, 3)), columns=list("abc")), axes=["columns"])
    holidays = pd.offsets.CustomBusinessDay(holidays=[np.datetime64("2014-05-01")], weekmask="Sun Mon Tue")
    days = pd.date_range("2014-04-27", periods=5, freq=holidays)  # its freq pickles numpy datetimes as bytes
    pd.Series(np.arange(5), index=days).to_hdf(path, key="days", format="table")
    for key in ["s", "labels", "columns", "days"]:
        got = read_table(path, key).compute()
        want = pd.read_hdf(path, key)
        check = pd.testing.assert_series_equal if key in ("s", "days") else pd.testing.assert_frame_equal
        check(got, want)
    with tables.open_file(path, "a") as f:
        f.root.s._v_attrs.info = _Getattr()  # a pickle that would call a function
    with pytest.raises(
        ValueError, match=r"dateutil\.h5: node /s: .*'info' \(a pickled .*pass allow_pickles=True"
    ):
        read_table(path, "s")


class _Getattr:
    """Pickles as ``getattr(object, "__subclasses__")``: the first step of many pickle exploits."""

    def __reduce__(self):
        return (getattr, (object, "__subclasses__"))


def test_pandas_time_zones_pass_the_pickle_gate_but_no_other_getattr(tmp_path):
    from dask_tables.hdf5.pickles import refusing_pickles

    path = tmp_path / "gate.h5"
    when = pd.date_range("2021-01-01", periods=10, freq="h", tz="Asia/Tokyo")
    pd.Series(np.arange(10), index=when, name="n").to_hdf(path, key="s", format="table")
    with tables.open_file(path, "a") as f:
        f.root.s._v_attrs.hostile = _Getattr()
    with refusing_pickles(), tables.open_file(path) as f:
        assert isinstance(f.root.s._v_attrs.hostile, bytes)  # refused, kept raw
        assert f.root.s._v_attrs.info["index"]["tz"] == when.tz  # allowed: ZoneInfo's own getattr
    with tables.open_file(path) as f:  # outside the block: PyTables as ever (the test can fail)
        assert f.root.s._v_attrs.hostile == object.__subclasses__
    pd.testing.assert_series_equal(read_table(path, "s").compute(), pd.read_hdf(path, "s"))


# ---------------------------------------------------------------- enum names in where (issue 15, item 11)


@pytest.mark.parametrize(
    ("condition", "condvars", "pytables_condition", "pytables_condvars"),
    [
        ("color == 'blue'", None, "color == v", {"v": Color["blue"]}),
        ("color != 'red'", None, "color != v", {"v": Color["red"]}),
        ("'green' == color", None, "color == v", {"v": Color["green"]}),
        ("color == b'blue'", None, "color == 7", None),
        (
            "(color == 'green') | (color == 'blue')",
            None,
            "(color == g) | (color == b)",
            {"g": Color["green"], "b": Color["blue"]},
        ),
        ("(color == c) & (energy > 40.5)", {"c": "red"}, "(color == 3) & (energy > 40.5)", None),
        ("(shade == 'green') & (count > 0)", "column", "(color == 1) & (count > 0)", None),
    ],
)
@pytest.mark.parametrize("indexed", [False, True])
def test_where_with_enum_names_equals_read_where_with_values(
    tmp_path, condition, condvars, pytables_condition, pytables_condvars, indexed
):
    path = tmp_path / "enum.h5"
    write_events(path, index="color" if indexed else None)
    if condvars == "column":  # the enum column under another name
        with tables.open_file(path) as f:
            df = read_table(
                path,
                "/detector/events",
                where=condition,
                condvars={"shade": f.root.detector.events.cols.color},
            )
    else:
        df = read_table(path, "/detector/events", where=condition, condvars=condvars, chunksize=700)
    records, rows = pytables_rows(path, pytables_condition, pytables_condvars)
    assert 0 < len(rows) < N
    pd.testing.assert_frame_equal(df.compute(scheduler="threads"), expected_frame(records, rows))


def test_where_with_a_name_not_in_the_enum(events):
    with pytest.raises(
        ValueError,
        match=r"events\.h5: node /detector/events: invalid condition .*'purple' is not a name of the enum "
        r"column 'color'; its names are (?=.*red)(?=.*green)(?=.*blue)",
    ):
        read_table(events, "/detector/events", where="(color == 'purple') | flag")
    with pytest.raises(ValueError, match=r"events\.h5: .*'color' compares with its names by == or != only"):
        read_table(events, "/detector/events", where="color < 'blue'")


# ---------------------------------------------------------------- what dask and pandas users expect


def test_home_folder_and_bytes_paths_read_as_pandas_reads_them(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    write_events(tmp_path / "t.h5", n=100)
    frame = pd.DataFrame({"a": np.arange(10)})
    frame.to_hdf(tmp_path / "p.h5", key="df", format="table")
    for path in ("~/t.h5", os.fsencode(tmp_path / "t.h5"), [b"~/t.h5"]):
        assert len(read_table(path, "/detector/events").compute()) == 100
        assert dask_tables.from_tables(path, "/array").compute().tolist() == list(range(10))
    pd.testing.assert_frame_equal(read_table("~/p.h5", "df").compute(), pd.read_hdf("~/p.h5", "df"))
    assert [n.path for n in inspect_file(b"~/t.h5", "/array")] == ["/array"]


def test_chunksize_is_a_maximum_in_whole_chunks_where_it_allows(tmp_path):
    path = tmp_path / "t.h5"
    write_events(path, n=1000, chunkshape=(100,))
    for chunksize, rows in ((2, 2), (250, 200), (100, 100), (1000, 1000)):
        df = read_table(path, "/detector/events", chunksize=chunksize)
        lengths = df.map_partitions(len).compute().tolist()
        assert lengths == [rows] * (1000 // rows), chunksize
    pandas = tmp_path / "p.h5"
    data = pd.DataFrame({"x": [1, 2, 3, 4], "y": [1.0, 2.0, 3.0, 4.0]}, index=[1.0, 2.0, 3.0, 4.0])
    data.to_hdf(pandas, key="data", format="table")
    df = read_table(pandas, "/data", chunksize=2)  # pandas' table has chunks of thousands of rows
    assert df.npartitions == 2
    assert df.divisions == (1.0, 3.0, 4.0)
    pd.testing.assert_frame_equal(df.compute(), data)


def test_bad_arguments_raise_value_errors_in_dasks_words(tmp_path):
    path = tmp_path / "p.h5"
    pd.DataFrame({"y": [1, 2, 3, 4]}).to_hdf(path, key="data", format="table")
    write_events(tmp_path / "t.h5", n=4)
    for file, node in ((path, "/data"), (tmp_path / "t.h5", "/detector/events")):
        with pytest.raises(ValueError, match="number of rows"):
            read_table(file, node, stop=10)
        with pytest.raises(ValueError, match="is above or equal to"):
            read_table(file, node, start=10)
        with pytest.raises(ValueError, match="positive integer"):
            read_table(file, node, chunksize=-1)
    with pytest.raises(ValueError, match="the list of paths is empty"):
        read_table([], "/data")


def test_node_patterns_read_every_matching_key_as_one_frame(tmp_path):
    one, two = tmp_path / "one.h5", tmp_path / "two.h5"
    frames = {
        key: pd.DataFrame({"y": np.arange(5) + i * 10}, index=np.arange(5) + i * 5)
        for i, key in enumerate("abc")
    }
    frames["a"].to_hdf(one, key="/foo/data", format="table")
    frames["b"].to_hdf(two, key="/bar/data", format="table")
    frames["c"].to_hdf(two, key="/foo/data", format="table")
    frames["a"].to_hdf(two, key="/data1", format="table")
    frames["b"].to_hdf(two, key="/data2", format="table")
    with tables.open_file(two, "a") as f:  # a PyTables table matches too, a pandas group's "table" does not
        f.create_table("/", "data3", obj=np.zeros(3, dtype=[("y", "i8")]))
    df = read_table(two, "/*/data", chunksize=2)
    assert df.npartitions == 3 + 3
    pd.testing.assert_frame_equal(df.compute(), pd.concat([frames["b"], frames["c"]]))
    every = read_table(str(tmp_path / "*.h5"), "/*/data", chunksize=2).compute()
    pd.testing.assert_frame_equal(every, pd.concat([frames[k] for k in "abc"]))
    pandas_keys = read_table(two, "/data[12]").compute()
    pd.testing.assert_frame_equal(pandas_keys, pd.concat([frames["a"], frames["b"]]))
    assert len(read_table(two, "/data*", columns=["y"]).compute()) == 5 + 5 + 3
    single = read_table(one, "/*/data", start=1, stop=3).compute()
    pd.testing.assert_frame_equal(single, pd.read_hdf(one, "/foo/data", start=1, stop=3))
    with pytest.raises(ValueError, match="ambiguous"):
        read_table(two, "/*/data", start=1)
    with pytest.raises(tables.NoSuchNodeError, match=r"no table matches the node pattern '/nothing\*'"):
        read_table(two, "/nothing*")
