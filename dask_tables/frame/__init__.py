"""Frame reads: :func:`~dask_tables.read_table`, PyTables and pandas tables as dask DataFrames.

:mod:`.core` builds the frame, :mod:`.columns` turns records into pandas
columns, :mod:`.conditions` runs ``where``, :mod:`.partitions` splits rows
and :mod:`.pandas_format` reads tables written by pandas' ``HDFStore``.
"""
