"""Model selection without the evaluation set: models side by side with the peers on
(a) simulated photos of the held-out pool images (every 9th image of each pool, the ones
``mlx-hdr train`` holds out), with ``--renders N`` also clean sRGB renderings of them and
with ``--sim-brackets N`` simulated exposure brackets of N held-out scenes (through a
measured camera response with ``--sim-response FILE``, e.g. a bracket set's
``exposures.json``), and (b) a real exposure-bracket set (each real camera frame against
the merged HDR of all frames; for a circular-fisheye set, ``--rectilinear=YAW:PITCH:FOV``
turns each frame into that normal-lens view, as a user's photo would be, repeatable,
rendered from the frames as stored at the side that keeps them as sharp as the frames are
(``--view-side N``: at N px from frames at ``--long-side``);
``scripts/fetch_hdrmerge_brackets.py`` writes a second, outdoor set).

    python scripts/validate_model.py --pool ../shared/data/hdr-pool \\
        --pool ../shared/data/hdr-pool-2 \\
        --brackets ../shared/data/hdr-pool-2/brackets/lumilab_fisheye_office \\
        --expandnet ../shared/peers/expandnet/weights.pth \\
        --model mlx_hdr/assets/default.safetensors --model runs/x/model.safetensors

Models run as ``mlx-hdr predict`` runs them, the EXIF sky ceiling included: each bracket
frame carries its exposure (``exposures.json``'s ``exposure_time_s``, ``f_number`` and
``iso``, else the frame's EXIF) and a model with an exposure input reads it; simulated
views carry none, or with ``--pool-exif`` the one training gives them
(``PoolSource.sample_photo``). ``--sky-ceiling 0`` turns the ceiling off, ``--sky-ceiling
C`` sets its level in cd/m²; ``--daylight-floor F`` adds the opt-in EXIF daylight floor at
F cd/m² (``predict --daylight-floor``).

``--floor-strength S`` (repeatable) scores each model once per floor strength, as
``mlx-hdr bundle --floor-strength S`` would bundle it (the floor-strength rule of
docs/MODEL_CARD.md picks among these rows).

Columns (means over the cases of a set; the metrics of ``mlx-hdr evaluate``, after one
global scale fitted over well-exposed pixels):
- ``pu21_psnr`` (dB), ``highlight_log2`` (mean |log2| luminance error over the pixels
  clipped in the input, stops), ``log_psnr``, ``log_ssim``;
- ``gain_err``: |log2| of the median luminance gain over clipped pixels (prediction over
  the linearised input) divided by the true median gain, stops;
- ``peak``: log2 of the prediction's brightest luminance over the truth's (both aligned),
  stops: > 0 where a few pixels overshoot everything in the scene (spikes), < 0 where the
  brightest light stays short;
- with ``--per-case``, each case's clipped gain (log2 of the median luminance gain over the
  clipped pixels) of the truth, each method and each model's raw output, stops;
- for bracket sets, the within-scene gain slope of each method: its clipped gain regressed on
  the truth's over the frames of each scene, both centred per scene (1: follows the
  exposure as the truth does; 0: the same gain at every exposure);
- ``cast`` (models only): the raw output's (``--no-blend``) mean chromaticity difference
  to the linearised input over well-exposed pixels (r, g of r+g+b), x100.
- ``clip_hue``: the mean chromaticity difference to the truth over the pixels clipped in
  all three channels, where the photo holds no colour, x100 (the linearised input's row
  is a neutral white's).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import warnings
from functools import partial
from pathlib import Path

import cv2
import numpy as np

# ruff: noqa: E402  (imports after backend.setup(), which must run before mlx.core loads)
from mlx_hdr import backend

backend.setup()
# isort: split
from mlx_hdr.color import (
    CLIPPED,
    align_scale,
    clipped_mask,
    linear_to_srgb,
    rgb_to_luminance,
    srgb_to_linear,
    well_exposed_mask,
)
from mlx_hdr.color import (
    clipped_gain as color_clipped_gain,
)
from mlx_hdr.data.simulate import CAMERA, CURVES
from mlx_hdr.errors import HDRError
from mlx_hdr.eval.evaluate import counts_in_mean, labelled_panel
from mlx_hdr.eval.metrics import alignment_pixels, hdr_metrics
from mlx_hdr.infer.exposure import SKY_CEILING
from mlx_hdr.infer.model_hub import load_net, with_floor_strength
from mlx_hdr.infer.pipeline import RESPONSE, WORK_PIXELS, predict_hdr
from mlx_hdr.infer.response import RESPONSES
from mlx_hdr.io.image_io import write_ldr

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bracket_sets import add_rectilinear, bracket_cases, rectilinear_cases
from sim_sets import POOL_VIEWS, pool_cases, render_cases, sim_bracket_cases

KEYS = (
    "pu21_psnr",
    "highlight_log2",
    "gain_err",
    "log_psnr",
    "log_ssim",
    "peak",
    "cast",
    "clip_hue",
)
CLIPPED_ONLY = ("highlight_log2", "gain_err", "peak", "cast", "clip_hue")  # NaN: left out
MIN_HUE_PIXELS = 20  # fully clipped pixels below which a case has no clip_hue
FLIPS = {"auto": None, "on": True, "off": False}  # --flip: predict_hdr's flip


def gain_slope(cases, preds: list[dict], scenes: list[int], name: str) -> float:
    """Slope of ``name``'s clipped gain on the truth's over the frames of each scene, both
    centred per scene (:func:`clipped_gain`): 1 follows the exposure as the truth does, 0
    gives every exposure of a scene the same gain. NaN without two frames of one scene."""
    truth = np.array([clipped_gain(c[1], c[0], valid=valid_of(c)) for c in cases])
    pairs = zip(cases, preds, strict=True)
    pred = np.array([clipped_gain(row[name], c[0], valid=valid_of(c)) for c, row in pairs])
    scenes = np.asarray(scenes)
    for k in np.unique(scenes):
        at = scenes == k
        truth[at] -= truth[at].mean()
        pred[at] -= pred[at].mean()
    var = float((truth**2).sum())
    return float((truth * pred).sum() / var) if var > 0 else float("nan")


def valid_of(case) -> np.ndarray | None:
    """A case's HxW bool mask of the pixels scored (``bracket_sets.Case.valid``; None:
    all)."""
    return getattr(case, "valid", None)


def picked(valid: np.ndarray | None):
    """The index of the pixels scored: ``valid``, or every pixel (``...``) for None."""
    return ... if valid is None else valid


def aligned(img: np.ndarray, ldr: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """``img`` on the linearised input's scale (one factor over the pixels
    ``metrics.alignment_pixels`` gives: the well-exposed ones, those in ``valid``)."""
    return img * align_scale(img, srgb_to_linear(ldr), alignment_pixels(ldr, valid))


def scored(mask: np.ndarray, valid: np.ndarray | None) -> np.ndarray:
    """HxW ``mask`` within the pixels scored (``valid``; None: all)."""
    return mask if valid is None else mask & valid


def clipped_gain(
    img: np.ndarray, ldr: np.ndarray, min_share: float = 0.0, valid: np.ndarray | None = None
) -> float:
    """log2 of the median luminance gain of aligned ``img`` over the linearised input, over
    the pixels clipped in ``ldr`` (the highlight metric's set; those in ``valid``), stops;
    NaN when at most ``min_share`` of them clip."""
    if clipped_mask(ldr).mean() <= min_share:
        return float("nan")
    pick = picked(valid)
    return color_clipped_gain(ldr[pick], aligned(img, ldr, valid)[pick], threshold=CLIPPED)


def gain_error(pred: np.ndarray, gt: np.ndarray, ldr: np.ndarray, valid=None) -> float:
    """|log2| of median clipped-pixel gain, prediction over truth (both aligned), stops."""
    return abs(clipped_gain(pred, ldr, valid=valid) - clipped_gain(gt, ldr, valid=valid))


def peak_ratio(pred: np.ndarray, gt: np.ndarray, ldr: np.ndarray, valid=None) -> float:
    """log2 of max Y(pred) over max Y(gt) (over ``valid``), both aligned to the linearised
    input, stops."""
    peaks = [rgb_to_luminance(aligned(img, ldr, valid))[picked(valid)].max() for img in (pred, gt)]
    return float(np.log2(max(peaks[0], 1e-8) / max(peaks[1], 1e-8)))


def chroma_difference(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    """Mean |rg chromaticity| difference (r, g of r+g+b) of HxWx3 ``a`` to ``b`` over the
    HxW ``mask``, x100; NaN where the mask is empty. Scale-free: no alignment needed."""
    if not mask.any():
        return float("nan")

    def rg(x):
        x = np.maximum(x[mask], 0.0)
        return x[:, :2] / np.maximum(x.sum(axis=1, keepdims=True), 1e-6)

    return float(np.abs(rg(a) - rg(b)).mean() * 100.0)


def colour_cast(raw: np.ndarray, ldr: np.ndarray, valid=None) -> float:
    """Mean |rg chromaticity| difference of ``raw`` to the linearised input, well-exposed
    pixels (in ``valid``), x100."""
    well = scored(well_exposed_mask(ldr) & ~clipped_mask(ldr), valid)
    return chroma_difference(raw, srgb_to_linear(ldr), well)


def clipped_hue(pred: np.ndarray, gt: np.ndarray, ldr: np.ndarray, valid=None) -> float:
    """Mean |rg chromaticity| difference of ``pred`` to the truth over the pixels clipped in
    all three channels (where the photo holds no colour; in ``valid``), x100; NaN with
    fewer than ``MIN_HUE_PIXELS`` of them."""
    full = scored(np.asarray(ldr).min(axis=-1) >= CLIPPED, valid)
    return chroma_difference(pred, gt, full) if full.sum() >= MIN_HUE_PIXELS else float("nan")


def clipped_window(ldr: np.ndarray, size: int) -> tuple[slice, slice]:
    """A ``size``-px square (at most the image) centred where clipped pixels are densest."""
    h, w = ldr.shape[:2]
    s = min(size, h, w)
    density = cv2.blur(clipped_mask(ldr).astype(np.float32), (s // 2 + 1, s // 2 + 1))
    cy, cx = np.unravel_index(int(np.argmax(density)), density.shape)
    y0, x0 = (int(np.clip(c - s // 2, 0, n - s)) for c, n in ((cy, h), (cx, w)))
    return slice(y0, y0 + s), slice(x0, x0 + s)


def minus_2ev(hdr: np.ndarray, ldr: np.ndarray) -> np.ndarray:
    """Display [0, 1] view of ``hdr`` aligned to the linearised input over well-exposed
    pixels, 2 stops darker, clipped: highlights up to 4x white stay visible."""
    return linear_to_srgb(np.clip(aligned(hdr, ldr) * 0.25, 0.0, 1.0))


def write_sheet(path: Path, ldr, hdr, preds: dict[str, np.ndarray], size: int = 320) -> None:
    """input | each prediction | truth, cropped to the clipped region, at -2 EV."""
    win = clipped_window(ldr, size)
    panels = [labelled_panel(ldr[win], "input")]
    panels += [labelled_panel(minus_2ev(p, ldr)[win], n[-28:]) for n, p in preds.items()]
    panels.append(labelled_panel(minus_2ev(hdr, ldr)[win], "truth (-2 EV)"))
    write_ldr(path, np.concatenate(panels, axis=1), quality=90)


def score(name: str, run, net, cases, preds: list[dict]) -> list[float]:
    rows = []
    for i, (ldr, hdr) in enumerate(cases):
        exposure = getattr(cases[i], "exposure", None)
        valid = valid_of(cases[i])
        pred = run(ldr, exposure=exposure)
        preds[i][name] = pred
        if net is not None:  # as predict --no-blend gives it, with the photo's exposure
            preds[i][f"{name} (raw)"] = run(ldr, blend=False, exposure=exposure)
        m = hdr_metrics(pred, hdr, ldr, valid=valid)
        m["gain_err"] = gain_error(pred, hdr, ldr, valid)
        m["peak"] = peak_ratio(pred, hdr, ldr, valid)
        m["cast"] = colour_cast(preds[i][f"{name} (raw)"], ldr, valid) if net else np.nan
        m["clip_hue"] = clipped_hue(pred, hdr, ldr, valid)
        rows.append(m)
    with warnings.catch_warnings():  # a column no case has (a peer's cast): NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        return [
            float(np.mean([r[k] for r in rows if counts_in_mean(r, k, CLIPPED_ONLY)])) for k in KEYS
        ]


def print_gains(cases, preds: list[dict]) -> None:
    """Per case: clipped share, then the truth's and each prediction's clipped gain, stops."""
    names = list(preds[0])
    print("\n| case | clipped | truth | " + " | ".join(names) + " |")
    print("|---" * (len(names) + 3) + "|")
    for i, (case, row) in enumerate(zip(cases, preds, strict=True)):
        (ldr, hdr), valid = case, valid_of(case)
        gains = [clipped_gain(img, ldr, valid=valid) for img in (hdr, *row.values())]
        share = clipped_mask(ldr)[picked(valid)].mean()  # of the pixels scored
        cells = [f"{share:.3f}", *(f"{g:.2f}" for g in gains)]
        print(f"| {i} | " + " | ".join(cells) + " |")


def runners(
    models: list[str],
    peers: list[str],
    work_pixels: int = WORK_PIXELS,
    flip: bool | None = None,
    response: str = RESPONSE,
    strengths: tuple[float, ...] = (),
    sky_ceiling: float | None = SKY_CEILING,
    daylight_floor: float | None = None,
) -> dict:
    """name -> (run, net): the peers, then each model as bundled or, with ``strengths``,
    once per floor strength (named ``<file stem> floor <s>``). Models keep clipped pixels
    under ``sky_ceiling`` (cd/m^2), and with ``daylight_floor`` (cd/m^2) raise them
    towards that, where a case carries its exposure (``predict_hdr``)."""
    out = {p: (lambda x, p=p, **_: predict_hdr(x, method=p), None) for p in peers}
    opts = dict(work_pixels=work_pixels, flip=flip, response=response)
    opts |= dict(sky_ceiling=sky_ceiling, daylight_floor=daylight_floor)
    for spec in models:
        net = load_net(spec)[0]
        variants = {
            f"{Path(spec).stem} floor {s:g}": with_floor_strength(net, s) for s in strengths
        }
        for name, model in (variants or {Path(spec).stem: net}).items():
            out[name] = (partial(predict_hdr, net=model, **opts), model)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pool", action="append", default=[], help="HDR pool folder(s)")
    ap.add_argument("--brackets", action="append", default=[], help="bracket set folder(s)")
    ap.add_argument("--model", action="append", default=[], help="model file or repo id")
    ap.add_argument("--expandnet", help="ExpandNet weights.pth (adds the expandnet2018 peer)")
    ap.add_argument(
        "-n", type=int, default=POOL_VIEWS, help="simulated views of the held-out images"
    )
    ap.add_argument("--renders", type=int, default=0, help="also N clean sRGB renderings")
    ap.add_argument(
        "--sim-brackets", type=int, default=0, help="also N held-out scenes at BRACKET_EVS"
    )
    ap.add_argument(
        "--sim-response", help="simulated brackets through this measured camera response"
    )
    ap.add_argument(
        "--curve", choices=(*CURVES, CAMERA), help="pool views through this response curve only"
    )
    ap.add_argument("--size", type=int, default=384, help="simulated view size, px")
    ap.add_argument("--metering", type=float, default=0.5, help="share of metered views")
    ap.add_argument("--long-side", type=int, default=1024, help="bracket frames resized to")
    add_rectilinear(ap, "bracket sets shot with a circular fisheye: these normal-lens views")
    ap.add_argument(
        "--view-side",
        type=int,
        default=0,
        help="normal-lens views at this long side from frames at --long-side (0: each view "
        "at its native side from the frames as stored)",
    )
    ap.add_argument("--work-pixels", type=int, default=WORK_PIXELS, help="model pass size")
    ap.add_argument(
        "--flip",
        choices=FLIPS,
        default="auto",
        help="models as the mean over the mirror: on, off, or auto (on where one pass)",
    )
    ap.add_argument(
        "--response", choices=RESPONSES, default=RESPONSE, help="models' kept-pixel curve"
    )
    ap.add_argument(
        "--floor-strength",
        action="append",
        default=[],
        type=float,
        metavar="S",
        help="score each model with its floor at these strengths (0-1) instead of its own",
    )
    ap.add_argument(
        "--sky-ceiling",
        type=float,
        default=SKY_CEILING,
        metavar="CD_M2",
        help="models: the EXIF ceiling on bracket frames' clipped pixels, cd/m^2 (0: off)",
    )
    ap.add_argument(
        "--daylight-floor",
        type=float,
        default=0.0,
        metavar="CD_M2",
        help="models: the EXIF daylight floor, cd/m^2 (0: off, the default; 3000 as tried)",
    )
    ap.add_argument(
        "--pool-exif",
        action="store_true",
        help="pool views and simulated brackets carry a simulated EXIF exposure",
    )
    ap.add_argument("--sheets", type=Path, help="write -2 EV contact sheets of clipped regions")
    ap.add_argument("--max-sheets", type=int, default=8, help="sheets per set")
    ap.add_argument("--no-peers", action="store_true", help="only the models (peers are fixed)")
    ap.add_argument("--per-case", action="store_true", help="print each case's clipped gains")
    args = ap.parse_args()
    if any(not 0.0 <= v <= 1.0 for v in args.floor_strength):
        ap.error("--floor-strength takes values in [0, 1]")
    if min(args.n, args.renders, args.sim_brackets) < 0:
        ap.error("-n, --renders and --sim-brackets count cases: 0 or more")
    if args.no_peers and not args.model:
        ap.error("--no-peers with no --model leaves nothing to score")
    peers = [] if args.no_peers else ["linear", "kovaleski2014"]
    if args.expandnet and not args.no_peers:
        os.environ["MLX_HDR_EXPANDNET"] = args.expandnet
        peers.append("expandnet2018")
    sets = {}
    if args.pool and args.n:
        curves = (args.curve,) if args.curve else CURVES
        sets["held-out pool views"] = pool_cases(
            args.pool, args.n, args.size, args.metering, curves, args.pool_exif
        )
    if args.pool and args.renders:
        renders = render_cases(args.pool, args.renders, args.size, args.metering)
        sets["held-out pool renderings"] = renders
    scenes = {}
    if args.pool and args.sim_brackets:
        title = "simulated brackets"
        sets[title], scenes[title] = sim_bracket_cases(
            args.pool, args.sim_brackets, args.size, args.sim_response, args.pool_exif
        )
    for folder in map(Path, args.brackets):
        title = f"real brackets: {folder.name}"
        title = title if title not in sets else f"real brackets: {folder}"  # two of one name
        frame_side = None if args.rectilinear and not args.view_side else args.long_side
        cases = bracket_cases(folder, frame_side, scored=True, every=bool(args.rectilinear))
        if not cases:  # bracket_cases keeps the frames with 1-30% of their pixels clipped
            sys.exit(f"error: {folder}: no frame has 1-30% of its pixels clipped")
        ids = [0] * len(cases)
        if args.rectilinear:
            views = (":".join(f"{a:g}" for a in v) for v in args.rectilinear)
            title += " as views " + ", ".join(views)
            try:
                cases, ids = rectilinear_cases(cases, args.rectilinear, args.view_side or None)
            except ValueError as exc:  # find_circle: not a circular fisheye
                sys.exit(f"error: {folder}: {exc}")
            if not cases:
                sys.exit(f"error: {folder}: no view has 1-30% of its pixels clipped")
        sets[title], scenes[title] = cases, ids
    methods = runners(
        args.model,
        peers,
        args.work_pixels,
        FLIPS[args.flip],
        args.response,
        tuple(args.floor_strength),
        args.sky_ceiling or None,
        args.daylight_floor or None,
    )
    for title, cases in sets.items():
        print(f"\n{title} ({len(cases)} cases)\n")
        print("| method | " + " | ".join(KEYS) + " |")
        print("|---" * (len(KEYS) + 1) + "|")
        preds = [{} for _ in cases]
        for name, (run, net) in methods.items():
            vals = score(name, run, net, cases, preds)
            print(f"| {name} | " + " | ".join(f"{v:.3f}" for v in vals) + " |", flush=True)
        if title in scenes:
            slopes = {name: gain_slope(cases, preds, scenes[title], name) for name in preds[0]}
            print(
                "\nwithin-scene gain slope: " + ", ".join(f"{k} {v:.2f}" for k, v in slopes.items())
            )
        if args.per_case:
            print_gains(cases, preds)
        if args.sheets:
            args.sheets.mkdir(parents=True, exist_ok=True)
            tag = re.sub(r"[^\w.-]+", "_", title.split(": ", 1)[-1])
            for i, (ldr, hdr) in enumerate(cases[: args.max_sheets]):
                write_sheet(args.sheets / f"{tag}_{i:02d}.jpg", ldr, hdr, preds[i])


def one_line(exc: Exception) -> str:
    """An error of this script as one line: a missing file as ``<file>: not found``."""
    if isinstance(exc, FileNotFoundError) and exc.filename:
        return f"{exc.filename}: not found"
    return str(exc)


if __name__ == "__main__":
    try:
        main()
    except (HDRError, FileNotFoundError) as exc:  # a missing folder, a bad model: one line
        sys.exit(f"error: {one_line(exc)}")
    except ValueError as exc:  # a bad --sim-response file
        sys.exit(f"error: {exc}")
