"""Project hygiene that CI must enforce: the docs build cleanly, the code is ruff clean."""

from __future__ import annotations

import importlib
import inspect
import json
import re
import runpy
import zlib
from pathlib import Path

import pytest
from helpers import run_benchmark, run_child

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def docs_build(tmp_path_factory):
    """The HTML docs, built once, nitpicky (every reference must resolve), warnings as errors.

    Offline (as here and in CI) the projects' inventories come from docs/_inventories/;
    online Sphinx fetches the real ones first.  About 10 s.
    """
    pytest.importorskip("sphinx")
    out = tmp_path_factory.mktemp("docs")
    done = run_child(
        "-m", "sphinx", *("-n", "-W", "--keep-going", "-E", "-b", "html"), ROOT / "docs", out, timeout=300
    )
    return done, out


def _inventory(data: bytes) -> set[str]:
    """The entries of an ``objects.inv`` (Sphinx's version 2 format): ``name domain:role priority uri dispname``."""
    header = data.split(b"\n", 4)
    assert header[0] == b"# Sphinx inventory version 2", header[0]
    return set(zlib.decompress(header[4]).decode().splitlines())


def test_docs_build_nitpicky_with_warnings_as_errors(docs_build):
    done, out = docs_build
    assert done.returncode == 0, done.stdout + done.stderr
    assert "from_tables" in (out / "api.html").read_text()


def test_docs_link_to_the_projects_we_build_on(docs_build):
    done, out = docs_build
    assert done.returncode == 0, done.stdout + done.stderr
    html = "".join(page.read_text() for page in out.glob("*.html"))
    for link in [
        "https://numpy.org/doc/stable/reference/generated/numpy.ndarray.html#numpy.ndarray",
        "https://docs.dask.org/en/stable/generated/dask.array.Array.html#dask.array.Array",
        "https://pandas.pydata.org/docs/reference/api/pandas.read_hdf.html#pandas.read_hdf",
        "https://docs.xarray.dev/en/stable/generated/xarray.open_dataset.html#xarray.open_dataset",
        "https://www.pytables.org/usersguide/libref/file_class.html#tables.File",
        "https://docs.python.org/3/library/os.html#os.PathLike",
    ]:
        assert f'href="{link}"' in html, link


PUBLIC_MODULES = [
    "dask_tables",
    "dask_tables.registry",
    "dask_tables.errors",
    "dask_tables.diagnostics",
    "dask_tables.hdf5.chunkindex",
    "dask_tables.xarray_backend",
    "dask_tables.info",
    "dask_tables.cli",
    "dask_tables.demo",
]


def test_api_page_documents_every_public_name(docs_build):
    done, out = docs_build
    assert done.returncode == 0, done.stdout + done.stderr
    documented = {entry.split()[0] for entry in _inventory((out / "objects.inv").read_bytes())}
    missing = []
    for module_name in PUBLIC_MODULES:
        module = importlib.import_module(module_name)
        for name in module.__all__:
            value = getattr(module, name)
            home = value.__name__ if inspect.ismodule(value) else f"{getattr(value, '__module__', '')}.{name}"
            if not {f"{module_name}.{name}", home, f"dask_tables.{name}"} & documented:
                missing.append(f"{module_name}.{name}")
    assert not missing, f"not in docs/api.rst: {missing}"


def test_local_inventories_are_written_from_their_sources():
    pytest.importorskip("sphinx")
    make = runpy.run_path(str(ROOT / "docs" / "_inventories" / "make.py"))
    conf = runpy.run_path(str(ROOT / "docs" / "conf.py"))
    sources = make["sources"]()
    assert set(sources) == set(conf["intersphinx_mapping"])
    for name, source in sources.items():
        site, locations = conf["intersphinx_mapping"][name]
        assert (site, locations) == (source.base, (None, f"_inventories/{name}.inv")), name
        written = (ROOT / "docs" / "_inventories" / f"{name}.inv").read_bytes()
        assert _inventory(written) == set(source.entries), f"run python docs/_inventories/make.py ({name})"


def _shown_outputs(page: Path) -> dict[str, str]:
    """The console blocks of a docs page: each ``$ command`` line and the output under it."""
    shown: dict[str, str] = {}
    command = None
    for line in page.read_text().splitlines():
        if line.startswith("   $ "):
            command = line[len("   $ ") :]
            shown[command] = ""
        elif command is not None and line.startswith("   "):
            shown[command] += line[3:] + "\n"
        else:
            command = None
    return shown


def _without_sizes(text: str) -> str:
    """``dask-tables info``'s table without sizes on disk and ratios (they vary with the libraries)."""
    text = re.sub(r"\b\d+(\.\d+)? (B|KiB|MiB|GiB)\b", "<size>", text)
    text = re.sub(r"(?<=<size>) +\d+\.\d\d\b", " <ratio>", text)
    return "\n".join(" ".join(line.split()) for line in text.splitlines())


def test_cli_page_shows_what_dask_tables_info_prints(tmp_path):
    pytest.importorskip("h5py")
    from dask_tables.demo import ensure_demo_file

    runpy.run_path(str(ROOT / "docs" / "weather.py"))["write"](tmp_path / "weather.h5")
    ensure_demo_file(tmp_path, size_mib=16)
    shown = _shown_outputs(ROOT / "docs" / "cli.rst")
    commands = [command for command in shown if command.startswith("dask-tables info ")]
    assert len(commands) == 3, commands
    for command in commands:
        args = command.split()[1:]
        done = run_child("-m", "dask_tables.cli", *args, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        if "--json" in args:
            printed, documented = json.loads(done.stdout), json.loads(shown[command])
            for record in printed + documented:
                del record["size_on_disk"], record["ratio"]
            assert printed == documented, command
        else:
            assert _without_sizes(done.stdout) == _without_sizes(shown[command]), command


@pytest.mark.parametrize("command", [["check"], ["format", "--check"]])
def test_ruff_clean(command):
    done = run_child("-m", "ruff", *command, ROOT, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def test_readme_commands_are_the_ci_commands():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "pip install ." in readme and "dask-tables demo" in readme
    assert 'pip install -e ".[test]"' in readme and '-e ".[test]"' in ci
    assert "python -m pytest" in readme and "python -m pytest" in ci


def test_benchmark_runs_and_reports_ratios(tmp_path):
    pytest.importorskip("h5py")
    printed, figures = run_benchmark(
        "bench_read",
        *("--size-mib", "4", "--table-rows", "50000", "--repeat", "1", "--rss-gib", "0.02"),
        *("--cases", "uncompressed,zlib,table"),
        folder=tmp_path,
    )
    assert "vs serial" in printed and "peak RSS" in printed
    for case in ("uncompressed", "zlib", "table"):
        methods = figures["cases"][case]["methods"]
        assert set(methods) == {"serial", "from_tables", "h5py+from_array", "naive", "page-cache"}
        assert all("error" not in row for row in methods.values()), methods
        assert methods["serial"]["vs serial"] == 1.0
    assert figures["rss_check"]["peak_rss"] > 0


def test_table_benchmark_runs_and_reports_ratios(tmp_path):
    printed, figures = run_benchmark("bench_table", "--rows", "20000", "--repeat", "1", folder=tmp_path)
    assert "targets" in printed
    assert set(figures["tasks"]) == {"mean", "count clustered", "count scattered"}
    assert figures["tasks"]["mean"]["serial Table.read"]["vs serial Table.read"] == 1.0
    assert set(figures["tasks"]["count scattered"]) == {
        "serial read_where",
        "read_table",
        "read_table (pandas file)",
        "pandas.read_hdf",
        "dd.read_hdf + filter",
    }


def test_write_benchmark_runs_and_reports_ratios(tmp_path):
    pytest.importorskip("h5py")
    pytest.importorskip("hdf5plugin")
    printed, figures = run_benchmark("bench_write", "--size", "4", "--repeat", "1", folder=tmp_path)
    assert "vs serial" in printed and "vs to_hdf5" in printed and "target:" in printed
    assert set(figures["cases"]) == {"uncompressed", "zlib", "blosc2"}
    for case in figures["cases"].values():
        methods = case["methods"]
        assert set(methods) == {"serial", "to_tables", "to_tables-existing", "to_hdf5"}
        assert all("error" not in row for row in methods.values()), methods
        assert methods["serial"]["vs serial"] == 1.0 and methods["to_hdf5"]["vs to_hdf5"] == 1.0
        assert all(row["GB/s"] > 0 for row in methods.values())


def test_every_pip_install_in_the_docs_works_from_a_checkout():
    """dask-tables is installed from its checkout: ``pip install ".[xarray]"``, never by its name."""
    commands = []
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.rst"))]:
        commands += [(doc.name, c) for c in re.findall(r"pip install ([^`\n&#]+)", doc.read_text())]
    assert len(commands) >= 4
    for doc, command in commands:
        for argument in command.split():
            if argument.startswith("-"):
                continue
            requirement = argument.strip("\"'")
            assert requirement.startswith("."), (
                f"{doc}: pip install {command}: {requirement} is not the checkout"
            )


def test_readme_is_a_front_page_that_names_every_filter():
    """At most 800 words; every filter dask_tables decodes is named (zlib for deflate, Fletcher-32)."""
    from dask_tables.filters import FILTERS

    readme = (ROOT / "README.md").read_text()
    assert len(readme.split()) <= 800
    spelled = {"deflate": "zlib", "fletcher32": "Fletcher-32", "lz4": "LZ4", "zstd": "Zstd", "szip": "szip"}
    for cls in FILTERS.values():
        name = spelled.get(cls.name, cls.name)
        assert name.lower() in readme.lower(), f"README.md does not name the {cls.name} filter"
    for page in ("threading", "dataframes", "xarray", "writing", "remote", "architecture"):
        assert f"docs/{page}.rst" in readme
