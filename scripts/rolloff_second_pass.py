"""An inference variant measured and not adopted (docs/EXPERIMENTS.md, "The roll-off undone
in a second pass"): ``validate_model.py`` with the network run a second time on the photo
with a camera's highlight roll-off undone, its stops kept where they are higher, in the
clipped regions the first pass reads as a light.

    python scripts/rolloff_second_pass.py --brackets \
        ../shared/data/hdr-pool-2/brackets/lumilab_fisheye_office -n 0 --no-peers \
        --per-case --model mlx_hdr/assets/default.safetensors

Every argument goes to ``validate_model.py``; ``--gate off`` (first) gives the shipped
pipeline through the same code.
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np

# ruff: noqa: E402  (imports after backend.setup(), which must run before mlx.core loads)
from mlx_hdr import backend

backend.setup()
# isort: split
import mlx_hdr.infer.pipeline as pipeline
from mlx_hdr.color import (
    CLIPPED,
    highlight_rolloff,
    linear_to_srgb,
    rgb_to_luminance,
    srgb_to_linear,
)
from mlx_hdr.infer.response import SHOULDER_KNEE, SHOULDER_STOPS, SHOULDER_TOP
from mlx_hdr.infer.targets import hdr_to_stops, stops_to_hdr

sys.path.insert(0, str(Path(__file__).resolve().parent))
import validate_model

GATE = 1.0  # stops above white the first pass reads a region at: the ramp's middle
FIRST_PASS = pipeline.predict_target


def rolloff_undone(ldr: np.ndarray) -> np.ndarray:
    """The display photo an sRGB camera would have taken: each channel's light by the sRGB
    curve plus the camera roll-off (``response.shoulder_table``'s), re-encoded and clipped."""
    lift = highlight_rolloff(ldr, SHOULDER_STOPS, SHOULDER_KNEE, SHOULDER_TOP)
    lin = srgb_to_linear(ldr) * np.exp2(lift)
    return linear_to_srgb(np.clip(lin, 0.0, 1.0)).astype(np.float32)


def light_weight(ldr: np.ndarray, undone: np.ndarray, first: np.ndarray) -> np.ndarray:
    """HxW weight: per connected clipped region of ``undone``, the ramp 0 -> 1 over
    ``GATE`` -/+ 0.25 stops of the first pass's median reading over the photo's clipped
    pixels in it (luminance, stops above the sRGB-linearised photo)."""
    clipped = ldr.max(-1) >= CLIPPED
    n, labels = cv2.connectedComponents((undone.max(-1) >= CLIPPED).astype(np.uint8))
    y_lin = np.maximum(rgb_to_luminance(srgb_to_linear(ldr)), 1e-6)
    reading = np.log2(np.maximum(rgb_to_luminance(stops_to_hdr(first, ldr)), 1e-8) / y_lin)
    w = np.zeros(ldr.shape[:2], np.float32)
    for k in range(1, n):
        region = labels == k
        core = region & clipped
        if core.sum() >= 4:
            w[region] = np.clip(2.0 * (np.median(reading[core]) - GATE) + 0.5, 0.0, 1.0)
    return w[..., None]


def two_passes(net, ldr, flip=False, white=None) -> np.ndarray:
    """``predict_target`` with the second pass's higher stops where ``light_weight`` says."""
    first = FIRST_PASS(net, ldr, flip, white)
    if not (ldr.max(-1) >= CLIPPED).any():
        return first
    undone = rolloff_undone(ldr)
    second = hdr_to_stops(stops_to_hdr(FIRST_PASS(net, undone, flip, white), undone), ldr)
    return first + light_weight(ldr, undone, first) * np.maximum(second - first, 0.0)


if __name__ == "__main__":
    args = sys.argv[1:]
    if args[:2] == ["--gate", "off"]:
        args = args[2:]
    else:
        pipeline.predict_target = two_passes
    sys.argv = ["validate_model.py", *args]
    validate_model.main()
