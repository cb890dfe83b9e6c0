"""The package's layers: each subpackage imports only from the layers below it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "dask_tables"
# lowest first; a module may import from its own layer, the layers before it and SHARED
LAYERS = ["hdf5", "remote", "filters", "array", "frame", "write"]
SHARED = {"errors", "registry", "diagnostics", "forks"}


def imported_modules(path: Path) -> set[str]:
    """The dask_tables modules a file imports, as dotted paths relative to the package."""
    package = path.relative_to(PACKAGE).parent.parts
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = list(package[: len(package) - node.level + 1])
                target = base + (node.module.split(".") if node.module else [])
                found.add(".".join(target) if target else "")
                found.update(_submodules(target, node.names))  # from ..hdf5 import storednode
            elif node.module and node.module.startswith("dask_tables"):
                target = [p for p in node.module.removeprefix("dask_tables").split(".") if p]
                found.add(".".join(target))
                found.update(_submodules(target, node.names))
        elif isinstance(node, ast.Import):
            found.update(
                a.name.removeprefix("dask_tables").lstrip(".")
                for a in node.names
                if a.name.startswith("dask_tables")
            )
    return found


def _submodules(package: list[str], names: list[ast.alias]) -> set[str]:
    """The names of ``from package import a, b`` that are modules (or subpackages) of the package."""
    folder = PACKAGE.joinpath(*package)
    return {
        ".".join([*package, a.name])
        for a in names
        if (folder / f"{a.name}.py").is_file() or (folder / a.name / "__init__.py").is_file()
    }


def test_imported_modules_sees_modules_imported_from_their_package() -> None:
    """``from ..hdf5 import storednode`` is an edge to ``hdf5.storednode``, not only to ``hdf5``."""
    assert "hdf5.storednode" in imported_modules(PACKAGE / "filters" / "stored.py")


@pytest.mark.parametrize("layer", LAYERS)
def test_layer_imports_only_from_below(layer: str) -> None:
    allowed = set(LAYERS[: LAYERS.index(layer) + 1])
    wrong = []
    for path in sorted((PACKAGE / layer).rglob("*.py")):
        for module in imported_modules(path):
            top = module.split(".")[0]
            if top in allowed or top in SHARED or top == "":
                continue
            wrong.append(f"{path.relative_to(PACKAGE)} imports dask_tables.{module}")
    assert not wrong, "\n".join(wrong)


def test_shared_modules_import_no_layer() -> None:
    for name in SHARED:
        modules = imported_modules(PACKAGE / f"{name}.py")
        assert not {m.split(".")[0] for m in modules} & set(LAYERS), (name, modules)


def module_name(path: Path) -> str:
    """``hdf5/calls.py`` -> ``"hdf5.calls"``; a package's ``__init__.py`` -> the package (``""`` at the top)."""
    parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Each module of the package -> the modules of the package it imports (anywhere in it).

    An import of a module's own package (``from . import x`` also names the
    package) is left out: Python imports a package before its modules, so it
    is no circle.
    """
    graph = {module_name(p): set() for p in PACKAGE.rglob("*.py")}
    for path in PACKAGE.rglob("*.py"):
        name = module_name(path)
        ancestors = {".".join(name.split(".")[:i]) for i in range(name.count(".") + 1)}
        graph[name] = {m for m in imported_modules(path) if m in graph and m not in ancestors and m != name}
    return graph


def test_no_import_circles() -> None:
    """Inside a layer and among the top-level modules alike, no module imports itself through others."""
    graph, done, circles = import_graph(), set(), []

    def visit(module: str, trail: list[str]) -> None:
        if module in trail:
            circles.append(" -> ".join([*trail[trail.index(module) :], module]))
            return
        if module in done:
            return
        for target in sorted(graph[module]):
            visit(target, [*trail, module])
        done.add(module)

    for module in sorted(graph):
        visit(module, [])
    assert not circles, "\n".join(circles)


ARCHITECTURE = PACKAGE.parent / "docs" / "architecture.rst"


def test_every_module_is_listed_in_its_row_of_the_architecture_page() -> None:
    """docs/architecture.rst is the one inventory of the modules: each named in its folder's row."""
    text = ARCHITECTURE.read_text()
    rows = {folder: text.split(f"``{folder}/``", 1)[1].split("   * - ", 1)[0] for folder in LAYERS}
    rows[""] = text.split("Around them, at the top", 1)[1].split("\n\n", 1)[0]
    missing = [
        str(path.relative_to(PACKAGE))
        for path in sorted(PACKAGE.rglob("*.py"))
        if path.stem != "__init__" or path.parent == PACKAGE
        if f"``{path.stem}``"
        not in rows[path.relative_to(PACKAGE).parts[0] if path.parent != PACKAGE else ""]
    ]
    assert not missing, f"not in docs/architecture.rst: {missing}"


MAX_LINES = 600


def test_no_module_is_over_600_lines() -> None:
    """One concept a module: none longer than 600 lines (issue 25)."""
    lengths = {
        str(path.relative_to(PACKAGE)): len(path.read_text().splitlines()) for path in PACKAGE.rglob("*.py")
    }
    too_long = {name: n for name, n in lengths.items() if n > MAX_LINES}
    assert not too_long, f"modules over {MAX_LINES} lines: {too_long}"
