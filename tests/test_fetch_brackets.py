"""``scripts/fetch_hdrmerge_brackets.py``: the raw merge and alignment (no download here)."""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import fetch_hdrmerge_brackets as fetch  # noqa: E402


def scene(h: int = 160, w: int = 240) -> np.ndarray:
    """Smooth scene-linear texture, 0.05-0.6, with a light at 3-6x over a sixth of it."""
    rng = np.random.default_rng(1)
    img = cv2.GaussianBlur(rng.uniform(0.05, 0.6, (h, w, 3)).astype(np.float32), (0, 0), 3)
    img[20:60, 30:110] *= np.float32([8.0, 9.0, 10.0])
    return img


def test_ecc_recovers_a_shift():
    img = fetch.log_luma(scene())
    shifted = np.roll(img, (3, -5), axis=(0, 1))
    warp = fetch.ecc_warp(img, shifted, np.ones(img.shape, bool))
    np.testing.assert_allclose(warp[:, 2], [-5, 3], atol=0.2)
    np.testing.assert_allclose(warp[:, :2], np.eye(2), atol=0.01)


def test_merge_takes_the_short_frame_where_the_reference_clips():
    truth = scene()
    ref = np.minimum(truth, 1.0)
    clipped = (truth >= fetch.SATURATED).any(axis=-1)
    short = np.roll(truth / 3.7, (2, 1), axis=(0, 1))  # handheld: shifted; 1.9 stops down
    frames = {"a": (ref, clipped, b""), "b": (short, np.zeros_like(clipped), b"")}
    hdr, info = fetch.merge(frames, "a", "b", labelled=4.0)
    assert abs(info["short_frame_ratio"]["measured"] - 3.7) < 0.01
    assert info["short_frame_ratio"]["labelled"] == 4.0
    # away from the rolled-in border and the light's edge (the step there is interpolated)
    edge = cv2.dilate(cv2.Canny(clipped.astype(np.uint8) * 255, 1, 1), np.ones((9, 9)))
    keep = edge == 0
    keep[:8], keep[-8:], keep[:, :8], keep[:, -8:] = False, False, False, False
    np.testing.assert_allclose(hdr[keep], truth[keep], rtol=0.02, atol=0.002)
    light = clipped & keep  # the light itself, where the reference clips at 1.0
    assert light.sum() > 1000 and truth[light].max() > 2.0
    np.testing.assert_allclose(hdr[light], truth[light], rtol=0.02)
