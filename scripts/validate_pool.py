"""Model selection without the evaluation set: full HDR metrics on simulated photos of the
held-out pool images (every 9th image of the pool, as `mlx-hdr train` holds them out).

    python scripts/validate_pool.py ../shared/data/hdr-pool --model runs/x/model.safetensors
"""

from __future__ import annotations

import argparse

import numpy as np

import mlx_hdr  # noqa: F401  (OpenBLAS preload)
from mlx_hdr.color import srgb_to_linear
from mlx_hdr.inference import predict_hdr
from mlx_hdr.metrics import hdr_metrics
from mlx_hdr.model_hub import load_net
from mlx_hdr.train.pool import heldout_views

KEYS = ("pu21_psnr", "pu21_ssim", "highlight_log2", "log_psnr", "log_ssim")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("pool")
    ap.add_argument("--model", action="append", required=True)
    ap.add_argument("-n", type=int, default=24, help="simulated views")
    ap.add_argument("--size", type=int, default=384)
    args = ap.parse_args()
    views = heldout_views(args.pool, args.n, args.size)
    nets = {m: load_net(m)[0] for m in args.model}
    print("| method | " + " | ".join(KEYS) + " |")
    print("|---" * (len(KEYS) + 1) + "|")
    for name in ["linear", *nets]:
        rows = []
        for ldr, hdr in views:
            pred = srgb_to_linear(ldr) if name == "linear" else predict_hdr(ldr, nets[name])
            rows.append(hdr_metrics(pred, hdr, ldr))
        means = [np.nanmean([r[k] for r in rows]) for k in KEYS]
        print(f"| {name} | " + " | ".join(f"{v:.3f}" for v in means) + " |")


if __name__ == "__main__":
    main()
