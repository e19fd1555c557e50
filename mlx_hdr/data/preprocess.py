"""Preprocessing from the original hybrid-autoencoder recipe: filtering, exposure alignment
and paired augmentation.

LDR images are display HxWx3 in [0, 1]; HDR images scene-linear HxWx3 >= 0 (float32).
Paired functions transform LDR and HDR identically. The value-domain transforms themselves
(``hdr_to_target``, ``target_to_hdr``, ``ldr_to_input``) live in :mod:`mlx_hdr.color`.
"""

from __future__ import annotations

import cv2
import numpy as np

from mlx_hdr.color import rgb_to_luminance, srgb_to_linear

MAX_HDR_VALUE = 4096.0  # the design drops HDRs brighter than this
TRAIN_SIZES = (224, 256, 512)


def keep_hdr(hdr_max: float, limit: float = MAX_HDR_VALUE) -> tuple[bool, str | None]:
    """The recipe's brightness filter: keep an HDR unless its maximum exceeds ``limit``.

    Returns ``(kept, reason)`` where reason is None when kept.
    """
    if not np.isfinite(hdr_max):
        return False, "non-finite maximum"
    if hdr_max > limit:
        return False, f"max {hdr_max:.4g} > {limit:g}"
    return True, None


def dynamic_range_stops(hdr: np.ndarray) -> float:
    """log2(P99.9 / P0.1) of the luminance of pixels with Y > 0 (0 when none)."""
    y = rgb_to_luminance(hdr).ravel()
    y = y[y > 0]
    if y.size == 0:
        return 0.0
    lo, hi = np.quantile(y, [0.001, 0.999])
    return float(np.log2(hi / lo)) if lo > 0 else 0.0


def estimate_exposure(ldr: np.ndarray, hdr: np.ndarray, lo: float = 0.05, hi: float = 0.9) -> float:
    """Scale s making ``hdr * s`` match the LDR's linear values (clipping point at 1.0).

    Uses pixels whose LDR max channel is well exposed (``lo`` < v < ``hi``), linearises the LDR
    with the sRGB EOTF (an approximation for real cameras) and takes the median ratio of
    luminances. Returns 1 / P99(max HDR) when too few pixels qualify.
    """
    m = ldr.max(axis=-1)
    ok = (m > lo) & (m < hi)
    y_hdr = rgb_to_luminance(hdr)
    ok &= y_hdr > 0
    if ok.sum() < 16:
        return 1.0 / max(float(np.quantile(hdr.max(axis=-1), 0.99)), 1e-12)
    y_ldr = rgb_to_luminance(srgb_to_linear(ldr))
    return float(np.median(y_ldr[ok] / y_hdr[ok]))


def random_flip(
    ldr: np.ndarray, hdr: np.ndarray, rng: np.random.Generator, vertical: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Random horizontal (p=0.5) and, if ``vertical``, vertical (p=0.5) flips, applied to both."""
    if rng.random() < 0.5:
        ldr, hdr = ldr[:, ::-1], hdr[:, ::-1]
    if vertical and rng.random() < 0.5:
        ldr, hdr = ldr[::-1], hdr[::-1]
    return np.ascontiguousarray(ldr), np.ascontiguousarray(hdr)


def _resize(img: np.ndarray, size: int) -> np.ndarray:
    interp = cv2.INTER_AREA if min(img.shape[:2]) > size else cv2.INTER_LINEAR
    return cv2.resize(np.ascontiguousarray(img, np.float32), (size, size), interpolation=interp)


def random_crop_resize(
    ldr: np.ndarray,
    hdr: np.ndarray,
    rng: np.random.Generator,
    size: int = 256,
    scale: tuple[float, float] = (0.5, 1.0),
) -> tuple[np.ndarray, np.ndarray]:
    """A random square crop (side = ``scale`` x the shorter side) of both, resized to ``size``.

    Shapes must match. The LDR output is clipped back to [0, 1] and the HDR to >= 0 after
    interpolation.
    """
    if ldr.shape[:2] != hdr.shape[:2]:
        raise ValueError(f"LDR {ldr.shape} and HDR {hdr.shape} differ in size")
    h, w = ldr.shape[:2]
    side = max(1, int(round(min(h, w) * rng.uniform(*scale))))
    y0, x0 = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
    crop = (slice(y0, y0 + side), slice(x0, x0 + side))
    out_ldr = np.clip(_resize(ldr[crop], size), 0.0, 1.0)
    return out_ldr, np.maximum(_resize(hdr[crop], size), 0.0)


def augment_pair(
    ldr: np.ndarray,
    hdr: np.ndarray,
    rng: np.random.Generator,
    size: int = 256,
    scale: tuple[float, float] = (0.5, 1.0),
    vertical_flip: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """The recipe's paired augmentation: random crop/resize to ``size``, then random flips."""
    ldr, hdr = random_crop_resize(ldr, hdr, rng, size, scale)
    return random_flip(ldr, hdr, rng, vertical_flip)
