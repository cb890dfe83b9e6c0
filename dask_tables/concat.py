"""The same node of several files, as one lazy array along axis 0."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .selection import plan_read
from .source import TablesSource

__all__ = ["ConcatenatedSource"]


@dataclass(frozen=True)
class ConcatenatedSource:
    """Several :class:`~dask_tables.TablesSource` of equal trailing shape and dtype, stacked on axis 0.

    Indexing reads only the files (and rows) that the selection touches, so
    one dask array over all files keeps dask's slice fusion: ``x[:10]`` of a
    thousand files reads ten rows of the first.

    Examples
    --------
    >>> import numpy as np, tables
    >>> for i in range(3):
    ...     with tables.open_file(f"part{i}.h5", "w") as f:
    ...         _ = f.create_array("/", "x", np.arange(4) + 10 * i)
    >>> three = ConcatenatedSource(tuple(TablesSource.open(f"part{i}.h5", "/x") for i in range(3)))
    >>> three.shape
    (12,)
    >>> three[2:11:3]
    array([ 2, 11, 20])
    """

    parts: tuple[TablesSource, ...]

    @property
    def shape(self) -> tuple[int, ...]:
        """Rows of all parts, then the parts' common trailing shape."""
        return (sum(p.shape[0] for p in self.parts), *self.parts[0].shape[1:])

    @property
    def dtype(self) -> np.dtype:
        """The parts' common dtype."""
        return self.parts[0].dtype

    @property
    def ndim(self) -> int:
        """Number of dimensions."""
        return len(self.shape)

    def __getitem__(self, key: Any) -> np.ndarray:
        slab, remainder = plan_read(key, self.shape)
        rows, rest = slab[0], slab[1:]
        pieces = []
        offset = 0
        for part in self.parts:
            low, high = offset, offset + part.shape[0]
            offset = high
            first = (
                rows.start
                if rows.start >= low
                else rows.start + -(-(low - rows.start) // rows.step) * rows.step
            )
            end = min(high, rows.stop)
            if first < end:
                pieces.append(part[(slice(first - low, end - low, rows.step), *rest)])
        if not pieces:
            empty_shape = tuple(len(range(s.start, s.stop, s.step)) for s in slab) + self.shape[len(slab) :]
            return np.empty(empty_shape, dtype=self.dtype)[remainder]
        data = pieces[0] if len(pieces) == 1 else np.concatenate(pieces, axis=0)
        return data[remainder]

    def __dask_tokenize__(self) -> tuple[Any, ...]:
        return (type(self).__name__, *(p.__dask_tokenize__() for p in self.parts))
