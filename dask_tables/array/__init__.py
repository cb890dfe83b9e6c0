"""Array reads: :func:`~dask_tables.from_tables` and the picklable node behind its tasks.

:mod:`.core` builds the graph, :mod:`.source` is the lazy node a task reads
from, :mod:`.verdict` decides which nodes are read directly (and says why
not), :mod:`.direct` reads chunks straight from the file, :mod:`.selection`
plans a read, :mod:`.concat` joins many files and :mod:`.validate` probes
untrusted files in a child process.
"""
