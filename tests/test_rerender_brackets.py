"""``scripts/rerender_brackets.py``: the merged HDR photographed again through sRGB and the
camera curve."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import rerender_brackets  # noqa: E402

from mlx_hdr.color import (  # noqa: E402
    clipped_mask,  # noqa: E402
    linear_to_srgb,
    srgb_to_linear,
)


def test_renderings_clip_at_srgb_white_and_a_roll_off_above_it():
    """A ramp from 0.02 to 3x white, photographed as an sRGB camera would: the sRGB
    rendering gives the photo back; the camera curve (1 stop) clips at 2x white, is
    the sRGB curve below its knee, and keeps the black surround black."""
    light = np.geomspace(0.02, 3.0, 96 * 128, dtype=np.float32).reshape(96, 128, 1)
    hdr = np.repeat(light, 3, axis=-1)
    ldr = np.round(linear_to_srgb(np.clip(hdr, 0, 1)) * 255) / 255
    ldr[:4] = 0.0  # a black surround
    out = rerender_brackets.renderings(ldr.astype(np.float32), hdr, rolloff=1.0, knee=0.85)
    assert list(out) == ["camera JPEG", "sRGB", "camera curve"]
    np.testing.assert_allclose(out["sRGB"][4:], ldr[4:], atol=1.5 / 255)
    for photo in out.values():
        assert (photo[:4] == 0).all()
    srgb_clip, camera_clip = (clipped_mask(out[k])[4:] for k in ("sRGB", "camera curve"))
    assert camera_clip.sum() < srgb_clip.sum()
    y = hdr[4:, :, 0]
    # the metric's clipped pixels (display >= 0.98) hold 1.6x white or more through this curve
    assert y[camera_clip].min() > 1.55 and y[srgb_clip].min() < 1.05
    below = (y < 0.5) & (y > 0.05)  # under the knee both are sRGB of the light
    np.testing.assert_allclose(
        srgb_to_linear(out["camera curve"][4:][below][:, 0]), y[below], rtol=0.05
    )
