"""Errors from the OS during a write: a full disk and a read-only file system, on a small tmpfs the test mounts.

Each arrives as an ``OSError`` with its ``errno``, the path and the reason,
from every scheduler; HDF5 prints nothing; the file and its folder are as
before, with no leftovers.  (Tests run as root, so EACCES and EDQUOT cannot
be produced here.)
"""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess

import dask
import dask.array as da
import dask.dataframe as dd
import numpy as np
import pandas as pd
import pytest
import tables

import dask_tables


@pytest.fixture
def small_disk(tmp_path):
    """A 20 MiB tmpfs at ``tmp_path / "disk"``, unmounted afterwards."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=20m", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def listing(folder) -> list[str]:
    return sorted(os.listdir(folder))


def existing_file(path) -> bytes:
    with tables.open_file(path, "w") as f:
        f.create_carray("/", "kept", obj=np.arange(1000.0))
    return path.read_bytes()


@pytest.mark.parametrize("new", [True, False], ids=["new-file", "existing-file"])
def test_a_write_larger_than_the_free_space_fails_early_with_the_figures(small_disk, new):
    path = small_disk / "f.h5"
    before = None if new else existing_file(path)
    entries = listing(small_disk)
    x = da.random.random((4000, 1000), chunks=(500, 1000))  # 32 MB uncompressed
    with pytest.raises(OSError) as info:
        dask_tables.to_tables(x, path, "/x")
    assert info.value.errno == errno.ENOSPC
    assert str(path) in str(info.value) and "bytes" in str(info.value)
    assert listing(small_disk) == entries
    if before is not None:
        assert path.read_bytes() == before


def _fill_disk_once(folder: str):
    def fill(block):
        ballast = os.path.join(folder, "ballast")
        if not os.path.exists(ballast):
            with open(ballast, "wb") as f, pytest.raises(OSError):
                while True:
                    f.write(b"\0" * 2**20)
                    f.flush()
        return block

    return fill


@pytest.mark.parametrize("scheduler", ["threads", "sync", "processes", "distributed"])
@pytest.mark.parametrize("kind", ["array", "frame"])
def test_a_disk_that_fills_during_the_write_gives_enospc_with_the_path(
    small_disk, scheduler, kind, capfd, request
):
    """The space check passes; a task then fills the disk: staging or the commit fails, nothing is lost."""
    if scheduler == "distributed":
        request.getfixturevalue("cluster_client")  # the default scheduler while it lives
        scheduler = None
    path = small_disk / "f.h5"
    before = existing_file(path)
    fill = _fill_disk_once(str(small_disk))
    if kind == "array":
        data = da.random.random((400, 1000), chunks=(50, 1000)).map_blocks(fill)
    else:
        frame = pd.DataFrame({"a": np.random.random(200_000), "b": np.arange(200_000)})
        data = dd.from_pandas(frame, npartitions=4).map_partitions(fill)
    chosen = dask.config.set(scheduler=scheduler) if scheduler else contextlib.nullcontext()
    with chosen, pytest.raises(OSError) as info:
        dask_tables.to_tables(data, path, "/new")
    assert info.value.errno == errno.ENOSPC, repr(info.value)
    assert str(path) in str(info.value)
    assert "HDF5-DIAG" not in capfd.readouterr().err
    os.unlink(small_disk / "ballast")
    assert listing(small_disk) == ["f.h5"]
    assert path.read_bytes() == before


def test_a_read_only_file_system_gives_erofs(small_disk):
    path = small_disk / "f.h5"
    before = existing_file(path)
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    for target in (path, small_disk / "new.h5"):
        with pytest.raises(OSError) as info:
            dask_tables.to_tables(np.ones(10), target, "/x")
        assert info.value.errno == errno.EROFS and str(target) in str(info.value)
    assert path.read_bytes() == before
