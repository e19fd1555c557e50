"""Masia et al. 2017, "Dynamic range expansion based on image statistics" (MTAP 76(1)).

A global gamma expansion L_out = L ** gamma (times the peak), with gamma from the multi-linear
regression of the paper (its equation 5):

    gamma = 2.4379 + 0.2319 ln(L_H) - 1.1228 k + 0.0085 p_ov

- L: luminance of the linearised input in [0, 1];
- L_H: geometric mean luminance, exp(mean(ln(L + 1e-6)));
- k: the image key, (ln L_H - ln L_min) / (ln L_max - ln L_min), with L_min the 1st
  percentile of the luminance above 0 and L_max the 99th of all (robust extremes, as the HDR
  Toolbox's ``imKey`` takes them; floored at 1e-6);
- p_ov: percentage (0-100) of over-exposed pixels, L * 255 >= 254.

Colour is kept by scaling RGB by L_out / L. The optional bilateral detail-preserving variant of
the 2009 paper is not used. gamma is floored at 0.1 so a degenerate fit cannot invert the image.
"""

from __future__ import annotations

import numpy as np

from mlx_hdr.color import rgb_to_luminance, srgb_to_linear

FLOOR = 1e-6


def masia2017_gamma(lum: np.ndarray) -> float:
    """The regression gamma of an HxW linear luminance image in [0, 1] (see module docstring)."""
    lum = np.asarray(lum, np.float64)
    l_h = float(np.exp(np.mean(np.log(lum + FLOOR))))
    lit = lum[lum > 0]  # black pixels (a letterbox, a ghost box) do not set the darkest level
    l_min = max(float(np.percentile(lit, 1)) if lit.size else FLOOR, FLOOR)
    l_max = max(float(np.percentile(lum, 99)), FLOOR)
    span = np.log(l_max) - np.log(l_min)
    key = (np.log(max(l_h, FLOOR)) - np.log(l_min)) / span if span > 0 else 0.5
    p_ov = 100.0 * float(np.mean(lum * 255.0 >= 254.0))
    return float(2.4379 + 0.2319 * np.log(max(l_h, FLOOR)) - 1.1228 * key + 0.0085 * p_ov)


def masia2017(ldr: np.ndarray, peak: float = 1.0) -> np.ndarray:
    """Gamma expansion with the image-statistics gamma.

    Args:
        ldr: HxWx3 float display input in [0, 1].
        peak: output luminance of a white pixel (input-white units).
    Returns:
        HxWx3 float32 scene-linear >= 0.
    """
    lin = srgb_to_linear(ldr)
    lum = rgb_to_luminance(lin)
    gamma = max(masia2017_gamma(lum), 0.1)
    lum_out = peak * np.power(lum, gamma)
    ratio = np.divide(lum_out, lum, out=np.zeros_like(lum), where=lum > 0)
    return (lin * ratio[..., None]).astype(np.float32)
