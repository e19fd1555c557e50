"""How the rendering of a fisheye set's normal-lens views moves a model against Kovaleski 2014.

Scores the model and ``kovaleski2014`` (as ``validate_model.py`` does) on the views of
``--rectilinear`` rendered several ways: at their native side from the frames as stored
(one frame pixel per view pixel at the centre, ``bracket_sets.native_side``), those views
reduced or enlarged with OpenCV to each ``--resize`` side, and magnified by rendering
1,024-px views from frames at 2,048 and 1,024 px. Prints PU21-PSNR / highlight error per
method and the model's highlight error against Kovaleski's (the model card's rendering
table):

    python scripts/view_renderings.py ../shared/data/hdr-pool-2/brackets/lumilab_fisheye_office \\
        --rectilinear=-40:0:75 --rectilinear 0:0:75 --rectilinear 40:0:75
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import validate_model as vm  # noqa: E402  (sets the backend up first)
from bracket_sets import Case, add_rectilinear, bracket_cases, rectilinear_cases  # noqa: E402

from mlx_hdr.errors import HDRError  # noqa: E402

PEER = "kovaleski2014"


def resized(cases: list[Case], side: int) -> list[Case]:
    """``cases`` resized to a long side of ``side`` px: area when reducing, bicubic when
    enlarging; the display image clipped to [0, 1], the HDR to >= 0, the scored pixels
    where at least half a pixel was."""

    def rs(img: np.ndarray) -> np.ndarray:
        h, w = img.shape[:2]
        k = side / max(h, w)
        size = (round(w * k), round(h * k))
        return cv2.resize(img, size, interpolation=cv2.INTER_CUBIC if k > 1 else cv2.INTER_AREA)

    def valid(c: Case) -> np.ndarray | None:
        return None if c.valid is None else rs(c.valid.astype(np.float32)) > 0.5

    return [
        Case(np.clip(rs(c[0]), 0, 1), np.maximum(rs(c[1]), 0), c.exposure, valid(c)) for c in cases
    ]


def renderings(folder: Path, views, sides: list[int]) -> dict[str, list[Case]]:
    """Title -> the views rendered that way (see the module docstring)."""
    stored = bracket_cases(folder, None, scored=True, every=True)
    native, _ = rectilinear_cases(stored, views, None)
    out = {f"native ({native[0][0].shape[1]} px)": native}
    out |= {f"native, resized to {s} px": resized(native, s) for s in sides}
    for frames in (stored, bracket_cases(folder, 1024, scored=True, every=True)):
        title = f"1024 px from {max(frames[0][0].shape[:2])}-px frames"
        out[title] = rectilinear_cases(frames, views, 1024)[0]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("brackets", type=Path, help="a circular-fisheye bracket set folder")
    bundled = Path(__file__).resolve().parents[1] / "mlx_hdr" / "assets" / "default.safetensors"
    ap.add_argument("--model", default=str(bundled), help="model file or repo id (the bundled one)")
    ap.add_argument(
        "--resize", type=int, nargs="*", default=[444, 640, 1024], help="long sides, px"
    )
    add_rectilinear(ap, "the normal-lens views (yaw:pitch:fov, degrees)")
    args = ap.parse_args()
    if not args.rectilinear:
        ap.error("give at least one --rectilinear view")
    try:
        table(args)
    except (HDRError, FileNotFoundError) as exc:  # a missing set, a bad model: one line
        sys.exit(f"error: {vm.one_line(exc)}")


def table(args) -> None:
    """Print the renderings' table for the parsed arguments (:func:`main`)."""
    methods = vm.runners([args.model], [PEER])
    model = Path(args.model).stem
    views = renderings(args.brackets, args.rectilinear, args.resize)
    print(f"| rendering | {model} | {PEER} | highlight error against {PEER}'s |\n|---|---|---|---|")
    for title, cases in views.items():
        preds = [{} for _ in cases]
        scores = {n: vm.score(n, run, net, cases, preds) for n, (run, net) in methods.items()}
        cells = [f"{scores[n][0]:.2f} / {scores[n][1]:.3f}" for n in (model, PEER)]
        lead = scores[model][1] / scores[PEER][1] - 1.0
        print(f"| {title} ({len(cases)} views) | {cells[0]} | {cells[1]} | {lead:+.1%} |")


if __name__ == "__main__":
    main()
