"""Loader: batch shapes and value domains, determinism across thread counts, validation set."""

from __future__ import annotations

import numpy as np
import pytest

from mlx_hdr.color import linear_to_srgb
from mlx_hdr.data.loader import Loader, LoaderConfig, PairSource, PoolSource, validation_set
from mlx_hdr.data.manifest import index_dataset
from mlx_hdr.data.orientation import apply_dihedral
from mlx_hdr.data.simulate import SimConfig
from mlx_hdr.image_io import write_hdr


@pytest.fixture(scope="module")
def pool_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("pool")
    rng = np.random.default_rng(0)
    pano = np.exp2(rng.normal(0, 2, (16, 32, 3))).repeat(4, 0).repeat(4, 1).astype(np.float32)
    write_hdr(root / "pano.hdr", pano)
    write_hdr(root / "photo.exr", pano[:40, :60] * 3)
    (root / "MANIFEST.csv").write_text("file,kind\npano.hdr,panorama\nphoto.exr,photo\n")
    return root


def batches(source, **kw):
    cfg = LoaderConfig(batch_size=3, epoch_length=7, drop_last=False, **kw)
    return list(Loader(source, cfg).epoch(kw.pop("epoch", 0)))


def test_pool_batches_shapes_and_domains(pool_dir):
    src = PoolSource(pool_dir, size=24)
    out = batches(src)
    assert [len(b["ldr"]) for b in out] == [3, 3, 1]
    b = out[0]
    assert b["ldr"].shape == b["hdr"].shape == (3, 24, 24, 3) and b["mask"].shape == (3, 24, 24, 1)
    assert all(v.dtype == np.float32 for v in b.values())
    assert b["ldr"].min() >= 0 and b["ldr"].max() <= 1 and b["hdr"].min() >= 0
    # Exposure-scaled HDR: the LDR's clipping point is 1.0 (exact without noise and JPEG).
    clean = SimConfig(noise_prob=0.0, jpeg_quality=None)
    b = batches(PoolSource(pool_dir, size=24, sim=clean))[0]
    bright = b["hdr"].max(-1) >= 1.0
    assert bright.any() and (b["ldr"].max(-1)[bright] == 1.0).all()
    assert (b["mask"][bright] == 1.0).all()
    assert (b["ldr"].max(-1)[b["hdr"].max(-1) < 0.9] < 1.0).all()


def test_determinism_independent_of_threads(pool_dir):
    a = batches(PoolSource(pool_dir, size=16), workers=1, seed=5)
    b = batches(PoolSource(pool_dir, size=16), workers=3, seed=5, prefetch_batches=1)
    for x, y in zip(a, b, strict=True):
        for k in x:
            np.testing.assert_array_equal(x[k], y[k])
    c = list(
        Loader(PoolSource(pool_dir, size=16), LoaderConfig(3, seed=5, epoch_length=7)).epoch(1)
    )
    assert not np.array_equal(a[0]["ldr"], c[0]["ldr"])  # a new epoch draws new samples


def test_validation_set_fixed(pool_dir):
    src = PoolSource(pool_dir, size=16)
    v1, v2 = validation_set(src, 4, seed=1), validation_set(src, 4, seed=1)
    for (l1, h1), (l2, h2) in zip(v1, v2, strict=True):
        np.testing.assert_array_equal(l1, l2)
        np.testing.assert_array_equal(h1, h2)
    train = batches(src, seed=1)[0]["ldr"]
    assert not any(np.array_equal(l1, t) for (l1, _), t in zip(v1, train, strict=False))


def test_pool_brightness_filter_per_sample(pool_dir):
    src = PoolSource(pool_dir, size=16, max_value=2.0, tries=1)
    for i in range(5):
        _, hdr, rec = src.sample_with_record(np.random.default_rng(i))
        assert hdr.max() <= 2.0 and rec["name"] in ("pano", "photo")


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
    b = next(iter(Loader(src, LoaderConfig(batch_size=2, progress=True))))
    assert b["ldr"].shape == (2, 16, 16, 3)
    # resizing in display vs linear domain differs at edges only
    assert np.abs(linear_to_srgb(b["hdr"]) - b["ldr"]).mean() < 0.03


def test_early_stop_and_real_pool(shared):
    src = PoolSource(shared / "data/hdr-pool", size=32)
    loader = Loader(src, LoaderConfig(batch_size=2, epoch_length=20))
    first = next(iter(loader))  # leaving the generator must not hang
    assert first["ldr"].shape == (2, 32, 32, 3) and np.isfinite(first["hdr"]).all()
    assert len(loader) == 10
