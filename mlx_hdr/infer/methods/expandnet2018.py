"""ExpandNet (Marnerides et al. 2018, "ExpandNet: A Deep Convolutional Neural Network for High
Dynamic Range Expansion from Low Dynamic Range Content"), a learned peer method for evaluation.

A port of the released model and inference (github.com/dmarnerides/hdr-expandnet): three
branches on the min-max-normalised sRGB input, local (two 3x3 convs), dilated "mid" (four 3x3
convs, dilation 2) and global (the input resized to 256x256, six stride-2 convs and a 4x4 conv to
one 64-vector), concatenated (128 + 64 + 64) and fused by two 1x1 convs and a sigmoid. Both
local convs, and every other conv but the last of its branch, are followed by SELU.
Inference follows ``ExpandNet.predict``: the input is zero-padded by 10 px and processed in
tiles whose interiors are stitched (the receptive field, 8 px, is inside the margin, so the
result does not depend on the tile size), then the output is min-max normalised to [0, 1]
as ``expand.py`` does before writing the ``.hdr``.

The weights are the released ``weights.pth`` (a legacy PyTorch pickle, read without torch). The
product does not ship them: set ``MLX_HDR_EXPANDNET`` to the file (``mlx-hdr predict --method
expandnet2018``, ``mlx-hdr evaluate``), or pass ``weights=``.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

import mlx.core as mx
import mlx.nn as nn
import numpy as np
from mlx.utils import tree_flatten

from mlx_hdr.color import srgb_to_linear
from mlx_hdr.convert.mapping import torch_to_mlx_layout
from mlx_hdr.convert.torch_pickle import load_torch_checkpoint
from mlx_hdr.errors import WeightsError
from mlx_hdr.models.model_io import check_shapes

ENV_WEIGHTS = "MLX_HDR_EXPANDNET"
# PyTorch's SELU constants (MLX's nn.selu rounds them to 6 digits).
SELU_ALPHA = 1.6732632423543772
SELU_SCALE = 1.0507009873554805


@dataclass
class ExpandNetConfig:
    """The released architecture's sizes and the tiled inference's margin and tile side."""

    features: int = 64  # width of the mid and global branches and the fusion layer
    local_features: int = 128
    global_size: int = 256  # side the global branch sees
    global_layers: int = 6  # stride-2 convs: 256 -> 4, then a 4x4 conv to 1x1
    mid_layers: int = 4
    dilation: int = 2
    margin: int = 10  # zero padding of the released predict (overlap 20 / 2)
    tile: int = 256  # output tile side (memory bound; the result does not depend on it)


def selu(x: mx.array) -> mx.array:
    """SELU with PyTorch's exact constants."""
    return SELU_SCALE * mx.where(x > 0, x, SELU_ALPHA * (mx.exp(mx.minimum(x, 0.0)) - 1.0))


def conv2d_im2col(x: mx.array, weight: mx.array, padding: int = 0, dilation: int = 1) -> mx.array:
    """Stride-1 conv as one matmul over the kH*kW shifted windows (im2col).

    MLX's CPU backend runs dilated convs as a naive loop (~16x slower than an undilated conv);
    this is equal to ``mx.conv2d(x, weight, padding=padding, dilation=dilation)`` up to rounding.

    Args:
        x: (N, H, W, C) input.
        weight: (O, kH, kW, C) kernel (MLX layout).
    Returns:
        (N, Ho, Wo, O) without bias.
    """
    o, kh, kw, c = weight.shape
    if padding:
        x = mx.pad(x, [(0, 0), (padding, padding), (padding, padding), (0, 0)])
    ho = x.shape[1] - dilation * (kh - 1)
    wo = x.shape[2] - dilation * (kw - 1)
    windows = [
        x[:, i * dilation : i * dilation + ho, j * dilation : j * dilation + wo]
        for i in range(kh)
        for j in range(kw)
    ]
    return mx.concatenate(windows, axis=-1) @ weight.reshape(o, kh * kw * c).T


def dilated_conv(layer: nn.Conv2d, x: mx.array, padding: int, dilation: int) -> mx.array:
    """``layer`` (stride 1) applied with dilation, using the im2col form on the CPU."""
    if mx.default_device() == mx.cpu:
        return conv2d_im2col(x, layer.weight, padding, dilation) + layer.bias
    return mx.conv2d(x, layer.weight, padding=padding, dilation=dilation) + layer.bias


def bilinear_matrix(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) weights of PyTorch's bilinear resize, ``align_corners=False``, no antialias."""
    src = np.maximum((np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5, 0.0)
    i0 = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
    i1 = np.minimum(i0 + 1, n_in - 1)
    frac = (src - i0).astype(np.float32)
    mat = np.zeros((n_out, n_in), np.float32)
    np.add.at(mat, (np.arange(n_out), i0), 1.0 - frac)
    np.add.at(mat, (np.arange(n_out), i1), frac)
    return mat


def resize_bilinear(x: mx.array, size: tuple[int, int]) -> mx.array:
    """(N, H, W, C) -> (N, *size, C) as torch's ``F.interpolate(mode="bilinear")``, no antialias."""
    rows = mx.array(bilinear_matrix(x.shape[1], size[0]))
    cols = mx.array(bilinear_matrix(x.shape[2], size[1]))
    x = mx.einsum("oh,nhwc->nowc", rows, x)
    return mx.einsum("pw,nowc->nopc", cols, x)


def _pair(conv: nn.Conv2d) -> list[nn.Conv2d]:
    """A conv inside a one-element list, so keys read ``<i>.0.weight`` like torch's ``layer()``."""
    return [conv]


class ExpandNet(nn.Module):
    """ExpandNet with the released parameter names (``local_net.0.0.weight``, ...).

    Inputs are NHWC float32 in [0, 1] (the min-max-normalised sRGB image, not linearised);
    outputs NHWC float32 in (0, 1), relative linear HDR.
    """

    def __init__(self, cfg: ExpandNetConfig | None = None):
        super().__init__()
        self.cfg = cfg = cfg or ExpandNetConfig()
        f, fl = cfg.features, cfg.local_features
        self.local_net = [
            _pair(nn.Conv2d(3, f, 3, padding=1)),
            _pair(nn.Conv2d(f, fl, 3, padding=1)),
        ]
        mid = [nn.Conv2d(3 if i == 0 else f, f, 3) for i in range(cfg.mid_layers)]
        self.mid_net = [_pair(c) for c in mid[:-1]] + [mid[-1]]
        glob = [
            nn.Conv2d(3 if i == 0 else f, f, 3, stride=2, padding=1)
            for i in range(cfg.global_layers)
        ]
        last = cfg.global_size >> cfg.global_layers
        self.glob_net = [_pair(c) for c in glob] + [nn.Conv2d(f, f, last)]
        self.end_net = [_pair(nn.Conv2d(fl + 2 * f, f, 1)), nn.Conv2d(f, 3, 1)]

    def global_features(self, x: mx.array) -> mx.array:
        """(N, H, W, 3) -> (N, 1, 1, features) from the input resized to ``global_size``."""
        x = resize_bilinear(x, (self.cfg.global_size,) * 2)
        for (conv,) in self.glob_net[:-1]:
            x = selu(conv(x))
        return self.glob_net[-1](x)

    def local(self, x: mx.array) -> mx.array:
        """Local branch: (N, H, W, 3) -> (N, H, W, local_features), two 3x3 convs + SELU."""
        for (conv,) in self.local_net:
            x = selu(conv(x))
        return x

    def mid(self, x: mx.array) -> mx.array:
        """Dilated branch: (N, H, W, 3) -> (N, H, W, features), ``mid_layers`` 3x3 convs
        (dilation and zero padding ``dilation``), SELU after all but the last."""
        d = self.cfg.dilation
        for (conv,) in self.mid_net[:-1]:
            x = selu(dilated_conv(conv, x, d, d))
        return dilated_conv(self.mid_net[-1], x, d, d)

    def fuse(self, x: mx.array, glob: mx.array) -> mx.array:
        """The end net on concat(local, mid, glob); the constant global part is folded into
        the first 1x1 conv's bias instead of being broadcast and concatenated."""
        (first,), last = self.end_net
        fl, f = self.cfg.local_features, self.cfg.features
        w = first.weight.reshape(f, -1)
        bias = first.bias + glob @ w[:, fl + f :].T
        h = self.local(x) @ w[:, :fl].T + self.mid(x) @ w[:, fl : fl + f].T + bias
        return mx.sigmoid(selu(h) @ last.weight.reshape(3, f).T + last.bias)

    def __call__(self, x: mx.array) -> mx.array:
        """The released ``forward``: every branch zero-pads at the image border."""
        return self.fuse(x, self.global_features(x))

    def predict(self, x: mx.array) -> np.ndarray:
        """The released ``predict``: zero-pad by ``margin``, run tiles, keep their interiors.

        Args:
            x: (N, H, W, 3) float32 in [0, 1].
        Returns:
            (N, H, W, 3) float32 numpy array in (0, 1).
        """
        n, h, w, _ = x.shape
        m, t = self.cfg.margin, self.cfg.tile
        glob = self.global_features(x)
        xp = mx.pad(x, [(0, 0), (m, m), (m, m), (0, 0)])
        out = np.empty((n, h, w, 3), np.float32)
        for r in range(0, h, t):
            for c in range(0, w, t):
                r1, c1 = min(r + t, h), min(c + t, w)
                tile = self.fuse(xp[:, r : r1 + 2 * m, c : c1 + 2 * m], glob)
                out[:, r:r1, c:c1] = np.array(tile[:, m:-m, m:-m])
        return out


def resolve_weights(weights: str | Path | None = None) -> Path:
    """The weights file: ``weights``, else ``$MLX_HDR_EXPANDNET``; WeightsError if neither."""
    value = weights if weights is not None else os.environ.get(ENV_WEIGHTS)
    if not value:
        raise WeightsError(
            f"ExpandNet weights not given: set {ENV_WEIGHTS} to the released weights.pth "
            "(github.com/dmarnerides/hdr-expandnet)"
        )
    path = Path(value).expanduser().resolve()
    if not path.is_file():
        raise WeightsError("ExpandNet weights file not found", path)
    return path


@functools.lru_cache(maxsize=2)
def _load(path: str, mtime_ns: int) -> ExpandNet:
    model = ExpandNet()
    state = {k: torch_to_mlx_layout(k, v) for k, v in load_torch_checkpoint(path).items()}
    expected = {k: tuple(v.shape) for k, v in tree_flatten(model.parameters())}
    check_shapes({k: v.shape for k, v in state.items()}, expected, "ExpandNet weights", path)
    model.load_weights([(k, mx.array(v, mx.float32)) for k, v in state.items()])
    mx.eval(model.parameters())
    return model


def load_expandnet(weights: str | Path | None = None) -> ExpandNet:
    """The ExpandNet with the released weights (``weights.pth``), cached per file."""
    path = resolve_weights(weights)
    return _load(str(path), path.stat().st_mtime_ns)


def map_range(x: np.ndarray) -> np.ndarray:
    """The release's ``util.map_range``: min-max to [0, 1] over all pixels and channels."""
    return np.interp(x, [x.min(), x.max()], [0.0, 1.0]).astype(np.float32)


def expandnet2018(ldr: np.ndarray, weights: str | Path | None = None) -> np.ndarray:
    """ExpandNet LDR -> HDR, as the released ``expand.py`` computes it.

    Args:
        ldr: HxWx3 (or HxW grey) float display input in [0, 1], sRGB-encoded.
        weights: the released ``weights.pth``; default ``$MLX_HDR_EXPANDNET``.
    Returns:
        HxWx3 float32 scene-linear, relative scale: min-max normalised to [0, 1] like the
        release (so its darkest value is 0; align to a reference by one global factor). A
        flat photo (one value in every pixel and channel), which the release's min-max
        turns into white, gives the photo linearised.
    """
    x = np.asarray(ldr, np.float32)
    if x.ndim == 3 and x.shape[-1] == 1:
        x = x[..., 0]
    if x.ndim == 2:
        x = np.repeat(x[..., None], 3, axis=-1)
    if x.ndim != 3 or x.shape[-1] != 3:
        raise ValueError(f"expandnet2018 expects an HxWx3 image, got shape {x.shape}")
    model = load_expandnet(weights)  # missing weights are an error whatever the photo
    if x.max() == x.min():  # nothing to expand, and no range to map
        return srgb_to_linear(x)
    return map_range(model.predict(mx.array(map_range(x)[None]))[0])
