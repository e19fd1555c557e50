"""The modules a run trains with: the hybrid model (pretrained encoder, its starting point)
and LPIPS."""

from __future__ import annotations

import mlx.core as mx

from mlx_hdr import backend
from mlx_hdr.models.hybrid import HybridAutoencoder, stops_zero_logit
from mlx_hdr.train.config import TrainConfig


def build_model(cfg: TrainConfig, encoder=None) -> HybridAutoencoder:
    """The hybrid model with the encoder's pretrained weights (``"random"``: none, for tests),
    accelerated for the CPU when it trains there.

    ``encoder``: a ready encoder module (custom or test stand-in) used as it is.
    """
    model = HybridAutoencoder(cfg.model, encoder=encoder)
    if encoder is None and cfg.encoder_weights != "random":
        from mlx_hdr.models.model_io import converted_path, load_encoder

        load_encoder(model, cfg.encoder_weights or converted_path(cfg.model.encoder))
    if cfg.init_model:
        init_from_model(model, cfg.init_model)
    elif cfg.model.target == "stops":
        zero_residual_init(model)
    if cfg.train_only:
        model.freeze()
        getattr(model, cfg.train_only).unfreeze()
    mx.eval(model.parameters())
    return backend.accelerate(model)


def zero_residual_init(model: HybridAutoencoder) -> None:
    """Start a ``stops`` model at the identity: the output conv's weights at 0 and its
    bias at the target value of a 0-stop residual, so step 0 returns the linearised input."""
    model.out.weight = mx.zeros_like(model.out.weight)
    model.out.bias = mx.full(model.out.bias.shape, stops_zero_logit())


HEAD = "encoder.classifier."  # the encoder's ImageNet head: unused by the hybrid model
BRANCHES = {"global_gain": "gain.", "exposure_gain": "exposure."}  # optional branches


def init_from_model(model: HybridAutoencoder, path: str) -> None:
    """Start from a saved model's weights (a previous phase's ``model.safetensors``); its
    parameters must have the run's names and shapes, its target domain may differ
    (fine-tuning to a new one). The encoder's classifier head is not compared: a bundled
    model drops it (``encoder_kwargs.num_classes = 0``) and features never use it. A run
    that adds a gain branch (global or exposure) to a model without one keeps the branch's
    initial weights (its output starts as the saved model's)."""
    from mlx.utils import tree_flatten, tree_unflatten

    from mlx_hdr.errors import InputError
    from mlx_hdr.models.model_io import load_model

    def body(m):
        return {k: v for k, v in tree_flatten(m.parameters()) if HEAD not in k}

    src, src_cfg = load_model(path)
    weights = body(src)
    ours = body(model)
    for flag, prefix in BRANCHES.items():
        if getattr(model.config, flag) and not getattr(src_cfg, flag):
            ours = {k: v for k, v in ours.items() if not k.startswith(prefix)}
    if {k: v.shape for k, v in weights.items()} != {k: v.shape for k, v in ours.items()}:
        raise InputError(f"its architecture differs from the run's ({src_cfg})", path)
    model.update(tree_unflatten(list(weights.items())))
    model.encoder.freeze()


def build_lpips(cfg: TrainConfig):
    """LPIPS(VGG16) from converted weights, or None when its weight is 0."""
    if cfg.lpips_weight <= 0:
        return None
    from mlx_hdr.models.lpips import LPIPS
    from mlx_hdr.models.model_io import converted_path

    vgg = cfg.lpips_vgg or converted_path("vgg16")
    lin = cfg.lpips_lin or converted_path("lpips_vgg")
    lpips = LPIPS.from_pretrained(vgg, lin)
    lpips.freeze()
    return backend.accelerate(lpips)
