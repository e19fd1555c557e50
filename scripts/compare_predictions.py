"""Check that a change leaves predictions unchanged: run ``mlx-hdr predict`` on every case of
a dataset (``<case>/input.*``), write float32 EXRs, and compare two such folders.

    python scripts/compare_predictions.py write ../shared/data/eval-public before/ \\
        --model model.safetensors
    # ... change the code ...
    python scripts/compare_predictions.py write ../shared/data/eval-public after/ \\
        --model model.safetensors
    python scripts/compare_predictions.py compare before/ after/ --rtol 1e-4

``compare`` prints the largest absolute difference of each case relative to the case's
largest value and exits 1 when one exceeds ``--rtol``. Pass the same ``--model`` file to
both runs (the bundled model may differ between commits).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import numpy as np

from mlx_hdr.io.image_io import read_hdr

LDR_NAMES = ("input.jpg", "input.jpeg", "input.png", "input.tif", "input.tiff")


def cases(dataset: Path) -> dict[str, Path]:
    """``{case name: input file}`` of a ``<case>/input.*`` dataset."""
    found = {}
    for case in sorted(p for p in dataset.iterdir() if p.is_dir()):
        inputs = [case / n for n in LDR_NAMES if (case / n).is_file()]
        if inputs:
            found[case.name] = inputs[0]
    return found


def write(dataset: Path, out: Path, model: str | None) -> None:
    out.mkdir(parents=True, exist_ok=True)
    extra = ["--model", model] if model else []
    for name, src in cases(dataset).items():
        cli = [sys.executable, "-c", "from mlx_hdr.cli import main; main()"]  # not PATH's
        cmd = [*cli, "predict", str(src), "-o", str(out / f"{name}.exr"), "--float"]
        done = subprocess.run(cmd + extra, capture_output=True, text=True)
        if done.returncode:
            sys.exit(f"{src}: mlx-hdr predict failed: {done.stderr.strip()}")
        print(f"wrote {out / name}.exr")


def compare(a: Path, b: Path, rtol: float) -> int:
    found = sorted(a.glob("*.exr"))
    if not found:
        sys.exit(f"error: {a}: no EXRs to compare (write them first)")
    if missing := [p.name for p in found if not (b / p.name).is_file()]:
        sys.exit(f"error: {b}: lacks {', '.join(missing)}")
    worst = 0.0
    for path in found:
        x, y = read_hdr(path), read_hdr(b / path.name)
        rel = float(np.abs(x - y).max() / max(float(np.abs(x).max()), 1e-12))
        worst = max(worst, rel)
        print(f"{path.stem}: max |diff| / max = {rel:.3g}")
    print(f"worst {worst:.3g} (tolerance {rtol:g})")
    return int(worst > rtol)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("write", help="predict every case into a folder of EXRs")
    w.add_argument("dataset", type=Path)
    w.add_argument("out", type=Path)
    w.add_argument("--model", help="model file (default: the bundled one)")
    c = sub.add_parser("compare", help="compare two folders written by 'write'")
    c.add_argument("a", type=Path)
    c.add_argument("b", type=Path)
    c.add_argument("--rtol", type=float, default=1e-4)
    args = ap.parse_args()
    if args.cmd == "write":
        write(args.dataset, args.out, args.model)
    else:
        sys.exit(compare(args.a, args.b, args.rtol))


if __name__ == "__main__":
    main()
