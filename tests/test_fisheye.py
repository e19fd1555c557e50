"""Normal-lens views of a circular fisheye (the bracket-set validation's --rectilinear)."""

from __future__ import annotations

import numpy as np
import pytest

from mlx_hdr.data.fisheye import Circle, find_circle, rectilinear_view, view_maps


def directions_fisheye(circle: Circle, shape=(300, 400)) -> np.ndarray:
    """An equidistant fisheye image whose pixels hold (direction + 1) / 2, the direction
    each one sees (x right, y down, z along the lens axis); black outside the circle."""
    ys, xs = np.mgrid[: shape[0], : shape[1]].astype(np.float64)
    dx, dy = xs - circle.cx, ys - circle.cy
    r = np.hypot(dx, dy)
    theta, phi = r / circle.radius * np.pi / 2, np.arctan2(dy, dx)
    d = np.stack([np.sin(theta) * np.cos(phi), np.sin(theta) * np.sin(phi), np.cos(theta)], -1)
    return np.where((r <= circle.radius)[..., None], (d + 1) / 2, 0.0).astype(np.float32)


def test_find_circle_recovers_the_image_circle():
    circle = Circle(210.0, 148.0, 120.0)
    found = find_circle(directions_fisheye(circle))
    assert abs(found.cx - 210) < 1 and abs(found.cy - 148) < 1 and abs(found.radius - 120) < 1
    with pytest.raises(ValueError, match="black"):
        find_circle(np.zeros((8, 8, 3), np.float32))


@pytest.mark.parametrize("yaw,pitch", [(0.0, 0.0), (35.0, 0.0), (-20.0, 15.0)])
def test_rectilinear_view_sees_the_right_directions(yaw, pitch):
    circle = Circle(200.0, 150.0, 140.0)
    fisheye = directions_fisheye(circle)
    h, w, fov = 30, 45, 70.0
    view = rectilinear_view(fisheye, circle, yaw, pitch, fov, (h, w))
    f = (w / 2) / np.tan(np.radians(fov) / 2)
    xs, ys = np.meshgrid(np.arange(w) - (w - 1) / 2, np.arange(h) - (h - 1) / 2)
    ray = np.stack([xs, ys, np.full_like(xs, f)], -1)
    ray /= np.linalg.norm(ray, axis=-1, keepdims=True)
    a, b = np.radians(yaw), np.radians(pitch)
    turn = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])
    tilt = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    expected = ((ray @ (turn @ tilt).T) + 1) / 2
    np.testing.assert_allclose(view, expected, atol=0.01)


def test_view_centre_on_axis_is_the_circle_centre():
    circle = Circle(100.5, 80.0, 60.0)
    map_x, map_y = view_maps(circle, 0.0, 0.0, 90.0, (21, 31))
    assert map_x[10, 15] == pytest.approx(100.5) and map_y[10, 15] == pytest.approx(80.0)
    # the last pixel centre, 15 px right of the axis with f = 15.5 px: equidistant radius
    angle = np.degrees(np.arctan(15 / 15.5))
    assert map_x[10, -1] - 100.5 == pytest.approx(60.0 * angle / 90, rel=1e-4)


def test_find_circle_with_a_lit_barrel_windows_and_a_cut_circle():
    """As the office bracket set's HDR: the lens barrel lit at a tenth of the scene outside
    the circle; inside it, a window 100 times brighter and a desk at the edge, darker than
    the rest (five times the barrel); the circle cut by the frame's top and bottom; noise."""
    h, w, truth = 300, 440, Circle(224.0, 148.0, 156.0)
    ys, xs = np.mgrid[:h, :w].astype(np.float64)
    r = np.hypot(xs - truth.cx, ys - truth.cy)
    rng = np.random.default_rng(3)
    y = np.where(r <= truth.radius, 2.0 + xs / w, 0.2 + 0.1 * (xs / w) ** 2)
    y[(xs > 300) & (xs < 360) & (ys > 60) & (ys < 200) & (r <= truth.radius)] = 300.0  # window
    y[(ys > 230) & (r <= truth.radius)] = 1.0  # a dark desk at the bottom edge
    y *= np.exp(rng.normal(0.0, 0.1, y.shape))
    found = find_circle(np.repeat(y[..., None], 3, axis=-1).astype(np.float32))
    assert abs(found.cx - truth.cx) < 2 and abs(found.cy - truth.cy) < 2, found
    assert abs(found.radius - truth.radius) < 2, found


def test_a_positive_pitch_looks_up():
    circle = Circle(100.0, 80.0, 60.0)
    _, map_y = view_maps(circle, 0.0, 30.0, 60.0, (21, 31))
    assert map_y[10, 15] == pytest.approx(80.0 - 60.0 * 30 / 90, abs=0.01)


def test_an_image_without_a_circle_is_said_to_have_none():
    """A full-frame photo, a flat frame, a bright square: no radius at which the light falls
    off all around (the rays' guesses had halved the radius on each pass)."""
    rng = np.random.default_rng(0)
    square = np.full((300, 440, 3), 0.2, np.float32)
    square[90:210, 160:280] = 5.0
    for img in (rng.uniform(0.1, 1.0, (300, 440, 3)), np.ones((300, 440, 3)), square):
        with pytest.raises(ValueError, match="no image circle"):
            find_circle(np.asarray(img, np.float32))
