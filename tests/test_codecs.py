"""Every decoder of the direct path, through its GIL-free route, equals PyTables' (or h5py's) reads.

Each filter combination PyTables writes (zlib, Blosc and Blosc2 with each of
their codecs, bzip2, shuffle and bitshuffle, Fletcher-32) and LZF, which
h5py writes, is decoded chunk by chunk through :class:`FilterPipeline` (with
and without ``out=``) and whole through ``from_tables``; damaged chunks raise
:class:`DecodeError` in a child process that must not crash; decoding leaves
python-blosc2's process-wide settings alone.
"""

from __future__ import annotations

import ctypes
import itertools
import json

import blosc2
import numpy as np
import pytest
import tables
from helpers import run_python
from numpy.testing import assert_array_equal

from dask_tables import from_tables
from dask_tables.array.direct import chunk_decoder
from dask_tables.array.verdict import direct_storage
from dask_tables.filters import libblosc2
from dask_tables.filters.codecs import DecodeError, FilterPipeline, Shuffle, fletcher32

CODECS = ["blosclz", "lz4", "lz4hc", "zlib", "zstd"]

FILTERS = {
    "zlib": tables.Filters(complevel=1, complib="zlib"),
    "zlib+shuffle": tables.Filters(complevel=6, complib="zlib", shuffle=True),
    "bzip2": tables.Filters(complevel=5, complib="bzip2"),
    "fletcher32": tables.Filters(fletcher32=True),
    "zlib+shuffle+fletcher32": tables.Filters(complevel=1, complib="zlib", shuffle=True, fletcher32=True),
    **{f"blosc:{c}": tables.Filters(complevel=5, complib=f"blosc:{c}", shuffle=False) for c in CODECS},
    **{f"blosc:{c}+shuffle": tables.Filters(complevel=5, complib=f"blosc:{c}", shuffle=True) for c in CODECS},
    "blosc:lz4+bitshuffle": tables.Filters(complevel=5, complib="blosc:lz4", bitshuffle=True),
    **{f"blosc2:{c}": tables.Filters(complevel=5, complib=f"blosc2:{c}", shuffle=False) for c in CODECS},
    **{
        f"blosc2:{c}+shuffle": tables.Filters(complevel=5, complib=f"blosc2:{c}", shuffle=True)
        for c in CODECS
    },
    "blosc2:zstd+bitshuffle": tables.Filters(complevel=5, complib="blosc2:zstd", bitshuffle=True),
}

# shape, chunkshape, dtype: edge chunks, an odd item size, and blocks that do not span rows
# (PyTables gives a (64, 4096) float64 Blosc2 chunk blocks of (64, 1024))
ARRAYS = {
    "f8_2d": ((150, 70), (64, 32), "f8"),
    "i2_1d": ((10_001,), (4096,), "i2"),
    "f8_blocks": ((128, 8192), (64, 4096), "f8"),
    "S3_1d": ((999,), (200,), "S3"),
}


def array_values(shape, dtype, seed=0):
    """Smooth values plus noise: every codec really compresses them."""
    rng = np.random.default_rng(seed)
    n = int(np.prod(shape))
    if np.dtype(dtype).kind == "S":
        return np.array([f"{v % 1000:03d}".encode() for v in range(n)], dtype=dtype).reshape(shape)
    smooth = np.sin(np.linspace(0, 20, n)) * 100 + rng.normal(0, 1, n)
    return smooth.astype(dtype).reshape(shape)


@pytest.fixture(scope="module")
def codec_file(tmp_path_factory):
    """One CArray per filter combination and array kind."""
    path = tmp_path_factory.mktemp("codecs") / "codecs.h5"
    with tables.open_file(path, "w") as f:
        for name, filters in FILTERS.items():
            group = f.create_group("/", name.replace(":", "_").replace("+", "_"))
            for array, (shape, chunkshape, dtype) in ARRAYS.items():
                f.create_carray(
                    group, array, obj=array_values(shape, dtype), chunkshape=chunkshape, filters=filters
                )
    return path


def node_of(filter_name, array):
    return f"/{filter_name.replace(':', '_').replace('+', '_')}/{array}"


def chunk_origins(leaf):
    return itertools.product(*(range(0, s, c) for s, c in zip(leaf.shape, leaf.chunkshape, strict=True)))


def decode_every_chunk(leaf, layout):
    """Each chunk decoded from its stored bytes (with and without out=) against PyTables' read of it."""
    pipeline = chunk_decoder(layout)
    chunk_shape = layout.chunkshape
    checked = 0
    for origin in chunk_origins(leaf):
        info = leaf.chunk_info(origin)
        stored = leaf.read_chunk(origin)
        region = tuple(
            slice(o, min(o + c, s)) for o, c, s in zip(origin, chunk_shape, leaf.shape, strict=True)
        )
        local = tuple(slice(0, r.stop - r.start) for r in region)
        expected = leaf[region]
        for out in (None, np.empty(pipeline.chunk_nbytes, dtype=np.uint8)):
            for buf in (
                bytes(stored),
                bytearray(stored),
                memoryview(stored),
                np.frombuffer(stored, np.uint8),
            ):
                raw = pipeline.decode(buf, int(info.filter_mask), out=out)
                data = np.ascontiguousarray(raw).view(np.uint8) if isinstance(raw, np.ndarray) else raw
                chunk = np.frombuffer(data, dtype=layout.stored).reshape(chunk_shape)
                assert_array_equal(chunk[local], expected)
                steps = pipeline._steps_for(int(info.filter_mask))  # none: a chunk HDF5 stored unfiltered
                if out is not None and steps and hasattr(steps[-1][0], "decode_into"):
                    assert raw is out, "the last step writes into out"
        checked += 1
    return checked


@pytest.mark.parametrize("filter_name", list(FILTERS))
def test_every_codec_decodes_each_chunk_as_pytables_reads_it(codec_file, filter_name):
    with tables.open_file(codec_file) as f:
        for array in ARRAYS:
            leaf = f.get_node(node_of(filter_name, array))
            layout = direct_storage(leaf)
            assert layout is not None, f"{filter_name} {array} must take the direct path"
            assert decode_every_chunk(leaf, layout) > 1


@pytest.mark.parametrize("filter_name", list(FILTERS))
def test_every_codec_reads_through_from_tables_as_pytables_does(codec_file, filter_name):
    for array in ARRAYS:
        node = node_of(filter_name, array)
        with tables.open_file(codec_file) as f:
            expected = f.get_node(node).read()
        x = from_tables(codec_file, node, chunks=(50, *expected.shape[1:]))
        assert_array_equal(x.compute(scheduler="threads"), expected)


@pytest.mark.parametrize(
    "options",
    [{}, {"shuffle": True}, {"fletcher32": True}, {"shuffle": True, "fletcher32": True}],
    ids=["lzf", "lzf+shuffle", "lzf+fletcher32", "lzf+shuffle+fletcher32"],
)
def test_lzf_decodes_as_h5py_reads_it(tmp_path, options):
    h5py = pytest.importorskip("h5py")
    path = tmp_path / "lzf.h5"
    data = array_values((300, 70), "f8")
    with h5py.File(path, "w") as f:
        f.create_dataset("x", data=data, chunks=(64, 32), compression="lzf", **options)
    with h5py.File(path) as f:
        expected = f["x"][...]
    assert_array_equal(from_tables(path, "/x").compute(scheduler="threads"), expected)
    with tables.open_file(path) as f:
        leaf = f.root.x
        layout = direct_storage(leaf)
        assert layout is not None and "lzf" in dict(layout.filters)
        pipeline = chunk_decoder(layout)
        for origin in chunk_origins(leaf):
            info = leaf.chunk_info(origin)
            raw = pipeline.decode(leaf.read_chunk(origin), int(info.filter_mask))
            chunk = np.frombuffer(raw, dtype="f8").reshape(64, 32)
            region = tuple(slice(o, o + c) for o, c in zip(origin, (64, 32), strict=True))
            want = expected[region]
            assert_array_equal(chunk[: want.shape[0], : want.shape[1]], want)


def test_lzf_without_imagecodecs_falls_back_to_the_python_decoder(tmp_path, monkeypatch):
    h5py = pytest.importorskip("h5py")
    from dask_tables.filters import codecs

    path = tmp_path / "lzf.h5"
    data = np.arange(200) % 7.0
    with h5py.File(path, "w") as f:
        f.create_dataset("x", data=data, chunks=(64,), compression="lzf")
    with tables.open_file(path) as f:
        assert f.root.x.chunk_info((0,)).filter_mask == 0, "the chunk is stored compressed"
        stored = f.root.x.read_chunk((0,))
    lzf = FilterPipeline([("lzf", (4, 261, 512))], 512)
    monkeypatch.setattr(codecs, "_lzf_library", lambda: None)
    assert_array_equal(np.frombuffer(lzf.decode(stored), "f8"), data[:64])
    with pytest.raises(DecodeError, match="LZF"):
        lzf.decode(stored[:-3])


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
    values = array_values(chunks, dtype, seed=3)
    frame = blosc2.asarray(values, chunks=chunks, blocks=blocks).to_cframe()
    pipeline = FilterPipeline([("blosc2", ())], values.nbytes)
    got = pipeline.decode(frame)
    assert_array_equal(
        np.frombuffer(np.ascontiguousarray(got).tobytes(), values.dtype).reshape(chunks), values
    )
    out = np.full(values.nbytes, 0xEE, dtype=np.uint8)
    assert pipeline.decode(frame, out=out) is out
    assert_array_equal(out.view(values.dtype).reshape(chunks), values)
    with pytest.raises(DecodeError):
        FilterPipeline([("blosc2", ())], values.nbytes + values.itemsize).decode(frame)


@pytest.mark.parametrize("chunksize", [4096, 1000, 80_000])
def test_a_plain_superchunk_of_several_chunks_decodes(chunksize):
    values = np.arange(10_000, dtype="f8")  # 80,000 bytes: the last chunk is shorter
    schunk = blosc2.SChunk(chunksize=chunksize, data=values, cparams={"typesize": 8})
    frame = schunk.to_cframe()
    assert schunk.nchunks == -(-values.nbytes // chunksize)
    pipeline = FilterPipeline([("blosc2", ())], values.nbytes)
    assert_array_equal(np.frombuffer(pipeline.decode(frame), "f8"), values)
    out = np.empty(values.nbytes, dtype=np.uint8)
    pipeline.decode(frame, out=out)
    assert_array_equal(out.view("f8"), values)


def test_a_b2nd_frame_of_several_chunks_decodes_through_python_blosc2():
    values = array_values((50, 40), "f8")
    frame = blosc2.asarray(values, chunks=(25, 40), blocks=(5, 40)).to_cframe()
    got = FilterPipeline([("blosc2", ())], values.nbytes).decode(frame)
    assert_array_equal(np.frombuffer(np.ascontiguousarray(got).tobytes(), "f8").reshape(50, 40), values)


@pytest.mark.parametrize("typesize", [1, 2, 4, 8, 16])
@pytest.mark.parametrize("codec", [blosc2.Codec.LZ4, blosc2.Codec.ZSTD, blosc2.Codec.BLOSCLZ])
def test_blosc_chunks_decode(typesize, codec):
    data = np.random.default_rng(typesize).integers(0, 8, 50_003, dtype=np.uint8).tobytes()
    chunk = blosc2.compress2(data, typesize=typesize, codec=codec, filters=[blosc2.Filter.SHUFFLE])
    pipeline = FilterPipeline([("blosc", ())], len(data))
    assert bytes(pipeline.decode(chunk)) == data
    out = np.empty(len(data), dtype=np.uint8)
    assert pipeline.decode(chunk, out=out) is out and out.tobytes() == data
    with pytest.raises(DecodeError, match="Blosc"):
        FilterPipeline([("blosc", ())], len(data) - 1).decode(chunk)


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


@pytest.mark.parametrize("filter_name", ["blosc2:lz4+shuffle", "blosc2:zstd"])
@pytest.mark.parametrize("array", list(ARRAYS))
def test_the_binding_reads_a_frame_as_python_blosc2_does(codec_file, filter_name, array):
    with tables.open_file(codec_file) as f:
        stored = bytes(f.get_node(node_of(filter_name, array)).read_chunk((0,) * len(ARRAYS[array][0])))
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


def test_decoding_leaves_python_blosc2s_settings_alone(codec_file):
    old_threads = blosc2.set_nthreads(3)
    old_gil = blosc2.set_releasegil(False)
    try:
        for name in ["blosc:lz4+shuffle", "blosc2:lz4+shuffle", "blosc2:zstd"]:
            for array in ARRAYS:
                node = node_of(name, array)
                with tables.open_file(codec_file) as f:
                    expected = f.get_node(node).read()
                assert_array_equal(from_tables(codec_file, node).compute(scheduler="threads"), expected)
        assert blosc2.nthreads == 3
        assert blosc2.set_releasegil(False) is False, "releasegil is still off"
    finally:
        blosc2.set_nthreads(old_threads)
        blosc2.set_releasegil(old_gil)


def test_without_the_binding_python_blosc2_decodes_the_same(codec_file, monkeypatch):
    monkeypatch.setattr(libblosc2, "_LIBRARY", False)
    assert libblosc2.library() is None
    with tables.open_file(codec_file) as f:
        for name in ["blosc:zstd+shuffle", "blosc2:lz4+shuffle", "blosc2:zstd+bitshuffle", "zlib+shuffle"]:
            for array in ARRAYS:
                leaf = f.get_node(node_of(name, array))
                assert decode_every_chunk(leaf, direct_storage(leaf)) > 1


# ---------------------------------------------------------------- damaged input: DecodeError, never a crash

DAMAGED_CHILD = """
import json, sys
import numpy as np, tables
from dask_tables.filters.codecs import DecodeError
from dask_tables.array.direct import chunk_decoder
from dask_tables.array.verdict import direct_storage

path, names = sys.argv[1], sys.argv[2].split(",")
rng = np.random.default_rng(0)
counts = {}
for name in names:
    with tables.open_file(path) as f:
        leaf = f.get_node(name)
        layout = direct_storage(leaf)
        stored = bytes(leaf.read_chunk((0,) * leaf.ndim))
        expected = np.ascontiguousarray(leaf[tuple(slice(0, c) for c in leaf.chunkshape)]).tobytes()
    pipeline = chunk_decoder(layout)
    variants = [stored[:n] for n in sorted({0, 1, 4, 15, 16, 31, 32, 64, len(stored) // 2, len(stored) - 1})]
    variants.append(stored + b"\\0" * 7)
    for _ in range(60):
        damaged = bytearray(stored)
        for where in rng.integers(0, len(stored), int(rng.integers(1, 4))):
            damaged[where] ^= int(rng.integers(1, 256))
        variants.append(bytes(damaged))
    variants.append(rng.integers(0, 256, len(stored), dtype=np.uint8).tobytes())
    raised = wrong_size = 0
    for variant in variants:
        for out in (None, np.empty(pipeline.chunk_nbytes, dtype=np.uint8)):
            try:
                raw = pipeline.decode(variant, 0, out=out)
            except DecodeError:
                raised += 1
                continue
            size = raw.nbytes if isinstance(raw, np.ndarray) else memoryview(raw).nbytes
            wrong_size += size != pipeline.chunk_nbytes
    counts[name] = [raised, wrong_size, 2 * len(variants)]
print(json.dumps(counts))
"""

DAMAGEABLE = [
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
]


def test_damaged_chunks_raise_decode_error_and_never_crash(codec_file, tmp_path):
    names = [node_of(name, array) for name in DAMAGEABLE for array in ("f8_2d", "f8_blocks", "i2_1d")]
    script = tmp_path / "damaged.py"
    script.write_text(DAMAGED_CHILD)
    done = run_python(
        f"import runpy, sys; sys.argv = ['x', {str(codec_file)!r}, {','.join(names)!r}]; "
        f"runpy.run_path({str(script)!r})",
        timeout=300,
    )
    assert done.returncode == 0, f"crashed ({done.returncode}): {done.stderr[-3000:]}"
    counts = json.loads(done.stdout.strip().splitlines()[-1])
    for name, (raised, wrong_size, tried) in counts.items():
        assert wrong_size == 0, f"{name}: a damaged chunk decoded to the wrong size"
        assert raised >= 20, f"{name}: only {raised} of {tried} damaged chunks raised"


def test_damaged_lzf_raises_decode_error_and_never_crashes(tmp_path):
    h5py = pytest.importorskip("h5py")
    path = tmp_path / "lzf.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("x", data=array_values((4096,), "f8"), chunks=(1024,), compression="lzf")
    done = run_python(
        f"""
        import numpy as np, tables
        from dask_tables.filters.codecs import DecodeError
        from dask_tables.array.direct import chunk_decoder
        from dask_tables.array.verdict import direct_storage
        with tables.open_file({str(path)!r}) as f:
            pipeline = chunk_decoder(direct_storage(f.root.x))
            stored = bytes(f.root.x.read_chunk((0,)))
        rng = np.random.default_rng(1)
        raised = 0
        variants = [stored[:n] for n in (0, 1, 2, 100, len(stored) - 1)]
        for _ in range(100):
            damaged = bytearray(stored)
            damaged[int(rng.integers(0, len(stored)))] ^= 0xFF
            variants.append(bytes(damaged))
        for variant in variants:
            try:
                raw = pipeline.decode(variant)
                assert memoryview(raw).nbytes == pipeline.chunk_nbytes
            except DecodeError:
                raised += 1
        print(raised)
        """,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert int(done.stdout.split()[-1]) >= 5
