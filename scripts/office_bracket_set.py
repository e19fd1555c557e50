"""hdr-pool-2's office bracket as a bracket set that ``mlx-hdr evaluate`` scores frame by frame.

The stored frames carry no EXIF; this writes each one back with its exposure from the set's
``exposures.json`` (re-encoded as JPEG quality 95, 4:4:4) and merges them as
``mlx-hdr data brackets`` does (``data.brackets.write_bracket_set``, no alignment: a
tripod). The new set marks what ``mlx-hdr evaluate`` leaves unscored, as
``scripts/validate_model.py`` does: the stored set's ghost box (a person moved between the
frames) and the lens's image circle found on the new merge (outside it lies the lens
barrel; ``data.fisheye.find_circle``).

    python scripts/office_bracket_set.py -o runs/brackets/office
    mlx-hdr evaluate runs/brackets/office --method model --method kovaleski2014 \\
        --method linear -o runs/eval-office
"""

from __future__ import annotations

import argparse
import json
import os
import re
import tempfile
from fractions import Fraction
from pathlib import Path

# ruff: noqa: E402  (imports after backend.setup(): OpenCV's Debevec fit follows the BLAS
# loaded, so the set is merged as `mlx-hdr data brackets`, which loads OpenBLAS, merges it)
from mlx_hdr import backend

backend.setup()
# isort: split
from PIL import Image
from PIL.TiffImagePlugin import IFDRational

from mlx_hdr.data.brackets import write_bracket_set
from mlx_hdr.data.fisheye import find_circle
from mlx_hdr.io.atomic import write_text_atomic
from mlx_hdr.io.exif import EXIF_IFD
from mlx_hdr.io.image_io import read_hdr
from mlx_hdr.io.photo_meta import EXPOSURE_TIME, F_NUMBER, ISO_SPEED

OFFICE = Path(__file__).resolve().parents[1] / "../shared/data/hdr-pool-2/brackets"
OFFICE = OFFICE / "lumilab_fisheye_office"


def rational(value: float, limit: int) -> IFDRational:
    """``value`` as an EXIF rational with a denominator up to ``limit``."""
    return IFDRational(*Fraction(value).limit_denominator(limit).as_integer_ratio())


def with_exif(src: Path, dst: Path, frame: dict) -> Path:
    """``src`` written to ``dst`` as a JPEG carrying ``frame``'s exposure in its EXIF."""
    exif = Image.Exif()
    ifd = exif.get_ifd(EXIF_IFD)
    ifd[EXPOSURE_TIME] = rational(frame["exposure_time_s"], 10**6)
    ifd[F_NUMBER] = rational(frame["f_number"], 1000)
    ifd[ISO_SPEED] = int(frame["iso"])
    with Image.open(src) as im:
        im.convert("RGB").save(dst, exif=exif, quality=95, subsampling=0)
    return dst


def bare(name: str) -> str:
    """A stored frame's name without its ``frame_NN_`` prefix (the new set adds its own)."""
    return re.sub(r"^frame_\d+_", "", name)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-o", "--output", type=Path, required=True, help="the new set's folder")
    ap.add_argument("--source", type=Path, default=OFFICE, help="the stored bracket set")
    args = ap.parse_args()
    if args.output.exists() and not (args.output.is_dir() and not any(args.output.iterdir())):
        ap.error(f"{args.output}: already exists (choose a new folder)")
    meta = json.loads((args.source / "exposures.json").read_text())
    args.output.parent.mkdir(parents=True, exist_ok=True)
    # built beside the output and renamed into place with its marks: all or nothing
    with tempfile.TemporaryDirectory(prefix=".office.", dir=args.output.parent) as tmp:
        frames = [
            with_exif(args.source / f["file"], Path(tmp) / bare(f["file"]), f)
            for f in meta["frames"]
        ]
        built = Path(tmp) / "set"
        written = write_bracket_set(frames, built)
        marked = marks(meta, built / written["merge"]["output"])
        write_text_atomic(built / "exposures.json", json.dumps(written | marked, indent=1) + "\n")
        os.rename(built, args.output)
    print(f"wrote {args.output}: {len(written['frames'])} frames and {written['merge']['output']}")


def marks(stored: dict, merged: Path) -> dict:
    """The unscored pixels the new set marks (``mlx_hdr.data.scored``): the stored set's
    ghost box and the image circle found on the new ``merged`` HDR, where there is one."""
    out = (
        {"ghost_region_xyxy": stored["ghost_region_xyxy"]} if "ghost_region_xyxy" in stored else {}
    )
    try:
        circle = find_circle(read_hdr(merged))
    except ValueError as exc:
        print(f"{merged}: {exc}; every pixel is scored")
        return out
    return out | {"image_circle": [round(v, 3) for v in (circle.cx, circle.cy, circle.radius)]}


if __name__ == "__main__":
    main()
