"""Expand what a user passes as "the file(s)": a path, a list, or a glob."""

from __future__ import annotations

import glob
import os
from collections.abc import Sequence

__all__ = ["expand_paths"]

PathSpec = str | os.PathLike[str] | Sequence[str | os.PathLike[str]]


def _is_glob(path: str) -> bool:
    return glob.has_magic(path) and not os.path.exists(path)


def expand_paths(paths: PathSpec, node: str = "") -> list[str]:
    """Return the files named by a path, a glob pattern or a list of either.

    A glob pattern expands to its matches in sorted order; a path that exists
    is taken literally even if it contains glob characters.  A path that does
    not exist is returned as is, so that reading it raises
    :class:`FileNotFoundError` naming it.

    Parameters
    ----------
    paths : str, os.PathLike, or sequence of them
        What to expand.
    node : str, optional
        The node that will be read, for error messages.

    Returns
    -------
    list of str

    Raises
    ------
    FileNotFoundError
        A glob pattern matches nothing, or the list is empty.

    Examples
    --------
    >>> for name in ["b.h5", "a.h5"]:
    ...     open(name, "w").close()
    >>> expand_paths("*.h5")
    ['a.h5', 'b.h5']
    >>> expand_paths(["b.h5", "a.h5"])
    ['b.h5', 'a.h5']
    """
    if isinstance(paths, (str, os.PathLike)):
        items = [os.fspath(paths)]
    else:
        items = [os.fspath(p) for p in paths]
        if not items:
            raise FileNotFoundError(f"no files given (asked for node {node})")
    expanded: list[str] = []
    for item in items:
        if _is_glob(item):
            matches = sorted(glob.glob(item))
            if not matches:
                raise FileNotFoundError(f"{item}: the pattern matches no files (asked for node {node})")
            expanded.extend(matches)
        else:
            expanded.append(item)
    return expanded
