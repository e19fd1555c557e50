"""A second real exposure-bracket set for ``validate_model.py --brackets``: hdrmerge's test
bracket (Nikon D5000, outdoor daylight, 3 raw frames at -2 / 0 / +2 EV, GPL-3+), from
Debian's source archive of hdrmerge.

Each frame's camera JPEG (the preview the camera embedded in the raw file: its own tone
curve, white balance and JPEG, as a user's photo) is paired with an HDR merged from the raw
files: the 0 EV raw where none of its photosites clip, the -2 EV raw (scaled by the measured
exposure ratio) where they do. The raw files are developed by LibRaw (``rawpy``) with the
camera's white balance to linear sRGB, aligned to each other and then to the 0 EV JPEG by
ECC. The HDR is in the 0 EV JPEG's geometry; the other frames are warped to it and stored
as PNG. The set is written in the layout of ``hdr-pool-2/brackets``:

    pip install -e ".[brackets]"   # rawpy
    python scripts/fetch_hdrmerge_brackets.py -o runs/brackets/hdrmerge_whitworth
    python scripts/validate_model.py --brackets runs/brackets/hdrmerge_whitworth ...

The frame clips a quarter to half of its pixels (the sky), so ``exposures.json`` lists
``views``: crops of every frame (fractions of width and height) that the script scores.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import shutil
import sys
import tarfile
import tempfile
import urllib.request
from pathlib import Path

import cv2
import numpy as np

from mlx_hdr.color import rgb_to_luminance, srgb_to_linear
from mlx_hdr.data.brackets import apply_warp, ecc_warp
from mlx_hdr.errors import HDRError

URL = "https://deb.debian.org/debian/pool/main/h/hdrmerge/hdrmerge_0.5+git20200117.orig.tar.gz"
SHA256 = "18f1db24c191936816fb09c3df864ade10958106c3bb2ff735a72e0b772da442"
# the raw files in the tarball, EXIF ExposureTime (s): Nikon D5000, f/6.3, ISO 200, 24 mm
FRAMES = {"sample3.dng": 1 / 40, "sample1.dng": 1 / 160, "sample2.dng": 1 / 640}
F_NUMBER, ISO = 6.3, 200  # the same for every frame (EXIF FNumber, ISOSpeedRatings)
REFERENCE = "sample1.dng"  # 0 EV: its JPEG is the photo, its raw the HDR's base
SATURATED = 0.92  # share of the white level above which a photosite counts as clipped
# crops (x0, y0, x1, y1 as fractions) scored as photos: the full frame clips ~45%
VIEWS = [
    [0.0, 0.0, 1.0, 1.0],
    [0.0, 0.3, 0.5, 1.0],
    [0.0, 0.4, 1.0, 1.0],
    [0.2, 0.4, 0.8, 1.0],
    [0.5, 0.45, 1.0, 1.0],
]
LICENSE = "GPL-3+ (hdrmerge, Debian source package hdrmerge 0.5+git20200117, test/)"


def fetch(url: str, sha256: str, cache: Path) -> Path:
    """The archive at ``url`` in ``cache`` (downloaded once), checked against ``sha256``."""
    path = cache / url.rsplit("/", 1)[-1]
    if not path.exists():
        tmp = path.with_suffix(".part")
        with urllib.request.urlopen(url, timeout=60) as r, open(tmp, "wb") as f:
            shutil.copyfileobj(r, f)
        tmp.replace(path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != sha256:
        raise SystemExit(f"{path}: sha256 {digest} is not the expected {sha256}")
    return path


def raw_files(archive: Path) -> dict[str, bytes]:
    """The ``FRAMES`` raw files of the hdrmerge source archive, by name."""
    out = {}
    with tarfile.open(archive) as tar:
        for m in tar:
            name = m.name.rsplit("/", 1)[-1]
            if m.isfile() and "/test/" in m.name and name in FRAMES:
                out[name] = tar.extractfile(m).read()
    if set(out) != set(FRAMES):
        raise SystemExit(f"{archive}: missing {sorted(set(FRAMES) - set(out))}")
    return out


def develop(data: bytes) -> tuple[np.ndarray, np.ndarray, bytes]:
    """(linear sRGB HxWx3 float32 in [0, 1], HxW clipped-photosite mask, camera JPEG) of a
    raw file, at half the sensor's size (one pixel per 2x2 Bayer block)."""
    try:
        import rawpy
    except ImportError:
        raise SystemExit(
            'rawpy is needed to develop the raw files: pip install -e ".[brackets]"'
        ) from None

    with rawpy.imread(io.BytesIO(data)) as raw:
        rgb = raw.postprocess(
            use_camera_wb=True,
            no_auto_bright=True,
            gamma=(1, 1),
            output_bps=16,
            half_size=True,
            highlight_mode=rawpy.HighlightMode.Clip,
            output_color=rawpy.ColorSpace.sRGB,
        )
        bayer = raw.raw_image_visible.astype(np.float32)
        h, w = (s // 2 * 2 for s in bayer.shape)
        block = bayer[:h, :w].reshape(h // 2, 2, w // 2, 2).max(axis=(1, 3))
        clipped = block >= SATURATED * raw.white_level
        jpeg = raw.extract_thumb().data
    lin = rgb.astype(np.float32) / 65535.0
    clipped = cv2.resize(
        clipped.astype(np.uint8), lin.shape[1::-1], interpolation=cv2.INTER_NEAREST
    )
    return lin, clipped > 0, jpeg


def log_luma(lin: np.ndarray) -> np.ndarray:
    return np.log2(np.maximum(rgb_to_luminance(lin), 1e-4)).astype(np.float32)


def exposure_ratio(a: np.ndarray, b: np.ndarray, usable: np.ndarray) -> float:
    """Median luminance ratio a / b over ``usable`` pixels well above black in both."""
    ya, yb = (rgb_to_luminance(x) for x in (a, b))
    keep = usable & (ya > 0.02) & (yb > 0.02) & (ya < 0.8) & (yb < 0.8)
    return float(np.median(ya[keep] / yb[keep]))


def merge(
    frames: dict[str, tuple], ref: str, short: str, labelled: float
) -> tuple[np.ndarray, dict]:
    """HDR on the reference raw's scale: the reference where no photosite clips, the short
    frame (aligned, times the measured ratio) where one does, feathered over 2 px.

    Args:
        frames: name -> (linear HxWx3 float32, HxW clipped-photosite mask, JPEG bytes).
        ref, short: the names of the reference and the shorter exposure.
        labelled: the reference's exposure over the short one's, by EXIF (reported only).
    """
    lin, clipped, _ = frames[ref]
    s_lin, s_clipped, _ = frames[short]
    size = lin.shape[1::-1]
    usable = ~cv2.dilate(clipped.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    warp = ecc_warp(log_luma(lin), log_luma(s_lin), ~s_clipped)
    s_lin = apply_warp(s_lin, warp, size)
    ratio = exposure_ratio(lin, s_lin, usable)
    weight = cv2.GaussianBlur((~usable).astype(np.float32), (0, 0), 2.0)
    weight = np.maximum(weight, (~usable).astype(np.float32))[..., None]
    hdr = (1.0 - weight) * lin + weight * s_lin * ratio
    info = {"short_frame_ratio": {"measured": ratio, "labelled": labelled}}
    info["short_frame_shift_px"] = [float(v) for v in warp[:, 2]]
    return hdr.astype(np.float32), info


def to_photo(lin: np.ndarray, photo: np.ndarray) -> tuple[np.ndarray, list[float]]:
    """``lin`` (a linear developed raw) warped onto the camera JPEG ``photo`` (display
    [0, 1]): resized to it, then aligned by ECC over the photo's unclipped pixels."""
    h, w = photo.shape[:2]
    small = cv2.resize(lin, (w, h), interpolation=cv2.INTER_AREA)
    mask = photo.max(axis=-1) < 0.95
    warp = ecc_warp(log_luma(srgb_to_linear(photo)), log_luma(small), mask)
    return np.maximum(apply_warp(small, warp, (w, h)), 0.0), [float(v) for v in warp.ravel()]


def decode_jpeg(data: bytes) -> np.ndarray:
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    return img[..., ::-1].astype(np.float32) / 255.0


def build(out: Path, archive: Path) -> dict:
    """Write the set to ``out``: frames, merged HDR, exposures.json; returns the metadata."""
    from mlx_hdr.io.image_io import write_hdr

    frames = {name: develop(data) for name, data in raw_files(archive).items()}
    short = min(FRAMES, key=FRAMES.get)
    hdr, info = merge(frames, REFERENCE, short, FRAMES[REFERENCE] / FRAMES[short])
    photo = decode_jpeg(frames[REFERENCE][2])
    hdr, warp = to_photo(hdr, photo)
    out.mkdir(parents=True, exist_ok=True)
    meta = {"name": out.name, "license": LICENSE, "source": URL, "sha256": SHA256}
    meta["note"] = "Nikon D5000, f/6.3, ISO 200, 24 mm, handheld; camera JPEG previews"
    meta["frames"] = []
    ref_log = log_luma(photo)
    for i, name in enumerate(sorted(FRAMES, key=FRAMES.get, reverse=True)):
        t = FRAMES[name]
        file = f"frame_{i:02d}_{name.split('.')[0]}.jpg"
        if name == REFERENCE:
            (out / file).write_bytes(frames[name][2])  # the camera's own JPEG, untouched
        else:  # warped onto the reference (handheld), lossless
            file = file.replace(".jpg", ".png")
            img = decode_jpeg(frames[name][2])
            warp_i = ecc_warp(ref_log, log_luma(img), img.max(axis=-1) < 0.95)
            img = apply_warp(img, warp_i, photo.shape[1::-1])
            cv2.imwrite(str(out / file), np.round(img[..., ::-1] * 255).astype(np.uint8))
        meta["frames"].append(
            {"source": name, "exposure_time_s": t, "f_number": F_NUMBER, "iso": ISO, "file": file}
        )
    write_hdr(out / f"{out.name}.hdr", hdr)
    method = "0 EV raw where no photosite clips, else the -2 EV raw times the measured ratio"
    meta["merge"] = {"method": method, "output": f"{out.name}.hdr", **info}
    meta["merge"]["raw_to_photo_affine"] = warp
    meta["views"] = VIEWS
    (out / "exposures.json").write_text(json.dumps(meta, indent=1))
    return meta


def fetch_and_build(doc: str, url: str, sha256: str, build_set) -> dict:
    """The command line of a bracket-set script: ``-o`` the set folder (new), ``--archive`` a
    local copy of the source archive (else downloaded and checked); ``build_set(out,
    archive)`` writes the set, in a folder beside ``out`` renamed to it once whole, and
    returns its metadata, returned here."""
    ap = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    ap.add_argument("-o", "--out", type=Path, required=True, help="set folder to write")
    ap.add_argument("--archive", type=Path, help="a local copy of the source archive")
    args = ap.parse_args()
    out = args.out.resolve()
    if out.is_dir() and any(out.iterdir()) or out.is_file():
        ap.error(f"{out} exists; name a new set folder")
    out.parent.mkdir(parents=True, exist_ok=True)
    with (
        tempfile.TemporaryDirectory() as tmp,
        tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.name}.") as stage,
    ):  # built beside it and renamed into place: whole or not at all
        meta = build_set(Path(stage) / out.name, args.archive or fetch(url, sha256, Path(tmp)))
        os.replace(Path(stage) / out.name, out)
    return meta


def main() -> None:
    meta = fetch_and_build(__doc__, URL, SHA256, build)
    print(json.dumps(meta["merge"], indent=1))


if __name__ == "__main__":
    try:
        main()
    except (HDRError, OSError) as exc:  # no network, a missing archive, an existing set
        sys.exit(f"error: {exc}")
