"""Tone-mapping operators against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from mlx_hdr.color import linear_to_srgb, srgb_to_linear
from mlx_hdr.infer.tonemap import exposure, reinhard2002, reinhard_simple, tonemap


def test_reinhard_simple_grey_and_chroma():
    out = reinhard_simple(np.ones((1, 1, 3), np.float32))
    # L = 1 -> 1 / (1 + 1) = 0.5 linear -> sRGB 0.7354
    np.testing.assert_allclose(out, 0.735357, atol=1e-5)
    rgb = np.array([[[2.0, 1.0, 0.5]]], np.float32)
    lum = 0.2126 * 2 + 0.7152 * 1 + 0.0722 * 0.5
    lin = srgb_to_linear(reinhard_simple(rgb))
    np.testing.assert_allclose(lin, rgb * (1 / (1 + lum)), atol=2e-3)  # ratios kept
    brighter = reinhard_simple(np.ones((1, 1, 3), np.float32), exposure_ev=1.0)
    np.testing.assert_allclose(srgb_to_linear(brighter), 2 / 3, atol=1e-4)


def test_reinhard2002_key_and_white():
    img = np.full((4, 4, 3), 3.0, np.float32)
    # uniform: L_avg = 3, L = 0.18; default white = max L = 0.18 -> maps to exactly 1
    np.testing.assert_allclose(reinhard2002(img), 1.0, atol=1e-5)
    # white -> infinity: L / (1 + L) = 0.18 / 1.18
    expected = linear_to_srgb(np.float32(0.18 / 1.18))
    np.testing.assert_allclose(reinhard2002(img, white=1e9), expected, atol=1e-5)
    half_key = reinhard2002(img, key=0.09, white=1e9)
    np.testing.assert_allclose(srgb_to_linear(half_key), 0.09 / 1.09, atol=1e-4)


def test_exposure_and_dispatch():
    img = np.full((2, 2, 3), 0.25, np.float32)
    np.testing.assert_allclose(exposure(img, exposure_ev=1.0), linear_to_srgb(np.float32(0.5)))
    assert exposure(img * 100).max() == pytest.approx(1.0)
    np.testing.assert_array_equal(tonemap(img, "exposure"), exposure(img))
    with pytest.raises(ValueError, match="unknown tone map"):
        tonemap(img, "drago")


def test_tonemap_in_strips_equals_the_whole_image_operator():
    from mlx_hdr.infer.tonemap import TONEMAPS, tonemap

    rng = np.random.default_rng(3)
    hdr = (rng.random((600, 40, 3)) ** 4 * 50).astype(np.float32)  # > 2 strips of rows
    for name in ("reinhard", "exposure"):
        whole = TONEMAPS[name](hdr, exposure_ev=-1.0)
        np.testing.assert_array_equal(tonemap(hdr, name, -1.0), whole)
