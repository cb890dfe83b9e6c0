"""The child of tests/test_xarray_oracle.py: every group of some HDF5 files, through both engines.

Run as ``python oracle_child.py OUT FILE...`` (a crash of HDF5 or PyTables
must not take pytest down).  For each file, each group h5py finds is opened
with ``engine="tables"`` and ``engine="h5netcdf"`` and compared: values,
dimensions, coordinates and attributes (``xr.testing.assert_identical``),
raw (both opened with ``decode_cf=False``) and CF-decoded (both opened with
xarray's defaults).  Writes one JSON record per group to OUT.

The comparison normalises what ``docs/xarray.rst`` lists as the documented
differences, and says which it applied:

- phony dimension names (numbered across the file here, per group there)
  are renamed alike on both sides;
- h5netcdf's compound variables (Tables, which ``engine="tables"`` makes
  datasets of their own) and object references (which it leaves out) are
  not opened with h5netcdf (``drop_variables``);
- PyTables' own attributes (``CLASS``, ``TITLE``, ``VERSION``...) are left
  out of h5netcdf's.

Nothing else is normalised: both engines decode (or, with ``decode_cf=False``,
take only the bool and byte-order steps) themselves.
"""

from __future__ import annotations

import contextlib
import json
import sys
import warnings

import h5py
import numpy as np
import xarray as xr
from tables.attributeset import issysattrname


def groups_and_drops(path: str) -> list[tuple[str, list[str]]]:
    """Every group h5py finds, with the datasets h5netcdf must not open there (Tables, references)."""
    found: list[tuple[str, list[str]]] = []
    with h5py.File(path, "r") as f:
        groups = [("/", f)]
        f.visititems(
            lambda name, obj: groups.append(("/" + name, obj)) if isinstance(obj, h5py.Group) else None
        )
        for name, group in groups:
            drops = []
            for key in group:
                link = group.get(key, getlink=True)
                if isinstance(link, h5py.ExternalLink):
                    continue
                with contextlib.suppress(Exception):
                    item = group[key]
                    if isinstance(item, h5py.Dataset) and (
                        item.dtype.names or h5py.check_ref_dtype(item.dtype)
                    ):
                        drops.append(key)
            found.append((name, drops))
    return found


def canonical_dims(ds: xr.Dataset) -> xr.Dataset:
    """Phony dimensions renamed by first use, variables in name order: alike for both engines."""
    names: dict[str, str] = {}
    for name in sorted(ds.variables):
        for dim in ds[name].dims:
            if dim.startswith("phony_dim_") and dim not in names:
                names[dim] = f"phony_{len(names)}"
    return ds.rename_dims(names) if names else ds


def without_pytables_attrs(ds: xr.Dataset) -> xr.Dataset:
    ds = ds.copy()
    ds.attrs = {k: v for k, v in ds.attrs.items() if not issysattrname(k)}
    for variable in ds.variables.values():
        variable.attrs = {k: v for k, v in variable.attrs.items() if not issysattrname(k)}
    return ds


def difference(ours: xr.Dataset | BaseException, theirs: xr.Dataset | BaseException) -> str | None:
    if isinstance(ours, BaseException) or isinstance(theirs, BaseException):
        if type(ours) is type(theirs):
            return None  # both refuse the same way (CF decoding of a bad units attribute, say)
        return f"tables: {describe(ours)}; h5netcdf: {describe(theirs)}"
    try:
        xr.testing.assert_identical(ours, theirs)
    except AssertionError as err:
        return str(err)[:2000]
    return None


def describe(outcome: object) -> str:
    if isinstance(outcome, BaseException):
        return f"{type(outcome).__name__}: {str(outcome)[:300]}"
    return "opened"


def attempt(make):
    try:
        return make()
    except Exception as err:  # a refusal is an outcome, compared and reported
        return err


def consistent(ds: xr.Dataset) -> xr.Dataset:
    """``ds``, if each variable's values have its dimensions (h5netcdf loads a dtype with a shape as more axes)."""
    for name, variable in ds.variables.items():
        if np.ndim(variable._data) != len(variable.dims):
            raise ValueError(f"{name}: {np.ndim(variable._data)}-d values for the dimensions {variable.dims}")
    return ds


def compare(path: str, group: str, drops: list[str]) -> dict:
    """One group through both engines: raw (``decode_cf=False``) and with xarray's defaults (decoded)."""
    record = {"file": path, "group": group, "dropped": drops}
    ours = attempt(lambda: xr.open_dataset(path, engine="tables", group=group, decode_cf=False).load())
    theirs = attempt(
        lambda: consistent(
            xr.open_dataset(
                path, engine="h5netcdf", group=group, phony_dims="sort", decode_cf=False, drop_variables=drops
            ).load()
        )
    )
    record["tables"] = None if isinstance(ours, xr.Dataset) else describe(ours)
    record["h5netcdf"] = None if isinstance(theirs, xr.Dataset) else describe(theirs)
    if record["tables"] or record["h5netcdf"]:
        return record
    record["pytables_attrs"] = without_pytables_attrs(theirs).attrs != theirs.attrs or any(
        without_pytables_attrs(theirs)[v].attrs != theirs[v].attrs for v in theirs.variables
    )
    record["raw"] = difference(canonical_dims(ours), canonical_dims(without_pytables_attrs(theirs)))
    decoded = attempt(lambda: canonical_dims(xr.open_dataset(path, engine="tables", group=group).load()))
    theirs_decoded = attempt(
        lambda: canonical_dims(
            without_pytables_attrs(
                xr.open_dataset(
                    path, engine="h5netcdf", group=group, phony_dims="sort", drop_variables=drops
                ).load()
            )
        )
    )
    record["cf"] = difference(decoded, theirs_decoded)
    record["variables"] = len(ours.variables)
    return record


def tree_difference(path: str) -> str | None:
    """How ``xr.open_datatree`` differs between the engines, decoded (their defaults) and raw: its
    groups, and each node's dataset."""
    for options in ({}, {"decode_cf": False}):
        ours = xr.open_datatree(path, engine="tables", **options)
        theirs = xr.open_datatree(path, engine="h5netcdf", phony_dims="sort", **options)
        if sorted(ours.groups) != sorted(theirs.groups):
            return f"{options}: groups: {sorted(ours.groups)} != {sorted(theirs.groups)}"
        for group in ours.groups:
            mine = canonical_dims(ours[group].to_dataset(inherit=False).load())
            found = difference(mine, canonical_dims(theirs[group].to_dataset(inherit=False).load()))
            if found:
                return f"{options} {group}: {found}"
    return None


def main(out: str, paths: list[str]) -> None:
    """Compare every group of ``paths``; one JSON line per group into ``out``."""
    warnings.simplefilter("ignore")  # in the child only: PyTables' and h5netcdf's warnings are expected
    np.seterr(all="ignore")
    with contextlib.suppress(ImportError):
        import hdf5plugin  # noqa: F401 - h5py then decodes Blosc, Blosc2, LZ4...: more groups compare
    with open(out, "w") as sink:
        for path in paths:
            try:
                found = groups_and_drops(path)
            except Exception:  # h5py cannot walk it: its root group, which then neither opens
                found = [("/", [])]
            if path.endswith(".nc"):  # a netCDF-4 file: the same tree of groups through both engines
                record = {"file": path, "tree": tree_difference(path)}
                print(json.dumps(record), file=sink, flush=True)
            for group, drops in found:
                try:
                    record = compare(path, group, drops)
                except Exception as err:  # the comparison itself failed: reported, never hidden
                    record = {"file": path, "group": group, "harness": describe(err)}
                print(json.dumps(record), file=sink, flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
