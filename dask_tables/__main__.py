"""``python -m dask_tables``: the ``dask-tables`` command."""

import sys

from .cli import main

sys.exit(main())
