"""Write a grid of simulated LDR photos from the HDR pool (docs/simulated_ldr_grid.jpg).

Each tile is one training sample of ``PoolSource``: a random panorama view or photo crop,
exposed (metered, or to a drawn clipped share, as the default recipe does), noised, through
a random camera curve, 8-bit and JPEG-compressed. The caption line
under each tile is printed to stdout (curve, clipped fraction, JPEG quality).

    .venv/bin/python scripts/make_sim_grid.py [--config configs/camera_stops_p3.json] \
        [--out docs/simulated_ldr_grid.jpg]

``--config`` takes the simulator settings of a training config (its ``sim``), which the
``--metering``/``--boost`` shares then do not override.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from mlx_hdr.data.simulate import SimConfig
from mlx_hdr.data.sources import PoolSource, sample_rng
from mlx_hdr.io.image_io import write_ldr
from mlx_hdr.train.config import load_config
from mlx_hdr.train.pool import pool_pairs

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pool", type=Path, default=ROOT.parent / "shared/data/hdr-pool")
    ap.add_argument("--out", type=Path, default=ROOT / "docs/simulated_ldr_grid.jpg")
    ap.add_argument("--rows", type=int, default=4)
    ap.add_argument("--cols", type=int, default=6)
    ap.add_argument("--size", type=int, default=192)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--metering", type=float, default=0.7, help="share of metered exposures")
    ap.add_argument("--boost", type=float, default=0.0, help="share of boosted highlights")
    ap.add_argument("--config", type=Path, help="a training config: use its simulator settings")
    args = ap.parse_args()
    if args.config:
        sim = load_config(args.config).sim_config()
    else:
        sim = SimConfig(metering_prob=args.metering, boost_prob=args.boost)
    src = PoolSource(pool_pairs([args.pool]), size=args.size, sim=sim)  # training's images
    gap = 4
    h = args.rows * (args.size + gap) - gap
    w = args.cols * (args.size + gap) - gap
    grid = np.ones((h, w, 3), np.float32)
    for k in range(args.rows * args.cols):
        ldr, _, rec = src.sample_with_record(sample_rng(args.seed, 0, k))
        r, c = divmod(k, args.cols)
        y, x = r * (args.size + gap), c * (args.size + gap)
        grid[y : y + args.size, x : x + args.size] = ldr
        print(
            f"{k:2d} {rec['name']:24s} {rec['curve']:14s} clipped {rec['clipped_fraction']:.3f}"
            f" jpeg {rec['jpeg_quality']} noise {'on' if rec['full_well'] else 'off'}"
        )
    write_ldr(args.out, grid, quality=85)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1024:.0f} KB)")


if __name__ == "__main__":
    main()
