"""Panorama views (checked with a panorama that encodes its own directions) and photo crops."""

from __future__ import annotations

import numpy as np
import pytest

from mlx_hdr.data.panorama import (
    ViewConfig,
    bright_pixel,
    equirect_to_perspective,
    random_crop,
    random_view,
)


def direction_pano(w=720, h=360):
    """Channels: cos(longitude), sin(longitude), sin(latitude) + 1 (all >= 0 after offset)."""
    lon = np.radians((np.arange(w) + 0.5) / w * 360 - 180)
    lat = np.radians(90 - (np.arange(h) + 0.5) / h * 180)
    lon, lat = np.meshgrid(lon, lat)
    return np.stack([np.cos(lon) + 1, np.sin(lon) + 1, np.sin(lat) + 1], -1).astype(np.float32)


def decode(px):
    return np.degrees(np.arctan2(px[1] - 1, px[0] - 1)), np.degrees(np.arcsin(px[2] - 1))


@pytest.mark.parametrize("yaw,pitch", [(0, 0), (90, 20), (-135, -30), (180, 10)])
def test_view_centre_and_extent(yaw, pitch):
    pano = direction_pano()
    view = equirect_to_perspective(pano, yaw, pitch, 90.0, (33, 65))
    lon, lat = decode(view[16, 32])
    assert abs((lon - yaw + 180) % 360 - 180) < 0.6 and abs(lat - pitch) < 0.6
    if pitch == 0:  # horizontal extent = field of view (pixel centres: 45 * (1 - 1/65) deg)
        left, _ = decode(view[16, 0])
        right, _ = decode(view[16, -1])
        assert (right - left) % 360 == pytest.approx(90 * (1 - 1 / 65), abs=1.0)


def test_view_up_is_up():
    view = equirect_to_perspective(direction_pano(), 30, 0, 80, (41, 41))
    assert decode(view[0, 20])[1] > decode(view[-1, 20])[1] + 30


def test_random_view_ranges_and_determinism(shared):
    pano = direction_pano(256, 128)
    a, pa = random_view(pano, np.random.default_rng(3), (24, 32))
    b, pb = random_view(pano, np.random.default_rng(3), (24, 32))
    np.testing.assert_array_equal(a, b)
    assert pa == pb and a.shape == (24, 32, 3)
    cfg = ViewConfig()
    for seed in range(20):
        _, p = random_view(pano, np.random.default_rng(seed), (8, 8), cfg)
        assert -30 <= p["pitch"] <= 30 and 60 <= p["fov"] <= 100 and -180 <= p["yaw"] < 180
    from mlx_hdr.io.image_io import read_hdr

    real = read_hdr(shared / "data/hdr-pool/ph_lebombo.hdr")
    view, _ = random_view(real, np.random.default_rng(0), (64, 96))
    assert view.shape == (64, 96, 3) and np.isfinite(view).all() and view.min() >= 0
    assert view.max() > 0


def test_random_crop_shape_and_content():
    img = np.arange(40 * 60, dtype=np.float32).reshape(40, 60, 1).repeat(3, -1)
    for seed in range(10):
        out, info = random_crop(img, np.random.default_rng(seed), (16, 32))
        assert out.shape == (16, 32, 3)
        assert info["w"] == pytest.approx(2 * info["h"], abs=1)
        region = img[info["y0"] : info["y0"] + info["h"], info["x0"] : info["x0"] + info["w"]]
        assert region.min() <= out.min() and out.max() <= region.max()


def _scene_with_lamp(h: int, w: int, row: int, col: int) -> np.ndarray:
    img = np.full((h, w, 3), 0.2, np.float32)
    img[row - 3 : row + 4, col - 3 : col + 4] = 500.0  # 49 px: more than the top 0.1%
    return img


def test_bright_pixel_is_among_the_brightest():
    img = _scene_with_lamp(64, 128, 20, 100)
    rng = np.random.default_rng(0)
    for _ in range(10):
        row, col = bright_pixel(img, rng, top=40 / img[..., 0].size)
        assert abs(row - 20) <= 3 and abs(col - 100) <= 3


def test_highlight_views_contain_the_lamp():
    """With highlight_views=1 every view / crop holds the lamp; uniform ones mostly do not."""
    pano = _scene_with_lamp(128, 256, 30, 200)  # lat ~ +47.5, lon ~ +101
    aimed, uniform = ViewConfig(highlight_views=1.0), ViewConfig()
    rng = np.random.default_rng(1)
    hits = [random_view(pano, rng, (48, 64), aimed)[0].max() > 50 for _ in range(12)]
    assert all(hits)
    misses = [random_view(pano, rng, (48, 64), uniform)[0].max() <= 50 for _ in range(12)]
    assert sum(misses) >= 6
    photo = _scene_with_lamp(150, 200, 140, 5)
    crops = [random_crop(photo, rng, (32, 32), aimed)[0].max() > 50 for _ in range(12)]
    assert all(crops)
