"""``mlx-hdr convert``: PyTorch checkpoint -> MLX safetensors (``mlx_hdr.convert.convert_from``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mlx_hdr.cli.common import not_empty


def register(app: typer.Typer) -> None:
    """Add the ``convert`` command to ``app``."""
    app.command("convert")(convert_command)


def convert_command(
    arch: Annotated[
        str,
        typer.Argument(help="mobilenet_v3_large, mobilenet_v2, vgg16 or lpips_vgg."),
    ],
    src: Annotated[
        str | None, typer.Argument(help="The PyTorch .pth file (or use --download).")
    ] = None,
    output: Annotated[
        str | None,
        typer.Option("-o", "--output", help="A .safetensors file or a directory."),
    ] = None,
    download: Annotated[
        bool, typer.Option("--download", help="Fetch the official checkpoint first.")
    ] = False,
    variant: Annotated[
        str | None, typer.Option(help="Official weights variant, e.g. IMAGENET1K_V2.")
    ] = None,
    dtype: Annotated[str, typer.Option(help="float32, float16 or bfloat16.")] = "float32",
) -> None:
    """Convert a torchvision / lpips checkpoint to MLX safetensors (no PyTorch needed)."""
    from mlx_hdr.convert import convert_from

    not_empty({"SRC": src, "--output": output})
    src_path, out_path = (None if p is None else Path(p) for p in (src, output))
    typer.echo(convert_from(arch, src_path, out_path, download, dtype, variant))
