"""Perspective views from equirectangular panoramas, and random crops from photos.

Equirectangular convention: column u covers longitude -180..180 degrees left to right
(longitude 0, the view at yaw 0, is the image centre), row v covers latitude +90 (top) to
-90 (bottom). Yaw turns right, pitch looks up, both in degrees. Images are float32 HxWx3.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from mlx_hdr.color import rgb_to_luminance


@dataclass
class ViewConfig:
    """Ranges for random panorama views (degrees) and photo crops."""

    pitch: tuple[float, float] = (-30.0, 30.0)
    fov: tuple[float, float] = (60.0, 100.0)  # horizontal field of view
    crop_scale: tuple[float, float] = (0.4, 1.0)  # photo crop side / shorter image side
    # share of views/crops placed to contain one of the image's brightest pixels (top 0.1% of
    # luminance): uniform views mostly miss the few light sources a scene has
    highlight_views: float = 0.0


def bright_pixel(img: np.ndarray, rng: np.random.Generator, top: float = 1e-3) -> tuple[int, int]:
    """(row, col) of a pixel drawn uniformly from the ``top`` fraction by luminance."""
    y = rgb_to_luminance(img)
    k = max(1, int(y.size * top))
    idx = np.argpartition(y.ravel(), y.size - k)[y.size - k :]
    row, col = np.unravel_index(int(idx[rng.integers(k)]), y.shape)
    return int(row), int(col)


def _aim(cfg: ViewConfig, rng: np.random.Generator) -> bool:
    return cfg.highlight_views > 0 and rng.random() < cfg.highlight_views


def _view_directions(yaw: float, pitch: float, fov: float, size: tuple[int, int]) -> np.ndarray:
    """Unit ray directions (h, w, 3), x right, y up, z forward, after pitch then yaw."""
    h, w = size
    half = np.tan(np.radians(fov) / 2.0)
    xs = (np.arange(w, dtype=np.float64) + 0.5) / w * 2.0 - 1.0
    ys = (np.arange(h, dtype=np.float64) + 0.5) / h * 2.0 - 1.0
    x, y = np.meshgrid(xs * half, -ys * half * h / w)
    d = np.stack([x, y, np.ones_like(x)], axis=-1)
    p, t = np.radians(pitch), np.radians(yaw)
    rot_pitch = np.array([[1, 0, 0], [0, np.cos(p), np.sin(p)], [0, -np.sin(p), np.cos(p)]])
    rot_yaw = np.array([[np.cos(t), 0, np.sin(t)], [0, 1, 0], [-np.sin(t), 0, np.cos(t)]])
    d = d @ (rot_yaw @ rot_pitch).T
    return d / np.linalg.norm(d, axis=-1, keepdims=True)


def equirect_to_perspective(
    pano: np.ndarray, yaw: float, pitch: float, fov: float, size: tuple[int, int]
) -> np.ndarray:
    """Render a pinhole view (h, w) = ``size`` of an equirectangular HxWx3 panorama.

    Bilinear sampling (``cv2.remap``); the longitude wraps around, the poles are clamped.
    A 1024-px-wide panorama holds ~256 px per 90 degrees: larger outputs are upsampled.
    """
    ph, pw = pano.shape[:2]
    d = _view_directions(yaw, pitch, fov, size)
    lon = np.arctan2(d[..., 0], d[..., 2])
    lat = np.arcsin(np.clip(d[..., 1], -1.0, 1.0))
    pad = 2  # wrapped columns on each side so bilinear sampling crosses the seam
    map_x = ((lon / (2 * np.pi) + 0.5) * pw - 0.5 + pad).astype(np.float32)
    map_y = ((0.5 - lat / np.pi) * ph - 0.5).astype(np.float32)
    wrapped = np.concatenate([pano[:, -pad:], pano, pano[:, :pad]], axis=1)
    out = cv2.remap(
        np.ascontiguousarray(wrapped, np.float32),
        map_x,
        map_y,
        interpolation=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )
    return np.maximum(out, 0.0)


def random_view(
    pano: np.ndarray, rng: np.random.Generator, size: tuple[int, int], cfg: ViewConfig | None = None
) -> tuple[np.ndarray, dict]:
    """A random perspective view: yaw uniform in [-180, 180), pitch and fov from ``cfg``.

    With probability ``cfg.highlight_views`` the view is instead aimed near one of the
    brightest pixels (which lands anywhere in the view's central two thirds), pitch |.| <= 75.
    """
    cfg = cfg or ViewConfig()
    params = {
        "yaw": float(rng.uniform(-180.0, 180.0)),
        "pitch": float(rng.uniform(*cfg.pitch)),
        "fov": float(rng.uniform(*cfg.fov)),
    }
    if _aim(cfg, rng):
        row, col = bright_pixel(pano, rng)
        ph, pw = pano.shape[:2]
        lon, lat = (col + 0.5) / pw * 360.0 - 180.0, 90.0 - (row + 0.5) / ph * 180.0
        fov = params["fov"]
        params["yaw"] = float(lon + rng.uniform(-fov, fov) / 3.0)
        params["pitch"] = float(np.clip(lat + rng.uniform(-fov, fov) / 4.0, -75.0, 75.0))
    return equirect_to_perspective(pano, size=size, **params), params


def random_crop(
    img: np.ndarray, rng: np.random.Generator, size: tuple[int, int], cfg: ViewConfig | None = None
) -> tuple[np.ndarray, dict]:
    """A random crop with the output's aspect ratio, resized to ``size`` = (h, w).

    The crop's shorter side is ``crop_scale`` times the image's shorter side (area
    interpolation when shrinking, bilinear when enlarging).
    """
    cfg = cfg or ViewConfig()
    h, w = img.shape[:2]
    oh, ow = size
    scale = float(rng.uniform(*cfg.crop_scale))
    ch = max(1, min(h, int(round(min(h, w * oh / ow) * scale))))
    cw = max(1, min(w, int(round(ch * ow / oh))))
    if _aim(cfg, rng):  # a window containing one of the brightest pixels
        row, col = bright_pixel(img, rng)
        y0 = int(rng.integers(max(0, row - ch + 1), min(row, h - ch) + 1))
        x0 = int(rng.integers(max(0, col - cw + 1), min(col, w - cw) + 1))
    else:
        y0, x0 = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
    crop = img[y0 : y0 + ch, x0 : x0 + cw]
    interp = cv2.INTER_AREA if ch > oh else cv2.INTER_LINEAR
    out = cv2.resize(np.ascontiguousarray(crop), (ow, oh), interpolation=interp)
    return out, {"y0": y0, "x0": x0, "h": ch, "w": cw}
