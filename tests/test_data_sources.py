"""Training sources: sample shapes and value domains, determinism given the RNG, pairs aligned."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from mlx_hdr.color import clip_mask, linear_to_srgb
from mlx_hdr.data.manifest import index_dataset
from mlx_hdr.data.orientation import apply_dihedral
from mlx_hdr.data.simulate import SimConfig
from mlx_hdr.data.sources import PairSource, PoolSource, sample_rng
from mlx_hdr.errors import InputError
from mlx_hdr.io.image_io import write_hdr


@pytest.fixture(scope="module")
def pool_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("pool")
    rng = np.random.default_rng(0)
    pano = np.exp2(rng.normal(0, 2, (16, 32, 3))).repeat(4, 0).repeat(4, 1).astype(np.float32)
    write_hdr(root / "pano.hdr", pano)
    write_hdr(root / "photo.exr", pano[:40, :60] * 3)
    (root / "MANIFEST.csv").write_text("file,kind\npano.hdr,panorama\nphoto.exr,photo\n")
    return root


def batch(source, n: int = 3, seed: int = 0) -> dict[str, np.ndarray]:
    samples = [source.sample(i, sample_rng(seed, 0, i)) for i in range(n)]
    ldr, hdr = (np.stack([s[k] for s in samples]) for k in (0, 1))
    return {"ldr": ldr, "hdr": hdr, "mask": clip_mask(ldr)}


def test_pool_samples_shapes_and_domains(pool_dir):
    src = PoolSource(pool_dir, size=24)
    b = batch(src)
    assert b["ldr"].shape == b["hdr"].shape == (3, 24, 24, 3) and b["mask"].shape == (3, 24, 24, 1)
    assert all(v.dtype == np.float32 for v in b.values())
    assert b["ldr"].min() >= 0 and b["ldr"].max() <= 1 and b["hdr"].min() >= 0
    # Exposure-scaled HDR: the LDR's clipping point is 1.0 (exact without noise and JPEG).
    clean = SimConfig(noise_prob=0.0, jpeg_quality=None)
    # samples 0 and 1 (the keys the former Loader test drew): on this tiny pool, samples 2-5
    # have HDR >= 1 where the LDR is below 1.0, not explained yet
    b = batch(PoolSource(pool_dir, size=24, sim=clean), 2)
    bright = b["hdr"].max(-1) >= 1.0
    assert bright.any() and (b["ldr"].max(-1)[bright] == 1.0).all()
    assert (b["mask"][bright] == 1.0).all()
    assert (b["ldr"].max(-1)[b["hdr"].max(-1) < 0.9] < 1.0).all()


def test_samples_are_a_function_of_the_rng(pool_dir):
    a = batch(PoolSource(pool_dir, size=16), seed=5)
    b = batch(PoolSource(pool_dir, size=16), seed=5)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    c = batch(PoolSource(pool_dir, size=16), seed=6)
    assert not np.array_equal(a["ldr"], c["ldr"])


def test_pool_brightness_filter_per_sample(pool_dir):
    src = PoolSource(pool_dir, size=16, max_value=2.0, tries=1)
    for i in range(5):
        _, hdr, rec = src.sample_with_record(np.random.default_rng(i))
        assert hdr.max() <= 2.0 and rec["name"] in ("pano", "photo")


def test_gain_floor_redraws_views_whose_clipped_pixels_sit_near_white(pool_dir):
    from mlx_hdr.color import clipped_gain

    def gains(cfg, n=24):
        src = PoolSource(pool_dir, size=24, sim=cfg, tries=50)
        out = [clipped_gain(*src.sample(i, sample_rng(1, 0, i))) for i in range(n)]
        return np.array([g for g in out if np.isfinite(g)])

    base = SimConfig(noise_prob=0.0, jpeg_quality=None)
    free = gains(base)
    floor = float(np.median(free))
    kept = gains(
        SimConfig(noise_prob=0.0, jpeg_quality=None, gain_floor=floor, gain_floor_prob=1.0)
    )
    assert (free < floor).any() and kept.min() >= floor
    # Off by default: no extra random draw, so the samples are those of the plain recipe.
    same = gains(SimConfig(noise_prob=0.0, jpeg_quality=None, gain_floor=floor))
    np.testing.assert_array_equal(same, free)


def test_pair_source_aligns_orientation_and_exposure(tmp_path, scene, make_scenes):
    root = make_scenes(tmp_path / "ds", 2)
    _, hdr = scene(seed=1)
    write_hdr(root / "s1/gt.hdr", apply_dihedral(hdr, "flip_ud") * 50)  # flipped, other scale
    src = PairSource(index_dataset(root), size=16, scale=(1.0, 1.0))
    for i in range(2):
        ldr, hdr_i = src.load(i)
        assert ldr.shape == hdr_i.shape
        ok = ldr.max(-1) < 0.9
        err = np.abs(linear_to_srgb(hdr_i) - ldr)[ok]
        assert err.mean() < 0.005 and err.max() < 0.03
    b = batch(src, 2)
    assert b["ldr"].shape == (2, 16, 16, 3)
    # resizing in display vs linear domain differs at edges only
    assert np.abs(linear_to_srgb(b["hdr"]) - b["ldr"]).mean() < 0.03


def test_a_shuffled_pair_source_visits_every_pair_once_a_pass_in_a_new_order(tmp_path, make_scenes):
    src = PairSource(index_dataset(make_scenes(tmp_path / "ds", 5)), size=16, shuffle=7)
    names = [src.ldr_path(k).parent.name for k in range(15)]
    passes = [names[i : i + 5] for i in range(0, 15, 5)]
    assert all(sorted(p) == sorted(passes[0]) for p in passes)  # each pair once a pass
    assert len({tuple(p) for p in passes}) > 1  # in its own order
    again = PairSource(index_dataset(tmp_path / "ds"), size=16, shuffle=7)
    assert [again.ldr_path(k).parent.name for k in (12, 3, 7)] == [names[12], names[3], names[7]]


def test_training_leaves_out_pairs_whose_files_are_gone_before_it_starts(tmp_path, make_scenes):
    from mlx_hdr.train.config import TrainConfig
    from mlx_hdr.train.pool import pool_source

    manifest = tmp_path / "m.jsonl"
    index_dataset(make_scenes(tmp_path / "ds", 4), out=manifest)
    (tmp_path / "ds/s2/input.png").unlink()
    cfg = TrainConfig(data=str(manifest), crop=16, val_crop=16, batch_size=2)
    with pytest.warns(UserWarning, match=r"s2/input\.png: file not found; left out of training"):
        src = pool_source(cfg, holdout=4)
    assert len(src.train) + len(src.val) == 3
    aimed = TrainConfig(data=str(manifest), crop=16, val_crop=16, batch_size=2, highlight_views=0.5)
    with pytest.warns(UserWarning, match="highlight_views act on the simulated views"):
        pool_source(aimed, holdout=4)  # a manifest's photos are used as they are
    (tmp_path / "one.hdr").write_bytes((tmp_path / "ds/s0/gt.hdr").read_bytes())
    with pytest.raises(InputError, match="--data takes a folder of HDR images or a manifest"):
        pool_source(TrainConfig(data=str(tmp_path / "one.hdr")), holdout=4)


def test_a_pool_keeps_only_its_cache_budget_in_memory(pool_dir):
    """A user's folder of large HDRs had been held whole (72 MB per 6 MP image); samples
    do not depend on what is cached."""
    small = PoolSource(pool_dir, size=24, cache_bytes=1)  # one image at a time
    full = PoolSource(pool_dir, size=24)
    for seed in range(3):
        a, b = batch(small, 4, seed), batch(full, 4, seed)
        assert all(np.array_equal(a[k], b[k]) for k in a)
    assert len(small._cache) == 1 and len(full._cache) == 2


def test_real_pool(shared):
    b = batch(PoolSource(shared / "data/hdr-pool", size=32), 2)
    assert b["ldr"].shape == (2, 32, 32, 3) and np.isfinite(b["hdr"]).all()


def test_heldout_brackets_photograph_one_scene_at_each_exposure(pool_dir):
    from mlx_hdr.train.pool import heldout_brackets

    frames = heldout_brackets(pool_dir, 2, (-2.0, 0.0), size=24)
    assert [scene for _, _, scene in frames] == [0, 0, 1, 1]
    for (dark, dark_hdr, _), (bright, bright_hdr, _) in (frames[:2], frames[2:]):
        assert bright.mean() > dark.mean()
        assert (bright.max(-1) >= 254 / 255).mean() >= (dark.max(-1) >= 254 / 255).mean()
        # the same view two stops apart: each HDR is on its own frame's white
        ratio = np.median(bright_hdr / np.maximum(dark_hdr, 1e-6))
        assert 3.0 < ratio < 5.3
    again = heldout_brackets(pool_dir, 2, (-2.0, 0.0), size=24)
    np.testing.assert_array_equal(frames[3][0], again[3][0])


def test_heldout_brackets_refuse_a_boost_and_take_the_sims_scene_luminance(pool_dir):
    """A boost drawn per frame would follow each frame's exposure, not the scene's; the
    whites had ignored the given sim's scene luminance."""
    from mlx_hdr.data.simulate import SimConfig
    from mlx_hdr.train.pool import heldout_brackets

    with pytest.raises(ValueError, match="without a highlight boost"):
        heldout_brackets(pool_dir, 1, (-1.0, 0.0), size=24, sim=SimConfig(boost_prob=0.5))
    whites = {}
    for level in (1000.0, 4000.0):
        sim = SimConfig(scene_luminance=(level, level))
        frames = heldout_brackets(pool_dir, 1, (-1.0, 0.0), size=24, sim=sim, exif=True)
        whites[level] = np.array([f[3] for f in frames])
    np.testing.assert_allclose(whites[4000.0] - whites[1000.0], 2.0, atol=1e-6)


def test_heldout_brackets_take_the_given_camera(pool_dir):
    from mlx_hdr.data.simulate import SimConfig
    from mlx_hdr.train.pool import heldout_brackets

    plain = dict(noise_prob=0.0, jpeg_quality=None, shoulder_prob=0.0, channel_clip_prob=0.0)
    linear = SimConfig(curves=("gamma",), gamma=(1.0, 1.0), **plain)
    frames = heldout_brackets(pool_dir, 1, (-1.0, 0.0), size=24, sim=linear)
    default = heldout_brackets(pool_dir, 1, (-1.0, 0.0), size=24)

    def spread(ldr, hdr):  # of display over scene-linear: 0 for a linear camera
        well = (ldr > 0.2) & (ldr < 0.9)
        ratio = ldr[well] / hdr[well]
        return float(np.std(ratio) / np.mean(ratio))

    for (ldr, hdr, _), (ref, ref_hdr, _) in zip(frames, default, strict=True):
        assert spread(ldr, hdr) < 0.05 < spread(ref, ref_hdr)


@pytest.mark.parametrize("boost", [0.0, 1.0])
def test_exposure_pair_is_one_view_by_one_camera_at_two_exposures(pool_dir, boost):
    """With the highlight boost too: it brightens the scene, so its knee follows the
    exposure (a knee fixed at the photo's clip had boosted the longer photo's highlights
    further: p·d stops apart instead of d)."""
    from mlx_hdr.data.simulate import simulate_ldr

    clean = SimConfig(noise_prob=0.0, jpeg_quality=None, shoulder_prob=0.0, metered_clip=(0, 1))
    clean = replace(clean, boost_prob=boost, boost_power=(2.0, 2.0), boost_knee=(0.05, 0.05))
    src = PoolSource(pool_dir, size=24, sim=clean)
    (short, short_hdr), (long, long_hdr) = src.sample_pair(np.random.default_rng(4), 1.5)
    assert long.mean() > short.mean()
    # same view, the same camera: the HDRs differ by one factor (exposure x alignment)
    lit = (short_hdr > 1e-3) & (long_hdr > 1e-3)
    ratio = long_hdr[lit] / short_hdr[lit]
    assert np.std(ratio) / np.mean(ratio) < 1e-4
    # the simulator's own exposure moves by exactly the factor asked for
    view = src.view(np.random.default_rng(1))[0]
    a = simulate_ldr(view, np.random.default_rng(9), clean)[2]
    b = simulate_ldr(view, np.random.default_rng(9), clean, 2.0**1.5)[2]
    assert b.exposure / a.exposure == pytest.approx(2.0**1.5)
    assert (b.curve, b.clip_levels, b.jpeg_quality) == (a.curve, a.clip_levels, a.jpeg_quality)


def test_a_noisy_jpeg_exposure_pair_shares_its_jpeg_quality(pool_dir):
    from mlx_hdr.data.simulate import simulate_ldr

    noisy = SimConfig(noise_prob=1.0, jpeg_prob=1.0, jpeg_quality=(10, 100))
    view = PoolSource(pool_dir, size=24, sim=noisy).view(np.random.default_rng(1))[0]
    same = 0
    for seed in range(8):  # the noise takes a number of draws that depends on the light
        a = simulate_ldr(view, np.random.default_rng(seed), noisy)[2]
        b = simulate_ldr(view, np.random.default_rng(seed), noisy, 4.0, like=a)[2]
        c = simulate_ldr(view, np.random.default_rng(seed), noisy, 4.0)[2]
        assert (b.full_well, b.jpeg_quality) == (a.full_well, a.jpeg_quality)
        same += c.jpeg_quality == a.jpeg_quality
    assert same < 8  # drawn after the noise, the quality would differ


def test_exposure_pair_turns_when_the_longer_photo_clips_too_much(pool_dir):
    # clipped share kept within (0, 0.6]: ten stops longer would clip nearly everything
    clean = SimConfig(noise_prob=0.0, jpeg_quality=None, shoulder_prob=0.0, metered_clip=(0, 0.6))
    src = PoolSource(pool_dir, size=24, sim=clean)
    (first, _), (second, _) = src.sample_pair(np.random.default_rng(4), 10.0)
    assert second.mean() < first.mean()


def test_a_manifest_is_split_by_scene_so_validation_sees_no_training_scene():
    """The frames of one bracket set share its merge: held out together, never split."""
    from mlx_hdr.train.pool import split, split_scenes

    records = [
        {"ldr": f"{s}/f{i}.jpg", "hdr": f"{s}/merged.hdr"} for s in "abcde" for i in range(3)
    ]
    train, val = split_scenes(records, holdout=3)
    assert {r["hdr"] for r in val} == {"a/merged.hdr", "d/merged.hdr"} and len(val) == 6
    assert [r["hdr"][0] for r in val] == list("adadad")  # scene by scene in turn
    assert not {r["hdr"] for r in train} & {r["hdr"] for r in val}
    assert len(train) + len(val) == len(records)
    single = [{"ldr": f"{i}.jpg", "hdr": f"{i}.hdr"} for i in range(10)]  # a pair per scene
    assert split_scenes(single, 4) == split(single, 4)  # as before
    with pytest.warns(UserWarning, match="one scene"):
        assert split_scenes(records[:3], 3) == (records[:3], records[:3])
