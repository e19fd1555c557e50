"""Metric values against hand-computed numbers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mlx_hdr import color
from mlx_hdr.eval import metrics as M


def grey(value: float, h: int = 16, w: int = 16) -> np.ndarray:
    return np.full((h, w, 3), value, np.float32)


def test_psnr_hand_value():
    assert M.psnr(grey(0.0), grey(0.1), 2.0) == pytest.approx(10 * math.log10(4 / 0.01), abs=1e-4)
    assert M.psnr(grey(0.3), grey(0.3), 1.0) == math.inf


def test_log_domain_metrics_target_inputs_and_batch():
    rng = np.random.default_rng(0)
    gt = rng.uniform(-1, 1, (2, 16, 16, 3)).astype(np.float32)
    pred = gt + 0.2
    r = M.log_domain_metrics(pred, gt, inputs="target")
    assert r["l1"].shape == (2,)
    np.testing.assert_allclose(r["l1"], 0.2, atol=1e-6)
    np.testing.assert_allclose(r["psnr"], 10 * math.log10(4 / 0.04), atol=1e-4)
    assert np.all(r["ssim"] < 1.0)
    same = M.log_domain_metrics(gt[0], gt[0], inputs="target")
    assert same["ssim"] == pytest.approx(1.0) and same["l1"] == 0.0


def test_log_domain_metrics_hdr_maps_each_image_separately():
    rng = np.random.default_rng(1)
    hdr = rng.uniform(0, 5, (16, 16, 3)).astype(np.float32)
    # log1p is not scale invariant, but min-max is invariant to adding a constant in log1p
    # space: exp(log1p(h) + c) - 1 has the same target as h.
    shifted = np.expm1(np.log1p(hdr) + 0.7)
    r = M.log_domain_metrics(shifted, hdr)
    assert r["psnr"] > 60 and r["l1"] < 1e-4


def pu21_by_hand(y: float) -> float:
    p = [
        0.353487901,
        0.3734658629,
        8.277049286e-05,
        0.9062562627,
        0.09150303166,
        0.9099517204,
        596.3148142,
    ]
    yp = min(max(y, 0.005), 10000.0) ** p[3]
    return p[6] * (((p[0] + p[1] * yp) / (1 + p[2] * yp)) ** p[4] - p[5])


@pytest.mark.parametrize("y", [0.005, 1.0, 100.0, 200.0, 10000.0])
def test_pu21_encode_matches_formula(y):
    assert float(M.pu21_encode(np.array(y))) == pytest.approx(pu21_by_hand(y), rel=1e-9)


def test_pu21_clamps_to_its_range_and_is_monotonic():
    assert M.pu21_encode(np.array(0.0)) == M.pu21_encode(np.array(0.005))
    assert M.pu21_encode(np.array(1e6)) == M.pu21_encode(np.array(1e4))
    v = M.pu21_encode(np.logspace(-2, 4, 50))
    assert np.all(np.diff(v) > 0)


def test_pu21_psnr_hand_value():
    # uniform grey images of 100 and 200 cd/m^2: MSE = (P(200) - P(100))^2 per channel
    d = pu21_by_hand(200.0) - pu21_by_hand(100.0)
    expected = 10 * math.log10(256.0**2 / d**2)
    assert M.pu21_psnr(grey(100.0), grey(200.0)) == pytest.approx(expected, rel=1e-6)
    assert M.pu21_ssim(grey(100.0), grey(100.0)) == pytest.approx(1.0)


def test_mu_psnr_hand_value():
    # gt = 1 everywhere -> P99 = 1 -> tanh(1); pred = 0 -> T = 0
    t = math.log(1 + 5000 * math.tanh(1.0)) / math.log(5001)
    assert M.mu_psnr(grey(0.0), grey(1.0)) == pytest.approx(-20 * math.log10(t), rel=1e-6)


def test_align_and_highlight_error():
    rng = np.random.default_rng(2)
    gt = rng.uniform(0.1, 3, (8, 8, 3)).astype(np.float32)
    assert color.align_scale(gt / 4, gt) == pytest.approx(4.0, rel=1e-5)
    mask = np.zeros((8, 8), bool)
    mask[:2] = True
    assert M.highlight_log2_error(gt * 2, gt, mask) == pytest.approx(1.0, abs=1e-5)
    assert math.isnan(M.highlight_log2_error(gt, gt, np.zeros((8, 8), bool)))


def test_masks_hand_values():
    px = [[0.5] * 3, [0.99] * 3, [0.02] * 3, [0.99, 0.2, 0.2]]
    ldr = np.array([px], np.float32)
    # linear luminance: 0.214 (well exposed), 0.98 (too bright), 0.0015 (too dark),
    # 0.2126 * 0.98 + 0.7848 * 0.0331 = 0.234 (well exposed, though its red channel clips)
    np.testing.assert_array_equal(color.well_exposed_mask(ldr), [[True, False, False, True]])
    np.testing.assert_array_equal(M.clipped_mask(ldr), [[False, True, False, True]])


def test_hdr_metrics_perfect_and_scale_invariant():
    rng = np.random.default_rng(3)
    gt = rng.uniform(0.05, 0.6, (24, 24, 3)).astype(np.float32)
    gt[:6, :6] = 4.0  # a highlight
    from mlx_hdr.color import linear_to_srgb

    ldr = linear_to_srgb(gt)
    perfect = M.hdr_metrics(gt * 7.0, gt, ldr)
    assert perfect["highlight_log2"] == pytest.approx(0.0, abs=1e-5)
    assert perfect["pu21_psnr"] > 80 and perfect["mu_psnr"] > 80
    clipped = np.minimum(gt, 1.0)
    a, b = M.hdr_metrics(clipped, gt, ldr), M.hdr_metrics(clipped * 3.0, gt * 0.5, ldr)
    for key in ("pu21_psnr", "pu21_ssim", "mu_psnr", "highlight_log2", "log_psnr"):
        assert a[key] == pytest.approx(b[key], rel=1e-4)
    # highlight pixels are 4.0 in gt and 1.0 in the prediction: |log2(1/4)| = 2
    assert a["highlight_log2"] == pytest.approx(2.0, abs=1e-3)


@pytest.mark.parametrize("bad", [np.inf, np.nan])
def test_one_bad_pixel_makes_every_metric_nan_not_some(bad):
    rng = np.random.default_rng(3)
    gt = rng.uniform(0.05, 0.6, (24, 24, 3)).astype(np.float32)
    gt[:6, :6] = 4.0
    from mlx_hdr.color import linear_to_srgb

    ldr = linear_to_srgb(gt)
    pred = np.minimum(gt, 1.0)
    pred[20, 20, 1] = bad  # outside the clipped patch
    for scores in (M.hdr_metrics(pred, gt, ldr), M.hdr_metrics(gt, pred, ldr)):
        assert scores.keys() == M.hdr_metrics(gt, gt, ldr).keys()
        assert all(np.isnan(v) for v in scores.values()), scores


@pytest.mark.parametrize("shape", [(1, 1), (2, 3), (1, 64), (3, 3)])
def test_hdr_metrics_on_tiny_images(shape):
    # below 3 px skimage's SSIM divided by zero, which ended `evaluate` with a traceback
    rng = np.random.default_rng(0)
    gt = rng.uniform(0.05, 2.0, (*shape, 3)).astype(np.float32)
    from mlx_hdr.color import linear_to_srgb

    m = M.hdr_metrics(np.minimum(gt, 1.0), gt, linear_to_srgb(gt))
    assert math.isfinite(m["pu21_psnr"]) and math.isfinite(m["log_psnr"])
    tiny = min(shape) < 3
    assert math.isnan(m["pu21_ssim"]) == tiny and math.isnan(m["log_ssim"]) == tiny


def test_metrics_do_not_depend_on_the_scale_a_truth_or_prediction_is_stored_at():
    """A truth (or a prediction) stored at 1e-12 of its scale scored as if stored at 1: the
    alignment had left out luminances below 1e-8 and fallen back to a factor of 1."""
    from mlx_hdr.color import linear_to_srgb
    from mlx_hdr.eval.metrics import hdr_metrics

    rng = np.random.default_rng(0)
    gt = rng.uniform(0.02, 0.8, (32, 40, 3)).astype(np.float32)
    gt[:8, :8] = 6.0
    ldr = linear_to_srgb(gt)
    pred = np.minimum(gt, 1.0) * 1.5
    base = hdr_metrics(pred, gt, ldr)
    for k in (1e-12, 1e-9, 1e6):
        for p, g in ((pred, gt * np.float32(k)), (pred * np.float32(k), gt)):
            other = hdr_metrics(p, g, ldr)
            for name in ("pu21_psnr", "highlight_log2", "log_psnr", "log_ssim"):
                assert other[name] == pytest.approx(base[name], rel=1e-4, abs=1e-4), (k, name)
