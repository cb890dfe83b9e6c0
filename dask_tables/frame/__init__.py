"""Frame reads: :func:`~dask_tables.read_table`, PyTables and pandas tables as dask DataFrames.

Its modules are listed, with what each holds, in the one inventory of the
package: ``docs/architecture.rst``.
"""
