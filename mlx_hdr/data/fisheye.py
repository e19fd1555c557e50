"""Normal-lens views of a circular fisheye image, for validating on fisheye bracket sets.

A circular fisheye records a hemisphere inside a circle; users photograph with ordinary
(rectilinear) lenses. :func:`rectilinear_view` resamples the circle as a rectilinear camera
pointed ``yaw`` degrees right and ``pitch`` degrees up from the lens axis would see it,
for the LDR frames and their merged HDR alike. The fisheye is taken as equidistant (the
image radius grows in proportion to the angle off axis, 90° at the circle's edge). Many
circular fisheyes are equisolid instead (r = R·√2·sin(θ/2); the office set's lens is
likely one, an 8 mm on a Canon 5D): then straight lines bend a little in the views and a
view turned 40° looks about 37° off axis, which the metrics do not depend on, since the
photo and its truth share the mapping.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

MIN_FALL = -0.7  # natural log: the median ray darkens at least 2x across the circle's edge


@dataclass(frozen=True)
class Circle:
    """The image circle, pixels: centre (cx, cy) and radius (90° off axis)."""

    cx: float
    cy: float
    radius: float


def find_circle(img: np.ndarray) -> Circle:
    """The image circle of an HxWx3 fisheye image (linear or display, >= 0): where its
    light falls off at the edge of the lens's picture. A first guess from the convex hull
    of what is brighter than the frame's corners (:func:`_first_guess`), then,
    twice, the circle fitted through the steepest fall along 360 rays from its centre
    (:func:`_edge_points`). A lens barrel lit dimly outside the circle, windows and lamps
    inside it, and a circle cut by the frame are allowed for. ``ValueError`` where there is
    no circle: no radius at which most rays darken 2x, or edges that lie on none."""
    y = img.mean(axis=-1)
    if not (y > 0).any():
        raise ValueError("no image circle: the image is black")
    logy = np.log(np.maximum(y, 1e-4 * np.median(y[y > 0]))).astype(np.float32)  # black: far below
    circle = _first_guess(logy)
    for _ in range(2):
        xs, ys = _edge_points(logy, circle)
        circle = _fitted(xs, ys)
    near = np.abs(np.hypot(xs - circle.cx, ys - circle.cy) - circle.radius)
    if np.mean(near <= max(3.0, 0.02 * circle.radius)) < 0.5:  # the rays' edges are no circle
        raise ValueError("no image circle: the edges found do not lie on one")
    return circle


def _first_guess(logy: np.ndarray) -> Circle:
    """Centroid and equal-area radius of the convex hull of the largest region at least
    three times brighter than the frame's corners (outside the circle), in ``logy`` (HxW
    log luminance); the whole frame where none is."""
    h, w = logy.shape
    c = max(2, min(h, w) // 30)
    corners = [logy[:c, :c], logy[:c, -c:], logy[-c:, :c], logy[-c:, -c:]]
    outside = np.median(np.concatenate([a.ravel() for a in corners]))
    lit = (logy > outside + np.log(3.0)).astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(lit, connectivity=8)
    if count < 2:
        return Circle((w - 1) / 2, (h - 1) / 2, float(np.sqrt(h * w / np.pi)))
    largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    hull = cv2.convexHull(cv2.findNonZero((labels == largest).astype(np.uint8)))
    m, area = cv2.moments(hull), max(cv2.contourArea(hull), 1.0)
    if m["m00"] <= 0:  # a line or a point
        cx, cy = hull[:, 0].mean(axis=0)
        return Circle(float(cx), float(cy), float(np.sqrt(area / np.pi)))
    return Circle(m["m10"] / m["m00"], m["m01"] / m["m00"], float(np.sqrt(area / np.pi)))


def _edge_points(logy: np.ndarray, guess: Circle, rays: int = 360):
    """(x, y) arrays of where, along ``rays`` rays from ``guess``'s centre, ``logy`` falls
    most steeply within a tenth of the radius at which the median ray falls most steeply
    (rays searched from half to one and a half times ``guess``'s radius, inside the
    frame)."""
    h, w = logy.shape
    a = np.linspace(0.0, 2 * np.pi, rays, endpoint=False)[:, None]
    rs = np.arange(0.5 * guess.radius, 1.5 * guess.radius + 1.0)
    xs, ys = guess.cx + rs * np.cos(a), guess.cy + rs * np.sin(a)
    prof = cv2.remap(logy, xs.astype(np.float32), ys.astype(np.float32), cv2.INTER_LINEAR)
    k = max(2, round(0.01 * guess.radius))  # the fall over 2k px, centred
    fall = np.full(prof.shape, np.nan, np.float32)
    fall[:, k:-k] = prof[:, 2 * k :] - prof[:, : -2 * k]
    fall[(xs < 0) | (xs > w - 1) | (ys < 0) | (ys > h - 1)] = np.nan
    usable = ~np.isnan(fall).all(axis=0)
    if not usable.any():
        raise ValueError("no image circle: no edge found")
    median = np.nanmedian(fall[:, usable], axis=0)
    if np.nanmin(median) > MIN_FALL:  # no radius where most rays darken: no circle
        raise ValueError("no image circle: the light falls off at no radius all around")
    edge = rs[usable][np.nanargmin(median)]
    fall[:, np.abs(rs - edge) > 0.1 * edge] = np.nan
    found = ~np.isnan(fall).all(axis=1)
    r = rs[np.nanargmin(np.where(np.isnan(fall[found]), np.inf, fall[found]), axis=1)]
    return guess.cx + r * np.cos(a[found, 0]), guess.cy + r * np.sin(a[found, 0])


def _fitted(xs: np.ndarray, ys: np.ndarray) -> Circle:
    """The least-squares circle through points (x, y), fitted three times, each time
    without the points more than three times the median distance off the last fit."""
    for _ in range(3):
        a = np.stack([xs, ys, np.ones_like(xs)], axis=1)
        (p, q, c), *_ = np.linalg.lstsq(a, xs**2 + ys**2, rcond=None)
        cx, cy = p / 2, q / 2
        radius = float(np.sqrt(max(c + cx**2 + cy**2, 1.0)))
        off = np.abs(np.hypot(xs - cx, ys - cy) - radius)
        keep = off <= max(3.0 * np.median(off), 1.0)
        xs, ys = xs[keep], ys[keep]
    return Circle(float(cx), float(cy), radius)


def inside(circle: Circle, shape: tuple[int, ...]) -> np.ndarray:
    """HxW bool for an image of ``shape`` (H, W, ...): the pixels within the image circle
    (the rest is lens barrel and black)."""
    ys, xs = np.indices(shape[:2], dtype=np.float32)
    return np.hypot(xs - circle.cx, ys - circle.cy) <= circle.radius


def view_maps(
    circle: Circle, yaw: float, pitch: float, fov: float, size: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """(map_x, map_y) float32 for ``cv2.remap``: where each pixel of an (h, w) rectilinear
    view with horizontal field of view ``fov`` degrees, turned ``yaw`` degrees right and
    ``pitch`` degrees up, lies in the fisheye image."""
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
