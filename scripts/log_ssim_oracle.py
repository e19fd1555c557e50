"""How much of the log-domain SSIM (``metrics.log_domain_metrics``) is the image's single
brightest pixel?

On simulated photos of the held-out pool images (as `validate_model.py`), scores the bundled
model's output as it is, with its clipped pixels replaced by the ground truth, and with only
its one brightest-in-truth pixel replaced (the per-image min-max normalisation divides by
the image's maximum, so one pixel sets the scale of the whole log image):

    python scripts/log_ssim_oracle.py ../shared/data/hdr-pool
"""

from __future__ import annotations

import argparse

import numpy as np

# ruff: noqa: E402  (imports after backend.setup(), which must run before mlx.core loads)
from mlx_hdr import backend

backend.setup()
# isort: split
from mlx_hdr.color import align_scale, clipped_mask, well_exposed_mask
from mlx_hdr.eval.metrics import hdr_metrics
from mlx_hdr.infer.model_hub import load_net
from mlx_hdr.infer.pipeline import predict_hdr
from mlx_hdr.train.pool import heldout_views


def variants(ldr: np.ndarray, hdr: np.ndarray, pred: np.ndarray) -> dict[str, np.ndarray]:
    truth = hdr / align_scale(pred, hdr, well_exposed_mask(ldr))  # in the prediction's units
    clipped, peak = pred.copy(), pred.copy()
    mask = clipped_mask(ldr)
    clipped[mask] = truth[mask]
    i = np.unravel_index(np.argmax(hdr.max(-1)), hdr.shape[:2])
    peak[i] = truth[i]
    return {"model": pred, "clipped pixels from truth": clipped, "brightest pixel from truth": peak}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("pool")
    ap.add_argument("--model", default=None)
    ap.add_argument("-n", type=int, default=24)
    args = ap.parse_args()
    net = load_net(args.model)[0]
    scores: dict[str, list[dict]] = {}
    for ldr, hdr in heldout_views(args.pool, args.n):
        for name, img in variants(ldr, hdr, predict_hdr(ldr, net)).items():
            scores.setdefault(name, []).append(hdr_metrics(img, hdr, ldr))
    print("| output | log SSIM | log PSNR | PU21-PSNR |\n|---|---|---|---|")
    for name, rows in scores.items():
        m = [np.nanmean([r[k] for r in rows]) for k in ("log_ssim", "log_psnr", "pu21_psnr")]
        print(f"| {name} | {m[0]:.3f} | {m[1]:.2f} | {m[2]:.2f} |")


if __name__ == "__main__":
    main()
