"""Direct chunk reads of a node of an object in a store: the chunks a task needs, by merged ranges.

The same read as :func:`dask_tables.array.direct.read_direct`, but the
bytes come from the object: the node's chunk index (built once per object
version and process, from the object's shadow on local disk:
:mod:`dask_tables.remote.shadow`), the stored ranges the block needs,
merged into few requests (:func:`dask_tables.remote.ranges.plan_requests`)
fetched concurrently, each conditional on the object's version, then
decoded with no lock held, exactly as from a local file.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence

import numpy as np

from .. import diagnostics
from ..hdf5.chunkindex import chunk_index
from ..hdf5.storednode import StoredNode
from ..remote.ranges import plan_requests
from ..remote.shadow import shadow_of
from ..remote.transport import RemoteFile, in_flight
from .direct import chunk_ranges, read_chunks

__all__ = ["Fetched", "read_remote"]


class Fetched:
    """Bytes fetched by several requests, read back by offset (a ``pread`` over them).

    Examples
    --------
    >>> fetched = Fetched([0, 10], [memoryview(b"abcd"), memoryview(b"klmn")])
    >>> out = np.zeros(3, np.uint8)
    >>> fetched.pread(out, 1), bytes(out)
    (3, b'bcd')
    """

    def __init__(self, starts: Sequence[int], pieces: Sequence[memoryview]) -> None:
        self.starts = list(starts)
        self.pieces = list(pieces)

    def pread(self, buffer: np.ndarray, offset: int) -> int:
        """Copy bytes from ``offset`` into ``buffer``; how many were held (fewer: not fetched)."""
        view = memoryview(buffer).cast("B")
        done = 0
        i = bisect.bisect_right(self.starts, offset) - 1
        while done < len(view) and 0 <= i < len(self.pieces):
            at = offset + done - self.starts[i]
            piece = self.pieces[i]
            if at >= len(piece):
                break
            n = min(len(piece) - at, len(view) - done)
            view[done : done + n] = piece[at : at + n]
            done += n
            i += 1
            if i < len(self.starts) and self.starts[i] != offset + done:
                break
        return done


def read_remote(
    remote: RemoteFile, node: str, storage: StoredNode, slab: Sequence[slice], field: str | None = None
) -> np.ndarray:
    """Read ``node[slab]`` of the object ``remote`` by merged, conditional range requests.

    Parameters
    ----------
    remote : RemoteFile
        The object, with the version the graph saw.
    node : str
        The node's path in the file.
    storage : StoredNode
        How the node is stored (the direct path reads it).
    slab : sequence of slice
        One slice with positive step per axis of ``storage.shape``.
    field : str, optional
        For a table: the column to keep.

    Returns
    -------
    numpy.ndarray
        What PyTables reads for the same selection.

    Raises
    ------
    FileChangedError
        The object is no longer the version the graph saw (a request's ``If-Match`` failed).
    RemoteReadError
        A request failed after its retries.

    Examples
    --------
    See ``docs/remote.rst``: ``from_tables("s3://bucket/data.h5", "/x")`` calls it in every task.
    """
    assert remote.version is not None
    shadow = shadow_of(remote)
    index = chunk_index(shadow.path, node, shadow.fingerprint)
    ranges = chunk_ranges(storage, index, slab)
    requests = plan_requests(ranges, in_flight=in_flight())
    pieces = remote.fetch(requests, node)
    diagnostics.add(remote_requests=len(requests), remote_bytes=sum(len(p) for p in pieces))
    fetched = Fetched([r.start for r in requests], pieces)
    return read_chunks(remote.name, node, storage, index, slab, field, fetched.pread, remote.version.size)
