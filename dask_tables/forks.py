"""What a forked child starts afresh: each module's reset, run in the child before anything else.

A thread of the parent may hold a lock at fork time, and that thread does
not exist in the child; per-process state (counters, caches keyed by pid)
is the parent's.  Each module that keeps such state registers its reset
here, once, at import.
"""

from __future__ import annotations

import os
from collections.abc import Callable

__all__ = ["after_fork_in_child"]

Reset = Callable[[], None]


def after_fork_in_child(reset: Reset) -> Reset:
    """Run ``reset`` in every child process forked from this one (where the platform forks); a decorator.

    Examples
    --------
    >>> import os
    >>> state = {"pid": os.getpid()}
    >>> @after_fork_in_child
    ... def _fresh() -> None:
    ...     state["pid"] = os.getpid()
    >>> pid = os.fork()
    >>> if pid == 0:  # the child
    ...     os._exit(0 if state["pid"] == os.getpid() else 1)
    >>> os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    0
    """
    if hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=reset)
    return reset
