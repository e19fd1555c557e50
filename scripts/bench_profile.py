"""Per-op-type MLX breakdown of the 512² forward and the 256²×4 training step (a benchmark).

Forward and vjp times of each layer in sequence, summed by kind; run through
``scripts/benchmark.py --profile`` (this module shares its timing helpers).
"""

from __future__ import annotations

from bench_timing import median_ms
from benchmark import build_mlx_model


def _layer_costs(layers, x, repeats: int, grad: bool) -> dict[str, list[float]]:
    """Median forward and (input + parameter) vjp ms of each ``(kind, fn)`` in sequence."""
    import mlx.core as mx

    costs: dict[str, list[float]] = {}
    for kind, fn in layers:
        mx.eval(x)
        fwd = median_ms(lambda fn=fn, x=x: mx.eval(fn(x)), repeats)
        y = fn(x)
        bwd = 0.0
        if grad:
            cot = mx.random.normal(y.shape)
            mx.eval(y, cot)
            vjp = lambda fn=fn, x=x, cot=cot: mx.eval(mx.vjp(fn, [x], [cot])[1])  # noqa: E731
            bwd = median_ms(vjp, repeats)
        acc = costs.setdefault(kind, [0.0, 0.0])
        acc[0], acc[1] = acc[0] + fwd, acc[1] + bwd
        x = y
    return costs


def _decoder_layers(model, x, feats):
    import mlx.core as mx
    import mlx.nn as nn

    from mlx_hdr.models.hybrid import binomial_blur, pixel_shuffle

    def block(b):
        k = "conv1x1" if b.conv1.weight.shape[1] == 1 else "conv3x3"
        return [
            (k, b.conv1),
            ("instancenorm", b.norm1),
            ("relu", nn.relu),
            ("conv3x3", b.conv2),
            ("instancenorm", b.norm2),
            ("relu", nn.relu),
        ]

    def up(u):
        layers = [("conv3x3 (upsample)", u.conv), ("pixelshuffle", pixel_shuffle)]
        blur = [("blur", binomial_blur)] if u.mode == "pixelshuffle_icnr_blur" else []
        return layers + blur

    def cat(skip):
        return [("concat", lambda y, s=skip: mx.concatenate([y, s], axis=-1))]

    layers = block(model.bottleneck) + up(model.ups[0])
    for k, b in enumerate(model.blocks):
        layers += cat(feats[3 - k]) + block(b) + up(model.ups[k + 1])
    layers += cat(x) + block(model.head)
    return layers + [("conv1x1", model.out), ("tanh", mx.tanh)]


def _vgg_layers(lpips):
    import mlx.nn as nn

    names = {nn.ReLU: "relu", nn.MaxPool2d: "maxpool"}
    return [
        (
            names.get(
                type(m),
                f"conv3x3 {m.weight.shape[-1]}->{m.weight.shape[0]}"
                if type(m) not in names
                else "",
            ),
            m,
        )
        for m in lpips.net.features
    ]


def profile_table(repeats: int) -> str:
    """Per-op-type forward/backward ms of the 512² forward and the 256²×4 training step."""
    from mlx_hdr import backend

    backend.setup()  # before mlx.core loads
    # isort: split
    import mlx.core as mx

    from mlx_hdr.models.lpips import LPIPS

    mx.random.seed(0)
    model = build_mlx_model()
    rows = []
    for size, batch, grad in ((512, 1, False), (256, 4, True)):
        x = mx.random.normal((batch, size, size, 3))
        enc = median_ms(lambda x=x: mx.eval(model.encoder.features_at(x)), repeats)
        rows.append((f"{size}²×{batch}", "encoder (MobileNetV2, frozen)", enc, 0.0))
        feats = model.encoder.features_at(x)
        dec = _decoder_layers(model, x, feats)
        for kind, (f, b) in _layer_costs(dec, feats[4], repeats, grad).items():
            rows.append((f"{size}²×{batch}", f"decoder {kind}", f, b))
    lpips = backend.accelerate(LPIPS())
    x = mx.tanh(mx.random.normal((4, 256, 256, 3)))
    vgg = _layer_costs(_vgg_layers(lpips), x, repeats, True)
    for kind, (f, b) in sorted(vgg.items(), key=lambda kv: -sum(kv[1])):
        rows.append(("256²×4", f"VGG {kind} (one image batch)", f, b))
    lines = ["| input | op | forward ms | backward ms |", "|---|---|---|---|"]
    lines += [f"| {r[0]} | {r[1]} | {r[2]:,.1f} | {r[3]:,.1f} |" for r in rows]
    return "\n".join(lines)
