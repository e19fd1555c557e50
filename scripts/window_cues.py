"""What sets the network's level in a clipped region? Edit a bracket set's photos and watch.

For each case (``validate_model.py``'s: real frames with 1-30% clipped, or ``--rectilinear``
normal-lens views of a fisheye set), the
raw network's clipped gain (log2 of the median luminance over the linearised photo, over
the pixels clipped in the unedited photo, stops) is printed for the photo as it is and for
edits of it, beside the truth's:

- ``room -2 EV`` / ``room +1 EV``: every pixel further than ``--radius`` px from a clipped
  one darkened two stops / brightened one (in linear light): the exposure of the room;
- ``edge x0.6``: the unclipped near-white pixels (display max(RGB) above 0.7) within
  ``--radius`` px of a clipped one darkened to 0.6 of their display value: a hard edge;
- ``edge blurred``: those surroundings replaced by a Gaussian blur (σ 6 px) of the photo;
- ``edge grey``: those surroundings desaturated (their colour, not their level).

    python scripts/window_cues.py ../shared/data/hdr-pool-2/brackets/lumilab_fisheye_office \\
        --rectilinear=-40:0:75 --rectilinear 0:0:75 --rectilinear 40:0:75
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

# ruff: noqa: E402  (imports after backend.setup(), which must run before mlx.core loads)
from mlx_hdr import backend

backend.setup()
# isort: split
from mlx_hdr.color import CLIPPED, clipped_mask, linear_to_srgb, srgb_to_linear
from mlx_hdr.color import clipped_gain as color_clipped_gain
from mlx_hdr.infer.model_hub import load_net
from mlx_hdr.infer.pipeline import predict_hdr

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bracket_sets import add_bracket_set, bracket_set_cases  # noqa: E402
from validate_model import clipped_gain  # noqa: E402

NEAR_WHITE = 0.7  # display max(RGB) above which an unclipped pixel counts as near white


def regions(ldr: np.ndarray, radius: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """HxW bool masks: clipped, within ``radius`` px of a clipped pixel (not clipped), and
    further away (the room)."""
    clipped = clipped_mask(ldr)
    kernel = np.ones((2 * radius + 1, 2 * radius + 1), np.uint8)
    near = cv2.dilate(clipped.astype(np.uint8), kernel).astype(bool)
    return clipped, near & ~clipped, ~near


def edits(ldr: np.ndarray, radius: int) -> dict[str, np.ndarray]:
    """The edited photos (module doc), display HxWx3 in [0, 1]."""
    _, edge, room = regions(ldr, radius)
    lin = srgb_to_linear(ldr)
    out = {}
    for name, k in (("room -2 EV", 0.25), ("room +1 EV", 2.0)):
        x = ldr.copy()
        x[room] = linear_to_srgb(np.minimum(lin[room] * k, 1.0))
        out[name] = x
    bright = edge & (ldr.max(axis=-1) > NEAR_WHITE)
    x = ldr.copy()
    x[bright] *= 0.6
    out["edge x0.6"] = x
    x = ldr.copy()
    x[edge] = cv2.GaussianBlur(ldr, (0, 0), 6)[edge]
    out["edge blurred"] = x
    x = ldr.copy()
    x[edge] = x[edge].mean(axis=-1, keepdims=True)
    out["edge grey"] = x
    return out


def raw_gain(net, photo: np.ndarray, ldr: np.ndarray) -> float:
    """The raw network's clipped gain on ``photo``, over ``ldr``'s clipped pixels and its
    linearised luminance (so edits are measured against the unedited photo), stops."""
    raw = predict_hdr(photo, net, blend=False, flip=False)
    return color_clipped_gain(ldr, raw, threshold=CLIPPED)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_bracket_set(ap)
    ap.add_argument("--radius", type=int, default=20, help="edge width, px")
    args = ap.parse_args()
    net = load_net(args.model)[0]
    cases = bracket_set_cases(args)
    names = list(edits(cases[0][0], args.radius))
    print("| case | clipped | truth | as taken | " + " | ".join(names) + " |")
    print("|---" * (len(names) + 4) + "|")
    for i, (ldr, hdr) in enumerate(cases):
        gains = [raw_gain(net, ldr, ldr)]
        gains += [raw_gain(net, x, ldr) for x in edits(ldr, args.radius).values()]
        cells = [f"{clipped_mask(ldr).mean():.3f}", f"{clipped_gain(hdr, ldr):.2f}"]
        print(f"| {i} | " + " | ".join(cells + [f"{g:.2f}" for g in gains]) + " |", flush=True)


if __name__ == "__main__":
    main()
