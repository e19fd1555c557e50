"""Normal-lens views of a circular fisheye image, for validating on fisheye bracket sets.

A circular fisheye records a hemisphere inside a circle; users photograph with ordinary
(rectilinear) lenses. :func:`rectilinear_view` resamples the circle as a rectilinear camera
pointed ``yaw`` degrees right and ``pitch`` degrees down from the lens axis would see it,
for the LDR frames and their merged HDR alike. The fisheye is taken as equidistant (the
image radius grows in proportion to the angle off axis, 90° at the circle's edge), the
common design of circular fisheyes; a lens that departs from it bends straight lines a
little in the views, which the metrics do not depend on.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class Circle:
    """The image circle, pixels: centre (cx, cy) and radius (90° off axis)."""

    cx: float
    cy: float
    radius: float


def find_circle(img: np.ndarray, level: float = 0.05) -> Circle:
    """The image circle of an HxWx3 fisheye image (linear or display, >= 0): the centroid
    and equal-area radius of the pixels above ``level`` times their median."""
    y = img.mean(axis=-1)
    lit = y > level * np.median(y[y > 0]) if (y > 0).any() else y > 0
    ys, xs = np.nonzero(lit)
    if xs.size == 0:
        raise ValueError("no image circle: the image is black")
    return Circle(float(xs.mean()), float(ys.mean()), float(np.sqrt(lit.sum() / np.pi)))


def view_maps(
    circle: Circle, yaw: float, pitch: float, fov: float, size: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """(map_x, map_y) float32 for ``cv2.remap``: where each pixel of an (h, w) rectilinear
    view with horizontal field of view ``fov`` degrees, turned ``yaw`` degrees right and
    ``pitch`` degrees down, lies in the fisheye image."""
    h, w = size
    f = (w / 2) / np.tan(np.radians(fov) / 2)
    xs, ys = np.meshgrid(np.arange(w) - (w - 1) / 2, np.arange(h) - (h - 1) / 2)
    d = np.stack([xs, ys, np.full_like(xs, f)], axis=-1)
    a, b = np.radians(yaw), np.radians(pitch)
    turn = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])
    tilt = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    d = d @ (turn @ tilt).T
    theta = np.arctan2(np.hypot(d[..., 0], d[..., 1]), d[..., 2])  # angle off the lens axis
    phi = np.arctan2(d[..., 1], d[..., 0])
    r = circle.radius * theta / (np.pi / 2)
    map_x = circle.cx + r * np.cos(phi)
    map_y = circle.cy + r * np.sin(phi)
    return map_x.astype(np.float32), map_y.astype(np.float32)


def rectilinear_view(
    img: np.ndarray, circle: Circle, yaw: float, pitch: float, fov: float, size: tuple[int, int]
) -> np.ndarray:
    """The HxWx3 float32 rectilinear view of a fisheye ``img`` (:func:`view_maps`),
    bilinear, black outside the image."""
    return remap(img, view_maps(circle, yaw, pitch, fov, size))


def remap(img: np.ndarray, maps: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """``img`` (HxWx3) resampled at ``maps`` from :func:`view_maps` (compute them once for
    many images of one lens), float32, bilinear, black outside the image."""
    src = np.ascontiguousarray(img, np.float32)
    return cv2.remap(src, *maps, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
