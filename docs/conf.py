"""Sphinx configuration of the dask-tables documentation."""

import dask_tables

project = "dask-tables"
author = "the dask-tables developers"
copyright = "2026, the dask-tables developers"
release = dask_tables.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",  # numpydoc-style docstrings
    "sphinx.ext.intersphinx",
]
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = False
autodoc_member_order = "bysource"
autodoc_typehints = "description"
# Offline builds: no inventories are fetched; references stay plain text.
intersphinx_mapping = {}
nitpicky = False

html_theme = "alabaster"
html_static_path = []
exclude_patterns = ["_build"]
