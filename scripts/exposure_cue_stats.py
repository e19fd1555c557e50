"""Does a photo's overall level tell how far above white its clipped pixels lie?

On simulated training views of a recipe, regress the truth's median clipped gain (stops,
``validate_model.clipped_gain``'s measure) on the model's own clipped gain and on global
statistics of the photo, and print the cross-validated gain error of each feature set:

    python scripts/exposure_cue_stats.py --config configs/camera_stops_p11.json -n 800
    python scripts/exposure_cue_stats.py --config configs/camera_stops_p11.json -n 800 \
        --metering-prob 0.85 --metering-ev -4 1.5
    python scripts/exposure_cue_stats.py --config configs/camera_stops_p35.json -n 400 --exif

Features: the log2 luminance of the unclipped, non-black pixels (median, mean, 10th and
90th percentile), the log2 of the clipped share, and the model's gain (raw and blended);
with ``--exif`` also the photo's white in log2 cd/m² as its EXIF would give it
(``PoolSource.sample_photo``, the recipe's ``scene_luminance``). If a statistic lowered the
error beside the model's gain, a recipe could teach the network to read it
(``model.global_gain``, ``model.exposure_gain``); docs/EXPERIMENTS.md reports what they do.
"""

from __future__ import annotations

import argparse

import numpy as np

# ruff: noqa: E402  (imports after backend.setup(), which must run before mlx.core loads)
from mlx_hdr import backend

backend.setup()
# isort: split
from mlx_hdr.color import CLIPPED, clipped_gain, clipped_mask, rgb_to_luminance, srgb_to_linear
from mlx_hdr.data.sources import sample_rng
from mlx_hdr.infer.model_hub import load_net
from mlx_hdr.infer.pipeline import predict_hdr
from mlx_hdr.train.config import load_config
from mlx_hdr.train.pool import pool_source

NAMES = ("share", "median", "mean", "p90", "p10", "truth", "raw", "blended")
FEATURE_SETS = {
    "model gain": ["blended"],
    "+ p90": ["blended", "p90"],
    "+ p90, share": ["blended", "p90", "log_share"],
    "+ p90, median, share": ["blended", "p90", "median", "log_share"],
    "raw gain": ["raw"],
    "raw + all statistics": ["raw", "blended", "p90", "median", "mean", "p10", "log_share"],
}
EXIF_SETS = {
    "+ white": ["blended", "white"],
    "+ white, share": ["blended", "white", "log_share"],
    "+ white, p90, median, share": ["blended", "white", "p90", "median", "log_share"],
    "raw + white": ["raw", "white"],
}


def view_row(ldr: np.ndarray, hdr: np.ndarray, net) -> list[float] | None:
    """One view's statistics, truth gain and the model's gains; None when nothing clips."""
    share = float(clipped_mask(ldr).mean())
    if share <= 0:
        return None
    y = rgb_to_luminance(srgb_to_linear(ldr))
    top = ldr.max(axis=-1)
    ok = (top > 0.02) & (top < 0.95)
    ly = np.log2(np.maximum(y[ok], 1e-6)) if ok.sum() > 10 else np.array([-10.0])
    gains = [clipped_gain(ldr, h, CLIPPED) for h in (hdr, predict_hdr(ldr, net, blend=False))]
    gains.append(clipped_gain(ldr, predict_hdr(ldr, net), CLIPPED))
    stats = [np.median(ly), ly.mean(), np.percentile(ly, 90), np.percentile(ly, 10)]
    return [share, *map(float, stats), *gains]


def cv_error(cols: dict, names: list[str], folds: int = 5) -> float:
    """Mean |error| of a least-squares fit of the truth on ``names``, ``folds``-fold CV."""
    x = np.column_stack([np.ones(len(cols["truth"]))] + [cols[n] for n in names])
    idx = np.random.default_rng(0).permutation(len(x))
    err = np.zeros(len(x))
    for part in np.array_split(idx, folds):
        train = np.setdiff1d(idx, part)
        w = np.linalg.lstsq(x[train], cols["truth"][train], rcond=None)[0]
        err[part] = np.abs(x[part] @ w - cols["truth"][part])
    return float(err.mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", required=True, help="training recipe whose views to draw")
    ap.add_argument("-n", type=int, default=800, help="views")
    ap.add_argument("--crop", type=int, default=320, help="view size, px")
    ap.add_argument("--model", default=None, help="model file (default: the bundled one)")
    ap.add_argument("--metering-prob", type=float, help="override the recipe's metered share")
    ap.add_argument("--metering-ev", type=float, nargs=2, help="override its metering range")
    ap.add_argument("--exif", action="store_true", help="add each photo's simulated EXIF white")
    args = ap.parse_args()
    cfg = load_config(args.config, crop=args.crop)
    if args.metering_prob is not None:
        cfg.sim["metering_prob"] = args.metering_prob
    if args.metering_ev:
        cfg.sim["metering_ev"] = tuple(args.metering_ev)
    if args.exif:
        cfg.sim["exif_prob"] = 1.0
    source = pool_source(cfg).train
    net = load_net(args.model)[0]
    rows = []
    for i in range(args.n):
        ldr, hdr, white = source.sample_photo(i, sample_rng(777, 5, 0, i))  # sample's photo
        row = view_row(ldr, hdr, net)
        extra = [white] if args.exif else []
        if row is not None and np.isfinite(row + extra).all():
            rows.append(row + extra)
    names = NAMES + (("white",) if args.exif else ())
    cols = dict(zip(names, np.array(rows, np.float64).T, strict=True))
    cols["log_share"] = np.log2(cols["share"])
    print(f"{len(rows)} views with clipped pixels\n\n| feature | corr. with truth |\n|---|---|")
    for name in ("p90", "median", "mean", "log_share", "raw", "blended", *names[len(NAMES) :]):
        print(f"| {name} | {np.corrcoef(cols['truth'], cols[name])[0, 1]:+.3f} |")
    print("\n| fit of the truth on | gain error, 5-fold CV (stops) |\n|---|---|")
    sets = FEATURE_SETS | (EXIF_SETS if args.exif else {})
    for label, names in sets.items():
        print(f"| {label} | {cv_error(cols, names):.3f} |")


if __name__ == "__main__":
    main()
