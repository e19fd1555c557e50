"""Window compositing: mask geometry, brightness of the pasted outside, which views get one."""

from __future__ import annotations

import numpy as np
import pytest

from mlx_hdr.color import rgb_to_luminance
from mlx_hdr.data import composite
from mlx_hdr.data.simulate import SimConfig
from mlx_hdr.data.sources import PoolSource, sample_rng
from mlx_hdr.io.image_io import write_hdr


def test_window_mask_is_a_glazed_rectangle_inside_the_view():
    for seed in range(20):
        m = composite.window_mask(64, 96, np.random.default_rng(seed))
        assert m.shape == (64, 96) and m.dtype == np.float32
        assert 0.0 <= m.min() and m.max() <= 1.0 + 1e-6
        glass = m > 0.5
        assert 0.01 < glass.mean() < 0.9  # a window, not the whole view
        ys, xs = np.nonzero(glass)
        box = glass[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
        assert box.mean() > 0.6  # mostly glass within its bounding box (bars are thin)


def test_add_window_sets_the_outside_stops_above_the_room():
    rng = np.random.default_rng(3)
    room = np.full((48, 48, 3), 0.2, np.float32) * rng.uniform(0.5, 2.0, (48, 48, 1))
    outside = np.exp2(rng.normal(0, 1, (48, 48, 3))).astype(np.float32)
    out = composite.add_window(room, outside, np.random.default_rng(7), stops=4.0)
    mask = composite.window_mask(48, 48, np.random.default_rng(7))  # same draws
    glass = mask > 0.999
    y_out, y_room = rgb_to_luminance(out), rgb_to_luminance(room)
    np.testing.assert_allclose(out[mask == 0], room[mask == 0], rtol=1e-6)  # room untouched
    k = np.exp2(4.0) * composite.log_mean_luminance(room)
    k /= composite.log_mean_luminance(outside, mask)
    m = mask[..., None]
    np.testing.assert_allclose(out, (1 - m) * room + m * outside * k, rtol=1e-5)
    assert np.median(y_out[glass]) > 8 * np.median(y_room)


def test_window_masks_frame_surrounds_the_glass_and_keeps_its_draws():
    glass, frame = composite.window_masks(256, 384, np.random.default_rng(2))  # 2 bars
    np.testing.assert_array_equal(glass, composite.window_mask(256, 384, np.random.default_rng(2)))
    assert (frame >= 0).all() and (frame <= 1 + 1e-6).all()
    assert frame[glass > 0.999].max() < 1e-3  # no frame on the glass
    ys, xs = np.nonzero(glass > 0.5)
    y0, y1, x0, x1 = ys.min(), ys.max(), xs.min(), xs.max()
    bars = glass[y0 : y1 + 1, x0 : x1 + 1] < 0.01  # inside the window, not glass
    assert bars.sum() > 100 and frame[y0 : y1 + 1, x0 : x1 + 1][bars].min() > 0.9
    border = np.zeros_like(frame, bool)
    border[max(y0 - 1, 0) : y1 + 2, max(x0 - 1, 0) : x1 + 2] = True
    border[y0 : y1 + 1, x0 : x1 + 1] = False
    assert frame[border].mean() > 0.4  # a border around the glass


def test_lit_frame_is_frame_stops_above_the_room_and_leaves_the_rest():
    rng = np.random.default_rng(3)
    room = np.full((48, 48, 3), 0.2, np.float32) * rng.uniform(0.5, 2.0, (48, 48, 1))
    outside = np.exp2(rng.normal(0, 1, (48, 48, 3))).astype(np.float32)
    plain = composite.add_window(room, outside, np.random.default_rng(7), stops=4.0)
    lit = composite.add_window(room, outside, np.random.default_rng(7), 4.0, frame_stops=2.0)
    glass, frame = composite.window_masks(48, 48, np.random.default_rng(7))
    away = frame < 1e-6
    np.testing.assert_allclose(lit[away], plain[away], rtol=1e-5)  # glass and room as before
    f = frame[..., None]
    level = composite.log_mean_luminance(room) * 4.0
    np.testing.assert_allclose(lit, (1 - f) * plain + f * (0.2 * room + level), rtol=1e-5)
    assert (rgb_to_luminance(lit)[frame > 0.99] > 3.0 * composite.log_mean_luminance(room)).all()


def test_dynamic_range_of_a_flat_and_a_lit_view():
    flat = np.full((10, 10, 3), 0.3, np.float32)
    assert composite.dynamic_range(flat) == pytest.approx(0.0, abs=1e-5)
    lit = flat.copy()
    lit[:3] = 30.0  # 30% of the view 100x brighter
    assert composite.dynamic_range(lit) > 3.0


@pytest.fixture(scope="module")
def two_pools(tmp_path_factory):
    root = tmp_path_factory.mktemp("rooms")
    rng = np.random.default_rng(0)
    room = (0.1 * np.exp2(rng.normal(0, 0.3, (32, 64, 3)))).astype(np.float32)
    lit = room.copy()
    lit[:8] = 500.0  # a bright sky band: not a room
    write_hdr(root / "room.hdr", room.repeat(2, 0).repeat(2, 1))
    write_hdr(root / "lit.hdr", lit.repeat(2, 0).repeat(2, 1))
    (root / "MANIFEST.csv").write_text("file,kind\nroom.hdr,photo\nlit.hdr,photo\n")
    return root


def test_windows_go_only_into_views_without_a_bright_light(two_pools):
    src = PoolSource(two_pools, size=24, sim=SimConfig(window_prob=1.0))
    seen = {"room": 0, "lit": 0}
    for i in range(24):
        crop, info = src.scene(sample_rng(0, 0, i))
        if "window" in info:
            seen[info["name"]] += 1
            assert SimConfig().window_stops[0] <= info["window"] <= SimConfig().window_stops[1]
            assert info["window_frame"] is None  # window_frame_prob 0: no lit frame
    assert seen["room"] > 0
    off = PoolSource(two_pools, size=24, sim=SimConfig())
    assert not any("window" in off.scene(sample_rng(0, 0, i))[1] for i in range(8))


def test_window_size_setting_bounds_the_window_width():
    widths = {}
    for size in [(0.1, 0.2), (0.5, 0.6)]:
        cols = []
        for seed in range(12):
            m = composite.window_mask(64, 200, np.random.default_rng(seed), size) > 0.5
            xs = np.nonzero(m.any(axis=0))[0]
            cols.append(xs.max() - xs.min() + 1)
        widths[size] = max(cols)
    assert widths[(0.1, 0.2)] <= 0.2 * 200 + 2 < 0.5 * 200 <= widths[(0.5, 0.6)] + 50


def test_sim_window_size_reaches_the_composite(two_pools):
    def glass_share(size):
        src = PoolSource(two_pools, size=48, sim=SimConfig(window_prob=1.0, window_size=size))
        shares = []
        for i in range(16):
            crop, info = src.scene(sample_rng(0, 0, i))
            if "window" in info:
                shares.append((rgb_to_luminance(crop) > 1.0).mean())
        return np.mean(shares)

    assert glass_share((0.05, 0.1)) < 0.5 * glass_share((0.5, 0.6))


def test_sim_window_frame_setting_lights_the_frame(two_pools):
    sim = SimConfig(window_prob=1.0, window_frame_prob=1.0, window_frame_stops=(2.0, 2.0))
    src = PoolSource(two_pools, size=48, sim=sim)
    frames = [src.scene(sample_rng(0, 0, i))[1].get("window_frame") for i in range(16)]
    assert {f for f in frames if f is not None} == {2.0} and frames.count(None) < len(frames)
