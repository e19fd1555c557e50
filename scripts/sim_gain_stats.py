"""How far above white the clipped pixels lie: simulated training views vs real frames.

For each case, the median over the pixels clipped in the photo of Y(HDR) / Y(linearised
photo), in stops (the truth's gain, after the simulator's alignment or, for real frames, one
global scale over well-exposed pixels). Prints the distribution for the simulator settings of
a training config and, with ``--brackets``, for the real exposure-bracket frames:

    python scripts/sim_gain_stats.py --config configs/camera_stops_p3.json \\
        --brackets ../shared/data/hdr-pool-2/brackets/lumilab_fisheye_office
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
from mlx_hdr.data.panorama import ViewConfig
from mlx_hdr.data.sources import PoolSource, sample_rng
from mlx_hdr.train.config import load_config
from mlx_hdr.train.pool import HOLDOUT, pool_pairs, split

sys.path.insert(0, str(Path(__file__).resolve().parent))
from validate_model import bracket_cases, clipped_gain  # noqa: E402

MIN_SHARE = 0.003  # views with fewer clipped pixels are not counted


def summary(name: str, gains: list[float]) -> str:
    g = np.array([x for x in gains if np.isfinite(x)])
    q25, q50, q75 = np.percentile(g, [25, 50, 75])
    return f"| {name} | {len(g)} | {q25:.2f} | {q50:.2f} | {g.mean():.2f} | {q75:.2f} |"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", type=Path, required=True, help="training config (data, sim)")
    ap.add_argument("--brackets", type=Path, help="a real exposure-bracket set folder")
    ap.add_argument("-n", type=int, default=300, help="simulated views")
    ap.add_argument("--size", type=int, default=192, help="view size, px")
    args = ap.parse_args()
    cfg = load_config(args.config)
    data = [cfg.data] if isinstance(cfg.data, str) else list(cfg.data)
    train = split(pool_pairs(data), HOLDOUT)[0]
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


if __name__ == "__main__":
    main()
