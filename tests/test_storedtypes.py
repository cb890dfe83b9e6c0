"""The stored type of a node: one walker answers "what dtype" and "stored as read?", and old names still work.

Each stored HDF5 type is built by hand with h5py's low-level API (PyTables
writes few of them), in a real file, then walked through PyTables' own HDF5.
"""

from __future__ import annotations

import importlib
import warnings

import numpy as np
import pytest
import tables

from dask_tables.hdf5.libhdf5 import library
from dask_tables.hdf5.storednode import StoredNode, hdf5_can_apply, stored_filters
from dask_tables.hdf5.storedtypes import StoredType, file_dtype, stored_as_read, walk

h5py = pytest.importorskip("h5py")
h5t = h5py.h5t


def _twelve_bits():
    t = h5t.STD_I16LE.copy()
    t.set_precision(12)
    return t


def _string(size, pad):
    t = h5t.C_S1.copy()
    t.set_size(size)
    t.set_strpad(pad)
    return t


def _odd_float():
    """32 bits, IEEE's size and sign, another split of exponent and mantissa: not numpy's f4."""
    t = h5t.IEEE_F32LE.copy()
    t.set_fields(31, 22, 9, 0, 22)
    return t


def _compound(*members, size):
    t = h5t.create(h5t.COMPOUND, size)
    for name, offset, member in members:
        t.insert(name.encode(), offset, member)
    return t


def _array(base, dims):
    return h5t.array_create(base, dims)


def _enum():
    t = h5t.enum_create(h5t.STD_I8LE)
    t.enum_insert(b"FALSE", 0)
    t.enum_insert(b"TRUE", 1)
    return t


GAPS = np.dtype({"names": ["a", "x"], "formats": ["<i4", ">f8"], "offsets": [0, 8], "itemsize": 20})

# name -> (HDF5 type builder, (dtype, stored as read))
CASES = {
    "int32": (lambda: h5t.STD_I32LE, (np.dtype("<i4"), True)),
    "float64be": (lambda: h5t.IEEE_F64BE, (np.dtype(">f8"), True)),
    "uint16be": (lambda: h5t.STD_U16BE, (np.dtype(">u2"), True)),
    "twelve_bits": (_twelve_bits, (None, False)),
    "bitfield": (lambda: h5t.STD_B8LE, (None, True)),
    "odd_float": (_odd_float, (np.dtype("<f4"), False)),
    "nullterm": (lambda: _string(5, h5t.STR_NULLTERM), (np.dtype("S5"), True)),
    "nullpad": (lambda: _string(5, h5t.STR_NULLPAD), (np.dtype("S5"), True)),
    "spacepad": (lambda: _string(5, h5t.STR_SPACEPAD), (None, False)),
    "vlen_text": (lambda: h5t.py_create(h5py.string_dtype(), logical=True), (None, False)),
    "enum": (_enum, (np.dtype("i1"), True)),
    "array": (lambda: _array(h5t.STD_I16LE, (2, 3)), (np.dtype(("<i2", (2, 3))), True)),
    "gaps": (
        lambda: _compound(("a", 0, h5t.STD_I32LE), ("x", 8, h5t.IEEE_F64BE), size=20),
        (GAPS, True),
    ),
    "with_twelve_bits": (
        lambda: _compound(("a", 0, h5t.STD_I32LE), ("b", 4, _twelve_bits()), size=6),
        (None, False),
    ),
    "with_bitfield": (
        lambda: _compound(("a", 0, h5t.STD_I32LE), ("b", 4, h5t.STD_B8LE), size=5),
        (None, True),
    ),
    "array_of_bitfields": (lambda: _array(h5t.STD_B8LE, (4,)), (None, True)),
    "reference": (lambda: h5t.STD_REF_OBJ, (None, False)),
}


@pytest.fixture(scope="module")
def typed_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("types") / "types.h5"
    with h5py.File(path, "w") as f:
        for name, (build, _) in CASES.items():
            plist = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
            plist.set_chunk((2,))
            h5py.h5d.create(f.id, name.encode(), build(), h5py.h5s.create_simple((4,)), dcpl=plist)
    return path


def _walk_dataset(f: tables.File, name: str) -> StoredType:
    lib = library()
    dataset = lib.H5Dopen2(f.root._v_objectid, name.encode(), 0)
    assert dataset >= 0
    try:
        type_id = lib.H5Dget_type(dataset)
        try:
            return walk(lib, type_id)
        finally:
            lib.H5Tclose(type_id)
    finally:
        lib.H5Dclose(dataset)


def test_one_walk_gives_the_dtype_and_whether_stored_as_read(typed_file):
    """Both answers, for every kind of stored type; where they part (bit fields, odd floats) on purpose."""
    with tables.open_file(typed_file) as f:
        found = {name: _walk_dataset(f, name) for name in CASES}
    expected = {name: StoredType(*answer) for name, (_, answer) in CASES.items()}
    assert found == expected


def test_a_node_asks_the_same_walker(typed_file):
    """file_dtype and stored_as_read of a leaf are the walker's two answers for its stored type."""
    with tables.open_file(typed_file) as f, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PyTables warns about the types it cannot load
        for name in ("int32", "twelve_bits", "spacepad", "gaps", "odd_float"):
            leaf = f.get_node("/" + name)
            dtype, as_read = CASES[name][1]
            assert file_dtype(leaf) == dtype, name
            assert stored_as_read(leaf) is as_read, name


def test_stored_node_reads_its_filters_by_id(tmp_path):
    """StoredNode.of(leaf) reads the filters itself: what stored_node(leaf) did."""
    path = tmp_path / "x.h5"
    with tables.open_file(path, "w") as f:
        x = f.create_carray(
            "/", "x", obj=np.arange(8.0), chunkshape=(4,), filters=tables.Filters(1, "zlib", fletcher32=True)
        )
        storage = StoredNode.of(x)
        assert storage.filters == tuple((s.name, s.params) for s in stored_filters(x))
        assert [name for name, _ in storage.filters] == ["shuffle", "deflate", "fletcher32"]
        assert storage.dtype_on_disk == np.dtype("<f8") and hdf5_can_apply(1)
        assert StoredNode.of(f.create_array("/", "plain", obj=np.arange(3))).filters == ()


RENAMED = [
    ("dask_tables.hdf5.calls", "file_dtype", "dask_tables.hdf5.storedtypes", "file_dtype"),
    ("dask_tables.filters.stored", "StoredFilter", "dask_tables.hdf5.storednode", "StoredFilter"),
    ("dask_tables.filters.stored", "stored_filters", "dask_tables.hdf5.storednode", "stored_filters"),
    ("dask_tables.filters.stored", "hdf5_can_apply", "dask_tables.hdf5.storednode", "hdf5_can_apply"),
    ("dask_tables.filters", "StoredFilter", "dask_tables.hdf5.storednode", "StoredFilter"),
    ("dask_tables.filters", "stored_filters", "dask_tables.hdf5.storednode", "stored_filters"),
    ("dask_tables.filters", "hdf5_can_apply", "dask_tables.hdf5.storednode", "hdf5_can_apply"),
]


@pytest.mark.parametrize(("old_module", "old", "new_module", "new"), RENAMED)
def test_the_old_names_still_work_with_a_deprecation_warning(old_module, old, new_module, new):
    module = importlib.import_module(old_module)
    with pytest.warns(
        DeprecationWarning, match=rf"{old_module}\.{old} is deprecated: use {new_module}\.{new}"
    ):
        value = getattr(module, old)
    assert value is getattr(importlib.import_module(new_module), new)


@pytest.mark.parametrize("old_module", ["dask_tables.filters", "dask_tables.filters.stored"])
def test_stored_node_is_now_storednode_of(old_module, tmp_path):
    module = importlib.import_module(old_module)
    with pytest.warns(DeprecationWarning, match=r"use dask_tables\.hdf5\.storednode\.StoredNode\.of"):
        stored_node = module.stored_node
    with tables.open_file(tmp_path / "x.h5", "w") as f:
        x = f.create_carray("/", "x", obj=np.arange(8), chunkshape=(4,), filters=tables.Filters(1))
        assert stored_node(x) == StoredNode.of(x)


def test_storednode_stored_is_dtype_on_disk_with_a_deprecation_warning():
    storage = StoredNode(shape=(3,), chunkshape=(2,), dtype_on_disk=np.dtype(">i4"))
    with pytest.warns(
        DeprecationWarning, match=r"StoredNode\.stored is deprecated: use StoredNode\.dtype_on_disk"
    ):
        assert storage.stored == np.dtype(">i4")
