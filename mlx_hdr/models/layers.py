"""Conv/BatchNorm building blocks shared by the torchvision-exact backbones.

All tensors are NHWC float32. Conv weights use MLX's layout ``(O, kH, kW, I / groups)``;
the converter transposes torchvision's ``(O, I, kH, kW)`` into it, so parameter *names*
follow torchvision exactly (containers are plain Python lists, so keys are ``features.0.1.weight``
with no extra ``.layers``).
"""

from __future__ import annotations

import os

import mlx.core as mx
import mlx.nn as nn

from mlx_hdr.models.flatconv import conv2d_flat
from mlx_hdr.models.winograd import conv3x3_winograd, winograd_pays

# below this many pixels per image, mx.conv2d's im2col is cheap and beats the flat GEMMs
FLAT_MIN_PIXELS = 32 * 32


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


def _use_shifted_depthwise() -> bool:
    return mx.default_device() == mx.cpu


def depthwise_conv2d_shifted(
    x: mx.array, weight: mx.array, stride: int = 1, padding: int = 0
) -> mx.array:
    """Depthwise conv as a sum of kH*kW shifted multiply-adds (fast on MLX's CPU backend).

    Args:
        x: (N, H, W, C) input.
        weight: (C, kH, kW, 1) kernel, same layout as ``mx.conv2d(..., groups=C)``.
        stride, padding: symmetric stride and zero padding.

    Returns:
        (N, Ho, Wo, C), equal to ``mx.conv2d(x, weight, stride, padding, groups=C)``.
    """
    c, kh, kw, _ = weight.shape
    _, h, w, _ = x.shape
    if padding:
        x = mx.pad(x, [(0, 0), (padding, padding), (padding, padding), (0, 0)])
    ho = (h + 2 * padding - kh) // stride + 1
    wo = (w + 2 * padding - kw) // stride + 1
    taps = weight.reshape(c, kh * kw).T
    out = None
    for i in range(kh):
        for j in range(kw):
            window = x[
                :, i : i + stride * (ho - 1) + 1 : stride, j : j + stride * (wo - 1) + 1 : stride
            ]
            term = window * taps[i * kw + j]
            out = term if out is None else out + term
    return out


def depthwise_conv2d(x: mx.array, weight: mx.array, stride: int = 1, padding: int = 0) -> mx.array:
    """Depthwise conv choosing the fastest formulation for the default device.

    MLX's CPU backend runs grouped convs as a naive scalar loop, so on CPU the conv is
    written as shifted multiply-adds; on GPU/Metal ``mx.conv2d(groups=C)`` is used.
    Shapes as :func:`depthwise_conv2d_shifted`.
    """
    if _use_shifted_depthwise():
        return depthwise_conv2d_shifted(x, weight, stride, padding)
    return mx.conv2d(x, weight, stride=stride, padding=padding, groups=x.shape[-1])


def cpu_path(env: str) -> bool:
    """Whether a CPU-only fast path may run: the default device is the CPU and the
    environment variable ``env`` (its opt-out, for benchmarks) is not ``"0"``."""
    return mx.default_device() == mx.cpu and os.environ.get(env, "1") != "0"


def stream_slices(n: int, streams: list, multiple: int = 1) -> list[tuple]:
    """``(stream, a, b)`` for each stream: ``[0, n)`` cut into near-equal parts whose
    bounds are multiples of ``multiple`` (for splitting work over CPU streams)."""
    k = len(streams)
    cuts = [round(i * n / (k * multiple)) * multiple for i in range(k + 1)]
    return list(zip(streams, cuts[:-1], cuts[1:], strict=True))


def use_flat_conv(x: mx.array) -> bool:
    """Whether a stride-1 k×k conv of ``x`` (NHWC) runs as :func:`flatconv.conv2d_flat`.

    On MLX's CPU backend it is 1.1-6x faster than ``mx.conv2d`` forward and 1.1-2.7x with
    gradients from 32×32 up (``scripts/bench_fastpaths.py``); never on GPU.
    ``MLX_HDR_FLATCONV=0`` turns it off (for benchmarks).
    """
    return cpu_path("MLX_HDR_FLATCONV") and x.shape[1] * x.shape[2] >= FLAT_MIN_PIXELS


def use_winograd(x: mx.array, weight: mx.array) -> bool:
    """Whether a stride-1, padding-1 3×3 conv runs as :func:`winograd.conv3x3_winograd`.

    On MLX's CPU backend, for wide convs (:func:`winograd.winograd_pays`) it is 1.4-3.2x
    faster than the flat conv (forward, 128²×128 to 32²×512); never on GPU, and only in
    float32 (the transforms' constants would cost half precision most of its bits).
    ``MLX_HDR_WINOGRAD=0`` turns it off.
    """
    return (
        cpu_path("MLX_HDR_WINOGRAD")
        and x.dtype == mx.float32
        and winograd_pays(weight.shape[-1], weight.shape[0], x.shape[1], x.shape[2])
    )


class Conv2d(nn.Conv2d):
    """``nn.Conv2d`` (weight ``(O, k, k, I/groups)``, optional bias) with CPU fast paths:
    depthwise (``groups == in_channels == out_channels``, see :func:`depthwise_conv2d`),
    1x1 convs as a matmul (1.2-2.5x faster than ``mx.conv2d``), wide 3×3 convs by Winograd
    (:func:`use_winograd`), and other stride-1 k×k convs as shifted GEMMs
    (:func:`use_flat_conv`)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
        groups: int = 1,
        bias: bool = True,
    ):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, groups=groups)
        if not bias:
            del self.bias
        for key in ("stride", "padding"):  # plain attributes: keep the tree arrays-only
            object.__setattr__(self, key, self.pop(key))
        self.depthwise = groups > 1 and groups == in_channels == out_channels
        self.pointwise = kernel_size == 1 and stride == 1 and padding == 0 and groups == 1
        self.flat = kernel_size > 1 and stride == 1 and groups == 1 and padding < kernel_size
        self.winograd = kernel_size == 3 and stride == 1 and padding == 1 and groups == 1

    def __call__(self, x: mx.array) -> mx.array:
        return self._apply(x, self.weight, self.bias if "bias" in self else None)

    def part(self, x: mx.array, a: int, b: int) -> mx.array:
        """Output channels ``[a, b)`` of ``self(x)``, by the same path (groups 1 only): for
        splitting a layer by channels over CPU streams."""
        if self.groups != 1:
            raise ValueError("Conv2d.part needs groups == 1")
        return self._apply(x, self.weight[a:b], self.bias[a:b] if "bias" in self else None)

    def _apply(self, x: mx.array, weight: mx.array, bias: mx.array | None) -> mx.array:
        if self.depthwise:
            y = depthwise_conv2d(x, weight, self.stride[0], self.padding[0])
        elif self.pointwise:
            y = x @ weight.reshape(weight.shape[0], -1).T
        elif self.winograd and use_winograd(x, weight):
            y = conv3x3_winograd(x, weight)
        elif self.flat and use_flat_conv(x):
            y = conv2d_flat(x, weight, self.padding)
        else:
            y = mx.conv2d(x, weight, self.stride, self.padding, groups=self.groups)
        return y + bias if bias is not None else y


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


def tapped_features(layers: list, x: mx.array, taps: tuple[int, ...], run=None) -> list[mx.array]:
    """Run ``layers`` up to the last tap; return the outputs of the layers at ``taps``.

    ``run(layer, x)`` applies one layer (default: :func:`apply_layers` on ``[layer]``).
    """
    outs = []
    for i, layer in enumerate(layers[: taps[-1] + 1]):
        x = run(layer, x) if run is not None else apply_layers([layer], x)
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
    conv = Conv2d(in_channels, out_channels, kernel_size, stride, pad, groups, bias=False)
    layers = [conv, BatchNorm2d(out_channels, eps)]
    return layers + [activation()] if activation is not None else layers


def _fold(conv: Conv2d, bn: BatchNorm2d) -> None:
    scale, shift = bn.scale_shift()
    bias = conv.bias if "bias" in conv else mx.zeros_like(shift)
    conv.weight = conv.weight * scale.reshape(-1, 1, 1, 1)
    conv.bias = bias * scale + shift


def _fuse_tree(obj) -> None:
    if isinstance(obj, list):
        for i in range(len(obj) - 1):
            if isinstance(obj[i], Conv2d) and isinstance(obj[i + 1], BatchNorm2d):
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
    """Fold every ``Conv2d`` directly followed by ``BatchNorm2d`` in a layer list into the
    conv, in place; returns ``model``.

    Call after loading weights: the BN keys disappear and the convs gain a ``bias``.
    """
    _fuse_tree(model)
    mx.eval(model.parameters())
    return model
