"""The training loss of the original hybrid-autoencoder recipe: λ_L1·L1 + λ_LPIPS·LPIPS(VGG16),
on [-1, 1] log-domain images, and an optional exposure-pair term (:func:`exposure_pair_l1`)."""

from __future__ import annotations

from collections.abc import Callable

import mlx.core as mx


def weighted_l1(pred: mx.array, target: mx.array, weight: mx.array | None = None) -> mx.array:
    """Mean |pred - target|, optionally weighted per pixel by ``weight`` (N, H, W, 1).

    Weights are normalised per image (each image's weighted mean, then the mean over the
    batch), so the loss is a mean of per-image terms: splitting a batch into shards (CPU
    streams, distributed ranks) and averaging gives the same value.
    """
    err = mx.abs(pred - target)
    if weight is None:
        return err.mean()
    per_image = (err * weight).mean(axis=(1, 2, 3)) / weight.mean(axis=(1, 2, 3))
    return per_image.mean()


def exposure_pair_l1(pred: mx.array, target: mx.array, mask: mx.array) -> mx.array:
    """How far the change of the prediction between the two photos of an exposure pair is
    from the change of the target, over the pixels clipped in both.

    pred, target: (2P, H, W, C), samples ``2p`` and ``2p + 1`` one scene at two exposures
    (``SourceBatches`` with ``pair_stops``); mask: (2P, H, W, 1) clipped regions in [0, 1].
    For a pixel clipped in both, the ``stops`` target moves with the exposure step (and the
    change of the photo's alignment, ``simulate.target_scale``), so this term asks the
    network to read how exposed a photo is, which L1 on single photos teaches only as far as
    it varies across scenes. Mean over pairs of each pair's weighted
    mean |Δpred - Δtarget| (0 for a pair with no pixel clipped in both).
    """
    n, h, w, c = pred.shape
    pairs = (n // 2, 2, h, w)
    dp = pred.reshape(*pairs, c)
    dt = target.reshape(*pairs, c)
    m = mask.reshape(*pairs, 1)
    both = m[:, 0] * m[:, 1]
    err = mx.abs((dp[:, 1] - dp[:, 0]) - (dt[:, 1] - dt[:, 0]))
    per_pair = (err * both).sum(axis=(1, 2, 3)) / (c * both.sum(axis=(1, 2, 3)) + 1e-6)
    return per_pair.mean()


def hybrid_loss(
    pred: mx.array,
    target: mx.array,
    mask: mx.array | None = None,
    *,
    l1_weight: float = 2.0,
    lpips_weight: float = 3.0,
    alpha_weight: float = 0.0,
    pair_weight: float = 0.0,
    lpips: Callable | None = None,
) -> tuple[mx.array, dict[str, mx.array]]:
    """λ_L1·L1 + λ_LPIPS·mean LPIPS for NHWC tensors in [-1, 1]; returns (total, parts).

    ``alpha_weight`` w > 0 weights L1 by 1 + w·mask (mask: clipped regions of the input,
    (N, H, W, 1) in [0, 1]); the weights are normalised to mean 1 so λ_L1 keeps its scale.
    LPIPS is skipped when ``lpips_weight`` is 0 or ``lpips`` is None. ``pair_weight`` > 0
    adds that weight times :func:`exposure_pair_l1` (the batch must be exposure pairs).
    """
    weight = None
    if alpha_weight > 0 and mask is not None:
        weight = 1.0 + alpha_weight * mask
    parts = {"l1": weighted_l1(pred, target, weight)}
    total = l1_weight * parts["l1"]
    if lpips_weight > 0 and lpips is not None:
        parts["lpips"] = lpips(pred, target).mean()
        total = total + lpips_weight * parts["lpips"]
    if pair_weight > 0 and mask is not None:
        parts["pair"] = exposure_pair_l1(pred, target, mask)
        total = total + pair_weight * parts["pair"]
    return total, parts
