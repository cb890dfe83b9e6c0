"""Writes: :func:`~dask_tables.to_tables` for arrays and data frames.

:mod:`.plan` checks everything before a task runs, :mod:`.staging` encodes
chunks into work files, :mod:`.records` turns frame partitions into table
records, :mod:`.store` and :mod:`.frames` build the graphs and commit, and
:mod:`.locks` holds the writers' locks.
"""
