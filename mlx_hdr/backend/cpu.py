"""CPU formulations of convolution and InstanceNorm, and the layers that use them.

MLX's CPU backend runs ``mx.conv2d`` through an explicit single-threaded im2col copy and
grouped convs as a scalar loop, and ``nn.InstanceNorm`` through two channels-first
transposes. The same results are computed here from GEMMs (which OpenBLAS runs on every
core) and element-wise ops that stay NHWC:

- depthwise conv as kH·kW shifted multiply-adds (:func:`depthwise_conv2d_shifted`);
- 1×1 stride-1 conv as one matmul;
- wide stride-1 padding-1 3×3 conv by Winograd F(4×4, 3×3) (:mod:`winograd`), float32 only;
- other stride-1 k×k convs as k² shifted GEMMs (:mod:`flatconv`), from ``FLAT_MIN_PIXELS``;
- InstanceNorm over H, W without leaving NHWC (:func:`instance_norm_nhwc`).

:class:`Conv2d` and :class:`InstanceNorm` are ``nn.Conv2d`` / ``nn.InstanceNorm`` with only
``__call__`` replaced (same parameters, same keys); ``mlx_hdr.backend.accelerate`` puts them
into a built model (not at all with ``MLX_HDR_ACCELERATE=0``). Each call still checks that
it runs on the CPU, and the Winograd and flat convs have switches of their own for
benchmarks: ``MLX_HDR_WINOGRAD=0``, ``MLX_HDR_FLATCONV=0``.
All shapes NHWC float; conv weights in MLX's layout (O, kH, kW, I / groups).
"""

from __future__ import annotations

import mlx.core as mx
import mlx.nn as nn

from mlx_hdr.backend.flatconv import conv2d_flat
from mlx_hdr.backend.switches import switched_off
from mlx_hdr.backend.winograd import conv3x3_winograd, winograd_pays

# below this many pixels per image, mx.conv2d's im2col is cheap and beats the flat GEMMs
FLAT_MIN_PIXELS = 32 * 32


def on_cpu() -> bool:
    """Whether ops run on the CPU now (the default device, which ``mx.stream`` also sets)."""
    return mx.default_device() == mx.cpu


def cpu_path(env: str) -> bool:
    """Whether a switchable CPU fast path may run: on the CPU, and the environment variable
    ``env`` (its opt-out, for benchmarks) does not turn it off (``switches.OFF``)."""
    return on_cpu() and not switched_off(env)


def depthwise_conv2d_shifted(
    x: mx.array, weight: mx.array, stride: int = 1, padding: int = 0
) -> mx.array:
    """Depthwise conv as a sum of kH*kW shifted multiply-adds.

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


def use_flat_conv(x: mx.array) -> bool:
    """Whether a stride-1 k×k conv of ``x`` (NHWC) runs as :func:`flatconv.conv2d_flat`:
    on the CPU from ``FLAT_MIN_PIXELS`` per image, unless ``MLX_HDR_FLATCONV=0``."""
    return cpu_path("MLX_HDR_FLATCONV") and x.shape[1] * x.shape[2] >= FLAT_MIN_PIXELS


def use_winograd(x: mx.array, weight: mx.array) -> bool:
    """Whether a stride-1, padding-1 3×3 conv runs as :func:`winograd.conv3x3_winograd`: on
    the CPU, in float32 (the transforms' constants would cost half precision most of its
    bits), where :func:`winograd.winograd_pays`, unless ``MLX_HDR_WINOGRAD=0``."""
    return (
        cpu_path("MLX_HDR_WINOGRAD")
        and x.dtype == mx.float32
        and winograd_pays(weight.shape[-1], weight.shape[0], x.shape[1], x.shape[2])
    )


def conv2d(
    x: mx.array,
    weight: mx.array,
    bias: mx.array | None = None,
    stride: tuple[int, int] = (1, 1),
    padding: tuple[int, int] = (0, 0),
    dilation: int | tuple[int, int] = 1,
    groups: int = 1,
) -> mx.array:
    """``mx.conv2d(x, weight, stride, padding, dilation, groups) + bias`` by the fastest of
    the formulations above that applies (``mx.conv2d`` itself off the CPU)."""
    o, kh, kw, i = weight.shape
    plain = not on_cpu() or dilation not in (1, (1, 1))
    square = kh == kw and stride[0] == stride[1] and padding[0] == padding[1]
    if not plain and groups > 1 and groups == o == x.shape[-1] and i == 1 and square:
        y = depthwise_conv2d_shifted(x, weight, stride[0], padding[0])
    elif plain or groups != 1 or stride != (1, 1):
        y = mx.conv2d(x, weight, stride, padding, dilation, groups)
    elif (kh, kw) == (1, 1) and padding == (0, 0):
        y = x @ weight.reshape(o, -1).T
    elif (kh, kw) == (3, 3) and padding == (1, 1) and use_winograd(x, weight):
        y = conv3x3_winograd(x, weight)
    elif padding[0] < kh and padding[1] < kw and use_flat_conv(x):
        y = conv2d_flat(x, weight, padding)
    else:
        y = mx.conv2d(x, weight, stride, padding, dilation, groups)
    return y + bias if bias is not None else y


def instance_norm_nhwc(
    x: mx.array, weight: mx.array | None, bias: mx.array | None, eps: float = 1e-5
) -> mx.array:
    """InstanceNorm of an (N, H, W, C) array over H, W without leaving NHWC.

    Matches ``nn.InstanceNorm`` to float32 rounding, forward and backward; skips its two
    channels-first transposes, which are slow copies on MLX's CPU backend.
    """
    mean = x.mean(axis=(1, 2), keepdims=True)
    scale = mx.rsqrt(mx.var(x, axis=(1, 2), keepdims=True) + eps)
    if weight is not None:
        scale = scale * weight
    y = (x - mean) * scale
    return y + bias if bias is not None else y


class Conv2d(nn.Conv2d):
    """``nn.Conv2d`` computed by :func:`conv2d` (same parameters and keys)."""

    def __call__(self, x: mx.array) -> mx.array:
        bias = self.bias if "bias" in self else None
        return conv2d(x, self.weight, bias, self.stride, self.padding, self.dilation, self.groups)


class InstanceNorm(nn.InstanceNorm):
    """``nn.InstanceNorm`` computed by :func:`instance_norm_nhwc` on the CPU for NHWC input
    (same parameters and keys)."""

    def __call__(self, x: mx.array) -> mx.array:
        if x.ndim != 4 or not on_cpu():
            return super().__call__(x)
        affine = "weight" in self
        return instance_norm_nhwc(
            x, self.weight if affine else None, self.bias if affine else None, self.eps
        )


# MLX layer -> its CPU twin (a subclass adding no state), for mlx_hdr.backend.accelerate
LAYERS = {nn.Conv2d: Conv2d, nn.InstanceNorm: InstanceNorm}
