"""Models and peers against the HDR renditions that real phone photos record in their gain
maps: the photo alone goes in (as with ``--no-input-gain-map``), the phone's own rendition
(read as ``mlx-hdr predict`` reads it, levelled to the photo's mid-tones) is the truth.

    python scripts/phone_renditions.py tests/fixtures/galaxy_s25ultra.heic photo.jpg ... \\
        --model mlx_hdr/assets/default.safetensors \\
        --expandnet ../shared/peers/expandnet/weights.pth

Phones tone-map instead of clipping, so these photos seldom clip: what this measures is how
near each method's tone curve comes to the phone's HDR one (mid-tones and shadows, and the
highlights the phone compressed); the highlight error (over the photo's clipped pixels, a
dash where none clipped) is the recovery of clipped light against the phone's rendition of
it. Each method sees the photo's EXIF exposure, as ``mlx-hdr predict`` does. Each photo is
scored at ``--long-side`` px by ``eval.metrics.hdr_metrics`` (one global scale over
well-exposed pixels); the table gives each photo and the mean.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import warnings
from pathlib import Path

import numpy as np

# ruff: noqa: E402  (imports after backend.setup(), which must run before mlx.core loads)
from mlx_hdr import backend

backend.setup()
# isort: split
from mlx_hdr.errors import HDRError
from mlx_hdr.eval.metrics import hdr_metrics
from mlx_hdr.infer.methods.expandnet2018 import load_expandnet
from mlx_hdr.infer.pipeline import load_input
from mlx_hdr.infer.recorded import KEPT, gain_for, recorded_hdr
from mlx_hdr.io.photo_meta import read_exposure

sys.path.insert(0, str(Path(__file__).resolve().parent))
from validate_model import runners

KEYS = ("pu21_psnr", "highlight_log2", "log_psnr", "log_ssim")


def case(path: Path, long_side: int) -> tuple[np.ndarray, np.ndarray] | None:
    """(photo, the phone's rendition) at ``long_side``, loaded as ``mlx-hdr predict`` loads
    them (``load_input``, ``gain_for``: it notes why a map cannot be read), or None."""
    ldr = load_input(path, long_side)
    with warnings.catch_warnings():  # predict's "keeping them" note: here it is the truth
        warnings.filterwarnings("ignore", message=f".*{re.escape(KEPT)}")
        gain = gain_for(path, ldr.shape[:2], ldr)
    if gain is None:
        print(f"skipped {path}: no gain map read", file=sys.stderr)
        return None
    return ldr, recorded_hdr(ldr, gain)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("files", nargs="+", type=Path, help="phone photos with a gain map")
    ap.add_argument("--model", action="append", default=[], help="model file or repo id")
    ap.add_argument("--expandnet", help="ExpandNet weights.pth (adds the expandnet2018 peer)")
    ap.add_argument("--long-side", type=int, default=1024, help="photos resized to, px")
    args = ap.parse_args()
    peers = ["linear", "kovaleski2014"]
    if args.expandnet:
        os.environ["MLX_HDR_EXPANDNET"] = args.expandnet
        peers.append("expandnet2018")
        load_expandnet()  # its weights before the table: a bad file said at once
    methods = runners(args.model, peers)
    cases = {p: c for p in args.files if (c := case(p, args.long_side)) is not None}
    print("| photo | method | " + " | ".join(KEYS) + " |")
    print("|---" * (len(KEYS) + 2) + "|")
    for name, (run, _) in methods.items():
        rows = []
        for photo, (ldr, truth) in cases.items():
            m = hdr_metrics(run(ldr, exposure=read_exposure(photo)), truth, ldr)
            rows.append([float(m[k]) for k in KEYS])
            print(f"| {photo.name} | {name} | " + " | ".join(map(cell, rows[-1])) + " |")
        with warnings.catch_warnings():  # a column no photo has (nothing clipped): NaN
            warnings.simplefilter("ignore", RuntimeWarning)
            mean = np.nanmean(np.array(rows), axis=0) if rows else []
        print(f"| **mean** | **{name}** | " + " | ".join(map(cell, mean)) + " |")


def cell(v: float) -> str:
    """A table cell: 3 decimals, a dash where the metric has no pixels (nothing clipped)."""
    return "–" if np.isnan(v) else f"{v:.3f}"


if __name__ == "__main__":
    try:
        main()
    except HDRError as exc:  # a photo, a model or ExpandNet's weights: one line
        sys.exit(f"error: {exc}")
