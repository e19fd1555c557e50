"""One training step (loss, gradients, optional all-reduce, Adam update), compiled or eager."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
from mlx.utils import tree_flatten, tree_map

from mlx_hdr.backend.streams import stream_slices
from mlx_hdr.train.loss import hybrid_loss


def make_optimizer(cfg) -> optim.Adam:
    """Adam(β1, β2), bias-corrected when ``cfg.bias_correction``, with constant lr,
    optional linear warmup and cosine decay."""
    lr = cfg.lr
    if cfg.schedule == "cosine":
        decay = max(1, cfg.total_steps - cfg.warmup_steps)
        lr = optim.cosine_decay(cfg.lr, decay)
    if cfg.warmup_steps > 0:
        warm = optim.linear_schedule(cfg.lr / cfg.warmup_steps, cfg.lr, cfg.warmup_steps)
        lr = optim.join_schedules(
            [warm, lr if callable(lr) else lambda _: cfg.lr], [cfg.warmup_steps]
        )
    betas = [cfg.beta1, cfg.beta2]
    return optim.Adam(learning_rate=lr, betas=betas, bias_correction=cfg.bias_correction)


def global_norm(tree) -> mx.array:
    """L2 norm over all arrays of a (gradient) tree, as one float32 scalar."""
    return mx.sqrt(sum((g.astype(mx.float32) ** 2).sum() for _, g in tree_flatten(tree)))


def make_train_step(
    model: nn.Module,
    optimizer: optim.Optimizer,
    *,
    lpips: Callable | None = None,
    l1_weight: float = 2.0,
    lpips_weight: float = 3.0,
    alpha_weight: float = 0.0,
    pair_weight: float = 0.0,
    compile: bool = True,
    group=None,
    streams: int = 1,
) -> Callable:
    """Return ``step(x, target, mask, white=None) -> (loss, parts, grad_norm)``, updating
    model in place.

    x: (N, H, W, 3) encoder input; target: (N, H, W, 3) in [-1, 1]; mask: (N, H, W, 1);
    white: (N,) log2 of each photo's white in cd/m², NaN where unknown (None: all unknown).
    With a distributed ``group`` of size > 1 the gradients (and the reported loss) are
    averaged over ranks, so each rank's local batch is a shard of the global batch.
    Compiled over ``[model.state, optimizer.state]`` (cvae style); no randomness inside.
    Eager steps with ``streams`` > 1 split the batch into that many shards, each run on its
    own CPU stream (MLX runs streams on separate threads; its CPU ops are single-threaded)
    and combined by a size-weighted mean: the same step, computed in parallel.
    """
    weights = dict(
        l1_weight=l1_weight,
        lpips_weight=lpips_weight,
        alpha_weight=alpha_weight,
        pair_weight=pair_weight,
    )
    size = 1 if group is None else group.size()

    def loss_fn(x, target, mask, white):
        return hybrid_loss(model(x, white), target, mask, lpips=lpips, **weights)

    grad_fn = nn.value_and_grad(model, loss_fn)
    if streams > 1 and not compile and mx.default_device() == mx.cpu:  # CPU streams
        multiple = 2 if pair_weight > 0 else 1  # an exposure pair stays in one shard
        grad_fn = sharded(grad_fn, [mx.new_stream(mx.cpu) for _ in range(streams)], multiple)

    def step(x, target, mask, white):
        (loss, parts), grads = grad_fn(x, target, mask, white)
        if size > 1:
            grads = nn.average_gradients(grads, group)
            loss = mx.distributed.all_sum(loss, group=group) / size
            parts = {k: mx.distributed.all_sum(v, group=group) / size for k, v in parts.items()}
        norm = global_norm(grads)
        optimizer.update(model, grads)
        return loss, parts, norm

    if compile:
        state = [model.state, optimizer.state]
        step = partial(mx.compile, inputs=state, outputs=state)(step)

    def run(x, target, mask, white=None):
        if white is None:
            white = mx.full((x.shape[0],), mx.nan, dtype=mx.float32)
        return step(x, target, mask, white)

    return run


def sharded(grad_fn: Callable, streams: list, multiple: int = 1) -> Callable:
    """``grad_fn(*batch)`` computed on batch shards, one per stream, then size-weighted.

    Exact for losses that are means over the batch of per-sample terms (L1 over equal-size
    images, LPIPS, InstanceNorm statistics are per sample; the exposure-pair term is a mean
    over pairs, so shards are cut at multiples of 2 then: ``multiple``).
    """

    def run(*batch):
        n = batch[0].shape[0]
        weights, outs = [], []
        for s, a, b in stream_slices(n, streams, multiple):
            if b > a:
                with mx.stream(s):
                    outs.append(grad_fn(*(t[a:b] for t in batch)))
                weights.append((b - a) / n)

        def mean(*shards):
            return sum(w * v for w, v in zip(weights, shards, strict=True))

        return tree_map(mean, *outs)

    return run
