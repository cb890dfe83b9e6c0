"""HDF5 access: what every layer above reads a file through.

Its modules are listed, with what each holds, in the one inventory of the
package: ``docs/architecture.rst``.  The synchronized registry and its lock
stay at :mod:`dask_tables.registry`, their public home.
"""
