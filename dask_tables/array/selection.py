"""Split a numpy-style selection into an HDF5 read and a numpy remainder.

HDF5 (and PyTables) read regular hyperslabs: slices with a positive step.
Dask hands a chunk getter anything numpy accepts: integers, negative steps,
integer arrays, ``None``, ``Ellipsis``.  :func:`plan_read` turns such a key
into the smallest positive-step slab that covers it, plus the key that numpy
applies to that slab to give exactly ``array[key]``.
"""

from __future__ import annotations

import operator
from typing import Any

import numpy as np

__all__ = ["plan_read"]

_FULL = slice(None)


def _plan_slice(sel: slice, length: int) -> tuple[slice, slice]:
    start, stop, step = sel.indices(length)
    count = len(range(start, stop, step))
    if count == 0:
        return slice(0, 0, 1), _FULL
    last = start + (count - 1) * step
    if step > 0:
        return slice(start, last + 1, step), _FULL
    return slice(last, start + 1, -step), slice(None, None, -1)


def _plan_integer(index: int, length: int, axis: int) -> tuple[slice, int]:
    position = index + length if index < 0 else index
    if not 0 <= position < length:
        raise IndexError(f"index {index} is out of bounds for axis {axis} with size {length}")
    return slice(position, position + 1, 1), 0


def _plan_integer_array(indices: np.ndarray, length: int, axis: int) -> tuple[slice, np.ndarray]:
    positions = np.where(indices < 0, indices + length, indices)
    if positions.size == 0:
        return slice(0, 0, 1), positions
    low, high = int(positions.min()), int(positions.max())
    if low < 0 or high >= length:
        bad = indices[(positions < 0) | (positions >= length)].flat[0]
        raise IndexError(f"index {bad} is out of bounds for axis {axis} with size {length}")
    return slice(low, high + 1, 1), positions - low


def _axes_consumed(item: Any) -> int:
    if item is None or item is Ellipsis:
        return 0
    if isinstance(item, (slice, int, np.integer)):
        return 1
    indices = np.asarray(item)
    return indices.ndim if indices.dtype == bool else 1


def _expand_ellipsis(key: tuple[Any, ...], ndim: int) -> tuple[Any, ...]:
    n_ellipsis = sum(k is Ellipsis for k in key)
    if n_ellipsis > 1:
        raise IndexError("an index can only have a single ellipsis ('...')")
    consumed = sum(_axes_consumed(k) for k in key)
    if n_ellipsis:
        at = next(i for i, k in enumerate(key) if k is Ellipsis)
        key = key[:at] + (_FULL,) * (ndim - consumed) + key[at + 1 :]
    elif consumed < ndim:
        key = key + (_FULL,) * (ndim - consumed)
    if sum(_axes_consumed(k) for k in key) > ndim:
        raise IndexError(f"too many indices for array: array is {ndim}-dimensional")
    return key


def plan_read(
    key: Any, shape: tuple[int, ...], read_ndim: int | None = None
) -> tuple[tuple[slice, ...], tuple[Any, ...]]:
    """Plan how to read ``array[key]`` as an HDF5 slab plus a numpy selection.

    Parameters
    ----------
    key : object
        Any basic or advanced numpy index (a tuple of them, or one).
    shape : tuple of int
        Shape of the array being indexed.
    read_ndim : int, optional
        How many leading axes the reader can slice (default: all).  The
        remaining axes are read whole and selected by numpy.

    Returns
    -------
    slab : tuple of slice
        One slice with positive step per leading axis: what to read.
    remainder : tuple
        What to apply to the slab with numpy: ``slab_data[remainder]``
        equals ``array[key]``.

    Examples
    --------
    >>> import numpy as np
    >>> a = np.arange(20).reshape(4, 5)
    >>> slab, rest = plan_read((1, slice(None, None, -2)), a.shape)
    >>> slab
    (slice(1, 2, 1), slice(0, 5, 2))
    >>> np.array_equal(a[slab][rest], a[1, ::-2])
    True
    """
    ndim = len(shape)
    read_ndim = ndim if read_ndim is None else read_ndim
    key = _expand_ellipsis(key if isinstance(key, tuple) else (key,), ndim)

    slab: list[slice] = []
    remainder: list[Any] = []
    axis = 0
    for item in key:
        if item is None:
            remainder.append(None)
            continue
        length = shape[axis]
        if axis >= read_ndim:
            remainder.append(item)
        elif isinstance(item, slice):
            read, rest = _plan_slice(item, length)
            slab.append(read)
            remainder.append(rest)
        elif isinstance(item, (int, np.integer)):
            read, rest = _plan_integer(operator.index(item), length, axis)
            slab.append(read)
            remainder.append(rest)
        else:
            indices = np.asarray(item)
            if indices.dtype.kind in "iu" and indices.ndim >= 1:
                read, rest = _plan_integer_array(indices.astype(np.int64), length, axis)
            else:
                # Booleans and anything else: read the whole axis, let numpy
                # select (and raise, for an invalid index).
                if indices.dtype == bool and indices.ndim > 1:
                    return (_whole_slab(shape, read_ndim), key)
                read, rest = slice(0, length, 1), item
            slab.append(read)
            remainder.append(rest)
        axis += 1
    return tuple(slab), tuple(remainder)


def _whole_slab(shape: tuple[int, ...], read_ndim: int) -> tuple[slice, ...]:
    return tuple(slice(0, n, 1) for n in shape[:read_ndim])
