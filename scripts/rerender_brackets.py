"""Is it the scene or the camera? A bracket set's merged HDR photographed again, two ways.

For each case (``validate_model.py``'s: real frames with 1-30% clipped, or ``--rectilinear``
normal-lens views of a fisheye set) the merged HDR, on the frame's linearised scale, is
rendered through the plain sRGB curve and through the simulator's camera curve
(:func:`~mlx_hdr.data.simulate.camera_curve`, ``--rolloff`` stops from ``--knee``), 8-bit.
Per case and photo (the camera's own JPEG, the sRGB rendering, the camera-curve
rendering): the clipped share, the truth's clipped gain and the raw network's (stops,
``validate_model.clipped_gain``). A network that reads the scene gets the renderings of
the same scene as right as each other; one that misses the camera's highlight roll-off
falls short only where the photo has one.

    python scripts/rerender_brackets.py ../shared/data/hdr-pool-2/brackets/lumilab_fisheye_office \\
        --rectilinear=-40:0:75 --rectilinear 0:0:75 --rectilinear 40:0:75
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

# ruff: noqa: E402  (imports after backend.setup(), which must run before mlx.core loads)
from mlx_hdr import backend

backend.setup()
# isort: split
from mlx_hdr.color import clipped_mask, linear_to_srgb
from mlx_hdr.data.simulate import camera_curve
from mlx_hdr.infer.model_hub import load_net
from mlx_hdr.infer.pipeline import predict_hdr

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bracket_sets import add_bracket_set, bracket_set_cases  # noqa: E402
from validate_model import aligned, clipped_gain  # noqa: E402


def renderings(ldr: np.ndarray, hdr: np.ndarray, rolloff: float, knee: float) -> dict:
    """name -> display HxWx3 photo of ``hdr`` (8-bit levels): the camera's ``ldr``, and
    ``hdr`` on its linearised scale through sRGB and through the camera curve (whose clip
    lies ``rolloff`` stops above that scale's white). Pixels black in ``ldr`` (a fisheye's
    surround, a ghost box) stay black."""
    light = aligned(hdr, ldr)
    out = {
        "camera JPEG": ldr,
        "sRGB": linear_to_srgb(np.clip(light, 0.0, 1.0)),
        "camera curve": camera_curve(light / 2.0**rolloff, rolloff, knee),
    }
    black = ldr.max(axis=-1) == 0
    for name in ("sRGB", "camera curve"):
        photo = (np.round(out[name] * 255.0) / 255.0).astype(np.float32)
        photo[black] = 0.0
        out[name] = photo
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_bracket_set(ap)
    ap.add_argument("--rolloff", type=float, default=1.0, help="camera curve: stops at white")
    ap.add_argument("--knee", type=float, default=0.85, help="camera curve: display knee")
    args = ap.parse_args()
    net = load_net(args.model)[0]
    cases = bracket_set_cases(args)
    print("| case | photo | clipped | truth | raw network |\n|---|---|---|---|---|")
    for i, (ldr, hdr) in enumerate(cases):
        for name, photo in renderings(ldr, hdr, args.rolloff, args.knee).items():
            raw = predict_hdr(photo, net, blend=False, flip=False)
            share = clipped_mask(photo).mean()
            gains = (clipped_gain(hdr, photo), clipped_gain(raw, photo))
            print(f"| {i} | {name} | {share:.3f} | {gains[0]:.2f} | {gains[1]:.2f} |", flush=True)


if __name__ == "__main__":
    main()
