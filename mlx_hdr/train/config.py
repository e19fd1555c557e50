"""Training recipe: one dataclass, loadable from JSON/TOML, overridable by CLI flags."""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from mlx_hdr.errors import InputError, UsageError
from mlx_hdr.models.encoders import ENCODERS
from mlx_hdr.models.hybrid import HybridConfig

# smallest allowed value of each count (a 0 batch or step count crashed mid-run)
MINIMUM = {"batch_size": 1, "steps_per_epoch": 1, "crop": 1, "val_size": 1, "val_crop": 1}
MINIMUM |= {"log_every": 1, "epochs": 0, "checkpoint_every": 0, "max_steps": 0, "stop_at": 0}
MINIMUM |= {"warmup_steps": 0, "seed": 0, "streams": 0}
RETIRED = {"workers"}  # was never read (training batches come from one prefetch thread)
LPIPS_MIN_CROP = 16  # VGG16's four 2x2 poolings leave nothing of a smaller view
MAXIMUM = {"crop": 4096, "val_crop": 4096}  # larger views ran out of memory with a traceback
# MLX's seed is 64-bit, and each step's is seed * 1000003 + step (steps below 10^9)
MAXIMUM |= {"seed": (2**64 - 10**9) // 1_000_003}
TYPES = {"str": (str,), "str | None": (str, type(None)), "bool | None": (bool, type(None))}
TYPES |= {"bool": (bool,)}  # "false" in a recipe is no false
TYPES |= {"str | list | None": (str, list, tuple, type(None)), "list": (list, tuple)}
TYPES |= {"dict": (dict,)}
# [low, high) of float fields: a negative loss weight trains towards the error, beta >= 1
# divides by zero in Adam's bias correction
LOSS_WEIGHTS = ("l1_weight", "lpips_weight", "alpha_weight", "pair_weight")
FLOAT_RANGE = {k: (0.0, math.inf) for k in LOSS_WEIGHTS}
FLOAT_RANGE |= {"beta1": (0.0, 1.0), "beta2": (0.0, 1.0)}


@dataclass
class TrainConfig:
    """Everything a training run needs; saved in every checkpoint."""

    run_dir: str = "runs/default"
    data: str | list | None = None  # HDR pool folder(s), or a manifest; required for a pool
    model: HybridConfig = field(default_factory=HybridConfig)
    encoder_weights: str | None = None  # None: the converted file in the user cache
    init_model: str | None = None  # a saved model to start from (a previous phase's)
    # learn only this branch of the model ("exposure": its ExposureGain), the rest frozen
    train_only: str | None = None
    lpips_vgg: str | None = None  # None: converted vgg16 / lpips_vgg in the user cache
    lpips_lin: str | None = None
    l1_weight: float = 2.0
    lpips_weight: float = 3.0  # 0 skips building VGG
    alpha_weight: float = 0.0  # L1 weight map 1 + w·clip_mask
    # > 0: batches of exposure pairs (one scene, one camera, exposures |d| stops apart, d
    # uniform in pair_stops, either sign) and this weight on loss.exposure_pair_l1
    pair_weight: float = 0.0
    pair_stops: list = field(default_factory=lambda: [0.5, 2.5])
    lr: float = 9e-4
    beta1: float = 0.5
    beta2: float = 0.999
    # Adam's bias correction (PyTorch's Adam, the original recipe's). Off: MLX's default,
    # whose first steps are up to 1 / (1 - beta1) times lr; the shipped phases ran so
    bias_correction: bool = False
    warmup_steps: int = 0
    schedule: str = "constant"  # or "cosine" (to 0 over all steps, after warmup)
    batch_size: int = 16
    epochs: int = 100
    steps_per_epoch: int = 100
    crop: int = 224
    highlight_views: float = 0.0  # share of training views aimed at a scene's brightest pixels
    sim: dict = field(default_factory=dict)  # camera simulator settings (data.simulate.SimConfig)
    val_size: int = 8  # fixed validation pairs
    val_crop: int = 224
    seed: int = 0
    # None: compiled on a GPU, eager on the CPU, where eager measured as fast or faster and
    # skips the one-time C++ build of the compiled kernels (see scripts/benchmark.py).
    compile: bool | None = None
    # CPU streams an eager step's batch is split over (MLX runs each stream on its own
    # thread); 0: auto (see use_streams). Changes speed; the result agrees to float
    # rounding (gradients summed in another order): a run repeats bit for bit with one count.
    streams: int = 0
    checkpoint_every: int = 0  # steps; 0: at the end of each epoch only
    log_every: int = 10
    max_steps: int = 0  # stop after this many steps in total (0: no limit)
    stop_at: int = 0  # stop after this step, the schedule unchanged (0: run it all)

    def __post_init__(self):
        if isinstance(self.model, dict):
            unknown = sorted(set(self.model) - {f.name for f in fields(HybridConfig)})
            if unknown:
                raise ValueError(f"unknown model options: {', '.join(unknown)}")
            self.model = HybridConfig(**self.model)
        self._check_numbers()
        self.sim_config()  # unknown or bad simulator settings fail here, not mid-run
        if self.schedule not in ("constant", "cosine"):
            raise ValueError(f"schedule must be 'constant' or 'cosine', got {self.schedule!r}")
        self._check_pairs()
        if not 0.0 <= self.highlight_views <= 1.0:
            raise ValueError(f"highlight_views must lie in [0, 1], got {self.highlight_views}")
        if self.train_only not in (None, "exposure"):
            raise ValueError(f"train_only must be 'exposure' or null, got {self.train_only!r}")
        if self.train_only == "exposure" and not self.model.exposure_gain:
            raise ValueError("train_only 'exposure' needs a model with exposure_gain")
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if self.model.encoder not in ENCODERS:
            known = ", ".join(ENCODERS)
            raise ValueError(f"unknown encoder {self.model.encoder!r} (choose from {known})")

    def _check_numbers(self) -> None:
        """int fields must be integers within ``MINIMUM``/``MAXIMUM``, float fields finite
        and within ``FLOAT_RANGE``, the others of their types (``TYPES``)."""
        for f in fields(self):
            value = getattr(self, f.name)
            if f.type == "int":
                _check_int(f.name, value)
            elif f.type == "float":
                _check_float(f.name, value)
            elif not isinstance(value, TYPES.get(f.type, object)):
                kinds = f.type.replace(" | ", " or ").replace("None", "null")
                raise ValueError(f"{f.name} must be a {kinds}, got {value!r}")
        if isinstance(self.data, (list, tuple)) and not all(isinstance(d, str) for d in self.data):
            raise ValueError(
                f"data must be a folder, a manifest or a list of folders, got {self.data!r}"
            )

    def _check_pairs(self) -> None:
        """``pair_stops`` is [low, high] with 0 <= low <= high <= 8; pairs need an even batch;
        LPIPS needs crops of ``LPIPS_MIN_CROP`` px."""
        stops = self.pair_stops
        ok = isinstance(stops, (list, tuple)) and len(stops) == 2
        ok = ok and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in stops)
        if not ok or not 0.0 <= stops[0] <= stops[1] <= 8.0:
            raise ValueError(
                f"pair_stops must be [low, high] with 0 <= low <= high <= 8, got {stops!r}"
            )
        if self.pair_weight > 0 and self.batch_size % 2:
            raise ValueError(f"exposure pairs need an even batch_size, got {self.batch_size}")
        if self.lpips_weight > 0 and min(self.crop, self.val_crop) < LPIPS_MIN_CROP:
            raise ValueError(
                f"LPIPS needs crops of at least {LPIPS_MIN_CROP} px (VGG16's four poolings), "
                f"got crop {self.crop}, val_crop {self.val_crop}"
            )

    def sim_config(self):
        """The camera simulator's :class:`~mlx_hdr.data.simulate.SimConfig` with ``sim``'s
        settings; ``ValueError`` naming an unknown setting."""
        from mlx_hdr.data.simulate import SimConfig

        if not isinstance(self.sim, dict):
            raise ValueError(f"sim must be an object of simulator settings, got {self.sim!r}")
        known = {f.name for f in fields(SimConfig)}
        unknown = sorted(set(self.sim) - known)
        if unknown:
            raise ValueError(f"unknown simulator settings: {', '.join(unknown)}")
        return SimConfig(**self.sim)

    @property
    def use_compile(self) -> bool:
        """``compile``, or when it is None: whether the default device is a GPU."""
        import mlx.core as mx

        if self.compile is None:
            return mx.default_device().type == mx.DeviceType.gpu
        return self.compile

    @property
    def use_streams(self) -> int:
        """Streams a step's batch is split over: 1 when compiled or off the CPU, else
        ``streams``; when 0, 1 with LPIPS and the core count capped at 2 without.

        With LPIPS the Winograd GEMMs use both cores better than two streams at one BLAS
        thread each; an L1-only step is mostly single-threaded MLX ops, and two streams win
        (docs/BENCHMARKS.md: ``train256-mlx`` vs ``train256-mlx-2streams``)."""
        import os

        import mlx.core as mx

        if self.use_compile or mx.default_device() != mx.cpu:
            return 1
        if self.streams:
            return self.streams
        return 1 if self.lpips_weight > 0 else max(1, min(2, os.cpu_count() or 1))

    @property
    def total_steps(self) -> int:
        """``epochs * steps_per_epoch``, capped by ``max_steps`` when that is set."""
        total = self.epochs * self.steps_per_epoch
        return min(total, self.max_steps) if self.max_steps else total

    @property
    def end_step(self) -> int:
        """The step this run stops after: ``total_steps``, or ``stop_at`` when that is set
        and earlier. Unlike ``max_steps`` it leaves the learning-rate schedule as it is, so
        a run stopped there is the first part of the full run, step for step."""
        return min(self.total_steps, self.stop_at) if self.stop_at else self.total_steps

    def to_json(self) -> str:
        """All fields (the model config nested) as a JSON object with sorted keys."""
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        """Build from a dict of field values (``model`` may be a dict); ``ValueError`` on
        unknown keys or invalid values. ``RETIRED`` keys (in runs saved before they were
        removed) are ignored."""
        d = {k: v for k, v in d.items() if k not in RETIRED}
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown training options: {', '.join(unknown)}")
        return cls(**d)


def _check_int(name: str, value) -> None:
    low, high = MINIMUM.get(name), MAXIMUM.get(name)
    ok = isinstance(value, int) and not isinstance(value, bool)
    if not ok or (low is not None and value < low) or (high is not None and value > high):
        at_least = f" >= {low}" if low is not None else ""
        at_most = f" and <= {high}" if high is not None else ""
        raise ValueError(f"{name} must be an integer{at_least}{at_most}, got {value!r}")


def _check_float(name: str, value) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not ok or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    low, high = FLOAT_RANGE.get(name, (-math.inf, math.inf))
    if not low <= value < high:
        where = f">= {low:g}" if high == math.inf else f"in [{low:g}, {high:g})"
        raise ValueError(f"{name} must be {where}, got {value!r}")


def load_config(path: str | Path | None = None, **overrides) -> TrainConfig:
    """Read a recipe (.json or .toml) and apply ``overrides`` (None values are ignored).

    Model options may be given flat (``encoder``, ``upsample``, ``decoder_channels``) or
    under ``model``.
    """
    d: dict = {}
    if path is not None:  # keys starting with "_" are comments
        d = {k: v for k, v in _read_recipe(Path(path)).items() if not k.startswith("_")}
    model = d.pop("model", {}) or {}
    if not isinstance(model, dict):
        raise InputError(f"bad training config (model must be an object, got {model!r})", path)
    model, flat = dict(model), {}
    for src, into in ((d, model), (overrides, flat)):  # flat model options
        for key in ("encoder", "upsample", "decoder_channels", "input_skip"):
            if src.get(key) is not None:
                into[key] = src.pop(key)
            else:
                src.pop(key, None)
    given = {k: v for k, v in overrides.items() if v is not None}
    try:
        return TrainConfig.from_dict({**d, **given, "model": {**model, **flat}})
    except (TypeError, ValueError) as exc:
        if (given or flat) and _problem({**given, "model": flat}) == str(exc):
            raise InputError(f"bad training option ({exc})") from None  # the command line's
        raise InputError(f"bad training config ({exc})", path) from None


def _problem(options: dict) -> str | None:
    """What is wrong with ``options`` on the defaults, or None."""
    try:
        TrainConfig.from_dict(options)
    except (TypeError, ValueError) as exc:
        return str(exc)
    return None


def _read_recipe(path: Path) -> dict:
    if not path.is_file():
        raise InputError("config file not found", path)
    try:
        if path.suffix == ".toml":
            try:
                import tomllib
            except ImportError:  # Python 3.10
                raise InputError("TOML recipes need Python >= 3.11; use JSON", path) from None
            recipe = tomllib.loads(path.read_text())
        else:
            recipe = json.loads(path.read_text())
    except (ValueError, OSError) as exc:
        raise InputError(f"unreadable config ({exc})", path) from None
    if not isinstance(recipe, dict):
        raise InputError("unreadable config (not a JSON object of options)", path)
    return recipe


OPTIMIZER_FIELDS = ("lr", "beta1", "beta2", "bias_correction", "schedule", "warmup_steps")


def optimizer_changes(saved: dict, cfg: TrainConfig) -> list[str]:
    """How ``cfg``'s optimizer differs from that of ``saved``, a run's saved config, as
    ``"lr 0.001 -> 0.0009"`` lines (a run saved before ``bias_correction`` existed ran
    without it); a cosine schedule's length counts, since its learning rate jumps."""
    now, saved = json.loads(cfg.to_json()), {"bias_correction": False} | saved
    changes = [
        f"{k} {saved[k]} -> {now[k]}" for k in OPTIMIZER_FIELDS if saved.get(k, now[k]) != now[k]
    ]
    if cfg.schedule == "cosine" and saved.get("schedule") == "cosine":
        try:
            total = TrainConfig.from_dict(saved).total_steps
        except (TypeError, ValueError):  # a config this version cannot read
            return changes
        if total != cfg.total_steps:
            changes.append(f"cosine length {total} -> {cfg.total_steps} steps")
    return changes


def chosen_by(cfg: TrainConfig) -> tuple[str, str]:
    """The validation score a run's best model is chosen by: (metrics key, its name)."""
    return ("pu21_psnr", "PU21-PSNR") if cfg.model.target == "stops" else ("psnr", "PSNR")


# model settings that only say how the network is bundled for inference
BUNDLING_FIELDS = ("floor", "floor_strength")


def model_changes(saved: dict, now: dict, same=BUNDLING_FIELDS) -> list[str]:
    """How the model config ``now`` differs from ``saved`` (both as JSON objects), as
    ``"target minmax_log1p -> stops"`` lines, leaving out the fields ``same``; a field
    ``saved`` lacks is its default (a file without ``target`` holds the original one)."""
    saved = json.loads(json.dumps(asdict(HybridConfig()))) | saved
    return [
        f"{k} {saved.get(k)} -> {v}" for k, v in now.items() if k not in same and saved.get(k) != v
    ]


def check_same_model(header: dict | None, cfg: TrainConfig, checkpoint) -> None:
    """``UsageError`` naming ``checkpoint`` where the recipe's network differs from the one
    its ``header`` (``checkpoint.checkpoint_header``) was trained as: a target of another
    domain would reinterpret the weights, another architecture cannot load them."""
    try:
        saved = json.loads((header or {})["config"])["model"]
    except (KeyError, ValueError, TypeError):
        return  # not readable here: loading the checkpoint says what is wrong
    if not isinstance(saved, dict):
        return
    if changes := model_changes(saved, json.loads(cfg.to_json())["model"]):
        raise UsageError(
            f"the recipe's model is not the run's ({', '.join(changes)}): a resume goes on "
            "with the run's network; another one is a new run",
            checkpoint,
        )


def note_optimizer_changes(saved: dict, cfg: TrainConfig, checkpoint) -> None:
    """Warn, naming ``checkpoint``, where a resumed run's optimizer differs from the one it
    was trained with (:func:`optimizer_changes`)."""
    if changes := optimizer_changes(saved, cfg):
        warnings.warn(
            f"{checkpoint}: resumed with other optimizer settings ({', '.join(changes)}): the "
            "run goes on, but not as one run with either",
            stacklevel=4,
        )


def check_resume_end(cfg: TrainConfig, step: int, checkpoint) -> None:
    """``UsageError`` naming ``checkpoint`` where the recipe ends (``stop_at``, epochs,
    ``max_steps``) before the checkpoint's ``step`` (one ending at it has nothing to do)."""
    if cfg.stop_at and cfg.stop_at <= step:
        raise UsageError(
            f"stop_at {cfg.stop_at} (--stop-at, or the recipe's) is not after the "
            f"checkpoint's step {step}",
            checkpoint,
        )
    if cfg.total_steps < step:
        raise UsageError(
            f"the recipe ends at step {cfg.total_steps} (--epochs x --steps-per-epoch, "
            f"--max-steps), before the checkpoint's step {step}",
            checkpoint,
        )
