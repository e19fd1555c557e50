"""PyTorch checkpoints (torchvision, lpips) -> MLX safetensors, without PyTorch."""

from mlx_hdr.convert.convert import convert_checkpoint, convert_from
from mlx_hdr.convert.torch_pickle import load_torch_checkpoint

__all__ = ["convert_checkpoint", "convert_from", "load_torch_checkpoint"]
