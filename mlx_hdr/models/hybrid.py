"""The hybrid autoencoder: a frozen ImageNet encoder and a small learned UNet-like decoder.

Input: NHWC float32, ImageNet-normalised (``color.ldr_to_input``), any H, W.
Output: NHWC float32 in [-1, 1], 3 channels, same H, W (the log-domain target of
``color.hdr_to_target``).

Upsampling is sub-pixel convolution (PixelShuffle). Its checkerboard artefact is removed
at the source with ICNR initialisation (Aitken et al. 2017): the conv producing 4·C
channels starts with the four sub-pixel groups identical, i.e. nearest-neighbour
upsampling followed by a conv.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field

import mlx.core as mx
import mlx.nn as nn
from mlx.utils import tree_flatten

from mlx_hdr import _blas
from mlx_hdr.models.layers import Conv2d, cpu_path, stream_slices

UPSAMPLE_MODES = ("pixelshuffle_icnr_blur", "pixelshuffle_icnr", "pixelshuffle", "resize_conv")
MULTIPLE = 32  # total encoder stride
_INFER_STREAMS: list = []  # created on first use
# below this many pixels the streams' overhead outweighs the gain (scripts/bench_interleaved.py,
# model(x) vs split: 224² 56 → 63 ms, 320² 98 → 115 ms, 384² 157 → 134 ms, 512² 307 → 221 ms)
STREAM_MIN_PIXELS = 384 * 384


def infer_streams() -> list | None:
    """Two CPU streams for :meth:`HybridAutoencoder.infer`'s channel split, or None on a
    GPU, on one core, without the preloaded OpenBLAS (the only BLAS whose threads it can
    pin to one, and the setting it was measured in), or with ``MLX_HDR_INFER_STREAMS=0``."""
    if not cpu_path("MLX_HDR_INFER_STREAMS") or (os.cpu_count() or 1) < 2 or not _blas.loaded:
        return None
    if not _INFER_STREAMS:
        _INFER_STREAMS.extend(mx.new_stream(mx.cpu) for _ in range(2))
    return _INFER_STREAMS


@dataclass
class HybridConfig:
    """Architecture of :class:`HybridAutoencoder` (saved with the weights)."""

    encoder: str = "mobilenet_v2"
    # bottleneck width, then one width per decoder stage at strides 16, 8, 4, 2, 1
    decoder_channels: tuple[int, ...] = (192, 128, 64, 32, 24, 16)
    upsample: str = "pixelshuffle_icnr_blur"
    input_skip: bool = True  # concatenate the input image at full resolution
    encoder_kwargs: dict = field(default_factory=dict)
    # the output's domain (``targets.TARGETS``); files without the field hold the original one
    target: str = "minmax_log1p"

    def __post_init__(self):
        self.decoder_channels = tuple(int(c) for c in self.decoder_channels)
        if self.target not in ("minmax_log1p", "stops"):
            raise ValueError(f"target must be 'minmax_log1p' or 'stops', got {self.target!r}")
        if self.upsample not in UPSAMPLE_MODES:
            raise ValueError(f"upsample must be one of {UPSAMPLE_MODES}, got {self.upsample!r}")
        if len(self.decoder_channels) != 6:
            raise ValueError("decoder_channels needs 6 widths (bottleneck + 5 stages)")

    def to_json(self) -> str:
        """The fields as a JSON object with sorted keys."""
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> HybridConfig:
        """Inverse of :meth:`to_json` (validated like the constructor)."""
        return cls(**json.loads(text))


def pixel_shuffle(x: mx.array, r: int = 2) -> mx.array:
    """Depth-to-space, PyTorch channel order: (N, H, W, C·r·r) -> (N, H·r, W·r, C)."""
    n, h, w, c = x.shape
    x = x.reshape(n, h, w, c // (r * r), r, r)
    return x.transpose(0, 1, 4, 2, 5, 3).reshape(n, h * r, w * r, c // (r * r))


def binomial_blur(x: mx.array) -> mx.array:
    """Separable [1, 2, 1]/4 filter of NHWC ``x`` (edge padding), as shifted adds.

    Its frequency response is exactly 0 at the Nyquist frequency, so after a ×2 sub-pixel
    conv it removes the (H/2, 0), (0, W/2), (H/2, W/2) grid frequencies of a PixelShuffle
    mosaic whatever the learned kernels become (a first-order hold: the checkerboard-free
    condition of Sugawara et al. 2019). No parameters; the input's alignment is unchanged.
    """
    x = mx.pad(x, [(0, 0), (1, 1), (0, 0), (0, 0)], mode="edge")
    x = (x[:, :-2] + 2.0 * x[:, 1:-1] + x[:, 2:]) * 0.25
    x = mx.pad(x, [(0, 0), (0, 0), (1, 1), (0, 0)], mode="edge")
    x = (x[:, :, :-2] + 2.0 * x[:, :, 1:-1] + x[:, :, 2:]) * 0.25
    return x


def icnr_(conv: nn.Conv2d, r: int = 2) -> None:
    """ICNR init (Aitken 2017) in place: every sub-pixel group of output channels is equal."""
    out_ch = conv.weight.shape[0]
    base = conv.weight[: out_ch // (r * r)]
    # output channel c·r² + k (PyTorch pixel_shuffle order) copies sub-kernel c
    conv.weight = mx.repeat(base, r * r, axis=0)
    if "bias" in conv:
        conv.bias = mx.repeat(conv.bias[: out_ch // (r * r)], r * r, axis=0)


def instance_norm_nhwc(
    x: mx.array, weight: mx.array | None, bias: mx.array | None, eps: float = 1e-5
) -> mx.array:
    """InstanceNorm of an (N, H, W, C) array over H, W without leaving NHWC.

    Matches ``nn.InstanceNorm`` to float32 rounding; on MLX's CPU backend it is ~2x faster
    forward and backward, as it skips the two channels-first transposes (docs/BENCHMARKS.md).
    """
    mean = x.mean(axis=(1, 2), keepdims=True)
    scale = mx.rsqrt(mx.var(x, axis=(1, 2), keepdims=True) + eps)
    if weight is not None:
        scale = scale * weight
    y = (x - mean) * scale
    return y + bias if bias is not None else y


class InstanceNorm(nn.InstanceNorm):
    """``nn.InstanceNorm`` (same keys) using :func:`instance_norm_nhwc` on the CPU."""

    def __call__(self, x: mx.array) -> mx.array:
        if x.ndim != 4 or mx.default_device() != mx.cpu:
            return super().__call__(x)
        affine = "weight" in self
        return instance_norm_nhwc(
            x, self.weight if affine else None, self.bias if affine else None, self.eps
        )

    def part(self, x: mx.array, a: int, b: int) -> mx.array:
        """``self`` for channels ``[a, b)`` given only those channels (NHWC, CPU)."""
        if "weight" not in self:
            return instance_norm_nhwc(x, None, None, self.eps)
        return instance_norm_nhwc(x, self.weight[a:b], self.bias[a:b], self.eps)


class ConvBlock(nn.Module):
    """(conv -> InstanceNorm -> ReLU) twice; 3×3 convs (the first may be 1×1)."""

    def __init__(self, in_ch: int, out_ch: int, first_kernel: int = 3):
        super().__init__()
        self.conv1 = Conv2d(in_ch, out_ch, first_kernel, padding=first_kernel // 2)
        self.norm1 = InstanceNorm(out_ch, affine=True)
        self.conv2 = Conv2d(out_ch, out_ch, 3, padding=1)
        self.norm2 = InstanceNorm(out_ch, affine=True)

    def __call__(self, x: mx.array) -> mx.array:
        x = nn.relu(self.norm1(self.conv1(x)))
        return nn.relu(self.norm2(self.conv2(x)))

    def split_call(self, x: mx.array, streams: list) -> mx.array:
        """``self(x)`` with the output channels split over ``streams``: each part's conv,
        InstanceNorm and ReLU are independent of the others'; the halves meet (a
        concatenation) before each conv. Equal to ``self(x)`` (same ops, fewer channels)."""
        for conv, norm in ((self.conv1, self.norm1), (self.conv2, self.norm2)):
            parts = []
            for s, a, b in stream_slices(conv.weight.shape[0], streams):
                with mx.stream(s):
                    parts.append(nn.relu(norm.part(conv.part(x, a, b), a, b)))
            x = mx.concatenate(parts, axis=-1)
        return x


class Upsample2x(nn.Module):
    """×2 upsampling: sub-pixel conv (optionally ICNR-initialised) or resize + conv."""

    def __init__(self, in_ch: int, out_ch: int, mode: str):
        super().__init__()
        self.mode = mode
        if mode == "resize_conv":
            self.conv = Conv2d(in_ch, out_ch, 3, padding=1)
        else:
            self.conv = Conv2d(in_ch, 4 * out_ch, 3, padding=1)
            if mode.startswith("pixelshuffle_icnr"):
                icnr_(self.conv)

    def __call__(self, x: mx.array) -> mx.array:
        return self._run(x, self.conv)

    def split_call(self, x: mx.array, streams: list) -> mx.array:
        """``self(x)`` with the conv's output channels split over ``streams`` (whole
        PixelShuffle groups of 4), concatenated after the upsampling. Equal to ``self(x)``."""
        multiple = 1 if self.mode == "resize_conv" else 4
        parts = []
        for s, a, b in stream_slices(self.conv.weight.shape[0], streams, multiple):
            with mx.stream(s):
                parts.append(self._run(x, lambda z, a=a, b=b: self.conv.part(z, a, b)))
        return mx.concatenate(parts, axis=-1)

    def _run(self, x: mx.array, conv) -> mx.array:
        """The upsampling with ``conv`` as its convolution (the whole conv, or a part)."""
        if self.mode == "resize_conv":
            n, h, w, c = x.shape
            x = mx.broadcast_to(x[:, :, None, :, None, :], (n, h, 2, w, 2, c))
            return conv(x.reshape(n, 2 * h, 2 * w, c))
        y = pixel_shuffle(conv(x))
        return binomial_blur(y) if self.mode == "pixelshuffle_icnr_blur" else y


class HybridAutoencoder(nn.Module):
    """Frozen encoder + bottleneck + UNet-like decoder; NHWC ImageNet-normalised -> [-1, 1]."""

    def __init__(self, config: HybridConfig, encoder: nn.Module | None = None):
        super().__init__()
        self.config = config
        if encoder is None:
            from mlx_hdr.models.encoders import build_encoder

            encoder = build_encoder(config.encoder, **config.encoder_kwargs)
        self.encoder = encoder
        self.encoder.freeze()
        skips = list(encoder.feature_channels)  # C1..C5
        d = config.decoder_channels
        # 1×1 first: C5 is wide (1280 for MobileNetV2) and would dominate the parameters
        self.bottleneck = ConvBlock(skips[4], d[0], first_kernel=1)
        # stage k works at stride 16, 8, 4, 2 with skip C4..C1, then the full-res head
        self.ups = [Upsample2x(d[0], d[1], config.upsample)]
        self.blocks = []
        for k, skip in enumerate(reversed(skips[:4])):
            self.blocks.append(ConvBlock(d[k + 1] + skip, d[k + 1]))
            self.ups.append(Upsample2x(d[k + 1], d[k + 2], config.upsample))
        head_in = d[5] + (3 if config.input_skip else 0)
        self.head = ConvBlock(head_in, d[5])
        self.out = Conv2d(d[5], 3, 1)

    def decode(self, x: mx.array, feats: list[mx.array], streams: list | None = None) -> mx.array:
        """Decoder on the encoder features (input already a multiple of 32); with
        ``streams``, every block's channels are split over them (``split_call``)."""

        def run(layer, y):
            return layer(y) if streams is None else layer.split_call(y, streams)

        y = run(self.ups[0], run(self.bottleneck, feats[4]))
        for k, block in enumerate(self.blocks):
            y = run(self.ups[k + 1], run(block, mx.concatenate([y, feats[3 - k]], axis=-1)))
        if self.config.input_skip:
            y = mx.concatenate([y, x], axis=-1)
        return mx.tanh(self.out(run(self.head, y)))

    def __call__(self, x: mx.array) -> mx.array:
        """(N, H, W, 3) ImageNet-normalised float32 -> (N, H, W, 3) in [-1, 1]."""
        h, w = x.shape[1:3]
        xp = pad_to_multiple(x, MULTIPLE)
        feats = [mx.stop_gradient(f) for f in self.encoder.features_at(xp)]
        return self.decode(xp, feats)[:, :h, :w, :]

    def infer(self, x: mx.array) -> mx.array:
        """``self(x)`` for inference (no gradients, not for ``mx.compile``).

        On a multi-core CPU every block of the encoder and the decoder is split by channels
        over two streams, with OpenBLAS at one thread: MLX's element-wise CPU kernels are
        single-threaded, so one stream leaves a core idle. The encoder is evaluated before
        the decoder runs. Only from ``STREAM_MIN_PIXELS`` up. Equal to ``self(x)`` to
        float32 rounding (amplified to ~1e-4 by the decoder's InstanceNorms). Forward 512²
        253 → 220 ms, 1152×864 1092 → 847 ms (``scripts/bench_interleaved.py``).
        """
        h, w = x.shape[1:3]
        xp = pad_to_multiple(x, MULTIPLE)
        streams = infer_streams()
        if (
            streams is None
            or not getattr(self.encoder, "supports_streams", False)
            or xp.shape[1] * xp.shape[2] < STREAM_MIN_PIXELS
        ):
            return self(x)
        with _blas.blas_threads(1):
            feats = self.encoder.features_at(xp, streams=streams)
            mx.eval(feats)
            y = self.decode(xp, feats, streams=streams)[:, :h, :w, :]
            mx.eval(y)
        return y


def pad_to_multiple(x: mx.array, multiple: int = MULTIPLE) -> mx.array:
    """Pad NHWC bottom/right to a multiple: reflect, or edge where the image is too small.

    The MLX twin of ``inference.pad_to_multiple`` (numpy, used before tiling), which picks
    the mode per axis; here one mode serves both axes. Inference pads first, so this is a
    no-op there.
    """
    h, w = x.shape[1:3]
    ph, pw = -h % multiple, -w % multiple
    if ph == 0 and pw == 0:
        return x
    mode = "reflect" if ph < h and pw < w else "edge"
    return mx.pad(x, [(0, 0), (0, ph), (0, pw), (0, 0)], mode=mode)


def trainable_parameter_count(model: nn.Module) -> int:
    """Number of scalars in ``model.trainable_parameters()`` (frozen encoders excluded)."""
    return sum(v.size for _, v in tree_flatten(model.trainable_parameters()))
