"""How far above white the clipped pixels lie: simulated training views vs real frames.

For each case, the median over the pixels clipped in the photo of Y(HDR) / Y(linearised
photo), in stops (the truth's gain, after the simulator's alignment or, for real frames, one
global scale over well-exposed pixels). Prints the distribution for the simulator settings of
a training config and, with ``--brackets``, for the real exposure-bracket frames:

    python scripts/sim_gain_stats.py --config configs/camera_stops_p3.json \\
        --brackets ../shared/data/hdr-pool-2/brackets/lumilab_fisheye_office

With ``--images NAME,...`` it prints one row per pool image instead: its truth's median
clipped gain over ``--per-image`` views photographed by a plain metered camera (the log
average at middle grey, then -1 to +1.5 EV; no highlight boost, composited windows or gain
floor: the image's own highlights), the views with 1-30% clipped pixels; with ``--model``
also the model's raw (no floor, no blend) and final clipped gain. For the bracket frames it
then prints each frame's exposure against that metering (stops; ``--rectilinear`` as in
``validate_model.py``):

    python scripts/sim_gain_stats.py --config configs/camera_stops_p11.json \\
        --images ph_st_fagans_interior,ph_vestibule --model mlx_hdr/assets/default.safetensors \\
        --brackets ../shared/data/hdr-pool-2/brackets/lumilab_fisheye_office \\
        --rectilinear 40:0:75
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

# ruff: noqa: E402  (imports after backend.setup(), which must run before mlx.core loads)
from mlx_hdr import backend

backend.setup()
# isort: split
from mlx_hdr.color import clipped_mask
from mlx_hdr.data.panorama import ViewConfig
from mlx_hdr.data.simulate import SimConfig, metered_exposure
from mlx_hdr.data.sources import PoolSource, sample_rng
from mlx_hdr.infer.model_hub import load_net
from mlx_hdr.infer.pipeline import predict_hdr
from mlx_hdr.train.config import load_config
from mlx_hdr.train.pool import HOLDOUT, pool_pairs, split

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bracket_sets import add_rectilinear, bracket_cases, rectilinear_cases, usable  # noqa: E402
from validate_model import aligned, clipped_gain  # noqa: E402

MIN_SHARE = 0.003  # views with fewer clipped pixels are not counted


def summary(name: str, gains: list[float]) -> str:
    g = np.array([x for x in gains if np.isfinite(x)])
    q25, q50, q75 = np.percentile(g, [25, 50, 75])
    return f"| {name} | {len(g)} | {q25:.2f} | {q50:.2f} | {g.mean():.2f} | {q75:.2f} |"


def model_gains(net, ldr: np.ndarray) -> list[float]:
    """The model's raw (no floor, no blend) and final clipped gain of a photo, stops."""
    if net is None:
        return []
    return [clipped_gain(predict_hdr(ldr, net, blend=b), ldr) for b in (False, True)]


def row(cells: list) -> str:
    return "| " + " | ".join(c if isinstance(c, str) else f"{c:.2f}" for c in cells) + " |"


def image_rows(pairs, names: list[str], held_out: set[str], n: int, size: int, net) -> None:
    """Per named image: median truth (and model) clipped gain over its usable metered views."""
    head = ["image", "held out", "views", "truth"] + (["raw", "model"] if net else [])
    print(row(head) + "\n" + "|---" * len(head) + "|")
    for name in names:
        pair = next((p for p in pairs if p.name == name), None)
        if pair is None:
            raise SystemExit(f"{name}: not an image of the pools")
        src = PoolSource([pair], size=size, sim=SimConfig(metering_prob=1.0))
        views = [src.sample(0, sample_rng(7, 0, i)) for i in range(n)]
        gains = [[clipped_gain(h, v), *model_gains(net, v)] for v, h in views if usable(v)]
        med = np.median(gains, axis=0) if gains else [np.nan] * (len(head) - 3)
        print(row([name, "yes" if name in held_out else "no", str(len(gains)), *med]))


def frame_rows(cases, net) -> None:
    """Per bracket frame: its exposure against the simulator's metering, and clipped gains."""
    head = ["frame", "clipped", "EV vs metered", "truth"] + (["raw", "model"] if net else [])
    print("\n" + row(head) + "\n" + "|---" * len(head) + "|")
    for i, (ldr, hdr) in enumerate(cases):
        truth = aligned(hdr, ldr)
        ev = -np.log2(metered_exposure(truth[hdr.max(axis=-1) > 0][None]))
        share = float(clipped_mask(ldr).mean())
        print(row([str(i), share, ev, clipped_gain(hdr, ldr), *model_gains(net, ldr)]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", type=Path, required=True, help="training config (data, sim)")
    ap.add_argument("--brackets", type=Path, help="a real exposure-bracket set folder")
    ap.add_argument("-n", type=int, default=300, help="simulated views")
    ap.add_argument("--size", type=int, default=192, help="view size, px")
    ap.add_argument(
        "--images", help="per-image rows for these pool images (comma-separated, or all)"
    )
    ap.add_argument("--per-image", type=int, default=12, help="views per image with --images")
    ap.add_argument("--model", help="with --images: also this model's clipped gains")
    add_rectilinear(ap, "with --images: the bracket frames as these normal-lens views")
    args = ap.parse_args()
    cfg = load_config(args.config)
    data = [cfg.data] if isinstance(cfg.data, str) else list(cfg.data)
    train, val = split(pool_pairs(data), HOLDOUT)
    if args.images:
        per_image(args, train + val, {p.name for p in val})
        return
    view = ViewConfig(highlight_views=cfg.highlight_views)
    src = PoolSource(train, size=args.size, sim=cfg.sim_config(), view=view)
    views = [src.sample_with_record(sample_rng(7, 0, i))[:2] for i in range(args.n)]
    print("| cases | n | p25 | median | mean | p75 |\n|---|---|---|---|---|---|")
    print(
        summary(
            f"simulated views ({args.config.name})",
            [clipped_gain(hdr, ldr, MIN_SHARE) for ldr, hdr in views],
        )
    )
    if args.brackets:
        cases = bracket_cases(args.brackets, 1024)
        print(
            summary(
                f"real frames ({args.brackets.name})",
                [clipped_gain(hdr, ldr, MIN_SHARE) for ldr, hdr in cases],
            )
        )


def per_image(args, pairs, held_out: set[str]) -> None:
    """``--images``: per-image rows, then the bracket frames' exposures."""
    net = load_net(args.model)[0] if args.model else None
    names = [p.name for p in pairs] if args.images == "all" else args.images.split(",")
    image_rows(pairs, names, held_out, args.per_image, args.size, net)
    if args.brackets:
        cases = bracket_cases(args.brackets, 1024)
        if args.rectilinear:
            cases = rectilinear_cases(cases, args.rectilinear, 1024)[0]
        frame_rows(cases, net)


if __name__ == "__main__":
    main()
