"""``from_tables``: dask arrays over PyTables nodes."""

from __future__ import annotations

from numbers import Integral
from typing import Any

import dask.array as da
import numpy as np
from dask.array.core import normalize_chunks
from dask.base import tokenize

from ..errors import NotHDF5FileError, at_node
from ..hdf5.paths import PathSpec
from ..remote.locations import expand_locations
from ..remote.shadow import metadata_path
from ..remote.urls import display_url, is_url
from .concat import concatenated_graph
from .source import TablesSource
from .validate import probe_files

__all__ = ["from_tables"]

Chunks = Any  # what dask.array.core.normalize_chunks accepts


def _auto_axes(chunks: Chunks, ndim: int) -> set[int]:
    """The axes whose block size the user left to "auto"."""
    if chunks == "auto":
        return set(range(ndim))
    if isinstance(chunks, dict):
        return {int(axis) % ndim for axis, c in chunks.items() if c == "auto"} if ndim else set()
    if isinstance(chunks, (tuple, list)):
        return {axis for axis, c in enumerate(chunks) if isinstance(c, str) and c == "auto"}
    return set()


def _whole_hdf5_chunks(blocks: tuple[int, ...], length: int, chunk: int) -> tuple[int, ...]:
    """Blocks of a multiple of ``chunk`` (at least one chunk), near the size dask chose."""
    if not blocks or length == 0:
        return blocks
    size = max(chunk, blocks[0] // chunk * chunk)
    if all(b == size for b in blocks[:-1]) and blocks[-1] <= size:
        return blocks
    return normalize_chunks((size,), (length,))[0]


def _sizing_dtype(source: TablesSource) -> np.dtype:
    """What one element costs to read: a table column is read as whole records."""
    if source.row_nbytes is None:
        return source.dtype
    cells = int(np.prod(source.shape[1:], dtype=np.int64)) or 1
    return np.dtype(f"V{max(1, source.row_nbytes // cells)}")


def _bad_block_sizes(chunks: Chunks) -> list[int]:
    """The block sizes in ``chunks`` that are neither positive nor -1 (a whole axis).

    Explicit blocks (a tuple per axis) are checked later, against the axis length.

    Examples
    --------
    >>> _bad_block_sizes(-5), _bad_block_sizes((10, 0)), _bad_block_sizes({1: -2}), _bad_block_sizes(-1)
    ([-5], [0], [-2], [])
    """
    if isinstance(chunks, dict):
        values = list(chunks.values())
    elif isinstance(chunks, (tuple, list)):
        values = list(chunks)
    else:
        values = [chunks]
    return [
        int(v) for v in values if isinstance(v, Integral) and not isinstance(v, bool) and (v == 0 or v < -1)
    ]


def _normalize_chunks(source: TablesSource, chunks: Chunks) -> tuple[tuple[int, ...], ...]:
    at = at_node(source.path, source.node)
    if isinstance(chunks, (tuple, list)) and len(chunks) != source.ndim:
        raise ValueError(f"{at}: chunks={chunks!r} give {len(chunks)} axes for shape {source.shape}")
    bad = _bad_block_sizes(chunks)
    if bad:
        raise ValueError(
            f"{at}: chunks={chunks!r}: block size {bad[0]} is not allowed; a block size is a "
            "positive number of elements, or -1 (or None) for a whole axis"
        )
    try:
        normalized = list(
            normalize_chunks(
                chunks, source.shape, dtype=_sizing_dtype(source), previous_chunks=source.chunkshape
            )
        )
    except (ValueError, TypeError, NotImplementedError, ZeroDivisionError) as err:
        raise ValueError(f"{at}: chunks={chunks!r} do not fit shape {source.shape}: {err}") from None
    if source.chunkshape is not None:
        # dask's "auto" may cut an HDF5 chunk larger than array.chunk-size in two.
        for axis in _auto_axes(chunks, source.ndim):
            normalized[axis] = _whole_hdf5_chunks(
                normalized[axis], source.shape[axis], source.chunkshape[axis]
            )
    for axis, (blocks, length) in enumerate(zip(normalized, source.shape, strict=True)):
        if sum(blocks) != length or (length and min(blocks) <= 0):
            raise ValueError(
                f"{at}: chunks={chunks!r} give blocks {blocks} on axis {axis}, "
                f"which do not tile its length {length}"
            )
    return tuple(normalized)


def _check_concatenable(sources: list[TablesSource]) -> None:
    first = sources[0]
    if first.ndim == 0:
        raise ValueError(
            f"{at_node(first.path, first.node)} is a scalar: several files cannot be concatenated"
        )
    for other in sources[1:]:
        if other.shape[1:] != first.shape[1:] or other.dtype != first.dtype:
            raise ValueError(
                f"{at_node(other.path, other.node)} has shape {other.shape} and dtype {other.dtype}, "
                f"which do not concatenate along axis 0 with {first.path} "
                f"(shape {first.shape}, dtype {first.dtype})"
            )


def _to_dask(
    source: TablesSource,
    chunks: tuple[tuple[int, ...], ...],
    name: str | None,
    inline_array: bool,
) -> da.Array:
    return da.from_array(
        source,
        chunks=chunks,
        name=name or "from-tables-" + tokenize(source, chunks),
        lock=False,  # the source takes the registry lock itself
        asarray=False,  # the source returns numpy arrays
        fancy=True,
        meta=np.empty((0,) * source.ndim, dtype=source.dtype),
        inline_array=inline_array,
    )


def _concatenated_to_dask(
    sources: list[TablesSource], chunks: Chunks, name: str | None, inline_array: bool
) -> da.Array:
    """One dask array over several files: each file's own blocks on axis 0, each task reading its own file."""
    per_file = [_normalize_chunks(s, chunks) for s in sources]
    row_blocks = [file_chunks[0] for file_chunks in per_file]
    trailing = max(per_file, key=lambda file_chunks: sum(file_chunks[0]))[1:]
    rows = tuple(b for blocks in row_blocks for b in blocks if b) or (0,)
    name = name or "from-tables-" + tokenize(sources, (rows, *trailing))
    first = sources[0]
    return da.Array(
        concatenated_graph(name, sources, row_blocks, trailing, inline_array),
        name,
        (rows, *trailing),
        meta=np.empty((0,) * first.ndim, dtype=first.dtype),
    )


def _refuse_damaged(files: list[str], node: str, direct: bool | None, shown: list[str] | None = None) -> None:
    """Probe every file in child processes; raise for the first refused one, naming the others.

    ``shown`` names the files in messages (URLs, where ``files`` are their shadows).
    """
    refused = probe_files(files, node, direct=direct)
    if not refused:
        return
    shown = shown or files
    first, *others = sorted(refused)
    message = str(refused[first]).replace(files[first], shown[first])
    if not others:
        raise NotHDF5FileError(message) if shown is not files else refused[first]
    names = ", ".join(shown[i] for i in others[:5]) + (", ..." if len(others) > 5 else "")
    raise NotHDF5FileError(f"{message}; {len(others)} more files refused as well: {names}")


def from_tables(
    path: PathSpec,
    node: str,
    chunks: Chunks = "auto",
    *,
    field: str | None = None,
    name: str | None = None,
    inline_array: bool = False,
    direct: bool | None = None,
    allow_pickles: bool = False,
    validate: bool = False,
    storage_options: dict[str, Any] | None = None,
) -> da.Array:
    """Create a dask array from a PyTables node, read in parallel and thread-safely.

    Each chunk task opens the file through the synchronized registry
    (:mod:`dask_tables.registry`), checks that the file is unchanged, reads
    its block and closes the file, so the array computes under every dask
    scheduler (threads, processes, ``dask.distributed``) and leaves no file
    open afterwards.  Building the array opens each file once, for metadata.

    Parameters
    ----------
    path : str, bytes, os.PathLike or list
        An HDF5 file (``~`` is the home folder), a glob pattern (``"runs/*.h5"``), or a list of files;
        or the URL of an object in a store (``"s3://bucket/data.h5"``, ``"gs://..."``, ``"az://..."``,
        ``"https://host/data.h5"``), or a URL pattern (``"s3://bucket/run-*.h5"``): read by byte
        ranges, see ``docs/remote.rst``.
        Several files are concatenated along axis 0, in the order given
        (a glob's matches in sorted order); no dask block spans two files.
    node : str
        Path of an ``Array``, ``CArray``, ``EArray`` or ``Table`` in the
        file(s), e.g. ``"/group/array"``.
    chunks : int, tuple, dict or "auto", optional
        Dask chunks, as :func:`dask.array.core.normalize_chunks` takes them;
        applied to each file.  ``"auto"`` (the default, also per axis) picks
        multiples of the node's HDF5 ``chunkshape`` near the
        ``array.chunk-size`` configuration value.
    field : str, optional
        For a ``Table``: one column, ``"group/name"`` for nested columns.  A
        table without ``field`` reads as a 1-D array of records.
    name : str, optional
        Name of the dask array.  By default a deterministic
        ``"from-tables-<token>"`` from path, node, field, chunks and the
        file's fingerprint (inode, size, modification time): building twice
        gives the same name, and changing the file gives a new one.
    inline_array : bool, optional
        Embed the (small, picklable) source in every task instead of
        referencing it once; see :func:`dask.array.from_array`.  Over
        several files, a task carries its own file's source only, and
        without ``inline_array`` each file's source is stored once in the
        graph: either way, a task's size and cost do not grow with the
        number of files.
    direct : bool, optional
        Read chunks directly (``os.pread``) and decode them outside every
        lock, so threads scale past HDF5's global lock.  Applies to chunked
        nodes whose filters dask_tables decodes (none, shuffle, zlib, bzip2,
        Blosc, Blosc2, LZF, Fletcher-32); others read through PyTables.  Default:
        the ``dask_tables.direct`` configuration value, ``True`` unless set.
    allow_pickles : bool, optional
        PyTables unpickles the attributes of every node it opens, which can
        run code stored in a hostile file.  By default dask_tables lets it
        rebuild only plain data (numbers, strings, numpy arrays) and keeps
        any other pickled attribute as raw bytes; ``True`` restores PyTables'
        behaviour, for files you trust.
    validate : bool, optional
        For files from untrusted sources: first read each file in a child
        process the way the tasks will (:func:`dask_tables.array.validate.probe`:
        metadata, chunk index, and the data HDF5 decodes itself when the
        direct path does not apply), and refuse a file that crashes or hangs
        HDF5 there, instead of letting it crash this process.  One child
        probes all the files, one after the other
        (:func:`dask_tables.array.validate.probe_files`); a file that crashes or
        hangs it is refused and a new child goes on with the next files.
        Costs one Python start-up (about a second), the chunk index of each
        file, and a full read of a node read through PyTables.  For a URL,
        the child probes the object's shadow, which PyTables opens (h5py's
        walk of the object's metadata runs in this process).
    storage_options : dict, optional
        For URLs: how to reach the store (credentials, endpoint, region),
        as fsspec and pandas take them (``key``, ``secret``,
        ``endpoint_url``, ``anon``...).  Never shown in a message or repr.

    Returns
    -------
    dask.array.Array

    Raises
    ------
    FileNotFoundError
        A file is missing, or a glob matches nothing.
    IsADirectoryError
        A path is a directory, or not an HDF5 file; with ``validate=True``,
        a file crashed or hung the probe (the first such file; the message
        names the others).
    dask_tables.NotHDF5FileError
        A path is a directory, or not an HDF5 file; with ``validate=True``,
        a file crashed or hung the probe (the first such file; the message
        names the others).
    tables.NoSuchNodeError
        ``node`` is not in a file.
    TypeError
        ``node`` is not array-like: a ``Group``, ``VLArray``, ...
    dask_tables.RecordLayoutError
        (a ``TypeError``) A table whose stored records neither PyTables nor
        dask_tables reads safely (names the member).
    ValueError
        Bad ``chunks``, a ``field`` that does not exist, files whose
        other dimensions or dtype differ, or an empty list of files.

    Notes
    -----
    A task raises :class:`dask_tables.FileChangedError` if the file was
    modified, replaced or deleted after the array was built: it never
    returns stale data.  Rebuild the array to read the new contents.

    Examples
    --------
    >>> import numpy as np, tables
    >>> import dask_tables
    >>> with tables.open_file("data.h5", "w") as f:
    ...     _ = f.create_carray("/", "array", obj=np.arange(1000.0).reshape(100, 10),
    ...                         chunkshape=(10, 10))
    >>> x = dask_tables.from_tables("data.h5", "/array", chunks=(50, 10))
    >>> x
    dask.array<from-tables, shape=(100, 10), dtype=float64, chunksize=(50, 10), chunktype=numpy.ndarray>
    >>> float(x.mean().compute(scheduler="threads"))
    499.5
    """
    files = expand_locations(path, node, storage_options)
    if validate:  # an object: its shadow, which PyTables opens (h5py's walk of it ran in this process)
        shown = [display_url(f) if is_url(f) else f for f in files]
        local = [metadata_path(f, storage_options) for f in files]
        _refuse_damaged(local, node, direct, shown)
    sources = [
        TablesSource.open(p, node, field, direct, allow_pickles, storage_options=storage_options)
        for p in files
    ]
    if len(sources) == 1:
        return _to_dask(sources[0], _normalize_chunks(sources[0], chunks), name, inline_array)
    _check_concatenable(sources)
    return _concatenated_to_dask(sources, chunks, name, inline_array)
