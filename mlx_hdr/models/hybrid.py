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
import math
from dataclasses import asdict, dataclass, field, fields

import mlx.core as mx
import mlx.nn as nn
from mlx.utils import tree_flatten

from mlx_hdr.color import CLIP_THRESHOLD, IMAGENET_MEAN, IMAGENET_STD, STOPS_HI, STOPS_LO
from mlx_hdr.models.encoders import ENCODERS, build_encoder

UPSAMPLE_MODES = ("pixelshuffle_icnr_blur", "pixelshuffle_icnr", "pixelshuffle", "resize_conv")
FLOORS = (None, "kovaleski2014")
MULTIPLE = 32  # total encoder stride
MAX_WIDTH = 8192  # channels of a decoder stage (the shipped model's widest: 192)


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
    # a classical operator the decoded prediction never goes below (``infer.calibrate``)
    floor: str | None = None
    # the floor's share of that operator's expansion, in stops over the linearised input
    floor_strength: float = 1.0
    # a per-image boldness from the whole photo (:class:`GlobalGain`; ``stops`` target only)
    global_gain: bool = False
    # a per-image boldness from the photo's EXIF exposure (:class:`ExposureGain`; ``stops``)
    exposure_gain: bool = False

    def __post_init__(self):
        widths = self.decoder_channels
        if not isinstance(widths, (list, tuple)) or not all(map(_whole, widths)):
            raise ValueError(f"decoder_channels must be whole numbers, got {widths!r}")
        self.decoder_channels = tuple(int(c) for c in widths)
        for name in ("input_skip", "global_gain", "exposure_gain"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be true or false, got {getattr(self, name)!r}")
        if self.target not in ("minmax_log1p", "stops"):
            raise ValueError(f"target must be 'minmax_log1p' or 'stops', got {self.target!r}")
        if self.global_gain and self.target != "stops":
            raise ValueError("global_gain needs target 'stops' (it scales a residual in stops)")
        if self.exposure_gain and self.target != "stops":
            raise ValueError("exposure_gain needs target 'stops' (it scales a residual in stops)")
        if self.floor not in FLOORS:
            raise ValueError(f"floor must be one of {FLOORS}, got {self.floor!r}")
        strength = self.floor_strength
        if isinstance(strength, bool) or not isinstance(strength, int | float):
            raise ValueError(f"floor_strength must be a number in [0, 1], got {strength!r}")
        if not 0.0 <= self.floor_strength <= 1.0:
            raise ValueError(f"floor_strength must be in [0, 1], got {self.floor_strength!r}")
        if self.upsample not in UPSAMPLE_MODES:
            raise ValueError(f"upsample must be one of {UPSAMPLE_MODES}, got {self.upsample!r}")
        if len(self.decoder_channels) != 6 or not 1 <= min(self.decoder_channels):
            raise ValueError("decoder_channels needs 6 positive widths (bottleneck + 5 stages)")
        if max(self.decoder_channels) > MAX_WIDTH:
            raise ValueError(f"decoder_channels cannot be wider than {MAX_WIDTH}")
        if self.encoder not in ENCODERS:
            raise ValueError(
                f"unknown encoder {self.encoder!r} (choose from {', '.join(ENCODERS)})"
            )
        known = {f.name for f in fields(ENCODERS[self.encoder][1])}
        kwargs = self.encoder_kwargs
        if not isinstance(kwargs, dict) or set(kwargs) - known:
            raise ValueError(f"encoder_kwargs must be a dict of {sorted(known)}")
        bad = [k for k, v in kwargs.items() if not _encoder_setting_ok(k, v)]
        if bad:
            raise ValueError(f"encoder_kwargs {bad[0]} cannot be {kwargs[bad[0]]!r}")

    def to_json(self) -> str:
        """The fields as a JSON object with sorted keys."""
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> HybridConfig:
        """Inverse of :meth:`to_json` (validated like the constructor)."""
        return cls(**json.loads(text))


def _whole(value) -> bool:
    """A whole number, as an int or a float (16.0 from a recipe)."""
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and float(value).is_integer()
    )


def _encoder_setting_ok(name: str, value) -> bool:
    """An encoder setting (``width_mult`` > 0, ``round_nearest`` >= 1, ``num_classes``
    >= 0) of its type."""
    if name == "width_mult":  # at most 8: wider than any released MobileNet by far
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        return number and 0 < value <= 8
    least = 1 if name == "round_nearest" else 0
    whole = isinstance(value, int) and not isinstance(value, bool)
    return whole and least <= value <= MAX_WIDTH * 1000  # num_classes: ImageNet-21k's 21,843


def pixel_shuffle(x: mx.array, r: int = 2) -> mx.array:
    """Depth-to-space, PyTorch channel order: (N, H, W, C·r·r) -> (N, H·r, W·r, C)."""
    n, h, w, c = x.shape
    x = x.reshape(n, h, w, c // (r * r), r, r)
    return x.transpose(0, 1, 4, 2, 5, 3).reshape(n, h * r, w * r, c // (r * r))


def upsample_nearest(x: mx.array) -> mx.array:
    """Nearest-neighbour ×2: (N, H, W, C) -> (N, 2·H, 2·W, C)."""
    n, h, w, c = x.shape
    x = mx.broadcast_to(x[:, :, None, :, None, :], (n, h, 2, w, 2, c))
    return x.reshape(n, 2 * h, 2 * w, c)


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


class ConvBlock(nn.Module):
    """(conv -> InstanceNorm -> ReLU) twice; 3×3 convs (the first may be 1×1)."""

    def __init__(self, in_ch: int, out_ch: int, first_kernel: int = 3):
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, first_kernel, padding=first_kernel // 2)
        self.norm1 = nn.InstanceNorm(out_ch, affine=True)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1)
        self.norm2 = nn.InstanceNorm(out_ch, affine=True)

    def __call__(self, x: mx.array) -> mx.array:
        x = nn.relu(self.norm1(self.conv1(x)))
        return nn.relu(self.norm2(self.conv2(x)))


class Upsample2x(nn.Module):
    """×2 upsampling: sub-pixel conv (optionally ICNR-initialised) or resize + conv."""

    def __init__(self, in_ch: int, out_ch: int, mode: str):
        super().__init__()
        self.mode = mode
        if mode == "resize_conv":
            self.conv = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        else:
            self.conv = nn.Conv2d(in_ch, 4 * out_ch, 3, padding=1)
            if mode.startswith("pixelshuffle_icnr"):
                icnr_(self.conv)

    def __call__(self, x: mx.array) -> mx.array:
        if self.mode == "resize_conv":
            return self.conv(upsample_nearest(x))
        x = pixel_shuffle(self.conv(x))
        return binomial_blur(x) if self.mode == "pixelshuffle_icnr_blur" else x


def stops_zero_logit() -> float:
    """The output conv's value (before tanh) of a 0-stop residual in the ``stops`` target."""
    return math.atanh(-STOPS_LO / (STOPS_HI - STOPS_LO) * 2.0 - 1.0)


def near_white_share(x: mx.array, threshold: float = CLIP_THRESHOLD) -> mx.array:
    """Share of pixels whose brightest channel is near the image's white: (N, H, W, 3)
    ImageNet-normalised input -> (N, 1), soft (0 at ``threshold``, 1 at the image maximum,
    on the min-max display scale that ``color.ldr_to_input`` made): ``color.clip_ramp`` of
    max(RGB), in MLX so that it stays in the graph."""
    unit = x * mx.array(IMAGENET_STD) + mx.array(IMAGENET_MEAN)
    ramp = mx.clip((unit.max(axis=-1) - threshold) / (1.0 - threshold), 0.0, 1.0)
    return ramp.mean(axis=(1, 2))[:, None]


class GlobalGain(nn.Module):
    """How bold one photo's residual is: (encoder's last features, input) -> (N, 1) log-scale.

    The decoder's InstanceNorms normalise every stage per image, so its boldness in a
    clipped region follows the region's share of the photo (a feature that is 1 there and 0
    elsewhere becomes sqrt((1 - p) / p) after the norm). This branch sees what the norms
    remove: the average of the frozen encoder's last (un-normalised) features and the
    log2 share of near-white pixels, through a small MLP whose last layer starts at zero,
    so a model gains it without changing its output until it learns. Its output is
    multiplied by ``scale``, as Adam moves each weight by about the learning rate per step:
    at the decoder's learning rate an unscaled log-scale would barely move in a phase.
    """

    def __init__(self, in_ch: int, hidden: int = 32, scale: float = 10.0, extra: int = 0):
        super().__init__()
        self.fc1 = nn.Linear(in_ch + 1 + extra, hidden)  # ``extra``: a subclass's inputs
        self.fc2 = nn.Linear(hidden, 1)
        self.fc2.weight = mx.zeros_like(self.fc2.weight)
        self.fc2.bias = mx.zeros_like(self.fc2.bias)
        self.scale = scale

    def photo_features(self, c5: mx.array, x: mx.array) -> mx.array:
        """(N, C5 + 1): the encoder's mean last features and the log2 near-white share."""
        share = mx.log2(near_white_share(x) + 2.0**-10) / 10.0
        return mx.concatenate([c5.mean(axis=(1, 2)), share], axis=-1)

    def mlp(self, z: mx.array) -> mx.array:
        """(N, inputs) -> (N, 1) scaled log-scale."""
        return self.scale * self.fc2(nn.relu(self.fc1(z)))

    def __call__(self, c5: mx.array, x: mx.array) -> mx.array:
        return self.mlp(self.photo_features(c5, x))


LOG_SCALE_MAX = math.log(8.0)  # the gain branches scale a residual by 1/8 to 8 at most
WHITE_REF = 10.0  # log2 cd/m² (about 1,000) that ExposureGain's input is centred on
WHITE_SPAN = 4.0  # stops per unit of that input, which is clipped to [-2, 2]


class ExposureGain(GlobalGain):
    """How bold one photo's residual is, given its white in cd/m² from EXIF:
    (encoder's last features, input, (N,) log2 white) -> (N, 1) log-scale, 0 where unknown.

    The exposure says where the photo's white lay in absolute terms (a long exposure's
    clipped window lies far above its white, a short one's barely), which the pixels show
    only through what surrounds a clipped region. ``white`` is log2 of
    ``io.photo_meta.Exposure.white_luminance`` (NaN: no EXIF, the output is then exactly
    that of the model without this branch). It is :class:`GlobalGain` with the white as
    one more input: the whole photo past the InstanceNorms (the encoder's mean last
    features, the near-white share), a small MLP whose last layer starts at zero.
    """

    def __init__(self, in_ch: int, hidden: int = 32, scale: float = 10.0):
        super().__init__(in_ch, hidden, scale, extra=1)

    def __call__(self, c5: mx.array, x: mx.array, white: mx.array) -> mx.array:
        known = mx.isfinite(white)[:, None]
        u = mx.clip((white[:, None] - WHITE_REF) / WHITE_SPAN, -2.0, 2.0)
        z = mx.concatenate([self.photo_features(c5, x), mx.where(known, u, 0.0)], axis=-1)
        return mx.where(known, self.mlp(z), 0.0)


class HybridAutoencoder(nn.Module):
    """Frozen encoder + bottleneck + UNet-like decoder; NHWC ImageNet-normalised -> [-1, 1]."""

    def __init__(self, config: HybridConfig, encoder: nn.Module | None = None):
        super().__init__()
        self.config = config
        if encoder is None:
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
        self.out = nn.Conv2d(d[5], 3, 1)
        if config.global_gain:
            self.gain = GlobalGain(skips[4])
        if config.exposure_gain:
            self.exposure = ExposureGain(skips[4])

    def __call__(self, x: mx.array, white: mx.array | None = None) -> mx.array:
        """(N, H, W, 3) ImageNet-normalised float32 -> (N, H, W, 3) in [-1, 1].

        ``white``: (N,) log2 of each photo's white in cd/m² (NaN where unknown), read only
        by a model with ``exposure_gain``."""
        h, w = x.shape[1:3]
        x = pad_to_multiple(x, MULTIPLE)
        feats = [mx.stop_gradient(f) for f in self.encoder.features_at(x)]
        return self.decode(x, feats, white)[:, :h, :w, :]

    def decode(self, x: mx.array, feats: list[mx.array], white: mx.array | None = None):
        """The decoder: ``x`` the input padded to a multiple of 32, ``feats`` the encoder's
        [C1, .., C5] of it, ``white`` as in ``__call__`` -> (N, H, W, 3) in [-1, 1] at the
        padded size."""
        c1, c2, c3, c4, c5 = feats
        y = self.ups[0](self.bottleneck(c5))
        for block, up, skip in zip(self.blocks, self.ups[1:], (c4, c3, c2, c1), strict=True):
            y = up(block(mx.concatenate([y, skip], axis=-1)))
        if self.config.input_skip:
            y = mx.concatenate([y, x], axis=-1)
        z = self.out(self.head(y))
        log_scale = self.log_scale(c5, x, white)
        if log_scale is not None:  # scale the residual: z0 is the logit of 0 stops
            z0 = stops_zero_logit()
            z = z0 + (z - z0) * mx.exp(log_scale)[:, None, None, :]
        return mx.tanh(z)

    def log_scale(self, c5: mx.array, x: mx.array, white: mx.array | None):
        """(N, 1) log of the residual's per-image scale from the gain branches, or None:
        their sum s through ``LOG_SCALE_MAX * tanh(s / LOG_SCALE_MAX)``, so that a branch
        that runs away (a high learning rate) cannot scale the residual to 0, where no
        gradient would reach the decoder again."""
        terms = []
        if self.config.global_gain:
            terms.append(self.gain(c5, x))
        if self.config.exposure_gain and white is not None:
            terms.append(self.exposure(c5, x, white))
        if not terms:
            return None
        return LOG_SCALE_MAX * mx.tanh(sum(terms[1:], terms[0]) / LOG_SCALE_MAX)


def pad_to_multiple(x: mx.array, multiple: int = MULTIPLE) -> mx.array:
    """Pad NHWC at the bottom/right to multiples of ``multiple``, per axis: reflect, or edge
    along an axis shorter than its pad (reflect needs more). Inference pads before the model
    (``infer.pipeline.predict_target``), so the model's own call is a no-op there."""
    for axis in (1, 2):
        pad = -x.shape[axis] % multiple
        if pad:
            widths = [(0, 0)] * x.ndim
            widths[axis] = (0, pad)
            x = mx.pad(x, widths, mode="reflect" if pad < x.shape[axis] else "edge")
    return x


def trainable_parameter_count(model: nn.Module) -> int:
    """Number of scalars in ``model.trainable_parameters()`` (frozen encoders excluded)."""
    return sum(v.size for _, v in tree_flatten(model.trainable_parameters()))
