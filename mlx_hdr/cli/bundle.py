"""``mlx-hdr bundle``: a trained model packaged to share (``mlx_hdr.train.bundle``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mlx_hdr.cli.common import not_empty


def register(app: typer.Typer) -> None:
    """Add the ``bundle`` command to ``app``."""
    app.command("bundle")(bundle_command)


def bundle_command(
    model: Annotated[str, typer.Argument(help="The model to package: a run's model.safetensors.")],
    output: Annotated[str, typer.Option("-o", "--out", help="The .safetensors to write.")],
    checkpoint: Annotated[
        list[str] | None,
        typer.Option(
            help="Take the trainable weights from this training checkpoint instead (e.g. "
            "RUN/checkpoints/last.safetensors); given several times, their mean."
        ),
    ] = None,
    floor: Annotated[
        str | None,
        typer.Option(help="Record a classical floor of the output: kovaleski2014."),
    ] = None,
    floor_strength: Annotated[
        float | None,
        typer.Option(help="Record the share (0-1) of the floor's expansion that it keeps."),
    ] = None,
) -> None:
    """Package a trained model to share: float16, without the encoder's unused classifier
    (outputs unchanged), usable with predict --model."""
    from mlx_hdr.train.bundle import bundle_model

    not_empty({"MODEL": model, "--out": output, "--checkpoint": checkpoint or []})
    paths = [Path(c) for c in checkpoint or ()]
    done = bundle_model(Path(model), Path(output), paths, floor, floor_strength)
    if done.steps:
        what = (
            f"step {done.steps[0]}" if len(done.steps) == 1 else f"the mean of steps {done.steps}"
        )
        typer.echo(f"weights of {what} from {', '.join(map(str, checkpoint))}")
    typer.echo(
        f"wrote {done.path}: {done.parameters / 1e6:.2f} M parameters, "
        f"max |output diff| {done.max_diff:.2e}"
    )
