"""HDF5 access: what every layer above reads a file through.

The file's fingerprint (:mod:`.fingerprint`), how a node is stored, for
reads and writes alike, and the one check that HDF5 agrees with our filters
(:mod:`.storednode`), the stored types and the checks on them
(:mod:`.storedtypes`), the fields of records (:mod:`.fields`), PyTables' own HDF5 library bound once
(:mod:`.libhdf5`), the calls made on it
(:mod:`.calls`), each node's chunk index (:mod:`.chunkindex`), dimension
scales (:mod:`.dimscales`), attributes and datasets PyTables misreads or
cannot load (:mod:`.foreign`), the pickle gate for attributes (:mod:`.pickles`)
and file-name patterns (:mod:`.paths`).  The synchronized registry and its
lock stay at :mod:`dask_tables.registry`, their public home.
"""
