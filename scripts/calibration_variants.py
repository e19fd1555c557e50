"""Held-out metrics of the calibration/blend variants the model card reports as not adopted.

Each variant post-processes the same network outputs on simulated photos of the held-out
pool images (``train.pool.heldout_views``, as ``scripts/validate_model.py``); eval-public is
never read. Variants:

- ``shipped``: ``calibrate.calibrate`` (least-squares log range, per-channel blend);
- ``reverse`` / ``rma``: the log-range slope by reverse or reduced-major-axis regression
  (errors in the network output would attenuate the least-squares slope);
- ``chroma_fill``: fully clipped pixels take the surrounding chromaticity (push-pull);
- ``hue``: every blended channel is the predicted luminance times the input's colour.

    python scripts/calibration_variants.py ../shared/data/hdr-pool -n 24
"""

from __future__ import annotations

import argparse

import cv2
import numpy as np

# ruff: noqa: E402  (imports after backend.setup(), which must run before mlx.core loads)
from mlx_hdr import backend

backend.setup()
# isort: split
from mlx_hdr.color import EPS, clip_ramp, rgb_to_luminance, srgb_to_linear, target_to_hdr
from mlx_hdr.eval.metrics import hdr_metrics
from mlx_hdr.infer import calibrate as cal
from mlx_hdr.infer.model_hub import load_net
from mlx_hdr.infer.pipeline import predict_target
from mlx_hdr.train.pool import heldout_views

KEYS = ("pu21_psnr", "pu21_ssim", "mu_psnr", "highlight_log2", "log_psnr", "log_ssim")


def slope_fit(x: np.ndarray, y: np.ndarray, kind: str) -> tuple[float, float]:
    """Intercept and slope of y ~ x: least squares, reverse regression or reduced major axis."""
    xm, ym = x.mean(), y.mean()
    cxy, vx, vy = np.mean((x - xm) * (y - ym)), np.var(x), np.var(y)
    b = {"ols": cxy / vx, "reverse": vy / cxy, "rma": np.sign(cxy) * np.sqrt(vy / vx)}[kind]
    return ym - b * xm, b


def log_range(ldr: np.ndarray, t: np.ndarray, kind: str) -> tuple[float, float]:
    """``calibrate.fit_log_range`` with another slope estimator (same band and MAD refit)."""
    good = np.all((ldr >= cal.DISPLAY_BAND[0]) & (ldr <= cal.DISPLAY_BAND[1]), axis=-1)
    y, x = np.log1p(srgb_to_linear(ldr[good])).ravel(), ((t[good] + 1) * 0.5).ravel()
    a, b = slope_fit(x, y, kind)
    r = y - (a + b * x)
    keep = np.abs(r) <= 3 * 1.4826 * (np.median(np.abs(r - np.median(r))) + 1e-9)
    a, b = slope_fit(x[keep], y[keep], kind) if keep.sum() >= cal.MIN_PIXELS else (a, b)
    lo = max(a, 0.0)
    return lo, max(a + b, lo + cal.MIN_SPAN)


def push_pull(vw: np.ndarray) -> np.ndarray:
    """Fill HxWx3 values where the weight (4th channel; values premultiplied) is 0."""
    levels = [vw]
    while min(levels[-1].shape[:2]) > 2:
        levels.append(cv2.pyrDown(levels[-1]))
    top = levels[-1].reshape(-1, 4).sum(0)
    est = np.full(levels[-1].shape[:2] + (3,), 1.0, np.float32)
    if top[3] > 1e-6:
        est[:] = top[:3] / top[3]
    for lv in reversed(levels):
        up = cv2.resize(est, lv.shape[1::-1], interpolation=cv2.INTER_LINEAR)
        a = np.clip(lv[..., 3:], 0, 1)
        est = a * lv[..., :3] / np.maximum(lv[..., 3:], 1e-6) + (1 - a) * up
    return est


def blend_variant(ldr: np.ndarray, hdr: np.ndarray, kind: str) -> np.ndarray:
    """The per-channel blend with the fully clipped colour from ``chroma_fill`` or ``hue``."""
    lin = srgb_to_linear(ldr)
    y_lin, y_hdr = rgb_to_luminance(lin), rgb_to_luminance(hdr)
    if kind == "hue":
        pred = lin * (y_hdr / np.maximum(y_lin, 1e-6))[..., None]
    else:
        full = clip_ramp(ldr.min(-1, keepdims=True), cal.BLEND_TAU)
        w = (1 - full[..., 0]) * np.clip(y_lin / 0.05, 0, 1)
        chroma = lin / np.maximum(y_lin, 1e-6)[..., None]
        c = push_pull(np.concatenate([chroma * w[..., None], w[..., None]], -1))
        c = c / np.maximum(rgb_to_luminance(c), 1e-6)[..., None]
        pred = (1 - full) * hdr + full * c * y_hdr[..., None]
    alpha = clip_ramp(ldr, cal.BLEND_TAU)
    return ((1 - alpha) * lin + alpha * np.maximum(pred, lin)).astype(np.float32)


def reconstruct(ldr: np.ndarray, t: np.ndarray, variant: str) -> np.ndarray:
    """Scene-linear HDR from network output ``t`` with one of the variants."""
    if variant == "shipped":
        return cal.calibrate(ldr, t)
    kind = variant if variant in ("reverse", "rma") else "ols"
    lo, hi = log_range(ldr, t, kind)
    hdr = target_to_hdr(t, lo, hi - EPS)
    return cal.blend_with_input(ldr, hdr) if kind != "ols" else blend_variant(ldr, hdr, variant)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("pool")
    ap.add_argument("-n", type=int, default=24, help="simulated views")
    ap.add_argument("--model", default=None, help="default: the bundled model")
    args = ap.parse_args()
    views = heldout_views(args.pool, args.n, 384)
    net = load_net(args.model)[0]
    targets = [predict_target(net, ldr) for ldr, _ in views]
    print("| variant | " + " | ".join(KEYS) + " |\n|---" * 1 + "|---" * len(KEYS) + "|")
    for variant in ("shipped", "reverse", "rma", "chroma_fill", "hue"):
        rows = [
            hdr_metrics(reconstruct(ldr, t, variant), h, ldr)
            for (ldr, h), t in zip(views, targets, strict=True)
        ]
        means = [np.nanmean([r[k] for r in rows]) for k in KEYS]
        print(f"| {variant} | " + " | ".join(f"{v:.3f}" for v in means) + " |")


if __name__ == "__main__":
    main()
