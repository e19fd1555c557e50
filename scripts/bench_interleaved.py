"""A/B timings of this project's CPU changes, interleaved in one process (a benchmark).

On a shared machine separate runs of the same row differ by 10-20%; calling A and B in
turn, many times, compares them under the same load. Two tables, medians of ``--rounds``:

- ``model(x)`` against ``backend.infer(model, x)`` (encoder and decoder blocks split by
  channels over two CPU streams), default MobileNetV2 model with random weights, at several
  sizes; the second column splits the encoder only, the last splits at every size
  (``streams.STREAM_MIN_PIXELS`` = 0), which is how the threshold was chosen;
- one LPIPS value + gradient at 4×256²: VGG features, then the five layer distances by
  autodiff of the lpips package's form against ``lpips.layer_distance``'s hand-written VJP.

    .venv/bin/python scripts/bench_interleaved.py
"""

from __future__ import annotations

import argparse

from bench_timing import interleaved_ms
from benchmark import build_mlx_model

# ruff: noqa: E402  (imports after backend.setup(), which must run before mlx.core loads)
from mlx_hdr import backend

backend.setup()
# isort: split
import mlx.core as mx

from mlx_hdr.backend import streams
from mlx_hdr.models.hybrid import pad_to_multiple
from mlx_hdr.models.lpips import LPIPS, layer_distance, normalize_channels

SIZES = [(224, 224), (320, 320), (384, 384), (512, 512), (864, 1152)]


def infer_table(rounds: int) -> None:
    mx.random.seed(0)
    model = build_mlx_model()
    model.eval()
    print(
        "| input | model(x) | encoder split only | backend.infer | infer, split at any size |"
        "\n|---|---|---|---|---|"
    )
    for h, w in SIZES:
        x = mx.random.normal((1, h, w, 3))
        mx.eval(model.parameters(), x)
        fns = {
            "call": lambda x=x: mx.eval(model(x)),
            "encoder": lambda x=x: mx.eval(_split_encoder_only(model, x)),
            "infer": lambda x=x: backend.infer(model, x),
            "always": lambda x=x: mx.eval(_infer_at_any_size(model, x)),
        }
        t = interleaved_ms(fns, rounds)
        cells = " | ".join(f"{t[k]:.0f} ms" for k in fns)
        print(f"| {w}×{h} | {cells} |")


def _split_encoder_only(model, x):
    """The encoder split over the streams, then the decoder whole on all BLAS threads."""
    xp = pad_to_multiple(x)
    with backend.blas_threads(1), streams.split_over(streams.infer_streams()):
        feats = model.encoder.features_at(xp)
        mx.eval(feats)
    return model.decode(xp, feats)


def _infer_at_any_size(model, x):
    threshold, streams.STREAM_MIN_PIXELS = streams.STREAM_MIN_PIXELS, 0
    try:
        return backend.infer(model, x)
    finally:
        streams.STREAM_MIN_PIXELS = threshold


def _autodiff_distance(a, b, w):
    d = (normalize_channels(a) - normalize_channels(b)) ** 2
    return (d @ w[:, None]).mean(axis=(1, 2, 3))


def lpips_table(rounds: int) -> None:
    mx.random.seed(0)
    lp = backend.accelerate(LPIPS())
    x, y = (mx.tanh(mx.random.normal((4, 256, 256, 3))) for _ in range(2))
    fx, fy = lp.net.features_at(x), lp.net.features_at(y)
    ws = [lin.weight.reshape(-1) for lin in lp.lins]
    mx.eval(lp.parameters(), fx, fy)

    def value_and_grad(dist):
        def total(feats):
            return sum(dist(a, b, w).sum() for a, b, w in zip(feats, fy, ws, strict=True))

        return lambda: mx.eval(mx.value_and_grad(total)(fx))

    t = interleaved_ms(
        {"autodiff": value_and_grad(_autodiff_distance), "vjp": value_and_grad(layer_distance)},
        rounds,
    )
    print("| LPIPS head, 5 layers at 4×256², value + gradient | autodiff | layer_distance |")
    print(f"|---|---|---|\n| median | {t['autodiff']:.0f} ms | {t['vjp']:.0f} ms |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=16)
    args = ap.parse_args()
    infer_table(args.rounds)
    print()
    lpips_table(args.rounds)


if __name__ == "__main__":
    main()
