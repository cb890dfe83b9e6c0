"""Text columns encoded outside pandas (write.strings): the same records as pandas' own conversion."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import dask_tables
from dask_tables.write.records import _converted_by_pandas, matching_key, pandas_records, widen
from dask_tables.write.strings import fixed_utf8

N = 50


def _text(prefix: str, n: int = N) -> list[str]:
    return [f"{prefix}{'é' * (r % 4)}{'x' * (r % 7)}" for r in range(n)]


def frames() -> dict[str, pd.DataFrame]:
    rows = np.arange(N)
    base = {"i": rows, "f": rows / 3}
    unconsolidated = pd.DataFrame(base | {"o1": pd.Series(_text("a"), dtype=object)})
    unconsolidated["o2"] = pd.Series(_text("bb"), dtype=object)  # a second object block
    unconsolidated["j"] = rows * 2
    return {
        "str": pd.DataFrame(base | {"s": pd.array(_text("s"), dtype="str")}),
        "string[python]": pd.DataFrame(base | {"s": pd.array(_text("s"), dtype="string[python]")}),
        "two objects": pd.DataFrame(
            base | {"o1": pd.Series(_text("a"), dtype=object), "o2": pd.Series(_text("zz"), dtype=object)}
        ),
        "unconsolidated": unconsolidated,
        "empty strings": pd.DataFrame(base | {"e": pd.Series([""] * N, dtype=object)}),
        "the string nan": pd.DataFrame(base | {"s": pd.Series(["nan", *_text("s", N - 1)], dtype=object)}),
        "a missing value": pd.DataFrame(
            base
            | {
                "m": pd.Series([None, *_text("m", N - 1)], dtype=object),
                "s": pd.array(_text("s"), dtype="str"),
            }
        ),
        "object block with a missing value": pd.DataFrame(
            base
            | {
                "o1": pd.Series([None, *_text("a", N - 1)], dtype=object),
                "o2": pd.Series(_text("b"), dtype=object),
            }
        ),
        "a data column named like a text field": pd.DataFrame(
            base | {"text_0": rows * 2, "s": pd.Series(_text("s"), dtype=object)}
        ),
        "datetime index": pd.DataFrame(
            base | {"s": pd.array(_text("s"), dtype="str")},
            index=pd.date_range("2020-01-01", periods=N, freq="s", name="time"),
        ),
    }


CASES = [(name, dc) for name in frames() for dc in (None, ["s", "o2", "e", "m", "text_0"], True)]


def _data_columns(part: pd.DataFrame, dc: list[str] | bool | None) -> list[str] | bool | None:
    return dc if not isinstance(dc, list) else [c for c in dc if c in part.columns]


@pytest.mark.parametrize(("name", "dc"), CASES, ids=[f"{n}-{d}" for n, d in CASES])
def test_text_encoded_here_gives_pandas_own_records(name, dc):
    part = frames()[name]
    dc = _data_columns(part, dc)
    want = _converted_by_pandas(part, dc)
    got = pandas_records(part, dc)
    assert {matching_key(got.fields, k) for k in want.fields} == set(got.fields)
    assert np.array_equal(widen(got, want.records.dtype, want.fields), want.records)
    assert got.string_sizes().keys() == want.string_sizes().keys()
    for key, size in want.string_sizes().items():
        assert got.string_sizes()[key] == size
    assert got.nan_reps == want.nan_reps
    assert got.nan_literals == want.nan_literals


@pytest.mark.parametrize("name", ["str", "two objects", "unconsolidated", "empty strings", "datetime index"])
def test_text_without_missing_values_is_encoded_here(name):
    part = frames()[name]
    got = pandas_records(part, None)
    text = [k for k, n in got.fields.items() if n.startswith("text_")]
    assert text and all(part[c].dtype != "int64" for k in text for c in k)


def test_text_with_a_missing_value_is_left_to_pandas():
    part = frames()["object block with a missing value"]
    got = pandas_records(part, None)
    assert not any(n.startswith("text_") for n in got.fields.values())  # o1 and o2 share a block
    part = frames()["a missing value"]
    got = pandas_records(part, ["m"])
    assert got.fields["m"] == "m" and got.fields[("s",)].startswith("text_")


def test_fixed_utf8_refuses_what_pandas_must_judge():
    assert fixed_utf8(pd.Series([b"a", b"b"], dtype=object)) is None  # bytes: pandas refuses them
    assert fixed_utf8(pd.Series(["a", 1], dtype=object)) is None
    assert fixed_utf8(pd.Series(["a", "\ud800"], dtype=object)) is None  # UTF-8 cannot hold it
    assert fixed_utf8(pd.Series([1.5, 2.5])) is None
    assert fixed_utf8(pd.Series(["a", None], dtype="str")) is None
    out = fixed_utf8(pd.Series(["", "ab", "é€"], dtype=object))
    assert out.dtype == "S5" and out.tolist() == [b"", b"ab", "é€".encode()]
    sliced = pd.Series(pd.array(["zz", "a", "bcd"], dtype="str"))[1:]  # an arrow array with an offset
    assert fixed_utf8(sliced).tolist() == [b"a", b"bcd"]


def test_a_frame_with_encoded_text_reads_back_through_pandas(tmp_path):
    import dask.dataframe as dd

    whole = frames()["two objects"]
    whole["s"] = pd.array(_text("long-" * 3), dtype="str")
    df = dd.from_pandas(whole, npartitions=3)
    dask_tables.to_tables(df, tmp_path / "a.h5", "/df", data_columns=["o2"])
    back = pd.read_hdf(tmp_path / "a.h5", "df")
    for column in whole.columns:
        assert back[column].astype(object).tolist() == whole[column].astype(object).tolist()
    picked = pd.read_hdf(tmp_path / "a.h5", "df", where="o2 == 'zzééxx'")
    assert picked.index.tolist() == whole.index[whole["o2"] == "zzééxx"].tolist() == [2, 30]
