"""PyTorch checkpoint -> MLX safetensors: read strictly, map by rule, check, write atomically."""

from __future__ import annotations

from pathlib import Path

import mlx.core as mx
import numpy as np

from mlx_hdr.convert.download import SOURCES, download_checkpoint, sha256_file
from mlx_hdr.convert.mapping import ARCHITECTURES, convert_state_dict, load_spec, spec_keeper
from mlx_hdr.convert.torch_pickle import load_torch_checkpoint
from mlx_hdr.errors import UsageError, WeightsError
from mlx_hdr.io.atomic import is_file_name, save_safetensors_atomic
from mlx_hdr.models.model_io import FORMAT, check_finite, converted_path

CONVERTER_VERSION = "1"
DTYPES = {"float32": mx.float32, "float16": mx.float16, "bfloat16": mx.bfloat16}


def output_path(arch: str, dst: str | Path | None) -> Path:
    """``dst`` as a file (``*.safetensors``) or a directory; default ``converted_path(arch)``.

    ``UsageError`` for a file name of another type (``out.txt``): it is not made a folder.
    """
    if dst is None:
        return converted_path(arch)
    dst = Path(dst)
    if not is_file_name(dst):
        if dst.exists() and not dst.is_dir():
            raise UsageError(
                "exists and is not a folder: name a .safetensors file or a folder", dst
            )
        return dst / f"{arch}.safetensors"
    if dst.suffix != ".safetensors":
        raise UsageError("cannot write this type: name a .safetensors file or a folder", dst)
    return dst


def convert_checkpoint(
    arch: str, src: str | Path, dst: str | Path | None = None, dtype: str = "float32"
) -> Path:
    """Convert the PyTorch checkpoint ``src`` of ``arch`` to MLX safetensors; return its path.

    ``arch``: ``mobilenet_v3_large``, ``mobilenet_v2``, ``vgg16`` or ``lpips_vgg``. ``dst``: a
    ``.safetensors`` file or a directory (default ``mlx_hdr.models.model_io.converted_path(arch)``).
    Floating tensors are stored as ``dtype``; conv kernels in MLX layout (O, kH, kW, I).
    Metadata: ``format``, ``architecture``, ``source_file``, ``source_sha256``,
    ``converter_version``. Raises ``WeightsError`` (one line) on any bad input; nothing is
    written then.
    """
    if dtype not in DTYPES:
        raise WeightsError(f"unsupported dtype {dtype!r} (choose from {', '.join(DTYPES)})")
    load_spec(arch)  # unknown architecture: fail before reading a large file
    dst = output_path(arch, dst)
    src = Path(src)
    state = load_torch_checkpoint(src, keep=spec_keeper(arch))  # named by the loader
    arrays = convert_state_dict(arch, state, source=src)
    target = DTYPES[dtype]
    ints = sorted(k for k, a in arrays.items() if not np.issubdtype(a.dtype, np.floating))
    if ints:
        raise WeightsError(f"{len(ints)} weights are not floating point, e.g. {ints[:3]}", src)
    values = {key: mx.array(array) for key, array in arrays.items()}
    check_finite(values, src)  # NaN or inf in the file
    out = {key: value.astype(target) for key, value in values.items()}
    try:
        check_finite(out, src)
    except WeightsError:
        raise WeightsError(f"weights beyond {dtype}'s range: convert to float32", src) from None
    metadata = {
        "format": FORMAT,
        "architecture": arch,
        "source_file": src.name,
        "source_sha256": sha256_file(src),
        "converter_version": CONVERTER_VERSION,
    }
    return save_safetensors_atomic(dst, out, metadata)


def convert_from(
    arch: str,
    src: str | Path | None = None,
    dst: str | Path | None = None,
    download: bool = False,
    dtype: str = "float32",
    variant: str | None = None,
) -> Path:
    """What ``mlx-hdr convert`` does: convert ``src``, or the official file with ``download``."""
    if arch not in ARCHITECTURES:
        raise UsageError(f"unknown architecture {arch!r} (known: {', '.join(ARCHITECTURES)})")
    if (src is None) == (not download):
        raise UsageError("give either a checkpoint file or --download (exactly one)")
    if variant is not None and not download:
        raise UsageError("--variant names the official weights to --download")
    if variant is not None and variant not in SOURCES.get(arch, {variant: None}):
        known = ", ".join(SOURCES[arch])
        raise UsageError(f"{arch} has no variant {variant!r} (known: {known})")
    if dtype not in DTYPES:  # refused before the download
        raise UsageError(f"unsupported dtype {dtype!r} (choose from {', '.join(DTYPES)})")
    dst = output_path(arch, dst)  # a bad output name: refused before the download
    if download:
        src = download_checkpoint(arch, variant)
    return convert_checkpoint(arch, src, dst, dtype)
