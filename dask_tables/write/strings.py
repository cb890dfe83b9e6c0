"""Text columns as fixed-size UTF-8 bytes, in vectorized numpy: pandas' string conversion without its loop.

pandas' table format stores a text column as ``S<n>`` bytes, ``n`` the
longest UTF-8 encoding (at least 1).  pandas encodes value by value in
Python (``Series.str.encode``): about 0.6 s for 500,000 values, with the GIL
held, so a frame writer's threads queue behind it.  Here pyarrow holds the
text as one UTF-8 buffer and its offsets (``pa.array``: a C loop for object
columns, no copy for pandas' pyarrow-backed ``str``), and numpy copies each
value into its fixed-size slot, one pass per distinct length.

Only columns pandas would convert this same way take this path: values all
present (pandas picks a missing-value marker per column and per table, which
stays pandas' own work), all ``str``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

__all__ = ["fixed_utf8"]


def _as_arrow(values: pd.Series) -> pa.LargeStringArray | None:
    if isinstance(values.dtype, pd.StringDtype):
        array = pa.array(values.array, type=pa.large_string())
    elif values.dtype == object and pd.api.types.infer_dtype(values, skipna=False) == "string":
        # infer_dtype first: pa.array would also take bytes objects, which pandas refuses
        try:
            array = pa.array(values.to_numpy(), type=pa.large_string())
        except (pa.ArrowException, UnicodeError):  # e.g. a lone surrogate, which UTF-8 cannot hold
            return None
    else:
        return None
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    return array


def fixed_utf8(values: pd.Series) -> np.ndarray | None:
    """``values`` as the ``S<n>`` array pandas' table format stores, or None if pandas must convert them.

    None when ``values`` is not text, or has a missing value.

    Parameters
    ----------
    values : pandas.Series
        A column: pandas' ``str``/``string`` dtype, or ``object`` holding ``str``.

    Returns
    -------
    numpy.ndarray or None
        One ``S<n>`` value per row, ``n`` the longest UTF-8 encoding (at least 1).

    Examples
    --------
    >>> fixed_utf8(pd.Series(["a", "é", ""], dtype=object))
    array([b'a', b'\\xc3\\xa9', b''], dtype='|S2')
    >>> fixed_utf8(pd.Series(["a", None])) is None
    True
    """
    if values.isna().any():
        return None
    array = _as_arrow(values)
    if array is None:
        return None
    rows = len(array)
    offsets = np.frombuffer(array.buffers()[1], dtype=np.int64)[array.offset : array.offset + rows + 1]
    data = array.buffers()[2]
    text = np.frombuffer(data, dtype=np.uint8) if data is not None else np.zeros(0, np.uint8)
    lengths = np.diff(offsets)
    width = max(1, int(lengths.max())) if rows else 1
    out = np.zeros((rows, width), np.uint8)
    for length in np.unique(lengths):
        if length == 0:
            continue
        at = np.flatnonzero(lengths == length)
        out[at, :length] = text[offsets[at, None] + np.arange(length)]
    return out.view(f"S{width}").reshape(rows)
