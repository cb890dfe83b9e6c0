"""Write the local intersphinx inventories (``NAME.inv``) from their sources (``NAME.txt``).

The docs link to numpy, dask, pandas, xarray, PyTables, distributed and
Python through intersphinx.  ``conf.py`` lists, for each project, the real
``objects.inv`` on its site first and the local file written here second:
Sphinx uses the first location that loads, so a build without network (CI)
still resolves every link, to the same URLs.

A source file holds the names the docs and docstrings cite, one line each,
in the line format of Sphinx's inventory version 2, which is the decompressed
body of an ``objects.inv``::

    name domain:role priority uri dispname

``uri`` is relative to the project's site (the ``# Base:`` line, which is also
the site in ``conf.py``), ``dispname`` ``-`` means the name itself.  Every
entry points to the real page and anchor of that name in the project's own
inventory, so a name cited here resolves the same way online.  A name the
docs start citing goes into the source, then run::

    python docs/_inventories/make.py

Examples
--------
>>> lines = ["# Project: NumPy", "# Version: 2.4", "# Base: https://numpy.org/doc/stable",
...          "numpy.ndarray py:class 1 reference/generated/numpy.ndarray.html#numpy.ndarray -"]
>>> source = parse(lines)
>>> source.project, source.base, len(source.entries)
('NumPy', 'https://numpy.org/doc/stable', 1)
>>> inventory_bytes(source).splitlines()[0]
b'# Sphinx inventory version 2'
"""

from __future__ import annotations

import dataclasses
import sys
import zlib
from pathlib import Path

HERE = Path(__file__).resolve().parent


@dataclasses.dataclass(frozen=True)
class Source:
    """One project's cited names: its name, version, site and inventory lines."""

    project: str
    version: str
    base: str
    entries: tuple[str, ...]


def parse(lines: list[str]) -> Source:
    """Read a source file's lines: three ``# Key: value`` headers, then one entry a line."""
    headers: dict[str, str] = {}
    entries = []
    for line in lines:
        if line.startswith("# "):
            key, _, value = line[2:].partition(": ")
            headers[key] = value.strip()
        elif line.strip():
            fields = line.split()
            if len(fields) != 5 or ":" not in fields[1] or not fields[2].lstrip("-").isdigit():
                raise ValueError(f"not an inventory line (name domain:role priority uri dispname): {line!r}")
            entries.append(" ".join(fields))
    missing = {"Project", "Version", "Base"} - set(headers)
    if missing:
        raise ValueError(f"missing headers: {sorted(missing)}")
    return Source(headers["Project"], headers["Version"], headers["Base"], tuple(sorted(entries)))


def inventory_bytes(source: Source) -> bytes:
    """The ``objects.inv`` of ``source``: Sphinx's version 2 header, then the zlib-compressed lines."""
    header = (
        "# Sphinx inventory version 2\n"
        f"# Project: {source.project}\n"
        f"# Version: {source.version}\n"
        "# The remainder of this file is compressed using zlib.\n"
    )
    body = "".join(f"{entry}\n" for entry in source.entries)
    return header.encode() + zlib.compress(body.encode(), 9)


def sources(directory: Path = HERE) -> dict[str, Source]:
    """Every source in ``directory``, by inventory name (the file's stem, the key in ``conf.py``)."""
    return {path.stem: parse(path.read_text().splitlines()) for path in sorted(directory.glob("*.txt"))}


def main(directory: Path = HERE) -> None:
    """Write ``NAME.inv`` next to each ``NAME.txt``."""
    for name, source in sources(directory).items():
        (directory / f"{name}.inv").write_bytes(inventory_bytes(source))
        print(f"{name}.inv: {len(source.entries)} names")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE)
