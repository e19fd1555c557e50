"""Colour and value-domain transforms, each forward next to its inverse.

Conventions: images are NHWC or HWC float32 numpy arrays, RGB with Rec.709/sRGB primaries.
"display" values are in [0, 1]; "scene-linear" values are >= 0 and unbounded.
"""

from __future__ import annotations

import numpy as np

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)
REC709_LUMA = np.array([0.2126, 0.7152, 0.0722], np.float32)
EPS = 1e-6  # min-max epsilon of the original hybrid-autoencoder recipe
CLIP_THRESHOLD = 0.95  # display value where an input pixel starts to count as clipped
CLIPPED = 0.98  # display max(RGB) from which a pixel is clipped (metrics, the sky ceiling)
WELL_EXPOSED = (0.05, 0.85)  # linearised input luminance
TINY = 1e-8  # luminance below this is treated as zero


def srgb_to_linear(x: np.ndarray) -> np.ndarray:
    """sRGB EOTF (IEC 61966-2-1): display [0, 1] -> scene-linear [0, 1]."""
    x = np.asarray(x, np.float32)
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4).astype(np.float32)


def linear_to_srgb(x: np.ndarray) -> np.ndarray:
    """sRGB OETF: scene-linear, clipped to [0, 1] -> display [0, 1]."""
    x = np.clip(np.asarray(x, np.float32), 0.0, 1.0)
    return np.where(x <= 0.0031308, 12.92 * x, 1.055 * x ** (1 / 2.4) - 0.055).astype(np.float32)


def highlight_rolloff(v: np.ndarray, stops: float, knee: float, top: float = 1.0) -> np.ndarray:
    """A camera JPEG's highlight roll-off: how many stops more light than the sRGB curve
    says display level ``v`` (any shape, [0, 1]) holds, ``stops`` * t**2 with
    t = (min(v, top) - knee) / (1 - knee) clipped to [0, 1] (0 up to the knee)."""
    t = np.clip((np.minimum(v, top) - knee) / (1.0 - knee), 0.0, 1.0)
    return stops * t**2


def row_slices(height: int, rows: int = 256):
    """Slices of ``rows`` rows covering ``height``: per-pixel work on a large image in strips
    keeps a few strip-sized temporaries instead of full-size ones."""
    return (slice(y, y + rows) for y in range(0, height, rows))


def as_float(x) -> np.ndarray:
    """``x`` as a float32 array, or float64 when it is float64 already (values beyond float32's
    range, ~3.4e38, stay finite)."""
    x = np.asarray(x)
    return x.astype(np.promote_types(x.dtype, np.float32), copy=False)


def rgb_to_luminance(x: np.ndarray) -> np.ndarray:
    """Rec.709 luminance Y of linear RGB (..., 3) -> (...), float32 (float64 for float64)."""
    return as_float(x) @ REC709_LUMA


def _axes(x: np.ndarray) -> tuple[int, ...]:
    """Per-image reduction axes: all but the batch axis of NHWC, all of HWC."""
    return tuple(range(1, x.ndim)) if x.ndim == 4 else tuple(range(x.ndim))


STOPS_LO, STOPS_HI = -4.0, 12.0  # ``stops`` target's residual range (``infer.targets``); 12 = 4096x


def hdr_to_target(
    hdr: np.ndarray, valid: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Scene-linear HDR -> the network's target domain, [-1, 1].

    log1p, then per-image min-max to [0, 1] with eps 1e-6, then to [-1, 1] (the design).
    Returns ``(target, lo, hi)`` where lo/hi are the per-image log1p min/max (keepdims),
    needed by :func:`target_to_hdr`. A float64 ``hdr`` is taken in float64 (values beyond
    float32's range stay finite); the target is float32. ``valid``: for one HWC image, the
    HxW pixels the min-max is taken over (lo/hi are then scalars; None: all of them).
    """
    log = np.log1p(np.maximum(as_float(hdr), 0.0))
    if valid is None:
        lo = log.min(axis=_axes(log), keepdims=True)
        hi = log.max(axis=_axes(log), keepdims=True)
    else:
        lo, hi = log[valid].min(), log[valid].max()
    unit = (log - lo) / (hi - lo + EPS)
    return (unit * 2.0 - 1.0).astype(np.float32), lo, hi


def target_to_hdr(target: np.ndarray, lo, hi) -> np.ndarray:
    """Inverse of :func:`hdr_to_target`: [-1, 1] -> scene-linear HDR >= 0."""
    unit = (np.asarray(target, np.float32) + 1.0) * 0.5
    return np.expm1(unit * (np.asarray(hi) - lo + EPS) + lo).clip(0.0).astype(np.float32)


def ldr_to_input(ldr: np.ndarray) -> np.ndarray:
    """Display LDR in [0, 1] -> encoder input: per-image min-max, then ImageNet mean/std."""
    x = np.asarray(ldr, np.float32)
    lo = x.min(axis=_axes(x), keepdims=True)
    hi = x.max(axis=_axes(x), keepdims=True)
    unit = (x - lo) / (hi - lo + EPS)
    return ((unit - IMAGENET_MEAN) / IMAGENET_STD).astype(np.float32)


def input_to_ldr(x: np.ndarray) -> np.ndarray:
    """Inverse of :func:`ldr_to_input` up to the lost min-max: -> display [0, 1]."""
    return (np.asarray(x, np.float32) * IMAGENET_STD + IMAGENET_MEAN).astype(np.float32)


def clip_ramp(x: np.ndarray, threshold: float = CLIP_THRESHOLD) -> np.ndarray:
    """Display values -> [0, 1]: 0 up to ``threshold``, linear up to 1 at 1.0 (float32)."""
    return np.clip((np.asarray(x, np.float32) - threshold) / (1.0 - threshold), 0.0, 1.0)


def clipped_mask(ldr: np.ndarray, threshold: float = CLIPPED) -> np.ndarray:
    """HxW bool: pixels of the display input ``ldr`` whose largest channel is >= threshold.

    A hard selection of the pixels the highlight metric scores, unlike the soft blending and
    loss weight :func:`clip_mask` (a ramp from 0.95): a metric needs a pixel set.
    """
    return np.asarray(ldr).max(axis=-1) >= threshold


def clip_mask(ldr: np.ndarray, threshold: float = CLIP_THRESHOLD) -> np.ndarray:
    """Soft mask of (nearly) clipped pixels: display (..., H, W, 3) -> (..., H, W, 1) in [0, 1].

    max(RGB) ramps linearly from 0 at ``threshold`` to 1 at 1.0: HDRCNN's blending mask
    (Eilertsen et al. 2017, tau = 0.95). Weights the training L1 (``train.loss``); the
    inference blend (``calibrate.blend_with_input``) applies the same ramp per channel. The
    highlight metric's hard :func:`clipped_mask` (max >= 0.98) is a different operator: it
    selects pixels.
    """
    return clip_ramp(np.asarray(ldr, np.float32).max(axis=-1, keepdims=True), threshold)


# Primaries and white as OpenEXR's ``chromaticities`` (rx ry gx gy bx by wx wy): Rec.709 (sRGB),
# Display P3 (P3 with a D65 white; with the sRGB curve), BT.2020.
REC709_CHROMATICITIES = (0.64, 0.33, 0.30, 0.60, 0.15, 0.06, 0.3127, 0.3290)
DISPLAY_P3 = (0.680, 0.320, 0.265, 0.690, 0.150, 0.060, 0.3127, 0.3290)
REC2020_CHROMATICITIES = (0.708, 0.292, 0.170, 0.797, 0.131, 0.046, 0.3127, 0.3290)


def well_exposed_mask(ldr: np.ndarray, band: tuple[float, float] = WELL_EXPOSED) -> np.ndarray:
    """HxW bool: linearised luminance of the display input ``ldr`` (HWC, [0, 1]) in ``band``."""
    y = rgb_to_luminance(srgb_to_linear(ldr))
    return (y >= band[0]) & (y <= band[1])


def clipped_gain(ldr: np.ndarray, hdr: np.ndarray, threshold: float = 254.0 / 255.0) -> float:
    """How far above white a photo's clipped pixels lie: log2 of the median of
    Y(hdr) / Y(srgb_to_linear(ldr)) over the pixels whose largest display channel is >=
    ``threshold``, stops (``hdr`` on the linearised photo's scale, as
    ``data.simulate.simulate_ldr`` and the predictions return it); NaN when no pixel
    clips."""
    mask = ldr.max(axis=-1) >= threshold
    if not mask.any():
        return float("nan")
    y_lin = np.maximum(rgb_to_luminance(srgb_to_linear(ldr[mask])), 1e-6)
    y = np.maximum(rgb_to_luminance(hdr[mask]), 1e-8)
    return float(np.log2(np.median(y / y_lin)))


def align_scale(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray | None = None) -> float:
    """The global factor k such that k * pred matches gt: exp(median(log Yg - log Yp)).

    Uses pixels in ``mask`` where both luminances are positive (at any scale: a ground truth
    stored at 1e-12 aligns as one at 1); falls back to all positive pixels, then to 1.0.
    """
    yp, yg = rgb_to_luminance(pred), rgb_to_luminance(gt)
    ok = (yp > 0) & (yg > 0) & np.isfinite(yp) & np.isfinite(yg)
    sel = ok & mask if mask is not None and np.any(ok & mask) else ok
    if not np.any(sel):
        return 1.0
    return float(np.exp(np.median(np.log(yg[sel]) - np.log(yp[sel]))))


def input_white_scale(hdr: np.ndarray, ldr: np.ndarray) -> float:
    """The global factor that puts ``hdr`` (HxWx3 scene-linear, any scale) on the scale of
    the photo ``ldr`` (HxWx3 display [0, 1]) linearised by the sRGB curve, over its
    well-exposed pixels (:func:`align_scale`): after it, 1.0 is the photo's white."""
    return align_scale(hdr, srgb_to_linear(ldr), well_exposed_mask(ldr))


_BRADFORD = np.array(
    [[0.8951, 0.2664, -0.1614], [-0.7502, 1.7135, 0.0367], [0.0389, -0.0685, 1.0296]], np.float64
)


def _xy_to_xyz(x: float, y: float) -> np.ndarray:
    return np.array([x / y, 1.0, (1.0 - x - y) / y])


def rgb_to_xyz_matrix(chromaticities) -> np.ndarray:
    """3x3 linear RGB -> CIE XYZ (Y of white = 1) for primaries/white given as 8 xy numbers."""
    c = np.asarray(chromaticities, np.float64)
    prim = np.stack([_xy_to_xyz(*c[i : i + 2]) for i in (0, 2, 4)], axis=1)
    scale = np.linalg.solve(prim, _xy_to_xyz(*c[6:8]))
    return prim * scale


def rgb_to_rec709_matrix(chromaticities) -> np.ndarray:
    """3x3 matrix taking linear RGB with these chromaticities to Rec.709/D65 linear RGB.

    The white point is adapted to D65 with the Bradford transform (as OpenEXR and ACES do).
    Apply as ``img @ M.T``.
    """
    src = rgb_to_xyz_matrix(chromaticities)
    dst = rgb_to_xyz_matrix(REC709_CHROMATICITIES)
    w_src = _BRADFORD @ (src @ np.ones(3))
    w_dst = _BRADFORD @ (dst @ np.ones(3))
    adapt = np.linalg.inv(_BRADFORD) @ np.diag(w_dst / w_src) @ _BRADFORD
    return (np.linalg.inv(dst) @ adapt @ src).astype(np.float32)
