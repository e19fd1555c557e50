"""Calibration: network output in [-1, 1] -> scene-linear HDR with 1.0 = the input's white.

For the ``stops`` target (``targets``) the output decodes directly; for the original
``minmax_log1p`` target a log range is fitted:

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

import cv2
import numpy as np

from mlx_hdr.color import (
    EPS,
    clip_ramp,
    rgb_to_luminance,
    row_slices,
    srgb_to_linear,
    target_to_hdr,
)
from mlx_hdr.infer.response import check_response, response_table, response_to_linear
from mlx_hdr.infer.targets import STOPS_FLOOR, stops_to_hdr

DISPLAY_BAND = (0.05, 0.85)
MIN_PIXELS = 64
MIN_SPAN = 0.05
MAX_SPAN = float(np.log1p(2.0**16))  # log1p units: 16 stops over the photo's white at most
FALLBACK_HI = float(np.log1p(16.0))
BLEND_TAU = 0.95
FLOOR_EPS = 1e-4  # offset of a partial floor's ratio: black pixels stay finite
ANCHOR = 0.75  # share (in stops) of the way a partly clipped pixel's prediction is pulled
# down to the level its recorded channels imply (``blend_with_input``)
FILL_SOURCE = 0.6  # display max(RGB) above which a not fully clipped pixel lends its colour
FILL_SIGMAS = (3, 6, 12, 24, 48, 96, 192)  # px: the fill's Gaussian radii, nearest first
FILL_MIN_WEIGHT = 0.05  # share of a radius' kernel on lending pixels to take its colour


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
        ``(lo, hi)`` floats with lo >= 0 and ``MIN_SPAN`` <= hi - lo <= ``MAX_SPAN`` (a
        degenerate fit, on well-exposed values that barely vary, would otherwise give a
        span whose expm1 overflows to inf, and NaN in the blend).
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
    return lo, min(max(hi, lo + MIN_SPAN), lo + MAX_SPAN)


def blend_with_input(
    ldr: np.ndarray,
    hdr: np.ndarray,
    tau: float = BLEND_TAU,
    lin: np.ndarray | None = None,
    colour: np.ndarray | None = None,
    anchor: float = ANCHOR,
) -> np.ndarray:
    """Keep what the camera recorded; take the prediction only for the clipped channels.

    Per channel c: H_c = (1 - a_c) L_c + a_c max(P_c, L_c), with L = srgb_to_linear(I) and
    a_c ramping from 0 at display level ``tau`` to 1 at 1.0 (HDRCNN's mask, per channel): a
    channel below clipping is a measurement, so a pixel with only red clipped keeps its
    green and blue. Where *all* channels clip, the photo holds no colour and the network's
    hue there is unreliable (bluish suns), so P is replaced, by the same ramp on min(RGB),
    with the predicted luminance in the colour of ``colour`` (HxWx3, >= 0; its chromaticity
    is used): C * Y(P) / Y(C), by default C = L, the input's white; :func:`fill_colour`
    continues the colour of the surroundings. The floor holds because a clipped channel's
    radiance is at least what the camera recorded. On held-out simulated views this beat
    the per-pixel HDRCNN blend on every metric (commit 5d4faff). ``lin``:
    ``srgb_to_linear(ldr)`` when the caller already has it.

    Where some channels are recorded, they say how bright the pixel is; a prediction above
    them (a bright white sky over a blue one whose red was recorded) would make the clipped
    channels too bright and the pixel too saturated. So P is first lowered, by the share
    ``anchor`` in stops, towards the level at which its recorded channels match the
    camera's: by exp(anchor * m * min(0, sum_c w_c log((L_c + f) / (P_c + f)) / sum_c w_c)),
    with w_c = 1 - a_c, m = min(1, sum_c w_c) (0 where all three clip; never raised) and f
    the ``stops`` target's own offset (``STOPS_FLOOR``): a near-black recorded channel then
    reads the network's residual as the stops it is (a yellow light whose blue was recorded
    near 0 keeps its highlight: with 1e-4 its +2 stops would read as +8).
    """
    lin = srgb_to_linear(ldr) if lin is None else lin
    alpha = clip_ramp(ldr, tau)
    hdr = _anchored(hdr, lin, 1.0 - alpha, anchor)
    pred = recolour_clipped(ldr, hdr, lin if colour is None else colour, tau)
    return ((1.0 - alpha) * lin + alpha * np.maximum(pred, lin)).astype(np.float32)


def _anchored(hdr, lin, w, anchor):
    """``hdr`` lowered by the share ``anchor`` towards its recorded channels (weights ``w``,
    1 - the blend ramp), as :func:`blend_with_input` describes."""
    if anchor == 0.0:
        return hdr
    total = w.sum(axis=-1, keepdims=True)
    ratio = np.log((lin + STOPS_FLOOR) / (np.maximum(hdr, 0.0) + STOPS_FLOOR))
    stops = np.minimum((w * ratio).sum(axis=-1, keepdims=True) / np.maximum(total, 1e-6), 0.0)
    return hdr * np.exp(anchor * np.minimum(total, 1.0) * stops)


def recolour_clipped(
    ldr: np.ndarray, hdr: np.ndarray, colour: np.ndarray, tau: float = BLEND_TAU
) -> np.ndarray:
    """``hdr`` (HxWx3 scene-linear) with the pixels of ``ldr`` clipped in all three channels
    (a ramp on min(RGB) from ``tau`` to 1) at their luminance in the chromaticity of
    ``colour`` (HxWx3, >= 0): C * Y(hdr) / Y(C)."""
    gain = rgb_to_luminance(hdr) / np.maximum(rgb_to_luminance(colour), 1e-6)
    full = clip_ramp(np.asarray(ldr, np.float32).min(axis=-1, keepdims=True), tau)
    return (1.0 - full) * hdr + full * colour * gain[..., None]


def fill_colour(ldr: np.ndarray, lin: np.ndarray, tau: float = BLEND_TAU) -> np.ndarray | None:
    """The colour of the bright surroundings, continued into the pixels clipped in all three
    channels: HxWx3 float32 chromaticity (r, g, b summing to 1), for
    :func:`blend_with_input`'s ``colour``; None when no pixel has min(RGB) above ``tau``.

    Lending pixels have display max(RGB) above ``FILL_SOURCE`` and min(RGB) at most ``tau``
    (bright, with a channel still recorded); their chromaticity (of ``lin``, the linearised
    ``ldr``) is spread by normalised Gaussian convolution, each pixel taking the nearest of
    the radii ``FILL_SIGMAS`` (px) whose kernel has ``FILL_MIN_WEIGHT`` of its weight on
    lending pixels; neutral grey where none has. Measured nearer the truth's colour than
    the input's white on both real bracket sets, and level with it on the simulated views
    (docs/MODEL_CARD.md, "clipped colour").
    """
    ldr = np.asarray(ldr, np.float32)
    if not (ldr.min(axis=-1) > tau).any():
        return None
    src = ((ldr.max(axis=-1) > FILL_SOURCE) & (ldr.min(axis=-1) <= tau)).astype(np.float32)
    chroma = lin / np.maximum(lin.sum(axis=-1, keepdims=True), 1e-6)
    out = np.full(ldr.shape, 1.0 / 3.0, np.float32)
    todo = np.ones(ldr.shape[:2], bool)
    for sigma in FILL_SIGMAS:
        den, num = (_gaussian(a, sigma) for a in (src, chroma * src[..., None]))
        ok = todo & (den > FILL_MIN_WEIGHT)
        out[ok] = num[ok] / den[ok, None]
        todo &= ~ok
    return out


def _gaussian(img: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of HxW[xC] ``img`` (px), on a grid 1/k as fine for wide radii (k up to
    sigma / 3, the blur's own smoothing hides the resampling)."""
    k = max(1, int(sigma // 3))
    h, w = img.shape[:2]
    if k == 1:
        return cv2.GaussianBlur(img, (0, 0), sigma)
    small = cv2.resize(img, (max(1, w // k), max(1, h // k)), interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (0, 0), sigma / k)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def calibrate(
    ldr: np.ndarray,
    target: np.ndarray,
    blend: bool = True,
    tau: float = BLEND_TAU,
    kind: str = "minmax_log1p",
    floor: str | None = None,
    response: str = "srgb",
    floor_strength: float = 1.0,
) -> np.ndarray:
    """Network output -> scene-linear HDR (HxWx3 float32 >= 0, 1.0 = the input's white).

    Args:
        ldr: HxWx3 display input in [0, 1].
        target: HxWx3 network output in [-1, 1], in target domain ``kind``
            (``targets.TARGETS``): ``minmax_log1p`` has its log range fitted
            (:func:`fit_log_range`), ``stops`` carries its scale and is decoded directly.
        blend: keep the linearised input where it is not clipped (:func:`blend_with_input`).
        tau: display level where the blend starts.
        floor: a classical operator (``infer.methods``, e.g. ``kovaleski2014``) whose output
            the decoded prediction is never below, per channel, before the blend.
        floor_strength: the share of the operator's expansion the floor keeps
            (:func:`floor_image`).
        response: how the blend linearises the kept pixels: ``"srgb"`` (this function's
            default), ``"model"`` for the curve read from the decoded prediction, or
            ``"camera"`` (the predict pipeline's default) for that curve plus a camera JPEG's
            highlight roll-off (:mod:`~mlx_hdr.infer.response`).
    """
    return calibrate_with_table(ldr, target, blend, tau, kind, floor, response, floor_strength)[0]


def calibrate_with_table(
    ldr: np.ndarray,
    target: np.ndarray,
    blend: bool = True,
    tau: float = BLEND_TAU,
    kind: str = "minmax_log1p",
    floor: str | None = None,
    response: str = "srgb",
    floor_strength: float = 1.0,
) -> tuple[np.ndarray, np.ndarray | None]:
    """:func:`calibrate`'s HDR and the response table its blend linearised the photo with
    (``infer.response``; None for the sRGB curve, or without the blend)."""
    check_response(response)
    if kind == "stops":
        hdr = stops_to_hdr(target, ldr)
    else:
        lo, hi = fit_log_range(ldr, target)
        # target_to_hdr adds EPS to the span; remove it so the fitted line is reproduced exactly
        hdr = target_to_hdr(target, lo, hi - EPS)
    floored = hdr if floor is None else np.maximum(hdr, floor_image(floor, ldr, floor_strength))
    if not blend:
        return floored, None
    table = response_table(response, ldr, hdr)  # read before the floor
    lin = response_to_linear(ldr, table)
    return blend_with_input(ldr, floored, tau, lin=lin, colour=fill_colour(ldr, lin, tau)), table


def floor_image(floor: str | None, ldr: np.ndarray, strength: float = 1.0) -> np.ndarray | None:
    """The output of classical operator ``floor`` (``infer.methods``) on ``ldr``, HxWx3
    scene-linear; None for no floor. With ``strength`` s < 1, the operator's per-channel
    expansion over the sRGB-linearised input L, in stops, is scaled by s:
    ``(L + f) * ((op + f) / (L + f)) ** s - f`` (f = ``FLOOR_EPS``), so s = 0 gives L.

    For a photo above the working size the caller passes the full-resolution photo, not the
    downscaled one: there its clipped pixels are averaged with their surroundings and the
    operator's spatial scale (e.g. Kovaleski's 150-px filter) would cover several times more
    of the scene.
    """
    if floor is None:
        return None
    from mlx_hdr.infer.methods import get_method

    out = get_method(floor)(ldr)
    if strength == 1.0:
        return out
    out = np.asarray(out, np.float32)
    for rows in row_slices(len(out)):  # in strips and in place: no full-size temporaries
        lin = srgb_to_linear(ldr[rows]).astype(np.float32) + FLOOR_EPS
        part = out[rows]
        part += FLOOR_EPS
        part /= lin
        np.power(part, strength, out=part)
        part *= lin
        part -= FLOOR_EPS
    return np.maximum(out, 0.0, out=out)


GREY_SPREAD = 1.5 / 255  # display: a photo whose channels never differ by more has no colour


def grey_for_grey(ldr: np.ndarray, hdr: np.ndarray) -> np.ndarray:
    """``hdr`` (HxWx3 scene-linear) without colour where the photo ``ldr`` (HxWx3 display)
    has none: for a black-and-white photo (no pixel's channels more than ``GREY_SPREAD``
    apart) each pixel gets its Rec.709 luminance in all three channels, since the
    reconstruction tints clipped areas slightly; ``hdr`` itself for any other photo."""
    for rows in row_slices(ldr.shape[0]):
        if np.ptp(ldr[rows], axis=-1).max(initial=0.0) > GREY_SPREAD:
            return hdr
    grey = np.empty_like(hdr)
    for rows in row_slices(hdr.shape[0]):
        grey[rows] = rgb_to_luminance(hdr[rows])[..., None]
    return grey
