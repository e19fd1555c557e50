"""The EXIF sky ceiling and daylight floor: exposure settings, the photo's white in cd/m²,
the ceiling, the floor."""

from __future__ import annotations

import math
import warnings
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from PIL.TiffImagePlugin import IFDRational

import mlx_hdr
from mlx_hdr.color import rgb_to_luminance, srgb_to_linear
from mlx_hdr.infer.exposure import (
    LAMP_LIT,
    LIGHT_STOPS,
    apply_ceiling,
    ceiling_stops,
    daylight_lift,
    lift_to_daylight,
    limit_to_ceiling,
    median_clipped_gain,
)
from mlx_hdr.infer.pipeline import PredictOptions, predict_file, predict_hdr
from mlx_hdr.io.image_io import read_hdr, read_ldr
from mlx_hdr.io.photo_meta import (
    EXIF_IFD,
    EXPOSURE_TIME,
    F_NUMBER,
    ISO_SPEED,
    Exposure,
    exposure_from_values,
    read_exposure,
)


def photo_with_exif(path: Path, time_s, f_number, iso, pixels=None) -> Path:
    """A JPEG (the bundled sample unless ``pixels``) with these EXIF exposure settings."""
    if pixels is None:
        im = Image.open(Path(mlx_hdr.__file__).parent / "assets" / "sample.jpg")
    else:
        im = Image.fromarray(pixels)
    exif = Image.Exif()
    ifd = exif.get_ifd(EXIF_IFD)
    ifd[EXPOSURE_TIME] = IFDRational(*Fraction(time_s).limit_denominator(10**6).as_integer_ratio())
    ifd[F_NUMBER] = IFDRational(*Fraction(f_number).limit_denominator(1000).as_integer_ratio())
    ifd[ISO_SPEED] = iso
    im.convert("RGB").save(path, exif=exif, quality=95)
    return path


def sky_photo(h: int = 40, w: int = 60, gain_stops: float = 3.0):
    """(ldr, hdr): a grey ground under a clipped sky that the hdr puts ``gain_stops`` above
    white, with a soft edge (partly clipped pixels) between them."""
    ldr = np.full((h, w, 3), 0.4, np.float32)
    ldr[: h // 2] = 1.0
    ldr[h // 2, :] = 0.97
    hdr = srgb_to_linear(ldr).copy()
    hdr[: h // 2] *= 2.0**gain_stops
    return ldr, hdr


def test_white_luminance_follows_iso_12232():
    e = Exposure(time_s=1 / 125, f_number=8.0, iso=100)
    assert e.white_luminance() == pytest.approx(78 / 0.65 * 64 * 125 / 100)
    # one stop more light (twice the time) halves the luminance that saturates
    assert Exposure(1 / 62.5, 8.0, 100).white_luminance() == pytest.approx(e.white_luminance() / 2)


def test_exposure_from_values_takes_rationals_and_refuses_gaps():
    e = exposure_from_values(IFDRational(1, 160), IFDRational(63, 10), (200,))
    assert e == Exposure(1 / 160, 6.3, 200.0)
    for bad in [(None, 5.6, 100), (0.01, 0, 100), (0.01, 5.6, ()), (0.01, "x", 100)]:
        assert exposure_from_values(*bad) is None
    assert exposure_from_values(IFDRational(1, 0), 5.6, 100) is None  # a 1/0 rational
    # EXIF may hold an f-number as a DOUBLE: a white beyond a float's range had been an
    # OverflowError (and its log2 a ValueError) that stopped a whole batch
    assert exposure_from_values(0.01, 1e200, 100) is None
    assert exposure_from_values(0.01, 1e-200, 100) is None


def test_read_exposure_from_a_jpeg_and_none_without(tmp_path):
    path = photo_with_exif(tmp_path / "a.jpg", 1 / 160, 6.3, 200)
    e = read_exposure(path)
    assert e.time_s == pytest.approx(1 / 160) and e.f_number == pytest.approx(6.3)
    assert e.iso == 200
    Image.new("RGB", (8, 8)).save(tmp_path / "b.png")
    assert read_exposure(tmp_path / "b.png") is None
    (tmp_path / "c.jpg").write_bytes(b"not a jpeg")
    assert read_exposure(tmp_path / "c.jpg") is None
    assert read_exposure(tmp_path / "missing.jpg") is None


def test_read_exposure_takes_the_full_iso_above_65535(tmp_path):
    path = photo_with_exif(tmp_path / "a.jpg", 1 / 8000, 2.0, 65535)
    with Image.open(path) as im:
        exif = im.getexif()
    exif.get_ifd(EXIF_IFD)[0x8833] = 102400  # ISOSpeed
    Image.open(path).save(tmp_path / "b.jpg", exif=exif)
    assert read_exposure(path).iso == 65535  # no fuller figure: the one there
    assert read_exposure(tmp_path / "b.jpg").iso == 102400


def test_ceiling_stops_and_none_where_the_white_is_above_it():
    indoor = Exposure(0.4, 5.6, 100)  # white ~94 cd/m^2
    assert ceiling_stops(indoor, 10_000) == pytest.approx(
        math.log2(10_000 / indoor.white_luminance())
    )
    sunny = Exposure(1 / 4000, 5.6, 100)  # white ~150,000 cd/m^2: the sun, a glint
    assert ceiling_stops(sunny, 10_000) is None


def test_apply_ceiling_lowers_the_clipped_median_to_the_ceiling_only():
    ldr, hdr = sky_photo(gain_stops=3.0)
    assert median_clipped_gain(ldr, hdr) == pytest.approx(3.0, abs=1e-4)
    out = apply_ceiling(ldr, hdr, 1.0)
    assert median_clipped_gain(ldr, out) == pytest.approx(1.0, abs=0.02)
    unclipped = ldr.max(axis=-1) < 0.95
    np.testing.assert_array_equal(out[unclipped], hdr[unclipped])
    assert (out >= srgb_to_linear(ldr) - 1e-7).all()  # never below what the camera recorded
    # the ground's level and the sky's spread in stops are kept: only the sky moves
    sky = rgb_to_luminance(out[:10]) / rgb_to_luminance(hdr[:10])
    assert np.ptp(sky) < 1e-5
    # within the ceiling, or nothing clipped: unchanged
    np.testing.assert_array_equal(apply_ceiling(ldr, hdr, 3.5), hdr)
    grey = np.full((8, 8, 3), 0.5, np.float32)
    lin = srgb_to_linear(grey) * 1.5
    np.testing.assert_array_equal(apply_ceiling(grey, lin, 0.0), lin)


def test_apply_ceiling_never_goes_below_the_photo():
    ldr, hdr = sky_photo(gain_stops=2.0)
    out = apply_ceiling(ldr, hdr, 0.0)
    np.testing.assert_allclose(out[:10], srgb_to_linear(ldr)[:10], rtol=1e-6)


def test_apply_ceiling_keeps_what_the_camera_curve_says_was_recorded():
    from mlx_hdr.infer.response import response_to_linear, shoulder_table

    ldr, hdr = sky_photo(gain_stops=2.0)
    table = shoulder_table()  # a clipped channel recorded 0.44 stops above white
    out = apply_ceiling(ldr, hdr, 0.0, recorded=table)
    np.testing.assert_allclose(out[:10], response_to_linear(ldr, table)[:10], rtol=1e-6)
    low = hdr * np.float32(0.3)  # 1.2: below what was recorded already, never raised
    np.testing.assert_array_equal(apply_ceiling(ldr, low, 0.0, recorded=table)[:10], low[:10])


def test_a_ceiling_below_what_was_recorded_lowers_by_the_medians_excess_only():
    """A white of ~9,900 cd/m^2 puts the ceiling 0.01 stops up, under the camera roll-off's
    0.44: the median cannot get there. Repeated passes had gone on lowering the pixels the
    floor did not hold (the brightest 1.5 stops, the median 0.26)."""
    from mlx_hdr.infer.response import shoulder_table

    ldr, hdr = sky_photo(gain_stops=0.0)
    spread = np.linspace(0.3, 3.0, ldr.shape[1], dtype=np.float32)  # stops, across the sky
    hdr[:20] *= np.exp2(spread)[None, :, None]
    before = median_clipped_gain(ldr, hdr)
    out = apply_ceiling(ldr, hdr, 0.01, recorded=shoulder_table())
    lowered = np.log2(rgb_to_luminance(hdr[:20]) / rgb_to_luminance(out[:20]))
    assert lowered.max() == pytest.approx(before - 0.01, abs=1e-4)
    assert median_clipped_gain(ldr, out) > 0.4  # held by the record, not pushed further


def test_the_networks_own_output_reaches_the_ceiling_in_more_passes():
    """Without the blend, clipped pixels move by the soft mask's share (0.6-1 at display
    0.98-1): one pass falls short though no floor holds them."""
    ldr, hdr = sky_photo(gain_stops=0.0)
    ldr[:20] = 0.985
    hdr[:20] = srgb_to_linear(ldr[:20]) * 16.0  # 4 stops up: the ceiling is 2.15
    daylight = Exposure(1 / 60, 5.6, 100)
    stops = math.log2(10_000 / daylight.white_luminance())
    raw = limit_to_ceiling(ldr, hdr * 1.0, daylight, 10_000, blended=False)
    assert median_clipped_gain(ldr, raw) == pytest.approx(stops, abs=0.06)  # one pass: 0.56 off


def test_limit_to_ceiling_acts_only_with_an_exposure_and_a_ceiling():
    ldr, hdr = sky_photo(gain_stops=3.0)
    daylight = Exposure(1 / 60, 5.6, 100)  # white ~2,260 cd/m^2: the ceiling 2.1 stops up
    expected = math.log2(10_000 / daylight.white_luminance())
    out = limit_to_ceiling(ldr, hdr, daylight, 10_000)
    assert median_clipped_gain(ldr, out) == pytest.approx(expected, abs=0.02)
    assert limit_to_ceiling(ldr, hdr, None, 10_000) is hdr
    assert limit_to_ceiling(ldr, hdr, daylight, None) is hdr
    assert limit_to_ceiling(ldr, hdr, Exposure(1.0, 5.6, 100), 10_000) is hdr  # indoors


def test_daylight_lift_ramps_in_over_the_level_and_the_gain_and_stops_at_the_floor():
    white = 100.0  # cd/m^2: a long indoor exposure; the level ramp's middle 2.32 stops up
    lamp = math.log2(LAMP_LIT / white)
    floor = math.log2(3000.0 / white)
    assert daylight_lift(white, lamp - 0.51, 3000.0) == 0.0  # lamp-lit: left alone
    assert daylight_lift(white, lamp + 0.5, 3000.0, max_lift=9) == pytest.approx(floor - lamp - 0.5)
    half = daylight_lift(white, lamp, 3000.0, max_lift=9)
    assert half == pytest.approx(0.5 * (floor - lamp))  # half-way up the level ramp
    assert daylight_lift(white, lamp + 0.5, 3000.0, max_lift=1.5) == 1.5
    assert daylight_lift(white, floor + 0.1, 3000.0) == 0.0  # at the floor already
    assert daylight_lift(5000.0, 1.5, 3000.0) == 0.0  # a daylight exposure's white is above it
    assert daylight_lift(white, float("nan"), 3000.0) == 0.0  # nothing clipped
    # read barely above white, the clipped pixels are no light, whatever the white says
    bright = 1000.0  # cd/m^2: the level ramp is full at any gain
    assert daylight_lift(bright, LIGHT_STOPS - 0.26, 3000.0) == 0.0
    short = math.log2(3000.0 / bright) - LIGHT_STOPS
    assert daylight_lift(bright, LIGHT_STOPS, 3000.0) == pytest.approx(0.5 * short)
    assert daylight_lift(bright, LIGHT_STOPS + 0.25, 3000.0) == pytest.approx(short - 0.25)
    # continuous across both ramps: no jump between neighbouring readings
    for w in (white, bright):
        steps = [daylight_lift(w, k * 0.01, 3000.0) for k in range(400)]
        assert np.abs(np.diff(steps)).max() < 0.05


def test_lift_to_daylight_raises_a_window_but_not_a_wall():
    indoor = Exposure(0.1, 5.6, 100)  # white ~376 cd/m^2
    ldr, window = sky_photo(gain_stops=1.5)  # a light read at ~1,060 cd/m^2: daylight
    out = lift_to_daylight(ldr, window, indoor, 3000.0)
    assert median_clipped_gain(ldr, out) == pytest.approx(
        math.log2(3000.0 / indoor.white_luminance()), abs=0.02
    )
    unclipped = ldr.max(axis=-1) < 0.95
    np.testing.assert_array_equal(out[unclipped], window[unclipped])
    sky = rgb_to_luminance(out[:10]) / rgb_to_luminance(window[:10])
    assert np.ptp(sky) < 1e-5  # the region's own spread in stops is kept
    ldr, wall = sky_photo(gain_stops=0.7)  # read barely above white: no light
    assert lift_to_daylight(ldr, wall, indoor, 3000.0) is wall
    ldr, lamp = sky_photo(gain_stops=1.5)
    lit = Exposure(0.4, 5.6, 100)  # white ~94: the same reading is ~265 cd/m^2, lamp-lit
    assert lift_to_daylight(ldr, lamp, lit, 3000.0) is lamp
    ldr, dim = sky_photo(gain_stops=1.0)  # half-way up the gain ramp: half the shortfall
    partly = median_clipped_gain(ldr, lift_to_daylight(ldr, dim, indoor, 3000.0))
    expected = 1.0 + 0.5 * (math.log2(3000.0 / indoor.white_luminance()) - 1.0)
    assert partly == pytest.approx(expected, abs=0.02)
    assert lift_to_daylight(ldr, window, None, 3000.0) is window
    assert lift_to_daylight(ldr, window, indoor, None) is window
    assert lift_to_daylight(ldr, window, indoor, 0.0) is window
    # at most MAX_LIFT (2) stops: a 10^4 cd/m^2 floor 3 stops above this light lifts it 2
    dark = Exposure(4.0, 5.6, 100)  # white ~9.4 cd/m^2
    ldr, light = sky_photo(gain_stops=7.0)  # ~1,200 cd/m^2
    lifted = lift_to_daylight(ldr, light, dark, 10_000.0)
    assert median_clipped_gain(ldr, lifted) == pytest.approx(9.0, abs=0.02)


def test_predict_hdr_applies_the_ceiling_to_the_model_only():
    from mlx_hdr.infer.model_hub import load_net

    net = load_net(None)[0]
    ldr = read_ldr(Path(mlx_hdr.__file__).parent / "assets" / "sample.jpg")
    free = predict_hdr(ldr, net, response="srgb")
    gain = median_clipped_gain(ldr, free)
    assert gain > 0.25
    # an exposure that puts the ceiling 0.1 stops above white
    e = Exposure(1.0, 1.0, 78 / 0.65 / 10_000 * 2**0.1)
    assert ceiling_stops(e) == pytest.approx(0.1)
    held = predict_hdr(ldr, net, response="srgb", exposure=e)
    assert median_clipped_gain(ldr, held) == pytest.approx(0.1, abs=0.03)
    kept = predict_hdr(ldr, net, response="srgb", exposure=e, sky_ceiling=None)
    np.testing.assert_array_equal(kept, free)
    # through the camera curve a clipped channel recorded 0.44 stops above white (and the
    # curve's shift): what the blend put there is kept
    camera = predict_hdr(ldr, net, exposure=e)
    assert (
        0.43 < median_clipped_gain(ldr, camera) <= median_clipped_gain(ldr, predict_hdr(ldr, net))
    )
    lin = predict_hdr(ldr, method="linear", exposure=e)
    np.testing.assert_array_equal(lin, srgb_to_linear(ldr))


def test_predict_hdr_applies_the_daylight_floor_only_when_asked(monkeypatch):
    from mlx_hdr.infer import exposure
    from mlx_hdr.infer.model_hub import load_net

    net = load_net(None)[0]
    ldr = read_ldr(Path(mlx_hdr.__file__).parent / "assets" / "sample.jpg")
    free = predict_hdr(ldr, net)
    gain = median_clipped_gain(ldr, free)
    # an exposure that puts the model's clipped median at 1,000 cd/m^2, and the sample's
    # clipped sky (read ~0.4 stops up) counted as a light, so that the floor acts on it
    monkeypatch.setattr(exposure, "LIGHT_STOPS", gain - 0.5)
    e = Exposure(1.0, 1.0, 78 / 0.65 / (1000.0 / 2**gain))
    np.testing.assert_array_equal(predict_hdr(ldr, net, exposure=e), free)  # off by default
    lifted = predict_hdr(ldr, net, exposure=e, daylight_floor=3000.0)
    assert median_clipped_gain(ldr, lifted) == pytest.approx(gain + math.log2(3), abs=0.03)
    unclipped = ldr.max(axis=-1) < 0.95
    np.testing.assert_array_equal(lifted[unclipped], free[unclipped])
    # the ceiling comes last: a floor set above it is held at the ceiling
    both = predict_hdr(ldr, net, exposure=e, daylight_floor=3000.0, sky_ceiling=2000.0)
    assert median_clipped_gain(ldr, both) == pytest.approx(gain + 1.0, abs=0.03)


def test_predict_file_reads_the_photos_exif(tmp_path):
    from mlx_hdr.infer.model_hub import load_net

    net = load_net(None)[0]
    # the sample's white at ~9,700 cd/m^2 (1/126 s, f/8, ISO 100): ceiling 0.05 stops up
    src = photo_with_exif(tmp_path / "day.jpg", 1 / 126, 8.0, 100)
    ldr = read_ldr(src)
    outs = {}
    for name, ceiling in (("on", 10_000.0), ("off", None)):
        dest = tmp_path / f"{name}.hdr"
        predict_file(src, [dest], net, PredictOptions(sky_ceiling=ceiling, response="srgb"))
        outs[name] = read_hdr(dest)
    ceiling = ceiling_stops(read_exposure(src))
    assert median_clipped_gain(ldr, outs["off"]) > ceiling + 0.15
    assert median_clipped_gain(ldr, outs["on"]) == pytest.approx(ceiling, abs=0.03)


def test_the_exif_options_say_when_a_photo_has_no_exposure(tmp_path):
    from mlx_hdr.infer.model_hub import load_net
    from mlx_hdr.io.image_io import write_ldr

    src = write_ldr(tmp_path / "bare.png", sky_photo()[0])
    net = load_net(None)[0]
    with pytest.warns(UserWarning, match=r"bare\.png: no EXIF exposure: --daylight-floor"):
        predict_file(src, [tmp_path / "a.hdr"], net, PredictOptions(daylight_floor=3000.0))
    asked = PredictOptions(sky_ceiling_asked=True, daylight_floor=3000.0)
    with pytest.warns(UserWarning, match="--sky-ceiling and --daylight-floor do not act"):
        predict_file(src, [tmp_path / "c.hdr"], net, asked)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # not asked for (the ceiling at its default): no note
        predict_file(src, [tmp_path / "b.hdr"], net, PredictOptions())
        off = PredictOptions(sky_ceiling=None, sky_ceiling_asked=True)  # --sky-ceiling 0
        predict_file(src, [tmp_path / "d.hdr"], net, off)


def test_the_ceiling_leaves_no_ring_where_the_blend_ramps_in():
    """Lowered by a share of the stops where the soft mask ramps up, the blend's ramp pixels
    (lifted most of the way to the prediction) came out brighter than the clipped core."""
    from mlx_hdr.color import clip_ramp

    level = np.concatenate([np.linspace(0.90, 1.0, 101), np.ones(100)]).astype(np.float32)
    ldr = np.repeat(level[None, :, None], 3, axis=2).repeat(4, axis=0)  # a ramp to white
    lin, ramp = srgb_to_linear(ldr), clip_ramp(ldr)
    blended = ((1 - ramp) * lin + ramp * np.maximum(64.0, lin)).astype(np.float32)
    out = apply_ceiling(ldr, blended, 1.0)
    row = rgb_to_luminance(out)[0]
    assert (np.diff(row) >= -1e-6).all(), row  # brighter with the photo, never a ring
    assert median_clipped_gain(ldr, out) == pytest.approx(1.0, abs=0.03)


def test_the_ceiling_keeps_the_networks_own_output_continuous_where_the_mask_starts():
    """Without the blend nothing brings the output down to the photo as the mask goes to 0:
    lowered whole, the first pixel the mask touched stepped below its neighbour."""
    level = np.concatenate([np.linspace(0.90, 1.0, 101), np.ones(100)]).astype(np.float32)
    ldr = np.repeat(level[None, :, None], 3, axis=2).repeat(4, axis=0)
    raw = (srgb_to_linear(ldr) * np.float32(1.4) + 2.0 * (ldr >= 1.0)).astype(np.float32)
    out = apply_ceiling(ldr, raw, 1.0, blended=False)
    ramp = rgb_to_luminance(out)[0, :100]  # display 0.90 to just below 1
    assert np.abs(np.diff(ramp)).max() < 0.03, ramp  # no step where the mask starts (0.95)
    assert (out <= raw + 1e-6).all()  # lowered only
