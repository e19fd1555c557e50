"""``mlx-hdr train``: a thin wrapper over :func:`mlx_hdr.train.trainer.train_from_options`."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated

import typer

from mlx_hdr.cli.common import Progress, not_empty, show_progress
from mlx_hdr.models.hybrid import HybridConfig
from mlx_hdr.train.config import TrainConfig

# what a None default of TrainConfig means, for the help text
DEFAULT_TEXT = {
    "data": "none: required",
    "encoder_weights": "the converted file in ~/.cache/mlx-hdr",
    "init_model": "none",
    "compile": "on a GPU only",
    "streams": "0: auto",
    "checkpoint_every": "0: each epoch",
    "max_steps": "0: no limit",
    "stop_at": "0: run it all",
}
DEFAULTS = {**vars(HybridConfig()), **vars(TrainConfig())}
NOT_RECIPE = ("config", "resume", "overwrite", "progress")  # options that are not recipe fields


def Opt(*names: str, help: str | None = None, key: str | None = None):  # noqa: N802
    """``typer.Option`` whose help shows the recipe's default for ``key`` (the option's
    field; every option here defaults to None, i.e. "keep the recipe's value")."""
    shown = DEFAULT_TEXT.get(key, DEFAULTS.get(key)) if key else None
    return typer.Option(*names, help=help, show_default=str(shown) if shown is not None else False)


def register(app: typer.Typer) -> None:
    """Add the ``train`` command to ``app``."""

    @app.command("train")
    def train(
        config: Annotated[
            str | None, Opt("--config", "-c", help="recipe .json/.toml (default: the options)")
        ] = None,
        data: Annotated[str | None, Opt(help="HDR pool folder or manifest", key="data")] = None,
        run_dir: Annotated[
            str | None, Opt("--run-dir", "-o", help="output folder", key="run_dir")
        ] = None,
        resume: Annotated[bool, Opt(help="continue from RUN_DIR's last checkpoint")] = False,
        overwrite: Annotated[bool, Opt(help="replace the run in RUN_DIR")] = False,
        epochs: Annotated[int | None, Opt(key="epochs")] = None,
        steps_per_epoch: Annotated[int | None, Opt(key="steps_per_epoch")] = None,
        max_steps: Annotated[
            int | None, Opt(help="stop after this many steps", key="max_steps")
        ] = None,
        stop_at: Annotated[
            int | None, Opt(help="stop after this step, schedule unchanged", key="stop_at")
        ] = None,
        batch_size: Annotated[int | None, Opt(help="global batch", key="batch_size")] = None,
        crop: Annotated[int | None, Opt(help="training crop size (px)", key="crop")] = None,
        lr: Annotated[float | None, Opt(key="lr")] = None,
        warmup_steps: Annotated[int | None, Opt(key="warmup_steps")] = None,
        schedule: Annotated[str | None, Opt(help="constant | cosine", key="schedule")] = None,
        l1_weight: Annotated[float | None, Opt(key="l1_weight")] = None,
        lpips_weight: Annotated[float | None, Opt(help="0 skips VGG", key="lpips_weight")] = None,
        alpha_weight: Annotated[
            float | None, Opt(help="L1 weight 1 + w·clip mask", key="alpha_weight")
        ] = None,
        highlight_views: Annotated[
            float | None,
            Opt(help="share of views aimed at the brightest pixels", key="highlight_views"),
        ] = None,
        encoder: Annotated[str | None, Opt(key="encoder")] = None,
        upsample: Annotated[str | None, Opt(key="upsample")] = None,
        encoder_weights: Annotated[
            str | None, Opt(help="file, or 'random'", key="encoder_weights")
        ] = None,
        init_model: Annotated[
            str | None,
            Opt(help="start from this model file (a previous phase's)", key="init_model"),
        ] = None,
        val_size: Annotated[int | None, Opt(help="fixed validation crops", key="val_size")] = None,
        val_crop: Annotated[int | None, Opt(key="val_crop")] = None,
        checkpoint_every: Annotated[int | None, Opt(help="steps", key="checkpoint_every")] = None,
        log_every: Annotated[int | None, Opt(key="log_every")] = None,
        seed: Annotated[int | None, Opt(key="seed")] = None,
        compile: Annotated[bool | None, Opt("--compile/--no-compile", key="compile")] = None,
        streams: Annotated[
            int | None, Opt(help="CPU streams to split a batch over", key="streams")
        ] = None,
        progress: Progress = None,
    ) -> None:
        """Train the hybrid model (HDR pool through the camera simulator).

        Options override the recipe (--config); the defaults shown are those of a run
        without one. The run says how many steps it will take before it starts, and how
        long after its first steps.
        """
        overrides = {k: v for k, v in locals().items() if k not in NOT_RECIPE}
        from mlx_hdr.train.trainer import train_from_options

        named = {"--config": config, "--data": data, "--run-dir": run_dir}
        not_empty(named | {"--init-model": init_model, "--encoder-weights": encoder_weights})
        result = train_from_options(
            None if config is None else Path(config),
            resume=resume,
            overwrite=overwrite,
            progress=show_progress(progress),
            **overrides,
        )
        if result.rank == 0:
            typer.echo(done_message(result))


def done_message(result) -> str:
    """The CLI's last line: steps, best validation PSNR, speed (when steps ran), outputs."""
    if not result.losses:
        return (
            f"nothing to do: the run is already at step {result.step}, its configured end "
            f"(raise --epochs or --max-steps); outputs in {result.run_dir}"
        )
    # the first step (compilation, warm-up) is not timed, so a 1-step run has no speed
    speed = "" if math.isnan(result.seconds_per_step) else f", {result.seconds_per_step:.2f} s/step"
    best = result.best_psnr
    from mlx_hdr.train.progress import plural

    name = result.best_name
    scored = f"best val {name} {best:.2f} dB" if math.isfinite(best) else "not validated yet"
    return f"done: {plural(result.step, 'step')}, {scored}{speed}; outputs in {result.run_dir}"
