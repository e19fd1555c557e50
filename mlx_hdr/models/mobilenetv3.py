"""MobileNetV3-Large (Howard et al. 2019), torchvision's ``mobilenet_v3_large`` to the letter.

Parameter keys equal torchvision's state-dict keys (``features.4.block.2.fc1.weight``,
``classifier.3.bias``, ...), conv weights in MLX layout ``(O, kH, kW, I/groups)``.
BatchNorm eps 1e-3, no dilation. Input: NHWC float32, ImageNet-normalised.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import mlx.core as mx
import mlx.nn as nn

from mlx_hdr.models.layers import (
    Hardsigmoid,
    apply_layers,
    conv_norm_act,
    make_divisible,
    tapped_features,
)

BN_EPS = 1e-3


class Bneck(NamedTuple):
    """One row of torchvision's ``_mobilenet_v3_conf`` (channels before width scaling)."""

    input_channels: int
    kernel: int
    expanded_channels: int
    out_channels: int
    use_se: bool
    activation: str  # "RE" (ReLU) or "HS" (hardswish)
    stride: int


# Table 1 of the paper, as torchvision's `_mobilenet_v3_conf("mobilenet_v3_large")`;
# block i is `features.{i + 1}`. Stage outputs: C1 = features.1 (stride 2), C2 = .3 (4),
# C3 = .6 (8), C4 = .12 (16), C5 = the last 1x1 conv, features.16 (32).
LARGE_SETTING = (
    Bneck(16, 3, 16, 16, False, "RE", 1),  # C1
    Bneck(16, 3, 64, 24, False, "RE", 2),
    Bneck(24, 3, 72, 24, False, "RE", 1),  # C2
    Bneck(24, 5, 72, 40, True, "RE", 2),
    Bneck(40, 5, 120, 40, True, "RE", 1),
    Bneck(40, 5, 120, 40, True, "RE", 1),  # C3
    Bneck(40, 3, 240, 80, False, "HS", 2),
    Bneck(80, 3, 200, 80, False, "HS", 1),
    Bneck(80, 3, 184, 80, False, "HS", 1),
    Bneck(80, 3, 184, 80, False, "HS", 1),
    Bneck(80, 3, 480, 112, True, "HS", 1),
    Bneck(112, 3, 672, 112, True, "HS", 1),  # C4
    Bneck(112, 5, 672, 160, True, "HS", 2),
    Bneck(160, 5, 960, 160, True, "HS", 1),
    Bneck(160, 5, 960, 160, True, "HS", 1),
)
LAST_CHANNEL = 1280
FEATURE_INDICES = (1, 3, 6, 12, 16)


@dataclass
class MobileNetV3Config:
    """torchvision's ``mobilenet_v3_large`` arguments: channels are scaled by ``width_mult``
    (rounded to a multiple of 8)."""

    width_mult: float = 1.0
    num_classes: int = 1000  # 0: no classifier head (features only, e.g. in the hybrid)


class SqueezeExcitation(nn.Module):
    """torchvision.ops ``SqueezeExcitation``: x * hardsigmoid(fc2(relu(fc1(mean_hw(x)))))."""

    def __init__(self, channels: int, squeeze_channels: int):
        super().__init__()
        self.fc1 = nn.Conv2d(channels, squeeze_channels, 1)
        self.fc2 = nn.Conv2d(squeeze_channels, channels, 1)

    def __call__(self, x: mx.array) -> mx.array:
        scale = self.fc2(nn.relu(self.fc1(x.mean(axis=(1, 2), keepdims=True))))
        return x * Hardsigmoid()(scale)


class InvertedResidual(nn.Module):
    """Expand 1x1 (if needed) -> depthwise kxk -> optional SE -> linear 1x1 project."""

    def __init__(self, cnf: Bneck, width_mult: float):
        super().__init__()
        inp, exp, out = (
            make_divisible(c * width_mult)
            for c in (cnf.input_channels, cnf.expanded_channels, cnf.out_channels)
        )
        act = nn.Hardswish if cnf.activation == "HS" else nn.ReLU
        self.use_res_connect = cnf.stride == 1 and inp == out
        layers = []
        if exp != inp:
            layers.append(conv_norm_act(inp, exp, 1, eps=BN_EPS, activation=act))
        layers.append(
            conv_norm_act(exp, exp, cnf.kernel, cnf.stride, exp, eps=BN_EPS, activation=act)
        )
        if cnf.use_se:
            layers.append(SqueezeExcitation(exp, make_divisible(exp // 4, 8)))
        layers.append(conv_norm_act(exp, out, 1, eps=BN_EPS, activation=None))
        self.block = layers

    def __call__(self, x: mx.array) -> mx.array:
        y = apply_layers(self.block, x)
        return x + y if self.use_res_connect else y


class MobileNetV3Large(nn.Module):
    """torchvision-exact MobileNetV3-Large.

    ``features_at(x)`` returns the C1..C5 maps (strides 2, 4, 8, 16, 32) with channels
    ``feature_channels`` ((16, 24, 40, 112, 960) at width 1.0); ``__call__`` returns logits.
    """

    def __init__(self, cfg: MobileNetV3Config | None = None):
        super().__init__()
        cfg = cfg or MobileNetV3Config()
        self.cfg = cfg
        first = make_divisible(LARGE_SETTING[0].input_channels * cfg.width_mult)
        lastconv_in = make_divisible(LARGE_SETTING[-1].out_channels * cfg.width_mult)
        lastconv_out = 6 * lastconv_in
        last_channel = make_divisible(LAST_CHANNEL * cfg.width_mult)
        self.features = [
            conv_norm_act(3, first, 3, 2, eps=BN_EPS, activation=nn.Hardswish),
            *(InvertedResidual(cnf, cfg.width_mult) for cnf in LARGE_SETTING),
            conv_norm_act(lastconv_in, lastconv_out, 1, eps=BN_EPS, activation=nn.Hardswish),
        ]
        # classifier.2 is torchvision's Dropout (identity in inference).
        self.classifier = (
            [
                nn.Linear(lastconv_out, last_channel),
                nn.Hardswish(),
                nn.Identity(),
                nn.Linear(last_channel, cfg.num_classes),
            ]
            if cfg.num_classes
            else []
        )
        channels = [first] + [
            make_divisible(c.out_channels * cfg.width_mult) for c in LARGE_SETTING
        ]
        channels.append(lastconv_out)
        object.__setattr__(self, "_channels", tuple(channels[i] for i in FEATURE_INDICES))

    @property
    def feature_channels(self) -> tuple[int, ...]:
        """Channels of the C1..C5 maps returned by :meth:`features_at`."""
        return self._channels

    def features_at(self, x: mx.array) -> list[mx.array]:
        """(N, H, W, 3) normalised input -> [C1, C2, C3, C4, C5] NHWC at strides 2..32."""
        return tapped_features(self.features, x, FEATURE_INDICES)

    def __call__(self, x: mx.array) -> mx.array:
        """(N, H, W, 3) normalised input -> (N, num_classes) logits."""
        if not self.classifier:
            raise ValueError("this MobileNetV3 has no classifier (built with num_classes=0)")
        pooled = self.features_at(x)[-1].mean(axis=(1, 2))
        return apply_layers(self.classifier, pooled)
