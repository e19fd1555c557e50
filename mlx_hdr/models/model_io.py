"""Model files: where converted weights live, strict loading, saving and loading models.

Two kinds of MLX safetensors files, both keyed by the models' parameter names (conv kernels
in MLX layout (O, kH, kW, I / groups)):

- converted weights (``mlx-hdr convert``, the ``convert`` package): metadata
  ``format = mlx-hdr`` and ``architecture = <arch>``; one backbone or LPIPS head each;
- saved models (:func:`save_model`): metadata ``format = mlx-hdr-hybrid``, ``version = 1``
  and the :class:`~mlx_hdr.models.hybrid.HybridConfig` as JSON; every weight, the encoder's
  included.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Mapping
from pathlib import Path

import mlx.core as mx
import mlx.nn as nn
from mlx.utils import tree_flatten

from mlx_hdr.errors import WeightsError
from mlx_hdr.io.atomic import save_safetensors_atomic
from mlx_hdr.models.hybrid import HybridAutoencoder, HybridConfig

FORMAT = "mlx-hdr"  # converted weights
MODEL_FORMAT = "mlx-hdr-hybrid"  # saved models
CHECKPOINT_FORMAT = "mlx-hdr-train-checkpoint"  # training checkpoints (train/checkpoint.py)
MODEL_VERSION = "1"
SHOW = 3  # how many names an error message lists per category


def weights_dir() -> Path:
    """Directory of converted weights: ``$MLX_HDR_HOME``, default ``~/.cache/mlx-hdr``."""
    return Path(os.environ.get("MLX_HDR_HOME") or "~/.cache/mlx-hdr").expanduser()


def converted_path(arch: str) -> Path:
    """Default converted-weights file of ``arch``: ``weights_dir()/<arch>.safetensors``."""
    return weights_dir() / f"{arch}.safetensors"


def _names(keys: list[str]) -> str:
    shown = ", ".join(keys[:SHOW])
    return shown + (f", ... (+{len(keys) - SHOW})" if len(keys) > SHOW else "")


def check_shapes(
    actual: Mapping[str, tuple[int, ...]],
    expected: Mapping[str, tuple[int, ...]],
    what: str = "weights",
    path: str | Path | None = None,
) -> None:
    """Raise ``WeightsError`` unless ``actual`` has exactly ``expected``'s keys and shapes.

    The one-line message counts missing, unexpected and mis-shaped keys and names the first few.
    """
    missing = sorted(set(expected) - set(actual))
    unexpected = sorted(set(actual) - set(expected))
    shapes = {k: (tuple(actual[k]), tuple(expected[k])) for k in actual if k in expected}
    wrong = sorted(k for k, (got, want) in shapes.items() if got != want)
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing ({_names(missing)})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected ({_names(unexpected)})")
    if wrong:
        shown = [f"{k} {shapes[k][0]} != expected {shapes[k][1]}" for k in wrong]
        problems.append(f"{len(wrong)} with wrong shape ({_names(shown)})")
    if problems:
        raise WeightsError(f"{what} does not match: " + "; ".join(problems), path)


def check_finite(weights: Mapping[str, mx.array], path: str | Path | None = None) -> None:
    """Raise ``WeightsError`` when a floating-point array holds NaN or inf (a corrupt file:
    such a model predicts NaN everywhere)."""
    keys = [k for k, v in weights.items() if mx.issubdtype(v.dtype, mx.floating)]
    flags = [mx.all(mx.isfinite(weights[k])) for k in keys]
    mx.eval(flags)
    bad = sorted(k for k, ok in zip(keys, flags, strict=True) if not ok.item())
    if bad:
        raise WeightsError(f"{len(bad)} weights hold NaN or inf values ({_names(bad)})", path)


def check_float(
    weights: Mapping[str, mx.array],
    params: Mapping[str, mx.array],
    path: str | Path | None = None,
) -> None:
    """Raise ``WeightsError`` when a weight for a floating-point parameter is not floating
    point (an int32 norm scale would be cast and used silently)."""
    bad = sorted(
        f"{k} {weights[k].dtype}".replace("mlx.core.", "")
        for k in weights
        if k in params
        and mx.issubdtype(params[k].dtype, mx.floating)
        and not mx.issubdtype(weights[k].dtype, mx.floating)
    )
    if bad:
        raise WeightsError(f"{len(bad)} weights are not floating point ({_names(bad)})", path)


def read_safetensors(
    path: str | Path, what: str = "safetensors file", missing: str | None = None
) -> tuple[dict[str, mx.array], dict[str, str]]:
    """Arrays and metadata of a safetensors file (any file name).

    Raises a one-line ``WeightsError`` naming the file: ``missing`` (default
    "<what> not found") when it is not a file, "unreadable <what> (...)" when MLX cannot
    parse it.
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsError(missing or f"{what} not found", path)
    try:
        return mx.load(str(path), format="safetensors", return_metadata=True)
    except Exception as exc:  # MLX raises RuntimeError/ValueError with multi-line text
        if is_torch_file(path):
            raise WeightsError(f"a PyTorch file, not {_a(what)}", path) from None
        detail = " ".join(str(exc).split())
        raise WeightsError(f"unreadable {what} ({detail})", path) from None


def _a(what: str) -> str:
    return f"an {what}" if what[0] in "aeiou" else f"a {what}"


def is_torch_file(path: Path) -> bool:
    """Whether ``path`` is as ``torch.save`` writes it: a zip holding a ``data.pkl``, or a
    legacy file (a pickle of its magic number first)."""
    try:
        with open(path, "rb") as f:
            head = f.read(4)
        if head.startswith(b"\x80\x02\x8a\x0a"):  # protocol 2, then a 10-byte long
            return True
        with zipfile.ZipFile(path) as archive:
            return any(name.endswith("data.pkl") for name in archive.namelist())
    except (OSError, zipfile.BadZipFile):
        return False


def _how_to_make(arch: str) -> str:
    return f"make it with `mlx-hdr convert {arch} --download` or `mlx-hdr convert {arch} FILE.pth`"


def resolve_converted(
    arch_or_path: str | Path, architecture: str | None = None
) -> tuple[Path, str | None]:
    """An architecture name or a file path -> (file path, expected architecture or None):
    a file that exists, or a name with a folder or a suffix (``my.pth``), is a path."""
    arg = str(arch_or_path)
    if isinstance(arch_or_path, Path) or os.sep in arg or Path(arg).suffix or Path(arg).is_file():
        return Path(arg), architecture
    return converted_path(arg), arg


def load_converted(
    arch_or_path: str | Path, architecture: str | None = None
) -> dict[str, mx.array]:
    """Load converted safetensors by architecture name or file path -> ``{key: mx.array}``.

    ``architecture`` (implied when an architecture name is given) must equal the file's
    ``architecture`` metadata. Raises ``WeightsError`` when the file is missing (saying which
    ``mlx-hdr convert`` command makes it), unreadable, or for another architecture.
    """
    path, architecture = resolve_converted(arch_or_path, architecture)
    hint = _how_to_make(architecture) if architecture else "convert it with `mlx-hdr convert`"
    if path.is_file() and is_torch_file(path):
        arch = architecture or "ARCH"
        raise WeightsError(
            f"a PyTorch file: convert it first (`mlx-hdr convert {arch} FILE`)", path
        )
    arrays, metadata = read_safetensors(path, missing=f"converted weights not found; {hint}")
    found = metadata.get("architecture")
    if architecture and found and found != architecture:
        raise WeightsError(f"holds {found} weights, expected {architecture}", path)
    return arrays


def load_strict(
    model: nn.Module,
    weights: Mapping[str, mx.array] | str | Path,
    architecture: str | None = None,
) -> nn.Module:
    """Load ``weights`` (a dict, or a converted file / architecture name) into ``model``.

    Keys and shapes must equal ``tree_flatten(model.parameters())`` exactly, else
    ``WeightsError`` lists the missing, unexpected and mis-shaped keys; integer weights for
    floating-point parameters and NaN or inf values are a ``WeightsError`` too. Arrays are
    cast to the dtype of the parameter they replace. Returns ``model``.
    """
    path = None
    if not isinstance(weights, Mapping):
        path, architecture = resolve_converted(weights, architecture)
        weights = load_converted(weights, architecture)
    params = dict(tree_flatten(model.parameters()))
    check_shapes(
        {k: tuple(v.shape) for k, v in weights.items()},
        {k: tuple(v.shape) for k, v in params.items()},
        what=f"weights for {type(model).__name__}",
        path=path,
    )
    check_float(weights, params, path)
    check_finite(weights, path)
    cast = [(k, v.astype(params[k].dtype)) for k, v in weights.items()]
    model.load_weights(cast, strict=True)
    return model


def load_encoder(model: HybridAutoencoder, weights: str | Path | None = None) -> bool:
    """The model's encoder from its pretrained (ImageNet) weights, frozen: ``weights`` (a
    converted file) or the converted-weights cache's file for ``model.config.encoder``.
    ``weights=None`` and no cached file: nothing loaded, returns False."""
    arch = model.config.encoder
    if weights is None:
        weights = converted_path(arch)
        if not weights.is_file():
            return False
    load_strict(model.encoder, weights, arch)
    model.encoder.freeze()
    return True


def savable_weights(model: HybridAutoencoder, dtype=mx.float16, path=None, hint="") -> dict:
    """``model``'s weights (encoder included) as ``dtype``; ``WeightsError`` where one holds
    NaN or inf, or lies beyond ``dtype``'s range (such a file would not load; ``hint``
    follows that message)."""
    weights = dict(tree_flatten(model.parameters()))
    check_finite(weights, path)
    arrays = {k: v.astype(dtype) for k, v in weights.items()}
    try:
        check_finite(arrays, path)
    except WeightsError:  # beyond float16's range: inf in the file
        name = str(dtype).rsplit(".", 1)[-1]
        raise WeightsError(f"weights beyond {name}'s range{hint}", path) from None
    return arrays


def save_model(
    path, model: HybridAutoencoder, dtype=mx.float16, weights: dict | None = None
) -> Path:
    """Save all weights (encoder included) and the config to one safetensors file, atomically
    (``weights``: :func:`savable_weights`' result for ``model``, where the caller has it)."""
    path = Path(path)
    arrays = (
        weights if weights is not None else savable_weights(model, dtype, path, ": save as float32")
    )
    metadata = {"format": MODEL_FORMAT, "version": MODEL_VERSION, "config": model.config.to_json()}
    return save_safetensors_atomic(path, arrays, metadata, parents=False)


def read_config(path) -> HybridConfig:
    """The :class:`HybridConfig` stored in a saved model; ``WeightsError`` if not one."""
    _, meta = read_safetensors(path, "model file")
    if meta.get("format") == CHECKPOINT_FORMAT:
        run = Path(path).parent.parent  # RUN/checkpoints/NAME.safetensors
        how = f"mlx-hdr bundle {run / 'model.safetensors'} --checkpoint {path} -o OUT.safetensors"
        raise WeightsError(f"a training checkpoint, not a model: make one with `{how}`", path)
    if meta.get("format") != MODEL_FORMAT:
        raise WeightsError(f"not an {MODEL_FORMAT} model (format={meta.get('format')!r})", path)
    if meta.get("version") != MODEL_VERSION:
        raise WeightsError(f"unsupported model version {meta.get('version')!r}", path)
    try:
        return HybridConfig.from_json(meta["config"])
    except (KeyError, TypeError, ValueError) as exc:
        raise WeightsError(f"bad model config ({exc})", path) from None


def load_model(path, encoder: nn.Module | None = None) -> tuple[HybridAutoencoder, HybridConfig]:
    """Load a model saved by :func:`save_model`, strictly, as float32, in eval mode.

    ``encoder``: an encoder module to use instead of ``build_encoder(config.encoder)``
    (custom or test encoders); its weights come from the file too.
    """
    path = Path(path)  # load_strict takes a str without "/" or ".safetensors" for an arch name
    config = read_config(path)
    try:
        model = HybridAutoencoder(config, encoder=encoder)
    except (ValueError, TypeError) as exc:  # e.g. an encoder setting its network refuses
        raise WeightsError(f"bad model config ({' '.join(str(exc).split())})", path) from None
    load_strict(model, path)
    model.set_dtype(mx.float32)
    model.encoder.freeze()
    model.eval()
    mx.eval(model.parameters())
    return model, config
