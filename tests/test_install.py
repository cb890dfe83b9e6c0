"""Installing without a C compiler: the install succeeds, and dask_tables says what it costs.

The compiled module (``dask_tables/hdf5/_chunkiter.c``) is optional at build
time.  This test builds the checkout with ``CC=/bin/false`` into a fresh
virtual environment (its build dependencies from PyPI, its runtime
dependencies borrowed from this interpreter's), with a stale compiled module
planted in ``build/`` as an earlier install leaves it, and reads from the
installed package: about 20-40 s.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

READ_TWICE = textwrap.dedent(
    """
    import json, sys, warnings
    import numpy as np, tables
    import dask_tables

    with tables.open_file("many.h5", "w") as f:
        for name in ("a", "b"):
            e = f.create_earray("/", name, atom=tables.Float32Atom(), shape=(0,), chunkshape=(64,))
            e.append(np.arange(64 * 50, dtype="f4"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        totals = [float(dask_tables.from_tables("many.h5", n).sum().compute(scheduler="threads"))
                  for n in ("a", "b")]
    slow = [str(w.message) for w in caught if issubclass(w.category, dask_tables.SlowChunkIndexWarning)]
    print(json.dumps({"file": dask_tables.__file__, "totals": totals, "warnings": slow}))
    """
)


def _stale_module(source: Path) -> Path:
    """A compiled module in ``build/`` where an earlier install left one, newer than its C source."""
    platform = f"lib.{sysconfig.get_platform()}-{sys.implementation.cache_tag}"
    stale = (
        source
        / "build"
        / platform
        / "dask_tables"
        / "hdf5"
        / f"_chunkiter{sysconfig.get_config_var('EXT_SUFFIX')}"
    )
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"a module compiled by an earlier install")
    later = os.stat(source / "dask_tables" / "hdf5" / "_chunkiter.c").st_mtime + 3600
    os.utime(stale, (later, later))
    return stale


@pytest.mark.timeout(300)
def test_install_without_c_compiler_succeeds_and_warns_once(tmp_path):
    source = tmp_path / "checkout"
    source.mkdir()
    for name in ("pyproject.toml", "setup.py", "README.md"):
        if (ROOT / name).exists():
            shutil.copy2(ROOT / name, source / name)
    shutil.copytree(
        ROOT / "dask_tables", source / "dask_tables", ignore=shutil.ignore_patterns("*.so", "__pycache__")
    )
    _stale_module(source)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", venv], check=True, timeout=60)
    python = venv / "bin" / "python"
    site = Path(
        subprocess.run(
            [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout.strip()
    )
    # The runtime dependencies: this interpreter's (a path entry; its .pth files are not run).
    ours = dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
    (site / "borrowed_dependencies.pth").write_text("\n".join(ours) + "\n")

    env = {**os.environ, "CC": "/bin/false", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    install = subprocess.run(
        [sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", source],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=240,
    )
    assert install.returncode == 0, install.stdout[-3000:] + install.stderr[-3000:]
    hdf5_dir = site / "dask_tables" / "hdf5"
    assert (hdf5_dir / "chunkindex.py").exists()
    assert not list(hdf5_dir.glob("_chunkiter*.so")), "a stale compiled module was installed"

    read = subprocess.run(
        [python, "-c", READ_TWICE], capture_output=True, text=True, cwd=tmp_path, timeout=120
    )
    assert read.returncode == 0, read.stderr[-3000:]
    found = json.loads(read.stdout)
    assert found["file"].startswith(str(site))
    assert found["totals"] == [float(sum(range(64 * 50)))] * 2
    (message,) = found["warnings"]  # once per process, though two indexes were read chunk by chunk
    assert "178.5 s" in message and "3.2 s" in message and "C compiler" in message

    info = subprocess.run(
        [venv / "bin" / "dask-tables", "info", "many.h5"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert info.returncode == 0, info.stderr[-3000:]
    assert "chunk index: read chunk by chunk" in info.stdout
    assert "_chunkiter is missing" in info.stdout
