"""The CPU backend: process settings, faster layer formulations, work split over CPU streams.

The models are plain MLX (``nn.Conv2d``, ``nn.InstanceNorm``, blocks with one ``__call__``);
everything here is applied from outside and changes speed, not results (equal to float32
rounding, tested in ``tests/test_backend_*.py``):

- :func:`setup` (modules :mod:`.blas`, :mod:`.malloc`): process-wide settings an entry point
  opts in to, *before anything imports* ``mlx.core``: OpenBLAS for MLX's GEMMs, glibc malloc
  keeping freed blocks. ``import mlx_hdr`` does neither.
- :func:`accelerate` (modules :mod:`.cpu`, :mod:`.flatconv`, :mod:`.winograd`,
  :mod:`.streams`): on the CPU, swaps a built model's convs, InstanceNorms and splittable
  blocks for subclasses that compute the same faster; call it once the model is built or
  loaded.
- :func:`infer` (module :mod:`.streams`): the inference forward, with the blocks split by
  channels over two CPU streams where that pays.

Switches (environment variables, ``0`` turns the path off, as do ``false``, ``off`` and
``no``; for benchmarks and checks):

| variable | path |
|---|---|
| ``MLX_HDR_ACCELERATE`` | every layer and block twin of :func:`accelerate` (the plain model) |
| ``MLX_HDR_OPENBLAS`` | OpenBLAS preload (or a path to another BLAS library) |
| ``MLX_HDR_MALLOC`` | glibc malloc settings |
| ``MLX_HDR_FLATCONV`` | stride-1 k×k convs as shifted GEMMs |
| ``MLX_HDR_WINOGRAD`` | wide 3×3 convs by Winograd F(4×4, 3×3) |
| ``MLX_HDR_INFER_STREAMS`` | the channel split in :func:`infer` |

This file imports no MLX at module level, so ``from mlx_hdr import backend; backend.setup()``
works before ``mlx.core`` is loaded; the functions that need MLX import it when called.
"""

from __future__ import annotations

from mlx_hdr.backend.blas import blas_threads, preload_openblas
from mlx_hdr.backend.malloc import tune_malloc
from mlx_hdr.backend.switches import switched_off

__all__ = ["accelerate", "blas_threads", "infer", "setup"]


def setup() -> None:
    """Opt this process in: preload OpenBLAS (Linux, when installed) and tune glibc malloc.

    Call it first, before anything imports ``mlx.core`` (else MLX keeps its bundled BLAS,
    with a warning). Idempotent.
    """
    preload_openblas()
    tune_malloc()


def accelerate(model):
    """Give ``model``'s layers and blocks their CPU twins, in place; returns ``model``.

    Like ``mlx.nn.quantize``, it walks the module tree and swaps layers, but each twin is a
    subclass that only replaces ``__call__`` (no state, same results), so the swap is a
    change of class of the same object: parameters, keys, frozen flags and any outside
    reference stay as they were. Convs and InstanceNorms: :data:`.cpu.LAYERS`; blocks that
    :func:`infer` splits over streams: :data:`.streams.BLOCKS`. Only when the default
    device is the CPU and ``MLX_HDR_ACCELERATE`` does not turn it off (elsewhere the model
    is returned unchanged); idempotent.
    """
    import mlx.core as mx

    from mlx_hdr.backend.cpu import LAYERS
    from mlx_hdr.backend.streams import BLOCKS

    if mx.default_device() != mx.cpu or switched_off("MLX_HDR_ACCELERATE"):
        return model
    twins = LAYERS | BLOCKS
    for _, module in model.named_modules():
        if type(module) in twins:
            module.__class__ = twins[type(module)]
    return model


def infer(model, x, white=None):
    """``model(x)`` (``model(x, white)`` where given) for inference, evaluated; see
    :func:`.streams.infer`."""
    from mlx_hdr.backend.streams import infer as split_infer

    return split_infer(model, x, white)
