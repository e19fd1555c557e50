"""3×3 stride-1 convolution by Winograd's minimal filtering F(4×4, 3×3) (Lavin & Gray 2016).

A 3×3 conv over a 4×4 output tile reads a 6×6 input tile. Winograd's algorithm transforms
each input tile (``B^T d B``) and each kernel (``G g G^T``) to 6×6 = 36 points, multiplies
them point by point, and transforms back (``A^T m A``): 36 multiplications per 4×4 outputs
instead of 144, so the GEMMs do 4x fewer FLOPs than a direct conv. Here every step is a
GEMM that OpenBLAS runs on all cores:

- input: the 36 strided views of the zero-padded image, stacked to (36, tiles·I) and
  multiplied by ``kron(B^T, B^T)`` (36×36);
- product: 36 batched GEMMs (tiles, I) @ (I, O);
- output: ``kron(A^T, A^T)`` (16×36) @ (36, tiles·O), then the 4×4 tiles are interleaved.

On MLX's CPU backend this beats :mod:`flatconv`'s direct shifted GEMMs for wide convs
(VGG-LPIPS, the decoder's deep stages); the transforms are memory-bound, so for narrow
convs the direct form wins (:func:`winograd_pays`; ``scripts/bench_fastpaths.py`` measures
both). Rounding: the transforms' constants (up to 8 and 1/24) cost precision; the result is
within ~2e-5 of the largest output magnitude in float32 (``tests/test_backend_cpu.py``).

Gradients (a custom VJP): the input gradient is this conv of the output gradient with the
flipped, transposed kernel; the weight gradient is :func:`flatconv.weight_grad`'s direct
form (computed only if used: MLX evaluates lazily, and frozen weights never ask for it).

Shapes are NHWC; weights use MLX's layout (O, 3, 3, I).
"""

from __future__ import annotations

import mlx.core as mx
import numpy as np

from mlx_hdr.backend.flatconv import flip_kernel, weight_grad

M, T = 4, 6  # output tile, input tile
# Lavin & Gray (2016), interpolation points 0, ±1, ±2, ∞
_BT = np.array(
    [
        [4, 0, -5, 0, 1, 0],
        [0, -4, -4, 1, 1, 0],
        [0, 4, -4, -1, 1, 0],
        [0, -2, -1, 2, 1, 0],
        [0, 2, -1, -2, 1, 0],
        [0, 4, 0, -5, 0, 1],
    ],
    np.float64,
)
_G = np.array(
    [
        [1 / 4, 0, 0],
        [-1 / 6, -1 / 6, -1 / 6],
        [-1 / 6, 1 / 6, -1 / 6],
        [1 / 24, 1 / 12, 1 / 6],
        [1 / 24, -1 / 12, 1 / 6],
        [0, 0, 1],
    ],
    np.float64,
)
_AT = np.array(
    [[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]],
    np.float64,
)
# 2-D transforms on row-major flattened tiles: vec(P X Q^T) = kron(P, Q) vec(X)
_BB = np.kron(_BT, _BT).astype(np.float32)  # (36, 36)
_GG = np.kron(_G, _G).astype(np.float32)  # (36, 9)
_AA = np.kron(_AT, _AT).astype(np.float32)  # (16, 36)


def kernel_transform(w: mx.array) -> mx.array:
    """(O, 3, 3, I) kernel -> (36, I, O) Winograd-domain kernel ``G g G^T``."""
    o, _, _, i = w.shape
    return (mx.array(_GG) @ w.transpose(1, 2, 3, 0).reshape(9, i * o)).reshape(T * T, i, o)


def _forward(x: mx.array, u: mx.array) -> mx.array:
    """Winograd conv of x (N, H, W, I) with a transformed kernel u (36, I, O), zero padding 1."""
    n, h, w, c = x.shape
    o = u.shape[2]
    th, tw = -(-h // M), -(-w // M)
    # pad 1 (the conv's padding) plus zeros up to whole tiles; the extra outputs are cropped
    xp = mx.pad(x, [(0, 0), (1, th * M - h + 1), (1, tw * M - w + 1), (0, 0)])
    views = [xp[:, a : a + M * th : M, b : b + M * tw : M] for a in range(T) for b in range(T)]
    tiles = n * th * tw
    v = (mx.array(_BB) @ mx.stack(views).reshape(T * T, -1)).reshape(T * T, tiles, c)
    y = (mx.array(_AA) @ (v @ u).reshape(T * T, -1)).reshape(M, M, n, th, tw, o)
    y = y.transpose(2, 3, 0, 4, 1, 5).reshape(n, th * M, tw * M, o)
    return y[:, :h, :w] if (th * M, tw * M) != (h, w) else y


@mx.custom_function
def conv3x3_winograd(x: mx.array, weight: mx.array) -> mx.array:
    """``mx.conv2d(x, weight, stride=1, padding=1)`` for a 3×3 kernel, by Winograd F(4×4, 3×3).

    Args:
        x: (N, H, W, I) float32 input, any H, W ≥ 1.
        weight: (O, 3, 3, I) kernel.
    Returns:
        (N, H, W, O).
    """
    return _forward(x, kernel_transform(weight))


@conv3x3_winograd.vjp
def _conv3x3_winograd_vjp(primals, cotangent, output):
    x, w = primals
    dx = _forward(cotangent, kernel_transform(flip_kernel(w)))
    return dx, weight_grad(x, cotangent, 3, 3, 1, 1)


def winograd_pays(in_channels: int, out_channels: int, height: int, width: int) -> bool:
    """Whether F(4×4, 3×3) beats the direct shifted GEMMs on MLX's CPU backend.

    GEMM work per pixel grows as I·O and transform traffic as I + O, so it pays from a
    threshold on ``I·O/(I+O)``, set where ``scripts/bench_fastpaths.py`` found the two even
    (64→64). Below 8×8 the padding to whole 4×4 tiles wastes too much.
    """
    io = in_channels * out_channels / (in_channels + out_channels)
    return io >= 40 and min(height, width) >= 8
