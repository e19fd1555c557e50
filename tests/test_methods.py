"""Classical LDR -> HDR operators against their papers' formulas on tiny arrays."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mlx_hdr.infer.methods import (
    METHODS,
    akyuz2007,
    default_methods,
    get_method,
    kovaleski2014,
    masia2017,
)
from mlx_hdr.infer.methods.kovaleski2014 import BLACK, cross_bilateral_grid, expand_map
from mlx_hdr.infer.methods.masia2017 import masia2017_gamma

HALF = ((0.5 + 0.055) / 1.055) ** 2.4  # sRGB EOTF of 0.5 = 0.21404


def greys(*values: float) -> np.ndarray:
    return np.array([[[v, v, v] for v in values]], np.float32)


def test_akyuz2007_linear_and_gamma():
    ldr = greys(0.0, 0.5, 1.0)
    np.testing.assert_allclose(akyuz2007(ldr)[0, :, 0], [0.0, HALF, 1.0], atol=1e-5)
    np.testing.assert_allclose(akyuz2007(ldr, gamma=2.0)[0, :, 0], [0, HALF**2, 1], atol=1e-5)
    # normalisation by (L - L_min) / (L_max - L_min), times the peak k
    out = akyuz2007(greys(0.5, 1.0), peak=10.0)[0, :, 0]
    np.testing.assert_allclose(out, [0.0, 10.0], atol=1e-5)


def test_masia2017_gamma_hand_values():
    # constant 0.5: key = 0.5 (no range), p_ov = 0
    g = 2.4379 + 0.2319 * math.log(0.5 + 1e-6) - 1.1228 * 0.5
    assert masia2017_gamma(np.full((4, 4), 0.5)) == pytest.approx(g, abs=1e-6)
    # half 0.01, half 1.0: L_H = 0.1, key = 0.5, p_ov = 50 %
    lum = np.array([0.01] * 50 + [1.0] * 50).reshape(10, 10)
    g = 2.4379 + 0.2319 * math.log(0.1) - 1.1228 * 0.5 + 0.0085 * 50
    assert masia2017_gamma(lum) == pytest.approx(g, abs=1e-4)
    # 2% black (a letterbox) moves only L_H and p_ov: L_min is the darkest lit level
    # (as the HDR Toolbox's imKey takes it), not the 1e-6 floor
    lum = np.array([0.0] * 2 + [0.01] * 49 + [1.0] * 49).reshape(10, 10)
    l_h = math.exp(np.mean(np.log(lum + 1e-6)))
    key = (math.log(l_h) - math.log(0.01)) / (math.log(1.0) - math.log(0.01))
    g = 2.4379 + 0.2319 * math.log(l_h) - 1.1228 * key + 0.0085 * 49
    assert masia2017_gamma(lum) == pytest.approx(g, abs=1e-4)


def test_masia2017_applies_gamma_to_luminance():
    ldr = greys(0.5, 0.5, 0.5, 0.5)
    g = 2.4379 + 0.2319 * math.log(HALF + 1e-6) - 1.1228 * 0.5
    np.testing.assert_allclose(masia2017(ldr)[0, :, 0], HALF**g, rtol=1e-4)


def test_kovaleski2014_no_clipping_and_all_clipped():
    ldr = greys(0.25, 0.5)
    lin = ((np.array([0.25, 0.5]) + 0.055) / 1.055) ** 2.4
    np.testing.assert_allclose(kovaleski2014(ldr)[0, :, 0], lin * (1 - BLACK) + BLACK, rtol=1e-5)
    np.testing.assert_allclose(kovaleski2014(greys(1.0, 1.0))[0, :, 0], 4.0, rtol=1e-5)


def test_kovaleski2014_expand_map_spreads_but_stops_at_edges():
    flat = np.full((20, 20, 3), 0.6, np.float32)
    flat[:, 10:] = 1.0  # clipped half, guide differs by 0.4 > sigma_r ...
    e_edge = expand_map(flat)
    assert e_edge[:, :8].max() < 1.05 and e_edge[:, 12:].min() > 3.9
    same_guide = np.full((20, 20, 3), 0.99, np.float32)
    same_guide[:, 10:, 0] = 1.0  # ... while with the same brightness the boost spreads
    e_spread = expand_map(same_guide, sigma_s=1e4)
    np.testing.assert_allclose(e_spread, 1 + 3 * 0.5, atol=0.02)


def test_cross_bilateral_grid_close_to_brute_force():
    rng = np.random.default_rng(0)
    guide = np.kron(rng.uniform(0, 1, (4, 4)), np.ones((6, 6))).astype(np.float32)
    signal = rng.uniform(0, 1, (24, 24)).astype(np.float32)
    ss, sr = 4.0, 0.2
    ys, xs = np.mgrid[0:24, 0:24]
    p = np.stack([ys.ravel(), xs.ravel()], 1)
    d2 = ((p[:, None] - p[None]) ** 2).sum(-1)
    g = guide.ravel()
    wgt = np.exp(-d2 / (2 * ss**2) - (g[:, None] - g[None]) ** 2 / (2 * sr**2))
    exact = (wgt @ signal.ravel() / wgt.sum(1)).reshape(24, 24)
    approx = cross_bilateral_grid(signal, guide, ss, sr)
    assert np.abs(approx - exact).mean() < 0.03


def test_cross_bilateral_grid_in_strips_equals_one_pass():
    """Splatting and slicing strip by strip (bounded memory on large photos) changes nothing,
    including a last strip shorter than the others."""
    rng = np.random.default_rng(1)
    guide = rng.uniform(0, 1, (50, 37)).astype(np.float32)
    signal = (rng.uniform(0, 1, (50, 37)) > 0.6).astype(np.float32)
    whole = cross_bilateral_grid(signal, guide, 6.0, 0.1, rows=50)
    for rows in (1, 7, 16):
        np.testing.assert_array_equal(cross_bilateral_grid(signal, guide, 6.0, 0.1, rows), whole)


def test_registry(monkeypatch):
    classical = ["linear", "akyuz2007", "masia2017", "kovaleski2014"]
    assert set(METHODS) == {*classical, "expandnet2018"}
    # the learned peer runs by default only when its weights are configured
    monkeypatch.delenv("MLX_HDR_EXPANDNET", raising=False)
    assert default_methods() == classical
    monkeypatch.setenv("MLX_HDR_EXPANDNET", "weights.pth")
    assert default_methods() == [*classical, "expandnet2018"]
    ldr = np.random.default_rng(0).uniform(0, 1, (8, 8, 3)).astype(np.float32)
    for name in classical:
        out = get_method(name)(ldr)
        assert out.shape == ldr.shape and out.dtype == np.float32 and out.min() >= 0
    with pytest.raises(ValueError, match="unknown method"):
        get_method("banterle2006")


@pytest.mark.parametrize("method", ["linear", "kovaleski2014", "masia2017"])
def test_predict_hdr_names_a_photo_holding_nan(method):
    """Kovaleski's grid had failed on int(NaN); masia2017 gave NaN everywhere."""
    from mlx_hdr.infer.pipeline import predict_hdr

    ldr = np.full((8, 8, 3), 0.5, np.float32)
    ldr[2, 3, 0] = np.nan
    with pytest.raises(ValueError, match="NaN or inf"):
        predict_hdr(ldr, method=method)
