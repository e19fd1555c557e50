"""Depthwise fast path and BatchNorm folding in ``mlx_hdr.models.layers``."""

from __future__ import annotations

# isort: off
import mlx_hdr  # noqa: F401  (OpenBLAS preload before mlx.core)

# isort: on
import mlx.core as mx
import mlx.nn as nn
import numpy as np
import pytest
from mlx.utils import tree_flatten

from mlx_hdr.models import layers
from mlx_hdr.models.layers import (
    BatchNorm2d,
    apply_layers,
    conv_norm_act,
    depthwise_conv2d,
    depthwise_conv2d_shifted,
    fuse_batchnorm,
)


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
    calls = []
    monkeypatch.setattr(layers, "depthwise_conv2d_shifted", lambda *a: calls.append(a) or a[0])
    x, w = mx.ones((1, 5, 5, 4)), mx.ones((4, 3, 3, 1))
    depthwise_conv2d(x, w, 1, 1)
    assert len(calls) == (1 if mx.default_device() == mx.cpu else 0)
    monkeypatch.setattr(layers, "_use_shifted_depthwise", lambda: False)
    out = depthwise_conv2d(x, w, 1, 1)
    assert out[0, 2, 2, 0].item() == 9.0 and len(calls) <= 1


def _randomise(model):
    rng = np.random.default_rng(0)
    params = tree_flatten(model.parameters())
    new = []
    for key, value in params:
        arr = rng.normal(0, 0.5, value.shape).astype(np.float32)
        if key.endswith("running_var"):
            arr = np.abs(arr) + 0.5
        new.append((key, mx.array(arr)))
    model.load_weights(new)


class _Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = [
            conv_norm_act(3, 8, 3, 2, eps=1e-3),
            conv_norm_act(8, 8, 3, 1, groups=8, activation=nn.Hardswish),
            [layers.Conv2d(8, 4, 1, bias=False), BatchNorm2d(4)],
        ]

    def __call__(self, x):
        return apply_layers(self.features, x)


def test_keys_follow_torchvision_and_fuse_is_exact():
    model = _Block()
    keys = {k for k, _ in tree_flatten(model.parameters())}
    assert "features.0.0.weight" in keys and "features.1.1.running_var" in keys
    assert "features.2.1.bias" in keys and not any("layers" in k for k in keys)
    _randomise(model)
    x = mx.random.normal((1, 12, 12, 3))
    before = np.array(model(x))
    fuse_batchnorm(model)
    keys = {k for k, _ in tree_flatten(model.parameters())}
    assert "features.0.0.bias" in keys and not any("running" in k for k in keys)
    np.testing.assert_allclose(np.array(model(x)), before, rtol=1e-4, atol=1e-4)


def test_batchnorm_stays_in_inference_mode():
    bn = BatchNorm2d(3, eps=1e-3)
    bn.running_mean = mx.array([1.0, 2.0, 3.0])
    bn.running_var = mx.array([4.0, 4.0, 4.0])
    bn.train()
    y = bn(mx.zeros((2, 2, 2, 3)))
    expected = -np.array([1.0, 2.0, 3.0]) / np.sqrt(4.0 + 1e-3)
    np.testing.assert_allclose(np.array(y[0, 0, 0]), expected, rtol=1e-6)
