"""What a photo's exposure settings say about its clipped highlights: an absolute ceiling.

A camera's white (the luminance that just saturates it) follows from its EXIF exposure
time t (s), f-number N and ISO speed S by ISO 12232's saturation-based speed:

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
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from mlx_hdr.color import CLIPPED, clip_mask, clipped_gain, row_slices, srgb_to_linear
from mlx_hdr.errors import InputError
from mlx_hdr.io.heic import HEIF_SUFFIXES, register

WHITE_K = 78.0 / 0.65  # cd/m^2 s: L_white = WHITE_K * N^2 / (t * S)
SKY_CEILING = 10_000.0  # cd/m^2: a sunlit white cloud
EXIF_IFD = 0x8769
EXPOSURE_TIME, F_NUMBER, ISO_SPEED = 0x829A, 0x829D, 0x8827
ISO_FULL = (0x8833, 0x8832)  # EXIF 2.3 ISOSpeed, RecommendedExposureIndex: above 65,535


@dataclass(frozen=True)
class Exposure:
    """A photo's exposure settings: time in seconds, f-number, ISO speed (all > 0)."""

    time_s: float
    f_number: float
    iso: float

    def white_luminance(self) -> float:
        """The luminance that saturates the camera at these settings, cd/m^2."""
        return WHITE_K * self.f_number**2 / (self.time_s * self.iso)


def exposure_from_values(time_s, f_number, iso) -> Exposure | None:
    """An :class:`Exposure` from three EXIF values (numbers or rationals; ISO may be a
    sequence), or None where one is missing, not a number or not positive."""
    if isinstance(iso, tuple | list):
        iso = iso[0] if iso else None
    try:
        values = [float(v) for v in (time_s, f_number, iso)]
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    if not all(math.isfinite(v) and v > 0 for v in values):
        return None
    return Exposure(*values)


def read_exposure(path) -> Exposure | None:
    """The exposure settings in a photo's EXIF, or None when it has none (or is unreadable:
    reading its pixels reports that)."""
    path = Path(path)
    try:
        if path.suffix.lower() in HEIF_SUFFIXES:
            register(path)
        with Image.open(path) as im:
            ifd = im.getexif().get_ifd(EXIF_IFD)
    except (OSError, ValueError, SyntaxError, InputError):
        return None
    return exposure_from_values(ifd.get(EXPOSURE_TIME), ifd.get(F_NUMBER), _iso(ifd))


def _iso(ifd) -> object:
    """The ISO speed: ``ISO_SPEED``, or where that holds EXIF's 16-bit ceiling (65,535) or is
    missing, the EXIF 2.3 value that carries the full figure."""
    iso = ifd.get(ISO_SPEED)
    first = iso[0] if isinstance(iso, tuple | list) and iso else iso
    if first in (None, 65535):
        return next((ifd[tag] for tag in ISO_FULL if ifd.get(tag)), iso)
    return iso


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
