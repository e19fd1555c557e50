"""The EXIF exposure input: the model's ExposureGain branch, simulated photos' white, a
training run that learns only that branch, and inference passing the photo's white."""

from __future__ import annotations

import math

import mlx.core as mx
import numpy as np
import pytest
from mlx.utils import tree_flatten
from test_data_sources import pool_dir  # noqa: F401 (fixture)
from test_hybrid import smooth_image, tiny_model
from test_train_loop import tiny_cfg

from mlx_hdr.data.simulate import SimConfig
from mlx_hdr.data.sources import PoolSource, sample_rng
from mlx_hdr.errors import InputError
from mlx_hdr.infer.pipeline import predict_hdr
from mlx_hdr.io.photo_meta import Exposure
from mlx_hdr.models.hybrid import LOG_SCALE_MAX, WHITE_REF, HybridConfig, stops_zero_logit


def exposure_model(seed=4):
    """A stops model with the branch, its decoder that of ``tiny_model(seed=3)``."""
    base = tiny_model(seed=3, target="stops")
    model = tiny_model(seed=seed, target="stops", exposure_gain=True)
    model.update(dict(base.parameters().items()))
    return base, model


def test_exposure_gain_starts_at_zero_and_reads_only_a_known_white():
    base, model = exposure_model()
    x = mx.concatenate([smooth_image(), -smooth_image()])
    y0 = np.array(base(x))
    white = mx.array([8.0, math.nan])
    for w in (None, white):
        np.testing.assert_allclose(np.array(model(x, w)), y0, atol=1e-6)
    model.exposure.fc2.bias = mx.array([math.log(2.0) / model.exposure.scale])  # 2x, bounded
    y = np.array(model(x, white))
    z0 = stops_zero_logit()
    bold = math.exp(LOG_SCALE_MAX * math.tanh(math.log(2.0) / LOG_SCALE_MAX))  # 1.95
    np.testing.assert_allclose(np.arctanh(y[0]) - z0, bold * (np.arctanh(y0[0]) - z0), atol=1e-3)
    np.testing.assert_allclose(y[1], y0[1], atol=1e-6)  # NaN: no EXIF, no change
    np.testing.assert_allclose(np.array(model(x)), y0, atol=1e-6)  # None: the same
    with pytest.raises(ValueError, match="exposure_gain needs target 'stops'"):
        HybridConfig(exposure_gain=True)


def test_a_runaway_gain_branch_still_lets_the_residual_through():
    base, model = exposure_model()
    x, white = smooth_image(), mx.array([8.0])
    z0 = stops_zero_logit()
    plain = np.arctanh(np.array(base(x))) - z0
    for log_scale, factor in ((-100.0, 1 / 8), (100.0, 8.0)):  # exp(±100): 0 or inf unbounded
        model.exposure.fc2.bias = mx.array([log_scale / model.exposure.scale])
        y = np.clip(np.array(model(x, white)).astype(np.float64), -1 + 1e-9, 1 - 1e-9)
        z = np.arctanh(y) - z0  # saturated pixels (y = 1 in float32) are left out below
        fair = np.abs(z0 + factor * plain) < 3.0  # where float32's tanh can be inverted
        assert fair.mean() > 0.3
        np.testing.assert_allclose(z[fair], factor * plain[fair], rtol=2e-3, atol=2e-3)


def test_exposure_gain_follows_the_white():
    _, model = exposure_model()
    model.exposure.fc2.weight = mx.ones_like(model.exposure.fc2.weight) * 0.01
    x = mx.concatenate([smooth_image()] * 2)
    g = np.array(model.exposure(model.encoder.features_at(x)[-1], x, mx.array([6.0, 14.0])))
    assert g.shape == (2, 1) and g[0, 0] != g[1, 0]
    same = model.exposure(model.encoder.features_at(x)[-1], x, mx.array([WHITE_REF + 30] * 2))
    far = model.exposure(model.encoder.features_at(x)[-1], x, mx.array([WHITE_REF + 8] * 2))
    np.testing.assert_allclose(np.array(same), np.array(far))  # input clipped at ±2 units


def test_simulated_photo_carries_its_white(pool_dir):  # noqa: F811
    sim = SimConfig(exif_prob=1.0, scene_luminance=(4000.0, 4000.0))
    src = PoolSource(pool_dir, size=24, sim=sim)
    ldr, hdr, white = src.sample_photo(0, sample_rng(1, 0, 0))
    ldr2, hdr2, rec = src.sample_with_record(sample_rng(1, 0, 0))
    np.testing.assert_array_equal(ldr, ldr2)  # the photo is sample's for the same rng
    np.testing.assert_array_equal(hdr, hdr2)
    ref = src.reference(rec["index"])
    y = 0.2126 * src.hdr(rec["index"])[..., 0] + 0.7152 * src.hdr(rec["index"])[..., 1]
    y += 0.0722 * src.hdr(rec["index"])[..., 2]
    assert ref == pytest.approx(float(np.quantile(y, sim.scene_quantile)), rel=1e-4)
    at_clip = rec["exposure"] / rec["shoulder_white"]
    y_photo = hdr @ np.array([0.2126, 0.7152, 0.0722], np.float32) / rec["target_scale"]
    ref = max(
        ref, float(np.quantile(y_photo / rec["shoulder_white"], sim.scene_quantile)) / at_clip
    )
    assert white == pytest.approx(math.log2(4000.0 / ref / at_clip), abs=1e-6)
    none = PoolSource(pool_dir, size=24, sim=SimConfig(exif_prob=0.0))
    assert math.isnan(none.sample_photo(0, sample_rng(1, 0, 0))[2])


@pytest.mark.parametrize("where", ["sample_photo", "heldout_brackets"])
def test_a_photos_white_is_where_its_sensor_clips_whatever_its_shoulder(pool_dir, where):  # noqa: F811
    """ISO 12232's saturation: the highlight shoulder (which the simulator reaches by
    exposing the HDR ``shoulder_white`` times more) moves the tone curve, not the sensor's
    clip, so the same camera exposure gives the same EXIF white (it had been 2 stops
    lower with a shoulder white of 4)."""
    from mlx_hdr.train.pool import heldout_brackets

    whites = []
    for w in (1.0, 4.0):
        shoulder = dict(shoulder_prob=1.0, shoulder_white=(w, w), boost_prob=0.0)
        sim = SimConfig(exif_prob=1.0, scene_luminance=(4000.0, 4000.0), **shoulder)
        if where == "sample_photo":
            src = PoolSource(pool_dir, size=24, sim=sim)
            whites.append([src.sample_photo(0, sample_rng(s, 0, 0))[2] for s in range(3)])
        else:
            frames = heldout_brackets([pool_dir], 2, (-1.0, 1.0), 24, sim=sim, exif=True)
            whites.append([f[3] for f in frames])
    assert len(whites[0]) >= 2
    np.testing.assert_allclose(whites[1], whites[0], atol=1e-4)


def test_a_photos_own_brighter_lights_set_its_white(pool_dir):  # noqa: F811
    src = PoolSource(pool_dir, size=24, sim=SimConfig(scene_luminance=(4000.0, 4000.0)))
    ref = src.reference(0)
    dim = np.full((24, 24, 3), ref * 0.5, np.float32)  # nothing brighter than the image's
    lit = dim.copy()
    lit[:8] = ref * 64.0  # a window 6 stops above the image's lights (exposure 1)
    white = src.photo_white(0, 1.0, np.random.default_rng(0))
    assert src.photo_white(0, 1.0, np.random.default_rng(0), dim) == pytest.approx(white)
    lifted = src.photo_white(0, 1.0, np.random.default_rng(0), lit)
    assert lifted == pytest.approx(white - 6.0, abs=1e-4)


def test_training_only_the_exposure_branch(tmp_path, pool_dir):  # noqa: F811
    from mlx_hdr.models.model_io import load_model, save_model
    from mlx_hdr.train.build import build_model
    from mlx_hdr.train.pool import pool_source
    from mlx_hdr.train.trainer import train

    model = dict(encoder="mobilenet_v2", decoder_channels=(16, 16, 8, 8, 8, 8), target="stops")
    kw = dict(data=str(pool_dir), crop=32, val_crop=32, sim={"exif_prob": 1.0}, lr=1e-2)
    src = build_model(tiny_cfg(tmp_path / "a", model=model, **kw))
    src.out.weight = mx.random.normal(src.out.weight.shape) * 0.1  # not the identity
    path = save_model(tmp_path / "plain.safetensors", src, dtype=mx.float32)
    model |= {"exposure_gain": True}
    cfg = tiny_cfg(tmp_path / "run", model=model, train_only="exposure", init_model=str(path), **kw)
    batch = pool_source(cfg).batch(0)
    assert batch["white"].shape == (4,) and np.isfinite(batch["white"]).all()
    start = {k: np.array(v) for k, v in tree_flatten(src.parameters()) if "classifier" not in k}
    trained = train(cfg, pool_source(cfg), echo=None).run_dir
    after, _ = load_model(trained / "model.safetensors")
    got = {k: np.array(v) for k, v in tree_flatten(after.parameters())}
    for k, v in start.items():  # the saved model's weights are kept (the run saves fp16)
        np.testing.assert_array_equal(got[k], v.astype(np.float16).astype(np.float32), err_msg=k)
    assert any(np.abs(got[k]).max() > 0 for k in got if k.startswith("exposure.fc2"))
    with pytest.raises(ValueError, match="needs a model with exposure_gain"):
        tiny_cfg(tmp_path / "x", train_only="exposure")
    blind = tiny_cfg(tmp_path / "y", model=model, train_only="exposure", **kw | {"sim": {}})
    with pytest.raises(InputError, match=r"learns from an EXIF white: set sim\.exif_prob > 0"):
        pool_source(blind)  # simulated photos without a white: its gradient would be 0


def test_predict_passes_the_photos_white_to_the_network():
    _, model = exposure_model()
    model.exposure.fc2.bias = mx.array([math.log(3.0) / model.exposure.scale])
    ldr = np.clip(np.linspace(0, 1.3, 64 * 48 * 3).reshape(48, 64, 3), 0, 1).astype(np.float32)
    exp = Exposure(time_s=0.01, f_number=4.0, iso=100)
    plain = predict_hdr(ldr, model, blend=False, flip=False, sky_ceiling=None)
    with_exif = predict_hdr(ldr, model, blend=False, flip=False, exposure=exp, sky_ceiling=None)
    assert not np.allclose(plain, with_exif)
    model.exposure.fc2.bias = mx.zeros_like(model.exposure.fc2.bias)
    again = predict_hdr(ldr, model, blend=False, flip=False, exposure=exp, sky_ceiling=None)
    np.testing.assert_allclose(again, plain, rtol=1e-5, atol=1e-6)


def test_heldout_photos_carry_whites_that_follow_the_exposure(pool_dir):  # noqa: F811
    from mlx_hdr.train.pool import heldout_brackets, heldout_views

    frames = heldout_brackets(pool_dir, 2, (-2.0, 0.0), size=24, exif=True)
    plain = heldout_brackets(pool_dir, 2, (-2.0, 0.0), size=24)
    for (ldr, _, scene, white), (ldr0, _, scene0) in zip(frames, plain, strict=True):
        np.testing.assert_array_equal(ldr, ldr0)
        assert scene == scene0 and math.isfinite(white)
    for a, b in zip(frames[::2], frames[1::2], strict=True):  # 2 stops shorter: white 4x
        assert a[3] - b[3] == pytest.approx(2.0, abs=1e-6)
    views = heldout_views(pool_dir, 3, 24, exif=True)
    assert all(math.isfinite(v[2]) for v in views)
    for v, v0 in zip(views, heldout_views(pool_dir, 3, 24), strict=True):
        np.testing.assert_array_equal(v[0], v0[0])


def test_paired_photos_carry_the_white_of_their_exif(tmp_path, make_scenes):
    from test_exposure import photo_with_exif

    from mlx_hdr.data.manifest import index_dataset
    from mlx_hdr.data.sources import PairSource
    from mlx_hdr.io.image_io import read_ldr
    from mlx_hdr.train.pool import SourceBatches

    root = make_scenes(tmp_path / "ds", 2)
    pixels = (read_ldr(root / "s0/input.png") * 255).round().astype(np.uint8)
    (root / "s0/input.png").unlink()  # a camera JPEG with its EXIF instead
    photo_with_exif(root / "s0/input.jpg", 1 / 100, 4.0, 200, pixels=pixels)
    src = PairSource(index_dataset(root), size=16, scale=(1.0, 1.0))
    batches = SourceBatches(src, src, batch_size=2, exif=True)
    got = batches.batch(0)
    plain = SourceBatches(src, src, batch_size=2).batch(0)
    np.testing.assert_array_equal(got["ldr"], plain["ldr"])
    names = [src.records[i]["name"] for i in range(2)]
    white = dict(zip(names, got["white"], strict=True))
    exif = [w for w in white.values() if np.isfinite(w)]
    assert len(exif) == 1 and exif[0] == pytest.approx(math.log2(120 * 16 / (0.01 * 200)))


def test_training_only_the_exposure_branch_on_photos_without_exif_is_refused(tmp_path, make_scenes):
    from test_exposure import photo_with_exif

    from mlx_hdr.data.manifest import index_dataset, write_manifest
    from mlx_hdr.io.image_io import read_ldr
    from mlx_hdr.train.pool import pool_source

    root = make_scenes(tmp_path / "ds", 3)
    manifest = write_manifest(index_dataset(root), tmp_path / "pairs.jsonl")
    model = dict(decoder_channels=(16, 16, 8, 8, 8, 8), target="stops", exposure_gain=True)
    kw = dict(data=str(manifest), crop=16, val_crop=16, model=model, train_only="exposure")
    cfg = tiny_cfg(tmp_path / "run", **kw)
    with pytest.raises(InputError, match="none of the manifest's training photos has an EXIF"):
        pool_source(cfg)  # PNGs without EXIF: the branch's gradient would be 0
    for k in range(3):  # camera JPEGs with their EXIF instead
        png = root / f"s{k}/input.png"
        pixels = (read_ldr(png) * 255).round().astype(np.uint8)
        png.unlink()
        photo_with_exif(root / f"s{k}/input.jpg", 1 / 100, 4.0, 200, pixels=pixels)
    manifest = write_manifest(index_dataset(root), tmp_path / "pairs.jsonl")
    assert np.isfinite(pool_source(cfg).batch(0)["white"]).any()
