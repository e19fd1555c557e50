"""Padding, the working resolution and its gain map, and the predict pipeline."""

from __future__ import annotations

from pathlib import Path

import cv2
import mlx.core as mx
import mlx.nn as nn
import numpy as np
import pytest

import mlx_hdr
from mlx_hdr.color import rgb_to_luminance, srgb_to_linear
from mlx_hdr.infer.pipeline import (
    GAIN_FLOOR,
    apply_gain_map,
    padded_pixels,
    predict_hdr,
    predict_target,
    work_size,
)
from mlx_hdr.models.hybrid import pad_to_multiple


def local_net(seed: int = 0) -> nn.Module:
    """Three 3x3 convs: receptive radius 3, no global operation."""
    mx.random.seed(seed)
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.Tanh(),
        nn.Conv2d(8, 8, 3, padding=1),
        nn.Tanh(),
        nn.Conv2d(8, 3, 3, padding=1),
        nn.Tanh(),
    )
    mx.eval(net.parameters())
    return net


def image(h: int, w: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    smooth = rng.uniform(0, 1, (h // 8 + 2, w // 8 + 2, 3)).astype(np.float32)
    big = np.kron(smooth, np.ones((8, 8, 1), np.float32))[:h, :w]
    return np.clip(big + rng.normal(0, 0.03, (h, w, 3)), 0, 1).astype(np.float32)


@pytest.mark.parametrize(("h", "w"), [(37, 50), (5, 3), (64, 96), (33, 1)])
def test_pad_to_multiple(h, w):
    img = image(max(h, 8), max(w, 8))[:h, :w]
    out = np.asarray(pad_to_multiple(mx.array(img[None])))[0]
    assert out.shape[0] % 32 == 0 and out.shape[1] % 32 == 0
    assert out.shape[0] - h < 32 and out.shape[1] - w < 32
    np.testing.assert_array_equal(out[:h, :w], img)
    # per axis: reflect, or edge where the axis is shorter than its pad (numpy's rules)
    ref = img
    for axis, size in ((0, out.shape[0]), (1, out.shape[1])):
        pad = size - ref.shape[axis]
        widths = [(0, 0)] * 3
        widths[axis] = (0, pad)
        ref = np.pad(ref, widths, mode="reflect" if pad < ref.shape[axis] else "edge")
    np.testing.assert_array_equal(out, ref)


def test_work_size_fits_and_keeps_the_aspect():
    assert work_size(100, 200, 10_000_000) is None
    for h, w, budget in [(4000, 6000, 4_000_000), (3001, 170, 100_000), (999, 1001, 250_000)]:
        sh, sw = work_size(h, w, budget)
        assert padded_pixels(sh, sw) <= budget < padded_pixels(h, w)
        assert abs(sh / sw - h / w) < 0.05 * h / w + 2 / sw


def test_gain_map_of_the_linear_input_is_the_linear_input():
    ldr = image(96, 160)
    small = cv2.resize(ldr, (40, 24), interpolation=cv2.INTER_AREA)
    lin = srgb_to_linear(ldr)
    np.testing.assert_allclose(apply_gain_map(ldr, small, srgb_to_linear(small)), lin, atol=1e-5)
    doubled = apply_gain_map(ldr, small, 2 * srgb_to_linear(small) + GAIN_FLOOR)
    np.testing.assert_allclose(doubled, 2 * lin + GAIN_FLOOR, rtol=1e-4, atol=1e-5)


def test_large_photo_keeps_the_models_highlights():
    """Above the working resolution, the bundled model's highlights survive (the old
    512-px tiles each renormalised in InstanceNorm: an upscaled sample's peak fell 3.5 -> 1.0)."""
    from mlx_hdr.infer.model_hub import load_net
    from mlx_hdr.io.image_io import read_ldr

    net = load_net(None)[0]
    ldr = read_ldr(Path(mlx_hdr.__file__).parent / "assets" / "sample.jpg")
    big = np.clip(cv2.resize(ldr, (768, 512), interpolation=cv2.INTER_CUBIC), 0, 1)
    clipped = big.max(axis=-1) >= 0.95
    assert clipped.mean() > 0.01
    for response in ("srgb", "model", "camera"):
        whole = predict_hdr(big, net, work_pixels=10**9, response=response)
        fast = predict_hdr(
            big, net, work_pixels=big.shape[0] * big.shape[1] // 4, response=response
        )
        assert fast.shape == big.shape
        if response == "srgb":  # the photo, exactly
            np.testing.assert_array_equal(fast[~clipped], whole[~clipped])
        else:  # the photo through curves read at two sizes
            kept = np.log2((fast[~clipped] + 0.01) / (whole[~clipped] + 0.01))
            assert np.abs(kept).max() < 0.1
        y_fast, y_whole = (rgb_to_luminance(a)[clipped] for a in (fast, whole))
        assert np.abs(np.log2(y_fast / y_whole)).mean() < 0.25
        assert y_fast.max() > 1.3 and y_whole.max() > 1.3


def test_odd_shapes_and_hdr_output():
    net = local_net()
    for h, w in [(37, 700), (5, 3)]:
        out = predict_target(net, image(max(h, 8), w)[:h])
        assert out.shape == (h, w, 3) and np.abs(out).max() <= 1
    ldr = image(40, 60)
    hdr = predict_hdr(ldr, net)
    assert hdr.shape == ldr.shape and np.isfinite(hdr).all() and hdr.min() >= 0
    with pytest.raises(ValueError, match="needs a network"):
        predict_hdr(ldr, None)
    np.testing.assert_allclose(predict_hdr(ldr, method="linear"), mlx_hdr.color.srgb_to_linear(ldr))


@pytest.mark.parametrize("work_pixels", [10**6, 48 * 64])  # whole image, and the gain map
def test_the_models_floor_applies_with_the_blend_only(work_pixels):
    from types import SimpleNamespace

    from mlx_hdr.infer.methods import kovaleski2014

    class NoBoost(nn.Module):  # a stops model predicting a 0-stop residual everywhere
        config = SimpleNamespace(target="stops", floor="kovaleski2014")

        def __call__(self, x):
            return mx.full(x.shape, -0.5)

    ldr = image(96, 128)
    ldr[30:60, 40:80] = 1.0
    raw = predict_hdr(ldr, NoBoost(), blend=False, work_pixels=work_pixels)
    out = predict_hdr(ldr, NoBoost(), work_pixels=work_pixels, response="srgb")
    lin = srgb_to_linear(ldr)
    np.testing.assert_allclose(raw, lin, rtol=1e-3, atol=1e-4)  # the network alone
    clipped = (slice(35, 55), slice(45, 75))
    assert rgb_to_luminance(out[clipped]).min() > 1.5  # floored inside the clipped patch
    assert np.all(out >= lin - 1e-4)
    assert_luminance_of(out[clipped], kovaleski2014(ldr)[clipped])


def assert_luminance_of(out: np.ndarray, floor: np.ndarray) -> None:
    """At the floor's luminance, in the fill's colour: a little above where a channel of
    that colour would fall below white (the blend keeps the recorded white). With the sRGB
    curve: the camera curve's roll-off would raise that white (``response.shoulder_table``)."""
    y_out, y_floor = rgb_to_luminance(out), rgb_to_luminance(floor)
    assert (y_out >= y_floor * (1 - 1e-3)).all() and (y_out <= y_floor * 1.1).all()


@pytest.mark.parametrize("work_pixels", [10**6, 48 * 64])
def test_the_models_floor_strength_reaches_both_paths(work_pixels):
    from types import SimpleNamespace

    from mlx_hdr.infer.calibrate import floor_image

    class NoBoost(nn.Module):
        config = SimpleNamespace(target="stops", floor="kovaleski2014", floor_strength=0.5)

        def __call__(self, x):
            return mx.full(x.shape, -0.5)

    ldr = image(96, 128)
    ldr[30:60, 40:80] = 1.0
    out = predict_hdr(ldr, NoBoost(), work_pixels=work_pixels, response="srgb")
    clipped = (slice(35, 55), slice(45, 75))
    half = floor_image("kovaleski2014", ldr, 0.5)
    assert half[clipped].min() < 0.8 * floor_image("kovaleski2014", ldr)[clipped].min()
    assert_luminance_of(out[clipped], half[clipped])


def test_the_floor_is_computed_at_full_resolution():
    """A light of 3x3 px averages below white at a 4x smaller working size; the floor still
    boosts it, as the classical operator does on the full photo."""
    from types import SimpleNamespace

    from mlx_hdr.infer.methods import kovaleski2014

    class NoBoost(nn.Module):
        config = SimpleNamespace(target="stops", floor="kovaleski2014")

        def __call__(self, x):
            return mx.full(x.shape, -0.5)

    ldr = np.full((256, 256, 3), 0.4, np.float32)
    ldr[100:103, 150:153] = 1.0
    out = predict_hdr(ldr, NoBoost(), work_pixels=64 * 64)
    kov = kovaleski2014(ldr)
    assert kov[101, 151, 0] > 1.5
    np.testing.assert_allclose(out[100:103, 150:153], kov[100:103, 150:153], rtol=1e-3)


def test_flip_is_the_mean_over_the_photo_and_its_mirror():
    """``flip``: the mirrored pass is mirrored back before the mean, so the output is
    mirror-symmetric in the photo (flipping the photo flips the output) even for a network
    that is not."""
    net, ldr = local_net(3), image(40, 72, seed=2)
    one = predict_target(net, ldr)
    mirrored = predict_target(net, np.ascontiguousarray(ldr[:, ::-1]))[:, ::-1]
    both = predict_target(net, ldr, flip=True)
    np.testing.assert_allclose(both, 0.5 * (one + mirrored), atol=1e-6)
    assert np.abs(one - mirrored).max() > 1e-3  # the network alone is not mirror-symmetric
    of_mirror = predict_target(net, np.ascontiguousarray(ldr[:, ::-1]), flip=True)
    np.testing.assert_allclose(of_mirror[:, ::-1], both, atol=1e-6)
    raw = {flip: predict_hdr(ldr, net, blend=False, flip=flip) for flip in (True, False)}
    assert not np.allclose(raw[True], raw[False])  # predict_hdr passes it on


def test_flip_by_default_where_the_photo_runs_in_one_pass_only():
    net, ldr = local_net(3), image(40, 72, seed=2)
    for work_pixels, want in ((10**6, True), (32 * 32, False)):  # one pass; the gain map
        auto = predict_hdr(ldr, net, blend=False, work_pixels=work_pixels)
        chosen = predict_hdr(ldr, net, blend=False, work_pixels=work_pixels, flip=want)
        other = predict_hdr(ldr, net, blend=False, work_pixels=work_pixels, flip=not want)
        np.testing.assert_array_equal(auto, chosen)
        assert not np.allclose(auto, other)


def test_both_paths_give_fully_clipped_pixels_the_surroundings_colour():
    """The one-pass blend and the gain map (the fill at work size) agree on the colour of a
    fully clipped window framed by warm, partly clipped pixels (sRGB kept-pixel curve: the
    fitted one is ill-posed on a three-colour image)."""
    from types import SimpleNamespace

    class Bright(nn.Module):  # a stops model predicting a bluish boost everywhere
        config = SimpleNamespace(target="stops")

        def __call__(self, x):
            return mx.broadcast_to(mx.array([-0.1, -0.1, 0.0]), x.shape)

    ldr = np.full((96, 128, 3), 0.3, np.float32)
    ldr[8:88, 8:120] = [1.0, 0.85, 0.65]
    ldr[30:66, 30:98] = 1.0
    inner = (slice(36, 60), slice(36, 92))
    frame = srgb_to_linear(ldr[10, 10])
    for work_pixels in (10**6, 48 * 64):
        out = predict_hdr(ldr, Bright(), work_pixels=work_pixels, response="srgb")[inner]
        chroma = out / out.sum(axis=-1, keepdims=True)
        np.testing.assert_allclose(
            chroma, np.broadcast_to(frame / frame.sum(), chroma.shape), atol=0.01
        )


@pytest.mark.parametrize("work_pixels", [10**9, 30_000])
def test_a_black_and_white_photo_stays_grey(work_pixels):
    """The bundled model tints a grey photo's clipped areas (measured: up to 4% chroma); the
    output of a photo without colour has none, on both paths."""
    from mlx_hdr.infer.model_hub import load_net
    from mlx_hdr.io.image_io import read_ldr

    net = load_net(None)[0]
    ldr = read_ldr(Path(mlx_hdr.__file__).parent / "assets" / "sample.jpg")
    grey = np.repeat(rgb_to_luminance(ldr)[..., None], 3, axis=-1)
    assert (grey.max(axis=-1) >= 0.95).mean() > 0.02
    hdr = predict_hdr(grey, net, work_pixels=work_pixels)
    np.testing.assert_array_equal(hdr[..., 0], hdr[..., 1])
    np.testing.assert_array_equal(hdr[..., 1], hdr[..., 2])
    raw = predict_hdr(grey, net, work_pixels=work_pixels, blend=False)
    assert np.ptp(raw, axis=-1).max() > 0  # the network's own output: as it is


def test_grey_for_grey_keeps_luminance_and_leaves_colour_photos():
    from mlx_hdr.infer.calibrate import grey_for_grey

    hdr = np.random.default_rng(0).uniform(0, 4, (300, 20, 3)).astype(np.float32)
    ldr = np.full((300, 20, 3), 0.5, np.float32)
    out = grey_for_grey(ldr, hdr)
    np.testing.assert_allclose(out[..., 1], rgb_to_luminance(hdr), rtol=1e-6)
    ldr[290, 3, 0] += 2 / 255  # one coloured pixel, in the last strip: a colour photo
    assert grey_for_grey(ldr, hdr) is hdr
