"""Backbones against torchvision: real MobileNetV2 weights, MobileNetV3 fixture."""

from __future__ import annotations

# isort: off
import mlx_hdr  # noqa: F401  (OpenBLAS preload before mlx.core)

# isort: on
import mlx.core as mx
import numpy as np
import pytest
from mlx.utils import tree_flatten
from PIL import Image
from skimage import data

from convert import load_torch_checkpoint
from mlx_hdr.color import IMAGENET_MEAN, IMAGENET_STD
from mlx_hdr.models.mobilenetv2 import MobileNetV2

# /work/shared/weights/README.md, computed with PyTorch + torchvision.
V2_REFERENCE = {
    "chelsea": [(285, 0.7451), (282, 0.1361), (281, 0.0912)],
    "coffee": [(967, 0.9907), (968, 0.0061), (504, 0.0012)],
}


def _torch_to_mlx(state: dict[str, np.ndarray]) -> list[tuple[str, mx.array]]:
    return [
        (k, mx.array(v.transpose(0, 2, 3, 1) if v.ndim == 4 else v))
        for k, v in state.items()
        if not k.endswith("num_batches_tracked")
    ]


def _imagenet_input(img: np.ndarray) -> mx.array:
    x = np.asarray(Image.fromarray(img).resize((224, 224), Image.BILINEAR), np.float32) / 255
    return mx.array(((x - IMAGENET_MEAN) / IMAGENET_STD)[None])


@pytest.fixture(scope="module")
def mobilenet_v2(shared):
    model = MobileNetV2()
    weights = _torch_to_mlx(load_torch_checkpoint(shared / "weights/mobilenet_v2-b0353104.pth"))
    assert {k for k, _ in weights} == {k for k, _ in tree_flatten(model.parameters())}
    model.load_weights(weights, strict=True)
    return model


@pytest.mark.parametrize("name", ["chelsea", "coffee"])
def test_mobilenet_v2_classifies_like_torchvision(mobilenet_v2, name):
    probs = np.array(mx.softmax(mobilenet_v2(_imagenet_input(getattr(data, name)())), -1)[0])
    top3 = np.argsort(-probs)[:3]
    assert [int(i) for i, _ in V2_REFERENCE[name]] == top3.tolist()
    expected = np.array([p for _, p in V2_REFERENCE[name]])
    # The table has 4 decimals: 5e-5 rounding on top of the 1e-3 tolerance.
    np.testing.assert_allclose(probs[top3], expected, atol=1e-3 + 5e-5)


def test_mobilenet_v2_features_at(mobilenet_v2):
    x = mx.random.normal((1, 64, 96, 3))
    feats = mobilenet_v2.features_at(x)
    assert [f.shape[-1] for f in feats] == list(mobilenet_v2.feature_channels)
    assert mobilenet_v2.feature_channels == (16, 24, 32, 96, 1280)
    assert [f.shape[1:3] for f in feats] == [(64 // s, 96 // s) for s in (2, 4, 8, 16, 32)]
