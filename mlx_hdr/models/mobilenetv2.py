"""MobileNetV2 (Sandler et al. 2018), torchvision's ``mobilenet_v2`` to the letter.

Parameter keys equal torchvision's state-dict keys (``features.1.conv.0.0.weight``,
``classifier.1.weight``, ...), conv weights in MLX layout ``(O, kH, kW, I/groups)``.
Input: NHWC float32, ImageNet-normalised (mean 0.485/0.456/0.406, std 0.229/0.224/0.225).
"""

from __future__ import annotations

from dataclasses import dataclass

import mlx.core as mx
import mlx.nn as nn

from mlx_hdr.models.layers import (
    BatchNorm2d,
    apply_layers,
    conv_norm_act,
    make_divisible,
    tapped_features,
)

BN_EPS = 1e-5

# t (expansion), c (output channels), n (repeats), s (first stride)
INVERTED_RESIDUAL_SETTING = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)

# Outputs of these `features` indices are the stage outputs at strides 2, 4, 8, 16, 32.
FEATURE_INDICES = (1, 3, 6, 13, 18)


@dataclass
class MobileNetV2Config:
    """torchvision's ``mobilenet_v2`` arguments: channels are scaled by ``width_mult`` and
    rounded to a multiple of ``round_nearest``."""

    width_mult: float = 1.0
    num_classes: int = 1000  # 0: no classifier head (features only, e.g. in the hybrid)
    round_nearest: int = 8


class InvertedResidual(nn.Module):
    """Expand 1x1 -> depthwise 3x3 (both ReLU6) -> linear 1x1 project; residual if same shape."""

    def __init__(self, inp: int, oup: int, stride: int, expand_ratio: int):
        super().__init__()
        hidden = int(round(inp * expand_ratio))
        self.use_res_connect = stride == 1 and inp == oup
        layers = []
        if expand_ratio != 1:
            layers.append(conv_norm_act(inp, hidden, 1, eps=BN_EPS, activation=nn.ReLU6))
        layers += [
            conv_norm_act(
                hidden, hidden, 3, stride, groups=hidden, eps=BN_EPS, activation=nn.ReLU6
            ),
            nn.Conv2d(hidden, oup, 1, bias=False),
            BatchNorm2d(oup, BN_EPS),
        ]
        self.conv = layers

    def __call__(self, x: mx.array) -> mx.array:
        y = apply_layers(self.conv, x)
        return x + y if self.use_res_connect else y


class MobileNetV2(nn.Module):
    """torchvision-exact MobileNetV2.

    ``features_at(x)`` returns the C1..C5 maps (strides 2, 4, 8, 16, 32) with channels
    ``feature_channels`` ((16, 24, 32, 96, 1280) at width 1.0); ``__call__`` returns logits.
    """

    def __init__(self, cfg: MobileNetV2Config | None = None):
        super().__init__()
        cfg = cfg or MobileNetV2Config()
        self.cfg = cfg
        in_ch = make_divisible(32 * cfg.width_mult, cfg.round_nearest)
        last = make_divisible(1280 * max(1.0, cfg.width_mult), cfg.round_nearest)
        features = [conv_norm_act(3, in_ch, 3, 2, eps=BN_EPS, activation=nn.ReLU6)]
        channels = [in_ch]
        for t, c, n, s in INVERTED_RESIDUAL_SETTING:
            out_ch = make_divisible(c * cfg.width_mult, cfg.round_nearest)
            for i in range(n):
                features.append(InvertedResidual(in_ch, out_ch, s if i == 0 else 1, t))
                in_ch = out_ch
                channels.append(out_ch)
        features.append(conv_norm_act(in_ch, last, 1, eps=BN_EPS, activation=nn.ReLU6))
        channels.append(last)
        self.features = features
        # classifier.0 is torchvision's Dropout (no parameters); keys stay classifier.1.*
        self.classifier = (
            [nn.Identity(), nn.Linear(last, cfg.num_classes)] if cfg.num_classes else []
        )
        object.__setattr__(self, "_channels", tuple(channels[i] for i in FEATURE_INDICES))

    @property
    def feature_channels(self) -> tuple[int, ...]:
        """Channels of the C1..C5 maps returned by :meth:`features_at`."""
        return tuple(self._channels)

    def features_at(self, x: mx.array) -> list[mx.array]:
        """(N, H, W, 3) normalised input -> [C1, C2, C3, C4, C5] NHWC at strides 2..32."""
        return tapped_features(self.features, x, FEATURE_INDICES)

    def __call__(self, x: mx.array) -> mx.array:
        """(N, H, W, 3) normalised input -> (N, num_classes) logits."""
        if not self.classifier:
            raise ValueError("this MobileNetV2 has no classifier (built with num_classes=0)")
        x = self.features_at(x)[-1].mean(axis=(1, 2))
        return self.classifier[1](x)
