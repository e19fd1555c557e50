"""PyTorch twin of the hybrid autoencoder and LPIPS loss, for speed comparisons only.

Same architecture as ``mlx_hdr.models.hybrid.HybridAutoencoder`` (MobileNetV2 encoder,
InstanceNorm decoder, PixelShuffle upsampling, input skip) and ``mlx_hdr.models.lpips.LPIPS``
(VGG16 v0.1), with the same parameter names, so MLX weights load into it with
:func:`load_mlx_params` (conv weights transposed from ``(O, kH, kW, I)`` to ``(O, I, kH, kW)``).
Tensors here are NCHW. Needs torch + torchvision (the ``bench`` extra); never imported by
the package.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import mobilenet_v2, vgg16

FEATURE_INDICES = (1, 3, 6, 13, 18)  # MobileNetV2 C1..C5
VGG_TAPS = (3, 8, 15, 22, 29)  # relu1_2 .. relu5_3
LPIPS_SHIFT = (-0.030, -0.088, -0.188)
LPIPS_SCALE = (0.458, 0.448, 0.450)


class MobileNetV2Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = mobilenet_v2().features[: FEATURE_INDICES[-1] + 1]
        self.feature_channels = (16, 24, 32, 96, 1280)

    def features_at(self, x):
        outs = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in FEATURE_INDICES:
                outs.append(x)
        return outs


class ConvBlock(nn.Module):
    def __init__(self, in_ch, out_ch, first_kernel=3):
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, first_kernel, padding=first_kernel // 2)
        self.norm1 = nn.InstanceNorm2d(out_ch, affine=True)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1)
        self.norm2 = nn.InstanceNorm2d(out_ch, affine=True)

    def forward(self, x):
        x = F.relu(self.norm1(self.conv1(x)))
        return F.relu(self.norm2(self.conv2(x)))


def binomial_blur(x):
    """Separable [1, 2, 1]/4 filter with edge padding (``hybrid.binomial_blur``)."""
    x = F.pad(x, (0, 0, 1, 1), mode="replicate")
    x = (x[:, :, :-2] + 2.0 * x[:, :, 1:-1] + x[:, :, 2:]) * 0.25
    x = F.pad(x, (1, 1, 0, 0), mode="replicate")
    return (x[..., :-2] + 2.0 * x[..., 1:-1] + x[..., 2:]) * 0.25


class Upsample2x(nn.Module):
    """PixelShuffle ×2, then the binomial blur of the default ``pixelshuffle_icnr_blur``."""

    def __init__(self, in_ch, out_ch, blur=True):
        super().__init__()
        self.conv = nn.Conv2d(in_ch, 4 * out_ch, 3, padding=1)
        self.blur = blur

    def forward(self, x):
        y = F.pixel_shuffle(self.conv(x), 2)
        return binomial_blur(y) if self.blur else y


class HybridTwin(nn.Module):
    """NCHW ImageNet-normalised input -> NCHW [-1, 1]; the encoder is frozen."""

    def __init__(self, decoder_channels=(192, 128, 64, 32, 24, 16)):
        super().__init__()
        d = decoder_channels
        self.encoder = MobileNetV2Encoder().eval().requires_grad_(False)
        skips = self.encoder.feature_channels
        self.bottleneck = ConvBlock(skips[4], d[0], first_kernel=1)
        self.ups = nn.ModuleList([Upsample2x(d[0], d[1])])
        self.blocks = nn.ModuleList()
        for k, skip in enumerate(reversed(skips[:4])):
            self.blocks.append(ConvBlock(d[k + 1] + skip, d[k + 1]))
            self.ups.append(Upsample2x(d[k + 1], d[k + 2]))
        self.head = ConvBlock(d[5] + 3, d[5])
        self.out = nn.Conv2d(d[5], 3, 1)

    def train(self, mode=True):
        super().train(mode)
        self.encoder.eval()  # frozen BN statistics, like the MLX model
        return self

    def forward(self, x):
        h, w = x.shape[2:]
        ph, pw = -h % 32, -w % 32
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph), mode="reflect")
        with torch.no_grad():
            feats = self.encoder.features_at(x)
        y = self.ups[0](self.bottleneck(feats[4]))
        for k, block in enumerate(self.blocks):
            y = self.ups[k + 1](block(torch.cat([y, feats[3 - k]], dim=1)))
        y = torch.cat([y, x], dim=1)
        return torch.tanh(self.out(self.head(y)))[:, :, :h, :w]


class LPIPSTwin(nn.Module):
    """LPIPS v0.1 (VGG16) as the ``lpips`` package computes it; frozen."""

    def __init__(self):
        super().__init__()
        self.net = nn.Module()
        self.net.features = vgg16().features[:30]
        self.lins = nn.ModuleList(nn.Conv2d(c, 1, 1, bias=False) for c in (64, 128, 256, 512, 512))
        self.register_buffer("shift", torch.tensor(LPIPS_SHIFT).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor(LPIPS_SCALE).view(1, 3, 1, 1))
        self.eval().requires_grad_(False)

    def _taps(self, x):
        outs = []
        for i, layer in enumerate(self.net.features):
            x = layer(x)
            if i in VGG_TAPS:
                outs.append(x)
        return outs

    def forward(self, x, y):
        fx = self._taps((x - self.shift) / self.scale)
        fy = self._taps((y - self.shift) / self.scale)
        total = 0.0
        for lin, a, b in zip(self.lins, fx, fy, strict=True):
            a = a / (a.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
            b = b / (b.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
            total = total + lin((a - b) ** 2).mean(dim=(1, 2, 3))
        return total


def hybrid_loss(pred, target, lpips, l1_weight=2.0, lpips_weight=3.0):
    """λ_L1·L1 + λ_LPIPS·mean LPIPS, as ``mlx_hdr.train.loss.hybrid_loss``."""
    return l1_weight * (pred - target).abs().mean() + lpips_weight * lpips(pred, target).mean()


def load_mlx_params(
    module: nn.Module, params: dict[str, np.ndarray], ignore=("encoder.classifier",)
):
    """Load MLX-named arrays (NHWC conv layout) into a twin, strictly (keys under ``ignore``
    are skipped: the twin's encoder has no classifier)."""
    params = {k: v for k, v in params.items() if not k.startswith(tuple(ignore))}
    state = module.state_dict()
    buffers = {"shift", "scale"}
    missing = sorted(k for k in set(state) - set(params) - buffers if "num_batches" not in k)
    extra = sorted(set(params) - set(state))
    if missing or extra:
        raise KeyError(f"missing {missing[:5]}, unexpected {extra[:5]}")
    new = {}
    for key, ref in state.items():
        if key not in params:
            new[key] = ref
            continue
        arr = np.asarray(params[key], np.float32)
        if arr.ndim == 4:
            arr = arr.transpose(0, 3, 1, 2)
        if tuple(arr.shape) != tuple(ref.shape):
            raise ValueError(f"{key}: shape {arr.shape} != {tuple(ref.shape)}")
        new[key] = torch.from_numpy(np.ascontiguousarray(arr))
    module.load_state_dict(new)


def compare(npz_path: str) -> str:
    """Max |difference| of the twin vs MLX outputs saved by ``benchmark.py --check-twin``."""
    ref = np.load(npz_path)
    model, lpips = HybridTwin().eval(), LPIPSTwin()
    load_mlx_params(model, {k[6:]: ref[k] for k in ref.files if k.startswith("model.")})
    load_mlx_params(lpips, {k[6:]: ref[k] for k in ref.files if k.startswith("lpips.")})
    x = torch.from_numpy(ref["x"]).permute(0, 3, 1, 2)
    with torch.no_grad():
        y = model(x)
        d = lpips(y, torch.tanh(x))
    y_err = float((y.permute(0, 2, 3, 1) - torch.from_numpy(ref["y"])).abs().max())
    d_err = float((d - torch.from_numpy(ref["d"])).abs().max())
    return f"twin vs MLX: model output max|diff| {y_err:.2e}, LPIPS max|diff| {d_err:.2e}"
