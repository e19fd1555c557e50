"""Backbones against torchvision: real MobileNetV2 weights, MobileNetV3 fixture."""

from __future__ import annotations

from pathlib import Path

import mlx.core as mx
import numpy as np
import pytest
from mlx.utils import tree_flatten, tree_unflatten
from PIL import Image
from skimage import data

from mlx_hdr.color import IMAGENET_MEAN, IMAGENET_STD
from mlx_hdr.convert.convert import convert_checkpoint
from mlx_hdr.convert.mapping import load_spec, map_state_dict
from mlx_hdr.errors import WeightsError
from mlx_hdr.models.encoders import build_encoder
from mlx_hdr.models.mobilenetv2 import MobileNetV2
from mlx_hdr.models.mobilenetv3 import MobileNetV3Config, MobileNetV3Large
from mlx_hdr.models.model_io import load_strict

FIXTURES = Path(__file__).resolve().parent / "fixtures"

# ../shared/weights/README.md, computed with PyTorch + torchvision.
V2_REFERENCE = {
    "chelsea": [(285, 0.7451), (282, 0.1361), (281, 0.0912)],
    "coffee": [(967, 0.9907), (968, 0.0061), (504, 0.0012)],
}


def _imagenet_input(img: np.ndarray) -> mx.array:
    x = np.asarray(Image.fromarray(img).resize((224, 224), Image.BILINEAR), np.float32) / 255
    return mx.array(((x - IMAGENET_MEAN) / IMAGENET_STD)[None])


@pytest.fixture(scope="module")
def v2_weights(shared, tmp_path_factory):
    src = shared / "weights/mobilenet_v2-b0353104.pth"
    return convert_checkpoint("mobilenet_v2", src, tmp_path_factory.mktemp("v2"))


@pytest.fixture(scope="module")
def mobilenet_v2(v2_weights):
    return load_strict(MobileNetV2(), v2_weights, "mobilenet_v2")


@pytest.mark.parametrize("name", ["chelsea", "coffee"])
def test_mobilenet_v2_classifies_like_torchvision(mobilenet_v2, name):
    probs = np.array(mx.softmax(mobilenet_v2(_imagenet_input(getattr(data, name)())), -1)[0])
    top3 = np.argsort(-probs)[:3]
    assert [int(i) for i, _ in V2_REFERENCE[name]] == top3.tolist()
    expected = np.array([p for _, p in V2_REFERENCE[name]])
    # The table has 4 decimals: 5e-5 rounding on top of 1e-4 (measured: at most 3.8e-5 in
    # all; ReLU for ReLU6 moves these by 9e-4 and 4.9e-3).
    np.testing.assert_allclose(probs[top3], expected, atol=1e-4 + 5e-5)


def test_mobilenet_v2_features_at(mobilenet_v2):
    x = mx.random.normal((1, 64, 96, 3))
    feats = mobilenet_v2.features_at(x)
    assert [f.shape[-1] for f in feats] == list(mobilenet_v2.feature_channels)
    assert mobilenet_v2.feature_channels == (16, 24, 32, 96, 1280)
    assert [f.shape[1:3] for f in feats] == [(64 // s, 96 // s) for s in (2, 4, 8, 16, 32)]


@pytest.fixture(scope="module")
def v3_fixture():
    path = FIXTURES / "mobilenet_v3_large_w050.npz"
    with np.load(path) as npz:
        return {k: npz[k] for k in npz.files}


def test_mobilenet_v3_large_matches_torchvision(v3_fixture):
    """Fixture from scripts/make_v3_fixture.py: torchvision's model, random weights."""
    state = {
        k[6:]: q.astype(np.float32) * v3_fixture[f"scale/{k[6:]}"]
        for k, q in v3_fixture.items()
        if k.startswith("state/")
    }
    weights = map_state_dict("mobilenet_v3_large", state)
    cfg = MobileNetV3Config(
        width_mult=float(v3_fixture["width_mult"]), num_classes=int(v3_fixture["num_classes"])
    )
    model = load_strict(MobileNetV3Large(cfg), {k: mx.array(v) for k, v in weights.items()})
    x = mx.array(v3_fixture["input"])
    feats = model.features_at(x)
    assert len(feats) == 5
    assert model.feature_channels == tuple(f.shape[-1] for f in feats)
    refs = [v3_fixture[f"feature_{i}"] for i in range(5)] + [v3_fixture["logits"]]
    for out, ref in zip([*feats, model(x)], refs, strict=True):
        assert out.shape == ref.shape
        # float32 accumulation-order differences, relative to the map's scale.
        np.testing.assert_allclose(np.array(out), ref, rtol=0, atol=1e-5 * np.abs(ref).max())


def test_mobilenet_v3_large_full_width_layout():
    model = MobileNetV3Large()
    keys = dict(tree_flatten(model.parameters()))
    assert model.feature_channels == (16, 24, 40, 112, 960)
    # The converter's spec is torchvision's full-size state dict in MLX layout.
    assert {k: tuple(v.shape) for k, v in keys.items()} == load_spec("mobilenet_v3_large")
    n_params = sum(v.size for k, v in keys.items() if "running" not in k)
    assert n_params == 5_483_032  # torchvision's documented parameter count
    feats = model.features_at(mx.zeros((1, 64, 32, 3)))
    assert [f.shape[1:3] for f in feats] == [(64 // s, 32 // s) for s in (2, 4, 8, 16, 32)]


def test_build_encoder_is_frozen_and_pretrained(v2_weights, mobilenet_v2):
    encoder = load_strict(build_encoder("mobilenet_v2"), v2_weights, "mobilenet_v2")
    assert tree_flatten(encoder.trainable_parameters()) == []
    x = mx.random.normal((1, 64, 64, 3))
    expected = [np.array(f) for f in mobilenet_v2.features_at(x)]
    encoder.train()  # a parent model in training mode must not change BatchNorm
    for out, ref in zip(encoder.features_at(x), expected, strict=True):
        np.testing.assert_array_equal(np.array(out), ref)

    # A decoder weight gets gradients through stop_gradient'ed features; the input too.
    def loss(w, x_):
        return sum((mx.stop_gradient(f) * w).sum() for f in encoder.features_at(x_))

    grad_w = mx.grad(loss)(mx.array(1.0), x)
    assert np.isfinite(grad_w.item()) and grad_w.item() != 0
    grad_x = mx.grad(lambda x_: encoder.features_at(x_)[2].sum())(x)
    assert np.isfinite(np.array(grad_x)).all() and mx.abs(grad_x).max().item() > 0


def test_build_encoder_v3_and_errors():
    encoder = build_encoder("mobilenet_v3_large", width_mult=0.5)
    assert encoder.feature_channels == (8, 16, 24, 56, 480)
    assert tree_flatten(encoder.trainable_parameters()) == []
    with pytest.raises(ValueError, match="unknown encoder"):
        build_encoder("resnet50")
    with pytest.raises(WeightsError, match="missing"):
        load_strict(
            build_encoder("mobilenet_v3_large"), {"features.0.0.weight": mx.zeros((16, 3, 3, 3))}
        )


@pytest.mark.parametrize("name", ["mobilenet_v2", "mobilenet_v3_large"])
def test_encoder_without_classifier_keeps_features(name):
    full = build_encoder(name, width_mult=0.5, num_classes=10)
    bare = build_encoder(name, width_mult=0.5, num_classes=0)
    params = dict(tree_flatten(full.parameters()))
    assert {k for k in params if not k.startswith("classifier.")} == set(
        dict(tree_flatten(bare.parameters()))
    )
    bare.update(tree_unflatten([(k, v) for k, v in params.items() if "classifier" not in k]))
    x = mx.random.normal((1, 64, 64, 3))
    for a, b in zip(full.features_at(x), bare.features_at(x), strict=True):
        np.testing.assert_array_equal(np.array(a), np.array(b))
    with pytest.raises(ValueError, match="no classifier"):
        bare(x)
