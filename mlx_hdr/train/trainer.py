"""The training loop: compiled steps, validation, checkpoints, NaN guard, logs and plots.

Run directory layout::

    config.json            the resolved TrainConfig
    log.jsonl              one record per logged step ("train") and per epoch ("val")
    checkpoints/last.safetensors, checkpoints/best.safetensors   resumable state
    model.safetensors      the best model, self-contained (encoder included), for predict
    training_curves.png    losses and validation metrics
    samples/epoch_NNN.png  input | prediction | target, Reinhard L/(1+L)
"""

from __future__ import annotations

import contextlib
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

import mlx.core as mx
import numpy as np
from tqdm import tqdm

from mlx_hdr import backend
from mlx_hdr.color import ldr_to_input
from mlx_hdr.errors import HDRError, UsageError, WeightsError
from mlx_hdr.infer.calibrate import calibrate
from mlx_hdr.infer.targets import encode_target
from mlx_hdr.io.atomic import copy_atomic
from mlx_hdr.models.model_io import savable_weights, save_model
from mlx_hdr.train import checkpoint as ckpt
from mlx_hdr.train.build import build_lpips, build_model
from mlx_hdr.train.config import (
    TrainConfig,
    check_resume_end,
    check_same_model,
    chosen_by,
    note_optimizer_changes,
)
from mlx_hdr.train.data import BatchSource, prefetch
from mlx_hdr.train.plots import plot_curves, save_sample
from mlx_hdr.train.progress import STALLED_STEPS, StepClock, plan_line, stalled
from mlx_hdr.train.rundir import (
    check_run_dir,
    drop_set_aside,
    forgotten_if_stopped,
    resume_point,
    run_lock,
    set_aside,
    write_config,
)
from mlx_hdr.train.runlog import RunLog, memory_stats
from mlx_hdr.train.step import make_optimizer, make_train_step
from mlx_hdr.train.validation import prepare, validate


class TrainingDiverged(HDRError):
    """The loss or the gradients became NaN/inf; the last good checkpoint is kept."""


@dataclass
class TrainResult:
    """Outcome of :meth:`Trainer.run`: final step/epoch, the per-step losses and per-epoch
    validation records of this invocation, the best validation PSNR and the mean step time
    (first step excluded; NaN when no step was timed)."""

    run_dir: Path
    step: int
    epoch: int
    losses: list[float] = field(default_factory=list)
    val: list[dict] = field(default_factory=list)
    best_psnr: float = -math.inf  # the score the best model is chosen by: best_name
    seconds_per_step: float = math.nan
    best_name: str = "PSNR"  # "PU21-PSNR" for a model predicting stops
    rank: int = 0


def make_source(cfg: TrainConfig) -> BatchSource:
    """The data source the recipe names (the HDR pool through the camera simulator). Every
    rank builds the same source; ``source.batch(step, rank, size)`` picks its share."""
    from mlx_hdr.train.pool import pool_source

    return pool_source(cfg)


class Trainer:
    """Holds the model, optimizer and step function of one run; see :func:`train`."""

    def __init__(
        self,
        cfg: TrainConfig,
        source: BatchSource | None = None,
        *,
        group=None,
        echo=print,
        encoder=None,
        overwrite: bool = False,
        progress: bool = False,
    ):
        self.cfg, self.group, self.progress = cfg, group, progress
        self.rank = 0 if group is None else group.rank()
        self.size = 1 if group is None else group.size()
        pairs = cfg.pair_weight > 0  # an exposure pair stays on one rank
        if cfg.batch_size % (self.size * (2 if pairs else 1)):
            unit = "exposure pairs over " if pairs else ""
            raise HDRError(
                f"batch size {cfg.batch_size} is not divisible by {unit}{self.size} ranks"
            )
        self.source = source if source is not None else make_source(cfg)
        self.run_dir = Path(cfg.run_dir)
        self.main, self.stalled = self.rank == 0, 0  # steps of a zero gradient
        mx.random.seed(cfg.seed)  # same initial decoder on every rank and every run
        self.model = build_model(cfg, encoder)
        self.frozen = ckpt.frozen_digest(self.model)  # what the run does not train
        self.heldout = ckpt.heldout_digest(self.source, cfg)  # what it validates on
        self.optimizer = make_optimizer(cfg)
        self.lpips = build_lpips(cfg)
        # the data too: a bad setting or file must not leave a half-made run folder (or,
        # with overwrite, none at all)
        self.val = self.validation_set() if self.main else None
        self.source.batch(0, self.rank, self.size)
        if self.main:  # only now: missing weights must not leave an empty run folder
            if overwrite:
                set_aside(self.run_dir)
            (self.run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
            (self.run_dir / "samples").mkdir(exist_ok=True)
        self.log = RunLog(self.run_dir / "log.jsonl" if self.main else None, echo)
        self.step, self.best = 0, -math.inf

    def resume(self) -> None:
        """Restore the run directory's latest checkpoint (``rundir.resume_point``: exact
        continuation); refuse a recipe whose network or end does not fit it."""
        path = resume_point(self.run_dir) or self.ckpt_path("last")
        check_same_model(ckpt.checkpoint_header(path), self.cfg, path)
        state = ckpt.load_checkpoint(path, self.model, self.optimizer)
        self.step = state.step
        self.best = state.extra.get("best_psnr", -math.inf)
        if self.main:
            ckpt.note_changes(state.extra, self.frozen, self.heldout, self.best, path)
            note_optimizer_changes(state.config, self.cfg, path)
        check_resume_end(self.cfg, self.step, path)  # before the log is trimmed
        if self.main:
            self.log.truncate_after(self.step)
            done = self.step // self.cfg.steps_per_epoch
            self.log.say(f"resumed from step {self.step} ({done} of {self.cfg.epochs} epochs done)")
            if path.stem == "best":  # stopped before it saved this epoch's model and "last"
                save_model(self.run_dir / "model.safetensors", self.model)
                copy_atomic(path, self.ckpt_path("last"))  # the same state, for bundling

    def ckpt_path(self, name: str) -> Path:
        """``run_dir/checkpoints/<name>.safetensors``."""
        return self.run_dir / "checkpoints" / f"{name}.safetensors"

    def save(self, name: str) -> dict:
        """Write checkpoint ``name`` (model, optimizer, step, config, best PSNR), and the
        folder's ``config.json`` before it; rank 0 only. Weights that diverged while the
        loss stayed finite are no checkpoint (:meth:`exportable`): the last good one stays
        (every rank stops there: their weights are the same). Returns the weights as the
        float16 model saves them."""
        weights = self.exportable()
        if not self.main:
            return weights
        write_config(self.run_dir, self.cfg)
        ckpt.save_checkpoint(
            self.ckpt_path(name),
            self.model,
            self.optimizer,
            step=self.step,
            epoch=self.step // self.cfg.steps_per_epoch,
            config_json=self.cfg.to_json(),
            extra={"best_psnr": self.best, "frozen": self.frozen}
            | ({"heldout": self.heldout} if self.heldout else {}),
        )
        drop_set_aside(self.run_dir)  # a run this one replaces: gone once this one saved
        return weights

    def build_step(self):
        """Initialise the optimizer state and return the step function the config asks for."""
        self.optimizer.init(self.model.trainable_parameters())
        c = self.cfg
        return make_train_step(
            self.model,
            self.optimizer,
            lpips=self.lpips,
            l1_weight=c.l1_weight,
            lpips_weight=c.lpips_weight,
            alpha_weight=c.alpha_weight,
            pair_weight=c.pair_weight,
            compile=c.use_compile,
            group=self.group,
            streams=c.use_streams,
        )

    def check_finite(self, loss: float, norm: float) -> None:
        """Log an error record and raise :class:`TrainingDiverged` if loss or norm is NaN/inf."""
        if math.isfinite(loss) and math.isfinite(norm):
            return
        last = self.ckpt_path("last")
        kept = f"last good checkpoint: {last}" if last.exists() else "no checkpoint was written"
        self.diverged(
            self.step + 1, f"at step {self.step + 1} (loss={loss}, grad norm={norm}); {kept}"
        )

    def diverged(self, step: int, why: str) -> NoReturn:
        """Log ``training diverged <why>`` as an error record at ``step`` and raise it as
        :class:`TrainingDiverged`."""
        msg = f"training diverged {why}"
        self.log.write({"kind": "error", "step": step, "message": msg})
        raise TrainingDiverged(msg)

    def one_step(self, step_fn, step: int, batch: dict) -> tuple[float, dict, float]:
        """Train on ``batch`` as step ``step`` (0-based): loss, its parts, gradient norm."""
        x, target, mask = prepare(batch, self.cfg.model.target)
        white = mx.array(batch["white"]) if "white" in batch else None
        mx.random.seed(self.cfg.seed * 1_000_003 + step)  # see checkpoint.py
        loss, parts, norm = step_fn(x, target, mask, white)
        mx.eval(loss, parts, norm, self.model.state, self.optimizer.state)
        loss_f, norm_f = loss.item(), norm.item()
        self.check_finite(loss_f, norm_f)
        if self.stalled is not None:  # finite, so no divergence is caught; None: said
            self.stalled = self.stalled + 1 if norm_f == 0.0 else 0
            if self.stalled == STALLED_STEPS:
                self.stalled = None
                if self.main:  # in the run's log too, for a run left to itself
                    why = stalled(self.cfg)
                    self.log.write({"kind": "warning", "step": step + 1, "message": why})
                    warnings.warn(f"step {step + 1}: {why}", stacklevel=2)
        self.step = step + 1
        return loss_f, parts, norm_f

    def clock(self) -> StepClock:
        """The run's :class:`StepClock`; with its bar shown, messages are written above it."""
        bar = self.progress and self.main
        if bar and self.log.echo is print:
            self.log.echo = tqdm.write
        say = self.log.say if self.main else lambda message: None
        return StepClock(self.cfg.end_step, self.step, say, bar)

    def run(self) -> TrainResult:
        """Train from ``self.step`` to the configured last step (``cfg.end_step``)."""
        cfg, step_fn, val = self.cfg, self.build_step(), self.val
        result = TrainResult(
            self.run_dir, self.step, self.step // cfg.steps_per_epoch, rank=self.rank
        )
        if self.main:
            self.log.say(plan_line(cfg, self.step))
        clock = self.clock()
        data = prefetch(self.source, self.step, cfg.end_step, self.rank, self.size)
        try:
            for step, batch in data:
                loss_f, parts, norm_f = self.one_step(step_fn, step, batch)
                dt = clock.tick(step)
                result.losses.append(loss_f)
                if self.step % cfg.log_every == 0 or self.step == cfg.end_step:
                    self.log_step(loss_f, parts, norm_f, dt)
                if self.step % cfg.steps_per_epoch == 0 or self.step == cfg.total_steps:
                    result.val.append(self.end_epoch(val))  # saves "last" too
                    clock.restart()  # validation is not step time
                elif self.step == cfg.end_step or (
                    cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0
                ):  # stopped mid-epoch (--stop-at): no validation, as the full run has none
                    self.save("last")
        finally:
            clock.close()
        result.step, result.epoch = self.step, self.step // cfg.steps_per_epoch
        result.best_psnr, result.seconds_per_step = self.best, clock.seconds_per_step
        result.best_name = chosen_by(cfg)[1]
        return result

    def log_step(self, loss: float, parts: dict, norm: float, dt: float) -> None:
        """Log a ``train`` record (loss and its parts, grad norm, lr, timing, memory)."""
        rec = {"kind": "train", "step": self.step, "epoch": self.step // self.cfg.steps_per_epoch}
        rec.update(loss=loss, grad_norm=norm, **{k: v.item() for k, v in parts.items()})
        lr = self.optimizer.learning_rate
        rec.update(lr=float(lr.item() if isinstance(lr, mx.array) else lr))
        rec.update(step_s=dt, images_per_s=self.cfg.batch_size / dt, **memory_stats())
        msg = (
            f"step {self.step}: loss {loss:.4f} ({dt:.2f} s/step, {rec['images_per_s']:.1f} img/s)"
        )
        self.log.write(rec, msg)

    def validation_set(self) -> dict:
        """The source's ``val_size`` fixed samples, prepared once: encoder input ``x`` and
        ``target`` in [-1, 1] (NHWC float32), the ``ldr``, the ``hdr`` and, where the source
        gives it, each photo's ``white``."""
        val = self.source.validation(self.cfg.val_size)
        kind = self.cfg.model.target
        return {
            "x": ldr_to_input(val["ldr"]),
            "target": encode_target(kind, val["hdr"], val["ldr"]),
            "ldr": val["ldr"],
            "hdr": val["hdr"],
        } | ({"white": val["white"]} if "white" in val else {})

    def exportable(self) -> dict:
        """The weights as the run's float16 model saves them; :class:`TrainingDiverged`
        where they cannot be (NaN or inf, or beyond float16's range), though the loss stayed
        finite."""
        try:
            return savable_weights(self.model)
        except WeightsError as exc:
            model = self.run_dir / "model.safetensors"
            kept = f"{model} keeps the best before" if model.exists() else "this run saved no model"
            self.diverged(self.step, f"by step {self.step}: {exc} (a lower lr?); {kept}")

    def end_epoch(self, val: dict) -> dict:
        """Validate, write the sample strip and curves, save last/best checkpoints."""
        epoch = (self.step - 1) // self.cfg.steps_per_epoch + 1
        if not self.main:  # rank 0 validates and writes; the others go on to the next step
            self.exportable()  # or stop where rank 0's save stops (the same weights)
            return {"kind": "val", "step": self.step, "epoch": epoch}
        metrics, pred = validate(self.model, val, self.cfg.batch_size)
        rec = {"kind": "val", "step": self.step, "epoch": epoch, **metrics}
        m = metrics
        msg = f"epoch {epoch}: val PSNR {m['psnr']:.2f} dB, SSIM {m['ssim']:.4f}, L1 {m['l1']:.4f}"
        key, name = chosen_by(self.cfg)
        if key != "psnr":  # the score its best model is chosen by, first
            msg = msg.replace("val PSNR", f"val {name} {m[key]:.2f} dB, PSNR")
        self.log.write(rec)  # said once saved: a closed stdout stops the run there
        n = min(4, len(pred))
        sample = self.run_dir / "samples" / f"epoch_{epoch:03d}.png"
        preds = [
            calibrate(ldr, p, blend=False, kind=self.cfg.model.target)
            for ldr, p in zip(val["ldr"][:n], pred[:n], strict=True)
        ]
        save_sample(sample, val["ldr"][:n], np.stack(preds), val["hdr"][:n])
        plot_curves(self.log.records, self.run_dir / "training_curves.png")
        score = metrics[key]
        if score > self.best:  # best first: stopped before "last", a resume starts from it
            self.best = score
            weights = self.save("best")  # weights that diverged do not become "best"
            save_model(self.run_dir / "model.safetensors", self.model, weights=weights)
        self.save("last")
        self.log.say(msg)
        return rec


def train(
    cfg: TrainConfig,
    source: BatchSource | None = None,
    *,
    resume: bool = False,
    overwrite: bool = False,
    group=None,
    echo=print,
    encoder=None,
    progress: bool = False,
) -> TrainResult:
    """Train the hybrid model as ``cfg`` says; returns losses, validation records and timing.

    ``source`` defaults to the HDR pool named by ``cfg.data`` through the camera simulator.
    ``encoder``: a ready encoder module instead of ``cfg.model.encoder`` (tests, custom).
    ``resume`` continues exactly from the run's latest checkpoint (``last``, or ``best``
    where a stop came between them: ``rundir.resume_point``); without it,
    a ``run_dir`` holding another run is a ``UsageError`` unless ``overwrite`` (which
    replaces that run once this one is built). ``group``: an ``mx.distributed`` group for
    data parallelism (``cfg.batch_size`` is the global batch). ``progress``: a progress bar.
    Raises :class:`TrainingDiverged` on NaN/inf (the last good checkpoint is kept).
    """
    if not resume and cfg.end_step == 0:  # before the run folder is made
        raise UsageError("the run has no steps (epochs is 0): nothing to train")
    existed = Path(cfg.run_dir).exists()
    with run_lock(cfg.run_dir, main=group is None or group.rank() == 0) as held:
        check_run_dir(cfg.run_dir, resume, overwrite, group, busy=not held)
        trainer = Trainer(
            cfg,
            source,
            group=group,
            echo=echo,
            encoder=encoder,
            overwrite=overwrite,
            progress=progress,
        )
        blas = backend.blas_threads(1) if cfg.use_streams > 1 else contextlib.nullcontext()
        with forgotten_if_stopped(trainer.run_dir, not resume and trainer.main, existed), blas:
            if resume:  # its config.json is written with its next checkpoint (Trainer.save)
                trainer.resume()
            elif trainer.main:
                write_config(trainer.run_dir, cfg)
            return trainer.run()


def train_from_options(
    config_path=None, *, resume: bool = False, overwrite: bool = False, progress=True, **overrides
) -> TrainResult:
    """Resolve a recipe file plus overrides (None = keep) and train; the CLI's entry point.

    With ``resume`` and no recipe, the run directory's ``config.json`` is the recipe. Under
    ``mlx.launch`` the processes form a data-parallel group automatically.
    """
    from mlx_hdr.errors import InputError
    from mlx_hdr.train.config import load_config
    from mlx_hdr.train.distributed import init_group

    saved = Path(overrides.get("run_dir") or TrainConfig.run_dir) / "config.json"
    if resume and config_path is None and saved.is_file():
        config_path = saved
        if overrides.get("stop_at") is None:  # a --stop-at is for the run it was given to
            overrides["stop_at"] = 0
    cfg = load_config(config_path, **overrides)
    last = Path(cfg.run_dir) / "checkpoints" / "last.safetensors"
    if resume and resume_point(cfg.run_dir) is None:
        raise InputError("no checkpoint to resume from", last)
    group = init_group()
    return train(cfg, resume=resume, overwrite=overwrite, group=group, progress=progress)
