"""Make the ExpandNet test fixture with a PyTorch copy of the released code (needs torch).

    $TORCH_PYTHON scripts/expandnet_reference.py \
        --weights ../shared/peers/expandnet/weights.pth \
        --image ../shared/data/eval-public/ilm_candleglass/input.jpg

The torch module below follows dmarnerides/hdr-expandnet (``model.py``: ``ExpandNet.forward`` and
the tiled ``ExpandNet.predict``; ``expand.py``/``util.py``: per-image min-max of the 8-bit input,
min-max of the prediction). It crops a small window around the first fully clipped pixel and saves
``tests/fixtures/expandnet_candleglass.npz`` with: ``ldr`` (uint8 HxWx3 RGB crop), ``forward``
(``forward`` of the min-max input, HWC), ``predict`` (``predict`` with a small patch size so the
stitching is exercised, HWC), ``expand`` (the released pipeline's output, HWC in [0, 1]) and
``glob`` (the 64 global features).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

OUT = Path(__file__).resolve().parents[1] / "tests/fixtures/expandnet_candleglass.npz"
CROP = (45, 61)  # odd H, W exercise padding paths
PATCH = 32  # released default is 256; small here so predict stitches many tiles


def _layer(cin: int, cout: int, k: int, s: int, p: int, d: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, s, p, d), nn.SELU())


class ExpandNet(nn.Module):
    """Marnerides et al. 2018: local, dilated (mid) and global branches fused by 1x1 convs."""

    def __init__(self):
        super().__init__()
        self.local_net = nn.Sequential(_layer(3, 64, 3, 1, 1), _layer(64, 128, 3, 1, 1))
        mid = [_layer(3, 64, 3, 1, 2, 2)] + [_layer(64, 64, 3, 1, 2, 2) for _ in range(2)]
        self.mid_net = nn.Sequential(*mid, nn.Conv2d(64, 64, 3, 1, 2, 2))
        glob = [_layer(3, 64, 3, 2, 1)] + [_layer(64, 64, 3, 2, 1) for _ in range(5)]
        self.glob_net = nn.Sequential(*glob, nn.Conv2d(64, 64, 4, 1, 0))
        self.end_net = nn.Sequential(_layer(256, 64, 1, 1, 0), nn.Conv2d(64, 3, 1), nn.Sigmoid())

    def glob(self, x: torch.Tensor) -> torch.Tensor:
        resized = F.interpolate(x, (256, 256), mode="bilinear", align_corners=False)
        return self.glob_net(resized)

    def fuse(self, x: torch.Tensor, glob: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        cat = [self.local_net(x), self.mid_net(x), glob.expand(b, 64, h, w)]
        return self.end_net(torch.cat(cat, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fuse(x, self.glob(x))

    def predict(self, x: torch.Tensor, patch: int, overlap: int = 20) -> torch.Tensor:
        """The released tiled inference: zero-pad by overlap/2, stitch tile interiors."""
        glob, skip, step = self.glob(x), overlap // 2, patch - overlap
        result = x.clone()
        xp = F.pad(x, (skip, skip, skip, skip))
        ph, pw = xp.shape[-2:]
        for h0 in range(0, int(np.ceil(ph / step)) * step, step):
            for w0 in range(0, int(np.ceil(pw / step)) * step, step):
                h1, w1 = min(h0 + patch, ph), min(w0 + patch, pw)
                res = self.fuse(xp[:, :, h0:h1, w0:w1], glob)[:, :, skip:-skip, skip:-skip]
                he, we = min(h0 + step, ph), min(w0 + step, pw)
                result[:, :, h0:he, w0:we] = res
        return result


def map_range(x: np.ndarray) -> np.ndarray:
    """util.map_range: per-image min-max to [0, 1] (all channels together)."""
    return np.interp(x, [x.min(), x.max()], [0, 1]).astype(x.dtype)


def crop_clipped(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A ``size`` window centred on the first fully clipped pixel (clamped to the image)."""
    ys, xs = np.nonzero((img == 255).all(-1))
    cy, cx = (ys[0], xs[0]) if len(ys) else (img.shape[0] // 2, img.shape[1] // 2)
    y0 = int(np.clip(cy - size[0] // 2, 0, img.shape[0] - size[0]))
    x0 = int(np.clip(cx - size[1] // 2, 0, img.shape[1] - size[1]))
    return img[y0 : y0 + size[0], x0 : x0 + size[1]]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--weights", required=True)
    ap.add_argument("--image", required=True)
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args()
    net = ExpandNet().eval()
    net.load_state_dict(torch.load(args.weights, map_location="cpu", weights_only=True))
    ldr = crop_clipped(np.asarray(Image.open(args.image).convert("RGB")), CROP)
    x = torch.from_numpy(map_range(ldr.astype(np.float32)).transpose(2, 0, 1)[None].copy())
    with torch.no_grad():
        fwd, glob = net(x), net.glob(x)
        pred, pred_full = net.predict(x, PATCH), net.predict(x, 256)

    def hwc(t: torch.Tensor) -> np.ndarray:
        return t[0].numpy().transpose(1, 2, 0).astype(np.float32)

    print("predict: patch 32 vs 256 max abs diff", float((pred - pred_full).abs().max()))
    print("predict vs forward max abs diff", float((pred - fwd).abs().max()))
    np.savez_compressed(
        args.out,
        ldr=ldr,
        forward=hwc(fwd),
        predict=hwc(pred),
        expand=map_range(hwc(pred)),
        glob=glob.reshape(-1).numpy(),
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
