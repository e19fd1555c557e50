"""Padding, tiling (tiled == whole-image), and the predict pipeline on random MLX networks."""

from __future__ import annotations

import mlx.core as mx  # noqa: I001
import mlx.nn as nn
import numpy as np
import pytest

import mlx_hdr  # noqa: F401  (before mlx)
from mlx_hdr.inference import (
    feather,
    pad_to_multiple,
    predict_hdr,
    predict_target,
    tile_starts,
)


def local_net(seed: int = 0) -> nn.Module:
    """Three 3x3 convs: receptive radius 3, no global operation."""
    mx.random.seed(seed)
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.Tanh(),
        nn.Conv2d(8, 8, 3, padding=1),
        nn.Tanh(),
        nn.Conv2d(8, 3, 3, padding=1),
        nn.Tanh(),
    )
    mx.eval(net.parameters())
    return net


class GlobalNet(nn.Module):
    """A local net plus a per-image mean term (like InstanceNorm), so tiles see other stats."""

    def __init__(self):
        super().__init__()
        self.local = local_net(1)

    def __call__(self, x):
        return mx.tanh(self.local(x) + 0.2 * x.mean(axis=(1, 2), keepdims=True)[..., :3])


def image(h: int, w: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    smooth = rng.uniform(0, 1, (h // 8 + 2, w // 8 + 2, 3)).astype(np.float32)
    big = np.kron(smooth, np.ones((8, 8, 1), np.float32))[:h, :w]
    return np.clip(big + rng.normal(0, 0.03, (h, w, 3)), 0, 1).astype(np.float32)


@pytest.mark.parametrize(("h", "w"), [(37, 50), (5, 3), (64, 96), (33, 1)])
def test_pad_to_multiple(h, w):
    img = image(max(h, 8), max(w, 8))[:h, :w]
    out = pad_to_multiple(img)
    assert out.shape[0] % 32 == 0 and out.shape[1] % 32 == 0
    assert out.shape[0] - h < 32 and out.shape[1] - w < 32
    np.testing.assert_array_equal(out[:h, :w], img)


def test_tile_starts_cover_and_overlap():
    starts = tile_starts(1000, 256, 64)
    assert starts[0] == 0 and starts[-1] + 256 == 1000
    assert all(b - a <= 256 - 64 for a, b in zip(starts, starts[1:], strict=False))
    assert tile_starts(100, 256, 64) == [0]


def test_feather_weights():
    w = feather(64, 32, start_edge=False, end_edge=False)
    assert w[:8].max() == 0 and w[-8:].max() == 0 and w[24:40].min() == 1
    assert np.all(feather(64, 32, True, True) == 1)


def test_tiled_equals_whole_for_a_local_net():
    net, ldr = local_net(), image(150, 200)
    whole = predict_target(net, ldr)
    tiled = predict_target(net, ldr, whole_pixels=0, tile=64, overlap=32)
    assert tiled.shape == (150, 200, 3)
    np.testing.assert_allclose(tiled, whole, atol=1e-5)


def test_tiled_close_to_whole_for_a_net_with_global_statistics():
    net, ldr = GlobalNet(), image(150, 200, 1)
    whole = predict_target(net, ldr)
    tiled = predict_target(net, ldr, whole_pixels=0, tile=64, overlap=32)
    diff = tiled - whole
    assert np.abs(diff).mean() < 0.04 and np.abs(diff).max() < 0.15
    # no seams: the difference changes by at most ~0.02 between neighbouring pixels
    # (a hard tile edge would jump by the full tile-to-tile offset, up to 0.15)
    assert np.abs(np.diff(diff, axis=0)).max() < 0.02
    assert np.abs(np.diff(diff, axis=1)).max() < 0.02


def test_odd_shapes_and_hdr_output():
    net = local_net()
    for h, w in [(37, 700), (5, 3)]:
        out = predict_target(net, image(max(h, 8), w)[:h], whole_pixels=0, tile=128, overlap=32)
        assert out.shape == (h, w, 3) and np.abs(out).max() <= 1
    ldr = image(40, 60)
    hdr = predict_hdr(ldr, net)
    assert hdr.shape == ldr.shape and np.isfinite(hdr).all() and hdr.min() >= 0
    with pytest.raises(ValueError, match="needs a network"):
        predict_hdr(ldr, None)
    np.testing.assert_allclose(predict_hdr(ldr, method="linear"), mlx_hdr.color.srgb_to_linear(ldr))


def test_batch_on_streams_equals_one_pass():
    """_run puts each image of a batch on its own CPU stream: same result as one pass."""
    from mlx_hdr.inference import _run

    net = GlobalNet()
    batch = np.stack([image(64, 96, s) for s in range(3)])
    one = np.asarray(net(mx.array(batch)))
    np.testing.assert_allclose(_run(net, batch), one, rtol=0, atol=1e-6)
