"""Real exposure-bracket sets for the validation scripts: each camera frame (or a crop, or a
normal-lens view of a fisheye frame) against the HDR merged from all of them, with the
frame's exposure settings.

A set is a folder with ``exposures.json`` (``frames``: ``file``, ``exposure_time_s``,
``f_number``, ``iso``; ``merge.output``: the merged HDR; optional ``views``, and the marks
of ``mlx_hdr.data.scored``: ``ghost_region_xyxy``, ``image_circle``), as
``hdr-pool-2/brackets/`` and ``scripts/fetch_hdrmerge_brackets.py`` write them.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import sys
from pathlib import Path

import cv2
import numpy as np

from mlx_hdr.color import clipped_mask
from mlx_hdr.data.datasets import BRACKET_MAX_CLIPPED, bracket_hdr, listed_exposure, moved_px
from mlx_hdr.data.fisheye import Circle, find_circle, remap, view_maps
from mlx_hdr.data.scored import ScoredRegion, region_on
from mlx_hdr.errors import InputError
from mlx_hdr.io.image_io import read_hdr, read_ldr
from mlx_hdr.io.photo_meta import WHITE_K, Exposure, read_exposure

CLIPPED_RANGE = (0.01, BRACKET_MAX_CLIPPED)  # bracket frames used: this share clipped


def usable(ldr: np.ndarray, valid: np.ndarray | None = None) -> bool:
    """Whether a bracket frame (or view) is used: ``CLIPPED_RANGE`` of its pixels (those
    scored, ``valid``, where given) clipped."""
    clipped = clipped_mask(ldr) if valid is None else clipped_mask(ldr)[valid]
    return bool(clipped.size and CLIPPED_RANGE[0] <= clipped.mean() <= CLIPPED_RANGE[1])


class Case(tuple):
    """A case, ``(ldr, hdr)``, with its photo's exposure settings (or None) as ``exposure``
    and the HxW bool mask of the pixels scored (None: all) as ``valid``."""

    def __new__(
        cls,
        ldr: np.ndarray,
        hdr: np.ndarray,
        exposure: Exposure | None = None,
        valid: np.ndarray | None = None,
    ):
        case = super().__new__(cls, (ldr, hdr))
        case.exposure, case.valid = exposure, valid
        return case


def simulated_case(ldr: np.ndarray, hdr: np.ndarray, white: float) -> Case:
    """A simulated photo as a :class:`Case` whose exposure's white is ``white`` (log2
    cd/m²; f/1 at ISO 1, the time that gives it)."""
    return Case(ldr, hdr, Exposure(WHITE_K / 2.0**white, 1.0, 1.0))


def frame_exposure(folder: Path, frame: dict) -> Exposure | None:
    """A bracket frame's exposure settings: ``exposures.json``'s ``exposure_time_s``,
    ``f_number`` and ``iso``, or where one is missing the frame file's EXIF."""
    return listed_exposure(frame) or read_exposure(folder / frame["file"])


def bracket_cases(
    folder: Path, long_side: int | None, scored: bool = False, every: bool = False
) -> list[Case]:
    """(ldr, hdr) per real frame, or per crop of it where ``exposures.json`` lists ``views``
    ((x0, y0, x1, y1), fractions of the frame), with 1-30% clipped pixels (``every``: all),
    at ``long_side`` px at most (None: as stored), each with its frame's exposure
    (:func:`frame_exposure`). The merged HDR is ``data.datasets.bracket_hdr``'s.

    ``scored`` (validate_model's way): each case carries the pixels it is scored on
    (``Case.valid``, :func:`scored_pixels`: not the set's ghost box, and in a circular
    fisheye only the image circle), which its clipped share is taken over too; the photo
    and the truth keep their own pixels. Else (the diagnostics' way, as their figures were
    measured) the ghost box is blacked out in both and the whole frame counts."""
    path = folder / "exposures.json"
    try:
        meta = json.loads(path.read_text())
        output, frames = meta["merge"]["output"], list(meta["frames"])
    except (ValueError, KeyError, TypeError) as exc:  # OSError: FileNotFoundError, one line
        raise InputError(
            f"not a bracket set description ({type(exc).__name__}: {exc})", path
        ) from None
    hdr = read_hdr(bracket_hdr(folder, output))
    ghost = meta.get("ghost_region_xyxy")
    keep = scored_pixels(hdr, meta, path) if scored else None
    cases = []
    for frame in frames:
        if moved := moved_px(frame, meta["merge"]):  # as evaluate and data index leave it out
            print(
                f"{folder / frame['file']}: {moved:.1f} px off the merge (an older "
                "`data brackets --align` set: build it again); left out",
                file=sys.stderr,
            )
            continue
        ldr = read_ldr(folder / frame["file"])
        exposure = frame_exposure(folder, frame)
        for box in meta.get("views", [[0.0, 0.0, 1.0, 1.0]]):
            rows, cols = crop = _crop_box(ldr.shape, box)
            pair = [_resize(a[crop], long_side) for a in (ldr, hdr)]
            valid = (
                None if keep is None else _resize(keep[crop].astype(np.float32), long_side) > 0.5
            )
            if not every and not usable(pair[0], valid):
                continue
            if ghost and not scored:
                k = pair[0].shape[1] / (cols.stop - cols.start)
                y, x = rows.start, cols.start
                x0, y0, x1, y1 = (
                    round((v - o) * k) for v, o in zip(ghost, (x, y, x, y), strict=True)
                )
                for a in pair:
                    a[max(y0, 0) : max(y1, 0), max(x0, 0) : max(x1, 0)] = 0.0
            cases.append(Case(*pair, exposure, valid))
    return cases


def scored_pixels(hdr: np.ndarray, meta: dict, path: Path) -> np.ndarray:
    """HxW bool: the pixels of a set's frames that are scored, as its description ``meta``
    (read from ``path``) marks them (``mlx_hdr.data.scored``: not its ghost box, only its
    image circle), and where it marks no image circle (nor ``false``) but is a circular
    fisheye, only inside the circle found on its merged ``hdr`` (outside lies the lens
    barrel; ``mlx-hdr evaluate`` takes the circle only where the set marks one)."""
    region = region_on(meta, path, hdr) or ScoredRegion()
    if region.circle is None and meta.get("image_circle") is not False:
        with contextlib.suppress(ValueError):  # no image circle: not a fisheye
            region = dataclasses.replace(region, circle=find_circle(hdr))
    return region.pixels(hdr.shape)


def _crop_box(shape, box) -> tuple[slice, slice]:
    """(rows, cols) of the (x0, y0, x1, y1) fractions ``box`` of an image."""
    h, w = shape[:2]
    x0, x1 = (round(v * w) for v in (box[0], box[2]))
    y0, y1 = (round(v * h) for v in (box[1], box[3]))
    return slice(y0, y1), slice(x0, x1)


def view_arg(text: str) -> tuple[float, float, float]:
    """``--rectilinear``'s YAW:PITCH:FOV, degrees, the field of view in (0, 180)."""
    try:
        yaw, pitch, fov = (float(v) for v in text.split(":"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not YAW:PITCH:FOV (degrees)") from None
    if not 0 < fov < 180:
        raise argparse.ArgumentTypeError(f"field of view {fov:g} is not in (0, 180) degrees")
    return yaw, pitch, fov


def add_rectilinear(ap: argparse.ArgumentParser, text: str) -> None:
    """The repeatable ``--rectilinear YAW:PITCH:FOV`` option (:func:`view_arg`)."""
    ap.add_argument(
        "--rectilinear",
        action="append",
        default=[],
        type=view_arg,
        metavar="YAW:PITCH:FOV",
        help=text,
    )


def native_side(circle: Circle, fov: float) -> int:
    """The long side, px, of a rectilinear view with horizontal field of view ``fov``
    degrees that takes one fisheye pixel per view pixel at its centre (equidistant fisheye:
    ``radius / (pi / 2)`` px per radian there)."""
    return round(2.0 * circle.radius / (np.pi / 2) * np.tan(np.radians(fov) / 2))


def rectilinear_cases(cases, views: list[tuple[float, float, float]], long_side: int | None):
    """(cases, scenes): each (ldr, hdr) of a circular-fisheye bracket set as the normal-lens
    photos ``views`` ((yaw, pitch, fov), degrees) would be (:mod:`mlx_hdr.data.fisheye`), 3:2
    with ``long_side`` px (None: :func:`native_side`, as sharp as the frames allow; a
    larger side magnifies the fisheye and blurs the view), those with 1-30% clipped pixels,
    and each one's view index (a scene for the gain slope). The image circle is found on the
    first case's HDR."""
    circle = find_circle(cases[0][1])
    out, scenes = [], []
    for i, (yaw, pitch, fov) in enumerate(views):
        side = long_side or native_side(circle, fov)
        size = (round(side * 2 / 3), side)
        maps = view_maps(circle, yaw, pitch, fov, size)  # one lens: the same for every frame
        for pair in cases:
            ldr, hdr = (remap(a, maps) for a in pair)
            ldr = np.clip(ldr, 0.0, 1.0)
            valid = getattr(pair, "valid", None)
            valid = None if valid is None else remap(valid.astype(np.float32), maps) > 0.5
            if usable(ldr, valid):
                exposure = getattr(pair, "exposure", None)
                out.append(Case(ldr, np.maximum(hdr, 0.0), exposure, valid))
                scenes.append(i)
    return out, scenes


def add_bracket_set(ap: argparse.ArgumentParser) -> None:
    """The arguments of a one-set diagnostic (:func:`bracket_set_cases`): the set folder,
    ``--model``, ``--long-side`` and ``--rectilinear``."""
    ap.add_argument("brackets", type=Path, help="a bracket set folder (validate_model's layout)")
    ap.add_argument("--model", default="mlx_hdr/assets/default.safetensors")
    ap.add_argument("--long-side", type=int, default=1024, help="frames resized to")
    add_rectilinear(ap, "a circular-fisheye set as these normal-lens views")


def bracket_set_cases(args: argparse.Namespace) -> list[tuple[np.ndarray, np.ndarray]]:
    """(ldr, hdr) of :func:`add_bracket_set`'s set: :func:`bracket_cases`, or with
    ``--rectilinear`` its normal-lens views (:func:`rectilinear_cases`)."""
    cases = bracket_cases(args.brackets, args.long_side)
    if args.rectilinear:
        cases, _ = rectilinear_cases(cases, args.rectilinear, args.long_side)
    return cases


def _resize(img: np.ndarray, long_side: int | None) -> np.ndarray:
    h, w = img.shape[:2]
    k = 1.0 if long_side is None else long_side / max(h, w)
    if k >= 1:
        return img.copy()
    return cv2.resize(img, (round(w * k), round(h * k)), interpolation=cv2.INTER_AREA)
