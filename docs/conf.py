"""Sphinx configuration of the dask-tables documentation."""

from sphinx.ext import intersphinx

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
# Types as numpydoc reads them: "str, optional", {"a", "b"} and "auto" are
# text, each other word a class; the words numpydoc uses for protocols link
# to them.
napoleon_preprocess_types = True
napoleon_type_aliases = {
    "sequence": ":class:`~collections.abc.Sequence`",
    "mapping": ":class:`~collections.abc.Mapping`",
    "iterable": ":class:`~collections.abc.Iterable`",
    "callable": ":class:`~collections.abc.Callable`",
    "path-like": ":class:`~os.PathLike`",
}
autodoc_member_order = "bysource"
autodoc_typehints = "description"

# Links to the libraries we build on.  Each project lists two inventories,
# tried in turn: the real objects.inv on its site, then a local file,
# _inventories/NAME.inv.  The local files hold only the names these docs and
# the docstrings cite, each with the URL of its real page and anchor; they are
# written from _inventories/NAME.txt by _inventories/make.py.  A build online
# uses the real inventory; offline (CI) the fetch fails and Sphinx logs that
# it used the working alternative, an info line, not a warning, so -W holds
# (sphinx.ext.intersphinx._load._fetch_inventory_group).  Either way every
# link goes to the same page.  (An incremental build, within
# intersphinx_cache_limit days of the last fetch, skips the site and reads the
# local file again: the links stay the same.)  A name newly cited must be
# added to the project's .txt, or the nitpicky build fails offline.
_SITES = {
    "python": "https://docs.python.org/3",
    "numpy": "https://numpy.org/doc/stable",
    "pandas": "https://pandas.pydata.org/docs",
    "dask": "https://docs.dask.org/en/stable",
    "distributed": "https://distributed.dask.org/en/stable",
    "xarray": "https://docs.xarray.dev/en/stable",
    "tables": "https://www.pytables.org",
}
intersphinx_mapping = {name: (site, (None, f"_inventories/{name}.inv")) for name, site in _SITES.items()}
intersphinx_timeout = 10  # seconds per site, fetched in parallel; then the local file

# Every reference must resolve: sphinx-build -W fails on a broken one.
nitpicky = True

# autodoc names a type hint's class where it is defined (tables.leaf.Leaf);
# the projects document it under its public name (tables.Leaf).  A class's
# signature keeps its annotations as written (Path).
_PUBLIC_NAMES = {
    "Path": "pathlib.Path",
    "tables.leaf.Leaf": "tables.Leaf",
    "tables.group.Group": "tables.Group",
    "tables.table.Table": "tables.Table",
    "tables.file.File": "tables.File",
    "dask.array.core.Array": "dask.array.Array",
    "dask.dataframe.dask_expr._collection.DataFrame": "dask.dataframe.DataFrame",
    "dask.dataframe.dask_expr._collection.Series": "dask.dataframe.Series",
    "xarray.core.dataset.Dataset": "xarray.Dataset",
    "xarray.core.datatree.DataTree": "xarray.DataTree",
    "xarray.backends.common.BackendArray": "xarray.backends.BackendArray",
    "xarray.backends.common.BackendEntrypoint": "xarray.backends.BackendEntrypoint",
}

# The theme of the dask and xarray docs.
html_theme = "pydata_sphinx_theme"
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
}
html_title = "dask-tables"
html_static_path = []
exclude_patterns = ["_build"]


def _resolve_alias(app, env, node, contnode):
    """Resolve a reference Sphinx could not find under the name it was given.

    Three kinds of names stand for a documented one:

    - ``dask_tables.get_lock``: the package re-exports names from its modules,
      the API page documents them under their module
      (``dask_tables.registry.get_lock``), and docstrings cite either;
    - ``tables.leaf.Leaf``: a type hint's defining module, which the project
      documents as ``tables.Leaf`` (``_PUBLIC_NAMES``), resolved through
      intersphinx;
    - ``Fingerprint``, a bare name in a docstring's type: the one documented
      object of that name, as Sphinx finds the types of its own fields (an
      ambiguous name stays an error).
    """
    if node.get("refdomain") != "py":
        return None
    target = node.get("reftarget", "")
    py = env.get_domain("py")
    if target in _PUBLIC_NAMES:
        public = node.deepcopy()
        public["reftarget"] = _PUBLIC_NAMES[target]
        return intersphinx.missing_reference(app, env, public, contnode)
    if "." not in target and not node.get("refspecific"):
        fuzzy = node.deepcopy()
        fuzzy["refspecific"] = True
        return py.resolve_xref(env, node["refdoc"], app.builder, node["reftype"], target, fuzzy, contnode)
    name = target.removeprefix("dask_tables.")
    if name == target or "." in name:
        return None
    module = getattr(getattr(dask_tables, name, None), "__module__", None)
    if not module or module == "dask_tables":
        return None
    return py.resolve_xref(
        env, node["refdoc"], app.builder, node["reftype"], f"{module}.{name}", node, contnode
    )


def setup(app):
    app.connect("missing-reference", _resolve_alias)
