"""Preprocessing: the brightness filter, exposure alignment, paired augmentation, orientation fix,
and round trips of the value-domain transforms in mlx_hdr.color."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from mlx_hdr import color
from mlx_hdr.data import preprocess as pp
from mlx_hdr.data.orientation import DIHEDRAL, apply_dihedral, find_orientation, invert_dihedral
from mlx_hdr.io.image_io import read_hdr, read_ldr


def pair(h=40, w=50, seed=0):
    rng = np.random.default_rng(seed)
    ldr = rng.random((h, w, 3)).astype(np.float32)
    return ldr, ldr * 7.0  # an HDR tied to the LDR so paired transforms can be checked


@pytest.fixture(scope="module")
def desk(shared):
    case = shared / "data/eval-public/ilm_desk"
    meta = json.loads((case / "meta.json").read_text())
    return read_ldr(case / "input.jpg"), read_hdr(case / "gt.hdr"), meta


def test_keep_hdr():
    assert pp.keep_hdr(4096.0) == (True, None)
    kept, why = pp.keep_hdr(5000.0)
    assert not kept and "4096" in why
    assert pp.keep_hdr(5000.0, limit=1e4)[0] and not pp.keep_hdr(float("nan"))[0]


def test_dynamic_range_stops():
    img = np.ones((100, 100, 3), np.float32)
    img[50:] = 1024.0
    assert pp.dynamic_range_stops(img) == pytest.approx(10.0, abs=1e-4)
    assert pp.dynamic_range_stops(np.zeros((4, 4, 3), np.float32)) == 0.0


def test_estimate_exposure_on_real_pair(desk):
    ldr, hdr, meta = desk
    assert pp.estimate_exposure(ldr, hdr) == pytest.approx(meta["exposure_scale"], rel=0.02)


@pytest.mark.parametrize("size", pp.TRAIN_SIZES)
def test_crop_resize_is_paired(size):
    ldr, hdr = pair(300, 400)
    out_ldr, out_hdr = pp.random_crop_resize(ldr, hdr, np.random.default_rng(0), size)
    assert out_ldr.shape == out_hdr.shape == (size, size, 3)
    np.testing.assert_allclose(out_hdr, out_ldr * 7.0, rtol=1e-5, atol=1e-5)
    assert out_ldr.min() >= 0 and out_ldr.max() <= 1
    with pytest.raises(ValueError, match="differ"):
        pp.random_crop_resize(ldr, hdr[:10], np.random.default_rng(0), size)


def test_flips_are_paired_and_random():
    ldr, hdr = pair()
    seen = set()
    for seed in range(40):
        a, b = pp.random_flip(ldr, hdr, np.random.default_rng(seed))
        np.testing.assert_array_equal(b, a * 7.0)
        seen.add(
            (
                bool(np.array_equal(a[:, ::-1], ldr) or np.array_equal(a[::-1, ::-1], ldr)),
                bool(np.array_equal(a[::-1], ldr) or np.array_equal(a[::-1, ::-1], ldr)),
            )
        )
    assert len(seen) == 4  # all four flip combinations occur
    a, _ = pp.augment_pair(ldr, hdr, np.random.default_rng(1), 32)
    b, _ = pp.augment_pair(ldr, hdr, np.random.default_rng(1), 32)
    np.testing.assert_array_equal(a, b)


def test_clip_mask():
    ldr = np.array([[[0.5, 0.2, 0.1], [0.975, 0.0, 0.0], [1.0, 1.0, 1.0]]], np.float32)
    np.testing.assert_allclose(color.clip_mask(ldr)[..., 0], [[0.0, 0.5, 1.0]], atol=1e-5)


# ---------------------------------------------------------------- color round trips


def test_target_round_trip_nhwc():
    rng = np.random.default_rng(0)
    hdr = np.exp2(rng.normal(0, 4, (2, 8, 8, 3))).astype(np.float32)
    hdr[1] *= 100  # per-image min-max
    target, lo, hi = color.hdr_to_target(hdr)
    assert target.shape == hdr.shape and lo.shape == (2, 1, 1, 1)
    for i in range(2):
        assert target[i].min() == pytest.approx(-1) and target[i].max() == pytest.approx(1, 1e-5)
    np.testing.assert_allclose(color.target_to_hdr(target, lo, hi), hdr, rtol=1e-4, atol=1e-6)


def test_input_round_trip_and_srgb():
    ldr = np.random.default_rng(0).random((6, 6, 3)).astype(np.float32)
    ldr[0, 0], ldr[0, 1] = 0.0, 1.0  # min-max is then the identity
    x = color.ldr_to_input(ldr)
    np.testing.assert_allclose(x.mean(axis=(0, 1)), (ldr.mean((0, 1)) - 0.45) / 0.226, atol=0.3)
    np.testing.assert_allclose(color.input_to_ldr(x), ldr, atol=1e-5)
    np.testing.assert_allclose(color.linear_to_srgb(color.srgb_to_linear(ldr)), ldr, atol=1e-6)


def test_rec709_matrices():
    np.testing.assert_allclose(
        color.rgb_to_rec709_matrix(color.REC709_CHROMATICITIES), np.eye(3), atol=1e-6
    )
    y_row = color.rgb_to_xyz_matrix(color.REC709_CHROMATICITIES)[1]
    np.testing.assert_allclose(y_row, color.REC709_LUMA, atol=2e-4)


# ---------------------------------------------------------------- orientation


def test_dihedral_inverse():
    x = np.arange(12).reshape(3, 4, 1)
    for op in DIHEDRAL:
        np.testing.assert_array_equal(apply_dihedral(apply_dihedral(x, op), invert_dihedral(op)), x)
    assert len({apply_dihedral(np.arange(9).reshape(3, 3), op).tobytes() for op in DIHEDRAL}) == 8
    with pytest.raises(ValueError, match="unknown orientation"):
        apply_dihedral(x, "spin")


@pytest.mark.parametrize("square", [False, True])
def test_orientation_repairs_real_pair(desk, square):
    ldr, hdr, _ = desk
    if square:  # all 8 candidates compete
        ldr, hdr = ldr[100:740, :640], hdr[100:740, :640]
    start = time.perf_counter()
    for op in DIHEDRAL:
        broken = apply_dihedral(hdr, op)
        found = find_orientation(ldr, broken)
        np.testing.assert_array_equal(apply_dihedral(broken, found.op), hdr)
        assert found.op == invert_dihedral(op) and found.score > 0.9
    print(f"orientation: {(time.perf_counter() - start) / 8 * 1e3:.1f} ms per pair")


def test_orientation_no_candidate():
    with pytest.raises(ValueError, match="no orientation"):
        find_orientation(np.zeros((10, 20, 3)), np.zeros((10, 30, 3)))
