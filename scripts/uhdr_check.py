"""Check a gain-map JPEG that ``mlx-hdr predict --format uhdr`` wrote against the same run's EXR.

    python scripts/uhdr_check.py PHOTO OUT/PHOTO_uhdr.jpg OUT/PHOTO.exr

(``--format exr --format uhdr --float``; with ``--format avif`` too, OUT/PHOTO.avif is checked
the same way.)

Prints, per region of the input photo, how far the HDR rendition that libultrahdr decodes
(``imagecodecs.ultrahdr_decode``, full boost) lies from the EXR: "highlights" are pixels with
a channel >= 0.95 in the photo (where the reconstruction takes over), "unclipped" pixels lie more
than 16 px away from any of them (the gain map's JPEG blocks are 8 px). Errors are in stops,
|log2((decoded + 1/64) / (exr + 1/64))|, the gain map's own measure. Then the SDR base decoded
by Pillow against the photo (8-bit levels), and exiftool's view of the metadata when exiftool
is installed (Debian: ``apt install libimage-exiftool-perl``). A Display P3 photo's base is its
own pixels, another wide photo's its colours in Display P3 (``io.native``): the rendition is
taken back to Rec.709 and the base compared with those pixels.
"""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import imagecodecs
import numpy as np
from PIL import Image

from mlx_hdr.color import rgb_to_rec709_matrix
from mlx_hdr.errors import HDRError
from mlx_hdr.io.avif import REC2020_CHROMATICITIES, REFERENCE_WHITE_NITS, pq_decode
from mlx_hdr.io.image_io import read_hdr, read_ldr, to_uint8
from mlx_hdr.io.native import P3_TO_REC709, display_p3_base

OFFSET = 1 / 64


def regions(ldr: np.ndarray) -> dict[str, np.ndarray]:
    """Boolean HxW masks: highlights (a channel >= 0.95) and unclipped (> 16 px from them)."""
    high = (ldr >= 0.95).any(axis=-1)
    near = cv2.dilate(high.astype(np.uint8), np.ones((33, 33), np.uint8)) > 0
    return {"highlights": high, "unclipped": ~near}


def stop_errors(decoded: np.ndarray, exr: np.ndarray) -> np.ndarray:
    """Per-channel |log2| ratio of the decoded HDR rendition to the EXR (HxWx3)."""
    return np.abs(np.log2((np.maximum(decoded, 0) + OFFSET) / (np.maximum(exr, 0) + OFFSET)))


def report(name: str, size: int, decoded: np.ndarray, exr: np.ndarray, ldr: np.ndarray) -> None:
    """Print the decoded rendition's error against the EXR per region."""
    err = stop_errors(decoded, exr)
    print(f"{name}: {size} bytes, EXR peak {exr.max():.3f}, decoded peak {decoded.max():.3f}")
    for region, mask in regions(ldr).items():
        if not mask.any():
            print(f"  {region:10s} none")
            continue
        e = err[mask]
        print(
            f"  {region:10s} {mask.mean():6.1%} of pixels: stops p50 {np.median(e):.4f} "
            f"p99 {np.percentile(e, 99):.4f} max {e.max():.4f}"
        )


def check_avif(path: Path, exr: np.ndarray, ldr: np.ndarray) -> None:
    """The PQ AVIF decoded (libavif) back to scene-linear Rec.709, against the EXR."""
    data = path.read_bytes()
    nits = pq_decode(imagecodecs.avif_decode(data) / 1023.0)
    linear = nits / REFERENCE_WHITE_NITS @ rgb_to_rec709_matrix(REC2020_CHROMATICITIES).T
    report(str(path), len(data), linear, exr, ldr)


def main(photo: str, uhdr: str, exr_path: str) -> None:
    ldr, exr, data = read_ldr(photo), read_hdr(exr_path), open(uhdr, "rb").read()
    decoded = imagecodecs.ultrahdr_decode(data).astype(np.float32)[..., :3]
    native = display_p3_base(photo, ldr.shape[:2], convert=True)  # as predict makes it
    if native is not None:  # the rendition is in the base's Display P3
        decoded = decoded @ P3_TO_REC709.T
    report(uhdr, len(data), decoded, exr, ldr)
    with Image.open(io.BytesIO(data)) as im:
        base = np.asarray(im.convert("RGB"), np.int16)
    own = to_uint8(ldr) if native is None else native.pixels
    diff = np.abs(base - own.astype(np.int16))
    print(f"  SDR base vs photo: mean {diff.mean():.3f}, max {diff.max()} (8-bit levels)")
    if Path(exr_path).with_suffix(".avif").is_file():
        check_avif(Path(exr_path).with_suffix(".avif"), exr, ldr)
    if shutil.which("exiftool") is None:
        print("  exiftool not installed: metadata not shown")
        return
    tags = ["-MPF:all", "-XMP-hdrgm:all", "-XMP-Container:all"]
    out = subprocess.run(["exiftool", "-a", "-G1", "-s", "-ee", *tags, uhdr], capture_output=True)
    print(out.stdout.decode())


if __name__ == "__main__":
    if len(sys.argv) == 2 and sys.argv[1] in ("-h", "--help"):
        print(__doc__)
    elif len(sys.argv) != 4:
        sys.exit(__doc__)
    else:
        try:
            main(*sys.argv[1:])
        except HDRError as exc:  # a missing or unreadable file: one line
            sys.exit(f"error: {exc}")
        except OSError as exc:  # the gain-map JPEG: read as bytes
            sys.exit(f"error: {exc.filename}: {exc.strerror or exc}")
        except imagecodecs.UltrahdrError as exc:  # not an Ultra HDR JPEG
            sys.exit(f"error: {sys.argv[2]}: not an Ultra HDR JPEG ({exc})")
