"""Scene compositing for the camera simulator: a bright window into a view.

Real photos are often taken indoors with a window in the frame: the camera meters the room,
so the window's daylight clips several stops above white. The HDR pools hold few such scenes,
so ``PoolSource`` can paste a second view (the outside) into a window of the first (the room),
``stops`` brighter than the room's log-average luminance, behind glazing bars through which
the room shows. Everything is drawn from a ``np.random.Generator``.
"""

from __future__ import annotations

import cv2
import numpy as np

from mlx_hdr.color import rgb_to_luminance

EDGE_SIGMA = 0.7  # px: anti-aliased window edges


def window_mask(
    h: int, w: int, rng: np.random.Generator, size: tuple[float, float] = (0.2, 0.6)
) -> np.ndarray:
    """An HxW float32 mask in [0, 1]: 1 where a window's glass is, 0 on its bars and elsewhere.

    The window spans ``size`` of the width (and 1-2x that share of the height, at most all of
    it), may run off the view's edge, and has 0-2 vertical and 0-1 horizontal glazing bars of
    2-6% of its shorter side.
    """
    return window_masks(h, w, rng, size)[0]


def window_masks(
    h: int, w: int, rng: np.random.Generator, size: tuple[float, float] = (0.2, 0.6)
) -> tuple[np.ndarray, np.ndarray]:
    """(glass, frame): :func:`window_mask`'s glass (same draws) and the window's frame, HxW
    float32 in [0, 1]: its glazing bars and a border of the bars' width around the glass."""
    ww = max(2, round(w * rng.uniform(*size)))
    wh = max(2, min(h, round(h * rng.uniform(*size) * rng.uniform(1.0, 2.0))))
    x0 = int(rng.integers(-ww // 4, max(1, w - 3 * ww // 4)))
    y0 = int(rng.integers(-wh // 4, max(1, h - 3 * wh // 4)))
    mask = np.zeros((h, w), np.float32)
    mask[max(y0, 0) : max(y0 + wh, 0), max(x0, 0) : max(x0 + ww, 0)] = 1.0
    bar = max(1, round(min(ww, wh) * rng.uniform(0.02, 0.06)))
    n = int(rng.integers(0, 3))
    for x in (x0 + round(k * ww / (n + 1)) - bar // 2 for k in range(1, n + 1)):
        mask[:, max(x, 0) : max(x + bar, 0)] = 0.0
    if rng.random() < 0.5:
        y = y0 + wh // 2 - bar // 2
        mask[max(y, 0) : max(y + bar, 0), :] = 0.0
    outer = np.zeros((h, w), np.float32)
    ys, xs = (
        slice(max(y0 - bar, 0), max(y0 + wh + bar, 0)),
        slice(max(x0 - bar, 0), max(x0 + ww + bar, 0)),
    )
    outer[ys, xs] = 1.0
    glass = cv2.GaussianBlur(mask, (0, 0), EDGE_SIGMA)
    frame = cv2.GaussianBlur(outer, (0, 0), EDGE_SIGMA) * (1.0 - glass)
    return glass, frame


def log_mean_luminance(hdr: np.ndarray, weight: np.ndarray | None = None) -> float:
    """exp of the (weighted) mean of log Y over an HxWx3 scene-linear image."""
    logy = np.log(np.maximum(rgb_to_luminance(hdr), 1e-6))
    if weight is None:
        return float(np.exp(logy.mean()))
    return float(np.exp((logy * weight).sum() / max(float(weight.sum()), 1e-6)))


def dynamic_range(hdr: np.ndarray, percentile: float = 98.0) -> float:
    """Stops from the log-average luminance to the ``percentile``-th of an HxWx3 image."""
    y = np.maximum(rgb_to_luminance(hdr), 1e-6)
    return float(np.log2(np.percentile(y, percentile) / log_mean_luminance(hdr)))


def add_window(
    room: np.ndarray,
    outside: np.ndarray,
    rng: np.random.Generator,
    stops: float,
    size: tuple[float, float] = (0.2, 0.6),
    frame_stops: float | None = None,
) -> np.ndarray:
    """Composite ``outside`` into a window of ``room`` (both HxWx3 scene-linear >= 0, same
    shape), scaled so that its log-average luminance behind the glass is ``stops`` above the
    room's; ``size``: the window's share of the width (``window_mask``). With
    ``frame_stops``, the window's frame (:func:`window_masks`) is lit by the daylight:
    a neutral ``frame_stops`` above the room's log-average luminance, over a fifth of the
    room behind it, so a bright window meets the room through near-white bars and reveals
    as real ones do. Returns float32 HxWx3."""
    glass, frame = window_masks(*room.shape[:2], rng, size)
    room_level = log_mean_luminance(room)
    k = np.exp2(stops) * room_level / log_mean_luminance(outside, glass)
    m = glass[..., None]
    out = (1.0 - m) * room + m * (outside * np.float32(k))
    if frame_stops is not None:
        f = frame[..., None]
        out = (1.0 - f) * out + f * (0.2 * room + np.float32(room_level * np.exp2(frame_stops)))
    return out.astype(np.float32)
