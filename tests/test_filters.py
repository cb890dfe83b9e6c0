"""Every registered HDF5 filter, checked against HDF5 both ways; damaged chunks never crash.

The round trip, in the manner of numcodecs' ``check_encode_decode``: for
every filter of the registry (:data:`dask_tables.filters.FILTERS`) one or
more CASES write files through HDF5: PyTables; h5py, with hdf5plugin's
compiled filters and its own szip; for LZO, whose filter PyTables' wheels
lack, lzokay's LZO1X chunks written with ``write_direct_chunk``, and a file
written by a PyTables built with LZO (``tests/data``).

- HDF5 writes, dask_tables decodes: every chunk, decoded from its stored
  bytes (as bytes, bytearray, memoryview and numpy; with and without
  ``out=``), equals HDF5's read of it.
- dask_tables encodes, HDF5 decodes: for every case whose filters all
  encode, every chunk encoded by :meth:`FilterChain.encode` and written
  with ``write_chunk`` (PyTables) or ``write_direct_chunk`` (h5py) reads
  back through HDF5 equal to the values; a filter that only decodes raises
  :class:`UnsupportedEncoderError` naming it.

Then: whole reads through ``from_tables``, Blosc2 frames made by
python-blosc2, shuffle and Fletcher-32 against HDF5's algorithms, the
C-Blosc2 binding, and the one fuzz loop: damaged chunks of every case raise
:class:`DecodeError` or decode to the chunk's size, in a child process that
must not crash.
"""

from __future__ import annotations

import ctypes
import importlib.util
import itertools
import json
import runpy
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import blosc2
import numpy as np
import pytest
import tables
from helpers import child_json, run_python
from numpy.testing import assert_array_equal

from dask_tables import diagnostics, from_tables
from dask_tables.filters import (
    FILTERS,
    DecodeError,
    Filter,
    FilterChain,
    UnsupportedEncoderError,
    encoding_chain,
    fletcher32,
    libblosc2,
)
from dask_tables.filters.shuffle import Shuffle
from dask_tables.hdf5.storednode import stored_filters

h5py = pytest.importorskip("h5py")
hdf5plugin = pytest.importorskip("hdf5plugin")

DATA = Path(__file__).parent / "data"

# shape, chunk shape, dtype: partial edge chunks, chunks whose length is not a multiple of 8
# (bitshuffle's leftover elements), big-endian items, three axes, an odd item size, random bits
# (LZ4 and LZO store such blocks as they are), and chunks whose Blosc2 blocks do not span rows
# (PyTables gives a (64, 4096) float64 Blosc2 chunk blocks of (64, 1024)).
ARRAYS = {
    "f8_2d": ((150, 70), (64, 32), "<f8"),
    "i2_odd": ((10_001,), (1001,), "<i2"),
    "be_i4": ((3000,), (512,), ">i4"),
    "u8_3d": ((9, 40, 33), (4, 16, 33), "<u8"),
    "S3": ((999,), (200,), "S3"),
    "noise": ((4000,), (1000,), "<u4"),
    "f8_blocks": ((128, 8192), (64, 4096), "<f8"),
}
SMALL = ("f8_2d", "i2_odd", "be_i4", "u8_3d", "S3", "noise")


@dataclass(frozen=True)
class Case:
    """A file written by HDF5 with some registered filters."""

    writer: str  # "tables" (PyTables), "h5py" (with hdf5plugin) or "lzokay" (h5py, chunks by lzokay)
    options: Callable[[], Any]  # tables.Filters, or h5py's create_dataset keywords
    ids: tuple[int, ...]  # the pipeline's filter ids, in write order
    arrays: tuple[str, ...] = SMALL


def pytables(ids: tuple[int, ...], blocks: bool = False, **filters: Any) -> Case:
    return Case("tables", lambda: tables.Filters(**filters), ids, SMALL + ("f8_blocks",) * blocks)


def plugin(ids: tuple[int, ...], options: Callable[[], Any], arrays: tuple[str, ...] = SMALL) -> Case:
    return Case("h5py", options, ids, arrays)


NUMBERS = tuple(name for name in SMALL if name != "S3")  # szip compresses numbers only


BLOSC_CODECS = ["blosclz", "lz4", "lz4hc", "zlib", "zstd"]
SHUFFLE, DEFLATE, FLETCHER32, SZIP, LZO, BZIP2 = 2, 1, 3, 4, 305, 307
LZF, BLOSC, LZ4, BITSHUFFLE, ZSTD, BLOSC2 = 32000, 32001, 32004, 32008, 32015, 32026

CASES: dict[str, Case] = {
    "zlib": pytables((DEFLATE,), complevel=1, complib="zlib", shuffle=False),
    "zlib+shuffle": pytables((SHUFFLE, DEFLATE), complevel=6, complib="zlib", shuffle=True),
    "bzip2": pytables((BZIP2,), complevel=5, complib="bzip2", shuffle=False),
    "bzip2+shuffle": pytables((SHUFFLE, BZIP2), complevel=1, complib="bzip2", shuffle=True),
    "fletcher32": pytables((FLETCHER32,), fletcher32=True),
    "zlib+shuffle+fletcher32": pytables(
        (SHUFFLE, DEFLATE, FLETCHER32), complevel=1, complib="zlib", shuffle=True, fletcher32=True
    ),
    **{
        f"blosc:{c}": pytables((BLOSC,), complevel=5, complib=f"blosc:{c}", shuffle=False)
        for c in BLOSC_CODECS
    },
    **{
        f"blosc:{c}+shuffle": pytables((BLOSC,), complevel=5, complib=f"blosc:{c}", shuffle=True)
        for c in BLOSC_CODECS
    },
    "blosc:lz4+bitshuffle": pytables((BLOSC,), complevel=5, complib="blosc:lz4", bitshuffle=True),
    **{
        f"blosc2:{c}": pytables((BLOSC2,), True, complevel=5, complib=f"blosc2:{c}", shuffle=False)
        for c in BLOSC_CODECS
    },
    **{
        f"blosc2:{c}+shuffle": pytables((BLOSC2,), True, complevel=5, complib=f"blosc2:{c}", shuffle=True)
        for c in BLOSC_CODECS
    },
    "blosc2:zstd+bitshuffle": pytables((BLOSC2,), True, complevel=5, complib="blosc2:zstd", bitshuffle=True),
    # PyTables drops shuffle without a compressor; h5py writes it alone
    "shuffle": plugin((SHUFFLE,), lambda: {"shuffle": True}),
    "lzf": plugin((LZF,), lambda: {"compression": "lzf"}),
    "lzf+shuffle": plugin((SHUFFLE, LZF), lambda: {"compression": "lzf", "shuffle": True}),
    "lzf+fletcher32": plugin((LZF, FLETCHER32), lambda: {"compression": "lzf", "fletcher32": True}),
    "lzf+shuffle+fletcher32": plugin(
        (SHUFFLE, LZF, FLETCHER32), lambda: {"compression": "lzf", "shuffle": True, "fletcher32": True}
    ),
    "bitshuffle": plugin((BITSHUFFLE,), lambda: hdf5plugin.Bitshuffle(nelems=0, cname="none")),
    "bitshuffle+lz4": plugin((BITSHUFFLE,), lambda: hdf5plugin.Bitshuffle(nelems=0, cname="lz4")),
    "bitshuffle+lz4/blocks": plugin((BITSHUFFLE,), lambda: hdf5plugin.Bitshuffle(nelems=256, cname="lz4")),
    "bitshuffle+zstd": plugin((BITSHUFFLE,), lambda: hdf5plugin.Bitshuffle(nelems=0, cname="zstd")),
    "lz4": plugin((LZ4,), lambda: hdf5plugin.LZ4()),
    "lz4/blocks": plugin((LZ4,), lambda: hdf5plugin.LZ4(nbytes=1000)),
    "zstd": plugin((ZSTD,), lambda: hdf5plugin.Zstd()),
    "hdf5plugin-blosc": plugin(
        (BLOSC,), lambda: hdf5plugin.Blosc(cname="lz4", clevel=5, shuffle=hdf5plugin.Blosc.SHUFFLE)
    ),
    "hdf5plugin-blosc:zstd+bitshuffle": plugin(
        (BLOSC,), lambda: hdf5plugin.Blosc(cname="zstd", clevel=5, shuffle=hdf5plugin.Blosc.BITSHUFFLE)
    ),
    "hdf5plugin-blosc2": plugin(
        (BLOSC2,), lambda: hdf5plugin.Blosc2(cname="lz4", clevel=5, filters=hdf5plugin.Blosc2.SHUFFLE)
    ),
    "hdf5plugin-blosc2:zstd": plugin(
        (BLOSC2,), lambda: hdf5plugin.Blosc2(cname="zstd", clevel=5, filters=hdf5plugin.Blosc2.BITSHUFFLE)
    ),
    "szip:nn": plugin((SZIP,), lambda: {"compression": "szip", "compression_opts": ("nn", 8)}, NUMBERS),
    "szip:ec": plugin((SZIP,), lambda: {"compression": "szip", "compression_opts": ("ec", 16)}, NUMBERS),
    # PyTables' lzo filter writes one bare LZO1X stream per chunk (H5Zlzo.c); parameters as PyTables'
    "lzo": Case("lzokay", lambda: (1, 11, 4), (LZO,)),
}

# The filters dask_tables encodes; every other registered filter only decodes.
ENCODED = {SHUFFLE, DEFLATE, FLETCHER32, BZIP2, BLOSC2}


def array_values(shape, dtype, name=""):
    """Values every codec really compresses (random bits for ``noise``)."""
    rng = np.random.default_rng(0)
    n = int(np.prod(shape))
    dtype = np.dtype(dtype)
    if name == "noise":
        return rng.integers(0, 2**32, n, dtype=np.uint64).astype(dtype).reshape(shape)
    if dtype.kind == "S":
        return np.array([f"{v % 1000:03d}".encode() for v in range(n)], dtype=dtype).reshape(shape)
    if dtype.kind in "ui":
        return ((np.arange(n) % 977) + rng.integers(0, 8, n)).astype(dtype).reshape(shape)
    smooth = np.sin(np.linspace(0, 20, n)) * 100 + rng.normal(0, 1, n)
    return smooth.astype(dtype).reshape(shape)


def values_of(name):
    shape, _, dtype = ARRAYS[name]
    return array_values(shape, dtype, name)


def szip_available() -> bool:
    return bool(h5py.h5z.filter_avail(h5py.h5z.FILTER_SZIP))


def missing_writer(case_name: str) -> str | None:
    """Why this machine cannot write the case, or ``None``."""
    if case_name.startswith("szip") and not szip_available():
        return "h5py's HDF5 has no szip encoder"
    if CASES[case_name].writer == "lzokay" and importlib.util.find_spec("lzokay") is None:
        return "lzokay (the test extra) is not installed"
    return None


def chunk_origins(shape, chunks):
    return itertools.product(*(range(0, s, c) for s, c in zip(shape, chunks, strict=True)))


def chunk_region(origin, shape, chunks):
    """(the chunk's region of the array, the same region within the chunk)."""
    region = tuple(slice(o, min(o + c, s)) for o, c, s in zip(origin, chunks, shape, strict=True))
    return region, tuple(slice(0, r.stop - r.start) for r in region)


def padded_chunk(values, origin, chunks):
    """A chunk's raw values in stored byte order, padded to a whole chunk as HDF5 stores edge chunks."""
    region, local = chunk_region(origin, values.shape, chunks)
    chunk = np.zeros(chunks, dtype=values.dtype)
    chunk[local] = values[region]
    return chunk


# ---------------------------------------------------------------- writing a case through HDF5


def create_node(f, case: Case, name: str, data: np.ndarray | None = None):
    """``name`` with the case's filters: written through HDF5 with ``data``, or left empty."""
    shape, chunks, dtype = ARRAYS[name]
    if case.writer == "tables":
        if data is not None:
            return f.create_carray("/", name, obj=data, chunkshape=chunks, filters=case.options())
        byteorder = "big" if np.dtype(dtype).byteorder == ">" else "little"
        atom = tables.Atom.from_dtype(np.dtype(dtype).newbyteorder("="))
        return f.create_carray(
            "/", name, atom=atom, shape=shape, chunkshape=chunks, filters=case.options(), byteorder=byteorder
        )
    if case.writer == "h5py":
        if data is not None:
            return f.create_dataset(name, data=data, chunks=chunks, **case.options())
        return f.create_dataset(name, shape=shape, dtype=dtype, chunks=chunks, **case.options())
    import lzokay

    dataset = f.create_dataset(
        name, shape=shape, dtype=dtype, chunks=chunks, compression=LZO, compression_opts=case.options(),
        allow_unknown_filter=True,
    )  # fmt: skip
    if data is not None:  # nothing can write LZO through HDF5 here: chunks written as they are stored
        for origin in chunk_origins(shape, chunks):
            stored = lzokay.compress(padded_chunk(data, origin, chunks).tobytes())
            dataset.id.write_direct_chunk(origin, stored, filter_mask=0)
    return dataset


def open_for_writing(case: Case, path):
    return tables.open_file(path, "w") if case.writer == "tables" else h5py.File(path, "w")


def write_case(case_name: str, path: Path) -> None:
    case = CASES[case_name]
    missing = missing_writer(case_name)
    if missing:
        pytest.skip(f"{case_name}: {missing}")
    with open_for_writing(case, path) as f:
        for name in case.arrays:
            create_node(f, case, name, values_of(name))


def hdf5_read(case: Case, path, name: str) -> np.ndarray:
    """HDF5's own read of a node: PyTables' (its filters), h5py's (hdf5plugin's); LZO: the values."""
    if case.writer == "tables":
        with tables.open_file(path) as f:
            return f.get_node("/" + name).read()
    if case.writer == "h5py":
        with h5py.File(path) as f:
            return f[name][...]
    return values_of(name)  # no HDF5 here reads LZO (test_a_file_pytables_wrote_with_lzo_decodes)


@pytest.fixture(scope="module")
def case_file(tmp_path_factory):
    """``case_file(name)``: the case's file, written on first use."""
    folder = tmp_path_factory.mktemp("cases")
    written: dict[str, Path] = {}

    def get(case_name: str) -> Path:
        if case_name not in written:
            path = folder / f"{case_name.replace(':', '_').replace('/', '_').replace('+', '_')}.h5"
            write_case(case_name, path)
            written[case_name] = path
        return written[case_name]

    return get


def stored_dtype(leaf) -> np.dtype:
    """The dtype of the node's stored bytes (its atom, in the byte order of the file)."""
    dtype = leaf.atom.dtype
    if leaf.byteorder in ("little", "big"):
        dtype = dtype.newbyteorder("<" if leaf.byteorder == "little" else ">")
    return dtype


def leaf_chain(leaf) -> FilterChain:
    """The node's filters, as its file records them, for chunks of its size."""
    filters = tuple((s.name, s.params) for s in stored_filters(leaf))
    return FilterChain(filters, int(np.prod(leaf.chunkshape)) * leaf.atom.dtype.itemsize)


# ---------------------------------------------------------------- the round trip over every filter


def test_every_registered_filter_has_a_case():
    assert set().union(*(case.ids for case in CASES.values())) == set(FILTERS)
    assert set(FILTERS) >= ENCODED


def test_the_filters_that_encode_are_the_documented_ones():
    for filter_id, cls in FILTERS.items():
        encodes = cls.encode is not Filter.encode  # the default encode raises UnsupportedEncoderError
        assert encodes is (filter_id in ENCODED), cls.name


def decode_every_chunk(leaf, chain, expected, dtype):
    """Each chunk decoded from its stored bytes (as each buffer type, with and without out=)."""
    chunks = tuple(int(c) for c in leaf.chunkshape)
    checked = 0
    for origin in chunk_origins(leaf.shape, chunks):
        info = leaf.chunk_info(origin)
        stored = leaf.read_chunk(origin)
        region, local = chunk_region(origin, leaf.shape, chunks)
        for out in (None, np.empty(chain.chunk_nbytes, dtype=np.uint8)):
            for buf in (
                bytes(stored),
                bytearray(stored),
                memoryview(stored),
                np.frombuffer(stored, np.uint8),
            ):
                raw = chain.decode(buf, int(info.filter_mask), out=out)
                data = np.ascontiguousarray(raw).view(np.uint8) if isinstance(raw, np.ndarray) else raw
                chunk = np.frombuffer(data, dtype=dtype).reshape(chunks)
                assert_array_equal(chunk[local], expected[region], err_msg=f"chunk {origin}")
                if out is not None and chain._steps_for(int(info.filter_mask)):
                    assert raw is out, "the last step writes into out"
        checked += 1
    return checked


@pytest.mark.parametrize("case_name", list(CASES))
def test_chunks_hdf5_wrote_decode_as_hdf5_reads_them(case_file, case_name):
    case = CASES[case_name]
    path = case_file(case_name)
    for name in case.arrays:
        expected = hdf5_read(case, path, name)
        assert_array_equal(expected, values_of(name))  # the premise: HDF5 wrote the values
        with tables.open_file(path) as f:
            leaf = f.get_node("/" + name)
            assert tuple(s.id for s in stored_filters(leaf)) == case.ids
            assert decode_every_chunk(leaf, leaf_chain(leaf), expected, stored_dtype(leaf)) > 1


@pytest.mark.parametrize("case_name", list(CASES))
def test_chunks_we_encode_read_back_through_hdf5(case_file, case_name, tmp_path):
    case = CASES[case_name]
    with tables.open_file(case_file(case_name)) as f:
        filters = {name: leaf_chain(f.get_node("/" + name)).filters for name in case.arrays}
    decode_only = [FILTERS[i].name for i in case.ids if i not in ENCODED]
    if decode_only:
        for chain in filters.values():
            with pytest.raises(UnsupportedEncoderError, match=f"'{decode_only[0]}'"):
                encoding_chain(chain)
        return
    path = tmp_path / "encoded.h5"
    with open_for_writing(case, path) as f:
        for name in case.arrays:
            node = create_node(f, case, name)
            chain = encoding_chain(filters[name])
            _, chunks, _ = ARRAYS[name]
            for origin in chunk_origins(node.shape, chunks):
                encoded = chain.encode(padded_chunk(values_of(name), origin, chunks).tobytes())
                if case.writer == "tables":
                    node.write_chunk(origin, encoded)
                else:
                    node.id.write_direct_chunk(origin, encoded, filter_mask=0)
    for name in case.arrays:
        assert_array_equal(hdf5_read(case, path, name), values_of(name), err_msg=name)


def test_a_file_pytables_wrote_with_lzo_decodes():
    """Real PyTables LZO chunks (tests/data/make_pytables_lzo.py says how the file was made)."""
    expected = runpy.run_path(str(DATA / "make_pytables_lzo.py"))["values"]()
    with tables.open_file(DATA / "pytables_lzo.h5") as f:
        assert {s.id for leaf in f.root for s in stored_filters(leaf)} == {SHUFFLE, FLETCHER32, LZO}
        masks = [f.root.noise.chunk_info((o,)).filter_mask for o in range(0, 300, 64)]
        assert 1 in masks and 0 in masks, "chunks LZO could not shrink are stored raw"
    for name, (values, _) in expected.items():
        with diagnostics.collect() as stats:
            got = from_tables(DATA / "pytables_lzo.h5", "/" + name, chunks=150).compute(scheduler="threads")
        assert stats["direct_chunks"] > 0 and stats["pipeline_reads"] == 0, name
        if values.dtype.names:
            for field in values.dtype.names:
                assert_array_equal(got[field], values[field])
        else:
            assert_array_equal(got, values)


@pytest.mark.parametrize("case_name", [name for name, case in CASES.items() if case.writer == "tables"])
def test_every_pytables_filter_reads_through_from_tables_as_pytables_does(case_file, case_name):
    path = case_file(case_name)
    for name in CASES[case_name].arrays:
        expected = hdf5_read(CASES[case_name], path, name)
        x = from_tables(path, "/" + name, chunks=(50, *expected.shape[1:]))
        assert_array_equal(x.compute(scheduler="threads"), expected)


def test_lzf_without_imagecodecs_falls_back_to_the_python_decoder(tmp_path, monkeypatch):
    from dask_tables.filters import lzf

    path = tmp_path / "lzf.h5"
    data = np.arange(200) % 7.0
    with h5py.File(path, "w") as f:
        f.create_dataset("x", data=data, chunks=(64,), compression="lzf")
    with tables.open_file(path) as f:
        assert f.root.x.chunk_info((0,)).filter_mask == 0, "the chunk is stored compressed"
        stored = f.root.x.read_chunk((0,))
    chain = FilterChain([("lzf", (4, 261, 512))], 512)
    monkeypatch.setattr(lzf, "_lzf_library", lambda: None)
    assert_array_equal(np.frombuffer(chain.decode(stored), "f8"), data[:64])
    with pytest.raises(DecodeError, match="LZF"):
        chain.decode(stored[:-3])


# ---------------------------------------------------------------- Blosc2 frames made by python-blosc2


@pytest.mark.parametrize(
    ("chunks", "blocks"),
    [
        ((40, 30), (40, 30)),  # one block
        ((40, 30), (10, 30)),  # blocks span whole rows: decoded straight into out
        ((40, 30), (8, 10)),  # a grid of blocks: reordered
        ((40, 30), (16, 7)),  # blocks overhang the chunk: padded, then cropped
        ((6, 7, 8), (4, 3, 5)),  # three axes, padded on each
        ((1000,), (96,)),  # one axis, padded
    ],
)
@pytest.mark.parametrize("dtype", ["f8", "i2", "S3", "u1", "c16"])
def test_b2nd_blocks_are_put_in_c_order(chunks, blocks, dtype):
    values = array_values(chunks, dtype)
    frame = blosc2.asarray(values, chunks=chunks, blocks=blocks).to_cframe()
    chain = FilterChain([("blosc2", ())], values.nbytes)
    got = chain.decode(frame)
    assert_array_equal(
        np.frombuffer(np.ascontiguousarray(got).tobytes(), values.dtype).reshape(chunks), values
    )
    out = np.full(values.nbytes, 0xEE, dtype=np.uint8)
    assert chain.decode(frame, out=out) is out
    assert_array_equal(out.view(values.dtype).reshape(chunks), values)
    with pytest.raises(DecodeError):
        FilterChain([("blosc2", ())], values.nbytes + values.itemsize).decode(frame)


@pytest.mark.parametrize("chunksize", [4096, 1000, 80_000])
def test_a_plain_superchunk_of_several_chunks_decodes(chunksize):
    values = np.arange(10_000, dtype="f8")  # 80,000 bytes: the last chunk is shorter
    schunk = blosc2.SChunk(chunksize=chunksize, data=values, cparams={"typesize": 8})
    frame = schunk.to_cframe()
    assert schunk.nchunks == -(-values.nbytes // chunksize)
    chain = FilterChain([("blosc2", ())], values.nbytes)
    assert_array_equal(np.frombuffer(chain.decode(frame), "f8"), values)
    out = np.empty(values.nbytes, dtype=np.uint8)
    chain.decode(frame, out=out)
    assert_array_equal(out.view("f8"), values)


def test_a_b2nd_frame_of_several_chunks_decodes_through_python_blosc2():
    values = array_values((50, 40), "f8")
    frame = blosc2.asarray(values, chunks=(25, 40), blocks=(5, 40)).to_cframe()
    got = FilterChain([("blosc2", ())], values.nbytes).decode(frame)
    assert_array_equal(np.frombuffer(np.ascontiguousarray(got).tobytes(), "f8").reshape(50, 40), values)


@pytest.mark.parametrize("typesize", [1, 2, 4, 8, 16])
@pytest.mark.parametrize("codec", [blosc2.Codec.LZ4, blosc2.Codec.ZSTD, blosc2.Codec.BLOSCLZ])
def test_blosc_chunks_decode(typesize, codec):
    data = np.random.default_rng(typesize).integers(0, 8, 50_003, dtype=np.uint8).tobytes()
    chunk = blosc2.compress2(data, typesize=typesize, codec=codec, filters=[blosc2.Filter.SHUFFLE])
    chain = FilterChain([("blosc", ())], len(data))
    assert bytes(chain.decode(chunk)) == data
    out = np.empty(len(data), dtype=np.uint8)
    assert chain.decode(chunk, out=out) is out and out.tobytes() == data
    with pytest.raises(DecodeError, match="Blosc"):
        FilterChain([("blosc", ())], len(data) - 1).decode(chunk)


# ---------------------------------------------------------------- shuffle and Fletcher-32


def numpy_unshuffle(raw: bytes, size: int) -> bytes:
    """HDF5's unshuffle, written plainly: ``size`` byte streams, leftover bytes as they are."""
    data = np.frombuffer(raw, dtype=np.uint8)
    n = data.size // size
    body = data[: n * size].reshape(size, n).T.reshape(-1)
    return body.tobytes() + data[n * size :].tobytes()


@pytest.mark.parametrize("size", [1, 2, 3, 4, 7, 8, 16, 33, 256, 257, 1000])
@pytest.mark.parametrize("nbytes", [0, 1, 255, 4096, 10_007])
def test_unshuffle_equals_hdf5s_layout(size, nbytes):
    raw = np.random.default_rng(size + nbytes).integers(0, 256, nbytes, dtype=np.uint8).tobytes()
    expected = numpy_unshuffle(raw, size) if nbytes // size > 1 else raw
    assert bytes(Shuffle(size).decode(raw, nbytes)) == expected
    assert bytes(Shuffle(size).encode(expected)) == raw
    out = np.empty(nbytes, dtype=np.uint8)
    Shuffle(size).decode_into(raw, out)
    assert out.tobytes() == numpy_unshuffle(raw, size)


def hdf5_fletcher32(data: bytes) -> int:
    """``H5_checksum_fletcher32``, transcribed word by word from HDF5's C."""
    n, sum1, sum2, i = len(data) // 2, 0, 0, 0
    while n:
        block = min(n, 360)
        n -= block
        for _ in range(block):
            sum1 += (data[i] << 8) | data[i + 1]
            sum2 += sum1
            i += 2
        sum1 = (sum1 & 0xFFFF) + (sum1 >> 16)
        sum2 = (sum2 & 0xFFFF) + (sum2 >> 16)
    if len(data) % 2:
        sum1 += data[-1] << 8
        sum2 += sum1
        sum1 = (sum1 & 0xFFFF) + (sum1 >> 16)
        sum2 = (sum2 & 0xFFFF) + (sum2 >> 16)
    sum1 = (sum1 & 0xFFFF) + (sum1 >> 16)
    sum2 = (sum2 & 0xFFFF) + (sum2 >> 16)
    return (sum2 << 16) | sum1


@pytest.mark.parametrize("nbytes", [0, 1, 2, 3, 719, 720, 721, 1441, 65535 * 2 + 1, 140_001])
@pytest.mark.parametrize("fill", ["random", "high", "ff", "zero"])
def test_fletcher32_equals_hdf5s_loop(nbytes, fill):
    rng = np.random.default_rng(nbytes)
    data = {
        "random": lambda: rng.integers(0, 256, nbytes, dtype=np.uint8),
        "high": lambda: rng.integers(240, 256, nbytes, dtype=np.uint8),
        "ff": lambda: np.full(nbytes, 0xFF, dtype=np.uint8),
        "zero": lambda: np.zeros(nbytes, dtype=np.uint8),
    }[fill]().tobytes()
    assert fletcher32(data) == hdf5_fletcher32(data)


# ---------------------------------------------------------------- the C-Blosc2 binding


def test_the_binding_loads_from_the_blosc2_wheel():
    lib = libblosc2.library()
    assert libblosc2._candidates(), "python-blosc2's wheel ships libblosc2"
    assert lib is not None, "the shared C-Blosc2 of the wheel loads and passes its self-test"
    assert int(lib.version.split(".")[0]) == libblosc2.SUPPORTED_MAJOR


def test_the_struct_layouts_are_the_ones_checked_against_the_headers():
    assert ctypes.sizeof(libblosc2._DParams) == 40
    for (struct, field), offset in libblosc2._EXPECTED_OFFSETS.items():
        assert getattr(struct, field).offset == offset, (struct.__name__, field)


@pytest.mark.parametrize("case_name", ["blosc2:lz4+shuffle", "blosc2:zstd"])
@pytest.mark.parametrize("name", CASES["blosc2:zstd"].arrays)
def test_the_binding_reads_a_frame_as_python_blosc2_does(case_file, case_name, name):
    with tables.open_file(case_file(case_name)) as f:
        stored = bytes(f.get_node("/" + name).read_chunk((0,) * len(ARRAYS[name][0])))
    schunk = blosc2.schunk_from_cframe(stored, copy=True)
    with libblosc2.library().frame(stored) as frame:
        assert (frame.nbytes, frame.nchunks, frame.chunksize, frame.typesize) == (
            schunk.nbytes,
            schunk.nchunks,
            schunk.chunksize,
            schunk.typesize,
        )
        if "b2nd" in schunk.meta:
            array_ = blosc2.ndarray_from_cframe(stored, copy=True)
            assert (frame.b2nd.shape, frame.b2nd.chunkshape, frame.b2nd.blockshape) == (
                array_.shape,
                array_.chunks,
                array_.blocks,
            )
        else:
            assert frame.b2nd is None
        out = np.empty(frame.chunk_nbytes(0), dtype=np.uint8)
        frame.decompress_chunk(0, out)
        assert out.tobytes() == schunk.decompress_chunk(0)


def test_decoding_leaves_python_blosc2s_settings_alone(case_file):
    old_threads = blosc2.set_nthreads(3)
    old_gil = blosc2.set_releasegil(False)
    try:
        for case_name in ["blosc:lz4+shuffle", "blosc2:lz4+shuffle", "blosc2:zstd"]:
            path = case_file(case_name)
            for name in CASES[case_name].arrays:
                expected = hdf5_read(CASES[case_name], path, name)
                assert_array_equal(from_tables(path, "/" + name).compute(scheduler="threads"), expected)
        assert blosc2.nthreads == 3
        assert blosc2.set_releasegil(False) is False, "releasegil is still off"
    finally:
        blosc2.set_nthreads(old_threads)
        blosc2.set_releasegil(old_gil)


def test_without_the_binding_python_blosc2_decodes_the_same(case_file, monkeypatch):
    monkeypatch.setattr(libblosc2, "_LIBRARY", False)
    assert libblosc2.library() is None
    for case_name in ["blosc:zstd+shuffle", "blosc2:lz4+shuffle", "blosc2:zstd+bitshuffle", "zlib+shuffle"]:
        path = case_file(case_name)
        for name in CASES[case_name].arrays:
            expected = hdf5_read(CASES[case_name], path, name)
            with tables.open_file(path) as f:
                leaf = f.get_node("/" + name)
                assert decode_every_chunk(leaf, leaf_chain(leaf), expected, stored_dtype(leaf)) > 1


# ---------------------------------------------------------------- damaged input: DecodeError, never a crash

FUZZ_CHILD = """
import json, sys
import numpy as np, tables
from dask_tables.filters import DecodeError, FilterChain
from dask_tables.hdf5.storednode import stored_filters

rng = np.random.default_rng(0)
counts = {}
for path, node in json.loads(sys.argv[1]):
    with tables.open_file(path) as f:
        leaf = f.get_node(node)
        filters = [(s.name, s.params) for s in stored_filters(leaf)]
        chain = FilterChain(filters, int(np.prod(leaf.chunkshape)) * leaf.atom.dtype.itemsize)
        stored = bytes(leaf.read_chunk((0,) * leaf.ndim))
    cuts = {0, 1, 4, 11, 12, 15, 16, 31, 32, 64, len(stored) // 2, len(stored) - 1}
    variants = [stored[:n] for n in sorted(n for n in cuts if n < len(stored))]
    variants.append(stored + b"\\0" * 7)
    for _ in range(60):
        damaged = bytearray(stored)
        for where in rng.integers(0, len(stored), int(rng.integers(1, 4))):
            damaged[where] ^= int(rng.integers(1, 256))
        variants.append(bytes(damaged))
    # broken 12-byte headers (the LZ4 and bitshuffle framings): sizes past any chunk, a zero block
    for header in (b"\\xff" * 12, b"\\x00" * 8 + b"\\x00\\x00\\x00\\x01", b"\\x7f" + b"\\x00" * 11):
        variants.append(header + stored[12:])
    variants.append(rng.integers(0, 256, len(stored), dtype=np.uint8).tobytes())
    raised = wrong_size = 0
    for variant in variants:
        for out in (None, np.empty(chain.chunk_nbytes, dtype=np.uint8)):
            try:
                raw = chain.decode(variant, 0, out=out)
            except DecodeError:
                raised += 1
                continue
            size = raw.nbytes if isinstance(raw, np.ndarray) else memoryview(raw).nbytes
            wrong_size += size != chain.chunk_nbytes
    counts[path + ":" + node] = [raised, wrong_size, 2 * len(variants)]
print(json.dumps(counts))
"""

# case -> the fewest damaged variants (of about 150) that must raise.  szip has no checksum:
# flipped bits decode, to the right size, as HDF5 would decode them; only cut or lengthened
# chunks and broken headers must raise.
FUZZED = {
    **dict.fromkeys(
        [
            "zlib",
            "bzip2",
            "fletcher32",
            "zlib+shuffle+fletcher32",
            "blosc:lz4+shuffle",
            "blosc:zstd",
            "blosc:blosclz+shuffle",
            "blosc2:lz4+shuffle",
            "blosc2:zstd+bitshuffle",
            "blosc2:blosclz",
            "bitshuffle+lz4",
            "bitshuffle+lz4/blocks",
            "bitshuffle+zstd",
            "lz4",
            "lz4/blocks",
            "zstd",
            "lzf",
            "lzo",
        ],
        20,
    ),
    "szip:nn": 8,
}


def test_damaged_chunks_raise_decode_error_and_never_crash(case_file):
    nodes, least = [], {}
    for case_name, fewest in FUZZED.items():
        if missing_writer(case_name):
            continue
        path = str(case_file(case_name))
        arrays = [a for a in ("f8_2d", "i2_odd", "f8_blocks") if a in CASES[case_name].arrays]
        nodes += [(path, "/" + name) for name in arrays]
        least[path] = fewest
    counts = child_json(run_python(FUZZ_CHILD, json.dumps(nodes), timeout=600))
    assert len(counts) == len(nodes)
    for key, (raised, wrong_size, tried) in counts.items():
        path = key.rsplit(":", 1)[0]
        assert wrong_size == 0, f"{key}: a damaged chunk decoded to the wrong size"
        assert raised >= least[path], f"{key}: only {raised} of {tried} damaged chunks raised"


def test_the_old_pipeline_names_still_work_with_a_deprecation_warning():
    """Our filter chain was FilterPipeline ("pipeline" is HDF5's): the old names stay as warning aliases."""
    import dask_tables.filters as filters
    from dask_tables.filters import chain

    with pytest.warns(DeprecationWarning, match=r"dask_tables\.filters\.FilterChain"):
        assert filters.FilterPipeline is chain.FilterChain
    with pytest.warns(DeprecationWarning, match=r"filters\.chain\.encoding_chain"):
        from dask_tables.filters.pipeline import encoding_pipeline
    assert encoding_pipeline is chain.encoding_chain
    with pytest.warns(DeprecationWarning):
        assert filters.filter_pipeline is chain.filter_chain
    with pytest.raises(AttributeError):
        filters.NoSuchName  # noqa: B018


def test_a_filter_class_without_decode_into_is_refused_when_defined():
    """decode defaults to decode_into, the one a filter must write: a class with neither never recurses."""
    from dask_tables.filters.base import Filter

    with pytest.raises(TypeError, match="must define decode_into"):

        class OnlyEncodes(Filter):  # pragma: no cover - refused before any call
            id, name = 65000, "only-encodes"

            def encode(self, buf):
                return buf

    class Copies(Filter):
        id, name = 65001, "copies"

        def decode_into(self, buf, out):
            out[...] = np.frombuffer(buf, dtype=np.uint8)

    assert bytes(Copies().decode(b"abc", 3)) == b"abc"


def test_per_thread_buffers_share_one_policy_and_a_cap():
    from dask_tables.filters.buffers import SCRATCH_KEEP, scratch, step_scratch

    small = scratch(100, "test")
    assert np.shares_memory(small, scratch(50, "test"))
    assert not np.shares_memory(small, step_scratch(0, 100))
    big = scratch(SCRATCH_KEEP + 1, "test")
    assert big.nbytes == SCRATCH_KEEP + 1 and not np.shares_memory(big, scratch(SCRATCH_KEEP + 1, "test"))
