"""Exposure brackets to real LDR/HDR pairs: your own camera's photos against the HDR merged
from them, for ``scripts/validate_model.py --brackets`` and for training.

A bracket is two or more photos of one scene from a fixed camera, differing only in
exposure, each with its EXIF exposure time, f-number and ISO. :func:`merge_bracket` merges
them with OpenCV (ECC for small shifts, ``CalibrateDebevec`` for the camera's response,
``MergeDebevec``); :func:`write_bracket_set` writes the set in the layout of
``hdr-pool-2/brackets``, which ``mlx_hdr.data.datasets`` reads as the ``brackets`` layout:

    <set>/exposures.json   frames (file, exposure_time_s, f_number, iso, clipped, moved:
                           :func:`disagreement` with the frame before), the merge,
                           the response (``response_curve_rgb``: ``--sim-response`` reads it)
    <set>/merged.hdr       the scene, scene-linear; 1.0 is the white of the shortest frame
    <set>/frame_NN_<name>  the frames, longest exposure first: copies of the files, or
                           where ``--align`` moved one, its shifted pixels as PNG
                           (with its EXIF), so that every frame lies on the merge
"""

from __future__ import annotations

import contextlib
import itertools
import json
import math
import os
import shutil
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from mlx_hdr.color import CLIPPED, clipped_mask, rgb_to_luminance, srgb_to_linear
from mlx_hdr.data.datasets import BRACKETS, MOVED_PX
from mlx_hdr.data.preprocess import estimate_exposure
from mlx_hdr.errors import InputError
from mlx_hdr.io.atomic import current_umask, short_stem
from mlx_hdr.io.image_io import LDR_SUFFIXES, distinct_files, ldr_files, read_ldr, write_hdr
from mlx_hdr.io.photo_meta import SETTINGS, Exposure, exposure_settings, read_exif

MERGED = "merged.hdr"
SHORTEST_CLIP_WARN = 0.001  # share of the shortest frame clipped that ``data brackets`` names
MIN_SIDE = 16  # px: OpenCV's Debevec calibration samples a grid that needs this much
BRACKET_SET_USE = (
    "validate on it (from an mlx-hdr clone):  python scripts/validate_model.py --brackets {out}"
    " -n 0 --model mlx_hdr/assets/default.safetensors\n"
    "train on it:     mlx-hdr data index {sets} -o brackets.jsonl"
    " (the folder of your sets{move}), then --data brackets.jsonl"
)


def bracket_set_use(out: Path) -> str:
    """What to do with the set just written to ``out`` (``BRACKET_SET_USE``): a set written
    into the working folder is told to go into a folder of sets first (indexing the working
    folder would take whatever else it holds)."""
    if out.resolve().parent == Path.cwd().resolve():
        return BRACKET_SET_USE.format(out=out, sets="sets", move=f": mkdir sets; mv {out} sets/")
    return BRACKET_SET_USE.format(out=out, sets=out.parent, move="")


SCALE_NOTE = "1.0 = the white of the shortest frame"
RECORDED = (16, 239)  # 8-bit codes a frame records well (above noise, below the shoulder)
MOVED_STOPS = 1.0  # two frames disagreeing by more than this at a pixel: something moved
MOVED_WARN = 0.02  # share of such pixels that ``mlx-hdr data brackets`` reports


@dataclass(frozen=True)
class Frame:
    """One photo of a bracket: its file, EXIF exposure and 8-bit pixels (HxWx3 uint8 RGB;
    OpenCV's Debevec merges 8-bit frames, and a bracket of 24 MP photos held as float32
    would take 300 MB a frame)."""

    path: Path
    exposure: Exposure
    pixels: np.ndarray
    unknown: tuple[str, ...] = ()  # settings no frame records (1 in ``exposure``), by name

    @classmethod
    def read(cls, path: Path, exposure: Exposure) -> Frame:
        """The photo at ``path`` (``read_ldr``: any supported format, EXIF orientation)."""
        return cls(path, exposure, _to_u8(read_ldr(path)))

    @property
    def display(self) -> np.ndarray:
        """HxWx3 float32 display values in [0, 1]."""
        return self.pixels.astype(np.float32) / np.float32(255.0)

    @property
    def relative_exposure(self) -> float:
        """Exposure time x ISO / f-number² (what the sensor collects, up to a constant)."""
        e = self.exposure
        return e.time_s * e.iso / e.f_number / e.f_number  # ** 2 overflows where huge

    @property
    def clipped(self) -> float:
        """Share of pixels whose largest display channel is at least ``color.CLIPPED``."""
        return float(clipped_mask(self.pixels, CLIPPED * 255.0).mean())


def bracket_files(inputs: list[Path]) -> list[Path]:
    """The photo files among ``inputs``: each file itself, each folder's LDR files (sorted);
    a file named twice (or by a folder and by name) once."""
    files = []
    for p in map(Path, inputs):
        if p.is_dir():
            found = ldr_files(p)
            if not found:
                kinds = ", ".join(sorted({s.lstrip(".") for s in LDR_SUFFIXES}))
                raise InputError(
                    f"no photos in this folder ({kinds}; camera raw files: export them first)", p
                )
            files += found
        elif p.exists():
            files.append(p)
        else:
            raise InputError("file not found", p)
    return distinct_files(files)  # a file named twice is one frame


def read_frames(files: list[Path], where: Path | str = ".") -> list[Frame]:
    """The bracket's frames, longest exposure first. Raises ``InputError`` naming the file
    for one without an EXIF exposure time, or without the f-number or ISO that other
    frames record (where no frame records one, a manual lens's f-number, the frames are
    compared without it: ``Frame.unknown``), or of another size than the first, and for
    fewer than two frames (naming ``where`` when there is none) or frames that all share
    one exposure."""
    if len(files) < 2:
        raise InputError("a bracket needs at least two photos", files[0] if files else where)
    frames = []
    settings = {path: exposure_settings(path) for path in files}
    unknown = _unknown_settings(settings)
    for path, values in settings.items():
        exposure = Exposure(*(1.0 if v is None else v for v in values))
        frame = replace(Frame.read(path, exposure), unknown=unknown)
        if not 0.0 < frame.relative_exposure < math.inf:  # an f-number of 1e200 (a DOUBLE)
            raise InputError("its EXIF exposure settings are out of any camera's range", path)
        if min(frame.pixels.shape[:2]) < MIN_SIDE:
            raise InputError(f"too small to merge (under {MIN_SIDE} px a side)", path)
        if frames and frame.pixels.shape != frames[0].pixels.shape:
            size = "x".join(map(str, frames[0].pixels.shape[1::-1]))
            raise InputError(f"not the size of {frames[0].path.name} ({size})", path)
        frames.append(frame)
    frames.sort(key=lambda f: -f.relative_exposure)
    if frames[0].relative_exposure <= frames[-1].relative_exposure * 1.01:
        raise InputError("the photos do not differ in exposure", files[0])
    return frames


def _unknown_settings(settings: dict[Path, tuple]) -> tuple[str, ...]:
    """The exposure settings (``photo_meta.SETTINGS``) no photo records; ``InputError``
    naming the photo that lacks its exposure time, or a setting the others record (an
    unreadable photo is named by reading it)."""
    unknown = []
    for k, name in enumerate(SETTINGS):
        lacking = [path for path, values in settings.items() if values[k] is None]
        if lacking and (k == 0 or len(lacking) < len(settings)):
            read_ldr(lacking[0])  # a file that is no photo says so
            others = "" if k == 0 else ", which the other photos record"
            raise InputError(f"no EXIF {name} to merge by{others}", lacking[0])
        if lacking:
            unknown.append(name)
    return tuple(unknown)


def merge_bracket(frames: list[Frame]) -> tuple[np.ndarray, np.ndarray]:
    """``(hdr, response)``: the frames merged by OpenCV's Debevec method.

    Returns ``hdr`` HxWx3 float32 scene-linear RGB (>= 0), scaled so that 1.0 is the white of
    the shortest frame (matched to its well-exposed pixels, linearised as sRGB:
    ``preprocess.estimate_exposure``), and ``response`` 256x3 RGB, the linear value of each
    8-bit code (OpenCV's ``CalibrateDebevec``). Frames of a handheld bracket are aligned
    first (:func:`shifted`). Where even the shortest frame clips, ``hdr`` is what that frame
    records there (:func:`_shortest_reads`), a floor of the unknown truth."""
    images = [cv2.cvtColor(f.pixels, cv2.COLOR_RGB2BGR) for f in frames]
    times = np.array([f.relative_exposure for f in frames], np.float32)
    times /= times.max()  # OpenCV's Debevec works in any unit of exposure
    response = cv2.createCalibrateDebevec().process(images, times)
    hdr = cv2.createMergeDebevec().process(images, times, response)
    hdr = np.maximum(hdr, _shortest_reads(images, response.reshape(256, 3), times[-1]))
    rgb = np.maximum(cv2.cvtColor(hdr, cv2.COLOR_BGR2RGB), 0.0).astype(np.float32)
    response = response.reshape(256, 3)[:, ::-1].astype(np.float32)
    scale = estimate_exposure(frames[-1].display, rgb)  # onto the shortest frame, sRGB-linearised
    return (rgb * np.float32(scale)).astype(np.float32), response


def _shortest_reads(images: list[np.ndarray], response: np.ndarray, time: float) -> np.ndarray:
    """Where every frame but the shortest (``images``: HxWx3 uint8, longest first, the
    merge's channel order) has a channel at ``color.CLIPPED`` or above, the light the
    shortest frame's code stands for there (``response``, 256x3, over its exposure
    ``time``); 0 elsewhere. OpenCV's Debevec merge may weigh a clipped code as a reading of
    low weight (4.x: 1 of 128; 5.x: about none), so where the longer frames clip it can
    average in their far lower readings: a lamp every frame clips came out at 0.2-0.4 of the
    shortest frame's white. The merge is held at least at that frame's reading there, which
    a clipped channel's truth lies above, unknown (``data brackets`` says how much of the
    shortest photo clips)."""
    top = np.uint8(np.ceil(CLIPPED * 255.0))
    longer_clip = images[0] >= top
    for img in images[1:-1]:  # one mask at a time: nine 24 MP frames' would take 0.6 GB
        longer_clip &= img >= top
    reads = response[images[-1], np.arange(3)] / np.float32(time)
    return np.where(longer_clip, reads, 0.0).astype(np.float32)


def shifted(frames: list[Frame], shifts: list[tuple[float, float] | None]) -> list[Frame]:
    """The frames, each moved by its (dx, dy) px shift (:func:`frame_shifts`; None: as it
    is), bilinearly."""
    out = []
    for f, shift in zip(frames, shifts, strict=True):
        if shift is not None and any(shift):
            warp = np.array([[1, 0, shift[0]], [0, 1, shift[1]]], np.float32)
            f = replace(f, pixels=apply_warp(f.pixels, warp, f.pixels.shape[1::-1]))
        out.append(f)
    return out


def disagreement(frames: list[Frame], response: np.ndarray) -> list[float]:
    """For each frame after the first, the share of the pixels it and the next longer frame
    both record well (every channel at codes ``RECORDED``) whose luminances, linearised by
    ``response`` and divided by the exposures, differ by more than ``MOVED_STOPS`` from the
    two frames' median ratio: something that moved (a person, leaves) or a misaligned
    frame. NaN where the two share fewer than 100 such pixels."""
    lo, hi = RECORDED
    out = []
    for fa, fb in itertools.pairwise(frames):
        a, b = fa.pixels, fb.pixels
        both = (a.min(-1) >= lo) & (a.max(-1) <= hi) & (b.min(-1) >= lo) & (b.max(-1) <= hi)
        if both.sum() < 100:
            out.append(float("nan"))
            continue
        ya, yb = (rgb_to_luminance(np.take_along_axis(response, im[both], 0)) for im in (a, b))
        d = np.log2(np.maximum(ya, 1e-12) / fa.relative_exposure)
        d -= np.log2(np.maximum(yb, 1e-12) / fb.relative_exposure)
        out.append(float((np.abs(d - np.median(d)) > MOVED_STOPS).mean()))
    return out


def frame_shifts(frames: list[Frame]) -> list[tuple[float, float] | None]:
    """Each frame's translation (dx, dy) px onto the middle one (a camera nudged between
    shots), or None where it could not be measured (it is then merged as it is).

    Each frame is aligned to its neighbour in exposure, towards the middle, by ECC on log
    luminance over the pixels well exposed in both (:func:`ecc_warp`); the shifts add up
    along the chain, so a frame that shares few pixels with the middle one is aligned too."""
    logs, masks = [], []
    for f in frames:
        ldr = f.display
        y = rgb_to_luminance(srgb_to_linear(ldr))
        logs.append(np.log2(np.maximum(y, 1e-4) / f.relative_exposure).astype(np.float32))
        masks.append((ldr.max(axis=-1) > 0.05) & (ldr.max(axis=-1) < 0.9))
    mid = len(frames) // 2
    shifts: list[tuple[float, float] | None] = [None] * len(frames)
    shifts[mid] = (0.0, 0.0)
    for i in [*range(mid - 1, -1, -1), *range(mid + 1, len(frames))]:
        j = i + 1 if i < mid else i - 1  # its neighbour towards the middle, aligned already
        try:
            warp = ecc_warp(logs[j], logs[i], masks[i] & masks[j], cv2.MOTION_TRANSLATION)
        except cv2.error:
            continue  # too little in common: merged as it is
        base = shifts[j] or (0.0, 0.0)
        shifts[i] = (base[0] + float(warp[0, 2]), base[1] + float(warp[1, 2]))
    return shifts


def ecc_warp(
    template: np.ndarray, image: np.ndarray, mask: np.ndarray, motion: int = cv2.MOTION_AFFINE
) -> np.ndarray:
    """2x3 warp taking ``image`` onto ``template`` (HxW float32, e.g. log luminances) by
    OpenCV's ECC over ``mask`` (pixels to trust), coarse to fine; ``motion`` an OpenCV
    ``MOTION_*`` model. Raises ``cv2.error`` where ECC does not converge."""
    warp = np.eye(2, 3, dtype=np.float32)
    crit = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 200, 1e-6)
    coarse = [k for k in (0.25, 0.5) if min(image.shape[:2]) * k >= 64]  # ECC needs detail
    for k in (*coarse, 1.0):
        t, i = (
            cv2.resize(a, None, fx=k, fy=k, interpolation=cv2.INTER_AREA) for a in (template, image)
        )
        m = cv2.resize(mask.astype(np.uint8), i.shape[1::-1], interpolation=cv2.INTER_NEAREST)
        w = warp.copy()
        w[:, 2] *= k
        _, w = cv2.findTransformECC(t, i, w, motion, crit, m, 5)
        warp = w.copy()
        warp[:, 2] /= k
    return warp


def apply_warp(img: np.ndarray, warp: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``img`` resampled (bilinear) by the ``ecc_warp`` result ``warp`` onto ``size`` (w, h)."""
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    return cv2.warpAffine(img, warp, size, flags=flags, borderMode=cv2.BORDER_REPLICATE)


def _to_u8(ldr: np.ndarray) -> np.ndarray:
    """Display [0, 1] float -> uint8 (OpenCV's Debevec takes 8-bit frames)."""
    return np.clip(np.rint(ldr * 255.0), 0, 255).astype(np.uint8)


def write_bracket_set(inputs: list[Path], out: Path, align: bool = False) -> dict:
    """Merge the bracket in ``inputs`` (files, or a folder of them) and write it to the new
    folder ``out`` (module docstring); all or nothing: it is built beside ``out`` and
    renamed into place. ``align``: shift the frames onto each other first
    (:func:`frame_shifts`), for a handheld bracket; on a tripod it only adds noise (spurious
    shifts measured where there are none). Returns the ``exposures.json`` it wrote.

    Raises ``InputError`` for a bad bracket (:func:`read_frames`) and where ``out`` exists
    and is not an empty folder."""
    out = Path(out)
    if out.exists() and not (out.is_dir() and not any(out.iterdir())):
        raise InputError("already exists (choose a new folder)", out)
    frames = read_frames(bracket_files(inputs), inputs[0] if inputs else ".")
    shifts = frame_shifts(frames) if align else None
    merged = shifted(frames, shifts) if align else frames
    try:
        hdr, response = merge_bracket(merged)
    except cv2.error as exc:  # e.g. a shape its calibration grid cannot sample
        reason = str(exc).strip().splitlines()[-1]
        raise InputError(
            f"OpenCV could not merge this bracket ({reason})", frames[0].path
        ) from None
    moved = [float("nan"), *disagreement(merged, response)]
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{short_stem(out.name)}.", dir=out.parent))
    except OSError as exc:
        raise InputError(f"cannot write here ({exc.strerror or exc})", out) from None
    try:
        os.chmod(tmp, 0o777 & ~current_umask())  # an ordinary folder's mode, not mkdtemp's 0700
        meta = _write_set(tmp, out.name, merged, hdr, response, shifts, moved)
        with contextlib.suppress(FileNotFoundError):
            out.rmdir()  # the empty folder it may replace
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return meta


def _write_set(folder: Path, name: str, frames, hdr, response, shifts, moved) -> dict:
    """Write the frames as merged, the merged HDR and ``exposures.json`` (the set called
    ``name``) into ``folder``: a frame ``shifts`` moved by more than ``MOVED_PX`` as its
    shifted pixels (8-bit PNG with its EXIF, so it lies on the merge as evaluation and
    training read it), the others as copies of their files (a tripod's spurious shifts of a
    few hundredths of a pixel keep the file as it was); ``moved``: each frame's
    :func:`disagreement` with the one before (NaN for the first), recorded as ``moved``
    (null where not measured)."""
    records = []
    for i, f in enumerate(frames):
        file = f"frame_{i:02d}_{f.path.name}"
        if shifts is not None and max(map(abs, shifts[i] or (0.0,))) > MOVED_PX:
            file = f"frame_{i:02d}_{f.path.stem}.png"
            exif = read_exif(f.path, f.pixels.shape[1::-1])
            Image.fromarray(f.pixels).save(folder / file, "PNG", exif=exif or b"")
        else:
            shutil.copyfile(f.path, folder / file)
        e = f.exposure
        records.append(
            {"file": file, "source": f.path.name, "exposure_time_s": e.time_s}
            | {"f_number": None if "f-number" in f.unknown else e.f_number}
            | {"iso": None if "ISO" in f.unknown else e.iso, "clipped": round(f.clipped, 4)}
        )
        records[-1]["moved"] = None if np.isnan(moved[i]) else round(moved[i], 4)
        if shifts is not None:  # None: could not be aligned
            records[-1]["shift_px"] = shifts[i] and [round(v, 3) for v in shifts[i]]
    write_hdr(folder / MERGED, hdr)
    merge = {"output": MERGED, "method": "opencv-debevec", "aligned": shifts is not None}
    merge["frames_as_merged"] = True  # shifted frames stored shifted (datasets.moved_px)
    meta = {"name": name, "frames": records, "merge": merge | {"scale": SCALE_NOTE}}
    meta["response_curve_rgb"] = np.round(response, 6).tolist()
    (folder / BRACKETS).write_text(json.dumps(meta, indent=1) + "\n")
    return meta
