"""Writes: :func:`~dask_tables.to_tables` for arrays and data frames.

Its modules are listed, with what each holds, in the one inventory of the
package: ``docs/architecture.rst``.
"""
