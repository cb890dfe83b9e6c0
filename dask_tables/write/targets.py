"""Where each partition of a frame goes: one ``*`` in the path or the key, and ``name_function``.

As ``dask.dataframe.to_hdf``: a ``*`` in the file path writes one file per
partition, a ``*`` in the key one node per partition, each named by
``name_function`` (default: the partition number, zero-padded so that the
names sort in partition order).  Local files and objects at URLs
(:mod:`dask_tables.write.remote`) are named the same way.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

from .plan import check_node_name

__all__ = ["check_stars", "partition_names", "partition_targets"]


def check_stars(path: str, node: str, shown: str | None = None) -> int:
    """How many ``*`` the path and the key hold together; more than one raises ``ValueError``.

    Examples
    --------
    >>> check_stars("out-*.h5", "/df"), check_stars("out.h5", "/df")
    (1, 0)
    """
    stars = path.count("*") + node.count("*")
    if stars > 1:
        raise ValueError(
            f"{shown or path}: node {node}: A maximum of one asterisk is accepted in file path and dataset key"
        )
    return stars


def partition_names(
    partitions: int, name_function: Callable[[int], str] | None = None, stacklevel: int = 5
) -> list[str]:
    """The text put in place of ``*`` for each partition, with dask's warning if out of order.

    Examples
    --------
    >>> partition_names(12)[:3], partition_names(2, lambda i: f"part{i}")
    (['00', '01', '02'], ['part0', 'part1'])
    """
    if name_function is None:
        from fsspec.utils import build_name_function  # dd.to_hdf's own

        name_function = build_name_function(partitions - 1)
    names = [name_function(i) for i in range(partitions)]
    if names != sorted(names):
        warnings.warn(
            "To preserve order between partitions name_function must preserve the order of its input",
            stacklevel=stacklevel,
        )
    return names


def partition_targets(
    path: str, shown: str, node: str, partitions: int, name_function: Callable[[int], str] | None
) -> dict[str, tuple[str, list[tuple[str, list[int] | None]]]]:
    """Where each partition goes: file -> (its name as given, [(node, partitions or None: all)]).

    Examples
    --------
    >>> partition_targets("out-*.h5", "out-*.h5", "/df", 2, None)
    {'out-0.h5': ('out-0.h5', [('/df', [0])]), 'out-1.h5': ('out-1.h5', [('/df', [1])])}
    >>> partition_targets("out.h5", "out.h5", "/df*", 2, None)
    {'out.h5': ('out.h5', [('/df0', [0]), ('/df1', [1])])}
    """
    if not check_stars(path, node, shown):
        return {path: (shown, [(check_node_name(node), None)])}
    names = partition_names(partitions, name_function, stacklevel=6)
    if "*" in path:
        return {
            path.replace("*", name): (shown.replace("*", name), [(check_node_name(node), [i])])
            for i, name in enumerate(names)
        }
    return {path: (shown, [(check_node_name(node.replace("*", name)), [i]) for i, name in enumerate(names)])}
