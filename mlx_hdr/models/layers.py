"""Conv/BatchNorm building blocks shared by the torchvision-exact backbones.

All tensors are NHWC float32. Convs are plain ``nn.Conv2d``, weights in MLX's layout
``(O, kH, kW, I / groups)``;
the converter transposes torchvision's ``(O, I, kH, kW)`` into it, so parameter *names*
follow torchvision exactly (containers are plain Python lists, so keys are ``features.0.1.weight``
with no extra ``.layers``).
"""

from __future__ import annotations

import mlx.core as mx
import mlx.nn as nn


def make_divisible(v: float, divisor: int = 8, min_value: int | None = None) -> int:
    """torchvision's ``_make_divisible``: round channels to a multiple of ``divisor``."""
    min_value = divisor if min_value is None else min_value
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:  # never round down by more than 10%
        new_v += divisor
    return new_v


def relu6(x: mx.array) -> mx.array:
    """PyTorch's ``ReLU6``: min(max(x, 0), 6)."""
    return mx.minimum(mx.maximum(x, 0.0), 6.0)


def hardswish(x: mx.array) -> mx.array:
    """PyTorch's ``Hardswish``: x * relu6(x + 3) / 6."""
    return x * relu6(x + 3.0) / 6.0


def hardsigmoid(x: mx.array) -> mx.array:
    """PyTorch's ``Hardsigmoid``: relu6(x + 3) / 6."""
    return relu6(x + 3.0) / 6.0


class BatchNorm2d(nn.Module):
    """Inference-only BatchNorm (running statistics), keys as torchvision's ``BatchNorm2d``.

    Frozen by design: the encoders are pretrained and never update their statistics, even
    when a parent model is put in training mode.
    """

    def __init__(self, num_features: int, eps: float = 1e-5):
        super().__init__()
        self.weight = mx.ones((num_features,))
        self.bias = mx.zeros((num_features,))
        self.running_mean = mx.zeros((num_features,))
        self.running_var = mx.ones((num_features,))
        self.eps = eps

    def scale_shift(self) -> tuple[mx.array, mx.array]:
        """The per-channel affine map this layer applies: ``y = x * scale + shift``."""
        scale = self.weight * mx.rsqrt(self.running_var + self.eps)
        return scale, self.bias - self.running_mean * scale

    def __call__(self, x: mx.array) -> mx.array:
        scale, shift = self.scale_shift()
        return x * scale + shift


class Hardsigmoid(nn.Module):
    """Module form of :func:`hardsigmoid` (no parameters)."""

    def __call__(self, x: mx.array) -> mx.array:
        return hardsigmoid(x)


def tapped_features(layers: list, x: mx.array, taps: tuple[int, ...]) -> list[mx.array]:
    """Run ``layers`` up to the last tap; return the outputs of the layers at ``taps``."""
    outs = []
    for i, layer in enumerate(layers[: taps[-1] + 1]):
        x = apply_layers([layer], x)
        if i in taps:
            outs.append(x)
    return outs


def apply_layers(layers: list, x: mx.array) -> mx.array:
    """Run a (nested) list of layers in order, like torch's ``nn.Sequential``.

    Plain lists keep torchvision's keys (``features.0.1.weight``); MLX's ``nn.Sequential``
    would add ``.layers``.
    """
    for layer in layers:
        x = apply_layers(layer, x) if isinstance(layer, list) else layer(x)
    return x


def conv_norm_act(
    in_channels: int,
    out_channels: int,
    kernel_size: int = 3,
    stride: int = 1,
    groups: int = 1,
    eps: float = 1e-5,
    activation: type[nn.Module] | None = nn.ReLU,
) -> list[nn.Module]:
    """torchvision's ``Conv2dNormActivation`` as a list: ``0`` conv (no bias), ``1`` BN,
    ``2`` the activation (parameter-free) when given. Run with :func:`apply_layers`."""
    pad = (kernel_size - 1) // 2
    conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, pad, groups=groups, bias=False)
    layers = [conv, BatchNorm2d(out_channels, eps)]
    return layers + [activation()] if activation is not None else layers


def _fold(conv: nn.Conv2d, bn: BatchNorm2d) -> None:
    scale, shift = bn.scale_shift()
    bias = conv.bias if "bias" in conv else mx.zeros_like(shift)
    conv.weight = conv.weight * scale.reshape(-1, 1, 1, 1)
    conv.bias = bias * scale + shift


def _fuse_tree(obj) -> None:
    if isinstance(obj, list):
        for i in range(len(obj) - 1):
            if isinstance(obj[i], nn.Conv2d) and isinstance(obj[i + 1], BatchNorm2d):
                _fold(obj[i], obj[i + 1])
                obj[i + 1] = nn.Identity()
        children = obj
    elif isinstance(obj, nn.Module):
        children = list(obj.values())
    else:
        return
    for child in children:
        _fuse_tree(child)


def fuse_batchnorm(model: nn.Module) -> nn.Module:
    """Fold every ``nn.Conv2d`` directly followed by ``BatchNorm2d`` in a layer list into the
    conv, in place; returns ``model``.

    Call after loading weights: the BN keys disappear and the convs gain a ``bias``.
    """
    _fuse_tree(model)
    mx.eval(model.parameters())
    return model
