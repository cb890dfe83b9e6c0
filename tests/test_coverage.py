"""Files PyTables opens but cannot decode read in parallel, or are refused with the real reason.

Files written by h5py with hdf5plugin's filters (bitshuffle alone, with LZ4
or Zstd; LZ4; Zstd; Blosc and Blosc2 under hdf5plugin's ids) and with szip
read through ``from_tables`` on threads equal to h5py's own reads (with
hdf5plugin's compiled filters); a filter nobody decodes raises
:class:`~dask_tables.MissingFilterError` naming it by id and name.  Each
file is read in a child process with a timeout: a crash must not kill pytest.
Each filter's chunks, whole and damaged, are checked in ``test_filters.py``.

Records laid out otherwise in the file (gaps, padding, both byte orders),
whose PyTables reads may corrupt memory, read through ``from_tables`` and
``read_table`` (``where``, ``columns``, ``index``, never-written chunks) as
h5py reads them.  Fixed-size strings as h5py writes them (null-padded) read
directly under any filter; space-padded ones are refused with the reason.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from helpers import child_json, pytables_read, run_python
from numpy.testing import assert_array_equal

h5py = pytest.importorskip("h5py")
hdf5plugin = pytest.importorskip("hdf5plugin")

# name -> h5py dataset keywords (hdf5plugin's filters, szip from h5py's HDF5)
FILTERS = {
    "bitshuffle": lambda: hdf5plugin.Bitshuffle(nelems=0, cname="none"),
    "bitshuffle+lz4": lambda: hdf5plugin.Bitshuffle(nelems=0, cname="lz4"),
    "bitshuffle+lz4/blocks": lambda: hdf5plugin.Bitshuffle(nelems=256, cname="lz4"),
    "bitshuffle+zstd": lambda: hdf5plugin.Bitshuffle(nelems=0, cname="zstd"),
    "lz4": lambda: hdf5plugin.LZ4(),
    "lz4/blocks": lambda: hdf5plugin.LZ4(nbytes=1000),
    "zstd": lambda: hdf5plugin.Zstd(),
    "blosc": lambda: hdf5plugin.Blosc(cname="lz4", clevel=5, shuffle=hdf5plugin.Blosc.SHUFFLE),
    "blosc:zstd+bitshuffle": lambda: hdf5plugin.Blosc(
        cname="zstd", clevel=5, shuffle=hdf5plugin.Blosc.BITSHUFFLE
    ),
    "blosc2": lambda: hdf5plugin.Blosc2(cname="lz4", clevel=5, filters=hdf5plugin.Blosc2.SHUFFLE),
    "blosc2:zstd": lambda: hdf5plugin.Blosc2(cname="zstd", clevel=5, filters=hdf5plugin.Blosc2.BITSHUFFLE),
    "szip:nn": lambda: {"compression": "szip", "compression_opts": ("nn", 8)},
    "szip:ec": lambda: {"compression": "szip", "compression_opts": ("ec", 16)},
}

# shape, chunks, dtype: partial edge chunks, 1-D chunks whose length is not a multiple of
# 8 (bitshuffle's leftover elements), big-endian items, 8-byte items, random bytes (LZ4
# stores such blocks as they are)
ARRAYS = {
    "f4_2d": ((203, 75), (64, 32), "<f4"),
    "i2_1d_odd": ((10_001,), (1001,), "<i2"),
    "be_i4": ((3000,), (512,), ">i4"),
    "u8_3d": ((9, 40, 33), (4, 16, 33), "<u8"),
    "noise": ((4000,), (1000,), "<u4"),
    "tiny": ((21,), (21,), "<f8"),
}


def values(shape, dtype, name):
    """Compressible values (small integers plus a slope), or random bits for ``noise``."""
    rng = np.random.default_rng(7)
    n = int(np.prod(shape))
    if name == "noise":
        return rng.integers(0, 2**32, n, dtype=np.uint64).astype(dtype).reshape(shape)
    base = (np.arange(n) % 977) + rng.integers(0, 8, n)
    return base.astype(dtype).reshape(shape)


def szip_available() -> bool:
    return bool(h5py.h5z.filter_avail(h5py.h5z.FILTER_SZIP))


def write_filter_file(path, filter_name):
    """One dataset per ARRAYS entry, all with ``filter_name``; returns {node: expected values}."""
    if filter_name.startswith("szip") and not szip_available():
        pytest.skip("h5py's HDF5 has no szip encoder")
    expected = {}
    with h5py.File(path, "w") as f:
        for name, (shape, chunks, dtype) in ARRAYS.items():
            f.create_dataset(name, data=values(shape, dtype, name), chunks=chunks, **FILTERS[filter_name]())
    with h5py.File(path, "r") as f:  # h5py + hdf5plugin's compiled filters: the reference
        for name in ARRAYS:
            expected["/" + name] = f[name][...]
    return expected


READ_CHILD = """
import json, sys
import numpy as np
import dask_tables
from dask_tables import diagnostics

path, out = sys.argv[1], sys.argv[2]
read, direct = {}, {}
for node in sys.argv[3].split(","):
    chunkshape = dask_tables.TablesSource.open(path, node).chunkshape
    x = dask_tables.from_tables(path, node, chunks=tuple(2 * c for c in chunkshape))
    with diagnostics.collect() as stats:
        read[node.strip("/")] = x.compute(scheduler="threads", num_workers=2)
    direct[node] = stats["direct_chunks"] > 0 and stats["pipeline_reads"] == 0
np.savez(out, **read)
print(json.dumps(direct))
"""


def read_in_child(tmp_path, path, nodes):
    """``from_tables(...).compute(scheduler="threads")`` of each node in a child process."""
    out = tmp_path / "read_child.npz"
    direct = child_json(run_python(READ_CHILD, path, out, ",".join(nodes), timeout=300))
    with np.load(out) as data:
        return {"/" + k: data[k] for k in data.files}, direct


@pytest.mark.parametrize("filter_name", list(FILTERS))
def test_hdf5plugin_filters_read_in_parallel_as_h5py_reads_them(tmp_path, filter_name):
    path = tmp_path / "plugin.h5"
    expected = write_filter_file(path, filter_name)
    got, direct = read_in_child(tmp_path, path, list(expected))
    for node, want in expected.items():
        assert got[node].dtype == want.dtype.newbyteorder("=") or got[node].dtype == want.dtype, node
        assert_array_equal(got[node], want, err_msg=f"{filter_name} {node}")
        assert direct[node], f"{filter_name} {node}: not read on the direct path"


def test_the_filters_are_ones_pytables_cannot_read(tmp_path):
    """The premise: PyTables' own read of these files fails (else the test proves nothing new)."""
    path = tmp_path / "plugin.h5"
    with h5py.File(path, "w") as f:
        for name in ("bitshuffle+lz4", "lz4", "zstd") + (("szip:nn",) if szip_available() else ()):
            f.create_dataset(name, data=np.arange(100, dtype="f4"), chunks=(50,), **FILTERS[name]())
    done = run_python(
        f"""
        import tables
        failed = []
        with tables.open_file({str(path)!r}) as f:
            for leaf in f.root:
                try:
                    leaf[:]
                except tables.HDF5ExtError:
                    failed.append(leaf._v_name)
        print(len(failed))
        """,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    with h5py.File(path) as f:
        assert int(done.stdout.split()[0]) == len(f)


def write_unknown_filter(path, filter_id=40123):
    """A dataset whose chunks went through a filter (an unregistered id) that nobody has."""
    data = np.arange(200, dtype="<f8")
    with h5py.File(path, "w") as f:
        space = h5py.h5s.create_simple((200,))
        dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
        dcpl.set_chunk((100,))
        dcpl.set_filter(filter_id, h5py.h5z.FLAG_OPTIONAL, (1, 2))
        dset = h5py.h5d.create(f.id, b"unknown", h5py.h5t.IEEE_F64LE, space, dcpl=dcpl)
        for i in (0, 1):
            dset.write_direct_chunk((100 * i,), data[100 * i : 100 * (i + 1)].tobytes(), filter_mask=0)


def test_a_filter_nobody_decodes_is_named_by_id_and_name_never_damaged(tmp_path):
    path = tmp_path / "unknown.h5"
    write_unknown_filter(path)
    done = run_python(
        f"""
        import dask_tables
        x = dask_tables.from_tables({str(path)!r}, "/unknown")
        try:
            x.compute(scheduler="threads")
        except dask_tables.MissingFilterError as err:
            print(type(err).__name__, err.filter_id, "|", err)
        """,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    name, filter_id, message = done.stdout.strip().splitlines()[-1].split(" ", 2)
    assert (name, filter_id) == ("MissingFilterError", "40123")
    assert "unknown.h5" in message and "/unknown" in message and "filter 40123" in message
    assert "damaged" not in message.replace("not damaged", "")


def test_info_names_the_missing_filter(tmp_path):
    import tables

    from dask_tables.info import direct_read_reason

    path = tmp_path / "unknown.h5"
    write_unknown_filter(path)
    with tables.open_file(path) as f:
        reason = direct_read_reason(f.root.unknown)
    assert "40123" in reason and "cannot be read" in reason


def test_a_decodable_filter_with_the_direct_path_off_says_so(tmp_path):
    path = tmp_path / "zstd.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("z", data=np.arange(100.0), chunks=(10,), **hdf5plugin.Zstd())
    done = run_python(
        f"""
        import dask_tables
        try:
            dask_tables.from_tables({str(path)!r}, "/z", direct=False).compute()
        except dask_tables.MissingFilterError as err:
            print(err)
        """,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "filter 32015" in done.stdout and "direct=False" in done.stdout


# Records whose stored layout is not PyTables' packed one: members at offsets with gaps,
# padding at the end, members of both byte orders, a nested record with its own gaps (as
# PyTables' nested-type-with-gaps.h5, whose PyTables read aborts the process).
NESTED = np.dtype({"names": ["x", "y"], "formats": [">i4", "<f4"], "offsets": [0, 8], "itemsize": 12})
GAPPED = np.dtype(
    {
        "names": ["a", "b", "c", "n"],
        "formats": ["<i2", ">f8", "u1", NESTED],
        "offsets": [1, 4, 13, 16],
        "itemsize": 40,
    }
)


def gapped_records(n):
    rng = np.random.default_rng(3)
    data = np.zeros(n, GAPPED)
    data["a"], data["b"], data["c"] = np.arange(n), rng.normal(size=n), np.arange(n) % 251
    data["n"]["x"], data["n"]["y"] = -np.arange(n), np.arange(n) / 3
    return data


def same_records(got, want):
    """Member by member (layouts differ: PyTables' packed record vs the file's)."""
    if want.dtype.names is None:
        assert_array_equal(got, want)
        return
    assert got.dtype.names == want.dtype.names
    for name in want.dtype.names:
        same_records(got[name], want[name])


def test_records_with_gaps_read_as_h5py_reads_them(tmp_path):
    path = tmp_path / "gaps.h5"
    data = gapped_records(1001)
    layouts = {
        "chunked": {"chunks": (100,)},
        "zlib": {"chunks": (100,), "compression": "gzip", "shuffle": True},
        "zstd": {"chunks": (64,), **hdf5plugin.Zstd()},
        "contiguous": {},
    }
    with h5py.File(path, "w") as f:
        for name, kwargs in layouts.items():
            f.create_dataset(name, data=data, **kwargs)
    with h5py.File(path) as f:
        assert f["chunked"].dtype == GAPPED  # h5py keeps the offsets: the premise
        expected = {name: f[name][...] for name in layouts}
    done = run_python(
        f"""
        import numpy as np
        import dask_tables
        read = {{}}
        for node in {list(layouts)!r}:
            x = dask_tables.from_tables({str(path)!r}, node, chunks=300)
            read[node] = x.compute(scheduler="threads", num_workers=2)
            read[node + "-b"] = dask_tables.from_tables({str(path)!r}, node, field="b").compute()
            read[node + "-nx"] = dask_tables.from_tables({str(path)!r}, node, field="n/x").compute()
        np.savez({str(tmp_path / "out.npz")!r}, **read)
        """,
        timeout=120,
    )
    assert done.returncode == 0, f"child failed ({done.returncode}): {done.stderr[-3000:]}"
    with np.load(tmp_path / "out.npz") as got:
        for name, want in expected.items():
            same_records(got[name], want)
            assert_array_equal(got[name + "-b"], want["b"])
            assert_array_equal(got[name + "-nx"], want["n"]["x"])


def test_the_direct_layout_of_gapped_records_is_the_files(tmp_path):
    import tables

    from dask_tables.array.verdict import direct_storage
    from dask_tables.hdf5.storedtypes import file_dtype

    path = tmp_path / "gaps.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("t", data=gapped_records(50), chunks=(16,))
    with tables.open_file(path) as f:
        assert f.root.t.dtype.itemsize < GAPPED.itemsize  # PyTables packs the record
        assert file_dtype(f.root.t) == GAPPED
        layout = direct_storage(f.root.t)
    assert layout is not None and layout.dtype_on_disk == GAPPED and layout.memory is not None


def test_an_empty_read_of_gapped_records_has_pytables_layout_locally_and_by_ranges(tmp_path):
    """``read_chunks`` (the read of an object's ranges) answers an empty slab as ``read_direct`` does."""
    import os

    import tables

    from dask_tables.array.direct import read_chunks, read_direct
    from dask_tables.array.verdict import direct_storage
    from dask_tables.hdf5.chunkindex import chunk_index
    from dask_tables.hdf5.fingerprint import Fingerprint

    path = str(tmp_path / "gaps.h5")
    with h5py.File(path, "w") as f:
        f.create_dataset("t", data=gapped_records(50), chunks=(16,))
    with tables.open_file(path) as f:
        layout = direct_storage(f.root.t)
    fingerprint, size = Fingerprint.of(path), os.path.getsize(path)
    index = chunk_index(path, "/t", fingerprint)
    fd = os.open(path, os.O_RDONLY)
    try:
        for slab in [slice(0, 0, 1), slice(3, 20, 2)]:
            by_ranges = read_chunks(
                path, "/t", layout, index, [slab], None, lambda b, o: os.preadv(fd, [b], o), size
            )
            local = read_direct(path, "/t", fingerprint, layout, [slab])
            assert by_ranges.dtype == local.dtype == layout.memory, slab
            same_records(by_ranges, local)
    finally:
        os.close(fd)


def test_a_packed_table_with_a_plugin_filter_reads_directly(tmp_path):
    """PyTables cannot read it to compare: the file's own record type vouches for the layout."""
    path = tmp_path / "table.h5"
    data = np.zeros(1000, [("a", "<i4"), ("b", "<f8")])
    data["a"], data["b"] = np.arange(1000), np.arange(1000) / 7
    with h5py.File(path, "w") as f:
        f.create_dataset("t", data=data, chunks=(100,), **hdf5plugin.Bitshuffle(nelems=0, cname="lz4"))
    done = run_python(
        f"""
        import numpy as np
        import dask_tables
        from dask_tables import diagnostics
        with diagnostics.collect() as stats:
            got = dask_tables.from_tables({str(path)!r}, "/t", chunks=300).compute(scheduler="threads")
        np.save({str(tmp_path / "t.npy")!r}, got)
        print(stats["pipeline_reads"], stats["direct_chunks"])
        """,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split()[-2:] == ["0", "10"]
    same_records(np.load(tmp_path / "t.npy"), data)


# read_table of gapped records: every read in a child process (PyTables' own reads of such
# records corrupt the heap: glibc aborts).  Each case is read with the frame's column names as
# keys ("case|column"), its index as "case|index", and compared with h5py's read filtered by numpy.
FRAME_CHILD = """
import json, sys
import numpy as np
import dask_tables

path, out, cases = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
read, divisions = {}, {}
for name, (node, kwargs, project) in cases.items():
    df = dask_tables.read_table(path, node, **kwargs)
    if project:
        df = df[project]
    divisions[name] = df.known_divisions
    frame = df.compute(scheduler="threads", num_workers=2)
    read[name + "|index"] = frame.index.to_numpy()
    for column in frame.columns:
        read[name + "|" + column] = frame[column].to_numpy()
np.savez(out, **read)
print(json.dumps(divisions))
"""


def read_frames_in_child(tmp_path, path, cases):
    """``read_table(path, node, **kwargs)[project].compute()`` of each case, in a child process."""
    out = tmp_path / "frame_child.npz"
    divisions = child_json(run_python(FRAME_CHILD, path, out, json.dumps(cases), timeout=300))
    frames = {}
    with np.load(out, allow_pickle=True) as data:
        for key in data.files:
            case, column = key.split("|", 1)
            frames.setdefault(case, {})[column] = data[key]
    return frames, divisions


def frame_columns(records, prefix=""):
    """h5py's records as read_table names their columns: ``{"n/x": values, ...}``."""
    columns = {}
    for name in records.dtype.names:
        if records.dtype[name].names:
            columns.update(frame_columns(records[name], f"{prefix}{name}/"))
        else:
            columns[prefix + name] = records[name]
    return columns


def same_frame(got, records, rows, index=None, columns=None):
    """``got`` (a frame's columns) equals ``records[rows]``, with row numbers (or ``index``) as index.

    ``records`` is h5py's records, or a dict of columns named as the frame's.
    """
    if isinstance(records, dict):
        want = {name: values[rows] for name, values in records.items()}
    else:
        want = frame_columns(records[rows])
    assert_array_equal(got["index"], np.flatnonzero(rows) if index is None else want[index])
    names = [c for c in want if c != index] if columns is None else columns
    assert sorted(got) == sorted(["index", *names])
    for name in names:
        assert_array_equal(got[name], want[name], err_msg=name)


def write_gapped_tables(path, data):
    """``data`` (GAPPED records) as h5py writes them: chunked, zlib, Zstd, contiguous, sparse."""
    with h5py.File(path, "w") as f:
        f.create_dataset("chunked", data=data, chunks=(100,))
        f.create_dataset("zlib", data=data, chunks=(100,), compression="gzip", shuffle=True)
        f.create_dataset("zstd", data=data, chunks=(64,), **hdf5plugin.Zstd())
        f.create_dataset("contiguous", data=data)
        # chunks 2..6 never written: HDF5 reads them as the fill value
        sparse = f.create_dataset("sparse", shape=data.shape, dtype=GAPPED, chunks=(100,))
        sparse[:150], sparse[700:] = data[:150], data[700:]
    with h5py.File(path) as f:
        return {name: f[name][...] for name in f}


def test_read_table_where_on_gapped_records_never_reads_through_pytables(tmp_path):
    path = tmp_path / "gaps.h5"
    expected = write_gapped_tables(path, gapped_records(1001))
    cases = {}
    for node in expected:
        cases[f"{node}-where"] = (node, {"where": "(b > 0) & (c < 100)", "chunksize": 300}, None)
        cases[f"{node}-condvars"] = (
            node,
            {"where": "(a > lim) | (b < -lim / 400)", "condvars": {"lim": 900}},
            None,
        )
        cases[f"{node}-columns"] = (
            node,
            {"where": "a > 500", "columns": ["n/y", "c"], "chunksize": 200},
            None,
        )
        cases[f"{node}-project"] = (node, {"where": "b < 0", "chunksize": 300}, ["b", "n/x"])
        cases[f"{node}-index"] = (node, {"index": "a", "where": "c > 20", "chunksize": 300}, None)
        if node != "zstd":  # PyTables' HDF5 lacks Zstd: direct=False cannot read it
            cases[f"{node}-pipeline"] = (node, {"where": "(b > 0) & (c < 100)", "direct": False}, None)
    cases["contiguous-sorted"] = ("contiguous", {"index": "a", "chunksize": 300, "sorted_index": True}, None)
    got, divisions = read_frames_in_child(tmp_path, path, cases)
    for node, data in expected.items():
        b, c = data["b"], data["c"]
        same_frame(got[f"{node}-where"], data, (b > 0) & (c < 100))
        same_frame(got[f"{node}-condvars"], data, (data["a"] > 900) | (b < -900 / 400))
        same_frame(got[f"{node}-columns"], data, data["a"] > 500, columns=["n/y", "c"])
        same_frame(got[f"{node}-project"], data, b < 0, columns=["b", "n/x"])
        same_frame(got[f"{node}-index"], data, c > 20, index="a")
        if node != "zstd":
            same_frame(got[f"{node}-pipeline"], data, (b > 0) & (c < 100))
        # the index column "a" rises over rows, except in the never-written chunks (zeros)
        assert divisions[f"{node}-index"] == (node != "sparse"), node
    same_frame(got["contiguous-sorted"], expected["contiguous"], np.ones(1001, bool), index="a")


def test_an_indexed_column_of_gapped_records_answers_where(tmp_path):
    """PyTables indexes a column of such a table; its chunk map is used, its row reads never."""
    import tables

    path = tmp_path / "gaps.h5"
    data = gapped_records(1001)
    with h5py.File(path, "w") as f:
        f.create_dataset("t", data=data, chunks=(100,))
    with tables.open_file(path, "a") as f:
        f.root.t.cols.a.create_csindex()
    cases = {"indexed": ("t", {"where": "(a > 500) & (a < 560)", "chunksize": 300}, None)}
    got, _ = read_frames_in_child(tmp_path, path, cases)
    same_frame(got["indexed"], data, (data["a"] > 500) & (data["a"] < 560))


def test_read_table_of_pytables_nested_type_with_gaps(tmp_path):
    """PyTables' own test file, whose PyTables read aborts the process: read_table reads it as h5py does."""
    import tables

    path = os.path.join(os.path.dirname(tables.__file__), "tests", "nested-type-with-gaps.h5")
    if not os.path.exists(path):
        pytest.skip("PyTables' test files are not installed")
    with h5py.File(path) as f:
        data = f["nestedtype"][...]
    cases = {
        "all": ("/nestedtype", {}, None),
        "where": ("/nestedtype", {"where": "(float >= 0) & (float < 1)", "chunksize": 10}, None),
        "columns": ("/nestedtype", {"where": "float == 0", "columns": ["compound/double"]}, None),
        "index": ("/nestedtype", {"index": "float", "chunksize": 10}, None),
    }
    got, _ = read_frames_in_child(tmp_path, path, cases)
    same_frame(got["all"], data, np.ones(len(data), bool))
    same_frame(got["where"], data, (data["float"] >= 0) & (data["float"] < 1))
    same_frame(got["columns"], data, data["float"] == 0, columns=["compound/double"])
    same_frame(got["index"], data, np.ones(len(data), bool), index="float")


# Fixed-size strings as h5py writes numpy's S: null-padded (PyTables writes them null-terminated).
# Full-width strings (no null at all), empty ones, an embedded null, trailing spaces.
STRINGS = np.array([b"abcd", b"ab", b"", b"a\x00c", b"wxyz", b"ab  ", b"\xc3\xa9t\xc3"[:3]] * 43, dtype="S4")
STRING_FILTERS = {
    "zstd": lambda: hdf5plugin.Zstd(),
    "lz4": lambda: hdf5plugin.LZ4(),
    "blosc": lambda: hdf5plugin.Blosc(cname="lz4", clevel=5, shuffle=hdf5plugin.Blosc.SHUFFLE),
    "gzip": lambda: {"compression": "gzip", "shuffle": True},  # PyTables reads it too
}


def string_records(n):
    rows = np.zeros(n, [("i", "<i4"), ("s", "S4"), ("x", "<f8")])
    rows["i"], rows["s"], rows["x"] = np.arange(n), STRINGS[:n], np.arange(n) / 4
    return rows


def write_padded_strings(path, pad=None):
    """``STRINGS`` and ``string_records`` under each of ``STRING_FILTERS``, as h5py writes them.

    ``pad`` (an ``h5py.h5t.STR_*``) writes the arrays with that padding
    instead of h5py's own, through h5py's low-level API.
    """
    with h5py.File(path, "w") as f:
        for name, kwargs in STRING_FILTERS.items():
            if pad is None:
                f.create_dataset(f"a_{name}", data=STRINGS, chunks=(50,), **kwargs())
                f.create_dataset(f"m_{name}", data=STRINGS[:300].reshape(30, 10), chunks=(7, 4), **kwargs())
                f.create_dataset(f"t_{name}", data=string_records(len(STRINGS)), chunks=(64,), **kwargs())
                continue
            string = h5py.h5t.C_S1.copy()
            string.set_size(4)
            string.set_strpad(pad)
            dcpl = f.create_dataset(
                "probe", shape=(1,), dtype="S4", chunks=(1,), **kwargs()
            ).id.get_create_plist()
            del f["probe"]
            dcpl.set_chunk((50,))
            space = h5py.h5s.create_simple(STRINGS.shape)
            dataset = h5py.h5d.create(f.id, f"a_{name}".encode(), string, space, dcpl=dcpl)
            dataset.write(h5py.h5s.ALL, h5py.h5s.ALL, STRINGS, mtype=string)
    with h5py.File(path) as f:
        return {"/" + name: f[name][...] for name in f}


def test_null_padded_strings_are_what_h5py_writes_and_pytables_reads_as_stored(tmp_path):
    """The premise: h5py writes S as NULLPAD, and PyTables reads them byte for byte (full width too)."""
    path = tmp_path / "strings.h5"
    expected = write_padded_strings(path)
    with h5py.File(path) as f:
        assert f["a_gzip"].id.get_type().get_strpad() == h5py.h5t.STR_NULLPAD
        assert f["t_gzip"].id.get_type().get_member_type(1).get_strpad() == h5py.h5t.STR_NULLPAD
    assert_array_equal(pytables_read(path, "/a_gzip"), expected["/a_gzip"])
    assert_array_equal(pytables_read(path, "/t_gzip", field="s"), expected["/t_gzip"]["s"])
    assert pytables_read(path, "/a_gzip")[0] == b"abcd"


def test_null_padded_strings_with_plugin_filters_read_directly_as_h5py_reads_them(tmp_path):
    path = tmp_path / "strings.h5"
    expected = write_padded_strings(path)
    got, direct = read_in_child(tmp_path, path, list(expected))
    for node, want in expected.items():
        same_records(got[node], want)
        assert direct[node], f"{node}: not read on the direct path"


def test_read_table_of_null_padded_strings_with_plugin_filters(tmp_path):
    path = tmp_path / "strings.h5"
    expected = write_padded_strings(path)
    cases = {}
    for name in STRING_FILTERS:
        cases[name] = (f"t_{name}", {"chunksize": 128}, None)
        cases[f"{name}-bytes"] = (f"t_{name}", {"where": "i % 7 != 2", "encoding": None}, ["s", "x"])
        cases[f"{name}-where"] = (f"t_{name}", {"where": "(x > 3) & (i < 250)", "columns": ["s"]}, None)
    got, _ = read_frames_in_child(tmp_path, path, cases)
    for name in STRING_FILTERS:
        data = expected[f"/t_{name}"]
        text = np.array([s.decode("utf-8") for s in data["s"]], dtype=object)
        every = np.ones(len(data), bool)
        same_frame(got[name], {**frame_columns(data), "s": text}, every)
        same_frame(got[f"{name}-bytes"], data, data["i"] % 7 != 2, columns=["s", "x"])
        matches = (data["x"] > 3) & (data["i"] < 250)
        same_frame(got[f"{name}-where"], {"s": text}, matches, columns=["s"])
        assert got[name]["s"][0] == "abcd" and got[f"{name}-bytes"]["s"][0] == b"abcd"


def test_space_padded_strings_stay_off_the_direct_path_with_the_reason(tmp_path):
    """PyTables reads their spaces, h5py strips them: never read directly; where PyTables can, it reads them."""
    import tables

    from dask_tables.array.verdict import direct_read_reason

    path = tmp_path / "spaces.h5"
    expected = write_padded_strings(path, pad=h5py.h5t.STR_SPACEPAD)
    assert expected["/a_gzip"][5] == b"ab"  # h5py strips the spaces
    with tables.open_file(path) as f:
        for node in expected:
            assert "space-padded strings" in direct_read_reason(f.get_node(node)), node
    done = run_python(
        f"""
        import numpy as np
        import dask_tables
        for node in {list(expected)!r}:
            try:
                got = dask_tables.from_tables({str(path)!r}, node).compute(scheduler="threads")
                np.save({str(tmp_path)!r} + node + ".npy", got)
                print(node, "read")
            except dask_tables.MissingFilterError as err:
                print(node, "refused", "space-padded" in str(err) and node in str(err))
        """,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    outcome = dict(line.split(" ", 1) for line in done.stdout.strip().splitlines())
    assert outcome == {
        "/a_zstd": "refused True",
        "/a_lz4": "refused True",
        "/a_blosc": "read",  # PyTables' own Blosc (id 32001)
        "/a_gzip": "read",
    }
    for node in ("/a_blosc", "/a_gzip"):
        assert_array_equal(np.load(str(tmp_path) + node + ".npy"), pytables_read(path, node))


def test_pytables_never_answers_which_gapped_rows_match(tmp_path):
    """Where an indexed query has no chunk map, PyTables' row numbers are asked only of packed tables."""
    import tables

    path = tmp_path / "gaps.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("gapped", data=gapped_records(300), chunks=(100,))
    with tables.open_file(path, "a") as f:
        f.create_table("/", "packed", obj=np.arange(300, dtype="<i2").view([("a", "<i2")]), chunkshape=(100,))
    done = run_python(
        f"""
        import tables
        from dask_tables.frame.conditions import Condition, _rows_answered
        with tables.open_file({str(path)!r}) as f:
            for table in (f.root.gapped, f.root.packed):
                rows = _rows_answered(Condition.of(table, "a > 250"), table, 0, 300)
                print(table.name, None if rows is None else len(rows))
        """,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == ["gapped", "None", "packed", "49"]


def spacepad(size):
    """HDF5's fixed-size string of ``size`` bytes, space-padded (a type numpy cannot describe)."""
    string = h5py.h5t.C_S1.copy()
    string.set_size(size)
    string.set_strpad(h5py.h5t.STR_SPACEPAD)
    return string


def write_compound(path, name, hdf5_type, data, chunks):
    """``data`` stored with ``hdf5_type`` (built by hand: h5py makes no space-padded member)."""
    with h5py.File(path, "a") as f:
        plist = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
        plist.set_chunk(chunks)
        dataset = h5py.h5d.create(
            f.id, name.encode(), hdf5_type, h5py.h5s.create_simple(data.shape), dcpl=plist
        )
        dataset.write(h5py.h5s.ALL, h5py.h5s.ALL, data, mtype=hdf5_type)


def write_undescribed_members(path):
    """``/nested``: PyTables' nested-type-with-gaps with a space-padded string in the inner record
    (PyTables packs the outer record, not the inner: its read returns garbage, then segfaults);
    ``/flat``: gaps and a space-padded string, which PyTables reads with the file's offsets."""
    inner = h5py.h5t.create(h5py.h5t.COMPOUND, 12)
    inner.insert(b"char", 2, h5py.h5t.STD_I8LE)
    inner.insert(b"s", 4, spacepad(4))
    outer = h5py.h5t.create(h5py.h5t.COMPOUND, 21)
    outer.insert(b"float", 1, h5py.h5t.IEEE_F32LE)
    outer.insert(b"compound", 7, inner)
    inner_dtype = np.dtype(
        {"names": ["char", "s"], "formats": ["i1", "S4"], "offsets": [2, 4], "itemsize": 12}
    )
    nested = np.zeros(
        40,
        {"names": ["float", "compound"], "formats": ["<f4", inner_dtype], "offsets": [1, 7], "itemsize": 21},
    )
    nested["float"], nested["compound"]["char"], nested["compound"]["s"] = (
        np.arange(40),
        np.arange(40),
        b"ab  ",
    )
    write_compound(path, "nested", outer, nested, (10,))
    flat_type = h5py.h5t.create(h5py.h5t.COMPOUND, 24)
    flat_type.insert(b"a", 0, h5py.h5t.STD_I32LE)
    flat_type.insert(b"s", 8, spacepad(4))
    flat_type.insert(b"x", 16, h5py.h5t.IEEE_F64LE)
    flat = np.zeros(
        300,
        {"names": ["a", "s", "x"], "formats": ["<i4", "S4", "<f8"], "offsets": [0, 8, 16], "itemsize": 24},
    )
    flat["a"], flat["s"], flat["x"] = np.arange(300), [b"ab  ", b"abcd", b"x   "] * 100, np.arange(300) / 2
    write_compound(path, "flat", flat_type, flat, (100,))
    return flat


def test_gapped_records_with_a_member_numpy_cannot_describe_are_refused_never_read_by_pytables(tmp_path):
    """Neither readable in the file's layout nor safely by PyTables: refused, naming the member; never a crash.

    A table whose stored layout PyTables' record matches (``/flat``) still
    reads, through PyTables, equal to PyTables' own read.
    """
    path = tmp_path / "undescribed.h5"
    flat = write_undescribed_members(path)
    done = run_python(
        f"""
        import numpy as np
        import dask_tables
        path = {str(path)!r}
        for name, read in [
            ("from_tables", lambda: dask_tables.from_tables(path, "/nested").compute(scheduler="threads")),
            ("field", lambda: dask_tables.from_tables(path, "/nested", field="float").compute()),
            ("read_table", lambda: dask_tables.read_table(path, "/nested").compute(scheduler="threads")),
            ("where", lambda: dask_tables.read_table(path, "/nested", where="float > 3").compute()),
        ]:
            try:
                read()
                print(name, "read")
            except dask_tables.RecordLayoutError as err:
                print(name, "refused", str(err).startswith(path + ": node /nested:"), err.member)
        np.save({str(tmp_path / "flat.npy")!r}, dask_tables.from_tables(path, "/flat", chunks=64).compute())
        print("flat", len(dask_tables.read_table(path, "/flat", where="a < 7").compute()))
        """,
        timeout=120,
    )
    assert done.returncode == 0, f"child failed ({done.returncode}): {done.stderr[-3000:]}"
    refused = "refused True compound/s"
    assert done.stdout.strip().splitlines() == [
        f"from_tables {refused}",
        f"field {refused}",
        f"read_table {refused}",
        f"where {refused}",
        "flat 7",
    ]
    same_records(np.load(tmp_path / "flat.npy"), flat)  # the spaces kept, as PyTables keeps them


def test_the_layout_compared_is_each_member_s_offset_and_size(tmp_path):
    """PyTables' record against the stored one: ``/flat`` alike, ``/nested`` not (PyTables packs the outer
    record only); a packed PyTables table with a complex (a record of two floats in HDF5) and a bool alike."""
    import tables

    from dask_tables.hdf5.calls import library, same_layout

    path = tmp_path / "undescribed.h5"
    write_undescribed_members(path)
    with tables.open_file(path, "a") as f:
        f.create_table("/", "packed", obj=np.zeros(3, "i4,c16,?,(2,)f4"))
    with tables.open_file(path) as f:
        alike = {}
        for node in (f.root.flat, f.root.nested, f.root.packed):
            type_id = library().H5Dget_type(node._v_objectid)
            alike[node.name] = same_layout(library(), type_id, node.dtype)
            if node.name == "nested":
                inner = f.root.nested.dtype["compound"]
                assert (f.root.nested.dtype.itemsize, inner.itemsize) == (12, 8)  # the file's: 21, 12
            library().H5Tclose(type_id)
    assert alike == {"flat": True, "nested": False, "packed": True}


def test_info_gives_the_refusal_of_undescribed_gapped_records(tmp_path):
    path = tmp_path / "undescribed.h5"
    write_undescribed_members(path)
    done = run_python(
        f"""
        import sys
        from dask_tables.cli import main
        sys.exit(main(["info", "--json", {str(path)!r}]))
        """,
        timeout=120,
    )
    assert done.returncode == 0, f"child failed ({done.returncode}): {done.stderr[-3000:]}"
    nodes = {node["path"]: node for node in json.loads(done.stdout)}
    assert nodes["/nested"]["read"] is None
    assert nodes["/nested"]["reason"].startswith("refused: ")
    assert "member 'compound/s'" in nodes["/nested"]["reason"] and "crash" in nodes["/nested"]["reason"]
    assert nodes["/flat"]["read"] == "hdf5"  # PyTables' record is the file's: PyTables reads it


def test_pytables_own_tables_with_members_numpy_cannot_describe_are_never_refused(tmp_path):
    """Bool (an HDF5 bit field), Time and Enum columns, nested and multidimensional: PyTables' record is the
    file's, so their tables read as before (through PyTables where a column cannot be read directly)."""
    import tables

    from dask_tables.hdf5.calls import other_record_layout
    from dask_tables.hdf5.storedtypes import file_dtype

    class Inner(tables.IsDescription):
        flag = tables.BoolCol(pos=0)
        when = tables.Time32Col(pos=1)
        kind = tables.EnumCol(tables.Enum(["a", "b"]), "a", base="uint8", pos=2)

    class Outer(tables.IsDescription):
        x = tables.Float64Col(pos=0)
        cell = tables.Int16Col(shape=(2, 3), pos=1)
        inner = Inner()
        z = tables.ComplexCol(itemsize=16, pos=3)

    path = tmp_path / "own.h5"
    with tables.open_file(path, "w") as f:
        for order in ("little", "big"):
            table = f.create_table("/", order, Outer, byteorder=order, chunkshape=(16,))
            row = table.row
            for i in range(50):
                row["x"], row["inner/flag"], row["inner/when"] = i, i % 2, i
                row.append()
    with tables.open_file(path) as f:
        for table in (f.root.little, f.root.big):
            assert file_dtype(table) is None  # the bit field: the check below is the one that runs
            assert other_record_layout(table) is None
    got, _ = read_in_child(tmp_path, path, ["/little", "/big"])
    for node in ("/little", "/big"):
        same_records(got[node], pytables_read(path, node))
