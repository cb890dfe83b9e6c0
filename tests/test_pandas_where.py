"""read_table's ``where`` on pandas-written tables: on the direct path, equal to ``pd.read_hdf(where=...)``."""

from __future__ import annotations

import pickle

import dask
import numpy as np
import pandas as pd
import pytest
import tables
from helpers import run_benchmark

from dask_tables import diagnostics, read_table
from dask_tables.frame.pandas_select import PandasConversion, PandasWhere

N = 20_000
DATA_COLUMNS = ["i", "u", "f", "s", "c", "d", "b", "td"]


def mixed_frame(n: int = N) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "i": rng.integers(0, 1000, n),
            "u": np.arange(n, dtype="u2"),
            "f": rng.random(n),
            "s": pd.array([None if k % 97 == 0 else f"s{k % 13}" for k in range(n)], dtype="str"),
            "c": pd.Categorical([["a", "b", "c", None][k % 4] for k in range(n)]),
            "d": pd.date_range("2020-01-01", periods=n, freq="h", tz="Europe/Paris"),
            "b": np.arange(n) % 3 == 0,
            "td": pd.to_timedelta(np.arange(n), unit="s"),
            "f2": rng.random(n),
            "s2": ["x" * (k % 5) for k in range(n)],
            "c2": pd.Categorical([["p", "q"][k % 2] for k in range(n)]),
        },
        index=pd.date_range("2021-01-01", periods=n, freq="min", name="t"),
    )


@pytest.fixture(scope="module", params=[True, False], ids=["indexed", "unindexed"])
def mixed_file(request, tmp_path_factory):
    path = tmp_path_factory.mktemp("where") / "mixed.h5"
    mixed_frame().to_hdf(
        path,
        key="df",
        format="table",
        data_columns=DATA_COLUMNS,
        complib="zlib",
        complevel=1,
        index=request.param,
    )
    with tables.open_file(path) as f:
        assert f.root.df.table.colindexed["i"] is request.param
    return path


def expected(path, key="df", **kwargs):
    frame = pd.read_hdf(path, key, **kwargs)

    # dask turns text columns into pyarrow strings, as dask.dataframe.read_hdf does; pandas gives
    # ``object`` for a text values block when no row matches (the dtype of its empty answer)
    def text(dtype):
        return dtype == "str" or (len(frame) == 0 and dtype == np.dtype("O"))

    if isinstance(frame, pd.Series):
        return frame.astype(pd.StringDtype("pyarrow")) if text(frame.dtype) else frame
    return frame.astype({c: pd.StringDtype("pyarrow") for c in frame if text(frame[c].dtype)})


def computed(path, key="df", scheduler="threads", **kwargs):
    with diagnostics.collect() as stats:
        got = read_table(path, key, chunksize=2000, **kwargs).compute(scheduler=scheduler)
    return got, stats


DIRECT_WHERES = [
    "i > 500 & s == 's3'",
    "index > '2021-01-05 05:00' & index < '2021-01-07'",
    "index >= Timestamp('2021-01-10')",
    "c == 'a'",
    "c != 'b'",
    "d > '2020-01-10'",
    "d <= '2020-03-01 12:00+01:00'",
    "s in ['s1', 's2']",
    "s == 'nan'",
    "b == True",
    "td > '1h'",
    "u < 100 | u > 19900",
    "(i < 10 | i > 990) & (f < 0.5)",
    "f > 0.999",
    "i == 1001",  # nothing matches
    "(s == 's1') | (c == 'c')",
]


@pytest.mark.parametrize("where", DIRECT_WHERES)
def test_where_runs_directly_and_equals_read_hdf(mixed_file, where):
    got, stats = computed(mixed_file, where=where)
    pd.testing.assert_frame_equal(got, expected(mixed_file, where=where), check_exact=True)
    assert stats["direct_chunks"] > 0 or len(got) == 0
    assert stats["pipeline_reads"] == 0  # no partition went through pandas' select


def test_index_reads_only_the_chunks_it_flags(mixed_file):
    with tables.open_file(mixed_file) as f:
        table = f.root.df.table
        chunks, indexed = -(-table.nrows // table.chunkshape[0]), table.colindexed["index"]
    where = "index > '2021-01-05 05:00' & index < '2021-01-06'"  # 1,135 clustered rows
    got, stats = computed(mixed_file, where=where)
    pd.testing.assert_frame_equal(got, expected(mixed_file, where=where), check_exact=True)
    if indexed:
        assert 0 < stats["direct_chunks"] < chunks / 3
    else:
        assert stats["direct_chunks"] == chunks


@pytest.mark.parametrize(
    ("where", "columns", "start", "stop"),
    [
        ("i > 500 & s == 's3'", ["f2", "s"], None, None),
        ("c == 'a'", ["c", "c2", "td"], 1000, 15000),
        ("index > '2021-01-03' & b == True", None, -5000, None),
        ("f < 0.25", ["s2"], 3, 19999),
    ],
)
def test_where_with_columns_and_row_window(mixed_file, where, columns, start, stop):
    got, stats = computed(mixed_file, where=where, columns=columns, start=start, stop=stop)
    want = expected(mixed_file, where=where, columns=columns, start=start, stop=stop)
    pd.testing.assert_frame_equal(got, want, check_exact=True)
    assert stats["pipeline_reads"] == 0


@pytest.mark.parametrize(
    "where",
    [
        "columns=['i', 'f']",  # a filter on the columns axis
        "i > 990 & columns=['i', 'c2']",
        f"i in [{','.join(map(str, range(0, 1000, 20)))}]",  # too many values for numexpr: a filter
    ],
)
def test_where_pandas_evaluates_in_memory_is_read_by_pandas(mixed_file, where):
    with pd.HDFStore(mixed_file, "r") as store:
        assert PandasWhere.of(store.get_storer("df"), where).in_memory
    got, stats = computed(mixed_file, where=where)
    pd.testing.assert_frame_equal(got, expected(mixed_file, where=where), check_exact=True)
    assert stats["direct_chunks"] == 0  # pandas read every partition itself


@pytest.mark.parametrize(
    ("where", "error"),
    [
        ("f2 > 0.5", r"mixed\.h5: node /df: invalid pandas where 'f2 > 0.5'"),  # not a data column
        ("~(i > 5) | (f < 0.5)", r"invalid pandas where .*invert"),
        ("i >> 3", r"invalid pandas where"),
        ("nosuch == 1", r"invalid pandas where"),
    ],
)
def test_where_pandas_refuses_is_refused_naming_file_and_node(mixed_file, where, error):
    with pytest.raises(Exception):  # noqa: B017 - whatever pandas raises
        pd.read_hdf(mixed_file, "df", where=where)
    with pytest.raises(ValueError, match=error):
        read_table(mixed_file, "df", where=where)


@pytest.mark.filterwarnings("ignore:Querying with a nested:UserWarning")
def test_or_of_ands_on_indexed_columns_is_read_by_pandas(mixed_file):
    where = "(i > 500 & f < 0.1) | (u < 50 & b == True)"
    with pd.HDFStore(mixed_file, "r") as store:
        translated = PandasWhere.of(store.get_storer("df"), where)
        indexed = store.get_storer("df").table.colindexed["i"]
    assert (translated.in_memory is not None) == indexed
    got, stats = computed(mixed_file, where=where)
    pd.testing.assert_frame_equal(got, expected(mixed_file, where=where), check_exact=True)
    assert (stats["direct_chunks"] == 0) == indexed


def test_no_where_reads_every_dtype_directly(mixed_file):
    got, stats = computed(mixed_file)
    pd.testing.assert_frame_equal(got, expected(mixed_file), check_exact=True)
    assert stats["direct_chunks"] > 0 and stats["pipeline_reads"] == 0
    projected = read_table(mixed_file, "df", chunksize=2000)[["s2", "c"]].compute()
    pd.testing.assert_frame_equal(projected, expected(mixed_file, columns=["s2", "c"]), check_exact=True)


@pytest.mark.parametrize("scheduler", ["processes", "distributed"])
def test_where_under_other_schedulers(mixed_file, scheduler, request):
    where = "i > 500 & s == 's3' & index < '2021-01-10'"
    if scheduler == "distributed":
        client = request.getfixturevalue("cluster_client")
        got = read_table(mixed_file, "df", where=where, chunksize=2000).compute(scheduler=client)
    else:
        got = read_table(mixed_file, "df", where=where, chunksize=2000).compute(scheduler=scheduler)
    pd.testing.assert_frame_equal(got, expected(mixed_file, where=where), check_exact=True)


def test_series_and_multiindex_frames(tmp_path):
    path = tmp_path / "kinds.h5"
    n = 5000
    series = pd.Series(np.arange(n) * 1.5, index=pd.date_range("2022", periods=n, freq="s"), name="x")
    series.to_hdf(path, key="series", format="table")
    multi = pd.DataFrame(
        {"v": np.arange(n), "w": [f"w{k % 7}" for k in range(n)]},
        index=pd.MultiIndex.from_arrays([np.arange(n) % 10, np.arange(n)], names=["g", "k"]),
    )
    multi.to_hdf(path, key="multi", format="table", data_columns=["v"])
    for key, where in [
        ("series", "index > '2022-01-01 00:30' & x < 5000"),
        ("series", "x > 7000"),
        ("multi", "g == 3 & v > 100"),
        ("multi", "k < 50"),
    ]:
        got, stats = computed(path, key, where=where)
        want = expected(path, key, where=where)
        if isinstance(want, pd.Series):
            pd.testing.assert_series_equal(got, want, check_exact=True)
        else:
            pd.testing.assert_frame_equal(got, want, check_exact=True)
        assert stats["direct_chunks"] > 0, (key, where)


def test_conversion_pickles_and_equals_select(mixed_file):
    with pd.HDFStore(mixed_file, "r") as store:
        conversion = PandasConversion.of(store.get_storer("df"), origin=(str(mixed_file),))
    assert conversion is not None
    conversion = pickle.loads(pickle.dumps(conversion))
    with tables.open_file(mixed_file) as f:
        records = f.root.df.table.read(100, 400)
    want = pd.read_hdf(mixed_file, "df", start=100, stop=400)
    pd.testing.assert_frame_equal(conversion.to_frame(records), want, check_exact=True)
    pd.testing.assert_frame_equal(
        conversion.to_frame(records, ["c2", "i"]), want[["c2", "i"]], check_exact=True
    )


@pytest.mark.parametrize(
    ("where", "columns"),
    [
        (f"u in {list(range(0, 4000, 97))} & f > 0.5", None),  # a condition, then pandas' filter on u
        (f"s in {[f's{k}' for k in range(40)]}", ["s", "c"]),  # strings, some missing
        (f"c in {['a', *(f'x{k}' for k in range(40))]}", None),  # a categorical
        (f"i in {list(range(0, 400, 9))}", ["c2", "i"]),
        ("columns = ['c2', 'd'] & u < 300", None),
    ],
)
def test_conversion_applies_the_terms_pandas_applies_after_the_read(mixed_file, where, columns):
    """``to_frame(records, columns, where)`` of the rows matching the condition: ``select``'s frame."""
    with pd.HDFStore(mixed_file, "r") as store:
        storer = store.get_storer("df")
        translated = PandasWhere.of(storer, where)
        conversion = PandasConversion.of(storer, origin=(str(mixed_file),))
        want = store.select("df", where=where, columns=columns)
        table = storer.table
        records = table.read() if translated.condition is None else table.read_where(translated.condition)
    assert translated.filtered and conversion is not None and 0 < len(want) <= len(records)
    got = conversion.to_frame(records, columns, where)
    pd.testing.assert_frame_equal(got, want, check_exact=True)


def test_frame_read_benchmark_runs_small_and_reports_ratios(tmp_path):
    printed, figures = run_benchmark("bench_frame_read", "--rows", "20000", "--repeat", "1", folder=tmp_path)
    assert "targets:" in printed
    assert set(figures["tasks"]) == {"scattered 1%", "clustered 1%", "projection"}
    for task in figures["tasks"].values():
        assert set(task["read_table"]) == {"vs pd.read_hdf", "vs dd.read_hdf + filter"}
        assert all(seconds > 0 for seconds in task["seconds"].values())


def test_a_rewritten_file_gets_its_own_chunk_map(tmp_path):
    """The chunk map the partitions share is the file's as it is now, not as an earlier read found it."""
    path = tmp_path / "rewritten.h5"
    rows = 40_000

    def write(first: bool) -> pd.DataFrame:
        values = np.arange(rows) if first else np.arange(rows)[::-1]  # the matches at the start, then the end
        frame = pd.DataFrame({"a": values, "b": np.arange(rows) * 0.5})
        frame.to_hdf(path, key="df", format="table", data_columns=["a"], mode="w")
        with tables.open_file(path) as h5:
            assert h5.root.df.table.chunkshape[0] < rows // 2  # the two files' matches in other chunks
        return frame

    for first in (True, False):
        frame = write(first)
        got = read_table(path, "df", where="a < 10", chunksize=5000).compute(scheduler="threads")
        expected = frame[frame.a < 10]
        assert len(expected) == 10
        pd.testing.assert_frame_equal(got, expected)


@pytest.mark.parametrize(
    ("index", "column"),
    [
        (pd.date_range("2021-03-01", periods=30_000, freq="s", tz="Europe/Paris", name="t"), None),
        (pd.date_range("2021-03-01", periods=30_000, freq="ms", unit="ms"), None),
        (pd.Index(np.arange(30_000) * 3, name="n"), None),
        (pd.RangeIndex(30_000), "k"),
    ],
    ids=["tz-aware", "ms-unit", "integers", "index-column"],
)
def test_sampled_divisions_read_directly_are_the_partitions_first_labels(tmp_path, index, column):
    """The divisions, sampled on the direct path and converted by pandas' code, are each partition's first label."""
    path = tmp_path / "sorted.h5"
    frame = pd.DataFrame({"k": np.arange(30_000) * 2.5, "v": np.arange(30_000) % 7}, index=index)
    frame.to_hdf(path, key="df", format="table", data_columns=["k"], complib="zlib", complevel=1)
    df = read_table(path, "df", index=column, chunksize=4000)
    assert df.known_divisions and df.npartitions > 2
    labels = frame.index if column is None else pd.Index(frame[column])
    assert df.divisions[-1] == labels[-1]
    for number in range(df.npartitions):
        part = df.get_partition(number).compute()
        assert part.index[0] == df.divisions[number]
        assert isinstance(part.index[0], pd.Timestamp) == isinstance(df.divisions[number], pd.Timestamp)
        assert getattr(df.divisions[number], "tz", None) == getattr(labels[0], "tz", None)


# ---------------------------------------------------------------- where's names: the caller's scope, as pandas'

SCOPED = pd.DataFrame(
    {
        "users": ["a", "selector", "b", "index"] * 25,
        "n": np.arange(100),
        "when": pd.date_range("2024-01-01", periods=100, freq="D"),
        "model": pd.Categorical(["m1", "model", "m2", "m1"] * 25),
    },
    index=pd.RangeIndex(100),
)
threshold = 90  # a global of this module, read by the where below


@pytest.fixture(scope="module")
def scoped_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("scope") / "scoped.h5"
    SCOPED.to_hdf(path, key="df", format="table", data_columns=True)
    return path


def pandas_and_ours(path, where, **kwargs):
    """pandas' answer and read_table's, both called from this frame (its locals are the where's)."""
    return pd.read_hdf(path, "df", where=where, **kwargs), read_table(
        path, "df", where=where, chunksize=16, **kwargs
    )


def test_where_names_are_the_callers_locals_then_globals(scoped_file):
    selector, model, index, when = "b", "m2", 7, pd.Timestamp("2024-03-01")  # noqa: F841 - read by the wheres
    for where in [
        "users = selector",  # a local, not the string 'selector'
        "users != selector",
        "model == model",  # a categorical against a local
        "n > index",  # the caller's `index`, not read_table's index=None
        "when >= when & n < threshold",  # a global of the caller's module
        "users = nosuch",  # unresolved on the right: the string 'nosuch', as pandas takes it
        ["n > index", "users != selector"],  # a list of terms
    ]:
        want = pd.read_hdf(scoped_file, "df", where=where)  # both called from here: these locals
        with dask.config.set({"dataframe.convert-string": False}):
            got = read_table(scoped_file, "df", where=where, chunksize=16).compute(scheduler="threads")
        pd.testing.assert_frame_equal(got, want, check_exact=True)
        assert 0 < len(want) < 100 or where == "users = nosuch", where


def test_where_names_condvars_first_and_pandas_term_scope(scoped_file):
    selector = "a"  # noqa: F841 - shadowed by condvars
    with dask.config.set({"dataframe.convert-string": False}):
        got = read_table(scoped_file, "df", where="users = selector", condvars={"selector": "b"}).compute()
    pd.testing.assert_frame_equal(got, SCOPED[SCOPED.users == "b"])
    term = _term_made_elsewhere()  # a pandas Term keeps the scope it was made in
    want = pd.read_hdf(scoped_file, "df", where=term)
    assert len(want) == 25
    with dask.config.set({"dataframe.convert-string": False}):
        pd.testing.assert_frame_equal(read_table(scoped_file, "df", where=term).compute(), want)
        pd.testing.assert_frame_equal(read_table(scoped_file, "df", where=[term]).compute(), want)


def _term_made_elsewhere():
    selector = "index"  # noqa: F841 - read by the term
    return pd.io.pytables.Term("users == selector")


def test_a_pandas_where_a_str_column_cannot_compare_raises_as_pandas(scoped_file):
    for v in [2.1, True, pd.Timestamp("2024-01-01"), pd.Timedelta("1s")]:  # noqa: B007 - read by the where
        with pytest.raises(TypeError, match="Cannot compare"):
            pd.read_hdf(scoped_file, "df", where="users < v")
        with pytest.raises(TypeError, match=r"scoped\.h5: node /df: invalid pandas where .*Cannot compare"):
            read_table(scoped_file, "df", where="users < v")


def test_the_graph_holds_only_the_names_used_and_tokenizes_the_same(scoped_file):
    selector, unused = "b", object()  # noqa: F841 - an unpicklable local the where does not use
    first = read_table(scoped_file, "df", where="users = selector & n > threshold")
    again = read_table(scoped_file, "df", where="users = selector & n > threshold")
    assert first._name == again._name
    selector = "a"  # noqa: F841 - read by the where
    assert read_table(scoped_file, "df", where="users = selector & n > threshold")._name != first._name
    got = first.compute(scheduler="processes")  # the captured values pickle
    assert got.users.unique().tolist() == ["b"] and got.n.min() > threshold


@pytest.mark.parametrize(
    "where",
    [
        "",
        [],
        [None],
        (None,),
        [3, 17, 5],
        np.array([40, 2]),
        pd.Index(np.arange(10, 30)),
        np.arange(100) % 3 == 0,
        [pd.io.pytables.Term("n > 50"), "n < 60"],
    ],
    ids=lambda w: repr(w)[:20],
)
def test_every_form_of_where_pandas_takes(scoped_file, where):
    want = pd.read_hdf(scoped_file, "df", where=where)
    with dask.config.set({"dataframe.convert-string": False}):
        got = read_table(scoped_file, "df", where=where, chunksize=16).compute(scheduler="threads")
    pd.testing.assert_frame_equal(got, want, check_exact=True)


def test_row_numbers_with_start_and_stop_are_checked_as_pandas(scoped_file):
    for where, start, stop in [([3, 5], 3, 10), (np.arange(20) % 2 == 0, 10, 30)]:
        want = pd.read_hdf(scoped_file, "df", where=where, start=start, stop=stop)
        with dask.config.set({"dataframe.convert-string": False}):
            got = read_table(scoped_file, "df", where=where, start=start, stop=stop).compute()
        pd.testing.assert_frame_equal(got, want)
    with pytest.raises(ValueError, match="index locations"):
        pd.read_hdf(scoped_file, "df", where=[3, 50], start=0, stop=10)
    with pytest.raises(ValueError, match=r"scoped\.h5: node /df: where must have index locations"):
        read_table(scoped_file, "df", where=[3, 50], start=0, stop=10)


@pytest.mark.parametrize(
    ("start", "stop", "phrase"),
    [(120, None, "is above or equal to"), (-200, 10, "before the first row"), (None, 500, "number of rows")],
)
def test_start_and_stop_outside_the_table_raise_as_dask_does(scoped_file, start, stop, phrase):
    """pandas clamps them; read_table keeps dd.read_hdf's ValueError (a lazy frame with no rows to read)."""
    pd.read_hdf(scoped_file, "df", start=start, stop=stop)  # pandas answers
    with pytest.raises(ValueError, match=phrase):
        read_table(scoped_file, "df", start=start, stop=stop, chunksize=16)


def test_a_key_named_table_and_repeated_columns_as_pandas(tmp_path):
    path = tmp_path / "keys.h5"
    pd.DataFrame({"a": [1, 2, 3]}).to_hdf(path, key="table", format="table")
    with_dups = pd.DataFrame(np.arange(12.0).reshape(3, 4), columns=["A", "A", "B", "B"])
    with_dups.to_hdf(path, key="dups", format="table")
    pd.DataFrame(np.ones((3, 2)), columns=["A", "B"]).to_hdf(path, key="plain", format="table")
    cases = [(node, "table", None) for node in ["table", "/table", "/table/table"]]
    cases += [
        ("dups", "dups", with_dups.columns),
        ("plain", "plain", ["A", "A", "B"]),
        ("dups", "dups", ["B"]),
    ]
    for node, key, columns in cases:
        with dask.config.set({"dataframe.convert-string": False}):
            got = read_table(path, node, columns=columns).compute()
        pd.testing.assert_frame_equal(got, pd.read_hdf(path, key, columns=columns))


def test_repeated_labels_across_dtypes_keep_pandas_order(tmp_path):
    path = tmp_path / "dups.h5"
    frame = pd.concat(
        [
            pd.DataFrame(np.ones((4, 2)), columns=["A", "A"]),
            pd.DataFrame(np.arange(8).reshape(4, 2), columns=["B", "B"]),
            pd.DataFrame({"A": [1, 2, 3, 4], "C": list("wxyz")}).astype({"A": "i1"}),
        ],
        axis=1,
    )
    frame.to_hdf(path, key="df", format="table")
    for columns in [frame.columns, ["C", "A"], ["B", "B"]]:
        with dask.config.set({"dataframe.convert-string": False}):
            got = read_table(path, "df", columns=columns).compute()
        pd.testing.assert_frame_equal(got, pd.read_hdf(path, "df", columns=columns))


@pytest.mark.parametrize("dtype", ["c8", "c16"])
def test_complex_columns_as_pandas(tmp_path, dtype):
    path = tmp_path / "complex.h5"
    frame = pd.DataFrame({"z": (np.arange(40) * (1 + 2j)).astype(dtype), "b": np.arange(40.0)})
    frame.to_hdf(path, key="df", format="table", data_columns=["b"])
    frame.z.to_hdf(path, key="s", format="table", index=False)
    for key, where in [("df", None), ("df", "b > 30"), ("df", "b > 99"), ("s", None)]:
        got = read_table(path, key, where=where, chunksize=8).compute()
        want = pd.read_hdf(path, key, where=where)
        check = pd.testing.assert_series_equal if key == "s" else pd.testing.assert_frame_equal
        check(got, want)
