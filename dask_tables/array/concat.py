"""The same node of several files, as one dask array along axis 0.

Each block of the array is one task that reads from its own file's
:class:`~dask_tables.TablesSource`, with a slice relative to that file: a
task never walks the list of files, and its cost does not grow with their
number.  Blocks stop at file boundaries (no block spans two files), so a
block's file and its rows in that file are fixed when the graph is built.

The graph has the shape of :func:`dask.array.from_array`'s, one source per
file instead of one in all:

- with ``inline_array=False``, file ``i``'s source is stored once, under the
  key ``("original-" + name, i)``, and that file's tasks refer to it;
- with ``inline_array=True``, each task carries its own file's source (and
  no other file's).

The tasks are ``getter(source, slices, asarray=False, lock=False)`` tasks,
which dask's optimizer knows, so slices fuse into the read: ``x[:10]`` of a
thousand files reads ten rows of the first file only.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
from dask._task_spec import DataNode, Task, TaskRef
from dask.array.core import getter
from dask.highlevelgraph import HighLevelGraph, MaterializedLayer

from .source import TablesSource

__all__ = ["concatenated_graph", "file_blocks"]

Chunks = tuple[tuple[int, ...], ...]


def file_blocks(row_blocks: Sequence[tuple[int, ...]]) -> list[tuple[int, tuple[int, ...]]]:
    """Pair each file with its row blocks, dropping empty files; one empty block if all are empty.

    Parameters
    ----------
    row_blocks : sequence of tuple of int
        For each file, its blocks along axis 0.

    Returns
    -------
    list of (file index, blocks)
        The files that hold blocks of the array, in order.

    Examples
    --------
    >>> file_blocks([(5, 2), (0,), (3,)])
    [(0, (5, 2)), (2, (3,))]
    >>> file_blocks([(0,), (0,)])
    [(0, (0,))]
    """
    kept = [(i, tuple(b for b in blocks if b)) for i, blocks in enumerate(row_blocks)]
    kept = [(i, blocks) for i, blocks in kept if blocks]
    return kept or [(0, (0,))]


def _trailing_slices(trailing: Chunks) -> list[tuple[tuple[int, ...], tuple[slice, ...]]]:
    """Block indices and slices of every block of the trailing axes (one empty pair for 1-D)."""
    per_axis = []
    for blocks in trailing:
        starts = np.concatenate([[0], np.cumsum(blocks, dtype=np.int64)])
        per_axis.append([(j, slice(int(starts[j]), int(starts[j + 1]))) for j in range(len(blocks))])
    return [
        (tuple(j for j, _ in combo), tuple(s for _, s in combo)) for combo in itertools.product(*per_axis)
    ]


def concatenated_graph(
    name: str,
    sources: Sequence[TablesSource],
    row_blocks: Sequence[tuple[int, ...]],
    trailing: Chunks,
    inline_array: bool,
) -> HighLevelGraph:
    """The graph of the array that stacks ``sources`` on axis 0: each task reads its own file.

    Parameters
    ----------
    name : str
        The array's name: block ``(i, j, ...)`` has the key ``(name, i, j, ...)``.
    sources : sequence of TablesSource
        One per file, in order; their shapes agree beyond axis 0.
    row_blocks : sequence of tuple of int
        For each file, its blocks along axis 0 (they sum to its length).
    trailing : tuple of tuple of int
        The blocks of the other axes, the same for every file.
    inline_array : bool
        Embed each file's source in its tasks, instead of storing it once
        under ``("original-" + name, file index)``.

    Returns
    -------
    HighLevelGraph
        Layer ``name`` (the reads), and with ``inline_array=False`` also
        layer ``"original-" + name`` (the sources).

    Examples
    --------
    >>> import numpy as np, tables
    >>> for i in range(2):
    ...     with tables.open_file(f"part{i}.h5", "w") as f:
    ...         _ = f.create_array("/", "x", np.arange(4) + 10 * i)
    >>> parts = [TablesSource.open(f"part{i}.h5", "/x") for i in range(2)]
    >>> graph = concatenated_graph("x", parts, [(2, 2), (4,)], (), inline_array=False)
    >>> sorted(graph.layers)
    ['original-x', 'x']
    >>> sorted(graph.layers["x"])
    [('x', 0), ('x', 1), ('x', 2)]
    >>> graph.layers["x"][("x", 2)]  # the second file's first block
    <Task ('x', 2) getter(TaskRef(('original-x', 1)), DataNode((slice(0, 4, None),)), asarray=False, lock=False)>
    """
    original = "original-" + name
    reads: dict = {}
    stored: dict = {}
    trailing_blocks = _trailing_slices(trailing)
    row = 0
    for index, blocks in file_blocks(row_blocks):
        source = sources[index]
        if inline_array:
            array = DataNode(None, source)
        else:
            stored[(original, index)] = source
            array = TaskRef((original, index))
        start = 0
        for size in blocks:
            rows = slice(start, start + size)
            for block, slices in trailing_blocks:
                key = (name, row, *block)
                reads[key] = Task(
                    key,
                    getter,
                    array,
                    DataNode(None, (rows, *slices)),
                    asarray=False,  # the source returns numpy arrays
                    lock=False,  # the source takes the registry lock itself
                    _data_producer=True,
                )
            start += size
            row += 1
    if inline_array:
        return HighLevelGraph({name: MaterializedLayer(reads)}, {name: set()})
    layers = {original: MaterializedLayer(stored), name: MaterializedLayer(reads)}
    return HighLevelGraph(layers, {original: set(), name: {original}})
