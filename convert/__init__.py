"""PyTorch checkpoints (torchvision, lpips) -> MLX safetensors, without PyTorch."""

import mlx_hdr  # noqa: F401  (first: preloads OpenBLAS before mlx.core)
from convert.convert import convert_checkpoint, convert_from
from convert.torch_pickle import load_torch_checkpoint

__all__ = ["convert_checkpoint", "convert_from", "load_torch_checkpoint"]
