"""Whether the direct path reads a node, and if not, why.

:func:`direct_storage` decides: it describes a chunked node
(:class:`~dask_tables.hdf5.storednode.StoredNode`) where every filter has a
decoder, the stored type is what numpy reads, and the first chunk, decoded
by dask_tables, reads exactly as HDF5 reads it; ``None`` sends reads through
HDF5.  :func:`direct_read_reason` names the condition that failed, for
``dask-tables info`` and the errors about filters HDF5 lacks.
"""

from __future__ import annotations

import numpy as np
import tables

from ..filters import DecodeError, UnsupportedFilterError, filter_class
from ..hdf5.storednode import StoredNode, hdf5_can_apply, hdf5_reads_as, stored_filters
from ..hdf5.storedtypes import file_dtype, stored_as_read
from .direct import chunk_decoder

__all__ = ["direct_read_reason", "direct_storage"]

# What asking HDF5 about a node's first chunk, or decoding it, may raise: the direct path is then off.
_REFUSALS = (UnsupportedFilterError, tables.HDF5ExtError, tables.NotChunkedError, DecodeError)


def direct_storage(leaf: tables.Leaf) -> StoredNode | None:
    """How ``leaf`` is stored, where the direct path reads it; ``None`` where reads go through HDF5.

    ``None`` for a contiguous (or compact) node, a filter without a
    decoder, a record of both byte orders, a stored type HDF5 converts on
    read, and a first chunk that decodes otherwise than HDF5 reads it.
    Call with the file open and the process lock held.

    Examples
    --------
    >>> import numpy as np, tables
    >>> with tables.open_file("example.h5", "w") as f:
    ...     _ = f.create_array("/", "plain", obj=np.arange(4))
    ...     _ = f.create_carray("/", "zipped", obj=np.arange(4.0), chunkshape=(2,),
    ...                         filters=tables.Filters(complevel=1, complib="zlib"))
    >>> with tables.open_file("example.h5") as f:
    ...     direct_storage(f.root.plain), direct_storage(f.root.zipped).filters
    (None, (('shuffle', (8,)), ('deflate', (1,))))
    """
    if leaf.chunkshape is None:
        return None
    storage = StoredNode.of(leaf)
    if storage.memory is not None:
        return _records_laid_out_otherwise(leaf, storage)
    if leaf.byteorder not in ("little", "big", "irrelevant"):
        return None  # "mixed": members of both byte orders in one record
    try:
        chunk_decoder(storage)
        if stored_as_read(leaf) is False:
            return None  # HDF5 converts on read (12-bit integers, space-padded strings...)
        if all(storage.shape) and not _decodes_like_hdf5(leaf, storage):
            return None
    except _REFUSALS:
        return None
    return storage


def _records_laid_out_otherwise(leaf: tables.Table, storage: StoredNode) -> StoredNode | None:
    """A table whose stored records are not PyTables' (gaps, padding, mixed byte order).

    PyTables' own read of such a table may corrupt memory
    (``nested-type-with-gaps.h5`` in PyTables' tests), so it is never
    called: the chunks are decoded as the file's type says and repacked
    into PyTables' record.  The first stored chunk must decode to the
    stored size.
    """
    origin = storage.first_chunk
    try:
        if all(storage.shape) and leaf.chunk_info(origin).offset is not None:
            info = leaf.chunk_info(origin)
            chunk_decoder(storage).decode(leaf.read_chunk(origin), int(info.filter_mask))
    except _REFUSALS:
        return None
    return storage


def _decodes_like_hdf5(leaf: tables.Leaf, storage: StoredNode) -> bool:
    """Decode the first chunk and compare it with PyTables' read of the same region.

    HDF5 may store a record with another layout than the one PyTables
    shows (member order, padding, byte order per member): the direct
    path is used only where its first chunk reads exactly as PyTables
    reads it.  Also fails (HDF5ExtError) where HDF5 says the node is not
    chunked after all.
    """
    assert storage.chunkshape is not None
    origin = storage.first_chunk
    info = leaf.chunk_info(origin)
    if info.offset is None:
        return not isinstance(leaf, tables.Table)  # an array's atom says it all
    raw = leaf.read_chunk(origin)
    decoded = np.frombuffer(
        chunk_decoder(storage).decode(raw, int(info.filter_mask)), dtype=storage.dtype_on_disk
    )
    chunk = decoded.reshape(storage.chunkshape + storage.cell_shape)
    agrees = hdf5_reads_as(leaf, storage, chunk[storage.first_region])
    if agrees is None:
        # PyTables lacks one of the filters (LZF, hdf5plugin's): nothing to compare
        # with.  An array's atom describes its elements fully; a table's records do
        # where the file's own record type is exactly the layout decoded.
        return not isinstance(leaf, tables.Table) or file_dtype(leaf) == storage.dtype_on_disk
    return agrees


def _undecoded_filter_reason(leaf: tables.Leaf) -> str | None:
    """The first filter of ``leaf`` without a decoder, by id and name, and whether HDF5 has it."""
    for stored in stored_filters(leaf):
        if filter_class(stored.name) is not None:
            continue
        which = f"no decoder for HDF5 filter {stored.id} {stored.name!r}"
        if hdf5_can_apply(stored.id):
            return f"{which} (HDF5 applies it: read through HDF5)"
        return f"{which}, and PyTables' HDF5 lacks it too: it cannot be read"
    return None


def direct_read_reason(leaf: tables.Leaf) -> str | None:
    """Why dask_tables reads ``leaf`` through HDF5 rather than directly; ``None`` if it reads directly.

    Call it with the file open (and the registry lock held: it calls into HDF5).

    Examples
    --------
    >>> import numpy as np, tables
    >>> with tables.open_file("example.h5", "w") as f:
    ...     _ = f.create_array("/", "plain", obj=np.arange(4))
    ...     _ = f.create_carray("/", "chunked", obj=np.arange(4), chunkshape=(2,))
    >>> with tables.open_file("example.h5") as f:
    ...     direct_read_reason(f.root.plain), direct_read_reason(f.root.chunked)
    ('contiguous (not chunked)', None)

    Considerations
    --------------
    The verdict is :func:`direct_storage`'s; the reason re-checks its
    conditions in its order, so a new condition there shows here as the
    last, generic reason until it is named.
    """
    if leaf.chunkshape is None:
        return "contiguous (not chunked)"
    if direct_storage(leaf) is not None:
        return None
    undecoded = _undecoded_filter_reason(leaf)
    if undecoded is not None:
        return undecoded
    try:
        chunk_decoder(StoredNode.of(leaf))
    except UnsupportedFilterError as err:
        return str(err)
    if leaf.byteorder not in ("little", "big", "irrelevant"):
        return "mixed byte order: members of both byte orders in one record"
    if stored_as_read(leaf) is False:
        return (
            "HDF5 converts on read: the stored type is not numpy's (e.g. 12-bit integers; "
            "space-padded strings, whose spaces PyTables keeps and h5py strips), "
            "or partial edge chunks are stored unfiltered"
        )
    try:
        leaf.chunk_info((0,) * len(leaf.shape))
    except (tables.HDF5ExtError, tables.NotChunkedError) as err:
        return f"HDF5 cannot report where its chunks are: {err}"
    except DecodeError as err:  # pragma: no cover - chunk_info does not decode
        return f"its first chunk does not decode: {err}"
    return "its first chunk, decoded directly, differs from what PyTables reads (record layout)"
