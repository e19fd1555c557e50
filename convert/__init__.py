"""PyTorch checkpoints (torchvision, lpips) -> MLX safetensors, without PyTorch."""

from convert.torch_pickle import load_torch_checkpoint

__all__ = ["load_torch_checkpoint"]
