"""Resumable training checkpoints: one safetensors file, written atomically, no pickle.

Arrays: ``model.<key>`` (trainable parameters only; the frozen encoder comes from its own
weights) and ``optimizer.<key>`` (Adam moments, step, lr). Metadata (JSON strings): format,
step, epoch, the training config, an optional numpy bit-generator state and free-form
``extra`` (best validation score, ...).

MLX's global key cannot be set from an array, so the trainer does not store it: it reseeds
``mx.random`` from (seed, step) before every step, which makes any randomness inside a step
a pure function of the step (as the data already is) and resume exact.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import mlx.core as mx
import mlx.nn as nn
import numpy as np
from mlx.utils import tree_flatten, tree_unflatten

from mlx_hdr.errors import WeightsError
from mlx_hdr.io.atomic import save_safetensors_atomic
from mlx_hdr.models.model_io import CHECKPOINT_FORMAT, check_finite, read_safetensors

FORMAT = CHECKPOINT_FORMAT


@dataclass
class Checkpoint:
    """What :func:`load_checkpoint` returns besides the state it restores in place: the
    step and epoch, the training config (a dict) and the ``extra`` metadata."""

    step: int
    epoch: int
    config: dict
    extra: dict


def frozen_digest(model: nn.Module) -> str:
    """A digest of the weights ``model`` does not train (its encoder; with ``train_only``,
    the rest): a checkpoint keeps it, so a resume can tell when they come from changed
    files. The arrays' values only, in an order of their own (a module wrapped for the CPU
    names them otherwise)."""
    trainable = {k for k, _ in tree_flatten(model.trainable_parameters())}
    frozen = [v for k, v in tree_flatten(model.parameters()) if k not in trainable]
    parts = sorted(
        hashlib.sha256(np.asarray(v.astype(mx.float32)).tobytes()).hexdigest() for v in frozen
    )
    return hashlib.sha256("".join(parts).encode()).hexdigest()[:16]


def heldout_digest(source, cfg) -> str | None:
    """A digest of what a run's validation samples are drawn from: the images ``source``
    validates on (``source.validation_key``; None for a source without it), the recipe's
    ``val_size``, ``val_crop`` and ``seed``, and for simulated photos its ``sim`` settings
    (as the recipe gives them: a setting the simulator gains later changes no digest). A
    checkpoint keeps it, so a resume can tell when its data, the way they are split or
    drawn, changed since (not an image's content under its old name)."""
    key = getattr(source, "validation_key", None)
    if key is None:
        return None
    drawn = key(cfg.val_size)
    drawn |= {"size": cfg.val_size, "crop": cfg.val_crop, "seed": cfg.seed}
    drawn["sim"] = cfg.sim if drawn["simulated"] else None
    text = json.dumps(drawn, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def note_changes(extra: dict, frozen: str, heldout: str | None, best: float, path) -> None:
    """Warn where what a checkpoint (``path``) recorded in its ``extra`` differs from the
    resumed run's: the weights it does not train (:func:`frozen_digest`), the images it
    validates on (:func:`heldout_digest`); ``best``: the run's best score so far, dB."""
    if extra.get("frozen", frozen) != frozen:
        warnings.warn(
            f"{path}: the weights this run does not train differ from those it was "
            "trained with (its encoder or init_model file changed?): the resumed run "
            "mixes them",
            stacklevel=3,
        )
    if None not in (saved := extra.get("heldout"), heldout) and saved != heldout:
        warnings.warn(
            f"{path}: this run's validation samples differ from those its checkpoints were "
            "scored on (its data, their split, or val_size, val_crop, seed or sim changed): "
            f"its best so far ({best:.2f} dB) compares with scores on other samples",
            stacklevel=3,
        )


def save_checkpoint(
    path,
    model: nn.Module,
    optimizer,
    *,
    step: int,
    epoch: int,
    config_json: str,
    np_rng: np.random.Generator | None = None,
    extra: dict | None = None,
) -> Path:
    """Write the full training state to ``path`` (temp file + rename)."""
    arrays = {f"model.{k}": v for k, v in tree_flatten(model.trainable_parameters())}
    arrays.update({f"optimizer.{k}": v for k, v in tree_flatten(optimizer.state)})
    meta = {
        "format": FORMAT,
        "step": str(step),
        "epoch": str(epoch),
        "config": config_json,
        "np_rng": json.dumps(np_rng.bit_generator.state if np_rng is not None else None),
        "extra": json.dumps(extra or {}),
    }
    return save_safetensors_atomic(path, arrays, meta, parents=True)


def read_checkpoint(path) -> tuple[dict[str, mx.array], dict]:
    """Arrays and metadata of a checkpoint; ``WeightsError`` if missing or not one."""
    arrays, meta = read_safetensors(path, "checkpoint")
    if meta.get("format") != FORMAT:
        raise WeightsError("not a training checkpoint", path)
    return arrays, meta


def checkpoint_header(path) -> dict | None:
    """A checkpoint file's metadata (step, config, ...: JSON strings), read from its
    safetensors header alone; None where it is missing or not a checkpoint."""
    try:
        with open(path, "rb") as f:
            size = int.from_bytes(f.read(8), "little")
            meta = json.loads(f.read(min(size, 1 << 24))).get("__metadata__", {})
    except (OSError, ValueError, AttributeError):
        return None
    return meta if isinstance(meta, dict) and meta.get("format") == FORMAT else None


def checkpoint_step(path) -> int | None:
    """The step a checkpoint was saved at (:func:`checkpoint_header`), or None (also for
    one no training writes)."""
    try:
        step = int((checkpoint_header(path) or {})["step"])
    except (KeyError, ValueError, TypeError):
        return None
    return step if step >= 0 else None


def _model_arrays(arrays: dict[str, mx.array]) -> dict[str, mx.array]:
    """A checkpoint's ``model.*`` arrays, keyed without the prefix."""
    return {k.removeprefix("model."): v for k, v in arrays.items() if k.startswith("model.")}


def _mismatched(params: dict[str, mx.array], expected: dict[str, mx.array]) -> list[str]:
    """Keys in only one of the two, then keys whose shapes or dtypes differ."""
    bad = sorted(set(params) ^ set(expected))
    same = lambda a, b: a.shape == b.shape and a.dtype == b.dtype  # noqa: E731
    return bad + [k for k in params if k in expected and not same(params[k], expected[k])]


def checkpoint_weights(paths) -> tuple[dict[str, mx.array], list[int]]:
    """The trainable weights (keys without ``model.``) of one checkpoint, or their
    element-wise mean over several (stochastic weight averaging, Izmailov et al. 2018), in
    float32, and the checkpoints' steps. ``WeightsError`` if their keys or shapes differ."""
    total, steps = None, []
    for path in paths:
        arrays, meta = read_checkpoint(path)
        w = {k: v.astype(mx.float32) for k, v in _model_arrays(arrays).items()}
        check_finite(w, path)
        if total is not None and _mismatched(w, total):
            raise WeightsError("its weights differ in names or shapes from the first's", path)
        total = w if total is None else {k: total[k] + w[k] for k in total}
        steps.append(int(meta["step"]))
    if total is None:
        raise ValueError("no checkpoint given")
    return {k: v / len(steps) for k, v in total.items()}, steps


def load_checkpoint(
    path, model: nn.Module, optimizer, np_rng: np.random.Generator | None = None
) -> Checkpoint:
    """Restore model, optimizer and RNG state in place from :func:`save_checkpoint`'s file.

    ``WeightsError`` (nothing restored) where its weights or optimizer state do not match
    the model's names, shapes and dtypes, or its metadata is not what it writes."""
    arrays, meta = read_checkpoint(path)
    params = _model_arrays(arrays)
    expected = dict(tree_flatten(model.trainable_parameters()))
    bad = _mismatched(params, expected)
    if bad:
        raise WeightsError(f"checkpoint does not match the model ({', '.join(bad[:4])})", path)
    opt = {k[10:]: v for k, v in arrays.items() if k.startswith("optimizer.")}
    optimizer.init(model.trainable_parameters())  # the state this optimizer keeps
    want = dict(tree_flatten(optimizer.state))
    bad = _mismatched(opt, want)
    if bad:
        raise WeightsError(f"optimizer state does not match ({', '.join(bad[:4])})", path)
    info, np_state = _metadata(meta, path)
    model.update(tree_unflatten(list(params.items())))
    optimizer.state = tree_unflatten(list(opt.items()))
    if np_rng is not None and np_state is not None:
        np_rng.bit_generator.state = np_state
    mx.eval(model.parameters(), optimizer.state)
    return info


def _metadata(meta: dict, path) -> tuple[Checkpoint, dict | None]:
    """A checkpoint's step, epoch (whole numbers >= 0), config and ``extra`` (objects, its
    best score a number), and its numpy generator state (an object or null);
    ``WeightsError`` otherwise."""
    try:
        step, epoch = int(meta["step"]), int(meta["epoch"])
        config, extra = json.loads(meta["config"]), json.loads(meta.get("extra", "{}"))
        np_state = json.loads(meta.get("np_rng", "null"))
        ok = step >= 0 and epoch >= 0 and isinstance(config, dict) and isinstance(extra, dict)
        best = extra.get("best_psnr", 0.0) if ok else None
        ok = ok and isinstance(best, (int, float)) and not isinstance(best, bool)
        ok = ok and (np_state is None or isinstance(np_state, dict))
    except (KeyError, ValueError, TypeError):
        ok = False
    if not ok:
        raise WeightsError("checkpoint metadata is not what training writes", path)
    return Checkpoint(step=step, epoch=epoch, config=config, extra=extra), np_state
