"""Paths: what a user passes as "the file(s)" (a path, a list, or a glob), and node paths."""

from __future__ import annotations

import glob
import os
from collections.abc import Callable, Sequence

__all__ = ["expand_each", "expand_paths", "file_path", "node_path"]

PathLike = str | bytes | os.PathLike[str] | os.PathLike[bytes]
PathSpec = PathLike | Sequence[PathLike]


def file_path(path: PathLike) -> str:
    """A path as ``str``, as pandas takes it: ``~`` expanded, bytes decoded with the file system's encoding.

    Examples
    --------
    >>> import os
    >>> file_path(b"data.h5")
    'data.h5'
    >>> file_path("~/data.h5") == os.path.join(os.path.expanduser("~"), "data.h5")
    True
    """
    if not isinstance(path, (str, bytes, os.PathLike)):
        raise TypeError(f"expected a path (str, bytes or os.PathLike), not {type(path).__name__}: {path!r}")
    return os.path.expanduser(os.fsdecode(path))


def node_path(node: str) -> str:
    """A node's path from the root, as PyTables names it: ``"x"`` is ``"/x"``.

    Examples
    --------
    >>> node_path("group/x"), node_path("/group/x")
    ('/group/x', '/group/x')
    """
    return node if node.startswith("/") else "/" + node


def node_or_key(node: str | None, key: str | None, call: str) -> str | None:
    """The node asked for as ``node`` or as ``key`` (pandas' name for it), given once.

    Raises
    ------
    TypeError
        Both given, and different.

    Examples
    --------
    >>> node_or_key(None, "df", "read_table"), node_or_key("/df", "df", "read_table")
    ('df', '/df')
    >>> node_or_key("/a", "b", "read_table")
    Traceback (most recent call last):
    ...
    TypeError: read_table: give the node or key= (pandas' name for it), not both: '/a' and 'b'
    """
    if key is None or (node is not None and node_path(node) == node_path(key)):
        return node
    if node is not None:
        raise TypeError(
            f"{call}: give the node or key= (pandas' name for it), not both: {node!r} and {key!r}"
        )
    return key


def _is_glob(path: str) -> bool:
    return glob.has_magic(path) and not os.path.exists(path)


def _expand_local(path: PathLike, node: str) -> list[str]:
    """One path, or the sorted matches of one glob pattern."""
    item = file_path(path)
    if not _is_glob(item):
        return [item]
    matches = sorted(glob.glob(item))
    if not matches:
        raise FileNotFoundError(f"{item}: the pattern matches no files (asked for node {node})")
    return matches


def expand_each(paths: PathSpec, node: str, expand: Callable[[PathLike], list[str]]) -> list[str]:
    """``expand`` of one path, or of each of a list of them, in order, joined.

    The one loop of :func:`expand_paths` and of the remote layer's
    ``expand_locations`` (which expands URLs too).

    Raises
    ------
    ValueError
        The list is empty (as ``dask.dataframe.read_hdf``).

    Examples
    --------
    >>> expand_each(["a.h5", "b"], "/x", lambda p: [p, p.upper()])
    ['a.h5', 'A.H5', 'b', 'B']
    """
    if isinstance(paths, (str, bytes, os.PathLike)):
        return expand(paths)
    items = list(paths)
    if not items:
        raise ValueError(f"no files given: the list of paths is empty (asked for node {node})")
    return [found for item in items for found in expand(item)]


def expand_paths(paths: PathSpec, node: str = "") -> list[str]:
    """Return the files named by a path, a glob pattern or a list of either.

    A glob pattern expands to its matches in sorted order; a path that exists
    is taken literally even if it contains glob characters.  A path that does
    not exist is returned as is, so that reading it raises
    :class:`FileNotFoundError` naming it.

    Parameters
    ----------
    paths : str, bytes, os.PathLike, or sequence of them
        What to expand (``~`` is the home folder, as for pandas).
    node : str, optional
        The node that will be read, for error messages.

    Returns
    -------
    list of str

    Raises
    ------
    FileNotFoundError
        A glob pattern matches nothing.
    ValueError
        The list is empty (as ``dask.dataframe.read_hdf``).

    Examples
    --------
    >>> for name in ["b.h5", "a.h5"]:
    ...     open(name, "w").close()
    >>> expand_paths("*.h5")
    ['a.h5', 'b.h5']
    >>> expand_paths(["b.h5", "a.h5"])
    ['b.h5', 'a.h5']
    """
    return expand_each(paths, node, lambda path: _expand_local(path, node))
