"""Image-quality metrics: the log-domain metrics of the original hybrid-autoencoder recipe,
and scale-invariant HDR metrics.

All inputs are numpy float32, HWC (or NHWC where stated), RGB, scene-linear >= 0 unless said
otherwise. "Input white" units mean 1.0 = the LDR input's clipping point.

Conventions (stated once, used everywhere):

- Log domain (the design): ``color.hdr_to_target`` applied to prediction and ground truth
  separately (log1p, per-image min-max, [-1, 1]); PSNR with data range 2, SSIM from
  scikit-image with ``channel_axis=-1, data_range=2`` (its default 7x7 uniform window), L1.
- Scale-invariant metrics first align the prediction to the ground truth by one global factor:
  exp(median(log Y_gt - log Y_pred)) over well-exposed input pixels (linearised input luminance
  in [0.05, 0.85]).
- PU21 (Mantiuk & Azimi 2021), the ``banding_glare`` parameters, following the reference
  ``pu21_metric.m``: absolute units with the input's white at 200 cd/m^2, clamped to
  [0.005, 10000] cd/m^2; PU21-PSNR on the three encoded RGB channels with peak 256;
  PU21-SSIM on encoded luminance with dynamic range 256 and MATLAB ``ssim``'s Gaussian
  window (sigma 1.5, population covariance), by scikit-image: the mean over the pixels the
  window fits, where MATLAB pads by replication and averages them all (0.003-0.005 apart
  at 384x256).
- mu-PSNR as in the NTIRE 2021 HDR challenge: both images divided by the 99th percentile of
  the ground truth (all channels), bounded with tanh, mu-law T(x) = log(1 + mu x) / log(1 + mu)
  with mu = 5000, PSNR with peak 1. The challenge files were gamma-2.24 encoded and linearised
  first; ours are already linear, so that step is skipped.
- Highlight error: mean |log2 Y_pred - log2 Y_gt| (after alignment) over the pixels clipped in
  the input (max over channels of the display input >= 0.98, i.e. >= 250/255, which tolerates
  JPEG ringing around 255).
"""

from __future__ import annotations

import math

import numpy as np
from skimage.metrics import structural_similarity

from mlx_hdr.color import (
    TINY,
    align_scale,
    clipped_mask,
    hdr_to_target,
    rgb_to_luminance,
    srgb_to_linear,
    well_exposed_mask,
)

LDR_WHITE_NITS = 200.0
METRICS = ("pu21_psnr", "pu21_ssim", "mu_psnr", "highlight_log2", "log_psnr", "log_ssim", "log_l1")
PU21_BANDING_GLARE = (
    0.353487901,
    0.3734658629,
    8.277049286e-05,
    0.9062562627,
    0.09150303166,
    0.9099517204,
    596.3148142,
)
PU21_RANGE = (0.005, 10000.0)
PU21_PEAK = 256.0
MU = 5000.0


def psnr(a: np.ndarray, b: np.ndarray, data_range: float) -> float:
    """PSNR in dB, 10 log10(range^2 / MSE); inf for identical inputs."""
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(data_range**2 / mse)


def _picked(x: np.ndarray, valid: np.ndarray | None) -> np.ndarray:
    """``x``'s pixels in the HxW ``valid`` (all of ``x`` for None)."""
    return x if valid is None else x[valid]


def _ssim(
    a: np.ndarray, b: np.ndarray, data_range: float, valid: np.ndarray | None = None, **kw
) -> float:
    """skimage SSIM with the window shrunk for images smaller than 7 px; NaN below 3 px,
    where no window has the two samples a variance needs (skimage divides by zero). With
    ``valid`` (HxW bool): the mean of the SSIM map over those pixels at least half a window
    from the border (skimage's own mean leaves that border out); each window still reads
    the few pixels around its centre, so near the edge of ``valid`` some others."""
    side = min(a.shape[0], a.shape[1])
    if side < 3:
        return float("nan")
    win = min(7, side if side % 2 else side - 1)
    if kw.get("gaussian_weights"):
        win = None if side >= 11 else win  # Gaussian window is 11 px when sigma=1.5
    if valid is None:
        return float(structural_similarity(a, b, data_range=data_range, win_size=win, **kw))
    _, smap = structural_similarity(a, b, data_range=data_range, win_size=win, full=True, **kw)
    pad = ((win or 11) - 1) // 2  # skimage's crop
    keep = np.zeros_like(valid)
    keep[pad : valid.shape[0] - pad, pad : valid.shape[1] - pad] = True
    keep &= valid
    smap = smap.mean(axis=-1) if smap.ndim == 3 else smap
    return float(smap[keep].mean()) if keep.any() else float("nan")


def _log_metrics_one(
    p: np.ndarray, g: np.ndarray, valid: np.ndarray | None = None
) -> tuple[float, float, float]:
    ssim = _ssim(p, g, 2.0, valid, channel_axis=-1)
    p_v, g_v = _picked(p, valid), _picked(g, valid)
    return psnr(p_v, g_v, 2.0), ssim, float(np.mean(np.abs(p_v - g_v)))


def log_domain_metrics(
    pred: np.ndarray, gt: np.ndarray, *, inputs: str = "hdr", valid: np.ndarray | None = None
) -> dict:
    """The original recipe's PSNR / SSIM / L1 in the per-image min-max log1p domain [-1, 1].

    Args:
        pred, gt: HWC or NHWC float arrays. With ``inputs="hdr"`` they are scene-linear HDR
            (>= 0) and each is mapped with ``color.hdr_to_target`` separately; with
            ``inputs="target"`` they are already in [-1, 1] (e.g. network outputs and
            training targets) and are used as they are.
        valid: HxW bool for HWC inputs: the pixels scored, the min-max included (None: all).
    Returns:
        ``{"psnr", "ssim", "l1"}``: floats for HWC, float64 arrays of shape (N,) for NHWC.
    """
    if inputs not in ("hdr", "target"):
        raise ValueError(f"inputs must be 'hdr' or 'target', not {inputs!r}")
    p, g = np.asarray(pred), np.asarray(gt)
    if p.shape != g.shape:
        raise ValueError(f"shape mismatch: {p.shape} vs {g.shape}")
    if valid is not None and p.ndim != 3:
        raise ValueError("valid pixels are given for one HWC image")
    if inputs == "hdr":  # in float64 when given: x * 200 cd/m² may exceed float32's range
        p, g = hdr_to_target(p, valid)[0], hdr_to_target(g, valid)[0]
    p, g = p.astype(np.float32, copy=False), g.astype(np.float32, copy=False)
    if p.ndim == 3:
        return dict(zip(("psnr", "ssim", "l1"), _log_metrics_one(p, g, valid), strict=True))
    rows = np.array([_log_metrics_one(pi, gi) for pi, gi in zip(p, g, strict=True)])
    return {"psnr": rows[:, 0], "ssim": rows[:, 1], "l1": rows[:, 2]}


def pu21_encode(lum: np.ndarray, par: tuple[float, ...] = PU21_BANDING_GLARE) -> np.ndarray:
    """PU21 encoding of absolute luminance (cd/m^2), clamped to [0.005, 10000] first.

    V = p7 * (((p1 + p2 Y^p4) / (1 + p3 Y^p4))^p5 - p6), floored at 0 (Mantiuk & Azimi 2021).
    """
    p1, p2, p3, p4, p5, p6, p7 = par
    y = np.clip(np.asarray(lum, np.float64), *PU21_RANGE) ** p4
    return np.maximum(p7 * (((p1 + p2 * y) / (1 + p3 * y)) ** p5 - p6), 0.0)


def pu21_psnr(pred_nits: np.ndarray, gt_nits: np.ndarray, valid=None) -> float:
    """PU21-PSNR of absolute RGB images (cd/m^2): encoded channels, peak 256 (over the
    HxW ``valid`` pixels where given)."""
    p, g = (_picked(pu21_encode(x), valid) for x in (pred_nits, gt_nits))
    return psnr(p, g, PU21_PEAK)


def pu21_ssim(pred_nits: np.ndarray, gt_nits: np.ndarray, valid=None) -> float:
    """PU21-SSIM of absolute RGB images (cd/m^2): on encoded luminance, range 256 (over the
    HxW ``valid`` pixels where given, :func:`_ssim`)."""
    p = pu21_encode(rgb_to_luminance(pred_nits))
    g = pu21_encode(rgb_to_luminance(gt_nits))
    kw = {"gaussian_weights": True, "sigma": 1.5, "use_sample_covariance": False}
    return _ssim(p, g, PU21_PEAK, valid, **kw)


def mu_law(x: np.ndarray, mu: float = MU) -> np.ndarray:
    """mu-law compression T(x) = log(1 + mu x) / log(1 + mu) for x in [0, 1]."""
    return np.log1p(mu * np.asarray(x, np.float64)) / np.log1p(mu)


def mu_psnr(pred: np.ndarray, gt: np.ndarray, percentile: float = 99.0, valid=None) -> float:
    """NTIRE 2021 mu-PSNR: tanh(x / P99(gt)), then mu-law (mu 5000), PSNR with peak 1 (over
    the HxW ``valid`` pixels where given)."""
    norm = max(float(np.percentile(_picked(gt, valid), percentile)), TINY)
    t = lambda x: _picked(mu_law(np.tanh(np.maximum(x, 0.0) / norm)), valid)  # noqa: E731
    return psnr(t(pred), t(gt), 1.0)


def highlight_log2_error(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray) -> float:
    """Mean |log2 Y_pred - log2 Y_gt| over ``mask`` (luminance floored at 1e-8); nan if empty."""
    if not np.any(mask):
        return float("nan")
    yp = np.maximum(rgb_to_luminance(pred)[mask], TINY)
    yg = np.maximum(rgb_to_luminance(gt)[mask], TINY)
    return float(np.mean(np.abs(np.log2(yp) - np.log2(yg))))


def hdr_metrics(
    pred: np.ndarray,
    gt: np.ndarray,
    ldr: np.ndarray,
    *,
    log_units: float = LDR_WHITE_NITS,
    valid: np.ndarray | None = None,
) -> dict:
    """All metrics of one prediction, after aligning it to the ground truth.

    Args:
        pred: HxWx3 scene-linear prediction (any scale).
        gt: HxWx3 scene-linear ground truth (any scale).
        ldr: HxWx3 display input in [0, 1] the prediction was made from.
        log_units: both aligned images are multiplied by this before the log-domain metrics.
            Default 200: cd/m^2 with the input's white at 200, the convention of the reference
            table in the project's issues (log1p is not scale-invariant); 1.0 = input-white
            units, the model's training domain.
        valid: HxW bool, the pixels scored (None: all): the others (outside a fisheye's
            image circle, a region where something moved between bracket frames) count in
            no metric, the alignment (:func:`alignment_pixels`) and the log domain's
            min-max included, but for the SSIMs' windows, which reach a few pixels across
            the edge of the scored region (:func:`_ssim`).
    Returns:
        ``{"pu21_psnr", "pu21_ssim", "mu_psnr", "highlight_log2", "log_psnr", "log_ssim",
        "log_l1", "scale"}``; ``scale`` is the factor applied to ``pred``. The ground truth is
        first put in input-white units (aligned to the linearised input), then 1.0 is mapped
        to 200 cd/m^2 for PU21. Every value is NaN where ``pred`` or ``gt`` holds NaN or inf
        (one bad pixel would otherwise make some metrics NaN and leave others as they were).
    """
    if not (np.isfinite(pred).all() and np.isfinite(gt).all()):
        return dict.fromkeys((*METRICS, "scale"), math.nan)
    well = alignment_pixels(ldr, valid)
    # float64 from here: a ground truth near float32's limit (~1e38) times 200 cd/m² overflowed
    # to inf and made the log-domain metrics NaN
    gt_w = np.asarray(gt, np.float64) * align_scale(gt, srgb_to_linear(ldr), well)
    scale = align_scale(pred, gt_w, well)
    pred_w = np.asarray(pred, np.float64) * scale
    clipped = clipped_mask(ldr)
    if valid is not None:
        valid = np.asarray(valid, bool)
        if not valid.any():
            return dict.fromkeys(METRICS, math.nan) | {"scale": scale}
        clipped &= valid
    logs = log_domain_metrics(pred_w * log_units, gt_w * log_units, valid=valid)
    return {
        "pu21_psnr": pu21_psnr(pred_w * LDR_WHITE_NITS, gt_w * LDR_WHITE_NITS, valid),
        "pu21_ssim": pu21_ssim(pred_w * LDR_WHITE_NITS, gt_w * LDR_WHITE_NITS, valid),
        "mu_psnr": mu_psnr(pred_w, gt_w, valid=valid),
        "highlight_log2": highlight_log2_error(pred_w, gt_w, clipped),
        **{f"log_{k}": v for k, v in logs.items()},
        "scale": scale,
    }


def alignment_pixels(ldr: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """HxW bool: the pixels a prediction and its truth are aligned over: the photo's
    well-exposed ones (``color.well_exposed_mask``), those of them in ``valid`` where given,
    and where none of them is, the ``valid`` ones."""
    well = well_exposed_mask(ldr)
    if valid is None:
        return well
    scored = well & valid
    return scored if scored.any() else np.asarray(valid, bool)
