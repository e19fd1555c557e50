"""``mlx-hdr evaluate``: classical methods and the model side by side on a paired dataset."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from mlx_hdr.cli.common import Progress, not_empty, show_progress
from mlx_hdr.cli.predict import choice, set_floor_strength
from mlx_hdr.errors import EXIT_SOME_FAILED, UsageError
from mlx_hdr.eval.evaluate import evaluate, net_for_methods, summary_markdown
from mlx_hdr.infer.exposure import SKY_CEILING
from mlx_hdr.infer.pipeline import RESPONSE
from mlx_hdr.infer.response import RESPONSES
from mlx_hdr.io.image_io import MAX_PIXELS


def register(app: typer.Typer) -> None:
    """Add the ``evaluate`` command to ``app``."""
    app.command("evaluate")(evaluate_command)


def _report_error(case: str, problem: str) -> None:
    from tqdm import tqdm

    tqdm.write(f"error: {case}: {problem}", file=sys.stderr)


def settings_note(net, model, blend, flip, response, sky_ceiling, daylight_floor) -> list:
    """summary.md's line of the settings the model ran with, as the options that give them
    again (none where it did not run)."""
    if net is None:
        return []
    config = getattr(net, "config", None)
    options = [f"--model {model}" if model else ""]
    if getattr(config, "floor", None):
        options += [f"--floor-strength {config.floor_strength:g}"]
    options += [f"--response {response}", {True: "--flip", False: "--no-flip"}.get(flip, "")]
    options += ["" if blend else "--no-blend", f"--sky-ceiling {sky_ceiling:g}"]
    options += [f"--daylight-floor {daylight_floor:g}"]
    which = "" if model else "the bundled default, "
    floor = f"its floor {config.floor}" if getattr(config, "floor", None) else "no floor"
    said = " ".join(o for o in options if o)
    mirror = " (the mirror mean where the photo runs in one pass)" if flip is None else ""
    return [f"The model ({which}{floor}) ran with `{said}`{mirror}."]


def evaluate_command(
    dataset: Annotated[str, typer.Argument(help="Dataset folder (any supported layout).")],
    method: Annotated[
        list[str] | None,
        typer.Option(
            help="Repeatable: model, linear, akyuz2007, masia2017, kovaleski2014, "
            "expandnet2018 (needs MLX_HDR_EXPANDNET=weights.pth). Default: all of them, the "
            "model where it loads and expandnet2018 where MLX_HDR_EXPANDNET is set."
        ),
    ] = None,
    out: Annotated[str, typer.Option("--out", "-o", help="Report folder.")] = "eval-out",
    model: Annotated[
        str | None, typer.Option(help="Local .safetensors or Hugging Face repo id.")
    ] = None,
    progress: Progress = None,
    blend: Annotated[bool, typer.Option(help="Model: keep the input where not clipped.")] = True,
    flip: Annotated[
        bool | None,
        typer.Option(
            help="Model: average it over the photo and its mirror. Default: on for photos "
            "that run in one pass (up to 1 MP), off above.",
            show_default=False,
        ),
    ] = None,
    response: Annotated[
        str,
        typer.Option(
            help="Model: linearise kept pixels with the 'camera' (model curve and a camera "
            "JPEG's highlight roll-off), 'model' or 'srgb' curve; 'srgb' for sRGB renderings."
        ),
    ] = RESPONSE,
    floor_strength: Annotated[
        float | None,
        typer.Option(
            min=0.0,
            max=1.0,
            help="Model: the share of Kovaleski 2014's expansion its highlights keep at least, "
            "0-1 (default: the model's own).",
            show_default=False,
        ),
    ] = None,
    sky_ceiling: Annotated[
        float,
        typer.Option(
            min=0.0,
            help="Model: with an input's EXIF exposure, keep its clipped pixels, as a whole, at "
            "most this bright in cd/m² (as predict); 0: off.",
        ),
    ] = SKY_CEILING,
    daylight_floor: Annotated[
        float,
        typer.Option(
            min=0.0,
            help="Model: with an input's EXIF exposure, the daylight floor on clipped pixels it "
            "reads as a window, sky or light, cd/m² (as predict; 3000: an overcast sky); 0: off.",
        ),
    ] = 0.0,
    max_pixels: Annotated[
        int,
        typer.Option(min=1, help="Refuse larger images (a guard against decompression bombs)."),
    ] = MAX_PIXELS,
) -> None:
    """Write metrics.csv, summary.md and contact sheets; print the summary table (exit code
    3 when some cases failed)."""
    not_empty({"DATASET": dataset, "--out": out, "--model": model})
    dataset, out = Path(dataset), Path(out)
    response = choice(response, RESPONSES, "--response")
    if out.exists() and not out.is_dir():
        raise UsageError("exists and is not a folder: -o names the folder for the results", out)
    net = set_floor_strength(net_for_methods(method, model), floor_strength)
    report = evaluate(
        dataset,
        out,
        method,
        net,
        _report_error,
        show_progress(progress),
        blend=blend,
        max_pixels=max_pixels,
        flip=flip,
        response=response,
        sky_ceiling=sky_ceiling or None,
        daylight_floor=daylight_floor or None,
        notes=settings_note(net, model, blend, flip, response, sky_ceiling, daylight_floor),
    )
    n_cases = len({r["case"] for r in report.rows})
    if n_cases:
        typer.echo(summary_markdown(report.means, n_cases, str(dataset)))
        typer.echo(f"wrote {out}/metrics.csv, {out}/summary.md, {out}/sheets/")
    else:
        typer.echo("wrote nothing")
    if n := len(report.left_out):
        files = f"{n} file{'' if n == 1 else 's'}"
        typer.echo(
            f"note: {files} left out by the dataset's layout (summary.md says why)", err=True
        )
    if report.failed:
        raise typer.Exit(EXIT_SOME_FAILED)
