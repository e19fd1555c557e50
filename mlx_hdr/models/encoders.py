"""Encoder registry: frozen ImageNet backbones exposing multi-scale features.

Every encoder takes NHWC float32 ImageNet-normalised input and exposes
``features_at(x) -> [C1, C2, C3, C4, C5]`` (strides 2, 4, 8, 16, 32) and
``feature_channels``. Encoders are frozen: BatchNorm always uses running statistics
(:class:`~mlx_hdr.models.layers.BatchNorm2d`) and all parameters are excluded from
``trainable_parameters()``; wrap the features in ``mx.stop_gradient`` when training a decoder.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import mlx.core as mx
import mlx.nn as nn

from mlx_hdr.models.mobilenetv2 import MobileNetV2, MobileNetV2Config
from mlx_hdr.models.mobilenetv3 import MobileNetV3Config, MobileNetV3Large
from mlx_hdr.weights import load_strict

ENCODERS: dict[str, tuple[Callable[..., nn.Module], type]] = {
    "mobilenet_v2": (MobileNetV2, MobileNetV2Config),
    "mobilenet_v3_large": (MobileNetV3Large, MobileNetV3Config),
}


def build_encoder(
    name: str,
    pretrained_weights: str | Path | Mapping[str, mx.array] | None = None,
    **config: object,
) -> nn.Module:
    """Build the frozen encoder ``name`` (``mobilenet_v2`` or ``mobilenet_v3_large``).

    Args:
        name: registry name.
        pretrained_weights: converted safetensors (a path, or the architecture name to use
            ``mlx_hdr.weights.converted_path(name)``) or a ``{key: array}`` dict with
            torchvision's keys in MLX layout. ``None`` keeps the random initialisation
            (e.g. before loading a saved model that contains the encoder).
        **config: fields of the model's config dataclass (e.g. ``width_mult``).

    Raises ``ValueError`` for an unknown name and ``WeightsError`` for missing/mismatched
    weights. BatchNorm is not folded here, so the parameter keys stay torchvision's; call
    ``mlx_hdr.models.layers.fuse_batchnorm`` on an inference-only copy if wanted.
    """
    if name not in ENCODERS:
        raise ValueError(f"unknown encoder {name!r} (choose from {', '.join(ENCODERS)})")
    model_cls, config_cls = ENCODERS[name]
    model = model_cls(config_cls(**config))
    if pretrained_weights is not None:
        load_strict(model, pretrained_weights, name)
    model.freeze()
    return model
