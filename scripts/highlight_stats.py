"""How far above white are the clipped pixels? Real test scenes vs simulated training views.

Uses inputs and ground truth only (no model). Each HDR is put in input-white units by the
evaluation's alignment (median log-ratio over well-exposed pixels), then summarised over
the pixels clipped in the input (max channel >= 250/255):

    python scripts/highlight_stats.py ../shared/data/eval-public ../shared/data/hdr-pool

``--peaks`` adds each test scene's brightest luminance as predicted by the bundled model and
by Kovaleski 2014 (aligned to the truth like the metrics), in input-white units.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

# ruff: noqa: E402  (imports after backend.setup(), which must run before mlx.core loads)
from mlx_hdr import backend

backend.setup()
# isort: split
from mlx_hdr.color import (
    align_scale,
    clipped_mask,
    rgb_to_luminance,
    srgb_to_linear,
    well_exposed_mask,
)
from mlx_hdr.data.datasets import scan_dataset
from mlx_hdr.data.panorama import ViewConfig
from mlx_hdr.data.sources import PoolSource, sample_rng
from mlx_hdr.infer.model_hub import load_net
from mlx_hdr.infer.pipeline import predict_hdr
from mlx_hdr.io.image_io import read_hdr, read_ldr
from mlx_hdr.train.pool import HOLDOUT, split


def stats(ldr: np.ndarray, hdr: np.ndarray) -> list[float]:
    """[clipped share, median, p90 of Y/white over clipped pixels, image max Y/white]."""
    k = align_scale(srgb_to_linear(ldr), hdr, well_exposed_mask(ldr))
    y, clip = rgb_to_luminance(hdr / k), clipped_mask(ldr)
    if not clip.any():
        return [0.0, 0.0, 0.0, float(y.max())]
    r = y[clip]
    return [float(clip.mean()), float(np.median(r)), float(np.percentile(r, 90)), float(y.max())]


def peaks(ldr: np.ndarray, hdr: np.ndarray, net) -> list[float]:
    """Max luminance of truth, model, Kovaleski 2014, each aligned, in input-white units."""
    well = well_exposed_mask(ldr)
    truth = hdr / align_scale(srgb_to_linear(ldr), hdr, well)
    preds = [predict_hdr(ldr, net), predict_hdr(ldr, None, "kovaleski2014")]
    return [float(rgb_to_luminance(p * align_scale(p, truth, well)).max()) for p in [truth, *preds]]


def peaks_table(eval_dir: Path) -> None:
    net = load_net(None)[0]
    print("\n| scene | truth peak | model peak | Kovaleski 2014 peak |\n|---|---|---|---|")
    for case in sorted(p for p in eval_dir.iterdir() if p.is_dir()):
        v = peaks(read_ldr(case / "input.jpg"), read_hdr(case / "gt.hdr"), net)
        print(f"| {case.name} | " + " | ".join(f"{x:,.1f}" for x in v) + " |")


def row(name: str, v: list[float]) -> str:
    return f"| {name} | {v[0]:.1%} | {v[1]:.2f} | {v[2]:.2f} | {v[3]:,.1f} |"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("eval_dir")
    ap.add_argument("pool")
    ap.add_argument("-n", type=int, default=40, help="simulated views per setting")
    ap.add_argument("--peaks", action="store_true", help="also the predicted scene peaks")
    args = ap.parse_args()
    print("| | clipped share | median Y/white (clipped) | p90 | image max |\n|---|---|---|---|---|")
    for case in sorted(p for p in Path(args.eval_dir).iterdir() if p.is_dir()):
        print(row(case.name, stats(read_ldr(case / "input.jpg"), read_hdr(case / "gt.hdr"))))
    train, _ = split(scan_dataset(args.pool).pairs, HOLDOUT)
    for share in (0.0, 0.5):
        src = PoolSource(train, size=160, view=ViewConfig(highlight_views=share))
        views = np.array([stats(*src.sample(i, sample_rng(7, 0, i))) for i in range(args.n)])
        name = f"{args.n} simulated views, highlight_views {share} (median)"
        print(row(name, list(np.median(views, 0))))
    if args.peaks:
        peaks_table(Path(args.eval_dir))


if __name__ == "__main__":
    main()
