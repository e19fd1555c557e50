"""How far a per-image choice of Kovaleski 2014's parameters could go on the validation sets.

For each case of ``validate_model.py``'s sets, the highlight error (mean |log2| luminance
error over the clipped pixels, stops) of ``kovaleski2014`` over a grid of spatial sigmas
(in px at 1024 px long side, scaled with the image) and boosts alpha; prints each setting's
mean and the oracle's (the best setting picked per case, with the truth). A gap between the
paper's setting and the oracle is what judging "how bright" per photo could win:

    python scripts/kovaleski_oracle.py \\
        --brackets ../shared/data/hdr-pool-2/brackets/lumilab_fisheye_office \\
        --pool ../shared/data/hdr-pool --pool ../shared/data/hdr-pool-2
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from mlx_hdr import backend

backend.setup()  # before anything loads mlx.core
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bracket_sets import bracket_cases  # noqa: E402
from sim_sets import POOL_VIEWS, pool_cases  # noqa: E402

from mlx_hdr.eval.metrics import hdr_metrics  # noqa: E402
from mlx_hdr.infer.methods.kovaleski2014 import kovaleski2014  # noqa: E402

SIGMAS = (50.0, 150.0, 400.0)  # px at a 1024-px long side
ALPHAS = (1.0, 3.0, 7.0, 15.0)


def errors(cases) -> np.ndarray:
    """(cases, settings) highlight errors, settings in ``SIGMAS`` x ``ALPHAS`` order."""
    out = np.full((len(cases), len(SIGMAS) * len(ALPHAS)), np.nan)
    for i, (ldr, hdr) in enumerate(cases):
        k = max(ldr.shape[:2]) / 1024.0
        for j, (s, a) in enumerate((s, a) for s in SIGMAS for a in ALPHAS):
            pred = kovaleski2014(ldr, sigma_s=s * k, alpha=a)
            out[i, j] = hdr_metrics(pred, hdr, ldr)["highlight_log2"]
    return out


def report(title: str, err: np.ndarray) -> None:
    print(
        f"\n{title} ({len(err)} cases)\n\n| sigma_s @1024 | alpha | highlight log2 |\n|---|---|---|"
    )
    for j, (s, a) in enumerate((s, a) for s in SIGMAS for a in ALPHAS):
        print(f"| {s:.0f} | {a:.0f} | {np.nanmean(err[:, j]):.3f} |")
    print(f"| oracle (best per case) | | {np.nanmean(np.nanmin(err, axis=1)):.3f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pool", action="append", default=[], help="HDR pool folder(s)")
    ap.add_argument("--brackets", action="append", default=[], help="bracket set folder(s)")
    ap.add_argument(
        "-n", type=int, default=POOL_VIEWS, help="simulated views of the held-out images"
    )
    args = ap.parse_args()
    if args.pool:
        report("held-out pool views", errors(pool_cases(args.pool, args.n)))
    for folder in map(Path, args.brackets):
        report(f"real brackets: {folder.name}", errors(bracket_cases(folder, 1024)))


if __name__ == "__main__":
    main()
