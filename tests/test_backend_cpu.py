"""The CPU backend's layers equal the plain MLX ones, forward and gradients.

Tolerances: float32, inputs O(1); forward 1e-5 absolute, gradients 1e-4 relative to the
largest gradient entry (reductions are summed in a different order).
"""

from __future__ import annotations

import mlx.core as mx
import mlx.nn as nn
import numpy as np
import pytest
from mlx.utils import tree_flatten

from mlx_hdr import backend
from mlx_hdr.backend import cpu
from mlx_hdr.backend.cpu import Conv2d, InstanceNorm, depthwise_conv2d_shifted
from mlx_hdr.backend.flatconv import conv2d_flat
from mlx_hdr.backend.winograd import conv3x3_winograd, winograd_pays
from mlx_hdr.models.hybrid import HybridAutoencoder, HybridConfig
from mlx_hdr.models.mobilenetv2 import MobileNetV2

ON_CPU = mx.default_device() == mx.cpu


def _close(a, b, rel=1e-4):
    a, b = np.asarray(a), np.asarray(b)
    scale = max(float(np.abs(b).max()), 1e-6)
    np.testing.assert_allclose(a, b, rtol=0, atol=rel * scale)


def _spy(monkeypatch, module, name: str) -> list:
    """Count the calls of ``module.name`` (still calling it)."""
    calls, real = [], getattr(module, name)
    monkeypatch.setattr(module, name, lambda *a, **k: calls.append(1) or real(*a, **k))
    return calls


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


def test_instance_norm_fast_path_is_default_on_cpu(monkeypatch):
    calls = _spy(monkeypatch, cpu, "instance_norm_nhwc")
    InstanceNorm(3, affine=True)(mx.ones((1, 4, 4, 3)))
    assert len(calls) == (1 if ON_CPU else 0)


def test_accelerate_swaps_layers_in_place_and_keeps_keys(monkeypatch):
    mx.random.seed(2)
    model = HybridAutoencoder(HybridConfig(decoder_channels=(16, 16, 8, 8, 8, 8)))
    before = dict(tree_flatten(model.parameters()))
    monkeypatch.setattr(mx, "default_device", lambda: mx.gpu)  # elsewhere: unchanged
    assert type(backend.accelerate(model).head.conv1) is nn.Conv2d
    monkeypatch.undo()
    if not ON_CPU:
        return
    assert backend.accelerate(backend.accelerate(model)) is model  # idempotent
    convs = [m for _, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    assert convs and all(type(m) is Conv2d for m in convs)
    assert type(model.head.norm1) is InstanceNorm
    after = dict(tree_flatten(model.parameters()))
    assert after.keys() == before.keys() and all(after[k] is before[k] for k in after)


@pytest.mark.parametrize("value", ["0", "off", " False "])
def test_accelerate_off_leaves_the_plain_model(monkeypatch, value):
    monkeypatch.setenv("MLX_HDR_ACCELERATE", value)
    model = backend.accelerate(HybridAutoencoder(HybridConfig(decoder_channels=(8,) * 6)))
    kinds = {type(m) for _, m in model.named_modules()}
    assert nn.Conv2d in kinds and nn.InstanceNorm in kinds
    assert not kinds & {Conv2d, InstanceNorm}


def test_switches_read_off_words_and_keep_the_rest_on(monkeypatch):
    from mlx_hdr.backend.switches import switched_off

    for value, off in (("0", True), ("NO", True), ("off", True), ("1", False), ("", False)):
        monkeypatch.setenv("MLX_HDR_FLATCONV", value)
        assert switched_off("MLX_HDR_FLATCONV") is off
        assert cpu.cpu_path("MLX_HDR_FLATCONV") is (ON_CPU and not off)
    monkeypatch.delenv("MLX_HDR_FLATCONV")
    assert not switched_off("MLX_HDR_FLATCONV")


def _model_loss_and_grads(model, x, target):
    def loss(m_x):
        return mx.abs(model(m_x) - target).mean()

    value, grads = nn.value_and_grad(model, lambda x_: loss(x_))(x)
    mx.eval(value, grads)
    return value, dict(tree_flatten(grads))


def test_hybrid_accelerated_equals_plain_mlx():
    """The whole model with every CPU fast path (accelerated) equals the plain MLX layers,
    loss value and decoder gradients."""
    mx.random.seed(3)
    model = HybridAutoencoder(HybridConfig(decoder_channels=(16, 16, 8, 8, 8, 8)))
    model.train()
    x = mx.random.normal((2, 96, 96, 3))
    target = mx.tanh(mx.random.normal((2, 96, 96, 3)))
    v_plain, g_plain = _model_loss_and_grads(model, x, target)
    v_fast, g_fast = _model_loss_and_grads(backend.accelerate(model), x, target)
    assert abs(v_fast.item() - v_plain.item()) < 1e-6
    assert g_fast.keys() == g_plain.keys() and len(g_fast) > 10
    for key in g_fast:
        # A conv bias feeding InstanceNorm has an exactly-zero true gradient (the norm
        # removes per-channel constants): both values are rounding noise, so not compared.
        if key.endswith(("conv1.bias", "conv2.bias")):
            continue
        _close(g_fast[key], g_plain[key])


def test_pointwise_conv_matmul_matches_conv2d(monkeypatch):
    """Conv2d runs 1x1 convs as a matmul on the CPU; equal to mx.conv2d, values and grads."""
    mx.random.seed(4)
    conv = Conv2d(6, 5, 1)
    x, cot = mx.random.normal((2, 7, 9, 6)), mx.random.normal((2, 7, 9, 5))
    w, b = conv.weight, mx.random.normal((5,))

    def fast(x_, w_, b_):
        conv.weight, conv.bias = w_, b_
        return conv(x_)

    def plain(x_, w_, b_):
        return mx.conv2d(x_, w_) + b_

    out_plain, g_plain = mx.vjp(plain, [x, w, b], [cot])
    conv_calls = _spy(monkeypatch, cpu.mx, "conv2d")
    out_fast, g_fast = mx.vjp(fast, [x, w, b], [cot])
    assert len(conv_calls) == (0 if ON_CPU else 1)
    np.testing.assert_allclose(np.array(out_fast[0]), np.array(out_plain[0]), atol=1e-5)
    for a, c in zip(g_fast, g_plain, strict=True):
        _close(a, c)


def test_encoder_uses_shifted_depthwise_on_cpu(monkeypatch):
    """The accelerated MobileNetV2 encoder's 17 depthwise convs take the shifted-MAC path."""
    calls = _spy(monkeypatch, cpu, "depthwise_conv2d_shifted")
    backend.accelerate(MobileNetV2()).features_at(mx.zeros((1, 32, 32, 3)))
    assert len(calls) == (17 if ON_CPU else 0)


def _reference(x, w, stride, padding):
    return mx.conv2d(x, w, stride=stride, padding=padding, groups=x.shape[-1])


@pytest.mark.parametrize("kernel", [3, 5])
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("size", [(9, 9), (10, 7)])
def test_shifted_depthwise_matches_grouped_conv(kernel, stride, size):
    mx.random.seed(kernel * 10 + stride)
    x = mx.random.normal((2, *size, 6))
    w = mx.random.normal((6, kernel, kernel, 1)) * 0.3
    cot = mx.random.normal(_reference(x, w, stride, kernel // 2).shape)
    pad = kernel // 2
    ref = _reference(x, w, stride, pad)
    out = depthwise_conv2d_shifted(x, w, stride, pad)
    assert out.shape == ref.shape
    np.testing.assert_allclose(np.array(out), np.array(ref), rtol=0, atol=1e-5)

    def loss(fn):
        return lambda x_, w_: (fn(x_, w_, stride, pad) * cot).sum()

    gx_ref, gw_ref = mx.grad(loss(_reference), argnums=(0, 1))(x, w)
    gx, gw = mx.grad(loss(depthwise_conv2d_shifted), argnums=(0, 1))(x, w)
    np.testing.assert_allclose(np.array(gx), np.array(gx_ref), rtol=0, atol=1e-5)
    np.testing.assert_allclose(np.array(gw), np.array(gw_ref), rtol=1e-5, atol=1e-4)


def test_depthwise_dispatch_follows_device(monkeypatch):
    calls = _spy(monkeypatch, cpu, "depthwise_conv2d_shifted")
    conv = Conv2d(4, 4, 3, padding=1, groups=4, bias=False)
    conv.weight = mx.ones((4, 3, 3, 1))
    x = mx.ones((1, 5, 5, 4))
    conv(x)
    assert len(calls) == (1 if ON_CPU else 0)
    monkeypatch.setattr(cpu, "on_cpu", lambda: False)
    out = conv(x)
    assert out[0, 2, 2, 0].item() == 9.0 and len(calls) <= 1


@pytest.mark.parametrize(
    "kernel, stride, padding",
    [(3, (2, 1), (1, 1)), (3, 1, (1, 0)), ((3, 1), 1, (1, 0)), ((1, 3), 1, (0, 1))],
)
def test_a_depthwise_conv_of_unequal_sides_is_the_plain_one(kernel, stride, padding):
    mx.random.seed(0)
    conv = Conv2d(6, 6, kernel, stride=stride, padding=padding, groups=6)
    x = mx.random.normal((2, 9, 11, 6))
    want = mx.conv2d(x, conv.weight, conv.stride, conv.padding, 1, 6) + conv.bias
    got = conv(x)
    assert got.shape == want.shape
    np.testing.assert_allclose(np.array(got), np.array(want), atol=1e-5)


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
    calls = _spy(monkeypatch, cpu, "conv2d_flat")
    conv = Conv2d(3, 4, 3, padding=1)
    conv(mx.zeros((1, 32, 32, 3)))
    conv(mx.zeros((1, 8, 8, 3)))  # below FLAT_MIN_PIXELS: mx.conv2d
    Conv2d(3, 4, 3, stride=2, padding=1)(mx.zeros((1, 32, 32, 3)))  # strided: mx.conv2d
    assert len(calls) == (1 if ON_CPU else 0)
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


def test_winograd_matches_conv2d_at_the_widths_it_runs_on():
    """256 -> 256 channels, as the decoder's and VGG's convs that take the path
    (``winograd_pays``): the sums are long, the error budget the same."""
    mx.random.seed(7)
    assert winograd_pays(256, 256, 12, 12)
    _check_against_conv2d(conv3x3_winograd, (1, 12, 12, 256), (256, 3, 3), 1, rel_out=2e-5)


def test_conv2d_takes_winograd_path_for_wide_convs(monkeypatch):
    calls = _spy(monkeypatch, cpu, "conv3x3_winograd")
    wide = Conv2d(64, 128, 3, padding=1)
    wide(mx.zeros((1, 8, 8, 64)))
    wide(mx.zeros((1, 4, 8, 64)))  # under 8 px: not whole tiles enough
    Conv2d(16, 16, 3, padding=1)(mx.zeros((1, 32, 32, 16)))  # narrow: flat conv
    Conv2d(64, 128, 3, padding=0)(mx.zeros((1, 8, 8, 64)))  # padding 0: not this algorithm
    half = Conv2d(64, 128, 3, padding=1)
    half.set_dtype(mx.float16)
    half(mx.zeros((1, 8, 8, 64), mx.float16))  # float16: direct convs
    assert len(calls) == (1 if ON_CPU else 0)
    monkeypatch.setenv("MLX_HDR_WINOGRAD", "0")
    wide(mx.zeros((1, 8, 8, 64)))
    assert len(calls) <= 1
