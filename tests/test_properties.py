"""Property tests: random shapes, chunk shapes, dask chunks and selections equal PyTables' reads."""

from __future__ import annotations

import tempfile
from pathlib import Path

import dask.array as da
import numpy as np
import tables
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dask_tables import from_tables
from dask_tables.array.selection import plan_read

FILTERS = [
    None,
    tables.Filters(complevel=1, complib="zlib", shuffle=True),
    tables.Filters(complevel=5, complib="blosc2:lz4", shuffle=True),
    tables.Filters(complevel=5, complib="blosc:zstd"),
]


@st.composite
def index_for(draw, length):
    kind = draw(st.sampled_from(["slice", "int", "array"]))
    if kind == "int":
        return draw(st.integers(-length, length - 1))
    if kind == "array":
        return draw(st.lists(st.integers(-length, length - 1), min_size=1, max_size=5))
    start = draw(st.none() | st.integers(-length - 2, length + 2))
    stop = draw(st.none() | st.integers(-length - 2, length + 2))
    step = draw(st.none() | st.integers(-4, 4).filter(bool))
    return slice(start, stop, step)


@st.composite
def cases(draw):
    ndim = draw(st.integers(1, 3))
    shape = tuple(draw(st.lists(st.integers(1, 23), min_size=ndim, max_size=ndim)))
    chunkshape = tuple(draw(st.integers(1, n + 3)) for n in shape)
    chunks = tuple(draw(st.integers(1, n)) for n in shape)
    key = tuple(draw(index_for(n)) for n in shape)
    arrays = sum(isinstance(k, list) for k in key)
    if arrays > 1:  # keep to one advanced index, as dask does
        key = tuple(k if not isinstance(k, list) else slice(None) for k in key)
    return shape, chunkshape, chunks, key, draw(st.integers(0, len(FILTERS) - 1)), draw(st.booleans())


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_from_tables_selection_equals_pytables(case):
    shape, chunkshape, chunks, key, filters, direct = case
    data = np.arange(int(np.prod(shape)), dtype="i4").reshape(shape) * 7 - 1000
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "p.h5"
        with tables.open_file(path, "w") as f:
            f.create_carray("/", "x", obj=data, chunkshape=chunkshape, filters=FILTERS[filters])
        x = from_tables(path, "/x", chunks=chunks, direct=direct)
        with tables.open_file(path) as f:
            whole = f.root.x.read()
        # dask's indexing semantics (they differ from numpy's for an integer and
        # an array separated by a slice) over what PyTables reads
        expected = da.from_array(whole, chunks=chunks)[key].compute()
        np.testing.assert_array_equal(x[key].compute(scheduler="threads"), expected)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.integers(1, 9), min_size=1, max_size=4).flatmap(
        lambda s: st.tuples(st.just(tuple(s)), st.data())
    )
)
def test_plan_read_equals_numpy(shape_and_data):
    shape, data = shape_and_data
    key = tuple(data.draw(index_for(n)) for n in shape)
    if sum(isinstance(k, list) for k in key) > 1:
        key = tuple(k if not isinstance(k, list) else slice(None) for k in key)
    array = np.arange(int(np.prod(shape))).reshape(shape)
    slab, remainder = plan_read(key, shape)
    assert all(s.step > 0 for s in slab)
    np.testing.assert_array_equal(array[slab][remainder], array[key])


_TABLE_FILES = Path(tempfile.mkdtemp(prefix="dask-tables-props-"))


@given(
    nrows=st.integers(0, 700),
    chunk_rows=st.integers(1, 90),
    chunksize=st.none() | st.integers(1, 400),
    window=st.tuples(st.none() | st.integers(-800, 800), st.none() | st.integers(-800, 800)),
    threshold=st.none() | st.integers(-5, 105),
    indexed=st.booleans(),
    filters=st.sampled_from(FILTERS),
)
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_read_table_equals_pytables(nrows, chunk_rows, chunksize, window, threshold, indexed, filters):
    from dask_tables import read_table

    path = _TABLE_FILES / "table.h5"
    rows = np.zeros(nrows, dtype=[("k", "i8"), ("v", "f4"), ("pos", [("x", "f8")])])
    rows["k"] = (np.arange(nrows) * 37) % 101
    rows["v"] = np.arange(nrows) / 3
    rows["pos"]["x"] = -np.arange(nrows)
    with tables.open_file(path, "w") as f:
        table = f.create_table("/", "t", obj=rows, chunkshape=(chunk_rows,), filters=filters)
        if indexed and nrows:
            table.cols.k.create_csindex()
    start, stop = window
    in_range = all(v is None or -nrows <= v <= nrows for v in window)
    low, high, _ = slice(start, stop).indices(nrows)
    if not in_range or low > high:
        return  # refusals are tested in test_read_table.py
    where = None if threshold is None else f"k < {threshold}"
    df = read_table(path, "/t", chunksize=chunksize, start=start, stop=stop, where=where)
    with tables.open_file(path) as f:
        table = f.root.t
        if where is None:
            expected_rows = np.arange(low, high)
        else:
            expected_rows = table.get_where_list(where, start=low, stop=high)
        expected = table.read_coordinates(expected_rows)
    result = df.compute(scheduler="threads")
    np.testing.assert_array_equal(result.index.to_numpy(), expected_rows)
    np.testing.assert_array_equal(result["k"].to_numpy(), expected["k"])
    np.testing.assert_array_equal(result["pos/x"].to_numpy(), expected["pos"]["x"])
    if where is None and df.known_divisions and (chunksize is None or chunksize >= chunk_rows):
        assert all(d % chunk_rows == 0 for d in df.divisions[1:-1])  # partitions of whole HDF5 chunks
    if where is None and df.known_divisions and chunksize is not None:  # chunksize is a maximum
        assert all(b - a <= chunksize for a, b in zip(df.divisions[:-2], df.divisions[1:-1], strict=True))
