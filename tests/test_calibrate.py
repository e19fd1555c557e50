"""Calibration of network outputs to input-white HDR, and the clipped-pixel blend."""

from __future__ import annotations

import numpy as np
import pytest

from mlx_hdr.color import (
    clip_mask,
    hdr_to_target,
    linear_to_srgb,
    rgb_to_luminance,
    srgb_to_linear,
)
from mlx_hdr.infer.calibrate import (
    ANCHOR,
    BLEND_TAU,
    FALLBACK_HI,
    MIN_SPAN,
    blend_with_input,
    calibrate,
    fill_colour,
    fit_log_range,
)
from mlx_hdr.infer.targets import STOPS_FLOOR


def scene(seed: int = 0) -> np.ndarray:
    """Input-white HDR: mid-tones in [0.01, 0.9] and a 4x-white highlight."""
    rng = np.random.default_rng(seed)
    hdr = rng.uniform(0.01, 0.9, (32, 32, 3)).astype(np.float32)
    hdr[:8, :8] = rng.uniform(1.5, 4.0, (8, 8, 3))
    return hdr


def test_fit_recovers_lo_hi_of_a_perfect_prediction():
    hdr = scene()
    ldr = linear_to_srgb(hdr)  # clips the highlight at 1.0
    target, lo, hi = hdr_to_target(hdr)
    fit_lo, fit_hi = fit_log_range(ldr, target)
    assert fit_lo == pytest.approx(float(lo.squeeze()), abs=1e-3)
    assert fit_hi == pytest.approx(float(hi.squeeze()), abs=1e-3)
    np.testing.assert_allclose(calibrate(ldr, target, blend=False), hdr, rtol=2e-3, atol=1e-4)


def test_fit_ignores_outliers():
    hdr = scene(1)
    ldr = linear_to_srgb(hdr)
    target, lo, hi = hdr_to_target(hdr)
    target[20:22, 20:22] = 1.0  # a hallucinated blob in well-exposed pixels
    fit_lo, fit_hi = fit_log_range(ldr, target)
    assert fit_hi == pytest.approx(float(hi.squeeze()), abs=1e-3)


def test_fallbacks_keep_hi_above_lo():
    white = np.ones((8, 8, 3), np.float32)  # nothing well exposed
    assert fit_log_range(white, np.zeros_like(white)) == (0.0, FALLBACK_HI)
    flat = np.full((16, 16, 3), 0.5, np.float32)  # constant target: slope 0
    lo, hi = fit_log_range(flat, np.zeros_like(flat))
    assert hi - lo >= MIN_SPAN - 1e-9 and lo >= 0


def test_a_degenerate_fit_keeps_the_output_finite():
    """Well-exposed outputs that barely vary (2e-5) had fitted a log1p span of 35,000: the
    clipped pixels' expm1 overflowed to inf, then NaN through the blend."""
    ldr = np.tile(np.linspace(0.1, 0.8, 32, dtype=np.float32)[None, :, None], (32, 1, 3))
    ldr[:4] = 1.0
    target = np.full(ldr.shape, -0.5, np.float32)
    target[4:] += np.linspace(0, 2e-5, 32, dtype=np.float32)[None, :, None]
    target[:4] = 0.9
    lo, hi = fit_log_range(ldr, target)
    assert hi - lo <= np.log1p(2.0**16) + 1e-6
    assert np.isfinite(calibrate(ldr, target)).all()


def test_blend_weight_and_blend():
    ldr = np.array([[[0.5, 0.5, 0.5], [0.975, 0.2, 0.2], [1.0, 1.0, 1.0]]], np.float32)
    np.testing.assert_allclose(clip_mask(ldr, BLEND_TAU)[..., 0], [[0.0, 0.5, 1.0]], atol=1e-6)
    pred = np.full_like(ldr, 8.0)
    out = blend_with_input(ldr, pred, anchor=0.0)
    lin = srgb_to_linear(ldr)
    np.testing.assert_allclose(out[0, 0], lin[0, 0])
    # only the half-clipped red channel is blended; green and blue are measurements
    np.testing.assert_allclose(out[0, 1, 0], 0.5 * lin[0, 1, 0] + 0.5 * 8.0, rtol=1e-5)
    np.testing.assert_allclose(out[0, 1, 1:], lin[0, 1, 1:], rtol=1e-6)
    np.testing.assert_allclose(out[0, 2], 8.0, rtol=1e-5)


def test_fully_clipped_pixels_get_predicted_luminance_in_the_input_colour():
    """A bluish prediction for a white, fully clipped pixel comes out neutral, same Y."""
    ldr = np.array([[[1.0, 1.0, 1.0], [1.0, 1.0, 0.3]]], np.float32)
    pred = np.array([[[2.0, 4.0, 12.0], [6.0, 6.0, 6.0]]], np.float32)
    out = blend_with_input(ldr, pred, anchor=0.0)
    y_pred = rgb_to_luminance(pred[0, 0])
    np.testing.assert_allclose(out[0, 0], y_pred, rtol=1e-5)  # neutral, predicted luminance
    # blue is recorded in the second pixel: it keeps the prediction's red/green, input blue
    np.testing.assert_allclose(out[0, 1, :2], 6.0, rtol=1e-5)
    np.testing.assert_allclose(out[0, 1, 2], srgb_to_linear(ldr)[0, 1, 2], rtol=1e-6)


def test_anchor_lowers_a_partly_clipped_prediction_towards_its_recorded_channels():
    """Blue clipped, red and green recorded at linear ~0.6: a prediction of 8x white is
    lowered by a share of the 3.7 stops between it and them; fully clipped pixels and
    predictions below the recorded channels are not touched."""
    ldr = np.array([[[0.8, 0.8, 1.0], [1.0, 1.0, 1.0], [0.8, 0.8, 1.0]]], np.float32)
    lin = srgb_to_linear(ldr)
    pred = np.array([[[8.0, 8.0, 8.0], [8.0, 8.0, 8.0], [0.3, 0.3, 0.3]]], np.float32)
    stops = np.log((lin[0, 0, 0] + STOPS_FLOOR) / (8.0 + STOPS_FLOOR))  # ln; both alike
    for anchor in (0.25, 1.0):
        out = blend_with_input(ldr, pred, anchor=anchor)
        expect = max(8.0 * np.exp(anchor * stops), 1.0)  # never below the recorded clip
        np.testing.assert_allclose(out[0, 0, 2], expect, rtol=1e-3)
        np.testing.assert_allclose(out[0, 0, :2], lin[0, 0, :2], rtol=1e-6)  # kept
        np.testing.assert_allclose(out[0, 1:], blend_with_input(ldr, pred, anchor=0.0)[0, 1:])
    assert 8.0 * np.exp(0.25 * stops) > 3.0  # a quarter anchor still lifts it well above
    assert 8.0 * np.exp(ANCHOR * stops) < 2**0.5  # the default brings it within half a stop


def test_the_anchor_reads_a_near_black_recorded_channel_in_the_targets_stops():
    """A saturated yellow light (red and green clipped, blue recorded near 0) predicted
    +2 stops in every channel is lowered by the anchor's share of those 2 stops; read with
    an offset of 1e-4 the blue channel had said 8 and erased the highlight."""
    for blue in (0.0, 0.03, 0.1):
        ldr = np.array([[[1.0, 1.0, blue]]], np.float32)
        pred = (srgb_to_linear(ldr) + STOPS_FLOOR) * 4.0 - STOPS_FLOOR
        out = blend_with_input(ldr, pred)
        np.testing.assert_allclose(out[0, 0, 0], pred[0, 0, 0] * 2.0 ** (-2 * ANCHOR), rtol=0.02)


def test_blend_never_puts_clipped_pixels_below_the_input():
    ldr = np.array([[[1.0, 1.0, 1.0], [0.975, 0.2, 0.2]]], np.float32)
    pred = np.full_like(ldr, 0.3)  # a prediction darker than the recorded, clipped value
    out = blend_with_input(ldr, pred)
    lin = srgb_to_linear(ldr)
    np.testing.assert_allclose(out[0, 0], 1.0)  # floored at the clip level
    assert np.all(out >= np.minimum(lin, 0.3) - 1e-6)
    np.testing.assert_allclose(out[0, 1, 0], lin[0, 1, 0])  # half-blended, floored channel


def test_floor_keeps_the_prediction_at_least_as_bold_as_the_operator():
    from mlx_hdr.infer.methods import kovaleski2014
    from mlx_hdr.infer.targets import hdr_to_stops

    rng = np.random.default_rng(0)
    ldr = rng.uniform(0.0, 0.9, (48, 64, 3)).astype(np.float32)
    ldr[10:30, 20:40] = 1.0  # a clipped patch
    target = hdr_to_stops(srgb_to_linear(ldr), ldr)  # predicts no boost at all
    plain = calibrate(ldr, target, blend=False, kind="stops")
    floored = calibrate(ldr, target, blend=False, kind="stops", floor="kovaleski2014")
    kov = kovaleski2014(ldr)
    np.testing.assert_allclose(floored, np.maximum(plain, kov), rtol=1e-6)
    assert floored[20, 30].min() > 1.5 * plain[20, 30].max()  # the clipped patch is boosted
    with pytest.raises(ValueError, match="unknown method"):
        calibrate(ldr, target, kind="stops", floor="nope")


def test_a_partial_floor_keeps_that_share_of_the_operators_stops():
    from mlx_hdr.infer.calibrate import FLOOR_EPS, floor_image
    from mlx_hdr.infer.methods import kovaleski2014

    rng = np.random.default_rng(1)
    ldr = rng.uniform(0.0, 0.9, (48, 64, 3)).astype(np.float32)
    ldr[10:30, 20:40] = 1.0
    lin, kov = srgb_to_linear(ldr) + FLOOR_EPS, kovaleski2014(ldr) + FLOOR_EPS
    np.testing.assert_allclose(floor_image("kovaleski2014", ldr, 1.0), kovaleski2014(ldr))
    np.testing.assert_allclose(floor_image("kovaleski2014", ldr, 0.0), lin - FLOOR_EPS, atol=1e-6)
    half = floor_image("kovaleski2014", ldr, 0.5) + FLOOR_EPS
    np.testing.assert_allclose(np.log2(half / lin), 0.5 * np.log2(kov / lin), atol=1e-4)
    assert half[20, 30].min() > 1.2 * lin[20, 30].max()  # still a boost in the clipped patch
    assert floor_image(None, ldr, 0.5) is None


def test_model_config_names_a_known_floor():
    from mlx_hdr.models.hybrid import HybridConfig

    assert HybridConfig.from_json(HybridConfig(floor="kovaleski2014").to_json()).floor == (
        "kovaleski2014"
    )
    assert HybridConfig().floor is None
    with pytest.raises(ValueError, match="floor must be one of"):
        HybridConfig(floor="masia2017")
    config = HybridConfig(floor="kovaleski2014", floor_strength=0.75)
    assert HybridConfig.from_json(config.to_json()).floor_strength == 0.75
    assert HybridConfig().floor_strength == 1.0
    with pytest.raises(ValueError, match="floor_strength must be in"):
        HybridConfig(floor_strength=1.5)


def chromaticity(x: np.ndarray) -> np.ndarray:
    return x / x.sum(axis=-1, keepdims=True)


def window_scene() -> np.ndarray:
    """A fully clipped window in a bright warm frame (red clipped, green and blue recorded),
    in a dim room with a blue wall far to the right."""
    ldr = np.full((64, 96, 3), 0.3, np.float32)
    ldr[:, 80:] = [0.1, 0.2, 0.7]
    ldr[10:40, 10:50] = [1.0, 0.85, 0.65]
    ldr[14:36, 14:46] = 1.0
    return ldr


def test_fill_colour_continues_the_bright_surroundings_into_the_clipped_pixels():
    ldr = window_scene()
    lin = srgb_to_linear(ldr)
    colour = fill_colour(ldr, lin)
    assert colour.shape == ldr.shape and colour.dtype == np.float32
    np.testing.assert_allclose(colour.sum(axis=-1), 1.0, rtol=1e-5)
    frame = chromaticity(lin[12, 12])
    np.testing.assert_allclose(colour[14:36, 14:46], np.broadcast_to(frame, (22, 32, 3)), atol=2e-3)
    assert fill_colour(np.full((8, 8, 3), 0.5, np.float32), lin[:8, :8]) is None


def test_fill_colour_is_neutral_where_nothing_bright_is_near():
    ldr = np.full((32, 32, 3), 0.3, np.float32)
    ldr[10:20, 10:20] = 1.0  # a clipped patch in a dim room: nothing lends a colour
    np.testing.assert_allclose(fill_colour(ldr, srgb_to_linear(ldr)), 1.0 / 3.0)


def test_blend_puts_fully_clipped_pixels_in_the_given_colour_at_the_predicted_luminance():
    ldr = window_scene()
    lin = srgb_to_linear(ldr)
    pred = np.full_like(ldr, 3.0)
    pred[..., 2] = 6.0  # a bluish prediction
    colour = fill_colour(ldr, lin)
    out = blend_with_input(ldr, pred, lin=lin, colour=colour)
    inner = (slice(14, 36), slice(14, 46))
    np.testing.assert_allclose(chromaticity(out[inner]), colour[inner], atol=1e-4)
    np.testing.assert_allclose(
        rgb_to_luminance(out[inner]), rgb_to_luminance(pred[inner]), rtol=1e-4
    )
    # elsewhere the colour is not used
    plain = blend_with_input(ldr, pred, lin=lin)
    np.testing.assert_array_equal(out[:, 60:], plain[:, 60:])
    np.testing.assert_allclose(chromaticity(plain[inner]), 1.0 / 3.0, atol=1e-5)  # the input's
