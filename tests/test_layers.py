"""BatchNorm folding and torchvision keys in ``mlx_hdr.models.layers``."""

from __future__ import annotations

import mlx.core as mx
import mlx.nn as nn
import numpy as np
from mlx.utils import tree_flatten

from mlx_hdr.models.layers import BatchNorm2d, apply_layers, conv_norm_act, fuse_batchnorm


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
            [nn.Conv2d(8, 4, 1, bias=False), BatchNorm2d(4)],
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
