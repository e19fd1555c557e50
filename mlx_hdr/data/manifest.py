"""Scan a dataset once into a JSON-lines manifest that training reads instead of rescanning.

Line 1 is a header ``{"format": "mlx-hdr-manifest", "version": 1, "root": ..., "layout": ...,
"max_value": ..., "unpaired": [...], "left_out": [{"file", "why"}, ...]}`` (files a layout
leaves out on purpose, as bracket frames that clip too much); every further line is one pair:
``name, ldr, hdr`` (paths relative to root; ``ldr`` null for HDR-only data), ``kind``,
``width, height`` (of the HDR as stored), ``max`` (largest HDR value), ``dr_stops``
(log2 of P99.9 / P0.1 of luminance over Y > 0), ``orientation`` (op to apply to the HDR so
it matches the LDR, null without LDR), ``orientation_score`` (SSIM), ``kept``, ``reason``
(why dropped: ``too_bright``, ``unreadable``, ``size_mismatch``, ``black``) and ``detail``.

The brightness filter of the original hybrid-autoencoder recipe (max > ``max_value``, default
4096) is applied to paired data,
whose HDRs are scaled relative to their LDR. The scale of an HDR-only file is arbitrary, so
there the filter is applied per simulated sample after exposure, by
:class:`~mlx_hdr.data.sources.PoolSource`.
"""

from __future__ import annotations

import json
import os
import statistics
import warnings
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from mlx_hdr.data.datasets import Pair, pool_kind, scan_dataset
from mlx_hdr.data.orientation import DIHEDRAL, find_orientation
from mlx_hdr.data.preprocess import MAX_HDR_VALUE, dynamic_range_stops, keep_hdr
from mlx_hdr.errors import InputError, UsageError
from mlx_hdr.io.atomic import atomic_write, check_folder_of
from mlx_hdr.io.image_io import read_hdr, read_ldr

FORMAT = "mlx-hdr-manifest"


@dataclass
class Manifest:
    """A read manifest: its header and its records (paths as stored, relative to root)."""

    header: dict
    records: list[dict]

    @property
    def root(self) -> Path:
        """The dataset folder the record paths are relative to (as named when indexed)."""
        return Path(self.header["root"])

    def path(self, record: dict, key: str) -> Path | None:
        """Absolute path of a record's ``"ldr"`` or ``"hdr"`` (None when absent)."""
        return None if record.get(key) is None else self.root / record[key]

    def kept(self) -> list[dict]:
        """The records with ``kept`` true, in file order."""
        return [r for r in self.records if r["kept"]]


def _rel(path: Path | None, root: Path) -> str | None:
    """``path`` relative to the dataset folder ``root`` (both absolute), ``..`` where it lies
    outside it (a bracket set's merged HDR beside its folder, a link's target kept unresolved)."""
    return None if path is None else os.path.relpath(path, root)


def index_pair(pair: Pair, root: Path, max_value: float = MAX_HDR_VALUE, orient: bool = True):
    """Measure one pair and decide whether to keep it (one manifest record)."""
    rec = {"name": pair.name, "ldr": _rel(pair.ldr_path, root), "hdr": _rel(pair.hdr_path, root)}
    rec |= {"kind": pair.kind, "width": None, "height": None, "max": None, "dr_stops": None}
    rec |= {"orientation": None, "orientation_score": None, "kept": False, "reason": None}
    rec["detail"] = None
    try:
        hdr = read_hdr(pair.hdr_path)
        ldr = read_ldr(pair.ldr_path) if pair.ldr_path is not None else None
    except InputError as exc:
        return rec | {"reason": "unreadable", "detail": str(exc)}
    rec |= {"height": hdr.shape[0], "width": hdr.shape[1], "max": float(hdr.max())}
    black = [
        what for what, img in (("HDR", hdr), ("LDR", ldr)) if img is not None and not img.any()
    ]
    if black:  # as evaluate refuses such a ground truth: nothing to learn from
        return rec | {"reason": "black", "detail": f"the {black[0]} is 0 in every pixel"}
    rec["dr_stops"] = round(dynamic_range_stops(hdr), 3)
    kept, why = keep_hdr(rec["max"], max_value) if ldr is not None else (True, None)
    if not kept:
        return rec | {"reason": "too_bright", "detail": why}
    if ldr is not None and orient:
        try:
            found = find_orientation(ldr, hdr)
        except ValueError as exc:
            return rec | {"reason": "size_mismatch", "detail": str(exc)}
        rec |= {"orientation": found.op, "orientation_score": round(found.score, 4)}
    elif ldr is not None and ldr.shape != hdr.shape:
        return rec | {"reason": "size_mismatch", "detail": f"{ldr.shape} vs {hdr.shape}"}
    return rec | {"kept": True}


MARKED = (
    "its set marks pixels not to score (a ghost box or an image circle): "
    "`mlx-hdr evaluate` scores it without them; a manifest takes none of its frames"
)


def index_dataset(
    root,
    out=None,
    max_value: float = MAX_HDR_VALUE,
    orient: bool = True,
    workers: int = 2,
    progress: bool = False,
) -> Manifest:
    """Scan ``root`` (any layout of :mod:`mlx_hdr.data.datasets`), measure every pair and
    write the manifest to ``out`` atomically when given. Returns the manifest. The frames of
    a bracket set that marks pixels not to score (a ghost box, an image circle) are left out:
    their truth is wrong or empty there, and a manifest keeps no such mark."""
    if out is not None:
        check_manifest_output(out)
    ds = scan_dataset(root)
    root = ds.root.absolute()  # links are kept as named: their targets may lie elsewhere
    left = [(f, MARKED if f.parent in ds.marked else why) for f, why in ds.left_out]
    ds.left_out = left + [(p.ldr_path, MARKED) for p in ds.pairs if p.region is not None]
    pairs = [
        Pair(p.name, p.ldr_path and p.ldr_path.absolute(), p.hdr_path.absolute(), p.kind)
        for p in ds.pairs
        if p.region is None
    ]
    with ThreadPoolExecutor(max(1, workers)) as pool:
        it = pool.map(lambda p: index_pair(p, root, max_value, orient), pairs)
        if progress:
            from tqdm import tqdm

            it = tqdm(it, total=len(pairs), desc="index", unit="pair")
        records = list(it)
    header = {"format": FORMAT, "version": 1, "root": str(root), "layout": ds.layout}
    header |= {"max_value": max_value, "unpaired": [_rel(p.absolute(), root) for p in ds.unpaired]}
    header["left_out"] = [{"file": _rel(p.absolute(), root), "why": w} for p, w in ds.left_out]
    manifest = Manifest(header, records)
    if out is not None:
        write_manifest(manifest, out)
    return manifest


def check_manifest_output(path) -> None:
    """``UsageError`` where ``path`` is an existing file other than a manifest (a bracket
    set's ``merged.hdr``, a photo, its ``exposures.json``): writing the manifest there
    would replace it. An earlier manifest may be replaced."""
    path = Path(path)
    check_folder_of(path)
    if not path.is_file() or path.stat().st_size == 0:  # an empty file (mktemp's) holds nothing
        return
    try:
        with path.open("rb") as f:
            header = json.loads(f.readline(1 << 20))
    except (OSError, ValueError):
        header = None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise UsageError("exists and is not a manifest: it would be overwritten", path)


def write_manifest(manifest: Manifest, path) -> Path:
    """Write a manifest as JSON lines, atomically. Its header also records where the dataset
    folder lies from the manifest's own folder (``root_from_manifest``), so that the two moved
    together are read together (:func:`read_manifest`)."""
    path = Path(path)
    beside = os.path.relpath(manifest.header["root"], path.parent.absolute())
    header = manifest.header | {"root_from_manifest": beside}
    with atomic_write(path, parents=True) as tmp, open(tmp, "w") as f:
        for row in [header, *manifest.records]:
            f.write(json.dumps(row) + "\n")
    return path


def read_manifest(path) -> Manifest:
    """Read a manifest written by :func:`write_manifest`; ``InputError`` if it is not one."""
    path = Path(path)
    if not path.is_file():
        raise InputError("no such manifest or dataset folder", path)
    try:
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"not a JSON-lines manifest ({exc})", path) from None
    if not rows or not isinstance(rows[0], dict) or rows[0].get("format") != FORMAT:
        raise InputError(f"not an mlx-hdr manifest (first line must have format={FORMAT})", path)
    if not isinstance(rows[0].get("root"), str) or not isinstance(
        rows[0].get("unpaired", []), list
    ):
        raise InputError("manifest header without its dataset folder (root) or unpaired list", path)
    left = rows[0].get("left_out", [])
    if not isinstance(left, list) or not all(isinstance(r, dict) for r in left):
        raise InputError("manifest header's left_out is not a list of {file, why}", path)
    for line, rec in enumerate(rows[1:], start=2):
        if problem := _bad_record(rec):
            raise InputError(f"manifest line {line}: {problem}", path)
    return Manifest(_moved_root(rows[0], rows[1:], path), rows[1:])


def _moved_root(header: dict, records: list[dict], path: Path) -> dict:
    """``header`` with its dataset folder found again where the manifest ``path`` and the
    folder were moved together (``root_from_manifest``), with a warning, where the folder it
    names lacks the first kept record's files and that one has them; else as it is."""
    root, beside = Path(header["root"]), header.get("root_from_manifest")
    if not isinstance(beside, str):
        return header
    moved = Path(os.path.normpath(path.parent.absolute() / beside))
    first = next((r for r in records if r["kept"]), None)
    files = [] if first is None else [first[k] for k in ("ldr", "hdr") if first.get(k)]
    there = all((root / f).is_file() for f in files) if root.is_dir() else False
    if there or moved == root or not all((moved / f).is_file() for f in files):
        return header
    warnings.warn(f"{path}: dataset folder {root} lacks its files; reading {moved}", stacklevel=3)
    return header | {"root": str(moved)}


# what training and ``data check`` read of a record: key -> the types it may have
NONE = type(None)
REQUIRED = {"name": (str,), "hdr": (str,), "ldr": (str, NONE), "kept": (bool,)}
OPTIONAL = {"kind": (str, NONE), "reason": (str, NONE)}
OPTIONAL |= {"dr_stops": (int, float, NONE), "orientation": (str, NONE)}


def _bad_record(rec) -> str | None:
    """What is wrong with a manifest record (``REQUIRED`` keys, ``OPTIONAL`` ones of their
    types, an orientation of ``orientation.DIHEDRAL``), or None."""
    if not isinstance(rec, dict):
        return f"not a record ({type(rec).__name__})"
    for key, kinds in (REQUIRED | OPTIONAL).items():
        if key not in rec and key in OPTIONAL:
            continue
        value = rec.get(key, ...)
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
            return f"{key} missing or not a {' or '.join(k.__name__ for k in kinds)}"
    if rec.get("orientation") not in (None, *DIHEDRAL):
        return f"unknown orientation {rec['orientation']!r}"
    return None


def summarize(manifest: Manifest) -> dict:
    """Counts, drop reasons, orientation fixes and dynamic-range statistics of the kept pairs."""
    recs = manifest.records
    kept = manifest.kept()
    drs = [r["dr_stops"] for r in kept if r.get("dr_stops") is not None]
    fixes = Counter(
        r["orientation"] for r in kept if r.get("orientation") not in (None, "identity")
    )
    return {
        "root": manifest.header["root"],
        "layout": manifest.header.get("layout"),
        "pairs": len(recs),
        "with_ldr": sum(r.get("ldr") is not None for r in recs),
        "kept": len(kept),
        "dropped": dict(Counter(r.get("reason") for r in recs if not r["kept"])),
        "dropped_files": [
            (r.get("ldr") or r["hdr"], r.get("detail") or r.get("reason"))
            for r in recs
            if not r["kept"]
        ],
        "kinds": dict(Counter(_kind(r) for r in kept)),
        "orientation_fixes": dict(fixes),
        "unpaired": len(manifest.header.get("unpaired", [])),
        "left_out": [(r.get("file"), r.get("why")) for r in manifest.header.get("left_out", [])],
        "missing": [str(p) for p in _missing(manifest)],
        "dr_stops": {
            "min": min(drs, default=None),
            "median": statistics.median(drs) if drs else None,
            "max": max(drs, default=None),
        },
    }


def _missing(manifest: Manifest) -> list[Path]:
    """The files of the kept records that are not there (moved or deleted since indexing)."""
    paths = (manifest.path(r, key) for r in manifest.kept() for key in ("ldr", "hdr"))
    return [p for p in dict.fromkeys(paths) if p is not None and not p.is_file()]


def check(path) -> dict:
    """Summary of a manifest file, or of a dataset folder indexed in memory (nothing written)."""
    path = Path(path)
    manifest = index_dataset(path) if path.is_dir() else read_manifest(path)
    return summarize(manifest)


def _kind(rec: dict) -> str:
    """A record's kind as training takes it (``datasets.pool_kind`` for an HDR-only one)."""
    if rec.get("ldr") is None:
        return pool_kind(rec.get("kind"), rec.get("height"), rec.get("width")) or "unknown"
    return rec.get("kind") or "unknown"


SHOWN_LEFT_OUT = 5  # files left out that format_summary names
SHOWN_MISSING = 20  # missing files that format_summary names


def format_summary(summary: dict) -> str:
    """A few human-readable lines for :func:`summarize`'s result."""
    dr = summary["dr_stops"]
    images = (  # an HDR pool's images are not pairs: the simulator makes their photos
        f"{summary['pairs']} HDR images (photos simulated)"
        if summary["with_ldr"] == 0
        else f"{summary['pairs']} pairs, {summary['with_ldr']} with LDR"
    )
    lines = [
        f"{summary['root']} ({summary['layout']}): {images}, {summary['unpaired']} unpaired files",
        f"kept {summary['kept']}; dropped {summary['dropped'] or 'none'}",
        f"kinds {summary['kinds']}; orientation fixes {summary['orientation_fixes'] or 'none'}",
    ]
    if missing := summary.get("missing"):
        n = f"{len(missing)} file{'s' if len(missing) > 1 else ''}"
        lines.append(f"missing: {n} of the kept pairs (moved or deleted since indexing)")
        lines += [f"missing: {file}" for file in missing[:SHOWN_MISSING]]
        if len(missing) > SHOWN_MISSING:
            more = len(missing) - SHOWN_MISSING
            lines.append(f"missing: {more} more file{'s' if more > 1 else ''}")
    dropped = summary.get("dropped_files", [])
    lines += [f"dropped: {file}: {why}" for file, why in dropped[:SHOWN_LEFT_OUT]]
    if len(dropped) > SHOWN_LEFT_OUT:
        lines.append(f"dropped: {len(dropped) - SHOWN_LEFT_OUT} more (the manifest lists them)")
    left = summary.get("left_out", [])
    lines += [f"left out: {file}: {why}" for file, why in left[:SHOWN_LEFT_OUT]]
    if len(left) > SHOWN_LEFT_OUT:
        lines.append(f"left out: {len(left) - SHOWN_LEFT_OUT} more files (the manifest lists them)")
    if dr["median"] is not None:
        lines.append(
            f"dynamic range (stops): min {dr['min']:.1f}, median {dr['median']:.1f}, "
            f"max {dr['max']:.1f}"
        )
    return "\n".join(lines)
