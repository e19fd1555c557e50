"""The L1 + LPIPS loss, the clip mask weighting, and the loss with the real LPIPS weights."""

from __future__ import annotations

import mlx.core as mx
import mlx.nn as nn
import numpy as np
import pytest

from mlx_hdr.color import clip_mask
from mlx_hdr.train.loss import hybrid_loss, weighted_l1


def test_clip_mask_is_soft_above_threshold():
    ldr = np.array([[[[0.5, 0.9, 0.2], [0.975, 0.1, 0.1], [1.0, 1.0, 1.0]]]], np.float32)
    np.testing.assert_allclose(clip_mask(ldr)[0, 0, :, 0], [0.0, 0.5, 1.0], atol=1e-6)


def test_l1_and_lpips_weights_combine():
    pred, target = mx.zeros((2, 4, 4, 3)), mx.full((2, 4, 4, 3), 0.5)
    fake_lpips = lambda a, b: mx.array([0.1, 0.3])  # noqa: E731
    total, parts = hybrid_loss(pred, target, lpips=fake_lpips, l1_weight=2, lpips_weight=3)
    assert parts["l1"].item() == pytest.approx(0.5)
    assert parts["lpips"].item() == pytest.approx(0.2)
    assert total.item() == pytest.approx(2 * 0.5 + 3 * 0.2)
    total, parts = hybrid_loss(pred, target, lpips=fake_lpips, lpips_weight=0)
    assert "lpips" not in parts and total.item() == pytest.approx(1.0)


def test_alpha_map_weights_clipped_regions():
    pred, target = mx.zeros((1, 1, 2, 1)), mx.array([[[[1.0], [0.0]]]])
    mask = mx.array([[[[1.0], [0.0]]]])  # the wrong pixel is the clipped one
    assert weighted_l1(pred, target).item() == pytest.approx(0.5)
    total, _ = hybrid_loss(pred, target, mask, l1_weight=1, lpips_weight=0, alpha_weight=3)
    assert total.item() == pytest.approx(4 / 5)  # weights 4 and 1, normalised to mean 1
    total, _ = hybrid_loss(pred, target, 1 - mask, l1_weight=1, lpips_weight=0, alpha_weight=3)
    assert total.item() == pytest.approx(1 / 5)


def test_real_lpips_loss_has_finite_decoder_gradients(shared, tmp_path):
    from test_hybrid import tiny_model

    from mlx_hdr.convert.convert import convert_checkpoint
    from mlx_hdr.models.lpips import LPIPS

    vgg = convert_checkpoint(
        "vgg16", shared / "weights" / "vgg16_features.pth", tmp_path / "v.safetensors"
    )
    lin = convert_checkpoint(
        "lpips_vgg", shared / "weights" / "lpips_v0.1_vgg.pth", tmp_path / "l.safetensors"
    )
    lpips = LPIPS.from_pretrained(vgg, lin)
    model = tiny_model()
    x = mx.random.normal((2, 32, 32, 3))
    target = mx.tanh(mx.random.normal((2, 32, 32, 3)))

    def loss_fn():
        return hybrid_loss(model(x), target, lpips=lpips)[0]

    loss, grads = nn.value_and_grad(model, loss_fn)()
    flat = [np.array(g) for _, g in nn.utils.tree_flatten(grads)]
    assert np.isfinite(loss.item()) and loss.item() > 0
    assert all(np.isfinite(g).all() for g in flat) and any(np.abs(g).sum() > 0 for g in flat)
    assert not nn.utils.tree_flatten(grads.get("encoder", {}))
    assert not nn.utils.tree_flatten(model.trainable_parameters().get("encoder", {}))
    assert not nn.utils.tree_flatten(lpips.trainable_parameters())


def test_exposure_pair_term_compares_the_changes_over_pixels_clipped_in_both():
    from mlx_hdr.train.loss import exposure_pair_l1

    rng = np.random.default_rng(0)
    target = mx.array(rng.uniform(-1, 1, (4, 3, 3, 3)).astype(np.float32))
    mask = np.zeros((4, 3, 3, 1), np.float32)
    mask[0, :2] = mask[1, 1:] = 1.0  # pair 0: row 1 clipped in both
    mask[2, 0] = mask[3, 2] = 1.0  # pair 1: nothing clipped in both
    mask = mx.array(mask)
    shift = mx.array([0.3, 0.3, -0.2, -0.2])[:, None, None, None]  # the same in each pair
    assert exposure_pair_l1(target + shift, target, mask).item() == pytest.approx(0, abs=1e-6)
    off = np.zeros((4, 3, 3, 3), np.float32)
    off[1, 1] = 0.4  # the longer photo's co-clipped row: its change is 0.4 too large
    off[1, 2] = 9.0  # clipped in the longer photo only: not compared
    off[3] = 9.0  # pair 1 has no pixel clipped in both
    got = exposure_pair_l1(target + mx.array(off), target, mask).item()
    assert got == pytest.approx(0.4 / 2, rel=1e-4)  # mean over the two pairs
    total, parts = hybrid_loss(target, target, mask, l1_weight=1, lpips_weight=0, pair_weight=2)
    assert "pair" in parts and total.item() == pytest.approx(0, abs=1e-6)
