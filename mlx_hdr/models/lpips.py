"""LPIPS v0.1 with VGG16 (Zhang et al. 2018), as the ``lpips`` package computes it.

``LPIPS()(x, y)`` takes two NHWC float32 batches in [-1, 1] and returns the (N,) distances;
it is differentiable (usable as a training loss). Weights: the converted safetensors of
``vgg16`` (``features.*``) and ``lpips_vgg`` (``lins.{k}.weight``), see ``mlx-hdr convert``.
"""

from __future__ import annotations

from pathlib import Path

import mlx.core as mx
import mlx.nn as nn

from mlx_hdr.models.model_io import load_strict
from mlx_hdr.models.vgg import VGG16Features

# lpips.ScalingLayer: maps [-1, 1] inputs to the ImageNet-normalised domain of VGG.
SHIFT = (-0.030, -0.088, -0.188)
SCALE = (0.458, 0.448, 0.450)
EPS = 1e-10


def channel_norm(x: mx.array) -> mx.array:
    """Per-pixel L2 norm over channels, (N, H, W, 1).

    1e-20 under the square root keeps the gradient finite where a feature vector is all
    zero (ReLU); it is below float32 resolution for any norm that matters.
    """
    return mx.sqrt(mx.sum(x * x, axis=-1, keepdims=True) + 1e-20)


def normalize_channels(x: mx.array) -> mx.array:
    """lpips ``normalize_tensor``: x / (||x||_2 over channels + 1e-10)."""
    return x / (channel_norm(x) + EPS)


@mx.custom_function
def layer_distance(a: mx.array, b: mx.array, w: mx.array) -> mx.array:
    """One LPIPS layer: mean over pixels of ``sum_c w_c (a_c/|a| - b_c/|b|)^2``, (N,).

    ``a``, ``b``: (N, H, W, C) features; ``w``: (C,) the layer's ``lins`` weights. Equals
    ``lin((normalize_channels(a) - normalize_channels(b)) ** 2).mean()`` (the lpips
    package's form); the hand-written gradient needs ~5 passes over the features where
    autodiff of that form needs ~15 (``scripts/bench_interleaved.py`` times both)."""
    d = normalize_channels(a) - normalize_channels(b)
    return ((d * d) @ w[:, None]).mean(axis=(1, 2, 3))


def _normalize_vjp(x: mx.array, n: mx.array, scale: mx.array, g: mx.array) -> mx.array:
    """Gradient through ``x * scale`` with ``scale = 1 / (n + EPS)``, ``n = channel_norm(x)``
    (per pixel), of an upstream gradient g."""
    return scale * g - (scale * scale / n) * (x * g).sum(axis=-1, keepdims=True) * x


@layer_distance.vjp
def _layer_distance_vjp(primals, cotangent, output):
    a, b, w = primals
    na, nb = channel_norm(a), channel_norm(b)  # once each: reused by d and both gradients
    sa, sb = 1.0 / (na + EPS), 1.0 / (nb + EPS)
    d = a * sa - b * sb
    per_pixel = cotangent.reshape(-1, 1, 1, 1) / (a.shape[1] * a.shape[2])
    g = (2.0 * d * w) * per_pixel
    dw = ((d * d) * per_pixel).sum(axis=(0, 1, 2))
    return _normalize_vjp(a, na, sa, g), -_normalize_vjp(b, nb, sb, g), dw


class LPIPS(nn.Module):
    """LPIPS v0.1 (VGG16): ``net`` holds the VGG features, ``lins`` the five 1x1 convs."""

    def __init__(self):
        super().__init__()
        self.net = VGG16Features()
        self.lins = [nn.Conv2d(c, 1, 1, bias=False) for c in self.net.feature_channels]
        self.freeze()

    @classmethod
    def from_pretrained(cls, vgg_path: str | Path, lin_path: str | Path) -> LPIPS:
        """Load converted ``vgg16`` and ``lpips_vgg`` safetensors, given as file paths or as
        the architecture names (then from ``model_io.converted_path``). Raises
        ``WeightsError`` for a missing, unreadable or mismatched file."""
        model = cls()
        load_strict(model.net, vgg_path, "vgg16")
        lins = nn.Module()
        lins.lins = model.lins
        load_strict(lins, lin_path, "lpips_vgg")
        model.freeze()
        return model

    def __call__(self, x: mx.array, y: mx.array) -> mx.array:
        """(N, H, W, 3) x, y in [-1, 1] -> (N,) LPIPS distances."""
        shift, scale = mx.array(SHIFT), mx.array(SCALE)
        fx = self.net.features_at((x - shift) / scale)
        fy = self.net.features_at((y - shift) / scale)
        total = 0.0
        for lin, a, b in zip(self.lins, fx, fy, strict=True):
            total = total + layer_distance(a, b, lin.weight.reshape(-1))
        return total
