"""What a photo's exposure settings say about its clipped highlights: an absolute ceiling.

A camera's white (the luminance that just saturates it) follows from its EXIF exposure
time t (s), f-number N and ISO speed S by ISO 12232's saturation-based speed
(``io.photo_meta.Exposure.white_luminance``):

    L_white = 78 / (q * S) * N^2 / t = ``WHITE_K`` * N^2 / (t * S)  cd/m^2,  q = 0.65

so a photo's pixels, scaled so that 1.0 is its white, are in units of L_white. Broad
daylit surfaces are rarely brighter than a sunlit white cloud, about 10^4 cd/m^2 (an
average clear sky is about 7 * 10^3): ``SKY_CEILING``. Where the reconstruction puts the
photo's clipped pixels, as a whole (their median luminance), above that, they are lowered
(in stops, all together) to it; nothing else changes, and no pixel goes below what the
camera recorded. Where the white itself is at or above the ceiling, what clipped is
brighter than any sky (the sun, a glint) and nothing is done. Indoors (long exposures,
white at 10^2 cd/m^2 or so) the ceiling lies many stops above white and never acts; in a
short daylight exposure it keeps the model from lifting a sky that barely clipped far
above white.
"""

from __future__ import annotations

import math

import numpy as np

from mlx_hdr.color import CLIPPED, clip_mask, clipped_gain, row_slices, srgb_to_linear
from mlx_hdr.io.photo_meta import Exposure

SKY_CEILING = 10_000.0  # cd/m^2: a sunlit white cloud


def ceiling_stops(exposure: Exposure, ceiling: float = SKY_CEILING) -> float | None:
    """How far above the photo's white ``ceiling`` (cd/m^2) lies, stops; None where the white
    is at or above it (what clipped then is brighter than a sky: the sun, a glint)."""
    white = exposure.white_luminance()
    return math.log2(ceiling / white) if white < ceiling else None


def limit_to_ceiling(
    ldr: np.ndarray, hdr: np.ndarray, exposure: Exposure | None, ceiling: float | None
) -> np.ndarray:
    """:func:`apply_ceiling` at ``ceiling`` cd/m^2 for a photo taken at ``exposure``;
    ``hdr`` unchanged without an exposure or a ceiling, or where the ceiling does not act
    (:func:`ceiling_stops`)."""
    stops = ceiling_stops(exposure, ceiling) if exposure and ceiling else None
    return hdr if stops is None else apply_ceiling(ldr, hdr, stops)


def median_clipped_gain(ldr: np.ndarray, hdr: np.ndarray) -> float:
    """log2 of the median of Y(hdr) / Y(srgb_to_linear(ldr)) over the pixels whose largest
    display channel is >= ``CLIPPED`` (``color.clipped_gain``), stops; NaN when none clip."""
    return clipped_gain(ldr, hdr, CLIPPED)


def apply_ceiling(ldr: np.ndarray, hdr: np.ndarray, stops: float, rounds: int = 3) -> np.ndarray:
    """``hdr`` with its clipped pixels lowered so their median gain is at most ``stops``.

    Args:
        ldr: HxWx3 display photo in [0, 1].
        hdr: HxWx3 scene-linear reconstruction of it (>= 0, 1.0 = the photo's white).
        stops: the highest median clipped gain allowed, stops above white (>= 0).
        rounds: passes of the correction (the soft mask makes one pass fall a little short).
    Returns:
        HxWx3 float32: ``hdr`` times 2^(-d * m) with m the soft clipped mask
        (``color.clip_mask``) and d the excess of the median clipped gain over ``stops``,
        never below the linearised photo; ``hdr`` itself where the median is within it.
        Computed in strips of rows, so a large photo costs one full-size copy.
    """
    out = hdr
    for _ in range(rounds):
        excess = median_clipped_gain(ldr, out) - stops
        if not excess > 1e-3:  # NaN (nothing clipped) included
            break
        if out is hdr:
            out = np.array(hdr, np.float32)
        for rows in row_slices(ldr.shape[0]):
            lowered = out[rows] * np.exp2(-excess * clip_mask(ldr[rows]))
            out[rows] = np.maximum(lowered, srgb_to_linear(ldr[rows]))
    return out
