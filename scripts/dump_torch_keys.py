"""Write the key/shape lists the converter checks against (needs torch + torchvision).

For each architecture this writes
* ``tests/fixtures/keys/<arch>.torch.json``: the PyTorch state dict's keys and shapes, as in
  the official checkpoint (torchvision builds the model; ``lpips_vgg`` has no torchvision
  model, so its list is read from the real file with the project's torch-free reader);
* ``mlx_hdr/convert/specs/<arch>.json``: the same after the converter's rules (MLX layout).

Run (torch env, plus the project venv for mlx):
    PYTHONPATH=.venv/lib/python3.11/site-packages /path/to/python-with-torch \
        scripts/dump_torch_keys.py [--lpips ../shared/weights/lpips_v0.1_vgg.pth]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mlx_hdr.convert.mapping import SPECS_DIR, map_state_dict  # noqa: E402
from mlx_hdr.convert.torch_pickle import load_torch_checkpoint  # noqa: E402

FIXTURES = ROOT / "tests" / "fixtures" / "keys"
SOURCES = {
    "mobilenet_v3_large": "torchvision.models.mobilenet_v3_large(weights=None)",
    "mobilenet_v2": "torchvision.models.mobilenet_v2(weights=None)",
    "vgg16": "torchvision.models.vgg16(weights=None)",
    "lpips_vgg": "lpips 0.1.4 lpips/weights/v0.1/vgg.pth",
}


def torch_shapes(arch: str, lpips_file: Path) -> dict[str, list[int]]:
    if arch == "lpips_vgg":
        return {k: list(v.shape) for k, v in load_torch_checkpoint(lpips_file).items()}
    import torchvision

    model = getattr(torchvision.models, arch)(weights=None)
    return {k: list(v.shape) for k, v in model.state_dict().items()}


def write(path: Path, arch: str, source: str, shapes: dict[str, list[int]]) -> None:
    lines = [f"    {json.dumps(k)}: {json.dumps(s)}" for k, s in shapes.items()]
    head = f'{{\n  "architecture": "{arch}",\n  "source": {json.dumps(source)},\n'
    path.write_text(head + '  "tensors": {\n' + ",\n".join(lines) + "\n  }\n}\n")
    print(f"{path.relative_to(ROOT)}: {len(shapes)} tensors")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--lpips", type=Path, default=ROOT.parent / "shared/weights/lpips_v0.1_vgg.pth"
    )
    args = parser.parse_args()
    FIXTURES.mkdir(parents=True, exist_ok=True)
    for arch, source in SOURCES.items():
        shapes = torch_shapes(arch, args.lpips)
        write(FIXTURES / f"{arch}.torch.json", arch, source, shapes)
        fake = {k: np.empty(s, np.float32) for k, s in shapes.items()}
        mlx = {k: list(v.shape) for k, v in map_state_dict(arch, fake).items()}
        write(SPECS_DIR / f"{arch}.json", arch, source + ", converter rules applied", mlx)


if __name__ == "__main__":
    main()
