"""Merging a user's exposure bracket (``data.brackets``, ``mlx-hdr data brackets``) and reading
the set back as training pairs (the ``brackets`` layout) and as a validation set."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_data_datasets import run_cli
from test_exposure import photo_with_exif

from mlx_hdr.color import linear_to_srgb, rgb_to_luminance, srgb_to_linear
from mlx_hdr.data.brackets import (
    frame_shifts,
    merge_bracket,
    read_frames,
    shifted,
    write_bracket_set,
)
from mlx_hdr.data.camera_response import load_response
from mlx_hdr.data.datasets import scan_dataset
from mlx_hdr.data.manifest import format_summary, index_dataset, summarize
from mlx_hdr.errors import InputError
from mlx_hdr.io.image_io import read_hdr, read_ldr, write_hdr
from mlx_hdr.io.photo_meta import read_exposure

ROOT = Path(__file__).resolve().parents[1]
TIMES = (1 / 8, 1 / 30, 1 / 125, 1 / 500)  # 2 stops apart, f/4, ISO 100


def scene(h: int = 48, w: int = 64) -> np.ndarray:
    """Scene-linear RGB: a 12-stop horizontal ramp, colour varying down the rows, and a
    blob pattern (1.5 stops) for the alignment to hold on to."""
    ramp = np.exp2(np.linspace(-4.0, 8.0, w, dtype=np.float32))[None, :, None]
    tint = np.stack(np.broadcast_arrays(1.0, np.linspace(0.6, 1.0, h), 0.8), -1)
    yy, xx = np.mgrid[:h, :w]
    blobs = np.exp2(0.75 * np.sin(xx / 2.5) * np.sin(yy / 3.0))[..., None]
    return (ramp * tint[:, None, :] * blobs).astype(np.float32)


def shoot(
    folder: Path,
    hdr: np.ndarray,
    times=TIMES,
    shift: int = 0,
    ghost: bool = False,
    f_number: float = 4.0,
) -> list[Path]:
    """The scene photographed at ``times`` (s), f/4, ISO 100: sRGB JPEGs with their EXIF,
    unordered; the second longest one ``shift`` px to the right, and with ``ghost`` the
    third longest with a quarter of the scene 3 stops darker (something moved in front)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for t in reversed(times):
        moved = np.roll(hdr, shift, axis=1) if t == times[1] else hdr
        if ghost and t == times[2]:
            moved = moved.copy()
            moved[:24, :32] /= 8.0
        display = linear_to_srgb(np.minimum(moved * (t * 8.0), 1.0))
        pixels = np.rint(display * 255).astype(np.uint8)
        paths.append(photo_with_exif(folder / f"IMG_{len(paths)}.jpg", t, f_number, 100, pixels))
    return paths


def seen_mask(hdr: np.ndarray) -> np.ndarray:
    """The pixels that some frame of ``shoot`` records unclipped and above black."""
    return (hdr.max(-1) * TIMES[0] * 8 > 0.05) & (hdr.max(-1) * TIMES[-1] * 8 < 0.9)


def test_merged_bracket_is_the_scene_on_the_shortest_frames_scale(tmp_path):
    hdr = scene()
    frames = read_frames(shoot(tmp_path, hdr))
    assert [f.exposure.time_s for f in frames] == pytest.approx(TIMES)  # longest first
    merged, response = merge_bracket(frames)
    assert merged.shape == hdr.shape and merged.dtype == np.float32 and response.shape == (256, 3)
    ratio = np.log2(rgb_to_luminance(merged) / rgb_to_luminance(hdr))
    seen = seen_mask(hdr)
    assert np.ptp(np.median(ratio[:, seen.all(0)], 0)) < 0.1  # linear: one scale throughout
    # 1.0 is the white of the shortest frame: the scene times its exposure (8 / 500 s)
    assert np.median(ratio[seen]) == pytest.approx(np.log2(TIMES[-1] * 8), abs=0.1)


def test_a_nudged_frame_is_shifted_back(tmp_path):
    hdr = scene()
    frames = read_frames(shoot(tmp_path, hdr, shift=3))
    seen = seen_mask(hdr)
    seen[:, :8] = seen[:, -8:] = False  # np.roll wrapped the shifted frame's edges
    shifts = frame_shifts(frames)
    assert shifts[1] == pytest.approx((3.0, 0.0), abs=0.3)
    assert all(v == pytest.approx(0.0, abs=0.5) for i in (0, 2, 3) for v in shifts[i])
    errors = []
    for align in (False, True):
        merged, _ = merge_bracket(shifted(frames, shifts) if align else frames)
        ratio = np.log2(rgb_to_luminance(merged) / rgb_to_luminance(hdr))[seen]
        errors.append(np.abs(ratio - np.median(ratio)).mean())
    assert errors[1] < 0.05 < errors[0]  # stops: 0.02 aligned, 0.16 not


def test_something_that_moved_is_reported(tmp_path, monkeypatch, capsys):
    from mlx_hdr.data.brackets import MOVED_WARN, disagreement

    clean = read_frames(shoot(tmp_path / "clean", scene()))
    assert max(disagreement(clean, merge_bracket(clean)[1])) < MOVED_WARN
    ghosted = read_frames(shoot(tmp_path / "ghost", scene(), ghost=True))
    moved = disagreement(ghosted, merge_bracket(ghosted)[1])
    assert moved[1] > MOVED_WARN and moved[2] > MOVED_WARN  # the frame, both sides of it
    assert moved[0] < MOVED_WARN
    args = ("data", "brackets", tmp_path / "ghost", "-o", tmp_path / "set")
    code, stdout, _ = run_cli(monkeypatch, capsys, *args)
    assert code == 0 and "something moved" in stdout and "IMG_1.jpg" in stdout
    frames = json.loads((tmp_path / "set/exposures.json").read_text())["frames"]
    assert frames[0]["moved"] is None and frames[2]["moved"] > MOVED_WARN


def test_bracket_set_is_written_whole_and_read_back(tmp_path):
    shoot(tmp_path / "shots", scene())
    out = tmp_path / "sets" / "desk"
    meta = write_bracket_set([tmp_path / "shots"], out, align=True)
    files = sorted(p.name for p in out.iterdir())
    assert files[-1] == "merged.hdr" and "exposures.json" in files and len(files) == 6
    assert json.loads((out / "exposures.json").read_text()) == meta
    assert [f["exposure_time_s"] for f in meta["frames"]] == pytest.approx(TIMES)
    assert meta["merge"]["aligned"] and all(len(f["shift_px"]) == 2 for f in meta["frames"])
    assert read_hdr(out / "merged.hdr").shape == (48, 64, 3)
    assert load_response(str(out / "exposures.json")).shape == (256, 3)  # --sim-response
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # no leftovers
    umask = os.umask(0o022)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o777 & ~umask  # an ordinary folder, not 0700
    for root in (out, out.parent):  # a set, or a folder of sets
        ds = scan_dataset(root)
        kept = [f["file"] for f in meta["frames"] if f["clipped"] <= 0.3]
        assert ds.layout == "brackets" and [p.ldr_path.name for p in ds.pairs] == kept
        assert all(p.hdr_path == out / "merged.hdr" for p in ds.pairs)
        # evaluate takes each frame's exposure as its set lists it (a frame file written
        # without EXIF, as the fetch scripts write them, had got no sky ceiling there)
        listed = {f["file"]: f["exposure_time_s"] for f in meta["frames"]}
        assert [p.exposure.time_s for p in ds.pairs] == pytest.approx(
            [listed[p.ldr_path.name] for p in ds.pairs]
        )
    for f in meta["frames"]:  # a set that does not record the shares: measured
        f.pop("clipped")
    (out / "exposures.json").write_text(json.dumps(meta))
    assert [p.ldr_path.name for p in scan_dataset(out).pairs] == kept
    manifest = index_dataset(out.parent)
    assert len(manifest.kept()) == len(kept) > 0
    sys.path.insert(0, str(ROOT / "scripts"))
    import bracket_sets

    cases = bracket_sets.bracket_cases(out, None)  # validate_model.py --brackets
    assert cases and all(c.exposure is not None for c in cases)


def test_an_aligned_set_stores_each_frame_where_the_merge_has_it(tmp_path):
    """A handheld frame is scored against the merge: stored as merged (shifted), with its
    EXIF, so evaluation and training pair it with the HDR pixel for pixel."""
    hdr = scene()
    shoot(tmp_path / "shots", hdr, shift=4)
    out = tmp_path / "set"
    meta = write_bracket_set([tmp_path / "shots"], out, align=True)
    merged = read_hdr(out / "merged.hdr")
    seen = seen_mask(hdr)
    seen[:, :8] = seen[:, -8:] = False  # np.roll wrapped the shifted frame's edges
    spreads = []
    for rec in meta["frames"]:  # the set's pairs are those clipping at most 30%
        assert read_exposure(out / rec["file"]).time_s == pytest.approx(rec["exposure_time_s"])
        lin = rgb_to_luminance(srgb_to_linear(read_ldr(out / rec["file"])))
        ok = seen & (lin > 0.02) & (lin < 0.8)
        ratio = np.log2(lin[ok] / rgb_to_luminance(merged)[ok])
        spreads.append(np.abs(ratio - np.median(ratio)).mean())
    assert max(spreads) < 0.1  # stops; the nudged frame as shot: 0.5
    assert meta["frames"][1]["shift_px"][0] == pytest.approx(4.0, abs=0.3)
    assert meta["frames"][1]["file"].endswith(".png")


def test_frames_a_set_leaves_out_are_said_with_why(tmp_path, monkeypatch, capsys):
    shoot(tmp_path / "shots", scene())
    out = tmp_path / "set"
    meta = write_bracket_set([tmp_path / "shots"], out, align=True)
    frames = meta["frames"]
    left = scan_dataset(out).left_out
    assert [p.name for p, _ in left] == [f["file"] for f in frames if f["clipped"] > 0.3]
    assert left and all(
        "of its pixels (frames clipping at most 30% are scored)" in w for _, w in left
    )
    assert "left out: " in format_summary(summarize(index_dataset(out)))
    code, _, err = run_cli(
        monkeypatch, capsys, "evaluate", out, "--method", "linear", "-o", out / "e"
    )
    assert code == 0 and f"note: {len(left)} file" in err and "left out" in err
    frames[-1]["shift_px"] = [3.0, 0.0]  # as an older --align stored it: the file as given
    del meta["merge"]["frames_as_merged"]
    (out / "exposures.json").write_text(json.dumps(meta))
    left = dict(scan_dataset(out).left_out)
    assert "stored 3.0 px off the merge" in left[out / frames[-1]["file"]]
    sys.path.insert(0, str(ROOT / "scripts"))
    import bracket_sets

    assert not bracket_sets.bracket_cases(out, None)  # validate_model.py leaves it out too
    assert "px off the merge" in capsys.readouterr().err
    for merge in ({"method": "opencv-debevec"}, ["merged.hdr"]):  # hand-edited: one line
        (out / "exposures.json").write_text(json.dumps(meta | {"merge": merge}))
        with pytest.raises(InputError, match="not a bracket set description"):
            scan_dataset(out)
    frames[-1]["shift_px"] = [0.0, 0.0]
    (out / "exposures.json").write_text(json.dumps(meta))
    (out / "merged.hdr").rename(tmp_path / "merged.hdr")  # the set's own path, not two up
    assert {p.hdr_path for p in scan_dataset(out).pairs} == {out / "merged.hdr"}


def test_bad_brackets_fail_naming_the_file_and_write_nothing(tmp_path):
    paths = shoot(tmp_path / "shots", scene())
    out = tmp_path / "set"
    with pytest.raises(InputError, match="at least two photos"):
        write_bracket_set(paths[:1], out)
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty/IMG_1.CR2").write_bytes(b"raw")
    with pytest.raises(InputError, match="no photos in this folder") as err:
        write_bracket_set([tmp_path / "empty"], out)
    assert "empty" in str(err.value) and "raw" in str(err.value)
    bare = tmp_path / "bare.jpg"
    Image.fromarray(np.zeros((48, 64, 3), np.uint8)).save(bare)
    with pytest.raises(InputError, match="no EXIF exposure time to merge by$") as err:
        write_bracket_set([*paths, bare], out)
    assert "bare.jpg" in str(err.value)
    pixels = np.zeros((48, 64, 3), np.uint8)
    manual = photo_with_exif(tmp_path / "manual.jpg", 1 / 60, 0.0, 100, pixels)
    with pytest.raises(InputError, match="manual.jpg: no EXIF f-number to merge by, which the"):
        write_bracket_set([*paths, manual], out)  # the others' f/4 cannot be compared with it
    with pytest.MonkeyPatch.context() as mp:  # an f-number of 1e200 stored as a DOUBLE
        mp.setattr("mlx_hdr.data.brackets.exposure_settings", lambda p: (1 / 60, 1e200, 100.0))
        with pytest.raises(InputError, match="exposure settings are out of any camera's range"):
            write_bracket_set(paths, out)  # had read "the photos do not differ in exposure"
    (tmp_path / "notes.jpg").write_text("not a photo")
    with pytest.raises(InputError, match="notes.jpg: (?!no EXIF)"):  # named as no photo
        write_bracket_set([*paths, tmp_path / "notes.jpg"], out)
    small = photo_with_exif(
        tmp_path / "small.jpg", 1 / 60, 4.0, 100, np.zeros((16, 16, 3), np.uint8)
    )
    with pytest.raises(InputError, match="not the size of"):
        write_bracket_set([*paths, small], out)
    tiny = [  # OpenCV's calibration cannot sample them (a cv2.error traceback)
        photo_with_exif(tmp_path / f"t{i}.jpg", t, 4.0, 100, np.full((4, 4, 3), 99, np.uint8))
        for i, t in enumerate((1 / 60, 1 / 250))
    ]
    with pytest.raises(InputError, match="too small to merge") as err:
        write_bracket_set(tiny, out)
    assert "t0.jpg" in str(err.value) or "t1.jpg" in str(err.value)
    same = [photo_with_exif(tmp_path / f"s{i}.jpg", 1 / 60, 4.0, 100) for i in range(2)]
    with pytest.raises(InputError, match="do not differ in exposure"):
        write_bracket_set(same, out)
    with pytest.raises(InputError, match="at least two photos"):  # a file named twice: once
        write_bracket_set([paths[0], paths[0]], out)
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    out.mkdir()
    (out / "x").write_text("")
    with pytest.raises(InputError, match="already exists"):
        write_bracket_set(paths, out)


def test_cli_merges_a_bracket_and_fails_in_one_line(tmp_path, monkeypatch, capsys):
    shoot(tmp_path / "shots", scene())
    out = tmp_path / "set"
    args = ("data", "brackets", tmp_path / "shots", "-o", out)
    code, stdout, _ = run_cli(monkeypatch, capsys, *args)
    assert code == 0 and "merged 4 photos" in stdout and (out / "merged.hdr").is_file()
    assert "validate_model.py --brackets" in stdout
    short = json.loads((out / "exposures.json").read_text())["frames"][-1]
    assert f"the shortest photo ({short['source']}) clips {short['clipped']:.1%} of" in stdout
    code, _, err = run_cli(monkeypatch, capsys, *args)
    assert code == 1 and err.count("\n") == 1 and "already exists" in err and "set" in err
    report = tmp_path / "report"
    ev = ("evaluate", out, "--method", "linear", "-o", report, "--no-progress")
    code, stdout, err = run_cli(monkeypatch, capsys, *ev)  # each photo against the merge
    rows = (report / "metrics.csv").read_text().splitlines()
    frames = json.loads((out / "exposures.json").read_text())["frames"]
    assert code == 0 and len(rows) - 1 == sum(f["clipped"] <= 0.3 for f in frames) > 0, err


def test_a_manual_lens_bracket_merges_by_time_and_iso(tmp_path, monkeypatch, capsys):
    # no photo records an f-number (a manual lens writes 0): it had been refused
    hdr = scene()
    out = tmp_path / "set"
    shoot(tmp_path / "shots", hdr, f_number=0.0)
    code, stdout, err = run_cli(
        monkeypatch, capsys, "data", "brackets", tmp_path / "shots", "-o", out
    )
    assert code == 0, err
    assert "no photo records its f-number (a manual lens?): merged by the rest" in stdout
    frames = json.loads((out / "exposures.json").read_text())["frames"]
    assert [f["f_number"] for f in frames] == [None] * 4 and frames[0]["iso"] == 100
    shoot(tmp_path / "shots4", hdr)  # the same scene with its f-number
    expected, _ = merge_bracket(read_frames(sorted((tmp_path / "shots4").iterdir())))
    write_hdr(tmp_path / "expected.hdr", expected)  # as RGBE rounds it
    np.testing.assert_array_equal(read_hdr(out / "merged.hdr"), read_hdr(tmp_path / "expected.hdr"))


def test_light_every_frame_clips_is_merged_at_least_at_the_shortest_frames_white(tmp_path):
    # Debevec's merge had averaged the longer frames' clipped codes in: such a light came
    # out at a fraction of the white, darker than the near-white pixels around it
    hdr = scene()
    frames = read_frames(shoot(tmp_path, hdr))
    merged, _ = merge_bracket(frames)
    every = hdr.min(-1) * TIMES[-1] * 8 > 1.2  # beyond the shortest frame's clip
    assert every.sum() > 50
    assert merged[every].min() > 0.9
    near = (hdr.max(-1) * TIMES[-1] * 8 > 0.7) & (hdr.max(-1) * TIMES[-1] * 8 < 0.9)
    assert np.median(merged[every]) > np.median(merged[near])


def test_the_floor_follows_the_longer_frames_clipping_not_a_code_of_the_shortest():
    # a floor only at the shortest frame's codes >= 250 made a step between 249 and 250
    # where OpenCV 4.x's merge weighs clipped codes in (codes below 250 stayed low)
    from mlx_hdr.data.brackets import _shortest_reads

    response = np.tile(np.arange(256, dtype=np.float32)[:, None] + 1.0, (1, 3))
    short = np.array([[[200, 249, 250]], [[200, 249, 250]]], np.uint8)  # 2 pixels, 3 channels
    longer = np.array([[[255, 255, 255]], [[255, 249, 255]]], np.uint8)
    floor = _shortest_reads([longer, longer, short], response, 0.25)
    np.testing.assert_array_equal(floor[0, 0], [804.0, 1000.0, 1004.0])  # (code + 1) / 0.25
    np.testing.assert_array_equal(floor[1, 0], [804.0, 0.0, 1004.0])  # recorded by a longer one


def test_merge_matches_the_office_sets_own_merge(shared):
    """hdr-pool-2's office HDR and response were merged by OpenCV's Debevec from its stored
    frames: the same frames give the same response and, up to scale, the same HDR."""
    from mlx_hdr.data.brackets import Frame
    from mlx_hdr.io.photo_meta import Exposure

    folder = shared / "data/hdr-pool-2/brackets/lumilab_fisheye_office"
    meta = json.loads((folder / "exposures.json").read_text())
    keys = ("exposure_time_s", "f_number", "iso")
    frames = [
        Frame.read(folder / f["file"], Exposure(*(f[k] for k in keys))) for f in meta["frames"]
    ]
    hdr, response = merge_bracket(frames)
    ref = np.array(meta["response_curve_rgb"])
    rel = np.log2(response[1:] / response[128]) - np.log2(ref[1:] / ref[128])
    assert np.abs(rel).max() < 1e-3  # stops, every code and channel
    shipped = read_hdr(shared / "data/hdr-pool-2/lumilab_fisheye_office.hdr")
    both = (shipped.min(-1) > 0) & (hdr.min(-1) > 0)
    dev = np.log2(hdr[both] / shipped[both])
    dev = np.abs(dev - np.median(dev))
    assert dev.mean() < 0.01 and np.quantile(dev, 0.999) < 0.05  # RGBE keeps ~1%


def test_office_script_writes_exif_back_and_merges(tmp_path, monkeypatch):
    """``scripts/office_bracket_set.py`` on a stored set whose frames carry no EXIF."""
    sys.path.insert(0, str(ROOT / "scripts"))
    import office_bracket_set

    from mlx_hdr.io.photo_meta import read_exposure

    stored = tmp_path / "stored"
    stored.mkdir()
    frames = []
    for i, path in enumerate(sorted(shoot(tmp_path / "shots", scene()))):
        bare = stored / f"f{i}.jpg"
        Image.open(path).save(bare)  # without the EXIF
        t = read_exposure(path).time_s
        frames.append({"file": bare.name, "exposure_time_s": t, "f_number": 4.0, "iso": 100})
    ghost = [4, 6, 30, 40]
    (stored / "exposures.json").write_text(
        json.dumps({"frames": frames, "ghost_region_xyxy": ghost})
    )
    assert read_exposure(stored / "f0.jpg") is None
    out = tmp_path / "set"
    monkeypatch.setattr(sys, "argv", ["x", "-o", str(out), "--source", str(stored)])
    office_bracket_set.main()
    meta = json.loads((out / "exposures.json").read_text())
    assert [f["exposure_time_s"] for f in meta["frames"]] == pytest.approx(TIMES)
    assert (out / "merged.hdr").is_file() and scan_dataset(out).pairs
    assert meta["ghost_region_xyxy"] == ghost and "image_circle" not in meta  # no fisheye here
    assert all(p.region.ghost == tuple(ghost) for p in scan_dataset(out).pairs)
    with pytest.raises(SystemExit):  # an existing set is not overwritten, nothing is left
        office_bracket_set.main()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["set", "shots", "stored"]


def test_a_set_written_into_the_working_folder_is_told_to_go_into_a_folder_of_sets(
    tmp_path, monkeypatch
):
    """`data index .` there would index whatever else the working folder holds."""
    from mlx_hdr.data.brackets import bracket_set_use

    monkeypatch.chdir(tmp_path)
    here = bracket_set_use(Path("office"))
    assert "mlx-hdr data index sets " in here and "mv office sets/" in here
    nested = bracket_set_use(Path("shoots") / "office")
    assert "mlx-hdr data index shoots " in nested and "mv " not in nested
