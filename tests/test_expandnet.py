"""ExpandNet port (``mlx_hdr.infer.methods.expandnet2018``) vs a PyTorch run of the release.

The fixture ``expandnet_candleglass.npz`` comes from ``scripts/expandnet_reference.py`` (torch
2.14, the released ``weights.pth``, a 45x61 crop of eval-public ``ilm_candleglass`` with clipped
pixels). Measured agreement: 9e-7 absolute on the sigmoid outputs, 6e-5 on global features of
magnitude up to 123. The output tolerance is tight enough to catch SELU with MLX's rounded
constants (9e-6) and the global branch resized with ``align_corners=True`` (4e-2).
"""

from __future__ import annotations

import importlib
from pathlib import Path

import cv2
import mlx.core as mx
import numpy as np
import pytest
from mlx.utils import tree_flatten

from mlx_hdr.color import srgb_to_linear
from mlx_hdr.errors import WeightsError

# The module, not the function that ``mlx_hdr.infer.methods`` may re-export under the same name.
en = importlib.import_module("mlx_hdr.infer.methods.expandnet2018")

FIXTURE = Path(__file__).parent / "fixtures" / "expandnet_candleglass.npz"
ATOL = 4e-6  # on outputs in (0, 1)


@pytest.fixture(scope="module")
def reference() -> dict[str, np.ndarray]:
    with np.load(FIXTURE) as data:
        return dict(data)


@pytest.fixture(scope="module")
def weights(shared) -> Path:
    return shared / "peers" / "expandnet" / "weights.pth"


@pytest.fixture
def random_model(monkeypatch) -> en.ExpandNet:
    """A randomly initialised ExpandNet standing in for the loaded one (no weights needed)."""
    mx.random.seed(7)
    model = en.ExpandNet(en.ExpandNetConfig(tile=16))
    mx.eval(model.parameters())
    monkeypatch.setattr(en, "load_expandnet", lambda weights=None: model)
    return model


@pytest.mark.parametrize("dilation", [1, 2])
@pytest.mark.parametrize("size", [(9, 9), (13, 10)])
def test_conv2d_im2col_matches_conv2d(dilation, size):
    mx.random.seed(dilation)
    x = mx.random.normal((2, *size, 5))
    w = mx.random.normal((4, 3, 3, 5)) * 0.3
    ref = mx.conv2d(x, w, padding=dilation, dilation=dilation)
    out = en.conv2d_im2col(x, w, padding=dilation, dilation=dilation)
    assert out.shape == ref.shape
    np.testing.assert_allclose(np.array(out), np.array(ref), rtol=0, atol=1e-5)


@pytest.mark.parametrize("size", [(256, 256), (17, 23), (45, 45)])
def test_resize_bilinear_matches_opencv(size):
    # OpenCV's float INTER_LINEAR uses the same half-pixel mapping and clamping as torch.
    img = np.random.default_rng(0).random((45, 61, 3), dtype=np.float32)
    ref = cv2.resize(img, size[::-1], interpolation=cv2.INTER_LINEAR)
    out = np.array(en.resize_bilinear(mx.array(img[None]), size))[0]
    np.testing.assert_allclose(out, ref, rtol=0, atol=1e-5)


def test_matches_torch_reference(reference, weights):
    model = en.load_expandnet(weights)
    assert en.load_expandnet(str(weights)) is model  # cached
    x = mx.array(en.map_range(reference["ldr"].astype(np.float32))[None])
    glob = np.array(model.global_features(x)).reshape(-1)
    np.testing.assert_allclose(glob, reference["glob"], rtol=0, atol=5e-4)
    np.testing.assert_allclose(np.array(model(x))[0], reference["forward"], rtol=0, atol=ATOL)
    # The torch predict used 32 px patches; ours 256 px tiles: the result must not care.
    np.testing.assert_allclose(model.predict(x)[0], reference["predict"], rtol=0, atol=ATOL)
    assert np.abs(reference["predict"] - reference["forward"]).max() > 10 * ATOL  # border


def test_expandnet2018_reproduces_released_pipeline(reference, weights, monkeypatch):
    ldr = reference["ldr"].astype(np.float32) / 255.0
    out = en.expandnet2018(ldr, weights)
    assert out.shape == ldr.shape and out.dtype == np.float32
    np.testing.assert_allclose(out, reference["expand"], rtol=0, atol=ATOL)
    monkeypatch.setenv(en.ENV_WEIGHTS, str(weights))
    np.testing.assert_array_equal(en.expandnet2018(ldr), out)


def test_predict_tiles_are_exact(random_model):
    x = mx.random.uniform(shape=(1, 37, 29, 3))
    tiled = random_model.predict(x)  # 16 px tiles: 3 x 2 of them
    random_model.cfg.tile = 256
    whole = random_model.predict(x)
    np.testing.assert_allclose(tiled, whole, rtol=0, atol=1e-6)
    # Beyond the 8 px receptive field the zero-padded margin cannot matter.
    forward = np.array(random_model(x))
    np.testing.assert_allclose(tiled[:, 8:-8, 8:-8], forward[:, 8:-8, 8:-8], rtol=0, atol=1e-6)


def test_expandnet2018_inputs(random_model):
    grey = np.random.default_rng(1).random((20, 18), dtype=np.float32)
    out = en.expandnet2018(grey)
    assert out.shape == (20, 18, 3) and out.min() == 0.0 and out.max() == 1.0
    np.testing.assert_array_equal(out, en.expandnet2018(np.repeat(grey[..., None], 3, -1)))
    np.testing.assert_array_equal(out, en.expandnet2018(grey[..., None]))
    with pytest.raises(ValueError, match="HxWx3"):
        en.expandnet2018(np.zeros((4, 4, 4), np.float32))
    for level in (0.0, 0.5):  # flat: the release's min-max would make it white
        flat = np.full((9, 7, 3), level, np.float32)
        np.testing.assert_array_equal(en.expandnet2018(flat), srgb_to_linear(flat))


def test_missing_weights_errors(monkeypatch, tmp_path):
    monkeypatch.delenv(en.ENV_WEIGHTS, raising=False)
    with pytest.raises(WeightsError, match=en.ENV_WEIGHTS):
        en.expandnet2018(np.zeros((8, 8, 3), np.float32))
    missing = tmp_path / "nope.pth"
    monkeypatch.setenv(en.ENV_WEIGHTS, str(missing))
    with pytest.raises(WeightsError, match="not found") as info:
        en.load_expandnet()
    assert info.value.path == str(missing)


def test_bad_weights_errors(monkeypatch, tmp_path):
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"\x80\x02not a checkpoint")
    with pytest.raises(WeightsError) as info:
        en.load_expandnet(junk)
    assert info.value.path == str(junk) and "\n" not in str(info.value)
    good = {k: np.zeros(v, np.float32) for k, v in _torch_shapes().items()}
    del good["end_net.1.bias"]
    good["glob_net.6.weight"] = np.zeros((64, 64, 3, 3), np.float32)
    partial = tmp_path / "partial.pth"
    partial.write_bytes(b"stand-in")
    monkeypatch.setattr(en, "load_torch_checkpoint", lambda path: good)
    with pytest.raises(WeightsError, match="1 missing .*1 with wrong shape") as info:
        en.load_expandnet(partial)
    assert info.value.path == str(partial)


def _torch_shapes() -> dict[str, tuple[int, ...]]:
    """The released state dict's shapes (torch layout), from the MLX model's parameters."""
    out = {}
    for key, value in tree_flatten(en.ExpandNet().parameters()):
        o, *rest = value.shape
        out[key] = (o, rest[-1], *rest[:-1]) if len(rest) == 3 else tuple(value.shape)
    assert len(out) == 30
    return out
