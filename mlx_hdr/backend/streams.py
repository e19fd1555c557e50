"""Inference with every block of the hybrid model split by channels over two CPU streams.

MLX runs each stream on its own thread, and most of its element-wise CPU kernels are
single-threaded, so one stream leaves a core idle. A block whose output channels are
independent of each other up to a sum or a concatenation can run as two halves at once:

- MobileNetV2's inverted residual: each expanded channel's path (1×1 expand, BN, ReLU6,
  depthwise, BN, ReLU6) is independent; the projection sums the halves' GEMMs;
- the decoder's ``ConvBlock``: each conv's output channels with their InstanceNorm and ReLU;
  the halves meet (a concatenation) before the next conv;
- ``Upsample2x``: the conv's output channels in whole PixelShuffle groups of 4.

The split classes below are the model's block classes with ``__call__`` replaced (no state
added); ``mlx_hdr.backend.accelerate`` puts them into a model. They split only inside
:func:`infer`, with OpenBLAS at one thread (the streams already keep the cores busy); the
model's own forward is unchanged. :func:`infer` splits where it pays: on a multi-core CPU,
with the preloaded OpenBLAS (the only BLAS whose threads it can pin to one, and the setting
it was measured in), from ``STREAM_MIN_PIXELS`` (``scripts/bench_interleaved.py`` chose it),
for the MobileNetV2 encoder (the one it was measured with), unless
``MLX_HDR_INFER_STREAMS=0``. The result equals the unsplit forward to float32 rounding
(amplified to ~1e-4 by the decoder's InstanceNorms).
"""

from __future__ import annotations

import contextlib
import copy
import os
from collections.abc import Callable
from contextvars import ContextVar
from functools import partial

import mlx.core as mx
import mlx.nn as nn

from mlx_hdr.backend import blas
from mlx_hdr.backend.cpu import cpu_path, depthwise_conv2d_shifted
from mlx_hdr.models.hybrid import ConvBlock, HybridAutoencoder, Upsample2x, pad_to_multiple
from mlx_hdr.models.layers import BatchNorm2d, relu6
from mlx_hdr.models.mobilenetv2 import InvertedResidual, MobileNetV2

STREAM_MIN_PIXELS = 384 * 384  # below this padded size the streams' overhead outweighs the gain

_STREAMS: list = []  # created on first use
_ACTIVE: ContextVar[list | None] = ContextVar("mlx_hdr_split_streams", default=None)


def stream_slices(n: int, streams: list, multiple: int = 1) -> list[tuple]:
    """``(stream, a, b)`` for each stream: ``[0, n)`` cut into near-equal parts whose
    bounds are multiples of ``multiple`` (for splitting work over CPU streams)."""
    k = len(streams)
    cuts = [round(i * n / (k * multiple)) * multiple for i in range(k + 1)]
    return list(zip(streams, cuts[:-1], cuts[1:], strict=True))


def infer_streams() -> list | None:
    """The two CPU streams :func:`infer` splits over, or None where it does not split (see
    the module docstring)."""
    if (
        not cpu_path("MLX_HDR_INFER_STREAMS")
        or (os.cpu_count() or 1) < 2
        or not blas.threads_limited()
    ):
        return None
    if not _STREAMS:
        _STREAMS.extend(mx.new_stream(mx.cpu) for _ in range(2))
    return _STREAMS


@contextlib.contextmanager
def split_over(streams: list):
    """Within the block, the split classes below run their channel parts on ``streams``."""
    token = _ACTIVE.set(streams)
    try:
        yield
    finally:
        _ACTIVE.reset(token)


def out_channels(module: nn.Module, a: int, b: int) -> nn.Module:
    """A copy of ``module`` whose arrays, its child modules' included, keep only entries
    ``[a, b)`` along axis 0: for a conv or a norm (or an ``Upsample2x``), the layer restricted
    to those output channels. The copy is of the same class, so it computes by the same
    path."""
    part = copy.copy(module)
    for key, value in module.items():
        if isinstance(value, mx.array):
            part[key] = value[a:b]
        elif isinstance(value, nn.Module):
            part[key] = out_channels(value, a, b)
    return part


def _split(x: mx.array, n: int, run: Callable, multiple: int = 1) -> list[mx.array]:
    """``run(x, a, b)`` for each part ``[a, b)`` of ``n`` channels, each on its stream (an
    empty part, of a layer narrower than the streams are many, is left out)."""
    parts = []
    for s, a, b in stream_slices(n, _ACTIVE.get(), multiple):
        if b > a:
            with mx.stream(s):
                parts.append(run(x, a, b))
    return parts


class SplitInvertedResidual(InvertedResidual):
    """MobileNetV2's inverted residual, its hidden channels split over the active streams."""

    def __call__(self, x: mx.array) -> mx.array:
        *_, dw, proj, bn = self.conv
        if _ACTIVE.get() is None or not isinstance(bn, BatchNorm2d):  # fused: not split
            return super().__call__(x)
        hidden = dw[0].weight.shape[0]
        w_proj = proj.weight.reshape(proj.weight.shape[0], hidden)
        parts = _split(x, hidden, lambda y, a, b: self._hidden(y, a, b) @ w_proj[:, a:b].T)
        y = bn(sum(parts[1:], parts[0]))
        return x + y if self.use_res_connect else y

    def _hidden(self, x: mx.array, a: int, b: int) -> mx.array:
        """Hidden channels [a, b) after the depthwise stage's ReLU6."""
        *expand, dw, _, _ = self.conv
        if expand:
            conv, norm, _ = expand[0]
            scale, shift = norm.scale_shift()
            w = conv.weight.reshape(conv.weight.shape[0], -1)[a:b]
            x = relu6((x @ w.T) * scale[a:b] + shift[a:b])
        else:
            x = x[..., a:b]
        conv, norm, _ = dw
        scale, shift = norm.scale_shift()
        y = depthwise_conv2d_shifted(x, conv.weight[a:b], conv.stride[0], conv.padding[0])
        return relu6(y * scale[a:b] + shift[a:b])


class SplitConvBlock(ConvBlock):
    """The decoder's ``ConvBlock``, each conv's output channels split over the active streams."""

    def __call__(self, x: mx.array) -> mx.array:
        if _ACTIVE.get() is None:
            return super().__call__(x)
        for conv, norm in ((self.conv1, self.norm1), (self.conv2, self.norm2)):
            run = partial(_conv_norm_relu, conv, norm)
            x = mx.concatenate(_split(x, conv.weight.shape[0], run), axis=-1)
        return x


def _conv_norm_relu(conv: nn.Module, norm: nn.Module, x: mx.array, a: int, b: int) -> mx.array:
    """Output channels [a, b) of ``relu(norm(conv(x)))``."""
    return nn.relu(out_channels(norm, a, b)(out_channels(conv, a, b)(x)))


class SplitUpsample2x(Upsample2x):
    """``Upsample2x``, its conv's output channels split over the active streams (whole
    PixelShuffle groups of 4), concatenated after the upsampling."""

    def __call__(self, x: mx.array) -> mx.array:
        if _ACTIVE.get() is None:
            return super().__call__(x)
        multiple = 1 if self.mode == "resize_conv" else 4

        def run(y, a, b):
            return Upsample2x.__call__(out_channels(self, a, b), y)

        return mx.concatenate(_split(x, self.conv.weight.shape[0], run, multiple), axis=-1)


# model block -> its split twin, for mlx_hdr.backend.accelerate
BLOCKS = {
    InvertedResidual: SplitInvertedResidual,
    ConvBlock: SplitConvBlock,
    Upsample2x: SplitUpsample2x,
}


def splits(model) -> bool:
    """Whether :func:`infer` may split ``model``: the hybrid with the MobileNetV2 encoder,
    accelerated (its blocks are the split classes)."""
    return (
        isinstance(model, HybridAutoencoder)
        and isinstance(model.encoder, MobileNetV2)
        and isinstance(model.bottleneck, SplitConvBlock)
    )


def infer(model: Callable, x: mx.array, white: mx.array | None = None) -> mx.array:
    """``model(x)`` for inference (no gradients, not for ``mx.compile``), evaluated;
    ``model(x, white)`` where ``white`` (the photos' log2 white in cd/m²) is given.

    For a model that :func:`splits`, where :func:`infer_streams` gives streams and the
    padded input has ``STREAM_MIN_PIXELS`` or more: the encoder, then the decoder, with
    every block split over the two streams and OpenBLAS at one thread. Else ``model(x)``.
    """
    streams = infer_streams()
    h, w = x.shape[1:3]
    xp = pad_to_multiple(x)
    args = (x,) if white is None else (x, white)
    if streams is None or not splits(model) or xp.shape[1] * xp.shape[2] < STREAM_MIN_PIXELS:
        y = model(*args)
        mx.eval(y)
        return y
    with blas.blas_threads(1), split_over(streams):
        feats = model.encoder.features_at(xp)
        mx.eval(feats)
        y = model.decode(xp, feats, white)[:, :h, :w, :]
        mx.eval(y)
    return y
