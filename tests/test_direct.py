"""Direct chunk reads equal PyTables' own reads, byte for byte, over a matrix of cases."""

from __future__ import annotations

import pickle
import sys
from pathlib import Path

import dask
import numpy as np
import pytest
import tables
from helpers import child_json, registry_is_empty, run_python
from numpy.lib.recfunctions import repack_fields

import dask_tables
from dask_tables import CorruptChunkError, TablesSource, from_tables
from dask_tables.filters import FilterChain, fletcher32

FILTERS = {
    "none": None,
    "fletcher32": tables.Filters(fletcher32=True),
    "zlib1": tables.Filters(complevel=1, complib="zlib", shuffle=False),
    "zlib9+shuffle": tables.Filters(complevel=9, complib="zlib", shuffle=True),
    "zlib+shuffle+fletcher32": tables.Filters(complevel=1, complib="zlib", shuffle=True, fletcher32=True),
    "bzip2": tables.Filters(complevel=3, complib="bzip2"),
    "blosc:blosclz": tables.Filters(complevel=5, complib="blosc:blosclz", shuffle=False),
    "blosc:lz4+shuffle": tables.Filters(complevel=5, complib="blosc:lz4", shuffle=True),
    "blosc:lz4hc": tables.Filters(complevel=9, complib="blosc:lz4hc", shuffle=True),
    "blosc:zstd+bitshuffle": tables.Filters(complevel=5, complib="blosc:zstd", bitshuffle=True),
    "blosc:zlib": tables.Filters(complevel=1, complib="blosc:zlib"),
    "blosc2:blosclz": tables.Filters(complevel=5, complib="blosc2:blosclz", shuffle=False),
    "blosc2:lz4+shuffle": tables.Filters(complevel=5, complib="blosc2:lz4", shuffle=True),
    "blosc2:lz4hc": tables.Filters(complevel=9, complib="blosc2:lz4hc"),
    "blosc2:zstd+bitshuffle": tables.Filters(complevel=5, complib="blosc2:zstd", bitshuffle=True),
    "blosc2:zlib": tables.Filters(complevel=1, complib="blosc2:zlib"),
}

DTYPES = ["i1", "u2", "i4", "i8", "f4", "f8", "?", "c16", "S7"]

SHAPES = [
    # shape, chunkshape
    ((1003,), (100,)),
    ((37, 41), (8, 16)),
    ((9, 10, 11), (4, 3, 5)),
    ((5, 6, 7, 8), (2, 3, 4, 5)),
    ((0, 7), (16, 7)),
]


def values(shape, dtype, seed=0):
    rng = np.random.default_rng(seed)
    n = int(np.prod(shape))
    kind = np.dtype(dtype).kind
    if kind == "S":
        data = np.array([f"s{v}".encode() for v in rng.integers(0, 10**6, n)], dtype=dtype)
    elif kind == "b":
        data = rng.random(n) > 0.5
    elif kind == "c":
        data = (rng.normal(size=n) + 1j * rng.normal(size=n)).astype(dtype)
    elif kind == "f":
        data = rng.normal(size=n).astype(dtype)
    else:
        info = np.iinfo(dtype)
        data = rng.integers(info.min, info.max, n, dtype=dtype, endpoint=True)
    return data.reshape(shape)


def selections(shape):
    ndim = len(shape)
    keys = [(), (slice(None, None, 3),) * ndim, (slice(1, -1),) * ndim, (-1,), (slice(None, None, -2),)]
    if shape[0] > 5:
        keys.append(([0, 5, 2, 5],))
    return keys


def packed_bytes(array):
    """The bytes of an array's values, without the padding of a structured dtype."""
    if array.dtype.names:
        array = repack_fields(array.astype(array.dtype, copy=True))
    return np.ascontiguousarray(array).tobytes()


def assert_identical(got, expected):
    assert got.dtype == expected.dtype
    assert got.shape == expected.shape
    assert packed_bytes(got) == packed_bytes(expected)


@pytest.fixture(scope="module")
def matrix_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("matrix") / "matrix.h5"
    with tables.open_file(path, "w") as f:
        for fname, filters in FILTERS.items():
            group = f.create_group("/", fname.replace(":", "_").replace("+", "_"))
            for dtype in DTYPES:
                for shape, chunkshape in SHAPES:
                    name = f"{np.dtype(dtype).str[1:]}_{len(shape)}d_{shape[0]}"
                    if shape[0] == 0:  # an EArray, grown by appends (or not at all)
                        atom = tables.Atom.from_dtype(np.dtype(dtype))
                        empty = f.create_earray(
                            group, name, atom=atom, shape=shape, chunkshape=chunkshape, filters=filters
                        )
                        grown = empty.copy(group, name + "_grown")
                        grown.append(values((13, 7), dtype, seed=1))
                        grown.append(values((12, 7), dtype, seed=2))
                    else:
                        f.create_carray(
                            group, name, obj=values(shape, dtype), chunkshape=chunkshape, filters=filters
                        )
            f.create_carray(
                group,
                "big_endian",
                obj=values((50, 20), ">f8"),
                chunkshape=(7, 6),
                filters=filters,
                byteorder="big",
            )
            f.create_table(group, "table", obj=table_rows(700), chunkshape=(64,), filters=filters)
    return path


def table_rows(n):
    dtype = np.dtype([("a", "i4"), ("pos", [("x", "f8"), ("y", "i2")]), ("m", "f4", (2, 3)), ("s", "S5")])
    rows = np.zeros(n, dtype)
    rows["a"] = np.arange(n)
    rows["pos"]["x"] = np.linspace(0, 1, n)
    rows["pos"]["y"] = -np.arange(n)
    rows["m"] = np.arange(n * 6).reshape(n, 2, 3)
    rows["s"] = [f"r{i}".encode() for i in range(n)]
    return rows


def leaves(path, group):
    with tables.open_file(path) as f:
        return sorted(leaf._v_pathname for leaf in f.get_node(group)._f_walknodes("Leaf"))


@pytest.mark.parametrize("filter_name", list(FILTERS))
def test_direct_reads_equal_pytables_for_every_dtype_shape_and_selection(matrix_file, filter_name):
    group = "/" + filter_name.replace(":", "_").replace("+", "_")
    with tables.open_file(matrix_file) as f:
        for node in leaves(matrix_file, group):
            leaf = f.get_node(node)
            source = TablesSource.open(matrix_file, node)
            assert source.storage is not None, f"{node} should be read directly"
            x = from_tables(matrix_file, node, chunks=tuple(max(1, (n + 2) // 3) for n in source.shape) or ())
            whole = leaf.read()  # PyTables' own read; numpy applies the selection
            keys = selections(source.shape) if source.shape[0] else [()]
            results = dask.compute(*[x[key] for key in keys], scheduler="threads")
            for key, got in zip(keys, results, strict=True):
                assert_identical(np.asarray(got), whole[key])
    assert registry_is_empty()


@pytest.mark.parametrize("field", ["a", "pos", "pos/x", "pos/y", "m", "s"])
@pytest.mark.parametrize(
    "filter_name", ["none", "zlib9+shuffle", "blosc:lz4+shuffle", "blosc2:zstd+bitshuffle"]
)
def test_direct_table_fields(matrix_file, filter_name, field):
    node = "/" + filter_name.replace(":", "_").replace("+", "_") + "/table"
    x = from_tables(matrix_file, node, field=field, chunks=100)
    with tables.open_file(matrix_file) as f:
        expected = f.get_node(node).read(field=field)
        assert_identical(x.compute(), expected)
        assert_identical(x[650:3:-7].compute(), expected[650:3:-7])


def test_atom_with_a_shape_reads_directly(tmp_path):
    path = tmp_path / "cells.h5"
    with tables.open_file(path, "w") as f:
        arr = f.create_carray(
            "/",
            "x",
            atom=tables.Int16Atom(shape=(2, 3)),
            shape=(40,),
            chunkshape=(7,),
            filters=FILTERS["zlib1"],
        )
        arr[:] = np.arange(40 * 6, dtype="i2").reshape(40, 2, 3)
    assert TablesSource.open(path, "/x").storage is not None
    x = from_tables(path, "/x", chunks=15)
    with tables.open_file(path) as f:
        assert_identical(x.compute(), f.root.x.read())
        assert_identical(x[3:30:4, 1, ::-1].compute(), f.root.x.read()[3:30:4, 1, ::-1])


@pytest.mark.parametrize("filter_name", ["none", "zlib1", "blosc2:lz4+shuffle"])
def test_unwritten_chunks_read_as_the_fill_value(tmp_path, filter_name):
    path = tmp_path / "sparse.h5"
    with tables.open_file(path, "w") as f:
        arr = f.create_carray(
            "/",
            "x",
            atom=tables.Float64Atom(dflt=-1.5),
            shape=(100, 100),
            chunkshape=(10, 10),
            filters=FILTERS[filter_name],
        )
        arr[25:47, 3:61] = np.arange(22 * 58).reshape(22, 58)
        unwritten = arr.chunk_info((90, 90))
    assert unwritten.offset is None
    x = from_tables(path, "/x", chunks=(30, 40))
    with tables.open_file(path) as f:
        expected = f.root.x.read()
    assert (expected == -1.5).any()
    assert_identical(x.compute(), expected)
    assert_identical(x[::7, 95:2:-3].compute(), expected[::7, 95:2:-3])


def test_direct_can_be_switched_off(matrix_file):
    node = "/zlib1/f8_2d_37"
    assert TablesSource.open(matrix_file, node).storage is not None
    assert TablesSource.open(matrix_file, node, direct=False).storage is None
    with dask.config.set({"dask_tables.direct": False}):
        assert TablesSource.open(matrix_file, node).storage is None
    on, off = from_tables(matrix_file, node), from_tables(matrix_file, node, direct=False)
    assert_identical(on.compute(), off.compute())


def test_contiguous_and_unsupported_filters_use_pytables(sample_file):
    assert TablesSource.open(sample_file, "/contiguous").storage is None
    assert TablesSource.open(sample_file, "/scalar").storage is None


def test_the_source_with_its_storage_pickles(matrix_file):
    source = TablesSource.open(matrix_file, "/blosc2_lz4hc/f8_2d_37")
    clone = pickle.loads(pickle.dumps(source))
    assert clone == source
    assert_identical(clone[3:9], source[3:9])


def test_processes_and_distributed_read_directly(matrix_file):
    distributed = pytest.importorskip("distributed")
    x = from_tables(matrix_file, "/zlib_shuffle_fletcher32/f8_2d_37", chunks=(10, 41))
    with tables.open_file(matrix_file) as f:
        expected = f.root.zlib_shuffle_fletcher32.f8_2d_37.read().sum()
    assert float(x.sum().compute(scheduler="processes")) == pytest.approx(expected)
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
        ) as c,
        distributed.Client(c) as client,
    ):
        assert float(client.compute(x.sum(), sync=True)) == pytest.approx(expected)


# ---------------------------------------------------------------- filters


def test_fletcher32_matches_what_hdf5_stored(matrix_file):
    with tables.open_file(matrix_file) as f:
        leaf = f.root.fletcher32.f8_2d_37
        raw = leaf.read_chunk((0, 0))
    assert fletcher32(raw[:-4]) == int.from_bytes(raw[-4:], "little")
    with pytest.raises(ValueError, match="Fletcher-32"):
        FilterChain([("fletcher32", ())], len(raw) - 4).decode(raw[:-5] + b"\x00" + raw[-4:])


def test_fletcher32_edge_cases_follow_hdf5s_algorithm():
    # all 0xff words drive both sums to their folding limits (and 32-bit wrap-around)
    assert fletcher32(b"\xff" * 720 * 2) == 0xFFFFFFFF
    assert fletcher32(b"\x00" * 1001) == 0
    assert fletcher32(b"\x01") == 0x01000100


def test_an_unknown_filter_is_unsupported():
    from dask_tables.filters import UnsupportedFilterError

    with pytest.raises(UnsupportedFilterError, match="nbit"):
        FilterChain([("nbit", ())], 100)


# ---------------------------------------------------------------- corruption

CORRUPTIBLE = [
    "zlib1",
    "bzip2",
    "fletcher32",
    "blosc:lz4+shuffle",
    "blosc2:zstd+bitshuffle",
    "zlib+shuffle+fletcher32",
]


def corrupt(path, node, coords, how, seed):
    with tables.open_file(path) as f:
        info = f.get_node(node).chunk_info(coords)
    rng = np.random.default_rng(seed)
    with open(path, "r+b") as raw:
        if how == "flip":
            where = info.offset + rng.integers(0, info.size, 8)
            for offset in where:
                raw.seek(int(offset))
                byte = raw.read(1)
                raw.seek(int(offset))
                raw.write(bytes([byte[0] ^ 0xA5]))
        elif how == "zero":
            raw.seek(info.offset)
            raw.write(b"\x00" * info.size)
        else:  # header: the first 16 bytes (Blosc headers, zlib header)
            raw.seek(info.offset)
            raw.write(rng.integers(0, 256, 16, dtype=np.uint8).tobytes())


CHILD = """
import hashlib, json, sys
import numpy as np, tables
import dask_tables
path, node = sys.argv[1], sys.argv[2]
try:
    got = dask_tables.from_tables(path, node).compute(scheduler="synchronous")
    outcome = {"result": "data", "digest": hashlib.sha256(got.tobytes()).hexdigest()}
except dask_tables.CorruptChunkError as err:
    outcome = {"result": "corrupt", "message": str(err)}
except Exception as err:
    outcome = {"result": "other", "type": type(err).__name__, "message": str(err)}
try:
    with tables.open_file(path) as f:
        outcome["pytables_digest"] = hashlib.sha256(f.get_node(node).read().tobytes()).hexdigest()
except Exception:
    outcome["pytables_digest"] = None
print(json.dumps(outcome))
"""


@pytest.mark.parametrize("filter_name", CORRUPTIBLE)
@pytest.mark.parametrize("how", ["flip", "zero", "header"])
def test_corrupt_chunks_raise_or_equal_pytables_never_crash(tmp_path, filter_name, how):
    path = tmp_path / "corrupt.h5"
    with tables.open_file(path, "w") as f:
        f.create_carray(
            "/", "x", obj=values((60, 50), "f8"), chunkshape=(20, 25), filters=FILTERS[filter_name]
        )
    corrupt(path, "/x", (20, 25), how, seed=len(filter_name))
    outcome = child_json(run_python(CHILD, path, "/x"))
    if outcome["result"] == "corrupt":
        assert (
            str(path) in outcome["message"]
            and "/x" in outcome["message"]
            and "(20, 25)" in outcome["message"]
        )
    else:
        assert outcome["result"] == "data", outcome
        assert outcome["digest"] == outcome["pytables_digest"], (
            "undetectable damage reads as PyTables reads it"
        )


# ---------------------------------------------------------------- PyTables' own test files

# PyTables itself corrupts the heap (glibc aborts at exit) reading nested-type-with-gaps.h5.
PYTABLES_TEST_FILES = sorted(
    p
    for p in Path(tables.__file__).parent.joinpath("tests").glob("*.h5")
    if p.name != "nested-type-with-gaps.h5"
)


def readable_leaves(path):
    found = []
    try:
        with tables.open_file(path) as f:
            for leaf in f.walk_nodes("/", "Leaf"):
                if not isinstance(leaf, (tables.Array, tables.Table)) or isinstance(leaf, tables.VLArray):
                    continue
                if leaf.size_in_memory > 20 * 2**20:
                    continue
                try:
                    expected = leaf.read()
                except Exception:
                    continue  # PyTables itself cannot read it (missing filter...)
                found.append((leaf._v_pathname, expected))
    except Exception:
        return []
    return found


@pytest.mark.skipif(not PYTABLES_TEST_FILES, reason="this PyTables installation ships no test files")
@pytest.mark.filterwarnings("ignore")
def test_the_h5_files_pytables_ships_read_the_same():
    checked = direct = 0
    for path in PYTABLES_TEST_FILES:
        for node, expected in readable_leaves(path):
            try:
                source = TablesSource.open(path, node)
            except (TypeError, ValueError):
                continue
            got = from_tables(path, node).compute(scheduler="threads")
            expected = np.asarray(expected)
            if expected.dtype.kind == "O":
                continue
            assert got.shape == expected.shape, (path.name, node)
            assert packed_bytes(got) == packed_bytes(np.asarray(expected, dtype=got.dtype)), (path.name, node)
            checked += 1
            direct += source.storage is not None
    print(
        f"checked {checked} nodes of {len(PYTABLES_TEST_FILES)} files, {direct} read directly",
        file=sys.stderr,
    )
    assert checked > 50 and direct > 10
    assert registry_is_empty()
    assert dask_tables.get_lock().acquire(blocking=False)
    dask_tables.get_lock().release()


# ---------------------------------------------------------------- LZF (h5py writes it, PyTables cannot read it)


@pytest.mark.parametrize(
    "options",
    [{}, {"shuffle": True}, {"fletcher32": True}],
    ids=["lzf", "lzf+shuffle", "lzf+fletcher32"],
)
def test_lzf_written_by_h5py_reads_directly(tmp_path, options):
    h5py = pytest.importorskip("h5py")
    path = tmp_path / "lzf.h5"
    rng = np.random.default_rng(3)
    smooth = np.round(rng.normal(size=(130, 70)).cumsum(axis=1), 1)  # compresses
    noise = rng.random((40, 30))  # does not: h5py stores such chunks unfiltered (filter mask)
    with h5py.File(path, "w") as f:
        f.create_dataset("smooth", data=smooth, chunks=(32, 16), compression="lzf", **options)
        f.create_dataset("noise", data=noise, chunks=(16, 16), compression="lzf", **options)
    with tables.open_file(path) as f, pytest.raises(tables.HDF5ExtError):
        f.root.smooth[:2]  # PyTables has no LZF filter
    for node, expected in [("/smooth", smooth), ("/noise", noise)]:
        x = from_tables(path, node, chunks=(50, 30))
        assert_identical(x.compute(scheduler="threads"), expected)
        assert_identical(x[::-3, 5:].compute(), expected[::-3, 5:])


def test_corrupt_lzf_raises(tmp_path):
    h5py = pytest.importorskip("h5py")
    path = tmp_path / "lzf.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("x", data=np.arange(4000.0), chunks=(1000,), compression="lzf")
    corrupt(path, "/x", (1000,), "header", seed=1)
    with pytest.raises(CorruptChunkError, match=r"\(1000,\)"):
        from_tables(path, "/x").compute()


def test_lzf_decoder_handles_overlapping_back_references():
    from dask_tables.filters.lzf import lzf_decompress

    # "a" then a back-reference of 9 bytes at distance 1: a run of ten "a"
    assert bytes(lzf_decompress(bytes([0]) + b"a" + bytes([(7 << 5) | 0, 0, 0]), 10)) == b"a" * 10
    with pytest.raises(ValueError, match="LZF"):
        lzf_decompress(bytes([5]) + b"ab", 6)


def test_chunks_stored_with_a_skipped_filter_decode(tmp_path):
    """Blosc leaves incompressible chunks raw; HDF5 marks that in the chunk's filter mask."""
    path = tmp_path / "noise.h5"
    noise = np.random.default_rng(5).random((64, 64))
    with tables.open_file(path, "w") as f:
        x = f.create_carray("/", "x", obj=noise, chunkshape=(16, 64), filters=FILTERS["blosc:blosclz"])
        masks = {x.chunk_info((row, 0)).filter_mask for row in range(0, 64, 16)}
    assert masks != {0}, "the case needs a chunk whose filter was skipped"
    assert TablesSource.open(path, "/x").storage is not None
    assert_identical(from_tables(path, "/x", chunks=(32, 64)).compute(), noise)


# ---------------------------------------------------------------- stored types PyTables converts


def test_a_stored_type_that_hdf5_converts_is_read_through_pytables(tmp_path):
    """A 12-bit integer is sign-extended by HDF5 on read: its raw bytes are not the values."""
    h5py = pytest.importorskip("h5py")
    path = tmp_path / "odd.h5"
    values = np.r_[np.arange(10), -np.arange(1, 31)].astype("i2")
    with h5py.File(path, "w") as f:
        twelve_bits = h5py.h5t.STD_I16LE.copy()
        twelve_bits.set_precision(12)
        dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
        dcpl.set_chunk((10,))
        h5py.h5d.create(f.id, b"p12", twelve_bits, h5py.h5s.create_simple((40,)), dcpl=dcpl)
        f["p12"][...] = values
        f.create_dataset("spaces", data=np.array([b"ab  ", b"c   "] * 10), chunks=(5,))
    assert TablesSource.open(path, "/p12").storage is None
    assert_identical(from_tables(path, "/p12").compute(), values)
    with tables.open_file(path) as f:
        assert_identical(from_tables(path, "/spaces").compute(), f.root.spaces.read())


def test_edge_chunks_stored_unfiltered_are_read_through_pytables(tmp_path):
    """HDF5's DONT_FILTER_PARTIAL_CHUNKS stores edge chunks raw, with filter mask 0."""
    h5py = pytest.importorskip("h5py")
    import ctypes
    import glob as globbing
    import os as os_module

    libs = globbing.glob(
        os_module.path.join(os_module.path.dirname(h5py.__file__) + ".libs", "libhdf5-*.so*")
    )
    if not libs:
        pytest.skip("h5py's HDF5 library is not where its wheels put it")
    set_chunk_opts = ctypes.CDLL(libs[0]).H5Pset_chunk_opts
    set_chunk_opts.argtypes = [ctypes.c_int64, ctypes.c_uint]
    path = tmp_path / "partial.h5"
    data = np.arange(50 * 30, dtype="<i4").reshape(50, 30)
    with h5py.File(path, "w") as f:
        dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
        dcpl.set_chunk((16, 16))
        dcpl.set_shuffle()
        dcpl.set_deflate(4)
        assert set_chunk_opts(dcpl.id, 0x0002) >= 0
        dataset = h5py.h5d.create(
            f.id, b"x", h5py.h5t.STD_I32LE, h5py.h5s.create_simple(data.shape), dcpl=dcpl
        )
        dataset.write(h5py.h5s.ALL, h5py.h5s.ALL, data)
    assert TablesSource.open(path, "/x").storage is None
    assert_identical(from_tables(path, "/x").compute(), data)


def test_blosc2_chunks_padded_to_whole_blocks(tmp_path):
    """Blosc2 pads a chunk its blocks do not tile; the chunk still reads whole, in place."""
    import blosc2

    path = tmp_path / "padded.h5"
    data = np.arange(3000 * 300, dtype="f8").reshape(3000, 300)
    with tables.open_file(path, "w") as f:
        x = f.create_carray("/", "x", obj=data, chunkshape=(1000, 300), filters=tables.Filters(5, "blosc2"))
        frame = x.read_chunk((0, 0))
    array = blosc2.ndarray_from_cframe(frame)
    assert any(c % b for c, b in zip(array.chunks, array.blocks, strict=True)), "the case needs padding"
    assert TablesSource.open(path, "/x").storage is not None
    assert_identical(from_tables(path, "/x").compute(), data)
    assert_identical(from_tables(path, "/x", chunks=(700, 100)).compute(), data)


def test_damaged_blosc2_metadata_is_a_corrupt_chunk_not_a_huge_allocation(tmp_path):
    path = tmp_path / "meta.h5"
    with tables.open_file(path, "w") as f:
        f.create_carray(
            "/",
            "x",
            obj=np.arange(800.0).reshape(40, 20),
            chunkshape=(20, 20),
            filters=FILTERS["blosc2:lz4+shuffle"],
        )
    # One child, address space capped, tries each damage in turn (a crash or a huge allocation
    # kills it: its last line names the offset it was at).
    done = run_python(
        f"""
        import resource
        resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))
        import numpy as np, tables, dask_tables
        path = {str(path)!r}
        with tables.open_file(path) as f:
            frame = bytes(f.root.x.read_chunk((20, 0)))
        for offset in range(100, 140, 2):  # the b2nd metalayer (shape, chunks, blocks, dtype) of chunk 2
            print("at", offset, flush=True)
            damaged = bytearray(frame)
            damaged[offset] ^= 0xA5
            with tables.open_file(path, "a") as f:
                f.root.x.write_chunk((20, 0), bytes(damaged))
            try:
                got = dask_tables.from_tables(path, "/x").compute(scheduler="synchronous")
                try:
                    with tables.open_file(path) as f:
                        expected = f.root.x.read()
                except tables.HDF5ExtError:  # PyTables' filter refuses the chunk: compare with what was written
                    expected = np.arange(800.0).reshape(40, 20)
                print(offset, "data" if np.array_equal(got, expected) else "mismatch", flush=True)
            except dask_tables.CorruptChunkError:
                print(offset, "corrupt", flush=True)
            except Exception as err:
                print(offset, "other", type(err).__name__, err, flush=True)
        """,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout[-500:] + done.stderr[-2000:]
    results = [line.split() for line in done.stdout.splitlines() if not line.startswith("at ")]
    assert len(results) == 20, done.stdout
    for offset, outcome, *_ in results:
        assert outcome in ("data", "corrupt"), (offset, done.stdout)
    assert "corrupt" in {outcome for _, outcome, *_ in results}


@pytest.mark.parametrize("filters", [None, tables.Filters(1, "zlib")])
def test_a_chunk_index_pointing_past_the_end_is_a_corrupt_chunk(tmp_path, filters):
    """A damaged chunk address is corruption, not a changed file, and is never read or allocated."""
    path = tmp_path / "index.h5"
    with tables.open_file(path, "w") as f:
        f.create_carray("/", "x", obj=np.arange(4000.0), chunkshape=(1000,), filters=filters)
    with tables.open_file(path) as f:
        address = f.root.x.chunk_info((2000,)).offset
    data = bytearray(path.read_bytes())
    stored = int(address).to_bytes(8, "little")
    assert data.count(stored) == 1  # the chunk index's one entry for that chunk
    data[data.index(stored) : data.index(stored) + 8] = (len(data) + 2**40).to_bytes(8, "little")
    path.write_bytes(bytes(data))
    x = from_tables(path, "/x", chunks=1000)
    np.testing.assert_array_equal(x[:2000].compute(), np.arange(2000.0))
    with pytest.raises(
        CorruptChunkError, match=r"index\.h5: node /x: chunk at \(2000,\) is corrupt: .*past the end"
    ):
        x.compute()


@pytest.mark.parametrize("filter_name", ["none", "zlib1", "fletcher32", "blosc2:lz4+shuffle"])
def test_runs_of_whole_chunks_written_out_of_order_with_gaps(tmp_path, filter_name):
    """Chunks of whole rows: read in runs (one preadv per run stored in order), else one by one."""
    path = tmp_path / "runs.h5"
    rng = np.random.default_rng(5)
    with tables.open_file(path, "w") as f:
        one = f.create_carray(
            "/",
            "one",
            atom=tables.Int32Atom(dflt=-7),
            shape=(1003,),
            chunkshape=(10,),
            filters=FILTERS[filter_name],
        )
        rows = f.create_carray(
            "/",
            "rows",
            atom=tables.Float64Atom(shape=(2,)),
            shape=(203, 3),
            chunkshape=(4, 3),
            filters=FILTERS[filter_name],
        )
        for k in rng.permutation(101)[:90]:  # out of file order, 11 chunks never written
            one[k * 10 : k * 10 + 10] = np.arange(k * 10, min(k * 10 + 10, 1003), dtype="i4")
        rows[:100] = rng.normal(size=(100, 3, 2))
        rows[100:] = rng.normal(size=(103, 3, 2))  # in file order
        expected = {"one": one.read(), "rows": rows.read()}
    for node, blocks in [("one", 97), ("one", 1003), ("rows", 41), ("rows", 203)]:
        x = from_tables(path, f"/{node}", chunks=blocks)
        assert_identical(x.compute(), expected[node])
        assert_identical(x[3:999:1].compute(), expected[node][3:999])
        assert_identical(x[20:60].compute(), expected[node][20:60])
    assert (expected["one"] == -7).any()
