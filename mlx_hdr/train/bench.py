"""Benchmarks of the hybrid model and its training step; prints markdown tables.

    python -m mlx_hdr.train.bench model          # params, FLOPs at 512², checkerboard at init
    python -m mlx_hdr.train.bench step --batch 4 --size 224 --lpips 3   # compiled vs eager

Weights come from the user cache (``mlx-hdr convert``); missing ones are replaced by random
weights (the timings do not depend on the values).
"""

from __future__ import annotations

# isort: off
import mlx_hdr  # noqa: F401  (OpenBLAS preload before mlx.core)

# isort: on
import argparse
import time

import mlx.core as mx
import numpy as np

from mlx_hdr.errors import WeightsError
from mlx_hdr.models.hybrid import (
    UPSAMPLE_MODES,
    HybridAutoencoder,
    HybridConfig,
    checkerboard_score,
    summary,
)


def smooth_batch(size: int = 128) -> mx.array:
    """A smooth colour ramp, ImageNet-normalised-like range, (1, size, size, 3)."""
    yy, xx = np.mgrid[0:size, 0:size] / (size - 1)
    img = np.stack([xx, yy, 0.5 * (xx + yy)], -1)[None] * 4 - 2
    return mx.array(img.astype(np.float32))


def _load_encoder(model) -> bool:
    """Load the converted ImageNet encoder weights when they are in the cache."""
    from mlx_hdr.weights import converted_path, load_strict

    path = converted_path(model.config.encoder)
    if path.is_file():
        load_strict(model.encoder, path, model.config.encoder)
    return path.is_file()


def bench_model(encoder: str, seeds: int = 3) -> None:
    print("| upsample | decoder params | decoder GFLOPs @512² | encoder GFLOPs | checkerboard |")
    print("|---|---|---|---|---|")
    x = smooth_batch()
    for mode in UPSAMPLE_MODES:
        scores = []
        for seed in range(seeds):
            mx.random.seed(seed)
            model = HybridAutoencoder(HybridConfig(encoder=encoder, upsample=mode))
            pretrained = _load_encoder(model)
            scores.append(checkerboard_score(model(x)))
        s = summary(model, 512)
        print(
            f"| {mode} | {s['decoder_params'] / 1e6:.2f} M | {s['decoder_gflops']:.1f} | "
            f"{s['encoder_gflops']:.2f} | {np.mean(scores):.4f} ± {np.std(scores):.4f} |"
        )
    print(f"encoder weights: {'ImageNet' if pretrained else 'random'}; input: a smooth ramp")


def _setup(batch: int, size: int, lpips_weight: float, compile: bool):
    from mlx_hdr.train.config import TrainConfig
    from mlx_hdr.train.step import make_optimizer, make_train_step
    from mlx_hdr.train.trainer import build_lpips, build_model

    cfg = TrainConfig(batch_size=batch, lpips_weight=lpips_weight, compile=compile)
    try:
        model, lpips = build_model(cfg), build_lpips(cfg)
    except WeightsError:
        cfg.encoder_weights = "random"
        model, lpips = build_model(cfg), None
        if lpips_weight > 0:
            from mlx_hdr.lpips import LPIPS

            lpips = LPIPS()
            lpips.freeze()
    opt = make_optimizer(cfg)
    opt.init(model.trainable_parameters())
    step = make_train_step(model, opt, lpips=lpips, lpips_weight=lpips_weight, compile=compile)
    return model, opt, step


def bench_step(batch: int, size: int, lpips_weight: float, steps: int, rounds: int) -> None:
    """Alternate compiled and eager rounds (fair under a noisy, shared CPU)."""
    rng = np.random.default_rng(0)
    x = mx.array(rng.normal(size=(batch, size, size, 3)).astype(np.float32))
    t = mx.array(np.tanh(rng.normal(size=(batch, size, size, 3))).astype(np.float32))
    m = mx.zeros((batch, size, size, 1))
    runs = {c: _setup(batch, size, lpips_weight, c) for c in (True, False)}
    times: dict[bool, list[float]] = {True: [], False: []}
    first = {}
    for _ in range(rounds):
        for c, (model, opt, step) in runs.items():
            for _ in range(steps):
                t0 = time.perf_counter()
                mx.eval(step(x, t, m), model.state, opt.state)
                dt = time.perf_counter() - t0
                if c in first:
                    times[c].append(dt)
                else:
                    first[c] = dt
    print(f"batch {batch}, {size}², LPIPS weight {lpips_weight}")
    print("| mode | first step (s) | median step (s) | images/s |")
    print("|---|---|---|---|")
    for c in (True, False):
        med = float(np.median(times[c]))
        name = "compiled" if c else "eager"
        print(f"| {name} | {first[c]:.2f} | {med:.3f} | {batch / med:.2f} |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("what", choices=("model", "step"))
    p.add_argument("--encoder", default="mobilenet_v2")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--lpips", type=float, default=3.0)
    p.add_argument("--steps", type=int, default=2)
    p.add_argument("--rounds", type=int, default=2)
    a = p.parse_args()
    if a.what == "model":
        bench_model(a.encoder)
    else:
        bench_step(a.batch, a.size, a.lpips, a.steps, a.rounds)


if __name__ == "__main__":
    main()
