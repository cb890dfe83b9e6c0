"""Sphinx configuration of the dask-tables documentation."""

import os

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

# Links to the libraries we build on.  Sphinx fetches their inventories at
# build time, and offline (CI here) each unreachable one is a warning, an
# error under -W: so the links are on only where the build can reach them,
# with DASK_TABLES_DOCS_INTERSPHINX=1 (a build for publishing).
_INVENTORIES = {
    "python": ("https://docs.python.org/3", None),
    "numpy": ("https://numpy.org/doc/stable", None),
    "pandas": ("https://pandas.pydata.org/docs", None),
    "dask": ("https://docs.dask.org/en/stable", None),
    "distributed": ("https://distributed.dask.org/en/stable", None),
    "xarray": ("https://docs.xarray.dev/en/stable", None),
    "tables": ("https://www.pytables.org", None),
}
intersphinx_mapping = _INVENTORIES if os.environ.get("DASK_TABLES_DOCS_INTERSPHINX") == "1" else {}
nitpicky = False
# numpydoc's "str, optional" makes Sphinx look for a class named "optional"
nitpick_ignore = [("py:class", "optional")]

# The theme of the dask and xarray docs.
html_theme = "pydata_sphinx_theme"
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
}
html_title = "dask-tables"
html_static_path = []
exclude_patterns = ["_build"]


def _top_level_alias(app, env, node, contnode):
    """Resolve ``dask_tables.get_lock`` to where it is documented, ``dask_tables.registry.get_lock``.

    The package re-exports names from its modules; the API page documents
    some of them under their module, and docstrings refer to either name.
    """
    target = node.get("reftarget", "")
    if node.get("refdomain") != "py" or not target.startswith("dask_tables."):
        return None
    name = target.removeprefix("dask_tables.")
    module = getattr(getattr(dask_tables, name, None), "__module__", None) if "." not in name else None
    if not module or module == "dask_tables":
        return None
    py = env.get_domain("py")
    return py.resolve_xref(
        env, node["refdoc"], app.builder, node["reftype"], f"{module}.{name}", node, contnode
    )


def setup(app):
    app.connect("missing-reference", _top_level_alias)
