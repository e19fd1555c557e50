"""PyTorch's 3×3 conv per layer, the reference for ``bench_fastpaths.py``'s MLX table.

Run with a Python that has torch (a benchmark, not a test); shapes are NHWC as in the MLX
table, run channels-last with 2 threads, medians of 7 after a warm-up:

    $TORCH_PYTHON scripts/torch_conv_table.py
"""

from __future__ import annotations

import torch
from bench_timing import median_ms

SHAPES = [
    (4, 256, 24),
    (1, 512, 16),
    (1, 256, 32),
    (4, 256, 64),
    (4, 128, 128),
    (4, 64, 256),
    (4, 32, 512),
    (4, 16, 512),
]  # as scripts/bench_fastpaths.py


def main() -> None:
    torch.set_num_threads(2)
    print("| NHWC, 3×3, C→C | PyTorch fwd | PyTorch fwd+bwd |\n|---|---|---|")
    for n, h, c in SHAPES:
        x = torch.randn(n, c, h, h).contiguous(memory_format=torch.channels_last)
        conv = torch.nn.Conv2d(c, c, 3, padding=1, bias=False)
        with torch.no_grad():
            fwd = median_ms(lambda conv=conv, x=x: conv(x), 7)
        xg = x.clone().requires_grad_(True)

        def fwd_bwd(conv=conv, xg=xg):
            y = conv(xg)
            (y * y).sum().backward()

        print(f"| {n}×{h}×{h}×{c} | {fwd:.1f} ms | {median_ms(fwd_bwd, 7):.1f} ms |")


if __name__ == "__main__":
    main()
