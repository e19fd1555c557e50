"""PyTorch checkpoints (torchvision, lpips) -> MLX safetensors, without PyTorch."""

from convert.convert import convert_checkpoint, convert_from
from convert.torch_pickle import load_torch_checkpoint

__all__ = ["convert_checkpoint", "convert_from", "load_torch_checkpoint"]
