"""Calibration: network output in [-1, 1] -> scene-linear HDR with 1.0 = the input's white.

The network predicts t = 2 (log1p(H) - lo) / (hi - lo + eps) - 1 with unknown per-image lo, hi
(``color.hdr_to_target`` on the HDR scaled so the input clips at 1.0). Where the input is well
exposed, H ~ srgb_to_linear(input), so lo and hi follow from a least-squares line fit

    log1p(srgb_to_linear(I)) ~ lo + (t + 1) / 2 * (hi - lo)

over every channel of the pixels whose display channels all lie in [0.05, 0.85] (above the
noise/JPEG floor, below the start of the highlight roll-off and the blend ramp). One refit drops
outliers beyond 3 MADs (e.g. where the network hallucinates). With fewer than
``MIN_PIXELS`` such pixels, lo is fixed at 0 (log1p of black) and only hi is fitted; with none at
all, hi = log1p(2^4) (four stops above white). hi - lo is kept >= ``MIN_SPAN``.
"""

from __future__ import annotations

import numpy as np

from mlx_hdr.color import EPS, clip_mask, srgb_to_linear, target_to_hdr

DISPLAY_BAND = (0.05, 0.85)
MIN_PIXELS = 64
MIN_SPAN = 0.05
FALLBACK_HI = float(np.log1p(16.0))
BLEND_TAU = 0.95


def _line_fit(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Least-squares intercept a and slope b of y ~ a + b x (slope 0 if x is constant)."""
    xm, ym = x.mean(), y.mean()
    var = float(np.mean((x - xm) ** 2))
    b = float(np.mean((x - xm) * (y - ym)) / var) if var > 1e-12 else 0.0
    return float(ym - b * xm), b


def _robust_fit(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    a, b = _line_fit(x, y)
    resid = y - (a + b * x)
    mad = float(np.median(np.abs(resid - np.median(resid)))) + 1e-9
    keep = np.abs(resid) <= 3.0 * 1.4826 * mad
    return _line_fit(x[keep], y[keep]) if keep.sum() >= MIN_PIXELS else (a, b)


def fit_log_range(
    ldr: np.ndarray, target: np.ndarray, band: tuple[float, float] = DISPLAY_BAND
) -> tuple[float, float]:
    """Fit the per-image log1p range (lo, hi) of a prediction.

    Args:
        ldr: HxWx3 display input in [0, 1].
        target: HxWx3 network output in [-1, 1] for that input.
        band: display range every channel of a pixel must lie in to be used.
    Returns:
        ``(lo, hi)`` floats with lo >= 0 and hi - lo >= ``MIN_SPAN``.
    """
    ldr = np.asarray(ldr, np.float32)
    good = np.all((ldr >= band[0]) & (ldr <= band[1]), axis=-1)
    y = np.log1p(srgb_to_linear(ldr[good])).ravel()
    x = ((np.asarray(target, np.float32)[good] + 1.0) * 0.5).ravel()
    if good.sum() >= MIN_PIXELS:
        lo, slope = _robust_fit(x, y)
        hi = lo + slope
    elif x.size and float(x @ x) > 1e-12:
        lo, hi = 0.0, float(x @ y / (x @ x))  # y ~ x * hi through the origin
    else:
        lo, hi = 0.0, FALLBACK_HI
    lo = max(lo, 0.0)
    return lo, max(hi, lo + MIN_SPAN)


def blend_with_input(ldr: np.ndarray, hdr: np.ndarray, tau: float = BLEND_TAU) -> np.ndarray:
    """Keep the linearised input where it is well exposed, the prediction where it clips.

    H_out = (1 - a) L + a max(H_pred, L) with L = srgb_to_linear(I) and
    a = ``color.clip_mask(I, tau)``. The floor holds because a clipped pixel's radiance is
    at least what the camera recorded: a prediction below it is never an improvement.
    """
    alpha = clip_mask(ldr, tau)
    lin = srgb_to_linear(ldr)
    return ((1.0 - alpha) * lin + alpha * np.maximum(hdr, lin)).astype(np.float32)


def calibrate(
    ldr: np.ndarray, target: np.ndarray, blend: bool = True, tau: float = BLEND_TAU
) -> np.ndarray:
    """Network output -> scene-linear HDR (HxWx3 float32 >= 0, 1.0 = the input's white).

    Args:
        ldr: HxWx3 display input in [0, 1].
        target: HxWx3 network output in [-1, 1].
        blend: replace well-exposed pixels by the linearised input (HDRCNN-style mask).
        tau: display level where the blend starts.
    """
    lo, hi = fit_log_range(ldr, target)
    # target_to_hdr adds EPS to the span; remove it so the fitted line is reproduced exactly
    hdr = target_to_hdr(target, lo, hi - EPS)
    return blend_with_input(ldr, hdr, tau) if blend else hdr
