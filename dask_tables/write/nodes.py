"""New nodes placed into the new version of a file, during a write's commit.

Each new node is made whole under a temporary name at the root; only when
all are complete is an existing node removed (``overwrite=True``) and each
moved to its name, so a failure half-way leaves no half-written node (and
the commit discards the whole new version of the file anyway).  The staged
values of a ``region`` are written into the existing node.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Mapping, Sequence

import tables

from ..errors import RegionMismatchError
from ..hdf5.storednode import StoredNode
from .plan import NodeWrite, WritePlan, check_parents, check_replaceable, existing_node
from .staging import read_sidecar, write_pieces

__all__ = ["NodeMaker", "add_nodes", "write_staged"]

# Makes the plan's node ``index``, with its data, as ``name`` at the root of the open file.
NodeMaker = Callable[[tables.File, int, str], None]


def write_staged(leaf: tables.Leaf, write: NodeWrite, sidecars: Sequence[str]) -> None:
    """The staged pieces of ``sidecars`` written into ``leaf``; each sidecar removed once written (disk)."""
    for sidecar in sidecars:
        write_pieces(leaf, read_sidecar(sidecar, write.dtype))
        os.unlink(sidecar)


def add_nodes(
    h5: tables.File, plan: WritePlan, make_node: NodeMaker, sidecars: Mapping[int, Sequence[str]]
) -> None:
    """Add (or replace) the plan's nodes in the open file ``h5``, each checked against the file as it is now.

    Another writer may have changed the file since the plan: the checks run again.
    """
    created: list[str] = []
    try:
        for index, write in enumerate(plan.nodes):
            if write.kind == "region":
                _write_region(h5, plan.path, write, sidecars.get(index, ()))
                continue
            created.append(_free_temp_name(h5, plan, index))
            make_node(h5, index, plan.temp_name(index))
        _move_into_place(h5, plan)
        created.clear()
    finally:
        for tmp in created:
            with contextlib.suppress(tables.NoSuchNodeError, tables.HDF5ExtError):
                h5.remove_node(tmp, recursive=True)


def _write_region(h5: tables.File, path: str, write: NodeWrite, sidecars: Sequence[str]) -> None:
    """The staged values of a region, written into the existing node, checked unchanged since the plan."""
    leaf = h5.get_node(write.node)
    now = StoredNode.of(leaf)
    if now.shape != write.shape or now.dtype != write.dtype:
        raise RegionMismatchError(path, write.node, "the node changed while the write was computed")
    indexed = isinstance(leaf, tables.Table) and leaf.indexed and leaf.autoindex
    if indexed:  # one reindex after all pieces, not one per piece
        leaf.autoindex = False
    write_staged(leaf, write, sidecars)
    if indexed:
        leaf.autoindex = True
        leaf.reindex_dirty()


def _free_temp_name(h5: tables.File, plan: WritePlan, index: int) -> str:
    """The temporary path of the plan's node ``index``, free; its final place is checked again first."""
    write = plan.nodes[index]
    found = existing_node(h5, write.node)
    check_replaceable(found, plan.path, write.node, write.overwrite, frame=write.kind == "frame")
    check_parents(h5, plan.path, write.node, write.createparents)
    tmp = "/" + plan.temp_name(index)
    if existing_node(h5, tmp) is not None:
        h5.remove_node(tmp, recursive=True)
    return tmp


def _move_into_place(h5: tables.File, plan: WritePlan) -> None:
    """Each new node from its temporary name to its own, replacing what was there."""
    for index, write in enumerate(plan.nodes):
        if write.kind == "region":
            continue
        if existing_node(h5, write.node) is not None:
            h5.remove_node(write.node, recursive=True)
        parent, name = write.node.rsplit("/", 1)
        h5.move_node("/" + plan.temp_name(index), parent or "/", name, createparents=True)
