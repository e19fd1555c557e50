"""Make the MobileNetV3-Large test fixture from torchvision's own model (needs torch).

    $TORCH_PYTHON scripts/make_v3_fixture.py

Builds torchvision's ``mobilenet_v3_large`` at a reduced width with fixed random weights
(randomised BatchNorm statistics too), runs it in eval mode on a fixed 1x3x64x96 input and
saves, in ``tests/fixtures/mobilenet_v3_large_w050.npz``: the state dict in torch layout,
quantised to keep the file small (``state/<key>`` int8 and ``scale/<key>``; the weights are
``float32(q) * scale`` in float32, in the reference model too), the NHWC input, the C1..C5
features (NHWC) and the logits.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torchvision.models.mobilenetv3 import MobileNetV3, _mobilenet_v3_conf

WIDTH_MULT = 0.5
NUM_CLASSES = 10
FEATURE_INDICES = (1, 3, 6, 12, 16)  # C1..C5, strides 2..32
OUT = Path(__file__).resolve().parents[1] / "tests/fixtures/mobilenet_v3_large_w050.npz"


def build() -> tuple[MobileNetV3, dict[str, np.ndarray]]:
    torch.manual_seed(0)
    setting, last_channel = _mobilenet_v3_conf("mobilenet_v3_large", width_mult=WIDTH_MULT)
    model = MobileNetV3(setting, last_channel, num_classes=NUM_CLASSES).eval()
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.weight.uniform_(0.5, 1.5)
                module.bias.normal_(0.0, 0.2)
                module.running_mean.normal_(0.0, 0.2)
                module.running_var.uniform_(0.5, 2.0)
            elif isinstance(module, torch.nn.Linear):
                module.bias.normal_(0.0, 0.1)
        stored = {}
        for key, tensor in model.state_dict().items():
            if tensor.is_floating_point():
                q, scale = quantize(tensor.numpy())
                tensor.copy_(torch.from_numpy(q.astype(np.float32) * scale))
                stored[f"state/{key}"], stored[f"scale/{key}"] = q, scale
    return model, stored


def quantize(array: np.ndarray) -> tuple[np.ndarray, np.float32]:
    """``array`` ~ ``q * scale`` with q int8 and a float32 scale."""
    scale = np.float32(max(np.abs(array).max(), 1e-8) / 127)
    return np.round(array / scale).astype(np.int8), scale


def main() -> None:
    model, arrays = build()
    x = torch.randn(1, 3, 64, 96, generator=torch.Generator().manual_seed(1))
    feats, h = [], x
    with torch.no_grad():
        for i, layer in enumerate(model.features):
            h = layer(h)
            if i in FEATURE_INDICES:
                feats.append(h)
        logits = model(x)
    arrays["input"] = x.permute(0, 2, 3, 1).numpy()
    for i, f in enumerate(feats):
        arrays[f"feature_{i}"] = f.permute(0, 2, 3, 1).numpy()
    arrays["logits"] = logits.numpy()
    arrays["width_mult"] = np.array(WIDTH_MULT)
    arrays["num_classes"] = np.array(NUM_CLASSES)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(OUT, **arrays)
    n = sum(v.numel() for v in model.state_dict().values())
    print(f"{OUT}: {n} parameters, {OUT.stat().st_size / 1e6:.2f} MB")
    print("channels", [f.shape[1] for f in feats], "logits", logits.shape)


if __name__ == "__main__":
    main()
