"""The hybrid model's table: parameters, FLOPs at 512² and checkerboard score per upsampling.

    python -m mlx_hdr.train.bench model

The encoder comes from the user cache (``mlx-hdr convert``), random when missing. Step and
forward timings (compiled vs eager, MLX vs PyTorch) are in ``scripts/benchmark.py``.
"""

from __future__ import annotations

import argparse

import mlx.core as mx
import numpy as np

from mlx_hdr.models.analysis import checkerboard_score, summary
from mlx_hdr.models.hybrid import UPSAMPLE_MODES, HybridAutoencoder, HybridConfig
from mlx_hdr.models.model_io import load_encoder


def smooth_batch(size: int = 128) -> mx.array:
    """A smooth colour ramp, ImageNet-normalised-like range, (1, size, size, 3)."""
    yy, xx = np.mgrid[0:size, 0:size] / (size - 1)
    img = np.stack([xx, yy, 0.5 * (xx + yy)], -1)[None] * 4 - 2
    return mx.array(img.astype(np.float32))


def bench_model(encoder: str, seeds: int = 3) -> None:
    """Print a Markdown table, one row per upsampling mode: decoder parameters, decoder and
    encoder GFLOPs at 512², and the checkerboard score of the untrained model's output on
    :func:`smooth_batch` (mean ± std over ``seeds`` random decoder initialisations)."""
    print("| upsample | decoder params | decoder GFLOPs @512² | encoder GFLOPs | checkerboard |")
    print("|---|---|---|---|---|")
    x = smooth_batch()
    for mode in UPSAMPLE_MODES:
        scores = []
        for seed in range(seeds):
            mx.random.seed(seed)
            model = HybridAutoencoder(HybridConfig(encoder=encoder, upsample=mode))
            pretrained = load_encoder(model)
            scores.append(checkerboard_score(model(x)))
        s = summary(model, 512)
        print(
            f"| {mode} | {s['decoder_params'] / 1e6:.2f} M | {s['decoder_gflops']:.1f} | "
            f"{s['encoder_gflops']:.2f} | {np.mean(scores):.4f} ± {np.std(scores):.4f} |"
        )
    print(f"encoder weights: {'ImageNet' if pretrained else 'random'}; input: a smooth ramp")


def main() -> None:
    """Command line: ``python -m mlx_hdr.train.bench model [--encoder NAME]``."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("what", choices=("model",))
    p.add_argument("--encoder", default="mobilenet_v2")
    bench_model(p.parse_args().encoder)


if __name__ == "__main__":
    main()
