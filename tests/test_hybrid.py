"""The hybrid autoencoder: shapes, frozen encoder, PixelShuffle/ICNR, save/load."""

from __future__ import annotations

import mlx.core as mx
import mlx.nn as nn
import numpy as np
import pytest

from mlx_hdr.errors import WeightsError
from mlx_hdr.models.analysis import checkerboard_score, summary
from mlx_hdr.models.hybrid import (
    LOG_SCALE_MAX,
    HybridAutoencoder,
    HybridConfig,
    binomial_blur,
    near_white_share,
    pixel_shuffle,
    stops_zero_logit,
)
from mlx_hdr.models.model_io import load_model, save_model

SMALL = (16, 16, 8, 8, 8, 8)


class TinyEncoder(nn.Module):
    """Stand-in encoder: five stride-2 convs, the ``features_at`` / ``feature_channels`` API."""

    def __init__(self, channels=(8, 8, 16, 16, 32)):
        super().__init__()
        self.feature_channels = tuple(channels)
        chans = (3, *channels)
        self.convs = [nn.Conv2d(chans[i], chans[i + 1], 3, stride=2, padding=1) for i in range(5)]

    def features_at(self, x):
        out = []
        for conv in self.convs:
            x = nn.relu(conv(x))
            out.append(x)
        return out


def tiny_model(seed=0, **kw) -> HybridAutoencoder:
    mx.random.seed(seed)
    kw.setdefault("decoder_channels", SMALL)
    return HybridAutoencoder(HybridConfig(**kw), encoder=TinyEncoder())


def smooth_image(size=64) -> mx.array:
    yy, xx = np.mgrid[0:size, 0:size] / (size - 1)
    img = np.stack([xx, yy, 0.5 * (xx + yy)], -1)[None] * 2 - 1
    return mx.array(img.astype(np.float32))


@pytest.mark.parametrize("shape", [(2, 70, 45), (1, 20, 7), (1, 64, 64)])
def test_any_size_output_shape_and_range(shape):
    y = tiny_model()(mx.random.normal((*shape, 3)))
    assert y.shape == (*shape, 3)
    assert float(mx.abs(y).max()) <= 1.0


def test_encoder_frozen_and_gets_no_gradient():
    model = tiny_model()
    trainable = dict(nn.utils.tree_flatten(model.trainable_parameters()))
    assert trainable and not any(k.startswith("encoder.") for k in trainable)
    x = mx.random.normal((1, 96, 96, 3))  # C5 3x3: InstanceNorm of a 1x1 map is 0
    _, grads = nn.value_and_grad(model, lambda: model(x).mean())()
    assert not nn.utils.tree_flatten(grads.get("encoder", {}))
    assert float(mx.abs(grads["bottleneck"]["conv1"]["weight"]).sum()) > 0


def test_pixel_shuffle_matches_torch_channel_order():
    x = np.arange(2 * 3 * 5 * 8, dtype=np.float32).reshape(2, 3, 5, 8)  # NHWC, C = 2·2·2
    y = np.array(pixel_shuffle(mx.array(x)))
    # torch: out[n, c, 2h+i, 2w+j] = in[n, c·4 + i·2 + j, h, w]
    for c, i, j in [(0, 0, 1), (1, 1, 0), (1, 1, 1)]:
        np.testing.assert_array_equal(y[:, i::2, j::2, c], x[..., c * 4 + i * 2 + j])


def test_icnr_starts_as_nearest_neighbour_upsampling():
    up = tiny_model(upsample="pixelshuffle_icnr").ups[1]
    y = np.array(up(mx.random.normal((1, 6, 6, SMALL[1]))))
    np.testing.assert_allclose(y[:, 0::2, 0::2], y[:, 1::2, 1::2], atol=1e-6)
    np.testing.assert_allclose(y[:, 0::2, 1::2], y[:, 1::2, 0::2], atol=1e-6)


def test_icnr_removes_the_checkerboard_at_init():
    scores = {}
    for mode in ("pixelshuffle_icnr", "pixelshuffle", "resize_conv"):
        runs = [checkerboard_score(tiny_model(s, upsample=mode)(smooth_image())) for s in (0, 1)]
        scores[mode] = float(np.mean(runs))
    assert scores["pixelshuffle_icnr"] < scores["pixelshuffle"] / 10, scores
    assert checkerboard_score(smooth_image()) < 0.01


def test_blur_mode_removes_a_learned_mosaic():
    # ICNR only fixes the start; training can move the sub-pixel kernels apart again. With the
    # [1, 2, 1] filter after each PixelShuffle, even unconstrained (random) kernels give none.
    plain = tiny_model(3, upsample="pixelshuffle")
    blurred = tiny_model(3, upsample="pixelshuffle_icnr_blur")
    blurred.update(plain.trainable_parameters())  # same kernels, not ICNR-tied
    x = smooth_image()
    assert checkerboard_score(blurred(x)) < checkerboard_score(plain(x)) / 10


def test_binomial_blur_filter():
    x = mx.array(np.random.default_rng(0).normal(size=(1, 8, 9, 2)).astype(np.float32))
    y = np.array(binomial_blur(x))
    xp = np.pad(np.array(x), [(0, 0), (1, 1), (1, 1), (0, 0)], mode="edge")
    k = np.array([1.0, 2.0, 1.0]) / 4
    ref = sum(k[i] * k[j] * xp[:, i : i + 8, j : j + 9] for i in range(3) for j in range(3))
    np.testing.assert_allclose(y, ref, atol=1e-6)
    nyquist = np.tile(np.array([[1.0, -1.0], [-1.0, 1.0]], np.float32), (4, 4))[None, ..., None]
    assert np.abs(np.array(binomial_blur(mx.array(nyquist)))[:, 1:-1, 1:-1]).max() < 1e-6


def test_summary_counts_and_default_size():
    # MobileNetV2 feature widths with the default decoder: within the 1-3 M budget
    model = HybridAutoencoder(HybridConfig(), encoder=TinyEncoder((16, 24, 32, 96, 1280)))
    s = summary(model, size=64)
    assert 1e6 < s["decoder_params"] < 3e6
    # every non-encoder parameter learns, no encoder parameter does
    total = sum(v.size for _, v in nn.utils.tree_flatten(model.parameters()))
    assert s["decoder_params"] == total - s["encoder_params"]
    assert s["decoder_gflops"] > 0 and s["encoder_gflops"] > 0


def test_save_load_round_trip(tmp_path):
    model = tiny_model(upsample="resize_conv")
    path = save_model(tmp_path / "m.safetensors", model, dtype=mx.float32)
    loaded, cfg = load_model(path, encoder=TinyEncoder())
    assert cfg == model.config
    x = mx.random.normal((1, 40, 33, 3))
    np.testing.assert_allclose(np.array(loaded(x)), np.array(model(x)), atol=1e-6)
    assert not list(tmp_path.glob(".*tmp*"))


def test_load_model_errors(tmp_path):
    with pytest.raises(WeightsError, match="not found"):
        load_model(tmp_path / "missing.safetensors")
    mx.save_safetensors(str(tmp_path / "other.safetensors"), {"a": mx.zeros(2)})
    with pytest.raises(WeightsError, match="not an mlx-hdr-hybrid model"):
        load_model(tmp_path / "other.safetensors")
    meta = {"format": "mlx-hdr-train-checkpoint"}  # as train/checkpoint.py writes them
    mx.save_safetensors(str(tmp_path / "last.safetensors"), {"a": mx.zeros(2)}, metadata=meta)
    with pytest.raises(
        WeightsError, match="a training checkpoint, not a model: make one with `mlx-hdr bundle "
    ):
        load_model(tmp_path / "last.safetensors")
    path = save_model(tmp_path / "m.safetensors", tiny_model())
    with pytest.raises(WeightsError, match="does not match"):
        load_model(path, encoder=TinyEncoder((8, 8, 16, 16, 24)))


@pytest.mark.parametrize(
    "change, message",
    [
        ({"encoder": "resnet50"}, "unknown encoder"),
        ({"encoder_kwargs": {"bogus": 3}}, "encoder_kwargs must be a dict"),
        ({"encoder_kwargs": {"width_mult": -1.0}}, "bad model config|does not match"),
        ({"decoder_channels": [192, 128, -64, 32, 24, 16]}, "6 positive widths"),
        ({"floor_strength": "x"}, "bad model config"),
        ({"encoder_kwargs": {"num_classes": 2**31}}, "num_classes cannot be 2147483648"),
    ],
)
def test_a_model_file_with_a_bad_config_is_one_line(tmp_path, change, message):
    """Whatever a model file's config holds, loading it is a WeightsError, not a traceback."""
    import json

    path = save_model(tmp_path / "m.safetensors", tiny_model())
    weights, meta = mx.load(str(path), return_metadata=True)
    config = json.loads(meta["config"]) | {"encoder": "mobilenet_v2"} | change
    mx.save_safetensors(str(path), weights, meta | {"config": json.dumps(config)})
    with pytest.raises(WeightsError, match=message) as info:
        load_model(path)
    assert "\n" not in str(info.value) and str(path) in str(info.value)


def test_global_gain_scales_the_residual_in_logit_space():
    base = tiny_model(seed=3, target="stops")
    gained = tiny_model(seed=4, target="stops", global_gain=True)
    gained.update({k: v for k, v in base.parameters().items()})  # same decoder, new branch
    x = smooth_image()
    y0, y1 = np.array(base(x)), np.array(gained(x))
    np.testing.assert_allclose(y1, y0, atol=1e-6)  # the branch starts at zero
    gained.gain.fc2.bias = mx.array([np.log(2.0) / gained.gain.scale], mx.float32)  # 2x, bounded
    z0, z1 = np.arctanh(y0) - stops_zero_logit(), np.arctanh(np.array(gained(x)))
    bold = np.exp(LOG_SCALE_MAX * np.tanh(np.log(2.0) / LOG_SCALE_MAX))  # 1.95
    np.testing.assert_allclose(z1 - stops_zero_logit(), bold * z0, atol=1e-3)
    with pytest.raises(ValueError, match="global_gain needs target 'stops'"):
        HybridConfig(global_gain=True)


def test_near_white_share_of_a_half_white_image():
    from mlx_hdr.color import ldr_to_input

    ldr = np.zeros((2, 8, 8, 3), np.float32)  # min-max leaves [0, 1] as it is
    ldr[0, :4] = 1.0  # half the pixels white
    ldr[1, :2, :, 0] = 0.975  # a quarter at the middle of the 0.95-1.0 ramp, red only
    ldr[1, 7, 7] = 1.0  # the image maximum: 1/64 pixel
    got = np.array(near_white_share(mx.array(ldr_to_input(ldr))))[:, 0]
    np.testing.assert_allclose(got, [0.5, 0.25 * 0.5 + 1 / 64], atol=1e-5)


def test_weights_beyond_float16_are_not_saved(tmp_path):
    """Saved in float16 they would be inf, and the file would not load again."""
    model = tiny_model()
    model.update({"out": {"bias": mx.array([1e5, 0.0, 0.0])}})
    with pytest.raises(WeightsError, match="weights beyond float16's range: save as float32"):
        save_model(tmp_path / "m.safetensors", model)
    assert list(tmp_path.iterdir()) == []
    assert save_model(tmp_path / "m32.safetensors", model, mx.float32).is_file()
