"""The ``dask-tables`` command: ``demo``, ``stats``, ``info`` and ``optimize``."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Iterator, Sequence
from typing import Any

import dask
import tables

from . import diagnostics
from .array.core import from_tables
from .demo import default_cache_dir, run_demo
from .errors import DaskTablesError, at_node
from .hdf5.chunkindex import slow_index_reason
from .info import format_table, inspect_file, to_json
from .optimize import optimize_file
from .remote.urls import display_url, is_url

__all__ = ["main", "node_stats"]

LOCAL_SCHEDULERS = ("threads", "processes", "synchronous")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dask-tables", description="Compute on PyTables/HDF5 data in parallel with dask."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser(
        "demo",
        help="write a sample file (once) and compute its mean serially, as the cookbook, and with from_tables",
        description="Write a sample HDF5 file into a cache folder (once; never over another file) and "
        "compute its mean with a serial PyTables loop, with the threading cookbook's threads, "
        "and with from_tables on dask threads.",
    )
    demo.add_argument(
        "--dir", default=None, help=f"folder of the sample file (default {default_cache_dir()})"
    )
    demo.add_argument(
        "--size-mib", type=int, default=256, help="size of the sample array in MiB (default 256)"
    )
    demo.add_argument("--workers", type=int, default=None, help="threads (default: one per core)")

    optimize = commands.add_parser(
        "optimize",
        help="rewrite a file with HDF5 paged aggregation (4 MiB pages), for object storage",
        description="Copy every node of SRC (attributes, filters, chunk shapes) into a new file DST "
        "with HDF5 paged aggregation, so that a reader of the object walks its metadata in few requests.",
    )
    optimize.add_argument("src", help="HDF5 file or URL (s3://, gs://, az://, https://) to read")
    optimize.add_argument(
        "dst", help="new HDF5 file or object URL (s3://, gs://, az://) to write (never overwritten)"
    )
    optimize.add_argument("--storage-options", type=_options, default=None, help=_OPTIONS_HELP)
    optimize.add_argument(
        "--dst-storage-options",
        type=_options,
        default=None,
        help="storage_options for DST if it needs others than SRC (JSON, as --storage-options)",
    )

    stats = commands.add_parser(
        "stats",
        help="count, mean, std, min and max of a node",
        description="Count, mean, std, min and max of an array node (or one table column), "
        "computed in one pass with a progress bar.",
    )
    stats.add_argument(
        "file", help="HDF5 file or URL (s3://, https://...), a pattern of either, or several joined by commas"
    )
    stats.add_argument("--storage-options", type=_options, default=None, help=_OPTIONS_HELP)
    stats.add_argument("node", help="node path, e.g. /group/array")
    stats.add_argument("--field", default=None, help="table column (group/name for nested ones)")
    stats.add_argument(
        "--chunks", default="auto", type=_chunks, help="dask chunks along axis 0, or 'auto' (default)"
    )
    stats.add_argument(
        "--scheduler",
        default="threads",
        type=_scheduler,
        help="threads (default), processes, synchronous, or the ADDRESS of a dask.distributed scheduler",
    )
    stats.add_argument(
        "--profile",
        action="store_true",
        help="after the figures, print dask_tables' diagnostics: lock time, chunks read and decoded, "
        "index builds (per worker for a cluster ADDRESS)",
    )
    _add_info_parser(commands)
    return parser


def _add_info_parser(commands: Any) -> None:
    info = commands.add_parser(
        "info",
        help="the nodes of a file: kind, shape, dtype, chunks, filters, sizes, and how reads go",
        description="Print the tree of nodes of an HDF5 file (or under NODE) as a table: kind, shape, "
        "dtype, chunkshape, filters, size on disk, compression ratio, and whether dask_tables reads "
        "each node directly or through HDF5 (and why).",
    )
    info.add_argument("file", help="HDF5 file, or URL of one (s3://bucket/key, https://...)")
    info.add_argument("--storage-options", type=_options, default=None, help=_OPTIONS_HELP)
    info.add_argument("node", nargs="?", default="/", help="a group (its subtree) or a leaf (default /)")
    info.add_argument("--json", action="store_true", help="print the same as JSON")


def _run_info(args: argparse.Namespace) -> int:
    infos = inspect_file(args.file, args.node, storage_options=args.storage_options)
    print(to_json(infos) if args.json else format_table(infos))
    slow = slow_index_reason()
    if slow is not None:  # after the table (stderr beside JSON, which stays parseable)
        print(f"\nchunk index: read chunk by chunk: {slow}", file=sys.stderr if args.json else sys.stdout)
    return 0


def node_stats(x: Any, scheduler: str = "threads", progress: bool = False) -> dict[str, float | int]:
    """Count, mean, std, min and max of a dask array, in one pass over the data.

    Parameters
    ----------
    x : dask.array.Array
        Numbers.
    scheduler : str, optional
        ``"threads"``, ``"processes"``, ``"synchronous"``, or the address of
        a ``dask.distributed`` scheduler (``"tcp://host:8786"``).
    progress : bool, optional
        Show a progress bar on standard error.

    Examples
    --------
    >>> import dask.array as da
    >>> node_stats(da.arange(5, chunks=2))
    {'count': 5, 'mean': 2.0, 'std': 1.4142135623730951, 'min': 0, 'max': 4}
    >>> node_stats(da.zeros((0, 3)))
    {'count': 0, 'mean': nan, 'std': nan, 'min': nan, 'max': nan}
    """
    if x.size == 0:  # numpy's reductions refuse (min, max) or warn (mean) on nothing
        return {
            "count": 0,
            "mean": float("nan"),
            "std": float("nan"),
            "min": float("nan"),
            "max": float("nan"),
        }
    parts = [x.mean(), x.std(), x.min(), x.max()]
    if scheduler in LOCAL_SCHEDULERS:
        from dask.diagnostics import ProgressBar

        bar = ProgressBar(out=sys.stderr) if progress else contextlib.nullcontext()
        with bar:
            mean, std, low, high = dask.compute(*parts, scheduler=scheduler)
    else:
        import distributed

        with distributed.Client(scheduler, timeout="10s", set_as_default=True) as client:
            futures = client.compute(parts)
            if progress:
                with contextlib.redirect_stdout(sys.stderr):  # keep stdout for the figures
                    distributed.progress(futures)
                    print()
            mean, std, low, high = client.gather(futures)
    return {
        "count": int(x.size),
        "mean": float(mean),
        "std": float(std),
        "min": low.item(),
        "max": high.item(),
    }


_OPTIONS_HELP = (
    'for URLs: storage_options as JSON, e.g. \'{"anon": true}\' or \'{"endpoint_url": "http://..."}\' '
    "(credentials are better left to the environment: AWS_ACCESS_KEY_ID...)"
)


def _options(spec: str) -> dict[str, Any]:
    """``--storage-options``: a JSON object (argparse exits with 2 otherwise)."""
    try:
        value = json.loads(spec)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"not JSON: {err}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("must be a JSON object ({...})")
    return value


def _files(spec: str) -> str | list[str]:
    return spec.split(",") if "," in spec else spec


def _chunks(spec: str) -> Any:
    """``--chunks``: 'auto' or a positive number of rows (argparse exits with 2 otherwise)."""
    if spec == "auto":
        return "auto"
    try:
        rows = int(spec)
    except ValueError:
        rows = 0
    if rows < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer or 'auto', not {spec!r}")
    return {0: rows}


def _scheduler(spec: str) -> str:
    """``--scheduler``: a local scheduler's name, or a scheduler address (``host:port``, ``tcp://...``)."""
    if spec in LOCAL_SCHEDULERS or ":" in spec:
        return spec
    raise argparse.ArgumentTypeError(
        f"{spec!r} is neither {', '.join(LOCAL_SCHEDULERS)} nor a scheduler ADDRESS such as tcp://host:8786"
    )


def _run_stats(args: argparse.Namespace) -> int:
    x = from_tables(
        _files(args.file),
        args.node,
        chunks=args.chunks,
        field=args.field,
        storage_options=args.storage_options,
    )
    if x.dtype.kind not in "biuf":
        hint = " (a table: choose a column with --field)" if x.dtype.names else ""
        raise TypeError(f"{at_node(args.file, args.node)} holds {x.dtype}, not numbers{hint}")
    with _profiling(args.scheduler) if args.profile else contextlib.nullcontext() as profile:
        result = node_stats(x, args.scheduler, progress=True)
    width = max(map(len, result))
    print(
        f"{args.file} {args.node}"
        + (f" field {args.field}" if args.field else "")
        + f": {x.dtype}, shape {x.shape}"
    )
    for key, value in result.items():
        print(f"  {key:<{width}}  {value}")
    if args.profile:
        _print_profile(profile)
    return 0


@contextlib.contextmanager
def _profiling(scheduler: str) -> Iterator[dict[str, dict[str, Any]]]:
    """Diagnostics of the block: this process's, or every worker's of a cluster (reset first)."""
    found: dict[str, dict[str, Any]] = {}
    if scheduler in LOCAL_SCHEDULERS:
        with diagnostics.collect() as stats:
            yield found
        found["this process" + (" (not its worker processes)" if scheduler == "processes" else "")] = stats
        return
    import distributed

    with distributed.Client(scheduler, timeout="10s", set_as_default=False) as client:
        client.run(diagnostics.reset)
    yield found
    with distributed.Client(scheduler, timeout="10s", set_as_default=False) as client:
        found.update(diagnostics.gather(client))


def _print_profile(profile: dict[str, dict[str, Any]]) -> None:
    for where, stats in profile.items():
        print(f"diagnostics, {where}:")
        print(diagnostics.report(stats))


def _run_demo(args: argparse.Namespace) -> int:
    print(
        f"dask-tables demo: mean of a {args.size_mib} MiB float64 array: serial loop, cookbook threads, "
        "from_tables (best of 3 runs after a warm-up)"
    )
    directory = args.dir or default_cache_dir()
    print(f"sample file: {directory}/demo-{args.size_mib}MiB.h5 (written once, then reused)", flush=True)
    result = run_demo(directory, args.size_mib, args.workers)
    print(result.report())
    return 0 if result.agree else 1


def _run_optimize(args: argparse.Namespace) -> int:
    optimize_file(
        args.src,
        args.dst,
        storage_options=args.storage_options,
        dst_storage_options=args.dst_storage_options,
    )
    shown = display_url(args.dst) if is_url(args.dst) else args.dst
    print(f"{shown}: written, paged (4 MiB pages)")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``dask-tables`` command line.

    Examples
    --------
    >>> main(["demo", "--dir", "cache", "--size-mib", "1"])  # doctest: +ELLIPSIS
    dask-tables demo: mean of a 1 MiB float64 array: serial loop, cookbook threads, from_tables (best of 3 runs after a warm-up)
    sample file: cache/demo-1MiB.h5 (written once, then reused)
    file: ...cache/demo-1MiB.h5 (1 MiB, float64, node /array)
      serial PyTables loop ...
      cookbook: ... threads, lock on open/close ...
      from_tables(...).mean(), ... threads ...
      results agree
    0
    """
    args = _parser().parse_args(argv)
    try:
        runners = {"demo": _run_demo, "stats": _run_stats, "info": _run_info, "optimize": _run_optimize}
        return runners[args.command](args)
    except (DaskTablesError, OSError, LookupError, TypeError, ValueError, tables.HDF5ExtError) as err:
        print(f"dask-tables: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
