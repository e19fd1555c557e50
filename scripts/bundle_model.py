"""Package a trained model for shipping: no classifier head, float16, config in the metadata.

The encoder's ImageNet classifier (1.28 M parameters) is never used by the hybrid model, so
it is dropped; outputs are unchanged. ``--checkpoint`` takes the trainable weights from a
training checkpoint instead (e.g. the last one, when it is not the run's best), or, given
several times, their mean (``train.checkpoint.checkpoint_weights``); ``--floor``
records a classical operator the decoded prediction never goes below
(``HybridConfig.floor``), ``--floor-strength`` the share of its expansion that floor keeps
(``HybridConfig.floor_strength``). Usage:

    python scripts/bundle_model.py runs/camera-stops-p1/model.safetensors \
        [--checkpoint runs/camera-stops-p1/checkpoints/last.safetensors] \
        [--floor kovaleski2014 --floor-strength 0.75] -o mlx_hdr/assets/default.safetensors
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys

import numpy as np

# ruff: noqa: E402  (imports after backend.setup(), which must run before mlx.core loads)
from mlx_hdr import backend

backend.setup()
# isort: split
import mlx.core as mx
from mlx.utils import tree_flatten, tree_unflatten

from mlx_hdr.errors import HDRError, UsageError
from mlx_hdr.io.atomic import atomic_write
from mlx_hdr.models.hybrid import HybridAutoencoder
from mlx_hdr.models.model_io import load_model, save_model
from mlx_hdr.train.checkpoint import checkpoint_header, checkpoint_weights
from mlx_hdr.train.config import BUNDLING_FIELDS, model_changes


def strip_classifier(model: HybridAutoencoder) -> HybridAutoencoder:
    """The same model with an encoder built without its classifier (num_classes=0)."""
    kwargs = {**model.config.encoder_kwargs, "num_classes": 0}
    bare = HybridAutoencoder(dataclasses.replace(model.config, encoder_kwargs=kwargs))
    keep = [(k, v) for k, v in tree_flatten(model.parameters()) if ".classifier." not in k]
    bare.update(tree_unflatten(keep))
    return bare


def fitted_weights(model: HybridAutoencoder, paths: list[str]) -> tuple[dict, list[int]]:
    """The checkpoints' ``model.*`` weights (their mean) for ``model``; ``UsageError`` for
    a checkpoint trained as another network (target, widths, encoder: its weights would be
    read as this one's) or whose arrays do not fit it."""
    now = json.loads(json.dumps(dataclasses.asdict(model.config)))
    for path in paths:
        try:
            saved = json.loads((checkpoint_header(path) or {})["config"])["model"]
        except (KeyError, ValueError, TypeError):
            continue  # not a checkpoint: checkpoint_weights says so
        same = (*BUNDLING_FIELDS, "encoder_kwargs")  # the shapes say what these change
        if changes := model_changes(saved, now, same):
            raise UsageError(
                f"trained as another model (its -> the model's: {', '.join(changes)})", path
            )
    weights, steps = checkpoint_weights(paths)
    params = dict(tree_flatten(model.parameters()))
    bad = [k for k, v in weights.items() if k not in params or params[k].shape != v.shape]
    if bad or not weights:
        raise UsageError(f"its weights do not fit the model ({', '.join(bad[:3])})", paths[0])
    return weights, steps


def main() -> None:
    try:
        bundle(parse_args())
    except HDRError as exc:
        sys.exit(f"error: {exc}")


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model")
    ap.add_argument("-o", "--out", required=True)
    ap.add_argument(
        "--checkpoint",
        action="append",
        default=[],
        help="training checkpoint whose model.* weights to use (several: their mean)",
    )
    ap.add_argument("--floor", choices=["kovaleski2014"], help="classical floor of the output")
    ap.add_argument(
        "--floor-strength", type=float, help="share of the floor's expansion, in stops (0-1)"
    )
    args = ap.parse_args()
    if args.floor_strength is not None and not 0.0 <= args.floor_strength <= 1.0:
        ap.error(f"--floor-strength must lie in [0, 1], got {args.floor_strength}")
    return args


def bundle(args: argparse.Namespace) -> None:
    """Write the bundled model; nothing is written unless it loads back and fits."""
    model, _ = load_model(args.model)
    if args.checkpoint:
        weights, steps = fitted_weights(model, args.checkpoint)
        model.update(tree_unflatten(list(weights.items())))
        what = f"step {steps[0]}" if len(steps) == 1 else f"the mean of steps {steps}"
        print(f"weights of {what} from {', '.join(args.checkpoint)}")
    bare = strip_classifier(model)
    if args.floor:
        bare.config = dataclasses.replace(bare.config, floor=args.floor)
    if args.floor_strength is not None:
        bare.config = dataclasses.replace(bare.config, floor_strength=args.floor_strength)
    with atomic_write(args.out) as tmp:  # the output replaced only once it loads back
        save_model(tmp, bare, dtype=mx.float16)
        shipped, _ = load_model(tmp)
    x = mx.random.normal((1, 96, 128, 3), key=mx.random.key(0))
    diff = float(np.abs(np.array(shipped(x)) - np.array(model(x))).max())
    n = sum(v.size for _, v in tree_flatten(shipped.parameters()))
    print(f"wrote {args.out}: {n / 1e6:.2f} M parameters, max |output diff| {diff:.2e}")


if __name__ == "__main__":
    main()
