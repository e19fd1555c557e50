"""Encoder registry: frozen ImageNet backbones exposing multi-scale features.

Every encoder takes NHWC float32 ImageNet-normalised input and exposes
``features_at(x) -> [C1, C2, C3, C4, C5]`` (strides 2, 4, 8, 16, 32) and
``feature_channels``. Encoders are frozen: BatchNorm always uses running statistics
(:class:`~mlx_hdr.models.layers.BatchNorm2d`) and all parameters are excluded from
``trainable_parameters()``; wrap the features in ``mx.stop_gradient`` when training a decoder.
"""

from __future__ import annotations

from collections.abc import Callable

import mlx.nn as nn

from mlx_hdr.models.mobilenetv2 import MobileNetV2, MobileNetV2Config
from mlx_hdr.models.mobilenetv3 import MobileNetV3Config, MobileNetV3Large

ENCODERS: dict[str, tuple[Callable[..., nn.Module], type]] = {
    "mobilenet_v2": (MobileNetV2, MobileNetV2Config),
    "mobilenet_v3_large": (MobileNetV3Large, MobileNetV3Config),
}


def build_encoder(name: str, **config: object) -> nn.Module:
    """Build the frozen encoder ``name`` (``mobilenet_v2`` or ``mobilenet_v3_large``) with
    random weights; load pretrained ones with ``model_io.load_strict(encoder, path, name)``.

    Args:
        name: registry name.
        **config: fields of the model's config dataclass (e.g. ``width_mult``).

    Raises ``ValueError`` for an unknown name. BatchNorm is not folded here, so the parameter
    keys stay torchvision's; call ``mlx_hdr.models.layers.fuse_batchnorm`` on an
    inference-only copy if wanted.
    """
    if name not in ENCODERS:
        raise ValueError(f"unknown encoder {name!r} (choose from {', '.join(ENCODERS)})")
    model_cls, config_cls = ENCODERS[name]
    model = model_cls(config_cls(**config))
    model.freeze()
    return model
