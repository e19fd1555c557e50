"""VGG16 (Simonyan & Zisserman 2015) convolutional ``features`` up to conv5_3 + ReLU.

Parameter keys equal torchvision's ``vgg16().features`` (``features.{0,2,5,...,28}.weight``
and ``.bias``), conv weights in MLX layout ``(O, 3, 3, I)``. The final max-pool is not
included: the network ends at relu5_3, the last LPIPS tap.
"""

from __future__ import annotations

from dataclasses import dataclass

import mlx.core as mx
import mlx.nn as nn

# torchvision's configuration "D": output channels, "M" = 2x2 max-pool.
VGG16_CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512)

# `features` indices after which relu1_2, relu2_2, relu3_3, relu4_3, relu5_3 are read.
TAP_INDICES = (3, 8, 15, 22, 29)


@dataclass
class VGG16Config:
    """Input channels of the first conv (3 for RGB)."""

    in_channels: int = 3


class VGG16Features(nn.Module):
    """torchvision-exact ``vgg16().features[:30]``.

    ``features_at(x)`` maps an (N, H, W, 3) float32 input (ImageNet-normalised for the
    ImageNet weights; LPIPS uses its own scaling) to the five ReLU taps at strides
    1, 2, 4, 8, 16 with ``feature_channels`` = (64, 128, 256, 512, 512).
    """

    def __init__(self, cfg: VGG16Config | None = None):
        super().__init__()
        cfg = cfg or VGG16Config()
        layers: list[nn.Module] = []
        channels = cfg.in_channels
        for v in VGG16_CFG:
            if v == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                layers += [nn.Conv2d(channels, v, 3, padding=1), nn.ReLU()]
                channels = v
        self.features = layers

    @property
    def feature_channels(self) -> tuple[int, ...]:
        """Channels of the five taps of :meth:`features_at`."""
        return (64, 128, 256, 512, 512)

    def features_at(self, x: mx.array) -> list[mx.array]:
        """(N, H, W, 3) -> [relu1_2, relu2_2, relu3_3, relu4_3, relu5_3], NHWC."""
        outs = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in TAP_INDICES:
                outs.append(x)
        return outs

    def __call__(self, x: mx.array) -> list[mx.array]:
        return self.features_at(x)
