"""CPU fast paths equal the plain MLX formulations, forward and gradients.

Tolerances: float32, inputs O(1); forward 1e-5 absolute, gradients 1e-4 relative to the
largest gradient entry (reductions are summed in a different order).
"""

from __future__ import annotations

# isort: off
import mlx_hdr  # noqa: F401  (OpenBLAS preload before mlx.core)

# isort: on
import mlx.core as mx
import mlx.nn as nn
import numpy as np
import pytest
from mlx.utils import tree_flatten

from mlx_hdr.models import hybrid, layers
from mlx_hdr.models.flatconv import conv2d_flat
from mlx_hdr.models.hybrid import HybridAutoencoder, HybridConfig, InstanceNorm
from mlx_hdr.models.layers import Conv2d
from mlx_hdr.models.mobilenetv2 import MobileNetV2
from mlx_hdr.models.winograd import conv3x3_winograd


def _close(a, b, rel=1e-4):
    a, b = np.asarray(a), np.asarray(b)
    scale = max(float(np.abs(b).max()), 1e-6)
    np.testing.assert_allclose(a, b, rtol=0, atol=rel * scale)


@pytest.mark.parametrize("shape", [(2, 9, 7, 5), (1, 16, 16, 3)])
@pytest.mark.parametrize("offset", [0.0, 50.0])
def test_instance_norm_matches_mlx(shape, offset):
    mx.random.seed(1)
    fast, plain = InstanceNorm(shape[-1], affine=True), nn.InstanceNorm(shape[-1], affine=True)
    w, b = mx.random.normal((shape[-1],)), mx.random.normal((shape[-1],))
    fast.weight = plain.weight = w
    fast.bias = plain.bias = b
    x = mx.random.normal(shape) * 3.0 + offset
    cot = mx.random.normal(shape)
    np.testing.assert_allclose(np.array(fast(x)), np.array(plain(x)), rtol=0, atol=1e-5)

    def grads(norm):
        def f(x_, w_, b_):
            norm.weight, norm.bias = w_, b_
            return norm(x_)

        return mx.vjp(f, [x, w, b], [cot])[1]

    for g_fast, g_plain in zip(grads(fast), grads(plain), strict=True):
        _close(g_fast, g_plain)


def test_instance_norm_keys_unchanged():
    fast, plain = InstanceNorm(4, affine=True), nn.InstanceNorm(4, affine=True)
    assert sorted(k for k, _ in tree_flatten(fast.parameters())) == sorted(
        k for k, _ in tree_flatten(plain.parameters())
    )
    x = mx.random.normal((1, 5, 5, 4))
    no_affine = InstanceNorm(4)
    np.testing.assert_allclose(
        np.array(no_affine(x)), np.array(nn.InstanceNorm(4)(x)), rtol=0, atol=1e-5
    )


def test_fast_path_is_default_on_cpu(monkeypatch):
    calls = []
    real = hybrid.instance_norm_nhwc
    monkeypatch.setattr(hybrid, "instance_norm_nhwc", lambda *a: calls.append(1) or real(*a))
    InstanceNorm(3, affine=True)(mx.ones((1, 4, 4, 3)))
    assert len(calls) == (1 if mx.default_device() == mx.cpu else 0)


def _model_loss_and_grads(model, x, target):
    def loss(m_x):
        return mx.abs(model(m_x) - target).mean()

    value, grads = nn.value_and_grad(model, lambda x_: loss(x_))(x)
    mx.eval(value, grads)
    return value, dict(tree_flatten(grads))


def test_hybrid_with_and_without_fast_paths(monkeypatch):
    """The whole decoder (all fast paths on) equals the plain MLX layers, value and grads."""
    mx.random.seed(3)
    model = HybridAutoencoder(HybridConfig(decoder_channels=(16, 16, 8, 8, 8, 8)))
    model.train()
    x = mx.random.normal((2, 96, 96, 3))
    target = mx.tanh(mx.random.normal((2, 96, 96, 3)))
    v_fast, g_fast = _model_loss_and_grads(model, x, target)
    monkeypatch.setattr(InstanceNorm, "__call__", nn.InstanceNorm.__call__)
    monkeypatch.setenv("MLX_HDR_FLATCONV", "0")
    monkeypatch.setenv("MLX_HDR_WINOGRAD", "0")
    v_plain, g_plain = _model_loss_and_grads(model, x, target)
    assert abs(v_fast.item() - v_plain.item()) < 1e-6
    assert g_fast.keys() == g_plain.keys() and len(g_fast) > 10
    for key in g_fast:
        # A conv bias feeding InstanceNorm has an exactly-zero true gradient (the norm
        # removes per-channel constants): both values are rounding noise, so not compared.
        if key.endswith(("conv1.bias", "conv2.bias")):
            continue
        _close(g_fast[key], g_plain[key])


def test_pointwise_conv_matmul_matches_conv2d():
    """layers.Conv2d runs 1x1 convs as a matmul; equal to mx.conv2d, values and grads."""
    mx.random.seed(4)
    conv = Conv2d(6, 5, 1)
    assert conv.pointwise
    x, cot = mx.random.normal((2, 7, 9, 6)), mx.random.normal((2, 7, 9, 5))
    w, b = conv.weight, mx.random.normal((5,))

    def fast(x_, w_, b_):
        conv.weight, conv.bias = w_, b_
        return conv(x_)

    def plain(x_, w_, b_):
        return mx.conv2d(x_, w_) + b_

    out_fast, g_fast = mx.vjp(fast, [x, w, b], [cot])
    out_plain, g_plain = mx.vjp(plain, [x, w, b], [cot])
    np.testing.assert_allclose(np.array(out_fast[0]), np.array(out_plain[0]), atol=1e-5)
    for a, c in zip(g_fast, g_plain, strict=True):
        _close(a, c)


def test_encoder_uses_shifted_depthwise_on_cpu(monkeypatch):
    """The MobileNetV2 encoder's 17 depthwise convs take the shifted-MAC path on CPU."""
    calls = []
    real = layers.depthwise_conv2d_shifted
    monkeypatch.setattr(layers, "depthwise_conv2d_shifted", lambda *a: calls.append(1) or real(*a))
    MobileNetV2().features_at(mx.zeros((1, 32, 32, 3)))
    assert len(calls) == (17 if mx.default_device() == mx.cpu else 0)


@pytest.mark.parametrize(
    "shape, out_ch, k, pad",
    [
        ((2, 9, 11, 5), 7, 3, 1),
        ((1, 8, 6, 4), 3, 3, 0),
        ((1, 8, 6, 4), 3, 3, 2),
        ((2, 10, 7, 3), 4, 5, 2),
        ((1, 6, 9, 2), 5, 3, (0, 2)),
        ((3, 5, 5, 6), 2, 1, 0),
    ],
)
def test_flat_conv_matches_conv2d(shape, out_ch, k, pad):
    """conv2d_flat == mx.conv2d (stride 1): output, input gradient and weight gradient."""
    mx.random.seed(5)
    _check_against_conv2d(lambda a, b: conv2d_flat(a, b, pad), shape, (out_ch, k, k), pad)


def _check_against_conv2d(conv, shape, kernel, pad, rel_out=None):
    """``conv(x, w)`` vs ``mx.conv2d(x, w, padding=pad)``: output (1e-5 absolute, or
    ``rel_out`` of its largest value) and both gradients (1e-4 of the largest entry)."""
    x = mx.random.normal(shape)
    w = mx.random.normal((*kernel, shape[-1]))
    ref = mx.conv2d(x, w, padding=pad)
    cot = mx.random.normal(ref.shape)
    out, g_fast = mx.vjp(conv, [x, w], [cot])
    _, g_plain = mx.vjp(lambda a, b: mx.conv2d(a, b, padding=pad), [x, w], [cot])
    assert out[0].shape == ref.shape
    if rel_out is None:
        np.testing.assert_allclose(np.array(out[0]), np.array(ref), rtol=0, atol=1e-5)
    else:
        _close(out[0], ref, rel=rel_out)
    for a, c in zip(g_fast, g_plain, strict=True):
        _close(a, c)


def test_flat_conv_rejects_padding_beyond_kernel():
    with pytest.raises(ValueError, match="padding"):
        conv2d_flat(mx.zeros((1, 4, 4, 1)), mx.zeros((1, 3, 3, 1)), 3)


def test_conv2d_takes_flat_path_on_cpu_above_threshold(monkeypatch):
    calls = []
    monkeypatch.setattr(layers, "conv2d_flat", lambda *a: calls.append(1) or conv2d_flat(*a))
    conv = Conv2d(3, 4, 3, padding=1)
    conv(mx.zeros((1, 32, 32, 3)))
    conv(mx.zeros((1, 8, 8, 3)))  # below FLAT_MIN_PIXELS: mx.conv2d
    Conv2d(3, 4, 3, stride=2, padding=1)(mx.zeros((1, 32, 32, 3)))  # strided: mx.conv2d
    assert len(calls) == (1 if mx.default_device() == mx.cpu else 0)
    monkeypatch.setenv("MLX_HDR_FLATCONV", "0")
    conv(mx.zeros((1, 32, 32, 3)))
    assert len(calls) <= 1


@pytest.mark.parametrize(
    "shape, out_ch", [((2, 9, 7, 5), 6), ((1, 16, 12, 3), 4), ((1, 1, 2, 2), 3)]
)
def test_winograd_matches_conv2d(shape, out_ch):
    """F(4×4, 3×3) == mx.conv2d (padding 1), sizes that are and are not whole 4×4 tiles.

    Forward within 2e-5 of the largest output (the transforms' constants cost ~4 bits of
    float32), gradients within 1e-4 of the largest entry."""
    mx.random.seed(6)
    _check_against_conv2d(conv3x3_winograd, shape, (out_ch, 3, 3), 1, rel_out=2e-5)


def test_conv2d_takes_winograd_path_for_wide_convs(monkeypatch):
    calls = []
    real = layers.conv3x3_winograd
    monkeypatch.setattr(layers, "conv3x3_winograd", lambda *a: calls.append(1) or real(*a))
    wide = Conv2d(64, 128, 3, padding=1)
    wide(mx.zeros((1, 8, 8, 64)))
    wide(mx.zeros((1, 4, 8, 64)))  # under 8 px: not whole tiles enough
    Conv2d(16, 16, 3, padding=1)(mx.zeros((1, 32, 32, 16)))  # narrow: flat conv
    Conv2d(64, 128, 3, padding=0)(mx.zeros((1, 8, 8, 64)))  # padding 0: not this algorithm
    half = Conv2d(64, 128, 3, padding=1)
    half.set_dtype(mx.float16)
    half(mx.zeros((1, 8, 8, 64), mx.float16))  # float16: direct convs
    assert len(calls) == (1 if mx.default_device() == mx.cpu else 0)
    monkeypatch.setenv("MLX_HDR_WINOGRAD", "0")
    wide(mx.zeros((1, 8, 8, 64)))
    assert len(calls) <= 1


def _randomise_batchnorm(model: nn.Module) -> None:
    """Non-trivial BN statistics, so a mixed-up channel part would show."""
    for _, m in model.named_modules():
        if isinstance(m, layers.BatchNorm2d):
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
    x = mx.random.normal((1, 64, 96, 3))
    streams = [mx.new_stream(mx.cpu) for _ in range(2)]
    for a, b in zip(enc.features_at(x), enc.features_at(x, streams=streams), strict=True):
        assert a.shape == b.shape
        _close(b, a, rel=1e-5)


def test_infer_equals_call_and_uses_streams_only_where_it_pays(monkeypatch):
    mx.random.seed(9)
    model = HybridAutoencoder(HybridConfig(decoder_channels=(16, 16, 8, 8, 8, 8)))
    _randomise_batchnorm(model.encoder)
    model.eval()
    used, decoded = [], []
    real, real_decode = MobileNetV2.features_at, HybridAutoencoder.decode
    monkeypatch.setattr(
        MobileNetV2,
        "features_at",
        lambda s, x, streams=None: used.append(bool(streams)) or real(s, x, streams),
    )
    monkeypatch.setattr(
        HybridAutoencoder,
        "decode",
        lambda s, x, f, streams=None: (
            decoded.append(bool(streams)) or real_decode(s, x, f, streams)
        ),
    )
    big = mx.random.normal((1, 384, 400, 3))
    # features agree to 1e-5 (test above); the random decoder's InstanceNorms amplify that
    # rounding to ~1e-4 in a few pixels; a wrong channel split would differ by O(1)
    _close(model.infer(big), model(big), rel=1e-3)
    model.infer(big[:, :200, :200])  # below STREAM_MIN_PIXELS
    monkeypatch.setenv("MLX_HDR_INFER_STREAMS", "0")
    model.infer(big)
    # infer (streams where available: CPU, 2+ cores, OpenBLAS), model() for the reference,
    # infer below the size, infer with the opt-out
    monkeypatch.delenv("MLX_HDR_INFER_STREAMS")
    active = hybrid.infer_streams() is not None
    assert used == [active, False, False, False]
    assert decoded == used


def test_stream_slices_cover_the_range_in_multiples():
    streams = ["a", "b"]
    assert layers.stream_slices(5, streams) == [("a", 0, 2), ("b", 2, 5)]
    assert layers.stream_slices(20, streams, multiple=4) == [("a", 0, 8), ("b", 8, 20)]
    assert layers.stream_slices(7, ["a", "b", "c"]) == [("a", 0, 2), ("b", 2, 5), ("c", 5, 7)]


@pytest.mark.parametrize(
    "kwargs, size",
    [
        (dict(kernel_size=1), 16),  # pointwise matmul
        (dict(kernel_size=3, padding=1), 40),  # flat conv
        (dict(kernel_size=3, padding=1), 8),  # mx.conv2d (below FLAT_MIN_PIXELS)
        (dict(kernel_size=3, stride=2, padding=1), 16),  # strided: mx.conv2d
    ],
)
def test_conv_part_is_a_slice_of_the_output(kwargs, size):
    mx.random.seed(10)
    conv = Conv2d(6, 10, **kwargs)
    x = mx.random.normal((2, size, size + 3, 6))
    full = conv(x)
    for a, b in [(0, 4), (4, 10), (3, 7)]:
        _close(conv.part(x, a, b), full[..., a:b], rel=1e-5)


def test_conv_part_of_a_winograd_conv_and_depthwise_refused():
    mx.random.seed(11)
    conv = Conv2d(128, 128, 3, padding=1)
    x = mx.random.normal((1, 16, 16, 128))
    assert layers.use_winograd(x, conv.weight) and layers.use_winograd(x, conv.weight[:64])
    _close(conv.part(x, 64, 128), conv(x)[..., 64:], rel=1e-5)
    with pytest.raises(ValueError, match="groups"):
        Conv2d(8, 8, 3, padding=1, groups=8).part(mx.zeros((1, 8, 8, 8)), 0, 4)


@pytest.mark.parametrize("mode", hybrid.UPSAMPLE_MODES)
def test_decoder_split_over_streams_matches(mode):
    """Every decoder block split by channels over two CPU streams (odd widths: uneven parts,
    PixelShuffle groups kept whole) gives the unsplit output to 1e-5."""
    mx.random.seed(12)
    model = HybridAutoencoder(HybridConfig(decoder_channels=(16, 12, 9, 7, 6, 5), upsample=mode))
    model.eval()
    for _, m in model.named_modules():
        if isinstance(m, InstanceNorm):  # affine ones/zeros at init would hide a wrong slice
            m.weight = mx.random.uniform(0.5, 1.5, m.weight.shape)
            m.bias = mx.random.normal(m.bias.shape)
    x = mx.random.normal((1, 64, 96, 3))
    feats = model.encoder.features_at(x)
    streams = [mx.new_stream(mx.cpu) for _ in range(2)]
    with mx.stream(mx.cpu):
        _close(model.decode(x, feats, streams=streams), model.decode(x, feats), rel=1e-5)
