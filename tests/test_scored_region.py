"""A bracket set's marked pixels (``datasets.ScoredRegion``): a ghost box and a fisheye's
image circle are left out of what ``mlx-hdr evaluate`` scores, not out of the photo."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from test_brackets import scene, shoot

from mlx_hdr.data.brackets import write_bracket_set
from mlx_hdr.data.datasets import ScoredRegion, scan_dataset
from mlx_hdr.data.fisheye import Circle, inside
from mlx_hdr.data.manifest import MARKED, index_dataset
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


def test_a_bad_mark_fails_in_one_line_naming_the_file(bracket, tmp_path):
    for i, marks in enumerate(
        [
            {"ghost_region_xyxy": [1, 2, 3]},
            {"ghost_region_xyxy": "box"},
            {"image_circle": [10, 10, -5]},
            {"image_circle": "yes"},
        ]
    ):
        folder = marked(bracket, tmp_path / str(i), **marks)
        with pytest.raises(InputError, match="is not") as err:
            scan_dataset(folder)
        assert str(folder / "exposures.json") in str(err.value) and "\n" not in str(err.value)
    folder = marked(bracket, tmp_path / "found", image_circle=True)  # no fisheye here
    with pytest.raises(InputError, match="image_circle: no image circle") as err:
        scan_dataset(folder)
    assert "merged" in str(err.value) and "\n" not in str(err.value)


def test_a_manifest_takes_no_frame_of_a_marked_set(bracket, tmp_path):
    folder = marked(bracket, tmp_path / "set", ghost_region_xyxy=BOX)
    manifest = index_dataset(folder)
    assert not manifest.records and scan_dataset(folder).pairs
    assert {r["why"] for r in manifest.header["left_out"]} >= {MARKED}
    assert len(index_dataset(bracket).records) == len(scan_dataset(bracket).pairs)
