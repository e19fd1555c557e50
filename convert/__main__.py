"""``python -m convert ARCH [SRC] [-o DST] [--download]``, see ``convert.convert_from``."""

from __future__ import annotations

import argparse
import sys

from convert.convert import DTYPES, convert_from
from convert.mapping import ARCHITECTURES
from mlx_hdr.errors import HDRError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m convert", description="PyTorch checkpoint -> MLX safetensors."
    )
    parser.add_argument("arch", choices=ARCHITECTURES)
    parser.add_argument("src", nargs="?", help="the .pth file (or use --download)")
    parser.add_argument("-o", "--output", help="a .safetensors file or a directory")
    parser.add_argument("--download", action="store_true", help="fetch the official file")
    parser.add_argument("--variant", help="which official weights, e.g. IMAGENET1K_V1")
    parser.add_argument("--dtype", default="float32", choices=tuple(DTYPES))
    args = parser.parse_args(argv)
    try:
        path = convert_from(
            args.arch, args.src, args.output, args.download, args.dtype, args.variant
        )
    except HDRError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
