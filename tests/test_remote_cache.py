"""The shadow cache on local disk (bounded, least recently used first, shared by processes), bodies of
the wrong length, and URL patterns: against servers started here on 127.0.0.1.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import dask
import numpy as np
import pandas as pd
import pytest
import tables
from helpers import ROOT, child_json, records, run_python
from servers import RangeServer

import dask_tables
from dask_tables.hdf5.fingerprint import Fingerprint
from dask_tables.remote import shadow as shadows
from dask_tables.remote.transport import WRONG_LENGTH_TRIES, RemoteFile, RemoteReadError
from dask_tables.remote.urls import StorageOptions

pytest.importorskip("obstore")
pytest.importorskip("h5py")

pytestmark = pytest.mark.usefixtures("own_shadow_cache")

VALUES = np.arange(40_000, dtype="f8")


def write_file(path, offset: float = 0.0) -> None:
    """Two chunked arrays (the shadow holds their metadata, not their chunks) and a table."""
    with tables.open_file(path, "w") as f:
        f.create_carray("/", "x", obj=VALUES + offset, chunkshape=(1000,), filters=tables.Filters(1))
        f.create_carray("/", "y", obj=-VALUES - offset, chunkshape=(1000,), filters=tables.Filters(1))
        f.create_table("/", "t", obj=records(500), chunkshape=(64,))


def resolved(server: RangeServer, name: str) -> RemoteFile:
    return RemoteFile(f"{server.url}/{name}", StorageOptions()).resolve()


def on_disk(folder: Path) -> int:
    """Bytes on disk of everything in the cache folder (shadows and their manifests)."""
    return sum(p.stat().st_blocks * 512 for p in folder.iterdir())


def manifest(shadow: shadows.Shadow) -> Path:
    return Path(shadow.path).with_suffix(".json")


def test_cache_stays_within_its_bound_least_recently_used_first(tmp_path, monkeypatch) -> None:
    """Shadows of 4 objects in a cache bounded to 2.5 of them: at most 2 stay, the least recently used go.

    KEEP_RECENT is 0 here: at its 600 s every shadow this test makes within seconds would count as
    used lately by some process and be spared, so no bound could be kept within a test.
    """
    monkeypatch.setattr(shadows, "KEEP_RECENT", 0.0)
    names = [f"o{k}.h5" for k in range(4)]
    for name in names:
        write_file(tmp_path / name)
    folder = shadows.cache_dir()

    def held() -> set[str]:
        return {p.name for p in folder.glob("*.h5")}

    with RangeServer(tmp_path) as server:
        remotes = [resolved(server, name) for name in names]
        first = shadows.shadow_of(remotes[0])
        size = Path(first.path).stat().st_blocks * 512
        assert size >= 64 * 2**10  # a few blocks of metadata: the manifests (4 KiB each) fit beside 2
        limit = 2 * size + size // 2
        with dask.config.set({"dask_tables.remote-cache-size": limit}):
            built = {0: Path(first.path).name}
            time.sleep(0.05)
            built[1] = Path(shadows.shadow_of(remotes[1]).path).name
            assert held() == {built[0], built[1]} and on_disk(folder) <= limit
            time.sleep(0.05)
            shadows.clear_process_cache()  # o0 used again (found on disk): o1 is now the least recently used
            assert shadows.shadow_of(remotes[0]).requests == 0
            time.sleep(0.05)
            built[2] = Path(shadows.shadow_of(remotes[2]).path).name
            assert held() == {built[0], built[2]} and on_disk(folder) <= limit
            time.sleep(0.05)
            built[3] = Path(shadows.shadow_of(remotes[3]).path).name
            assert held() == {built[2], built[3]} and on_disk(folder) <= limit
            for suffix in (".json", ".lock"):  # manifests and build locks go with their shadows
                assert not (folder / built[0]).with_suffix(suffix).exists()
            shadows.clear_process_cache()
            again = shadows.shadow_of(remotes[1])  # an evicted shadow is fetched again when needed
            assert again.requests >= 1
            np.testing.assert_array_equal(dask_tables.from_tables(remotes[1].url, "/x").compute(), VALUES)
            assert on_disk(folder) <= limit


def test_build_locks_of_failed_builds_are_removed_by_a_later_eviction(tmp_path, monkeypatch) -> None:
    """A build that fails (not an HDF5 file) leaves its ``.lock``; eviction removes it once stale."""
    (tmp_path / "notes.h5").write_bytes(b"not HDF5 at all" * 100)
    write_file(tmp_path / "a.h5")
    folder = shadows.cache_dir()
    with RangeServer(tmp_path) as server:
        with pytest.raises(dask_tables.NotHDF5FileError, match=r"notes\.h5"):
            shadows.shadow_of(resolved(server, "notes.h5"))
        assert [p.suffix for p in folder.iterdir()] == [".lock"]
        shadows.shadow_of(resolved(server, "a.h5"))  # a build evicts: the orphan is not stale yet
        assert len(list(folder.glob("*.lock"))) == 2
        monkeypatch.setattr(shadows, "KEEP_RECENT", 0.0)
        shadows.clear_process_cache()
        shadows.shadow_of(resolved(server, "a.h5"))  # found on disk: no build, no eviction
        shadows._evict(folder, shadows.cache_limit(), keep=Path(folder / "none.h5"))
        assert sorted(p.suffix for p in folder.iterdir()) == [".h5", ".json", ".lock"]  # a.h5's stays


def test_stores_of_presigned_urls_are_bounded() -> None:
    """Each presigned URL is its own obstore store (its query goes with every request): a bounded few."""
    from dask_tables.remote import transport

    for k in range(transport.MAX_STORES + 10):
        transport._store("http", f"https://127.0.0.1:9/a.h5?sig=s{k:04d}", StorageOptions())
    assert len(transport._stores) <= transport.MAX_STORES


def test_a_chained_urls_password_is_never_shown() -> None:
    url = "zip://inner.h5::ftp://me:s3cretPW@127.0.0.1:1/a.zip"
    with pytest.raises(OSError) as err:
        RemoteFile(url, StorageOptions()).resolve()
    assert "s3cretPW" not in str(err.value) and "ftp://me@127.0.0.1:1/a.zip" in str(err.value)


def test_hits_of_the_process_cache_keep_a_shadow_recently_used(tmp_path) -> None:
    """A process that reads a shadow from its own cache only keeps it used lately: no eviction removes it.

    Once, hits of the process's cache did not refresh the use time (the manifest's): after KEEP_RECENT
    another process's eviction removed a shadow this process was reading.
    """
    write_file(tmp_path / "a.h5")
    with RangeServer(tmp_path) as server:
        remote = resolved(server, "a.h5")
        shadow = shadows.shadow_of(remote)
        folder = Path(shadow.path).parent
        long_ago = time.time() - 2 * shadows.KEEP_RECENT
        os.utime(manifest(shadow), (long_ago, long_ago))  # read from this process's cache only, for 20 min
        server.reset_counts()
        assert shadows.shadow_of(remote) == shadow and server.requests == 0  # a hit of the process's cache
        assert manifest(shadow).stat().st_mtime > time.time() - 60  # marks it used
        shadows._evict(folder, 0, keep=folder / "other.h5")  # another process needs all the room
        assert Path(shadow.path).exists() and manifest(shadow).exists()  # spared: used lately
        os.utime(manifest(shadow), (long_ago, long_ago))  # this process sat idle for 20 min
        shadows._evict(folder, 0, keep=folder / "other.h5")
        assert not Path(shadow.path).exists()  # so the eviction does remove a shadow unused that long


def test_a_shadow_built_again_by_another_process_is_read_again(tmp_path) -> None:
    """A shadow evicted, then built again (a new file) by another process: this process reads the new one.

    Once, this process kept the old one's fingerprint: every chunk index it had not read yet raised
    FileChangedError naming the local shadow, for an object that never changed.
    """
    write_file(tmp_path / "a.h5")
    with RangeServer(tmp_path) as server:
        remote = resolved(server, "a.h5")
        np.testing.assert_array_equal(dask_tables.from_tables(remote.url, "/x").compute(), VALUES)
        shadow = shadows.shadow_of(remote)
        for gone in (Path(shadow.path), manifest(shadow)):  # evicted by another process
            gone.unlink()
        rebuilt = shadows.build_shadow(remote, Path(shadow.path))  # what another process does next
        assert rebuilt.fingerprint != shadow.fingerprint
        y = dask_tables.from_tables(remote.url, "/y")  # a node whose chunk index this process has not read
        np.testing.assert_array_equal(y.compute(), -VALUES)
        now = shadows.shadow_of(remote)
        assert now.fingerprint == Fingerprint.of(now.path) == rebuilt.fingerprint
        assert now.requests == 0  # found on disk, not fetched again


def test_another_process_finds_the_shadow_and_fetches_no_metadata(tmp_path) -> None:
    """A second process with the same cache folder reads the URL with its HEAD and the chunks' GETs only."""
    write_file(tmp_path / "a.h5")
    with RangeServer(tmp_path) as server:
        built = shadows.shadow_of(resolved(server, "a.h5"))
        assert built.requests >= 2  # the metadata cost requests here
        server.reset_counts()
        done = run_python(
            """
            import json, sys
            import dask_tables
            from dask_tables import diagnostics
            from dask_tables.remote import shadow as shadows
            x = dask_tables.from_tables(sys.argv[1], "/x")
            with diagnostics.collect() as stats:
                total = float(x.sum().compute(scheduler="sync"))
            (shadow,) = shadows._shadows.values()
            print(json.dumps({"path": shadow.path, "requests": shadow.requests, "fetched": shadow.fetched,
                              "chunk_requests": stats["remote_requests"], "sum": total}))
            """,
            server.url + "/a.h5",
            env={
                "DASK_TABLES_CACHE": os.environ["DASK_TABLES_CACHE"],
                "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
            },
        )
        child = child_json(done)
        assert child["sum"] == VALUES.sum()
        assert (child["path"], child["requests"], child["fetched"]) == (built.path, 0, 0)
        assert child["chunk_requests"] >= 1
        assert server.requests == 1 + child["chunk_requests"]  # one HEAD, then chunks: no metadata
        assert Fingerprint.of(built.path) == built.fingerprint  # the same file, not built again


def write_blob(path) -> bytes:
    data = bytes(range(256)) * 400
    path.write_bytes(data)
    return data


def test_body_of_the_wrong_length_is_fetched_again_then_refused(tmp_path) -> None:
    """A 206 whose Content-Range claims the range asked for but whose body (and Content-Length) is half
    of it reaches our own check (obstore passes it on): fetched again, and never returned short.
    """
    data = write_blob(tmp_path / "blob.bin")
    write_file(tmp_path / "a.h5")
    with RangeServer(tmp_path) as server:
        blob = resolved(server, "blob.bin")
        server.reset_counts()
        server.inject(*["short-lying"] * (WRONG_LENGTH_TRIES - 1))
        assert bytes(blob.get(1000, 9000)) == data[1000:9000]
        assert server.requests == WRONG_LENGTH_TRIES
        server.inject(*["short-lying"] * WRONG_LENGTH_TRIES)
        with pytest.raises(RemoteReadError, match=r"/blob\.bin: GET bytes 1000-9000 returned 4000 bytes.*"):
            blob.get(1000, 9000)
        # an honest 206 of fewer bytes (its Content-Range says so), which obstore refuses: asked again too
        server.reset_counts()
        server.inject(*["short"] * (WRONG_LENGTH_TRIES - 1))
        assert bytes(blob.get(1000, 9000)) == data[1000:9000]
        assert server.requests == WRONG_LENGTH_TRIES
        server.inject(*["short"] * WRONG_LENGTH_TRIES)
        with pytest.raises(
            RemoteReadError, match=r"/blob\.bin: GET bytes 1000-9000 returned a shorter range"
        ):
            blob.get(1000, 9000)

        # through from_tables: one task, one request (all 40 chunks adjacent: one merged range)
        x = dask_tables.from_tables(server.url + "/a.h5", "/x", chunks=40_000)
        server.inject(*["short-lying"] * (WRONG_LENGTH_TRIES - 1))
        np.testing.assert_array_equal(x.compute(scheduler="sync"), VALUES)
        server.inject(*["short-lying"] * WRONG_LENGTH_TRIES)
        with pytest.raises(RemoteReadError, match=r"/a\.h5: GET bytes .* never decoded"):
            x.compute(scheduler="sync")  # a half body of zlib chunks would fail to decode otherwise
        np.testing.assert_array_equal(x.compute(scheduler="sync"), VALUES)


@pytest.fixture(scope="module")
def runs(s3_bucket, tmp_path_factory):
    """Under ``pattern/`` in the bucket: run-1.h5 and run-2.h5 (different values), frame-1.h5 and
    frame-2.h5 (pandas tables), and other.h5, which no pattern below matches.
    """
    root = tmp_path_factory.mktemp("runs")
    for k in (1, 2):
        write_file(root / f"run-{k}.h5", offset=1000.0 * k)
        pd.DataFrame({"a": np.arange(300) + 1000 * k, "b": np.arange(300) * 0.5}).to_hdf(
            root / f"frame-{k}.h5", key="df", format="table", data_columns=["a"]
        )
        for kind in ("run", "frame"):
            s3_bucket.put(f"pattern/{kind}-{k}.h5", root / f"{kind}-{k}.h5")
    s3_bucket.put("pattern/other.h5", root / "run-1.h5")
    return s3_bucket, root


def test_read_table_of_a_url_pattern_equals_local(runs) -> None:
    bucket, root = runs
    options = bucket.storage_options
    for name, node, kwargs in (
        ("run-*.h5", "/t", {"columns": ["a", "pos/x"], "where": "a % 7 == 1", "chunksize": 100}),
        ("frame-*.h5", "/df", {"where": "a > 1250"}),
        ("frame-*.h5", "/df", {}),
    ):
        remote = dask_tables.read_table(
            bucket.url("pattern/" + name), node, storage_options=options, **kwargs
        )
        expected = dask_tables.read_table(str(root / name), node, **kwargs)
        assert remote.npartitions == expected.npartitions >= 2
        assert remote.divisions == expected.divisions
        pd.testing.assert_frame_equal(remote.compute(), expected.compute())
    got = dask_tables.read_table(bucket.url("pattern/frame-*.h5"), "/df", storage_options=options).compute()
    assert sorted(set(got["a"] // 1000)) == [1, 2] and got["a"].is_monotonic_increasing  # both, in order
    assert dask_tables.from_tables(bucket.url("pattern/run-*.h5"), "/x", storage_options=options).shape == (
        2 * VALUES.size,
    )  # other.h5 is not among them


def test_open_mfdataset_of_s3_urls_equals_local(runs) -> None:
    """xarray does no wild-card matching of URLs for engines but zarr: a list of URLs, as for local files."""
    xr = pytest.importorskip("xarray")
    bucket, root = runs
    kwargs = {"engine": "tables", "combine": "nested", "concat_dim": "phony_dim_0", "group": None}
    remote = xr.open_mfdataset(
        [bucket.url(f"pattern/run-{k}.h5") for k in (1, 2)],
        storage_options=bucket.storage_options,
        **kwargs,
    )
    local = xr.open_mfdataset([root / f"run-{k}.h5" for k in (1, 2)], **kwargs)
    xr.testing.assert_identical(remote.load(), local.load())
    np.testing.assert_array_equal(remote["x"].values, np.concatenate([VALUES + 1000, VALUES + 2000]))
