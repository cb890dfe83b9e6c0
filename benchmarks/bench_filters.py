"""Benchmark: does each chunk decoder of the direct path run on two threads at once?

For each filter chain it writes a float64 array in chunks of 1 MiB (PyTables; LZF
through h5py), reads every chunk's stored bytes once (``read_chunk``), then
times decoding them all with :class:`dask_tables.filters.FilterChain`
(into a reused per-thread buffer, as the direct path does) on one thread
and on two threads (a ``ThreadPoolExecutor``), best of ``--repeat``.  A
decoder that holds the GIL shows a ratio near 1.0; one that releases it,
near the number of cores.

Also times the end-to-end case: a (N, 1024) float64 blosc2:lz4 CArray with
(1024, 128) chunks, ``from_tables(...).mean()`` on dask's threads (2)
against the synchronous scheduler and against a serial PyTables loop.

The ``GIL-free`` column runs a pure-Python counting thread while one
thread decodes, and divides its speed by its speed while that thread
sleeps: near 1.0 the decoder releases the GIL, near 0.0 it holds it.  It
needs no idle core, so it still tells on a loaded machine where the 2/1
ratio does not; it is sharpest with large chunks (``--chunk-mib 16``),
where one C call lasts milliseconds and a decoder that holds the GIL leaves
the counting thread nothing.

Run: ``PYTHONPATH=. python benchmarks/bench_filters.py`` (options: ``--chunks``,
``--repeat``, ``--filters``, ``--e2e-mib``, ``--dir``).
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import tables

from dask_tables.timing import best_of

CHUNK_VALUES = 131072  # 1 MiB of float64 (times --chunk-mib)

# name -> (PyTables filters or h5py options, share of --chunks to use: the slow decoders get fewer)
FILTERS: dict[str, tuple[dict, float]] = {
    "zlib": ({"complib": "zlib", "complevel": 1}, 1.0),
    "zlib+shuffle": ({"complib": "zlib", "complevel": 1, "shuffle": True}, 1.0),
    "blosc:lz4": ({"complib": "blosc:lz4", "complevel": 5, "shuffle": True}, 1.0),
    "blosc:zstd": ({"complib": "blosc:zstd", "complevel": 5, "shuffle": True}, 1.0),
    "blosc2:lz4": ({"complib": "blosc2:lz4", "complevel": 5, "shuffle": True}, 1.0),
    "blosc2:lz4 2-D b2nd": (
        {"complib": "blosc2:lz4", "complevel": 5, "shuffle": True, "_2d": ((1024, 128), 1024)},
        1.0,
    ),
    # PyTables gives these chunks blocks of (64, 1024): decoded, then reordered by numpy (2 MiB chunks)
    "blosc2:lz4 b2nd reorder": (
        {"complib": "blosc2:lz4", "complevel": 5, "shuffle": True, "_2d": ((64, 4096), 4096)},
        0.5,
    ),
    "shuffle": ({"_h5py": None, "shuffle": True}, 1.0),  # PyTables drops shuffle without compression
    "fletcher32": ({"complevel": 0, "fletcher32": True}, 1.0),
    "bzip2": ({"complib": "bzip2", "complevel": 1}, 0.1),
    "lzf": ({"_h5py": "lzf"}, 0.25),
}


def data(n_chunks: int) -> np.ndarray:
    """Smooth values with some noise: compressible, not trivially."""
    rng = np.random.default_rng(0)
    x = np.linspace(0, 100, n_chunks * CHUNK_VALUES)
    return np.round(np.sin(x) * 1000 + rng.normal(0, 1, x.size), 2)


def write(path: Path, options: dict, n_chunks: int) -> None:
    values = data(n_chunks)
    if "_h5py" in options:
        import h5py

        with h5py.File(path, "w") as f:
            extra = {k: v for k, v in options.items() if k != "_h5py"}
            f.create_dataset("x", data=values, chunks=(CHUNK_VALUES,), compression=options["_h5py"], **extra)
        return
    options = dict(options)
    two_d = options.pop("_2d", None)
    filters = tables.Filters(**options)
    with tables.open_file(path, "w") as f:
        if two_d:
            (rows, cols), columns = two_d  # a (rows, columns) array in chunks of chunkshape
            chunkshape = (rows * CHUNK_VALUES // 131072, cols)
            f.create_carray("/", "x", obj=values.reshape(-1, columns), chunkshape=chunkshape, filters=filters)
        else:
            f.create_carray("/", "x", obj=values, chunkshape=(CHUNK_VALUES,), filters=filters)


def stored_chunks(path: Path) -> tuple[list[tuple[bytes, int]], object]:
    from dask_tables.array.direct import chunk_decoder
    from dask_tables.array.verdict import direct_storage

    with tables.open_file(path) as f:
        leaf = f.root.x
        layout = direct_storage(leaf)
        assert layout is not None, "the direct path cannot read these filters"
        grid = [range(0, s, c) for s, c in zip(leaf.shape, leaf.chunkshape, strict=True)]
        coords = [(a,) for a in grid[0]] if len(grid) == 1 else [(a, b) for a in grid[0] for b in grid[1]]
        chunks = []
        for coord in coords:
            info = leaf.chunk_info(coord)
            chunks.append((bytes(leaf.read_chunk(coord)), int(info.filter_mask)))
    return chunks, chunk_decoder(layout)


def decode_all(chain, chunks, threads: int) -> None:
    scratch = threading.local()

    def one(item: tuple[bytes, int]) -> None:
        out = getattr(scratch, "out", None)
        if out is None:
            out = scratch.out = np.empty(chain.chunk_nbytes, dtype=np.uint8)
        chain.decode(item[0], item[1], out=out)

    if threads == 1:
        for item in chunks:
            one(item)
    else:
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(one, chunks))


def gil_free_share(chain, chunks) -> float:
    """How fast a pure-Python thread runs while one thread decodes, against while it sleeps.

    Near 1: the decoder lets the GIL go (the other thread runs as if alone);
    near 0: it holds the GIL.  Much less sensitive to other load on the
    machine than the 2/1 threads ratio.
    """
    count = [0]
    running = [True]

    def spin() -> None:
        n = 0
        while running[0]:
            n += 1
            if n % 1000 == 0:
                count[0] = n

    probe = threading.Thread(target=spin, daemon=True)
    probe.start()
    time.sleep(0.05)
    start, before = time.perf_counter(), count[0]
    time.sleep(0.5)
    idle_rate = (count[0] - before) / (time.perf_counter() - start)
    start, before = time.perf_counter(), count[0]
    while time.perf_counter() - start < 0.5:  # as long as the idle window: fast decoders loop
        decode_all(chain, chunks, 1)
    busy_rate = (count[0] - before) / (time.perf_counter() - start)
    running[0] = False
    probe.join()
    return busy_rate / idle_rate


def bench_filters(folder: Path, names: list[str], n_chunks: int, repeat: int) -> None:
    print(
        f"{'filters':24} {'chunks':>6} {'1 thread GB/s':>14} {'2 threads GB/s':>15} {'2/1':>6} {'GIL-free':>9}"
    )
    for name in names:
        options, share = FILTERS[name]
        count = max(4, int(n_chunks * share))
        path = folder / f"filters-{name.replace(':', '-').replace(' ', '_')}.h5"
        write(path, options, count)
        chunks, chain = stored_chunks(path)
        nbytes = chain.chunk_nbytes * len(chunks)
        one, _ = best_of(repeat, lambda chain=chain, chunks=chunks: decode_all(chain, chunks, 1))
        two, _ = best_of(repeat, lambda chain=chain, chunks=chunks: decode_all(chain, chunks, 2))
        free = gil_free_share(chain, chunks)
        print(
            f"{name:24} {len(chunks):6d} {nbytes / one / 1e9:14.2f} {nbytes / two / 1e9:15.2f} "
            f"{one / two:6.2f} {free:9.2f}",
            flush=True,
        )


def bench_e2e(folder: Path, mib: int, repeat: int) -> None:
    import dask

    import dask_tables

    rows = mib * 2**20 // (1024 * 8) // 1024 * 1024
    path = folder / "e2e-blosc2.h5"
    values = data(rows * 1024 // CHUNK_VALUES).reshape(rows, 1024)
    with tables.open_file(path, "w") as f:
        f.create_carray(
            "/",
            "x",
            obj=values,
            chunkshape=(1024, 128),
            filters=tables.Filters(complib="blosc2:lz4", complevel=5, shuffle=True),
        )
    del values
    x = dask_tables.from_tables(str(path), "/x")
    block = x.chunks[0][0]

    def serial() -> float:
        with tables.open_file(path) as f:
            total = 0.0
            for i in range(0, rows, block):
                total += f.root.x[i : i + block].sum()
        return total

    def dask_mean(scheduler: str) -> float:
        with dask.config.set(scheduler=scheduler, num_workers=2):
            return x.mean().compute()

    t_serial, _ = best_of(repeat, serial)
    t_sync, _ = best_of(repeat, lambda: dask_mean("synchronous"))
    t_threads, _ = best_of(repeat, lambda: dask_mean("threads"))
    gb = rows * 1024 * 8 / 1e9
    print(
        f"\nend to end: ({rows}, 1024) float64 blosc2:lz4, (1024, 128) chunks, {gb:.2f} GB, blocks {block} rows"
    )
    print(f"  serial PyTables loop  {t_serial:7.3f} s  {gb / t_serial:6.2f} GB/s")
    print(
        f"  from_tables sync      {t_sync:7.3f} s  {gb / t_sync:6.2f} GB/s  {t_serial / t_sync:5.2f}x serial"
    )
    print(
        f"  from_tables threads(2){t_threads:7.3f} s  {gb / t_threads:6.2f} GB/s  {t_serial / t_threads:5.2f}x serial"
    )
    print(f"  threads(2) / sync     {t_sync / t_threads:5.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=256, help="1 MiB chunks per filter chain (default 256)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--filters", default=",".join(FILTERS), help="comma-separated, from: " + ", ".join(FILTERS)
    )
    parser.add_argument("--e2e-mib", type=int, default=256, help="size of the end-to-end array; 0 skips it")
    parser.add_argument("--chunk-mib", type=int, default=1, help="MiB per chunk (default 1)")
    parser.add_argument("--dir", default=None)
    args = parser.parse_args()
    global CHUNK_VALUES
    CHUNK_VALUES = 131072 * args.chunk_mib
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        folder = Path(tmp)
        names = [n for n in args.filters.split(",") if n]
        if names:
            bench_filters(folder, names, args.chunks, args.repeat)
        if args.e2e_mib:
            bench_e2e(folder, args.e2e_mib, args.repeat)


if __name__ == "__main__":
    main()
