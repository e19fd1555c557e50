"""PyTorch state-dict keys and layouts -> MLX, by rule, one small function per architecture.

Rules (the same for every architecture):

* ``num_batches_tracked`` BatchNorm counters are dropped;
* every 4-D ``*.weight`` is a conv kernel and goes from (O, I, kH, kW) to MLX's
  (O, kH, kW, I), decided by the key and rank, never by comparing shapes;
* names are kept (the MLX models use torchvision's attribute names), except where the
  architecture's rule renames them (LPIPS ``lin{k}.model.1.weight`` -> ``lins.{k}.weight``).

The result is then checked strictly against the architecture's expected key/shape spec
(``mlx_hdr/convert/specs/<arch>.json``, in MLX layout).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np

from mlx_hdr.errors import WeightsError
from mlx_hdr.models.model_io import check_shapes

SPECS_DIR = Path(__file__).resolve().parent / "specs"
LPIPS_LIN = re.compile(r"lin(\d+)\.model\.1\.weight")


def keep_all(key: str) -> str | None:
    """torchvision classification models: names are kept as they are."""
    return key


def features_only(key: str) -> str | None:
    """VGG16: keep the convolutional ``features.*``, drop the classifier."""
    return key if key.startswith("features.") else None


def lpips_lins(key: str) -> str | None:
    """LPIPS v0.1: ``lin{k}.model.1.weight`` (``model.0`` is a Dropout) -> ``lins.{k}.weight``."""
    match = LPIPS_LIN.fullmatch(key)
    return f"lins.{match.group(1)}.weight" if match else key


KEY_RULES: dict[str, Callable[[str], str | None]] = {
    "mobilenet_v3_large": keep_all,
    "mobilenet_v2": keep_all,
    "vgg16": features_only,
    "lpips_vgg": lpips_lins,
}
ARCHITECTURES = tuple(KEY_RULES)


def torch_to_mlx_layout(key: str, array: np.ndarray) -> np.ndarray:
    """Conv kernels (4-D ``*.weight``) (O, I, kH, kW) -> (O, kH, kW, I); others unchanged."""
    if array.ndim == 4 and key.endswith(".weight"):
        return np.ascontiguousarray(array.transpose(0, 2, 3, 1))
    return array


def mlx_to_torch_layout(key: str, array: np.ndarray) -> np.ndarray:
    """Inverse of :func:`torch_to_mlx_layout`."""
    if array.ndim == 4 and key.endswith(".weight"):
        return np.ascontiguousarray(array.transpose(0, 3, 1, 2))
    return array


def _rule(arch: str) -> Callable[[str], str | None]:
    try:
        return KEY_RULES[arch]
    except KeyError:
        known = ", ".join(ARCHITECTURES)
        raise WeightsError(f"unknown architecture {arch!r} (known: {known})") from None


def mapped_keys(arch: str, keys) -> dict[str, str]:
    """Torch key -> MLX key under ``arch``'s rules, for the ``keys`` that are kept."""
    rule = _rule(arch)
    out: dict[str, str] = {}
    for key in keys:
        new_key = None if key.endswith("num_batches_tracked") else rule(key)
        if new_key is None:
            continue
        if new_key in out.values():
            raise WeightsError(f"{arch}: two checkpoint tensors map to {new_key!r}")
        out[key] = new_key
    return out


def map_state_dict(arch: str, state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Apply ``arch``'s rules to a torch-layout state dict; no spec check (any width works)."""
    keys = mapped_keys(arch, state)
    return {new: torch_to_mlx_layout(key, np.asarray(state[key])) for key, new in keys.items()}


def mlx_shape(key: str, shape: tuple[int, ...]) -> tuple[int, ...]:
    """A torch tensor's shape in MLX's layout (:func:`torch_to_mlx_layout`)."""
    if len(shape) == 4 and key.endswith(".weight"):
        return (shape[0], shape[2], shape[3], shape[1])
    return tuple(shape)


def load_spec(arch: str) -> dict[str, tuple[int, ...]]:
    """The expected MLX key -> shape table of a full-size ``arch`` checkpoint."""
    _rule(arch)
    path = SPECS_DIR / f"{arch}.json"
    try:
        table = json.loads(path.read_text())["tensors"]
    except (OSError, ValueError, KeyError) as exc:
        raise WeightsError(f"missing or unreadable key spec ({exc})", path) from None
    return {key: tuple(shape) for key, shape in table.items()}


def convert_state_dict(
    arch: str, state: dict[str, np.ndarray], source: str | Path | None = None
) -> dict[str, np.ndarray]:
    """Map a torch state dict to MLX and check it against ``arch``'s spec.

    Raises ``WeightsError`` naming missing, unexpected and mis-shaped keys (first few + counts),
    with ``source`` as the file in the message.
    """
    arrays = map_state_dict(arch, state)
    actual = {key: tuple(a.shape) for key, a in arrays.items()}
    check_shapes(actual, load_spec(arch), what=f"{arch} checkpoint", path=source)
    return arrays


def spec_keeper(arch: str):
    """A ``keep`` for ``load_torch_checkpoint``: the torch keys ``arch`` keeps, after checking
    their shapes against its spec as :func:`convert_state_dict` does (so a checkpoint that
    does not fit is refused before its tensors are built, and dropped ones never are)."""

    def keep(shapes: dict[str, tuple[int, ...]]) -> set[str]:
        keys = mapped_keys(arch, shapes)
        actual = {new: mlx_shape(key, shapes[key]) for key, new in keys.items()}
        check_shapes(actual, load_spec(arch), what=f"{arch} checkpoint")
        return set(keys)

    return keep
