"""Contact sheets for ordinary photos (no ground truth): input | each method, Reinhard L/(1+L).

Each HDR is shown in its own units (1.0 = the input's white), so the sheets show what a user
gets. Photos: scikit-image's bundled samples (or files given with --image). Usage:

    python scripts/photo_sheets.py -o docs/sheets/photos --method linear \
        --method kovaleski2014 --method model
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

# ruff: noqa: E402  (imports after backend.setup(), which must run before mlx.core loads)
from mlx_hdr import backend

backend.setup()
# isort: split
from mlx_hdr.eval.evaluate import labelled_panel
from mlx_hdr.infer.pipeline import predict_hdr
from mlx_hdr.infer.tonemap import reinhard_simple
from mlx_hdr.io.image_io import read_ldr, write_ldr

SKIMAGE_PHOTOS = ("astronaut", "coffee", "chelsea", "rocket")


def photos(paths: list[str]) -> dict[str, np.ndarray]:
    """Display HxWx3 [0, 1] images by name: the given files, or scikit-image's samples."""
    if paths:
        return {Path(p).stem: read_ldr(p) for p in paths}
    from skimage import data

    return {n: getattr(data, n)()[..., :3].astype(np.float32) / 255.0 for n in SKIMAGE_PHOTOS}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-o", "--out", required=True)
    ap.add_argument("--method", action="append", default=None)
    ap.add_argument("--model", default=None, help="model file (default: bundled)")
    ap.add_argument("--image", action="append", default=[])
    args = ap.parse_args()
    methods = args.method or ["linear", "kovaleski2014", "model"]
    net = None
    if "model" in methods:
        from mlx_hdr.infer.model_hub import load_net

        net = load_net(args.model)[0]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name, ldr in photos(args.image).items():
        panels = [labelled_panel(ldr, "input")]
        for m in methods:
            hdr = predict_hdr(ldr, net=net, method=m)
            panels.append(labelled_panel(reinhard_simple(hdr), m))
        write_ldr(out / f"{name}.jpg", np.concatenate(panels, axis=1), quality=88)
        print(f"wrote {out / name}.jpg")


if __name__ == "__main__":
    main()
