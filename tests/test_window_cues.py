"""``scripts/window_cues.py``: each edit touches only its region of the photo."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import window_cues  # noqa: E402


def photo() -> np.ndarray:
    """A clipped square, a near-white band around it and a textured darker room."""
    rng = np.random.default_rng(0)
    ldr = rng.uniform(0.1, 0.5, (80, 120, 3)).astype(np.float32)
    ldr[20:60, 40:80] = 0.85
    ldr[30:50, 50:70] = 1.0
    return ldr


def test_regions_split_the_photo_by_distance_to_the_clip():
    clipped, edge, room = window_cues.regions(photo(), radius=5)
    assert clipped.sum() == 20 * 20
    assert not (clipped & edge).any() and not (edge & room).any() and not (clipped & room).any()
    assert (clipped | edge | room).all()
    assert edge.sum() == 30 * 30 - 20 * 20  # the 5-px ring


def test_each_edit_changes_only_its_region_and_never_the_clipped_pixels():
    ldr = photo()
    clipped, edge, room = window_cues.regions(ldr, radius=5)
    out = window_cues.edits(ldr, radius=5)
    for name, x in out.items():
        assert x.shape == ldr.shape and 0.0 <= x.min() and x.max() <= 1.0, name
        np.testing.assert_array_equal(x[clipped], ldr[clipped], err_msg=name)
    for name in ("room -2 EV", "room +1 EV"):
        np.testing.assert_array_equal(out[name][edge], ldr[edge])
        assert np.abs(out[name][room] - ldr[room]).min() > 0.0
    assert (out["room -2 EV"][room] < ldr[room]).all()
    for name in ("edge x0.6", "edge blurred", "edge grey"):
        np.testing.assert_array_equal(out[name][room], ldr[room], err_msg=name)
    np.testing.assert_allclose(out["edge x0.6"][edge], 0.6 * ldr[edge])  # all near white here
    grey = out["edge grey"][edge]
    np.testing.assert_allclose(grey, grey.mean(axis=-1, keepdims=True).repeat(3, -1))
