"""Survey: every node of PyTables' and h5py's own test files, read by dask_tables, each file in child processes.

Issue 14's first target: on these files, no crash, no wrong value, and no
filter problem reported as a damaged file.  For each file it lists the
leaves PyTables opens (arrays and tables; VLArrays and unimplemented nodes
are not dask_tables' to read), then reads each leaf

* with ``dask_tables.from_tables(path, node).compute(scheduler="threads")``,
* and with PyTables' own ``leaf.read()`` (the reference; where PyTables
  crashes on it, h5py's read with hdf5plugin),

each side in a child process with a timeout, so a crash is counted, not
suffered.  A side that crashes on a file is re-run one node at a time to
find the node.  Values are compared member by member, NaN equal to NaN.

Outcomes per leaf: ``equal``; ``refused`` (a dask_tables error naming the
reason: counted by exception type); ``wrong`` (values differ); ``crash``
(the child died or hung); ``damaged`` (a message calling a readable file
damaged).  The targets: ``wrong``, ``crash`` and ``damaged`` all 0.

Run: ``python benchmarks/survey_files.py`` (options: ``--timeout``,
``--json``).
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import subprocess
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from harness import last_line, run_child

LIST = """
import json, sys, warnings, tables
warnings.simplefilter("ignore")
leaves = []
with tables.open_file(sys.argv[1]) as f:
    for leaf in f.walk_nodes("/", "Leaf"):
        if isinstance(leaf, (tables.Array, tables.Table)) and not isinstance(leaf, tables.VLArray):
            leaves.append(leaf._v_pathname)
print(json.dumps(leaves))
"""

READ = """
import json, sys, warnings
import numpy as np
warnings.simplefilter("ignore")
path, out, side, nodes = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4].split("\\n")
outcome = {}
for number, node in enumerate(nodes):
    try:
        if side == "dask_tables":
            import dask_tables
            value = dask_tables.from_tables(path, node).compute(scheduler="threads", num_workers=2)
        elif side == "pytables":
            import tables
            with tables.open_file(path) as f:
                value = f.get_node(node).read()
        else:
            import h5py, hdf5plugin
            with h5py.File(path, "r") as f:
                value = f[node][()]
        np.save(f"{out}-{number}.npy", np.asarray(value), allow_pickle=True)
        outcome[node] = ["read", ""]
    except Exception as err:  # the outcome to count, whatever it is
        outcome[node] = [type(err).__name__, str(err)[:300]]
    print(json.dumps(outcome), flush=True)
"""


def child(script: str, args: list[str], timeout: float) -> tuple[int, str]:
    """(return code, last stdout line) of ``script`` in a fresh interpreter; -999 on a timeout."""
    try:
        done = run_child("-c", script, *args, timeout=timeout)
    except subprocess.TimeoutExpired:
        return -999, ""
    return done.returncode, last_line(done)


def read_side(path: str, nodes: list[str], side: str, folder: str, timeout: float) -> dict[str, list[str]]:
    """Each node's outcome on one side (``["read", ""]``, an exception, or ``["crash", ...]``)."""
    out = os.path.join(folder, side)
    rc, last = child(READ, [path, out, side, "\n".join(nodes)], timeout * max(1, len(nodes)))
    if rc == 0:
        return json.loads(last)
    outcome: dict[str, list[str]] = {}
    for number, node in enumerate(nodes):  # find the node that crashes
        rc, last = child(READ, [path, f"{out}-one", side, node], timeout)
        if rc == 0:
            outcome[node] = json.loads(last)[node]
            if outcome[node][0] == "read":
                os.replace(f"{out}-one-0.npy", f"{out}-{number}.npy")
        else:
            outcome[node] = ["crash", f"exit {rc}" if rc != -999 else f"no answer in {timeout} s"]
    return outcome


def same(got: np.ndarray, want: np.ndarray) -> bool:
    """Equal values, member by member, NaN equal to NaN (layouts may differ: the file's, PyTables')."""
    if got.shape != want.shape:
        return False
    if want.dtype.names is not None:
        return got.dtype.names == want.dtype.names and all(same(got[n], want[n]) for n in want.dtype.names)
    if want.dtype.kind in "fc" and got.dtype.kind in "fc":
        return bool(np.array_equal(got, want, equal_nan=True))
    return bool(np.array_equal(got, want))


def survey_file(path: str, timeout: float) -> dict[str, dict[str, Any]]:
    """node -> {"outcome", "detail"} for each leaf of ``path``."""
    rc, last = child(LIST, [path], timeout)
    if rc != 0:
        return {"/": {"outcome": "PyTables cannot open", "detail": f"exit {rc}"}}
    nodes = json.loads(last)
    if not nodes:
        return {}
    with tempfile.TemporaryDirectory() as folder:
        ours = read_side(path, nodes, "dask_tables", folder, timeout)
        reference = read_side(path, nodes, "pytables", folder, timeout)
        crashed = [n for n in nodes if reference[n][0] != "read"]
        fallback = read_side(path, crashed, "h5py", folder, timeout) if crashed else {}
        found = {}
        for number, node in enumerate(nodes):
            kind, message = ours[node]
            ref_side = "pytables" if reference[node][0] == "read" else "h5py"
            ref_ok = ref_side == "pytables" or fallback.get(node, ["?"])[0] == "read"
            if kind == "crash":
                outcome = "crash"
            elif "damaged" in message.lower():
                outcome = "damaged"
            elif kind != "read":
                outcome = f"refused: {kind}"
            elif not ref_ok:
                outcome = "read, no reference"
            else:
                index = number if ref_side == "pytables" else crashed.index(node)
                want = np.load(os.path.join(folder, f"{ref_side}-{index}.npy"), allow_pickle=True)
                got = np.load(os.path.join(folder, f"dask_tables-{number}.npy"), allow_pickle=True)
                outcome = "equal" if same(got, want) else f"wrong (against {ref_side})"
            found[node] = {"outcome": outcome, "detail": message, "reference": reference[node][0]}
        return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timeout", type=float, default=60, help="seconds per node read")
    parser.add_argument("--json", default=None, help="also write every node's outcome to this file")
    args = parser.parse_args()
    import h5py
    import tables

    files = sorted(glob.glob(os.path.join(os.path.dirname(tables.__file__), "tests", "*.h5")))
    files += sorted(
        glob.glob(os.path.join(os.path.dirname(h5py.__file__), "tests", "**", "*.h5"), recursive=True)
    )
    counts: Counter[str] = Counter()
    every = {}
    for path in files:
        found = survey_file(path, args.timeout)
        every[path] = found
        for node, result in found.items():
            counts[result["outcome"]] += 1
            if result["outcome"] not in ("equal",) and not result["outcome"].startswith("refused"):
                print(f"  {Path(path).name}:{node}: {result['outcome']} {result['detail'][:120]}", flush=True)
    print(f"{len(files)} files, {sum(counts.values())} leaves:")
    for outcome, count in counts.most_common():
        print(f"  {count:4d} {outcome}")
    bad = {k: counts[k] for k in counts if k in ("crash", "damaged") or k.startswith("wrong")}
    print(f"targets: crash 0, wrong 0, damaged 0: {bad if bad else 'met'}")
    if args.json:
        Path(args.json).write_text(json.dumps(every, indent=1))


if __name__ == "__main__":
    main()
