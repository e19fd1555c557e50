"""Speed of the CPU fast paths against the plain MLX formulation (a benchmark, not a test).

Prints two tables: stride-1 3×3 convs as ``mx.conv2d``, ``backend.flatconv.conv2d_flat`` and
``backend.winograd.conv3x3_winograd`` (forward, and forward + both gradients), and ``predict_hdr``
of the bundled model on 12 and 24 MP photos (the model at its working resolution, then the
gain map; with and without the mirror mean). Medians of ``--repeats`` runs after one warm-up:

    .venv/bin/python scripts/bench_fastpaths.py
"""

from __future__ import annotations

import argparse

import numpy as np
from bench_timing import median_ms

# ruff: noqa: E402  (imports after backend.setup(), which must run before mlx.core loads)
from mlx_hdr import backend

backend.setup()
# isort: split
import mlx.core as mx

from mlx_hdr.backend.flatconv import conv2d_flat
from mlx_hdr.backend.winograd import conv3x3_winograd
from mlx_hdr.infer import pipeline as inference
from mlx_hdr.infer.model_hub import load_net

CONV_SHAPES = [
    (4, 256, 256, 24),
    (1, 512, 512, 16),
    (1, 256, 256, 32),
    (4, 256, 256, 64),
    (4, 128, 128, 128),
    (4, 64, 64, 256),
    (4, 32, 32, 512),
    (4, 16, 16, 512),
]


def plain_conv(x, w):
    return mx.conv2d(x, w, padding=1)


def flat_conv(x, w):
    return conv2d_flat(x, w, 1)


def conv_times(conv, x, w, repeats: int) -> tuple[float, float]:
    """(forward ms, forward + both gradients ms) of ``conv(x, w)``."""
    grad = mx.grad(lambda a, b: (conv(a, b) ** 2).sum(), argnums=(0, 1))
    return (
        median_ms(lambda: mx.eval(conv(x, w)), repeats),
        median_ms(lambda: mx.eval(grad(x, w)), repeats),
    )


def conv_table(repeats: int) -> None:
    kinds = ("conv2d", "flat", "winograd")
    head = [f"{k} fwd" for k in kinds] + [f"{k} fwd+bwd" for k in kinds]
    print("| NHWC, 3×3, C→C | " + " | ".join(head) + " |")
    print("|---" * (len(head) + 1) + "|")
    for shape in CONV_SHAPES:
        x = mx.random.normal(shape)
        w = mx.random.normal((shape[-1], 3, 3, shape[-1])) * 0.1
        mx.eval(x, w)
        times = [conv_times(c, x, w, repeats) for c in (plain_conv, flat_conv, conv3x3_winograd)]
        cells = " | ".join(f"{t:.1f} ms" for t in [f for f, _ in times] + [b for _, b in times])
        print(f"| {'×'.join(map(str, shape))} | {cells} |")


def large_photo_table(repeats: int) -> None:
    """Seconds of ``predict_hdr`` on large photos (the model at ``WORK_PIXELS``, gain map),
    in one pass (the default) and as the mirror mean (``flip=True``)."""
    net = load_net(None)[0]
    rng = np.random.default_rng(0)
    print(
        "| photo | model runs at | one pass (default) | mirror mean (`--flip`) |\n|---|---|---|---|"
    )
    for h, w in ((3000, 4000), (4000, 6000)):
        ramp = np.linspace(0, 1.2, w, dtype=np.float32)[None, :, None]
        ldr = np.clip(rng.random((h, w, 3), np.float32) * 0.3 + ramp, 0, 1)
        sh, sw = inference.work_size(h, w)
        cells = [
            median_ms(lambda ldr=ldr, f=flip: inference.predict_hdr(ldr, net, flip=f), repeats)
            for flip in (False, True)
        ]
        secs = " | ".join(f"{ms / 1e3:.2f} s" for ms in cells)
        print(f"| {w}×{h} ({h * w / 1e6:.0f} MP) | {sw}×{sh} | {secs} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    conv_table(args.repeats)
    print()
    large_photo_table(max(1, args.repeats // 2))


if __name__ == "__main__":
    main()
