"""Camera simulator: exposure, curves, noise, quantisation, JPEG, determinism."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mlx_hdr.color import clipped_gain, linear_to_srgb, srgb_to_linear
from mlx_hdr.data import simulate as sim
from mlx_hdr.io.image_io import read_hdr, read_ldr


def hdr_image(h=48, w=64, seed=0):
    rng = np.random.default_rng(seed)
    return np.exp2(rng.normal(0, 3, (h, w, 3))).astype(np.float32)


@pytest.mark.parametrize("fraction", [0.02, 0.08, 0.15])
def test_exposure_hits_clip_fraction(fraction):
    hdr = hdr_image()
    s = sim.exposure_for_clip_fraction(hdr, fraction)
    clipped = ((hdr * s).max(-1) >= 1).mean()
    assert abs(clipped - fraction) <= 2 / hdr[..., 0].size


def test_exposure_low_dynamic_range_fallback():
    flat = np.full((10, 10, 3), 5.0, np.float32)
    flat[0, 0] = 6.0
    s = sim.exposure_for_clip_fraction(flat, 0.1)
    assert s == pytest.approx(1 / 5.0)  # 1 / P97: the median would land above 0.9
    assert sim.exposure_for_clip_fraction(np.zeros((4, 4, 3), np.float32), 0.1) == 1.0


@pytest.mark.parametrize(
    "curve,params",
    [("srgb", ()), ("gamma", (2.2,)), ("eilertsen2017", (0.9, 0.6)), ("camera", (1.0, 0.85))],
)
def test_curves_monotonic_and_anchored(curve, params):
    x = np.linspace(0, 1, 1001, dtype=np.float32)
    y = sim.apply_curve(x, curve, params)
    assert y[0] == pytest.approx(0, abs=1e-6) and y[-1] == pytest.approx(1, abs=1e-6)
    assert np.all(np.diff(y) > 0)
    assert sim.apply_curve(np.array([2.0, -1.0]), curve, params).tolist() == pytest.approx([1, 0])
    with pytest.raises(ValueError, match="unknown camera curve"):
        sim.apply_curve(x, "nope")


def test_camera_curve_is_srgb_below_the_knee_and_spreads_the_top_codes():
    """Below the knee the curve is sRGB of the light over the clip's 2**stops; a display
    level d above it holds 2**(stops * t**2) more light than sRGB says."""
    stops, knee = 1.0, 0.85
    d = np.array([0.2, 0.5, 0.8, 0.9, 0.95, 0.99], np.float32)
    t = np.clip((d - knee) / (1 - knee), 0, None)
    light = srgb_to_linear(d) * np.exp2(stops * t**2) / 2**stops  # 1.0: the clip
    np.testing.assert_allclose(sim.apply_curve(light, "camera", (stops, knee)), d, atol=2e-3)
    below = np.array([0.01, 0.1, 0.2], np.float32)
    np.testing.assert_allclose(
        sim.camera_curve(below, stops, knee), linear_to_srgb(below * 2**stops), atol=2e-3
    )
    assert sim.camera_curve(np.array([1.0]), 0.0, knee)[0] == pytest.approx(1.0)
    np.testing.assert_allclose(sim.camera_curve(below, 0.0, knee), linear_to_srgb(below), atol=2e-3)


def test_camera_curve_is_drawn_with_its_ranges():
    cfg = sim.SimConfig(curves=("camera",), camera_rolloff=(0.5, 0.7), camera_knee=(0.8, 0.82))
    for seed in range(5):
        curve, (stops, knee) = sim.sample_curve(np.random.default_rng(seed), cfg)
        assert curve == "camera" and 0.5 <= stops <= 0.7 and 0.8 <= knee <= 0.82
    assert "camera" not in sim.CURVES  # earlier recipes draw their curves as before


def test_noise_is_poisson_gaussian():
    rng = np.random.default_rng(0)
    x = np.full((200, 200, 3), 0.25, np.float32)
    noisy = sim.add_sensor_noise(x, rng, full_well=1000.0, read_noise=0.002)
    assert noisy.mean() == pytest.approx(0.25, abs=1e-3)
    assert noisy.var() == pytest.approx(0.25 / 1000 + 0.002**2, rel=0.05)


def test_simulate_deterministic_and_consistent():
    hdr = hdr_image()
    a = sim.simulate_ldr(hdr, np.random.default_rng(7))
    b = sim.simulate_ldr(hdr, np.random.default_rng(7))
    c = sim.simulate_ldr(hdr, np.random.default_rng(8))
    np.testing.assert_array_equal(a[0], b[0])
    assert a[2] == b[2] and not np.array_equal(a[0], c[0])
    ldr, scaled, rec = a
    assert ldr.dtype == scaled.dtype == np.float32 and ldr.shape == hdr.shape
    assert 0 <= ldr.min() and ldr.max() <= 1
    np.testing.assert_allclose(ldr * 255, np.round(ldr * 255), atol=1e-4)  # 8-bit values
    np.testing.assert_allclose(
        scaled, hdr * np.float32(rec.exposure) * np.float32(rec.target_scale), rtol=1e-5
    )
    lo, hi = sim.SimConfig().clip_fraction
    assert lo - 0.01 <= rec.clipped_fraction <= hi + 0.01
    assert json.dumps(rec.to_dict())  # the record is plain data


def test_simulate_without_noise_or_jpeg_is_exact():
    cfg = sim.SimConfig(
        curves=("gamma",),
        noise_prob=0.0,
        jpeg_quality=None,
        channel_clip_prob=0.0,
        shoulder_prob=0.0,
    )
    hdr = hdr_image()
    ldr, target, rec = sim.simulate_ldr(hdr, np.random.default_rng(1), cfg)
    scaled = target / np.float32(rec.target_scale)
    expected = np.floor(sim.apply_curve(scaled, "gamma", rec.curve_params) * 255 + 0.5) / 255
    np.testing.assert_allclose(ldr, expected, atol=1e-6)
    assert rec.full_well is None and rec.jpeg_quality is None
    clipped = scaled.max(-1) >= 1
    assert np.all(ldr[clipped].max(-1) == 1.0)


def test_jpeg_round_trip_quality():
    rng = np.random.default_rng(0)
    ramp = np.linspace(0, 255, 64)
    u8 = np.clip(ramp[None, :, None] + rng.normal(0, 8, (64, 64, 3)), 0, 255).astype(np.uint8)
    err = {q: np.abs(sim.jpeg_round_trip(u8, q).astype(float) - u8).mean() for q in (70, 100)}
    assert err[100] < err[70] and err[70] < 12


def test_reproduces_eval_public_recipe(shared):
    """sRGB curve, no noise, JPEG 90, 8% clipped: the recipe that made eval-public's inputs."""
    case = shared / "data/eval-public/ilm_tree"
    gt, ldr = read_hdr(case / "gt.hdr"), read_ldr(case / "input.jpg")
    meta = json.loads((case / "meta.json").read_text())
    cfg = sim.SimConfig((0.08, 0.08), ("srgb",), noise_prob=0.0, jpeg_quality=(90, 90))
    out, scaled, rec = sim.simulate_ldr(gt, np.random.default_rng(0), cfg)
    assert rec.exposure == pytest.approx(meta["exposure_scale"], rel=1e-3)
    assert np.abs(out - ldr).mean() < 1 / 255
    # without the JPEG step the difference is JPEG's error only
    assert np.abs(linear_to_srgb(scaled) - ldr).mean() < 4 / 255


def test_shoulder_maps_white_to_one_and_is_monotone():
    x = np.linspace(0, 5, 501, dtype=np.float32)
    y = sim.shoulder(x, 3.0)
    assert y[0] == 0 and np.all(np.diff(y) >= 0)
    assert sim.shoulder(np.float32([3.0]), 3.0)[0] == pytest.approx(1.0, abs=1e-6)
    assert y[x > 3.0].min() == 1.0 and y[x < 2.9].max() < 1.0
    np.testing.assert_array_equal(sim.shoulder(x, 1.0), np.clip(x, 0, 1))


def test_clip_levels_keep_one_channel_at_one():
    cfg = sim.SimConfig(channel_clip_prob=1.0)
    for seed in range(20):
        levels = sim.sample_clip_levels(np.random.default_rng(seed), cfg)
        assert levels.max() == 1.0 and (levels == 1.0).sum() >= 1
        assert levels.min() >= cfg.channel_clip[0]


def test_target_is_on_the_linearised_photo_scale():
    """Where the photo is well exposed, its linearisation and the target agree in scale."""
    from mlx_hdr.color import srgb_to_linear, well_exposed_mask

    cfg = sim.SimConfig(curves=("srgb",), noise_prob=0.0, jpeg_quality=None, shoulder_prob=0.0)
    hdr = hdr_image()
    ldr, target, rec = sim.simulate_ldr(hdr, np.random.default_rng(3), cfg)
    m = well_exposed_mask(ldr)
    ratio = np.median(target[m] / np.maximum(srgb_to_linear(ldr)[m], 1e-6))
    assert ratio == pytest.approx(1.0, abs=0.03)
    off = sim.simulate_ldr(
        hdr,
        np.random.default_rng(3),
        sim.SimConfig(
            curves=("srgb",),
            noise_prob=0.0,
            jpeg_quality=None,
            shoulder_prob=0.0,
            align_target=False,
        ),
    )[2]
    assert off.target_scale == 1.0


def test_metered_exposure_puts_the_log_average_at_middle_grey():
    hdr = np.full((8, 8, 3), 0.5, np.float32)
    assert sim.metered_exposure(hdr) == pytest.approx(0.36, rel=1e-4)
    assert sim.metered_exposure(hdr, ev=1.0) == pytest.approx(0.72, rel=1e-4)


def test_sample_exposure_meters_or_falls_back_to_a_clipped_share():
    hdr = hdr_image()
    metered = sim.SimConfig(metering_prob=1.0, metering_ev=(0.0, 0.0), metered_clip=(0.0, 1.0))
    s = sim.sample_exposure(hdr, np.random.default_rng(0), metered)
    assert s == pytest.approx(sim.metered_exposure(hdr), rel=1e-6)
    # a metered exposure clipping outside metered_clip is replaced by a clipped-share one
    never = sim.SimConfig(metering_prob=1.0, metered_clip=(1.0, 1.0), clip_fraction=(0.1, 0.1))
    s = sim.sample_exposure(hdr, np.random.default_rng(0), never)
    assert s == pytest.approx(sim.exposure_for_clip_fraction(hdr, 0.1), rel=1e-6)


def window_scene() -> np.ndarray:
    """A dim room (log-uniform 0.05-0.5) with a window 2% of the pixels at 20-40."""
    rng = np.random.default_rng(3)
    hdr = np.exp(rng.uniform(np.log(0.05), np.log(0.5), (50, 50, 1))).repeat(3, -1)
    hdr[:5, :10] = rng.uniform(20.0, 40.0, (5, 10, 1))
    return hdr.astype(np.float32)


def test_bracket_exposure_is_log_uniform_between_the_clipped_share_ends():
    hdr, clip = window_scene(), (0.01, 0.25)
    low, high = (sim.exposure_for_clip_fraction(hdr, f) for f in clip)
    assert sim.bracket_exposure(hdr, clip, 0.0) == pytest.approx(low, rel=1e-6)
    assert sim.bracket_exposure(hdr, clip, 1.0) == pytest.approx(high, rel=1e-6)
    assert sim.bracket_exposure(hdr, clip, 0.5) == pytest.approx((low * high) ** 0.5, rel=1e-6)
    assert np.log2(high / low) > 3  # the window alone clips over more than three stops


def test_bracket_frames_clip_only_the_window_more_often_than_a_drawn_share():
    hdr = window_scene()

    def window_only_share(cfg):
        rng = np.random.default_rng(0)
        exposures = [sim.sample_exposure(hdr, rng, cfg) for _ in range(200)]
        return np.mean([(hdr.max(-1) * s >= 1.0).mean() <= 0.02 for s in exposures])

    drawn = window_only_share(sim.SimConfig())
    bracket = window_only_share(sim.SimConfig(bracket_prob=1.0))
    assert drawn < 0.1 and bracket > 0.4


def test_bracket_mode_off_draws_what_it_drew_before():
    hdr, cfg = window_scene(), sim.SimConfig()
    a, b = np.random.default_rng(5), np.random.default_rng(5)
    s = sim.sample_exposure(hdr, a, cfg)
    assert s == sim.exposure_for_clip_fraction(hdr, float(b.uniform(*cfg.clip_fraction)))
    assert a.random() == b.random()


def test_boost_highlights_stretches_only_above_the_knee_and_keeps_hue():
    hdr = np.array([[[0.1, 0.2, 0.3], [1.0, 2.0, 3.0], [50.0, 100.0, 150.0]]], np.float32)
    y = hdr @ np.array([0.2126, 0.7152, 0.0722], np.float32)
    out = sim.boost_highlights(hdr, power=2.0, knee=0.5)
    np.testing.assert_array_equal(out[0, 0], hdr[0, 0])  # below the knee: untouched
    y_out = out @ np.array([0.2126, 0.7152, 0.0722], np.float32)
    np.testing.assert_allclose(y_out[0, 1], 0.5 * (y[0, 1] / 0.5) ** 2, rtol=1e-5)
    np.testing.assert_allclose(out[0, 1] / hdr[0, 1], out[0, 1, 0] / hdr[0, 1, 0], rtol=1e-5)
    capped = sim.boost_highlights(hdr, power=2.0, knee=0.5, cap=1000.0)
    assert capped[0, 2] @ np.array([0.2126, 0.7152, 0.0722]) == pytest.approx(1000.0, rel=1e-5)
    np.testing.assert_array_equal(sim.boost_highlights(hdr, power=1.0, knee=0.5), hdr)


def test_boosted_simulation_is_recorded_and_brightens_the_clipped_target():
    ramp = np.exp2(np.linspace(-6.0, 4.0, 64 * 64, dtype=np.float32)).reshape(64, 64, 1)
    hdr = ramp * np.array([1.0, 0.9, 0.8], np.float32)  # grey-ish, 10 stops
    plain = sim.SimConfig(noise_prob=0.0, jpeg_prob=0.0, shoulder_prob=0.0, boost_prob=0.0)
    boosted = sim.SimConfig(**(vars(plain) | {"boost_prob": 1.0, "boost_power": (2.0, 2.0)}))
    ldr0, hdr0, rec0 = sim.simulate_ldr(hdr, np.random.default_rng(1), plain)
    ldr1, hdr1, rec1 = sim.simulate_ldr(hdr, np.random.default_rng(1), boosted)
    assert rec0.boost == (1.0, 1.0) and rec1.boost[0] == 2.0
    clipped = ldr0.max(axis=-1) >= 1.0  # clipped in both (the boost only brightens)
    assert clipped.mean() > 0.01 and (ldr1.max(axis=-1) >= 1.0)[clipped].all()
    ratio = hdr1[clipped].max(axis=-1) / hdr0[clipped].max(axis=-1)
    assert ratio.min() >= 0.99 and np.median(ratio) > 1.5


def test_brighten_lights_scales_only_what_lies_far_above_the_log_average():
    room = np.full((32, 32, 3), 0.1, np.float32) * np.array([1.0, 0.8, 0.6], np.float32)
    room[:4, :4] = 100.0 * np.array([0.9, 1.0, 1.1], np.float32)  # a window, ~10 stops up
    room[4:8, :4] = 0.25  # a pale wall, ~1.3 stops up
    out = sim.brighten_lights(room, stops=2.0, knee=4.0)
    np.testing.assert_allclose(out[:4, :4], 4.0 * room[:4, :4], rtol=1e-5)  # hue kept
    np.testing.assert_array_equal(out[4:], room[4:])
    np.testing.assert_array_equal(sim.brighten_lights(room, 0.0, 4.0), room)
    half = sim.brighten_lights(room, stops=2.0, knee=4.0, ramp=12.0)  # inside the ramp
    assert 1.0 < float(half[0, 0, 0] / room[0, 0, 0]) < 4.0


def test_brightened_lights_are_recorded_and_metered():
    hdr = np.full((64, 64, 3), 0.1, np.float32)
    hdr[:8, :8] = 200.0
    plain = sim.SimConfig(
        curves=("srgb",),
        noise_prob=0.0,
        jpeg_prob=0.0,
        shoulder_prob=0.0,
        channel_clip_prob=0.0,
        metering_prob=1.0,
        metering_ev=(0.0, 0.0),
        metered_clip=(0.0, 1.0),
    )
    lit = sim.SimConfig(**(vars(plain) | {"lights_prob": 1.0, "lights_stops": (2.0, 2.0)}))
    ldr0, hdr0, rec0 = sim.simulate_ldr(hdr, np.random.default_rng(3), plain)
    ldr1, hdr1, rec1 = sim.simulate_ldr(hdr, np.random.default_rng(3), lit)
    assert rec0.lights == (0.0, 0.0) and rec1.lights[0] == 2.0
    # metering sees the brighter light: the room comes out a little darker, the light far
    # brighter against the photo's white
    assert rec1.exposure < rec0.exposure
    gain = clipped_gain(ldr1, hdr1) - clipped_gain(ldr0, hdr0)
    assert 1.0 < gain < 2.0


def test_glare_keeps_energy_and_spreads_a_bright_light_in_proportion():
    hdr = np.full((64, 64, 3), 0.1, np.float32)
    dim, bright = hdr.copy(), hdr.copy()
    dim[30:34, 30:34] = 10.0
    bright[30:34, 30:34] = 100.0
    out_dim, out_bright = (sim.add_glare(h, 0.02, 6.0) for h in (dim, bright))
    np.testing.assert_allclose(out_bright.sum(), bright.sum(), rtol=1e-4)
    haze_dim, haze_bright = out_dim[32, 40, 0] - 0.1, out_bright[32, 40, 0] - 0.1
    assert haze_dim > 0 and haze_bright == pytest.approx(10 * haze_dim, rel=0.05)
    np.testing.assert_array_equal(sim.add_glare(hdr, 0.0, 6.0), hdr)
    cfg = sim.SimConfig(glare_prob=1.0, glare_amount=(0.01, 0.01), glare_sigma=(0.1, 0.1))
    rec = sim.simulate_ldr(bright, np.random.default_rng(0), cfg)[2]
    assert rec.glare == pytest.approx((0.01, 6.4))


def test_glare_scales_bleed_a_light_into_its_neighbours():
    hdr = np.full((96, 96, 3), 0.1, np.float32)
    hdr[40:56, 40:56] = 100.0
    one, four = (sim.add_glare(hdr, 0.02, 12.0, n) for n in (1, 4))
    np.testing.assert_allclose(four.sum(), hdr.sum(), rtol=1e-4)
    near, far = (lambda img: img[48, 57, 0] - 0.1), (lambda img: img[48, 90, 0] - 0.1)
    assert near(four) / far(four) > 3 * near(one) / far(one)  # the haze hugs the light


def test_clipped_gain_is_the_median_stops_above_the_linearised_photo():
    ldr = np.full((4, 4, 3), 0.5, np.float32)
    ldr[:2] = 1.0  # 8 clipped pixels
    hdr = srgb_to_linear(ldr).astype(np.float32)
    hdr[:2] *= np.array([2.0] * 3 + [8.0] * 5, np.float32).reshape(2, 4, 1)  # median gain 8x
    assert clipped_gain(ldr, hdr) == pytest.approx(3.0, abs=1e-5)
    assert np.isnan(clipped_gain(np.full((4, 4, 3), 0.5, np.float32), hdr))


def srgb_table() -> np.ndarray:
    """The sRGB curve as a response table: code -> linear, 256x3."""
    return np.repeat(srgb_to_linear(np.arange(256) / 255.0)[:, None], 3, axis=1)


def test_response_table_inverts_the_measured_curve(tmp_path):
    from mlx_hdr.data.camera_response import load_response, table_curve

    path = tmp_path / "debevec.npy"
    np.save(path, (7.0 * srgb_table())[:, None, :])  # CalibrateDebevec's 256x1x3, any scale
    table = load_response(str(path))
    assert table.shape == (256, 3) and table[-1].tolist() == [1.0, 1.0, 1.0]
    x = np.random.default_rng(0).uniform(0, 1, (16, 16, 3)).astype(np.float32)
    np.testing.assert_allclose(table_curve(x, table), linear_to_srgb(x), atol=1 / 255)
    assert table_curve(np.array([[[2.0, -1.0, 1.0]]]), table).tolist() == [[[1.0, 0.0, 1.0]]]


def test_a_flat_run_in_a_response_table_spreads_over_its_codes():
    from mlx_hdr.data.camera_response import table_curve

    levels = np.linspace(0.0, 1.0, 256)
    table = np.tile(levels[:, None], (1, 3))
    table[:10] = 0.0  # a toe flat at black
    table[100:120] = table[100]  # a dip that load_response levelled
    x = np.linspace(0.0, 1.0, 4001, dtype=np.float32)[:, None, None] * np.ones(3, np.float32)
    out = table_curve(x, table)
    assert out[0, 0, 0] == 0.0  # black stays black
    assert (np.diff(out[:, 0, 0]) >= 0).all()
    codes = np.unique(np.round(out[:, 0, 0] * 255))
    assert len(codes) == 256  # every code is reached, those of the flat runs too
    top = np.tile(levels[:, None] ** 2.2, (1, 3))
    top[250:] = top[250] * 1.03  # a fit above code 255's light: levelled flat to 1.0
    top = np.maximum.accumulate(top, axis=0) / top[-1]
    assert table_curve(np.ones((1, 1, 3), np.float32), top).tolist() == [[[1.0, 1.0, 1.0]]]


def test_response_table_reads_json_and_names_a_bad_file(tmp_path):
    from mlx_hdr.data.camera_response import load_response

    good = tmp_path / "exposures.json"
    good.write_text(json.dumps({"response_curve_rgb": srgb_table().tolist()}))
    np.testing.assert_allclose(load_response(str(good)), srgb_table())
    for name, content in [("short.json", [[1, 1, 1]] * 10), ("dark.json", [[0, 0, 0]] * 256)]:
        bad = tmp_path / name
        bad.write_text(json.dumps(content))
        with pytest.raises(ValueError, match=name):
            load_response(str(bad))
    with pytest.raises(ValueError, match="missing.npy"):
        load_response(str(tmp_path / "missing.npy"))


def test_simulator_photographs_through_a_measured_response(tmp_path):
    path = tmp_path / "gamma.npy"
    np.save(path, np.repeat((np.arange(256) / 255.0)[:, None] ** 2.2, 3, axis=1))
    plain = dict(noise_prob=0.0, jpeg_quality=None, channel_clip_prob=0.0, shoulder_prob=0.0)
    with pytest.raises(ValueError, match="response_files"):
        sim.SimConfig(curves=(sim.TABLE,))
    with pytest.raises(ValueError, match="unknown camera curves"):
        sim.SimConfig(curves=("film",))
    cfg = sim.SimConfig(curves=(sim.TABLE,), response_files=(str(path),), **plain)
    hdr = hdr_image()
    ldr, target, rec = sim.simulate_ldr(hdr, np.random.default_rng(3), cfg)
    ref, ref_target, _ = sim.simulate_ldr(
        hdr, np.random.default_rng(3), sim.SimConfig(curves=("gamma",), gamma=(2.2, 2.2), **plain)
    )
    assert rec.curve == sim.TABLE and rec.curve_params == (0.0,)
    assert np.abs(ldr - ref).max() <= 1 / 255 + 1e-6  # the table is that gamma curve
    np.testing.assert_allclose(target, ref_target, rtol=1e-2)


def test_response_table_names_a_file_of_text(tmp_path):
    from mlx_hdr.data.camera_response import load_response

    path = tmp_path / "words.npy"
    np.save(path, np.array([["a", "b", "c"]] * 256))
    with pytest.raises(ValueError, match="words.npy: not a readable response table"):
        load_response(str(path))


def test_simulate_ldr_names_an_hdr_it_cannot_photograph():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match=r"HxWx3 HDR, not shape \(8, 8\)"):
        sim.simulate_ldr(np.ones((8, 8), np.float32), rng)
    bad = np.ones((8, 8, 3), np.float32)
    bad[2, 3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN or inf"):
        sim.simulate_ldr(bad, rng)
