"""``scripts/validate_model.py`` (models scored at other floor strengths, ``--floor-strength``)
and ``scripts/bracket_sets.py`` (the real bracket sets it scores)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from mlx.utils import tree_flatten

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = str(ROOT / "mlx_hdr" / "assets" / "default.safetensors")
sys.path.insert(0, str(ROOT / "scripts"))
import bracket_sets  # noqa: E402
import validate_model  # noqa: E402


def photo() -> np.ndarray:
    """A 64x96 display image with a clipped patch."""
    img = np.random.default_rng(0).uniform(0.05, 0.9, (64, 96, 3)).astype(np.float32)
    img[8:30, 20:50] = 1.0
    return img


def test_floor_strengths_score_one_network_as_each_bundle_would():
    methods = validate_model.runners([DEFAULT], [], strengths=(1.0, 0.9, 0.0))
    assert list(methods) == ["default floor 1", "default floor 0.9", "default floor 0"]
    own, _ = validate_model.runners([DEFAULT], [])["default"]
    x, clipped = photo(), photo().max(axis=-1) >= 1.0
    runs = {name: run(x) for name, (run, _) in methods.items()}
    # the shipped strength (1.0) gives the bundled model's output exactly
    np.testing.assert_array_equal(runs["default floor 1"], own(x))
    # a stronger floor only raises the clipped pixels, and leaves the kept ones alone
    high, low = runs["default floor 1"], runs["default floor 0"]
    assert (high[clipped] >= low[clipped] - 1e-6).all() and (high[clipped] > low[clipped]).any()
    np.testing.assert_array_equal(high[~clipped], low[~clipped])
    # the weights are shared, not copied
    nets = [net for _, net in methods.values()]
    a, b = (dict(tree_flatten(n.parameters())) for n in nets[:2])
    assert a and all(a[k] is b[k] for k in a)
    assert nets[0].config.floor_strength == 1.0 and nets[1].config.floor_strength == 0.9


def test_floor_strength_leaves_the_raw_output_alone():
    (run_a, _), (run_b, _) = validate_model.runners([DEFAULT], [], strengths=(0.0, 1.0)).values()
    x = photo()
    np.testing.assert_array_equal(run_a(x, blend=False), run_b(x, blend=False))


def test_clipped_hue_compares_colour_only_where_all_three_channels_clip():
    ldr = photo()
    truth = np.full_like(ldr, 0.2)
    truth[8:30, 20:50] = [4.0, 2.0, 1.0]  # a warm light behind the clipped patch
    neutral = truth.copy()
    neutral[8:30, 20:50] = 3.0
    assert validate_model.clipped_hue(truth * 5.0, truth, ldr) == 0.0  # scale-free
    # neutral against warm: r 0.571 vs 0.333, g 0.286 vs 0.333 -> mean 0.143, x100
    assert abs(validate_model.clipped_hue(neutral, truth, ldr) - 14.29) < 0.01
    # colour outside the fully clipped pixels does not count
    off = neutral.copy()
    off[40:] = [0.1, 0.3, 0.9]
    assert validate_model.clipped_hue(off, truth, ldr) == validate_model.clipped_hue(
        neutral, truth, ldr
    )
    few = ldr.copy()
    few[8:30, 20:50] = 0.5
    few[0, :3] = 1.0
    assert np.isnan(validate_model.clipped_hue(neutral, truth, few))


def write_set(folder: Path, meta: dict, frame: np.ndarray, hdr: np.ndarray) -> None:
    from mlx_hdr.io.image_io import write_hdr, write_ldr

    folder.mkdir(parents=True)
    write_ldr(folder / "frame.png", frame)
    write_hdr(folder / "merged.pfm", hdr)
    meta = {"frames": [{"file": "frame.png"}], "merge": {"output": "merged.pfm"}, **meta}
    (folder / "exposures.json").write_text(json.dumps(meta))


def test_bracket_views_are_crops_of_each_frame_kept_by_their_clipped_share(tmp_path):
    frame = np.full((40, 80, 3), 0.4, np.float32)
    frame[:, :20] = 1.0  # the left quarter clips: 25% of the frame, 50% of its left half
    hdr = np.where(frame >= 1.0, 4.0, 0.13).astype(np.float32)
    views = [[0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 0.5, 1.0], [0.125, 0.5, 1.0, 1.0]]
    write_set(tmp_path / "s", {"views": views}, frame, hdr)
    cases = bracket_sets.bracket_cases(tmp_path / "s", 1024)
    # the half with 50% clipped is dropped (CLIPPED_RANGE); the others are their crops
    assert [c[0].shape for c in cases] == [(40, 80, 3), (20, 70, 3)]
    np.testing.assert_array_equal(cases[1][0], frame[20:, 10:])
    np.testing.assert_array_equal(cases[1][1], hdr[20:, 10:])


def test_bracket_ghost_box_is_blacked_out_in_each_view_at_its_place(tmp_path):
    frame = np.full((40, 80, 3), 0.4, np.float32)
    frame[:, :12] = 1.0
    hdr = np.where(frame >= 1.0, 4.0, 0.13).astype(np.float32)
    meta = {"views": [[0.0, 0.0, 1.0, 1.0], [0.0, 0.5, 1.0, 1.0]]}
    meta["ghost_region_xyxy"] = [40, 10, 60, 30]
    write_set(tmp_path / "s", meta, frame, hdr)
    full, lower = bracket_sets.bracket_cases(tmp_path / "s", 1024)
    for ldr, truth in (full, lower):
        assert (ldr == 0).all(axis=-1).sum() == (truth == 0).all(axis=-1).sum()
    assert (full[0][10:30, 40:60] == 0).all() and (full[0][:10] > 0).all()
    assert (lower[0][:10, 40:60] == 0).all() and (lower[0][10:] > 0).all()
    # half the size: the box scales with the frame
    (half,) = [c for c in bracket_sets.bracket_cases(tmp_path / "s", 40) if c[0].shape[0] == 20]
    assert (half[0][5:15, 20:30] == 0).all() and (half[0][:5] > 0).all()


def test_bracket_cases_carry_each_frames_exposure(tmp_path):
    from mlx_hdr.io.photo_meta import Exposure

    yy, xx = np.mgrid[:80, :80]
    inside = (yy - 39.5) ** 2 + (xx - 39.5) ** 2 < 38**2  # a circular fisheye's image circle
    frame = np.where(inside[..., None], 0.4, 0.0).astype(np.float32).repeat(3, axis=-1)
    frame[inside & (xx > 48) & (xx < 58) & (yy > 30) & (yy < 50)] = 1.0
    hdr = np.where(frame >= 1.0, 4.0, frame * 0.3).astype(np.float32)
    write_set(tmp_path / "s", {}, frame, hdr)
    meta_path = tmp_path / "s" / "exposures.json"
    meta = json.loads(meta_path.read_text())
    (case,) = bracket_sets.bracket_cases(tmp_path / "s", 1024)
    assert case.exposure is None  # a PNG without EXIF, nothing listed
    meta["frames"][0].update(exposure_time_s=0.01, f_number=5.6, iso=100)
    meta_path.write_text(json.dumps(meta))
    (case,) = bracket_sets.bracket_cases(tmp_path / "s", 1024)
    assert case.exposure == Exposure(0.01, 5.6, 100.0)
    ldr, truth = case  # still a pair
    views, _ = bracket_sets.rectilinear_cases([case], [(0.0, 0.0, 90.0)], 60)
    assert views and all(v.exposure == case.exposure for v in views)


def test_simulated_cases_carry_their_white():
    ldr = photo()
    case = bracket_sets.simulated_case(ldr, ldr * 2, 9.5)
    assert case.exposure.white_luminance() == pytest.approx(2.0**9.5)
    got, truth = case
    np.testing.assert_array_equal(got, ldr)
    np.testing.assert_array_equal(truth, ldr * 2)


def test_native_view_side_takes_one_fisheye_pixel_per_view_pixel_at_its_centre():
    from mlx_hdr.data.fisheye import Circle, view_maps

    circle = Circle(500.0, 400.0, 300.0)
    side = bracket_sets.native_side(circle, 75.0)
    map_x, map_y = view_maps(circle, 0.0, 0.0, 75.0, (round(side * 2 / 3), side))
    h, w = map_x.shape
    step = np.diff(map_x[h // 2, w // 2 - 2 : w // 2 + 3])  # fisheye px per view px
    np.testing.assert_allclose(step, 1.0, atol=0.01)
    assert bracket_sets.native_side(circle, 90.0) > side  # a wider view needs more pixels


def test_view_renderings_resize_keeps_each_views_exposure():
    import view_renderings

    case = bracket_sets.simulated_case(photo(), photo() * 3, 8.0)
    (small,) = view_renderings.resized([case], 48)
    assert small[0].shape == (32, 48, 3) and small[1].shape == (32, 48, 3)
    assert small.exposure == case.exposure
    (big,) = view_renderings.resized([case], 192)
    assert big[0].shape == (128, 192, 3) and 0.0 <= big[0].min() and big[0].max() <= 1.0


def test_scored_cases_keep_their_pixels_and_leave_the_ghost_box_and_barrel_out(tmp_path):
    """validate_model scores only what the set recorded well: the ghost box and a fisheye's
    lens barrel had been scored (the box blacked out: a free perfect block for a method
    that keeps black black; the barrel: half of each fisheye frame)."""
    yy, xx = np.mgrid[:80, :80]
    circle = (yy - 39.5) ** 2 + (xx - 39.5) ** 2 < 38**2
    frame = np.where(circle[..., None], 0.4, 0.02).astype(np.float32).repeat(3, axis=-1)
    frame[circle & (xx > 48) & (xx < 58) & (yy > 30) & (yy < 50)] = 1.0
    hdr = np.where(frame >= 1.0, 4.0, frame * 0.3).astype(np.float32)
    write_set(tmp_path / "s", {"ghost_region_xyxy": [20, 30, 30, 40]}, frame, hdr)
    (case,) = bracket_sets.bracket_cases(tmp_path / "s", 1024, scored=True)
    np.testing.assert_allclose(case[0], frame, atol=1 / 255)  # as recorded, box included
    assert not case.valid[35, 25] and case.valid[39, 45]  # the box; inside the circle
    assert not case.valid[2, 2] and case.valid.mean() < circle.mean()  # the barrel
    (diag,) = bracket_sets.bracket_cases(tmp_path / "s", 1024)  # the diagnostics' way
    assert diag.valid is None and (diag[0][30:40, 20:30] == 0).all()
    views, _ = bracket_sets.rectilinear_cases([case], [(0.0, 0.0, 90.0)], 60)
    assert views[0].valid is not None and views[0].valid.shape == views[0][0].shape[:2]


def test_a_method_is_not_scored_on_the_pixels_left_out():
    from mlx_hdr.eval.metrics import hdr_metrics

    rng = np.random.default_rng(3)
    ldr = np.clip(rng.random((48, 64, 3)) * 1.3, 0, 1).astype(np.float32)
    gt = (rng.random((48, 64, 3)) * 4).astype(np.float32)
    pred = (gt * np.exp(rng.normal(0, 0.3, gt.shape))).astype(np.float32)
    whole = hdr_metrics(pred, gt, ldr)
    every = hdr_metrics(pred, gt, ldr, valid=np.ones((48, 64), bool))
    for k in whole:
        assert every[k] == pytest.approx(whole[k], rel=1e-6), k
    valid = np.ones((48, 64), bool)
    valid[10:30, 20:40] = False
    spoiled = pred.copy()
    spoiled[10:30, 20:40] = 1e3  # whatever a method puts there
    a, b = (hdr_metrics(p, gt, ldr, valid=valid) for p in (pred, spoiled))
    for k in a:
        if k.endswith("ssim"):  # windows reach a few pixels across the border
            continue
        assert b[k] == pytest.approx(a[k], rel=1e-9), k
    assert whole["pu21_psnr"] != pytest.approx(hdr_metrics(spoiled, gt, ldr)["pu21_psnr"])


def test_view_renderings_resize_carries_the_scored_pixels():
    import view_renderings

    valid = np.ones((64, 96), bool)
    valid[:, :48] = False
    case = bracket_sets.Case(photo(), photo() * 3, None, valid)
    (small,) = view_renderings.resized([case], 48)
    assert (
        small.valid.shape == (32, 48)
        and not small.valid[:, :23].any()
        and small.valid[:, 25:].all()
    )


@pytest.mark.parametrize(
    "args, message",
    [
        (["--brackets", "{set}", "-n", "0", "--no-peers", "--model", DEFAULT], "not a bracket set"),
        (["-n", "-2"], "count cases: 0 or more"),
        (["--no-peers"], "leaves nothing to score"),
    ],
)
def test_validate_model_refuses_bad_arguments_in_one_line(tmp_path, args, message):
    import subprocess

    (tmp_path / "set").mkdir()
    (tmp_path / "set" / "exposures.json").write_text("{}")
    argv = [a.replace("{set}", str(tmp_path / "set")) for a in args]
    run = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "validate_model.py"), *argv],
        capture_output=True,
        text=True,
    )
    lines = run.stderr.strip().splitlines()
    assert run.returncode != 0 and message in lines[-1] and "Traceback" not in run.stderr


def test_with_no_scored_pixel_well_exposed_the_alignment_still_reads_only_scored_ones():
    from mlx_hdr.eval.metrics import hdr_metrics

    rng = np.random.default_rng(0)
    ldr = np.full((40, 40, 3), 0.02, np.float32)  # nothing well exposed anywhere
    ldr[:20] = 1.0
    gt = (rng.random((40, 40, 3)) * 4 + 0.1).astype(np.float32)
    valid = np.zeros((40, 40), bool)
    valid[5:25, 5:25] = True
    spoiled = gt.copy()
    spoiled[~valid] *= 16  # had moved the fallback alignment: PU21 198 -> 4 dB
    a, b = (hdr_metrics(p, gt, ldr, valid=valid) for p in (gt, spoiled))
    assert b["pu21_psnr"] == pytest.approx(a["pu21_psnr"]) and a["pu21_psnr"] > 100
    assert validate_model.gain_error(spoiled, gt, ldr, valid) == pytest.approx(0.0, abs=1e-6)
