"""The one compiled module, built fresh at every install, and optional.

Everything else is in ``pyproject.toml``.  ``[[tool.setuptools.ext-modules]]``
declares ``dask_tables.hdf5._chunkiter`` with ``optional = true``: without a
C compiler the install succeeds and the chunk index is read chunk by chunk,
which ``dask_tables`` says with a warning.  This build step never reuses a
module compiled earlier: a ``build/`` folder left by an earlier install holds
one, newer than its source, that setuptools would otherwise copy into the new
install unchecked even where nothing can compile it now.
"""

from __future__ import annotations

import os

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext


class FreshBuildExt(build_ext):
    """``build_ext`` that compiles every time and removes the earlier output first."""

    def finalize_options(self) -> None:
        super().finalize_options()
        self.force = True  # recompile, never "skipping ... (up-to-date)"

    def build_extension(self, ext: Extension) -> None:
        target = self.get_ext_fullpath(ext.name)
        if os.path.exists(target):
            os.remove(target)  # a failed optional build must leave no module behind
        super().build_extension(ext)


setup(cmdclass={"build_ext": FreshBuildExt})
