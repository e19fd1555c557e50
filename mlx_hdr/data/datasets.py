"""Find LDR/HDR pairs in the dataset layouts we know, detected automatically.

Layouts (checked in this order):

- ``hdr-real``: SingleHDR's HDR-Real training set, ``LDR_in/*.jpg`` + ``HDR_gt/*.hdr``
  paired by file stem.
- ``hdr-synth``: HDR only, ``HDR_gt/*.{hdr,exr}`` without ``LDR_in`` (SingleHDR's HDR-Synth).
- ``brackets``: an exposure-bracket set (``exposures.json`` with its ``frames`` and merged
  HDR, as ``mlx-hdr data brackets`` writes it), or a folder of such sets with no HDR files
  of its own (with them it is an ``hdr-pool``, as ``hdr-pool-2`` is): one pair per frame
  that clips at most ``BRACKET_MAX_CLIPPED`` of its pixels, against the set's HDR. The other
  frames are left out (``Dataset.left_out``, with the reason). A set may mark pixels that are
  not scored (:mod:`mlx_hdr.data.scored`: a ghost box, a fisheye's image circle); the
  clipped share is then taken over the scored pixels.
- ``scenes``: one folder per scene with the HDR ``gt.{hdr,exr,pfm}`` and the LDR input
  (``input.*``, or the folder's only photo: JPEG/PNG/TIFF/WebP/HEIC/AVIF): HDR-Eye style test
  sets and the generic ``<case>/input.* + gt.*`` layout of ``eval-public``.
- ``hdr-pool``: a flat folder of HDR files, with an optional ``MANIFEST.csv`` whose ``kind``
  column says ``panorama``, ``photo`` or ``bracketed`` (``POOL_KINDS``; a file it does not
  list, or lists with no kind, counts as a panorama where it is twice as wide as high).
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

from mlx_hdr.color import clipped_mask
from mlx_hdr.data.scored import ScoredRegion, UnreadableMerge, scored_region
from mlx_hdr.errors import InputError
from mlx_hdr.io.image_io import HDR_SUFFIXES, ldr_files, read_ldr
from mlx_hdr.io.photo_meta import Exposure, exposure_from_values

LAYOUTS = ("hdr-real", "hdr-synth", "brackets", "scenes", "hdr-pool")
BRACKETS = "exposures.json"  # a bracket set's description


class NoDataset(InputError):
    """A folder in none of the layouts :func:`scan_dataset` knows."""


BRACKET_MAX_CLIPPED = 0.3  # frames clipping more are left out of a bracket set's pairs
MOVED_PX = 0.5  # a bracket frame shifted by more lies off a merge it is not stored on


@dataclass(frozen=True)
class Pair:
    """One training/test sample: an HDR and its LDR (None for HDR-only collections)."""

    name: str
    ldr_path: Path | None
    hdr_path: Path
    kind: str | None = None  # "panorama" | "photo" when known (HDR pools)
    exposure: Exposure | None = None  # a bracket frame's, as its set lists it (else: EXIF)
    region: ScoredRegion | None = None  # a bracket frame's scored pixels (None: all)


@dataclass
class Dataset:
    """What :func:`scan_dataset` found."""

    root: Path
    layout: str
    pairs: list[Pair]
    unpaired: list[Path] = field(default_factory=list)  # files without a partner
    why: dict[Path, str] = field(default_factory=dict)  # an unpaired file's problem, if known
    left_out: list[tuple[Path, str]] = field(default_factory=list)  # on purpose, and why
    marked: dict[Path, ScoredRegion] = field(default_factory=dict)  # bracket sets' marks


def _files(folder: Path, suffixes: tuple[str, ...]) -> list[Path]:
    """The files of ``folder`` with these suffixes, sorted; hidden ones (macOS's ``._*``
    companions on other disks) are not images."""
    return sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and p.suffix.lower() in suffixes and not p.name.startswith(".")
    )


def _subdir(root: Path, name: str) -> Path | None:
    """A child folder matched case-insensitively."""
    for p in root.iterdir():
        if p.is_dir() and p.name.lower() == name.lower():
            return p
    return None


def _pair_by_stem(root: Path, ldr_dir: Path, hdr_dir: Path) -> Dataset:
    """Inputs and ground truths paired by name; of files sharing a stem (``a.jpg`` and
    ``a.png``) the first in sorted order pairs, the others are listed unpaired."""
    ldrs, extra = _by_stem(ldr_files(ldr_dir))
    hdrs, more = _by_stem(_files(hdr_dir, HDR_SUFFIXES))
    pairs = [Pair(s, ldrs[s], hdrs[s]) for s in sorted(ldrs.keys() & hdrs.keys())]
    unpaired = sorted([ldrs[s] for s in ldrs.keys() - hdrs.keys()] + extra)
    unpaired += sorted([hdrs[s] for s in hdrs.keys() - ldrs.keys()] + more)
    return Dataset(root, "hdr-real", pairs, unpaired)


def _by_stem(paths: list[Path]) -> tuple[dict[str, Path], list[Path]]:
    """``({stem: first path}, the other paths of a stem already taken)``."""
    first: dict[str, Path] = {}
    for path in sorted(paths):
        first.setdefault(path.stem, path)
    return first, [p for p in paths if first[p.stem] != p]


def _scene(folder: Path) -> tuple[Pair | None, list[tuple[Path, str]]]:
    """Pair of one scene folder, or (None, its files and why) when it has no unique LDR."""
    hdrs = [p for p in _files(folder, HDR_SUFFIXES) if p.stem.lower() == "gt"]
    ldrs = ldr_files(folder)
    inputs = [p for p in ldrs if p.stem.lower() == "input"]
    ldr = inputs[0] if len(inputs) == 1 else (ldrs[0] if len(ldrs) == 1 else None)
    if len(hdrs) != 1 or ldr is None:
        if len(hdrs) != 1:
            why = f"scene {folder.name} has {len(hdrs)} ground truths named gt; it needs one"
        elif len(inputs) > 1:
            why = f"scene {folder.name} has {len(inputs)} photos named input.*; it needs one"
        elif ldrs:
            why = f"scene {folder.name} has {len(ldrs)} photos and none is named input.*"
        else:
            why = f"scene {folder.name} has no input photo beside its ground truth"
        return None, [(p, why) for p in hdrs + ldrs]
    return Pair(folder.name, ldr, hdrs[0]), []


def _scan_scenes(root: Path, folders: list[Path]) -> Dataset:
    ds = Dataset(root, "scenes", [])
    for folder in folders:
        pair, left = _scene(folder)
        ds.pairs += [pair] if pair is not None else []
        ds.unpaired += [path for path, _ in left]
        ds.why |= dict(left)
    return ds


POOL_KINDS = ("panorama", "photo", "bracketed")  # a pool manifest's kinds (any case)


def pool_kind(kind: str | None, height: int | None, width: int | None) -> str | None:
    """An HDR pool image's kind: as its pool states it, else ``panorama`` where it is twice
    as wide as high (an equirectangular one), else None."""
    if kind is None and height and width == 2 * height:
        return "panorama"
    return kind


def read_pool_kinds(root: Path) -> dict[str, str]:
    """``file -> kind`` (lower case, ``POOL_KINDS``) from an HDR pool's optional
    MANIFEST.csv (empty when absent); ``InputError`` for a kind it does not know (a typo
    had left the image out of training unsaid)."""
    path = root / "MANIFEST.csv"
    if not path.is_file():
        return {}
    try:
        with open(path, newline="") as f:
            rows = [r for r in csv.DictReader(f) if r.get("file")]
            kinds = {r["file"]: (r.get("kind") or "").strip().lower() or None for r in rows}
    except (OSError, KeyError, csv.Error, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read pool manifest ({exc})", path) from None
    for name, kind in kinds.items():
        if kind is not None and kind not in POOL_KINDS:
            known = ", ".join(POOL_KINDS)
            raise InputError(f"{name}: unknown kind {kind!r} (one of {known}, or empty)", path)
    return kinds


def _scan_pool(root: Path, layout: str, folder: Path) -> Dataset:
    kinds = read_pool_kinds(root)
    hdrs = _files(folder, HDR_SUFFIXES)
    pairs = [Pair(p.stem, None, p, kinds.get(p.name)) for p in hdrs]
    return Dataset(root, layout, pairs, ldr_files(folder))


def _bracket_set(folder: Path) -> tuple[list[Pair], list[tuple[Path, str]], ScoredRegion | None]:
    """(pairs, frames left out and why, the pixels it marks) of the bracket set in ``folder``
    (the ``brackets`` layout), against its :func:`bracket_hdr`."""
    path = folder / BRACKETS
    try:
        meta = json.loads(path.read_text())
        frames, merge, output = meta["frames"], meta["merge"], meta["merge"]["output"]
        files = [(folder / f["file"], f.get("clipped"), moved_px(f, merge), f) for f in frames]
        files = [(f, None if c is None else float(c), m, r) for f, c, m, r in files]
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise InputError(f"not a bracket set description ({exc})", path) from None
    hdr = bracket_hdr(folder, output)
    try:
        region = scored_region(meta, path, hdr)
    except UnreadableMerge as exc:  # its frames are not scored, as where it marks nothing
        return [], [(f, f"its merged HDR: {exc}") for f, _, _, _ in files], None
    pairs, left = [], []
    for f, clipped, moved, record in files:
        if why := _frame_problem(f, clipped, moved, region):
            left.append((f, why))
        else:
            exposure = listed_exposure(record)
            pairs.append(Pair(f"{folder.name}-{f.stem}", f, hdr, exposure=exposure, region=region))
    return pairs, left, region


def listed_exposure(frame: dict) -> Exposure | None:
    """A bracket frame's exposure settings as its set's ``exposures.json`` lists them
    (``exposure_time_s``, ``f_number``, ``iso``), or None where one is missing."""
    return exposure_from_values(*(frame.get(k) for k in ("exposure_time_s", "f_number", "iso")))


def _frame_problem(
    path: Path, clipped: float | None, moved: float, region: ScoredRegion | None = None
) -> str | None:
    """Why a bracket set's frame is not one of its pairs, or None: it lies ``moved`` px off
    the merge (:func:`moved_px`), or clips more than ``BRACKET_MAX_CLIPPED`` of its
    (scored) pixels."""
    if moved:
        older = "an older `data brackets --align`: build the set again"
        return f"stored {moved:.1f} px off the merge by {older}"
    share = _clipped_share(path, clipped, region)
    if share > BRACKET_MAX_CLIPPED:
        scored = f"frames clipping at most {BRACKET_MAX_CLIPPED:.0%} are scored"
        return f"clips {share:.0%} of its {'scored ' if region else ''}pixels ({scored})"
    return None


def moved_px(record: dict, merge: dict) -> float:
    """How far (px) a frame recorded in ``exposures.json`` lies off its set's merge: the
    shift ``--align`` merged it with where the set stores the frame as given (sets written
    before frames were stored as merged), else 0 (``MOVED_PX`` and less counts as 0)."""
    shift = record.get("shift_px") if not merge.get("frames_as_merged") else None
    moved = float(max(abs(float(v)) for v in shift)) if shift else 0.0
    return moved if moved > MOVED_PX else 0.0


def bracket_hdr(folder: Path, output: str) -> Path:
    """A bracket set's merged HDR (its ``merge.output``): in the set's folder, or two folders
    up (``hdr-pool-2``'s layout, the HDR beside the pool's other images) where it is there."""
    hdr = folder / output
    beside = folder.parent.parent / Path(output).name
    return beside if not hdr.exists() and beside.exists() else hdr


def _clipped_share(path: Path, recorded: float | None, region: ScoredRegion | None) -> float:
    """A bracket frame's clipped share: as ``exposures.json`` records it where all its
    pixels are scored, else measured over the scored ones (``color.clipped_mask``; 0 for a
    frame that cannot be read: ``data index`` reports it as unreadable)."""
    if recorded is not None and region is None:
        return float(recorded)
    try:
        clipped = clipped_mask(read_ldr(path))
    except InputError:
        return 0.0
    scored = clipped if region is None else clipped[region.pixels(clipped.shape)]
    return float(scored.mean()) if scored.size else 0.0


def _scan_brackets(root: Path, sets: list[Path]) -> Dataset:
    ds = Dataset(root, "brackets", [])
    for folder in sets:
        pairs, left, region = _bracket_set(folder)
        ds.pairs += pairs
        ds.left_out += left
        if region is not None:
            ds.marked[folder] = region
    return ds


def scan_dataset(root) -> Dataset:
    """Detect the layout of ``root`` and list its pairs (see the module docstring).

    Raises ``InputError`` naming the expected layouts when nothing matches.
    """
    root = Path(root)
    if not root.is_dir():
        raise InputError("dataset folder not found" if not root.exists() else "not a folder", root)
    ldr_dir, hdr_dir = _subdir(root, "LDR_in"), _subdir(root, "HDR_gt")
    if ldr_dir is not None and hdr_dir is not None:
        return _pair_by_stem(root, ldr_dir, hdr_dir)
    if hdr_dir is not None and _files(hdr_dir, HDR_SUFFIXES):
        return _scan_pool(root, "hdr-synth", hdr_dir)
    if (root / BRACKETS).is_file():
        return _scan_brackets(root, [root])
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    sets = [p for p in folders if (p / BRACKETS).is_file()]
    if sets and not _files(root, HDR_SUFFIXES):
        return _scan_brackets(root, sets)
    scenes = [p for p in folders if any(q.stem.lower() == "gt" for q in _files(p, HDR_SUFFIXES))]
    if scenes:
        ds = _scan_scenes(root, scenes)  # inputs in folders without a gt are unpaired too
        ds.unpaired += [q for p in folders if p not in scenes for q in ldr_files(p)]
        return ds
    if _files(root, HDR_SUFFIXES):
        return _scan_pool(root, "hdr-pool", root)
    raise NoDataset(
        "no dataset found: expected LDR_in/ + HDR_gt/ (HDR-Real), HDR_gt/ (HDR-Synth), "
        "<scene>/gt.hdr + <scene>/input.jpg folders, bracket sets (exposures.json), "
        "or a folder of .hdr/.exr/.pfm files",
        root,
    )
