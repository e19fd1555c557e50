"""Akyüz et al. 2007, "Do HDR displays support LDR content? A psychophysical evaluation".

The paper's finding is that a simple linear expansion of the (linearised) LDR image is as good
as or better than elaborate operators:

    L_out = k * ((L - L_min) / (L_max - L_min)) ** gamma

with L the luminance of the linearised input, L_min/L_max its extremes, k the peak output
(the display's maximum luminance in the paper; here in input-white units, default 1.0 so the
brightest input pixel stays at 1.0) and gamma = 1 (the paper also tried 2.2 and 0.45). Colour is
kept by scaling RGB by L_out / L. Linearisation uses the sRGB EOTF (the paper: gamma 2.2).
"""

from __future__ import annotations

import numpy as np

from mlx_hdr.color import rgb_to_luminance, srgb_to_linear


def akyuz2007(ldr: np.ndarray, peak: float = 1.0, gamma: float = 1.0) -> np.ndarray:
    """Linear expansion of luminance.

    Args:
        ldr: HxWx3 float display input in [0, 1].
        peak: k, output luminance of the brightest pixel (input-white units).
        gamma: exponent on normalised luminance (1 = linear, the paper's recommendation).
    Returns:
        HxWx3 float32 scene-linear >= 0.
    """
    lin = srgb_to_linear(ldr)
    lum = rgb_to_luminance(lin)
    lo, hi = float(lum.min()), float(lum.max())
    norm = (lum - lo) / (hi - lo) if hi > lo else np.ones_like(lum)
    lum_out = peak * norm**gamma
    ratio = np.divide(lum_out, lum, out=np.zeros_like(lum), where=lum > 0)
    return (lin * ratio[..., None]).astype(np.float32)
