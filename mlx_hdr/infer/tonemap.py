"""Tone-mapping operators for previews: scene-linear HDR -> display sRGB in [0, 1].

All operators take an HxWx3 (or NHWC) float array, scene-linear >= 0 with 1.0 = the input's
white, and return float32 display values in [0, 1] (sRGB-encoded). Luminance operators scale
the RGB triplet by L_out / L_in, so chroma ratios are kept.
"""

from __future__ import annotations

import numpy as np

from mlx_hdr.color import linear_to_srgb, rgb_to_luminance, row_slices

DELTA = 1e-6  # Reinhard 2002's log-average offset


def _scale_luminance(hdr: np.ndarray, lum: np.ndarray, lum_out: np.ndarray) -> np.ndarray:
    """Scale each RGB triplet by lum_out / lum (0 where lum is 0)."""
    ratio = np.divide(lum_out, lum, out=np.zeros_like(lum), where=lum > 0)
    return hdr * ratio[..., None]


def reinhard_simple(hdr: np.ndarray, exposure_ev: float = 0.0) -> np.ndarray:
    """The default preview (Reinhard's simple operator): L_d = L / (1 + L) on luminance after
    2^EV exposure.

    Args:
        hdr: HWC/NHWC scene-linear >= 0.
        exposure_ev: exposure compensation in stops, applied before the curve.
    Returns:
        float32 display sRGB in [0, 1], same shape.
    """
    x = np.maximum(np.asarray(hdr, np.float32), 0.0) * np.float32(2.0**exposure_ev)
    lum = rgb_to_luminance(x)
    return linear_to_srgb(_scale_luminance(x, lum, lum / (1.0 + lum)))


def reinhard2002(
    hdr: np.ndarray, key: float = 0.18, white: float | None = None, exposure_ev: float = 0.0
) -> np.ndarray:
    """Reinhard et al. 2002 global operator, "Photographic tone reproduction".

    L_avg = exp(mean(log(delta + L_w))), L = key / L_avg * L_w,
    L_d = L (1 + L / L_white^2) / (1 + L). ``white`` is L_white in scaled units; None uses the
    largest scaled luminance (the paper's default: the brightest pixel maps to 1).

    Args:
        hdr: HxWx3 scene-linear >= 0 (one image; statistics are over the whole image).
        key: the "key" a of the scene (0.18 = middle grey).
        white: smallest scaled luminance mapped to pure white, or None.
        exposure_ev: extra exposure in stops after the key scaling.
    Returns:
        float32 display sRGB in [0, 1], HxWx3.
    """
    x = np.maximum(np.asarray(hdr, np.float32), 0.0)
    lum_w = rgb_to_luminance(x)
    l_avg = float(np.exp(np.mean(np.log(DELTA + lum_w))))
    lum = lum_w * np.float32(key / l_avg * 2.0**exposure_ev)
    l_white = float(lum.max()) if white is None else float(white)
    l_white = max(l_white, DELTA)
    lum_d = lum * (1.0 + lum / l_white**2) / (1.0 + lum)
    return linear_to_srgb(_scale_luminance(x, lum_w, lum_d))


def exposure(hdr: np.ndarray, exposure_ev: float = 0.0) -> np.ndarray:
    """Plain exposure: clip(2^EV * H, 0, 1), sRGB-encoded (what a camera would record)."""
    return linear_to_srgb(np.asarray(hdr, np.float32) * np.float32(2.0**exposure_ev))


TONEMAPS = {"reinhard": reinhard_simple, "reinhard2002": reinhard2002, "exposure": exposure}


def tonemap(hdr: np.ndarray, name: str = "reinhard", exposure_ev: float = 0.0) -> np.ndarray:
    """Apply the named operator (``reinhard``, ``reinhard2002``, ``exposure``) -> display [0, 1].

    The per-pixel operators run over an HxWx3 image in strips of rows (same values, a
    fraction of the memory on large photos); ``reinhard2002`` needs whole-image statistics.
    """
    if name not in TONEMAPS:
        raise ValueError(f"unknown tone map {name!r}; choose from {', '.join(TONEMAPS)}")
    if name == "reinhard2002" or np.ndim(hdr) != 3:
        return TONEMAPS[name](hdr, exposure_ev=exposure_ev)
    out = np.empty(np.shape(hdr), np.float32)
    for rows in row_slices(out.shape[0]):
        out[rows] = TONEMAPS[name](hdr[rows], exposure_ev=exposure_ev)
    return out
