"""What a photo's exposure settings say about its clipped highlights: an absolute ceiling
and a daylight floor.

A camera's white (the luminance that just saturates it) follows from its EXIF exposure
time t (s), f-number N and ISO speed S by ISO 12232's saturation-based speed
(``io.photo_meta.Exposure.white_luminance``):

    L_white = 78 / (q * S) * N^2 / t = ``WHITE_K`` * N^2 / (t * S)  cd/m^2,  q = 0.65

so a photo's pixels, scaled so that 1.0 is its white, are in units of L_white. Broad
daylit surfaces are rarely brighter than a sunlit white cloud, about 10^4 cd/m^2 (an
average clear sky is about 7 * 10^3): ``SKY_CEILING``. Where the reconstruction puts the
photo's clipped pixels, as a whole (their median luminance), above that, they are lowered
(in stops, all together) by that excess; nothing else changes, and no pixel goes below what
the camera recorded (where that record holds some of them up, their median stays above the
ceiling rather than the others being lowered further). Where the white itself is at or
above the ceiling, what clipped is brighter than any sky (the sun, a glint) and nothing is
done. Indoors (long exposures, white at 10^2 cd/m^2 or so) the ceiling lies many stops
above white and never acts; in a short daylight exposure it keeps the model from lifting a
sky that barely clipped far above white.

The daylight floor (opt-in: ``predict --daylight-floor 3000``) works the other way, in
long exposures. A surface lit by lamps indoors is rarely brighter than a few hundred
cd/m^2 (white paint under 1,000 lux: about 250); daylight is brighter: an overcast sky is
about E / pi = 3 * 10^3 cd/m^2 at 10^4 lux (``DAYLIGHT_FLOOR``). Where the model reads
the clipped pixels, as a whole (their median), as a light (at least ``LIGHT_STOPS``, 1
stop, above white) and puts them above ``LAMP_LIT`` (500 cd/m^2), they are taken for
daylight (a window, the sky) or a lamp, and raised, all together in stops, towards the
floor, by at most ``MAX_LIFT`` stops. Each condition ramps in over half a stop to a stop
(:func:`daylight_lift`), so a photo at a border does not jump. The network reads a window
seen from a dim room as barely above white (docs/EXPERIMENTS.md, "What the network reads
from a clipped window"); the exposure puts it 2.6-3.7 stops above on the office bracket
set. It is off by default: on that set it meets the gain bar, but on simulated interiors
given an absolute scale it lifts bright walls as well (docs/EXPERIMENTS.md, "The EXIF
daylight floor").
"""

from __future__ import annotations

import math

import numpy as np

from mlx_hdr.color import CLIPPED, clip_mask, clipped_gain, row_slices
from mlx_hdr.infer.response import response_to_linear
from mlx_hdr.io.photo_meta import Exposure

SKY_CEILING = 10_000.0  # cd/m^2: a sunlit white cloud
DAYLIGHT_FLOOR = 3_000.0  # cd/m^2: an overcast sky (E / pi at 10^4 lux)
LAMP_LIT = 500.0  # cd/m^2: brighter than a surface lit by electric light indoors
LIGHT_STOPS = 1.0  # stops above white: the model reads the clipped pixels as a light
MAX_LIFT = 2.0  # stops: the most the daylight floor raises the clipped pixels


def ceiling_stops(exposure: Exposure, ceiling: float = SKY_CEILING) -> float | None:
    """How far above the photo's white ``ceiling`` (cd/m^2) lies, stops; None where the white
    is at or above it (what clipped then is brighter than a sky: the sun, a glint)."""
    white = exposure.white_luminance()
    return math.log2(ceiling / white) if white < ceiling else None


def limit_to_ceiling(
    ldr: np.ndarray,
    hdr: np.ndarray,
    exposure: Exposure | None,
    ceiling: float | None,
    recorded: np.ndarray | None = None,
    blended: bool = True,
) -> np.ndarray:
    """:func:`apply_ceiling` at ``ceiling`` cd/m^2 for a photo taken at ``exposure``, never
    below the photo read through the response table ``recorded``; ``hdr`` unchanged without
    an exposure or a ceiling, or where the ceiling does not act (:func:`ceiling_stops`)."""
    stops = ceiling_stops(exposure, ceiling) if exposure and ceiling else None
    if stops is None:
        return hdr
    rounds = 1 if blended else 3  # the network's own output moves by the mask's share
    return apply_ceiling(ldr, hdr, stops, rounds, recorded=recorded, blended=blended)


def median_clipped_gain(ldr: np.ndarray, hdr: np.ndarray) -> float:
    """log2 of the median of Y(hdr) / Y(srgb_to_linear(ldr)) over the pixels whose largest
    display channel is >= ``CLIPPED`` (``color.clipped_gain``), stops; NaN when none clip."""
    return clipped_gain(ldr, hdr, CLIPPED)


def apply_ceiling(
    ldr: np.ndarray,
    hdr: np.ndarray,
    stops: float,
    rounds: int = 1,
    recorded: np.ndarray | None = None,
    blended: bool = True,
) -> np.ndarray:
    """``hdr`` with its clipped pixels lowered by their median gain's excess over ``stops``.

    Args:
        ldr: HxWx3 display photo in [0, 1].
        hdr: HxWx3 scene-linear reconstruction of it (>= 0, 1.0 = the photo's white).
        stops: the highest median clipped gain allowed, stops above white (>= 0).
        rounds: passes of the correction, each by what is left of the excess. One for
            the blend's output: where the floor holds some pixels the median stays above
            ``stops``, and further passes would lower only the others (with the recorded
            level above the ceiling, three take the brightest pixels down 1.5 stops to move
            the median 0.26). The network's own output (not ``blended``) moves by the
            soft mask's share, 0.6-1 on clipped pixels, so it takes more than one.
        recorded: the response table (``infer.response``) that says what the photo recorded
            at least; None: the sRGB curve.
        blended: ``hdr`` is the blend's output, which ramps down to the photo as the soft
            clipped mask goes to 0 (False: the network's own output, which does not).
    Returns:
        HxWx3 float32: ``hdr`` times 2^-d wherever the soft clipped mask m
        (``color.clip_mask``) is above 0 (``blended``; else 2^(-d * m)), d the excess of the
        median clipped gain over ``stops``, never below the photo linearised through
        ``recorded`` (nor below ``hdr`` where that is lower); ``hdr`` itself where the median
        is within it. Computed in strips of rows, so a large photo costs one full-size copy.
    """
    return shift_clipped(
        ldr, hdr, stops, raise_=False, rounds=rounds, recorded=recorded, blended=blended
    )


def shift_clipped(
    ldr: np.ndarray,
    hdr: np.ndarray,
    stops: float,
    raise_: bool,
    rounds: int = 3,
    gain: float | None = None,
    recorded: np.ndarray | None = None,
    blended: bool = True,
) -> np.ndarray:
    """:func:`apply_ceiling`, or with ``raise_`` its mirror: the clipped pixels raised
    (times 2^(d * m)) until their median gain is at least ``stops``. ``gain``: ``hdr``'s
    median clipped gain where the caller has it already (one median pass less)."""
    sign = 1.0 if raise_ else -1.0
    out = hdr
    for _ in range(rounds):
        now = median_clipped_gain(ldr, out) if gain is None or out is not hdr else gain
        d = sign * (stops - now)
        if not d > 1e-3:  # NaN (nothing clipped) included
            break
        if out is hdr:
            out = np.array(hdr, np.float32)
        for rows in row_slices(ldr.shape[0]):
            m = clip_mask(ldr[rows])
            if raise_:
                out[rows] = out[rows] * np.exp2(d * m)
                continue
            # blended: lowered whole wherever anything clipped (the blend's ramp lifted those
            # pixels most of the way to the prediction, and a share of d there left them
            # brighter than the core: a ring); the network's own output by the mask's share,
            # which keeps it continuous where the mask starts. Never below what the photo
            # recorded, nor below where it was.
            least = np.minimum(response_to_linear(ldr[rows], recorded), hdr[rows])
            factor = np.float32(2.0**-d) if blended else np.exp2(-d * m)
            lowered = np.maximum(out[rows] * factor, least)
            out[rows] = np.where(m > 0, lowered, out[rows])
    return out


def daylight_lift(
    white: float, gain: float, floor: float = DAYLIGHT_FLOOR, max_lift: float = MAX_LIFT
) -> float:
    """Stops to raise clipped pixels whose median lies ``gain`` stops above a white of
    ``white`` cd/m^2, towards ``floor`` cd/m^2 (> 0; see the module doc): the shortfall
    times two ramps, one over the level (none below ``LAMP_LIT / sqrt(2)``, all above
    ``LAMP_LIT * sqrt(2)``), one over the gain (none below ``LIGHT_STOPS - 0.25``, all
    above ``LIGHT_STOPS + 0.25``), each linear in stops; at most ``max_lift``. 0 where
    they already reach the floor, or ``gain`` is NaN (nothing clipped)."""
    if not math.isfinite(gain):
        return 0.0
    level = math.log2(white) + gain
    lit = min(max(level - math.log2(LAMP_LIT) + 0.5, 0.0), 1.0)
    light = min(max(2.0 * (gain - LIGHT_STOPS) + 0.5, 0.0), 1.0)
    return min(max(math.log2(floor) - level, 0.0) * lit * light, max_lift)


def lift_to_daylight(
    ldr: np.ndarray, hdr: np.ndarray, exposure: Exposure | None, floor: float | None
) -> np.ndarray:
    """``hdr`` with its clipped pixels raised by :func:`daylight_lift` towards ``floor``
    (cd/m^2) for a photo taken at ``exposure`` (HxWx3 display ``ldr`` in [0, 1],
    scene-linear ``hdr`` with 1.0 = its white); ``hdr`` unchanged without an exposure or a
    floor (None or <= 0), or where nothing is lifted."""
    if not exposure or not floor or floor <= 0:
        return hdr
    gain = median_clipped_gain(ldr, hdr)
    lift = daylight_lift(exposure.white_luminance(), gain, floor)
    return hdr if lift <= 1e-3 else shift_clipped(ldr, hdr, gain + lift, True, gain=gain)
