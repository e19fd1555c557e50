"""Batches for the step and the per-epoch validation: the target domain, the blended
HDR metrics."""

from __future__ import annotations

import mlx.core as mx
import numpy as np

from mlx_hdr.color import clip_mask, ldr_to_input
from mlx_hdr.infer.calibrate import calibrate
from mlx_hdr.infer.targets import encode_target, target_kind


def prepare(batch: dict[str, np.ndarray], kind: str = "minmax_log1p") -> tuple:
    """A training batch -> (x, target, mask) mx arrays in target domain ``kind``
    (``targets.TARGETS``)."""
    target = encode_target(kind, batch["hdr"], batch["ldr"])
    mask = batch.get("clip_mask")
    if mask is None:
        mask = clip_mask(batch["ldr"])
    mask = mask[..., None] if mask.ndim == 3 else mask
    arrays = (ldr_to_input(batch["ldr"]), target, mask.astype(np.float32))
    return tuple(mx.array(a) for a in arrays)


def predict_batches(
    model, x: np.ndarray, batch_size: int, white: np.ndarray | None = None
) -> np.ndarray:
    """Model output in [-1, 1] for an NHWC input array, in chunks (``white``: the photos'
    (N,) log2 white in cd/m², NaN where unknown, for a model that reads it)."""
    outs = []
    for i in range(0, len(x), batch_size):
        chunk = mx.array(x[i : i + batch_size])
        y = model(chunk) if white is None else model(chunk, mx.array(white[i : i + batch_size]))
        mx.eval(y)
        outs.append(np.array(y))
    return np.concatenate(outs)


def validate(model, val: dict, batch_size: int) -> tuple[dict, np.ndarray]:
    """Mean PSNR / SSIM / L1 in the target domain on the fixed validation set, the HDR
    metrics (PU21-PSNR, highlight error) of the blended predictions, and the predictions."""
    from mlx_hdr.eval.metrics import hdr_metrics, log_domain_metrics

    pred = predict_batches(model, val["x"], batch_size, val.get("white"))
    m = {
        k: float(np.mean(v))
        for k, v in log_domain_metrics(pred, val["target"], inputs="target").items()
    }
    kind = target_kind(model)
    rows = [
        hdr_metrics(calibrate(ldr, p, kind=kind), hdr, ldr)
        for ldr, p, hdr in zip(val["ldr"], pred, val["hdr"], strict=True)
    ]
    for k in ("pu21_psnr", "highlight_log2"):
        m[k] = float(np.nanmean([r[k] for r in rows]))
    return m, pred
