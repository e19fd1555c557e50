"""Package a trained model to share or ship (``mlx-hdr bundle``): float16, without the
encoder's ImageNet classifier (1.28 M parameters the hybrid model never uses; outputs are
unchanged), its config in the metadata.

The trainable weights may come from training checkpoints instead of the run's model (the
last one, when it is not the run's best; several: their mean,
``train.checkpoint.checkpoint_weights``); ``floor`` records a classical operator the decoded
prediction never goes below (``HybridConfig.floor``), ``floor_strength`` the share of its
expansion that floor keeps (``HybridConfig.floor_strength``).
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path

import mlx.core as mx
import numpy as np
from mlx.utils import tree_flatten, tree_unflatten

from mlx_hdr.errors import UsageError
from mlx_hdr.io.atomic import atomic_write, check_folder_of
from mlx_hdr.models.hybrid import FLOORS, HybridAutoencoder
from mlx_hdr.models.model_io import load_model, savable_weights, save_model
from mlx_hdr.train.checkpoint import checkpoint_header, checkpoint_weights
from mlx_hdr.train.config import BUNDLING_FIELDS, model_changes


@dataclass
class Bundled:
    """What :func:`bundle_model` wrote: the file, its parameter count, the largest
    difference of its output from the unpackaged model's on a random input, and the
    checkpoints' steps whose weights it took (empty: the model's own)."""

    path: Path
    parameters: int
    max_diff: float
    steps: list[int]


def strip_classifier(model: HybridAutoencoder) -> HybridAutoencoder:
    """The same model with an encoder built without its classifier (num_classes=0)."""
    kwargs = {**model.config.encoder_kwargs, "num_classes": 0}
    bare = HybridAutoencoder(dataclasses.replace(model.config, encoder_kwargs=kwargs))
    keep = [(k, v) for k, v in tree_flatten(model.parameters()) if ".classifier." not in k]
    bare.update(tree_unflatten(keep))
    return bare


def fitted_weights(model: HybridAutoencoder, paths: list) -> tuple[dict, list[int]]:
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


def check_not_input(out, model, checkpoints) -> None:
    """``UsageError`` where ``out`` is ``model`` or one of ``checkpoints`` (by any name: a
    link, another case): the bundle would replace what it is made from."""
    out = Path(out)
    check_folder_of(out)
    if not out.exists():
        return
    for what, path in [("the model", model), *(("a checkpoint", c) for c in checkpoints)]:
        if Path(path).exists() and os.path.samefile(out, path):
            raise UsageError(f"is {what} the bundle is made from; name another file", out)


def bundle_model(
    model_path,
    out,
    checkpoints: list | tuple = (),
    floor: str | None = None,
    floor_strength: float | None = None,
) -> Bundled:
    """Write ``model_path`` (a run's ``model.safetensors``, or any model file), with the
    weights of ``checkpoints`` where given, as a float16 model file ``out``, recording
    ``floor`` and ``floor_strength`` where given; nothing is written unless it loads back."""
    if Path(out).suffix != ".safetensors":
        raise UsageError(f"{out}: a model is written as .safetensors")
    if floor not in FLOORS:
        raise UsageError(f"unknown floor {floor!r} (known: {', '.join(FLOORS[1:])})")
    if floor_strength is not None and not 0.0 <= floor_strength <= 1.0:
        raise UsageError(f"floor strength {floor_strength:g} does not lie in [0, 1]")
    check_not_input(out, model_path, checkpoints)
    model, _ = load_model(model_path)
    if floor_strength is not None and (floor or model.config.floor) is None:
        raise UsageError("a floor strength needs a floor (--floor kovaleski2014)", model_path)
    steps = []
    if checkpoints:
        weights, steps = fitted_weights(model, list(checkpoints))
        model.update(tree_unflatten(list(weights.items())))
    bare = strip_classifier(model)
    changes = {"floor": floor, "floor_strength": floor_strength}
    bare.config = dataclasses.replace(
        bare.config, **{k: v for k, v in changes.items() if v is not None}
    )
    arrays = savable_weights(bare, mx.float16, checkpoints[0] if checkpoints else model_path)
    with atomic_write(out, parents=True) as tmp:  # replaced only once it loads back
        save_model(tmp, bare, weights=arrays)
        shipped, _ = load_model(tmp)
    x = mx.random.normal((1, 96, 128, 3), key=mx.random.key(0))
    diff = float(np.abs(np.array(shipped(x)) - np.array(model(x))).max())
    n = sum(v.size for _, v in tree_flatten(shipped.parameters()))
    return Bundled(Path(out), n, diff, steps)
