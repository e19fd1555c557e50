"""LPIPS v0.1 (VGG16) against the official ``lpips`` package's values on its examples."""

from __future__ import annotations

import mlx.core as mx
import numpy as np
import pytest
from PIL import Image

from mlx_hdr import backend
from mlx_hdr.convert.convert import convert_checkpoint
from mlx_hdr.errors import WeightsError
from mlx_hdr.models.lpips import LPIPS

# ../shared/weights/README.md: official lpips 0.1.4, net="vgg", v0.1.
REFERENCE = {"ex_p0": 0.568613, "ex_p1": 0.421664}


@pytest.fixture(scope="module")
def converted(shared, tmp_path_factory):
    out = tmp_path_factory.mktemp("lpips")
    weights = shared / "weights"
    vgg = convert_checkpoint("vgg16", weights / "vgg16_features.pth", out / "vgg16.safetensors")
    lin = convert_checkpoint("lpips_vgg", weights / "lpips_v0.1_vgg.pth", out / "lin.safetensors")
    return vgg, lin


@pytest.fixture(scope="module")
def lpips(converted):
    """LPIPS as training uses it: accelerated for the CPU when the tests run there."""
    return backend.accelerate(LPIPS.from_pretrained(*converted))


def _read(shared, name: str) -> mx.array:
    img = Image.open(shared / "data/lpips-examples" / f"{name}.png").convert("RGB")
    return mx.array(np.asarray(img, np.float32)[None] / 127.5 - 1.0)


def test_lpips_matches_official_package(lpips, shared):
    ref = _read(shared, "ex_ref")
    others = mx.concatenate([_read(shared, name) for name in REFERENCE])
    dist = np.array(lpips(mx.concatenate([ref, ref]), others))
    assert dist.shape == (2,)
    np.testing.assert_allclose(dist, list(REFERENCE.values()), atol=1e-4)
    assert lpips(ref, ref).item() == 0.0


def test_lpips_gradient_matches_directional_derivative(lpips, shared):
    # Per-pixel differences hit ReLU/max-pool kinks of the 8-bit images; the directional
    # derivative along the gradient is smooth. (The gradient also equals PyTorch's lpips
    # gradient to 2e-8, checked once with torch, not in CI.)
    x = _read(shared, "ex_ref")[:, :32, :32]
    y = _read(shared, "ex_p0")[:, :32, :32]
    grad = mx.grad(lambda a: lpips(a, y).sum())(x)
    norm = mx.sqrt((grad * grad).sum()).item()
    assert np.isfinite(np.array(grad)).all() and norm > 0
    step = 1e-2
    decrease = lpips(x, y).item() - lpips(x - step * grad / norm, y).item()
    np.testing.assert_allclose(decrease / step, norm, rtol=0.05)


def test_lpips_rejects_swapped_weight_files(converted):
    vgg, lin = converted
    with pytest.raises(WeightsError, match="lpips_vgg"):
        LPIPS.from_pretrained(lin, vgg)


def test_lpips_winograd_path_matches_flat_convs(lpips, shared, monkeypatch):
    """The CPU's Winograd convs (VGG's wide layers at 64²: conv2-conv4) give the same LPIPS
    value (1e-6) and gradient (1e-4 of its largest entry) as the direct convs."""
    from mlx_hdr.backend import cpu

    calls = []
    real = cpu.conv3x3_winograd
    monkeypatch.setattr(cpu, "conv3x3_winograd", lambda *a: calls.append(1) or real(*a))
    x, y = _read(shared, "ex_ref"), _read(shared, "ex_p0")

    def value_and_grad():
        value, grad = mx.value_and_grad(lambda a: lpips(a, y).sum())(x)
        return value.item(), np.array(grad)

    v_wino, g_wino = value_and_grad()
    assert len(calls) == (16 if mx.default_device() == mx.cpu else 0)  # 8 layers, x and y
    monkeypatch.setenv("MLX_HDR_WINOGRAD", "0")
    v_flat, g_flat = value_and_grad()
    assert abs(v_wino - v_flat) < 1e-6
    scale = np.abs(g_flat).max()
    np.testing.assert_allclose(g_wino, g_flat, rtol=0, atol=1e-4 * scale)


def test_layer_distance_gradient_matches_autodiff_of_the_lpips_form():
    """The hand-written VJP of one LPIPS layer equals autodiff of the lpips package's form
    (normalise, difference, square, 1×1 lin, mean) for a, b and w, element by element to
    1e-4; the value to 1e-6. Includes all-zero feature vectors."""
    from mlx_hdr.models.lpips import layer_distance, normalize_channels

    mx.random.seed(4)
    a = mx.maximum(mx.random.normal((2, 6, 5, 8)), 0.0)
    b = mx.maximum(mx.random.normal((2, 6, 5, 8)), 0.0)
    a[:, 0, 0, :] = 0.0
    w = mx.random.uniform(0.0, 1.0, (8,))
    cot = mx.array([0.7, -1.3])

    def reference(a, b, w):
        d = (normalize_channels(a) - normalize_channels(b)) ** 2
        return (d @ w[:, None]).mean(axis=(1, 2, 3))

    out, grads = mx.vjp(layer_distance, [a, b, w], [cot])
    ref, ref_grads = mx.vjp(reference, [a, b, w], [cot])
    np.testing.assert_allclose(np.array(out[0]), np.array(ref[0]), rtol=1e-6)
    # element-wise: the all-zero pixels' gradients are ~1e10 (1 / EPS), the others O(1)
    for g, r in zip(grads, ref_grads, strict=True):
        np.testing.assert_allclose(np.array(g), np.array(r), rtol=1e-4, atol=1e-6)
