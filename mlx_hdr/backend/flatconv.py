"""Stride-1 convolution as shifted GEMMs on a flattened image (fast on MLX's CPU backend).

MLX's CPU ``conv2d`` builds an explicit im2col buffer (kH*kW copies of the input, written by
one thread) and then runs one GEMM; on the decoder's and VGG's full-resolution layers the
copy, not the GEMM, takes most of the time. Here the zero-padded input (N, Hp, Wp, C) is
flattened to (N, Hp*Wp, C). Output pixel (y, x) then reads tap (i, j) at flat row
(y + i) * Wp + x + j, so for every tap the rows needed by all outputs form one *contiguous*
slice, offset by i * Wp + j, of the flat input: the conv becomes kH*kW GEMMs accumulated in
place (``addmm``) with no copies, computing Wp - Wo junk columns per row that are cropped.

Gradients use the same trick (a custom VJP): the input gradient is this conv of the
zero-padded output gradient with the flipped, transposed kernel; the weight gradient is one
GEMM per tap between the flat input slice and the output gradient laid out on the same
Wp-wide grid (junk columns zeroed).

Shapes are NHWC; weights use MLX's layout (O, kH, kW, I). Tested equal to ``mx.conv2d``
(forward and both gradients) in ``tests/test_backend_cpu.py``.
"""

from __future__ import annotations

import mlx.core as mx


def _flat(x: mx.array, ph: int, pw: int) -> mx.array:
    """Zero-pad (one extra bottom row keeps the last tap's slice in range) and flatten."""
    x = mx.pad(x, [(0, 0), (ph, ph + 1), (pw, pw), (0, 0)])
    return x.reshape(x.shape[0], -1, x.shape[-1])


def _taps(xf: mx.array, w_taps: mx.array, wp: int, rows: int) -> mx.array:
    """Sum over taps of ``xf[:, off:off + rows * wp] @ w_taps[i, j]`` -> (N, rows * wp, O)."""
    kh, kw = w_taps.shape[:2]
    n = rows * wp
    out = None
    for i in range(kh):
        for j in range(kw):
            a = xf[:, i * wp + j : i * wp + j + n]
            out = a @ w_taps[i, j] if out is None else mx.addmm(out, a, w_taps[i, j])
    return out


def _forward(x: mx.array, w: mx.array, ph: int, pw: int) -> mx.array:
    n, h, wd, _ = x.shape
    o, kh, kw, _ = w.shape
    wp = wd + 2 * pw
    ho, wo = h + 2 * ph - kh + 1, wp - kw + 1
    y = _taps(_flat(x, ph, pw), w.transpose(1, 2, 3, 0), wp, ho)
    return y.reshape(n, ho, wp, o)[:, :, :wo]


def weight_grad(x: mx.array, g: mx.array, kh: int, kw: int, ph: int, pw: int) -> mx.array:
    """dL/dw in MLX layout (O, kH, kW, I) from input x and output gradient g (NHWC)."""
    n, ho, wo, o = g.shape
    wp = x.shape[2] + 2 * pw
    xf = _flat(x, ph, pw)
    gf = mx.pad(g, [(0, 0), (0, 0), (0, wp - wo), (0, 0)]).reshape(n, ho * wp, o)
    taps = []
    for i in range(kh):
        for j in range(kw):
            a = xf[:, i * wp + j : i * wp + j + ho * wp]
            taps.append((a.swapaxes(1, 2) @ gf).sum(axis=0))  # (I, O)
    return mx.stack(taps).reshape(kh, kw, -1, o).transpose(3, 0, 1, 2)


def flip_kernel(w: mx.array) -> mx.array:
    """(O, kH, kW, I) -> (I, kH, kW, O) rotated by 180°: the kernel whose stride-1 conv of
    the output gradient is the input gradient."""
    return w[:, ::-1, ::-1, :].transpose(3, 1, 2, 0)


def conv2d_flat(x: mx.array, weight: mx.array, padding: int | tuple[int, int] = 0) -> mx.array:
    """``mx.conv2d(x, weight, stride=1, padding=padding)`` (groups 1, dilation 1), faster on CPU.

    Args:
        x: (N, H, W, I) float input.
        weight: (O, kH, kW, I) kernel.
        padding: zero padding, int or (pH, pW), each at most k - 1.
    Returns:
        (N, H + 2 pH - kH + 1, W + 2 pW - kW + 1, O).
    """
    ph, pw = (padding, padding) if isinstance(padding, int) else padding
    kh, kw = weight.shape[1:3]
    if not (0 <= ph < kh and 0 <= pw < kw):
        raise ValueError(f"padding {padding} must lie in [0, k - 1] for a {kh}x{kw} kernel")
    return _conv(x, weight, ph, pw)


def _conv(x: mx.array, weight: mx.array, ph: int, pw: int) -> mx.array:
    @mx.custom_function
    def conv(x, w):
        return _forward(x, w, ph, pw)

    @conv.vjp
    def conv_vjp(primals, cotangent, output):
        x, w = primals
        _, kh, kw, _ = w.shape
        dx = _forward(cotangent, flip_kernel(w), kh - 1 - ph, kw - 1 - pw)
        return dx, weight_grad(x, cotangent, kh, kw, ph, pw)

    return conv(x, weight)
