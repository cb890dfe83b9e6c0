"""Array reads: :func:`~dask_tables.from_tables` and the picklable node behind its tasks.

Its modules are listed, with what each holds, in the one inventory of the
package: ``docs/architecture.rst``.
"""
