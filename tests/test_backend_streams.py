"""The hybrid model's blocks split by channels over CPU streams equal the unsplit blocks, and
``backend.infer`` splits only where it pays."""

from __future__ import annotations

import mlx.core as mx
import mlx.nn as nn
import numpy as np
import pytest

from mlx_hdr import backend
from mlx_hdr.backend import cpu, streams
from mlx_hdr.backend.cpu import Conv2d
from mlx_hdr.backend.streams import SplitInvertedResidual, out_channels, split_over
from mlx_hdr.models.hybrid import UPSAMPLE_MODES, HybridAutoencoder, HybridConfig
from mlx_hdr.models.layers import BatchNorm2d
from mlx_hdr.models.mobilenetv2 import MobileNetV2


def _close(a, b, rel=1e-4):
    a, b = np.asarray(a), np.asarray(b)
    scale = max(float(np.abs(b).max()), 1e-6)
    np.testing.assert_allclose(a, b, rtol=0, atol=rel * scale)


def _cpu_streams() -> list:
    return [mx.new_stream(mx.cpu) for _ in range(2)]


def _randomise_batchnorm(model: nn.Module) -> None:
    """Non-trivial BN statistics, so a mixed-up channel part would show."""
    for _, m in model.named_modules():
        if isinstance(m, BatchNorm2d):
            c = m.weight.shape[0]
            m.running_mean = mx.random.normal((c,)) * 0.1
            m.running_var = mx.random.uniform(0.5, 2.0, (c,))
            m.weight = mx.random.uniform(0.5, 1.5, (c,))
            m.bias = mx.random.normal((c,)) * 0.1


def test_encoder_channel_parts_on_streams_match():
    """MobileNetV2 with every inverted residual split by channels over two CPU streams gives
    the same C1..C5 (1e-5 of each map's largest value)."""
    mx.random.seed(8)
    enc = MobileNetV2()
    _randomise_batchnorm(enc)
    backend.accelerate(enc)
    x = mx.random.normal((1, 64, 96, 3))
    whole = enc.features_at(x)
    with split_over(_cpu_streams()):
        split = enc.features_at(x)
    for a, b in zip(whole, split, strict=True):
        assert a.shape == b.shape
        _close(b, a, rel=1e-5)


def test_infer_equals_call_and_uses_streams_only_where_it_pays(monkeypatch):
    mx.random.seed(9)
    model = HybridAutoencoder(HybridConfig(decoder_channels=(16, 16, 8, 8, 8, 8)))
    _randomise_batchnorm(model.encoder)
    backend.accelerate(model).eval()
    used, decoded = [], []
    real_hidden, real_block = SplitInvertedResidual._hidden, streams._conv_norm_relu
    monkeypatch.setattr(
        SplitInvertedResidual, "_hidden", lambda *a: used.append(1) or real_hidden(*a)
    )
    monkeypatch.setattr(streams, "_conv_norm_relu", lambda *a: decoded.append(1) or real_block(*a))
    split = []

    def run(fn, x):
        used.clear()
        decoded.clear()
        y = fn(x)
        split.append((bool(used), bool(decoded)))
        return y

    big = mx.random.normal((1, 384, 400, 3))
    # features agree to 1e-5 (test above); the random decoder's InstanceNorms amplify that
    # rounding to ~1e-4 in a few pixels; a wrong channel split would differ by O(1)
    _close(run(lambda x: backend.infer(model, x), big), run(model, big), rel=1e-3)
    run(lambda x: backend.infer(model, x), big[:, :200, :200])  # below STREAM_MIN_PIXELS
    monkeypatch.setenv("MLX_HDR_INFER_STREAMS", "0")
    run(lambda x: backend.infer(model, x), big)
    # infer (streams where available: CPU, 2+ cores, OpenBLAS), model() for the reference,
    # infer below the size, infer with the opt-out
    monkeypatch.delenv("MLX_HDR_INFER_STREAMS")
    active = streams.infer_streams() is not None
    assert split == [(active, active), (False, False), (False, False), (False, False)]


def test_infer_runs_any_callable():
    x = mx.ones((1, 8, 8, 3))
    np.testing.assert_array_equal(np.array(backend.infer(lambda v: v * 2, x)), 2 * np.ones(x.shape))


def test_stream_slices_cover_the_range_in_multiples():
    s = ["a", "b"]
    assert streams.stream_slices(5, s) == [("a", 0, 2), ("b", 2, 5)]
    assert streams.stream_slices(20, s, multiple=4) == [("a", 0, 8), ("b", 8, 20)]
    assert streams.stream_slices(7, ["a", "b", "c"]) == [("a", 0, 2), ("b", 2, 5), ("c", 5, 7)]


@pytest.mark.parametrize(
    "kwargs, size",
    [
        (dict(kernel_size=1), 16),  # pointwise matmul
        (dict(kernel_size=3, padding=1), 40),  # flat conv
        (dict(kernel_size=3, padding=1), 8),  # mx.conv2d (below FLAT_MIN_PIXELS)
        (dict(kernel_size=3, stride=2, padding=1), 16),  # strided: mx.conv2d
    ],
)
def test_conv_out_channels_is_a_slice_of_the_output(kwargs, size):
    mx.random.seed(10)
    conv = Conv2d(6, 10, **kwargs)
    x = mx.random.normal((2, size, size + 3, 6))
    full = conv(x)
    for a, b in [(0, 4), (4, 10), (3, 7)]:
        part = out_channels(conv, a, b)
        assert type(part) is Conv2d and conv.weight.shape[0] == 10  # a copy
        _close(part(x), full[..., a:b], rel=1e-5)


@pytest.mark.skipif(mx.default_device() != mx.cpu, reason="Winograd is a CPU formulation")
def test_out_channels_of_a_winograd_conv_and_depthwise_refused():
    mx.random.seed(11)
    conv = Conv2d(128, 128, 3, padding=1)
    x = mx.random.normal((1, 16, 16, 128))
    assert cpu.use_winograd(x, conv.weight) and cpu.use_winograd(x, conv.weight[:64])
    _close(out_channels(conv, 64, 128)(x), conv(x)[..., 64:], rel=1e-5)
    with pytest.raises(ValueError, match="groups"):  # a grouped conv is not split this way
        out_channels(Conv2d(8, 8, 3, padding=1, groups=8), 0, 4)(mx.zeros((1, 8, 8, 8)))


@pytest.mark.parametrize("widths", [(16, 12, 9, 7, 6, 5), (1, 16, 1, 8, 8, 8)])
@pytest.mark.parametrize("mode", UPSAMPLE_MODES)
def test_decoder_split_over_streams_matches(mode, widths):
    """Every decoder block split by channels over two CPU streams (odd widths: uneven parts,
    PixelShuffle groups kept whole; a stage 1 channel wide: one part empty, left out) gives
    the unsplit output to 1e-5."""
    mx.random.seed(12)
    model = HybridAutoencoder(HybridConfig(decoder_channels=widths, upsample=mode))
    backend.accelerate(model).eval()
    for _, m in model.named_modules():
        if isinstance(m, nn.InstanceNorm):  # affine ones/zeros at init would hide a wrong slice
            m.weight = mx.random.uniform(0.5, 1.5, m.weight.shape)
            m.bias = mx.random.normal(m.bias.shape)
    x = mx.random.normal((1, 64, 96, 3))
    feats = model.encoder.features_at(x)
    with mx.stream(mx.cpu):
        whole = model.decode(x, feats)
        with split_over(_cpu_streams()):
            split = model.decode(x, feats)
        _close(split, whole, rel=1e-5)


def test_a_model_with_fused_batchnorm_runs_unsplit_where_it_cannot_split():
    """``fuse_batchnorm`` leaves no BatchNorm to split by: such blocks run whole."""
    from mlx_hdr.models.layers import fuse_batchnorm

    mx.random.seed(5)
    model = HybridAutoencoder(HybridConfig(decoder_channels=(16, 16, 8, 8, 8, 8)))
    _randomise_batchnorm(model.encoder)
    model.eval()
    x = mx.random.normal((1, 64, 96, 3))
    fuse_batchnorm(model.encoder)
    plain = model(x)
    backend.accelerate(model)
    with mx.stream(mx.cpu), split_over(_cpu_streams()):
        _close(model(x), plain, rel=1e-4)
