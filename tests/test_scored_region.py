"""A bracket set's marked pixels (``datasets.ScoredRegion``): a ghost box and a fisheye's
image circle are left out of what ``mlx-hdr evaluate`` scores, not out of the photo."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest
from test_brackets import scene, shoot

from mlx_hdr.data.brackets import write_bracket_set
from mlx_hdr.data.datasets import scan_dataset
from mlx_hdr.data.fisheye import Circle, inside
from mlx_hdr.data.manifest import MARKED, index_dataset
from mlx_hdr.data.scored import ScoredRegion
from mlx_hdr.errors import InputError
from mlx_hdr.eval.evaluate import evaluate
from mlx_hdr.eval.metrics import hdr_metrics
from mlx_hdr.infer.pipeline import predict_hdr
from mlx_hdr.io.hdr_io import read_hdr, write_hdr
from mlx_hdr.io.image_io import read_ldr

BOX = [4, 6, 30, 40]  # x0, y0, x1, y1 in the 64x48 frames


@pytest.fixture(scope="module")
def bracket(tmp_path_factory) -> Path:
    """A bracket set of :func:`test_brackets.scene` (64x48, five exposures)."""
    root = tmp_path_factory.mktemp("scored")
    shoot(root / "shots", scene())
    write_bracket_set([root / "shots"], root / "set")
    return root / "set"


def marked(src: Path, dst: Path, ghost_in_truth: bool = False, **marks) -> Path:
    """A copy of the set ``src`` whose description adds ``marks``; with ``ghost_in_truth``,
    its merged HDR is 3 stops brighter in :data:`BOX` (something that moved)."""
    dst.mkdir()
    meta = json.loads((src / "exposures.json").read_text())
    for f in [*(r["file"] for r in meta["frames"])]:
        (dst / f).write_bytes((src / f).read_bytes())
    hdr = read_hdr(src / meta["merge"]["output"])
    if ghost_in_truth:
        x0, y0, x1, y1 = BOX
        hdr[y0:y1, x0:x1] *= 8.0
    write_hdr(dst / meta["merge"]["output"], hdr, dtype="float")
    (dst / "exposures.json").write_text(json.dumps(meta | marks))
    return dst


def scores(folder: Path, out: Path) -> list[dict]:
    """``evaluate``'s rows of ``folder``: (case, method) and the metrics."""
    rows = evaluate(folder, out, ["linear", "kovaleski2014"], progress=False).rows
    return [({k: r.pop(k) for k in ("case", "method")}, r) for r in rows]


def test_a_ghost_box_is_not_scored(bracket, tmp_path):
    for d in "abc":
        (tmp_path / d).mkdir()
    ghosted = marked(bracket, tmp_path / "a/set", ghost_in_truth=True, ghost_region_xyxy=BOX)
    clean = marked(bracket, tmp_path / "b/set", ghost_region_xyxy=BOX)
    unmarked = marked(bracket, tmp_path / "c/set", ghost_in_truth=True)
    rows, clean_rows = scores(ghosted, tmp_path / "ea"), scores(clean, tmp_path / "eb")
    assert rows and [k for k, _ in rows] == [k for k, _ in clean_rows]
    # what lies in the box counts in no metric (but for the SSIMs' windows at its edge) ...
    for (_, a), (_, b) in zip(rows, clean_rows, strict=True):
        a, b = ({k: v for k, v in r.items() if not k.endswith("ssim")} for r in (a, b))
        assert a == pytest.approx(b, rel=1e-6, abs=1e-9, nan_ok=True)
    # ... where, unmarked, it does
    other = scores(unmarked, tmp_path / "ec")
    assert [k for k, _ in other] == [k for k, _ in rows]
    moved = [
        abs(a["pu21_psnr"] - b["pu21_psnr"]) for (_, a), (_, b) in zip(rows, other, strict=True)
    ]
    assert max(moved) > 0.5


def test_an_image_circle_is_scored_inside_and_picks_frames_by_it(bracket, tmp_path):
    circle = [36.0, 24.0, 14.0]  # a frame clips 32% of its pixels, 24% of the circle's
    folder = marked(bracket, tmp_path / "set", image_circle=circle)
    pairs, whole = scan_dataset(folder).pairs, {p.name for p in scan_dataset(bracket).pairs}
    added = [p for p in pairs if p.name not in whole]
    assert len(added) == 1 and len(pairs) == len(whole) + 1
    pair = added[0]
    assert pair.region == ScoredRegion(None, Circle(*circle))
    ldr, gt = read_ldr(pair.ldr_path), read_hdr(pair.hdr_path)
    valid = inside(Circle(*circle), ldr.shape)
    want = hdr_metrics(predict_hdr(ldr, None, "linear"), gt, ldr, valid=valid)
    got = next(r for k, r in scores(folder, tmp_path / "e") if k["case"] == pair.name)
    assert np.isfinite(want["highlight_log2"])  # the circle holds clipped pixels
    assert got == pytest.approx(want, rel=1e-6, abs=1e-9)


BAD_MARKS = [
    ({"ghost_region_xyxy": [1, 2, 3]}, "is not"),
    ({"ghost_region_xyxy": "box"}, "is not"),
    ({"ghost_region_xyxy": []}, "is not"),
    ({"ghost_region_xyxy": [40, 40, 10, 10]}, "is not"),  # inverted: would mark nothing
    ({"ghost_region_xyxy": [True, False, 10, 10]}, "is not"),
    ({"ghost_region_xyxy": [0, 0, 10**400, 10]}, "is not"),  # beyond any float
    ({"ghost_region_xyxy": [500, 500, 600, 600]}, "lies outside the 64x48 frames"),
    ({"ghost_region_xyxy": [-9, -9, 0, 0]}, "lies outside"),
    ({"ghost_region_xyxy": [-5, -5, 1000, 1000]}, "leave 0.0% of the frames' pixels scored"),
    ({"image_circle": [10, 10, -5]}, "is not"),
    ({"image_circle": "yes"}, "is not"),
    ({"image_circle": [True, True, True]}, "is not"),
    ({"image_circle": 1}, "is not"),  # a number is not true ...
    ({"image_circle": 0}, "is not"),  # ... nor false
    ({"image_circle": 1.0}, "is not"),
    ({"image_circle": [1000, 1000, 5]}, "leave 0.0%"),
    ({"image_circle": [30, 20, 0.1]}, "leave 0.0%"),  # one pixel
    ({"image_circle": True}, "image_circle true: none found on the merged HDR"),  # no fisheye
    ({"image_cirle": [30, 20, 10]}, "unknown key 'image_cirle' (did you mean 'image_circle'?)"),
    ({"Image-Circle": True}, "unknown key 'Image-Circle' (did you mean 'image_circle'?)"),
    ({"circle": [30, 20, 10]}, "(did you mean 'image_circle'?)"),
    ({"lens_circle": [30, 20, 10]}, "(did you mean 'image_circle'?)"),
    ({"ghost_region": BOX}, "unknown key 'ghost_region' (did you mean 'ghost_region_xyxy'?)"),
    ({"ghost_region_xyx": BOX}, "(did you mean 'ghost_region_xyxy'?)"),
    ({"ghost_regions": [BOX]}, "(did you mean 'ghost_region_xyxy'?)"),
    ({"circle": True}, "(did you mean 'image_circle'?)"),
    ({"ghost_box": BOX}, "(did you mean 'ghost_region_xyxy'?)"),
    ({"gost_region_xyxy": BOX}, "(did you mean 'ghost_region_xyxy'?)"),
]


@pytest.mark.parametrize(("marks", "why"), BAD_MARKS)
def test_a_bad_mark_fails_in_one_line_naming_the_file(bracket, tmp_path, marks, why):
    folder = marked(bracket, tmp_path / "set", **marks)
    for scan in (scan_dataset, index_dataset):
        with pytest.raises(InputError, match=re.escape(why)) as err:
            scan(folder)
        assert str(err.value).startswith(str(folder / "exposures.json") + ": ")
        assert "\n" not in str(err.value)


def test_a_sets_own_notes_beside_its_marks_are_not_taken_for_misspelt_marks(bracket, tmp_path):
    notes = {"ghost_region_note": "a person", "ghost_check": {"moved": 0.1}, "name": "x"}
    notes |= {"image": "fisheye.jpg", "ghost": "none seen", "ghost_region_by": "eye"}
    notes |= {"ghost_check": [{"frame": "a.jpg", "moved": 0.1}], "circle_center": [30, 20]}
    notes |= {"ghost_frames": ["a.jpg", "b.jpg"], "circle_found": True}
    notes |= {"views": [[0.0, 0.0, 1.0, 1.0]], "circle_note": "found on the merge"}
    folder = marked(bracket, tmp_path / "set", ghost_region_xyxy=BOX, **notes)
    assert all(p.region is not None for p in scan_dataset(folder).pairs)


def test_the_shared_bracket_sets_keys_are_their_own(shared):
    from mlx_hdr.data.scored import misspelt_mark

    sets = sorted((shared / "data").glob("*/brackets/*/exposures.json"))
    assert sets  # the office set at least
    for path in sets:
        meta = json.loads(path.read_text())
        assert [k for k, v in meta.items() if misspelt_mark(k, v)] == [], path
    assert scan_dataset(sets[0].parent).pairs  # its ghost box: a mark, read


def test_no_mark_and_false_mark_nothing(bracket, tmp_path):
    folder = marked(bracket, tmp_path / "set", ghost_region_xyxy=None, image_circle=False)
    pairs = scan_dataset(folder).pairs
    assert pairs and [p.region for p in pairs] == [None] * len(scan_dataset(bracket).pairs)


def test_a_manifest_takes_no_frame_of_a_marked_set(bracket, tmp_path):
    folder = marked(bracket, tmp_path / "set", ghost_region_xyxy=BOX)
    manifest = index_dataset(folder)
    assert not manifest.records and scan_dataset(folder).pairs
    # every frame, those that clip too much included, is said to be left out for the marks
    assert {r["why"] for r in manifest.header["left_out"]} == {MARKED}
    assert len(manifest.header["left_out"]) == len(
        json.loads((folder / "exposures.json").read_text())["frames"]
    )
    assert len(index_dataset(bracket).records) == len(scan_dataset(bracket).pairs)


def test_the_validation_scores_the_pixels_a_set_marks(bracket, tmp_path):
    """``scripts/bracket_sets.scored_pixels`` (``validate_model.py``) takes the set's marks,
    so it scores what ``evaluate`` scores; it finds a fisheye's circle only where none is
    marked."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
    import bracket_sets

    circle = [36.0, 24.0, 14.0]
    folder = marked(bracket, tmp_path / "set", image_circle=circle, ghost_region_xyxy=BOX)
    meta = json.loads((folder / "exposures.json").read_text())
    path, merged = folder / "exposures.json", folder / meta["merge"]["output"]
    hdr = read_hdr(merged)
    want = ScoredRegion(tuple(BOX), Circle(*circle)).pixels(hdr.shape)
    np.testing.assert_array_equal(bracket_sets.scored_pixels(hdr, meta, path), want)
    assert scan_dataset(folder).pairs[0].region.pixels(hdr.shape).tolist() == want.tolist()
    plain = bracket_sets.scored_pixels(hdr, {}, path)  # no marks, no fisheye: all
    assert plain.all()


def test_a_marked_set_without_its_merge_leaves_the_others_scored(bracket, tmp_path):
    root = tmp_path / "sets"
    root.mkdir()
    marked(bracket, root / "a", ghost_region_xyxy=BOX)
    broken = marked(bracket, root / "b", ghost_region_xyxy=BOX)
    (broken / "merged.hdr").unlink()
    found = scan_dataset(root)
    assert {p.ldr_path.parent.name for p in found.pairs} == {"a"}
    why = {w for f, w in found.left_out if f.parent.name == "b"}
    assert len(why) == 1 and why.pop().startswith("its merged HDR: ")
    report = evaluate(root, tmp_path / "e", ["linear"], progress=False)
    summary = (tmp_path / "e/summary.md").read_text()
    assert (
        report.rows
        and "`a` is scored without its ghost box, as its exposures.json marks." in summary
    )
    assert "`b` is scored" not in summary
