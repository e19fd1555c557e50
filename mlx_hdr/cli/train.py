"""``mlx-hdr train``: a thin wrapper over :func:`mlx_hdr.train.trainer.train_from_options`."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated

import typer

Opt = typer.Option


def register(app: typer.Typer) -> None:
    """Add the ``train`` command to ``app``."""

    @app.command("train")
    def train(
        config: Annotated[Path | None, Opt("--config", "-c", help="recipe .json/.toml")] = None,
        data: Annotated[str | None, Opt(help="HDR pool folder")] = None,
        run_dir: Annotated[str | None, Opt("--run-dir", "-o", help="output folder")] = None,
        resume: Annotated[bool, Opt(help="continue from RUN_DIR's last checkpoint")] = False,
        epochs: Annotated[int | None, Opt()] = None,
        steps_per_epoch: Annotated[int | None, Opt()] = None,
        max_steps: Annotated[int | None, Opt(help="stop after this many steps")] = None,
        batch_size: Annotated[int | None, Opt(help="global batch")] = None,
        crop: Annotated[int | None, Opt(help="training crop size (px)")] = None,
        lr: Annotated[float | None, Opt()] = None,
        warmup_steps: Annotated[int | None, Opt()] = None,
        schedule: Annotated[str | None, Opt(help="constant | cosine")] = None,
        l1_weight: Annotated[float | None, Opt()] = None,
        lpips_weight: Annotated[float | None, Opt(help="0 skips VGG")] = None,
        alpha_weight: Annotated[float | None, Opt(help="L1 weight 1 + w·clip mask")] = None,
        highlight_views: Annotated[
            float | None, Opt(help="share of views aimed at the brightest pixels")
        ] = None,
        encoder: Annotated[str | None, Opt()] = None,
        upsample: Annotated[str | None, Opt()] = None,
        encoder_weights: Annotated[str | None, Opt(help="file, or 'random'")] = None,
        init_model: Annotated[
            str | None, Opt(help="start from this model file (a previous phase's)")
        ] = None,
        val_size: Annotated[int | None, Opt(help="fixed validation crops")] = None,
        val_crop: Annotated[int | None, Opt()] = None,
        checkpoint_every: Annotated[int | None, Opt(help="steps (0: per epoch)")] = None,
        log_every: Annotated[int | None, Opt()] = None,
        seed: Annotated[int | None, Opt()] = None,
        compile: Annotated[
            bool | None, Opt("--compile/--no-compile", help="default: on GPU only")
        ] = None,
        streams: Annotated[
            int | None, Opt(help="CPU streams to split a batch over (0: auto)")
        ] = None,
    ) -> None:
        """Train the hybrid model (HDR pool through the camera simulator)."""
        overrides = {k: v for k, v in locals().items() if k not in ("config", "resume")}
        from mlx_hdr.train.trainer import train_from_options

        result = train_from_options(config, resume=resume, **overrides)
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
    return (
        f"done: {result.step} steps, best val PSNR {result.best_psnr:.2f} dB{speed}; "
        f"outputs in {result.run_dir}"
    )
