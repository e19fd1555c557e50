"""``mlx-hdr predict``: LDR photos -> HDR files and tone-mapped previews."""

from __future__ import annotations

import math
import os
import sys
import warnings
from pathlib import Path
from typing import Annotated

import typer

from mlx_hdr.cli import stop_requested
from mlx_hdr.cli.common import Progress, not_empty, show_progress
from mlx_hdr.errors import EXIT_SOME_FAILED
from mlx_hdr.infer.exposure import SKY_CEILING
from mlx_hdr.infer.methods import METHODS
from mlx_hdr.infer.outputs import FILE_SUFFIXES, FORMATS, JPEG_SUFFIXES, Plan, plan_outputs
from mlx_hdr.infer.pipeline import MULTIPLE, RESPONSE, WORK_PIXELS, PredictOptions, run_plan
from mlx_hdr.infer.response import RESPONSES
from mlx_hdr.io.atomic import is_file_name
from mlx_hdr.io.hdrgm_read import MAX_STOPS
from mlx_hdr.io.image_io import MAX_PIXELS
from mlx_hdr.io.uhdr import UhdrOptions

METHOD_CHOICES = ("model", *METHODS)  # expandnet2018 needs MLX_HDR_EXPANDNET=weights.pth
TONEMAP_CHOICES = ("reinhard", "reinhard2002", "exposure")
MAX_EV = 20.0  # --exposure range: 2^20 is a million times brighter or darker


def register(app: typer.Typer) -> None:
    """Add the ``predict`` command to ``app``."""
    app.command("predict")(predict_command)


def choice(value: str, choices: tuple[str, ...], name: str) -> str:
    """``value`` if it is one of ``choices``, else a usage error naming option ``name``."""
    if value not in choices:
        raise typer.BadParameter(f"{value!r} is not one of {', '.join(choices)}", param_hint=name)
    return value


def _check_numbers(work_pixels: int, exposure: float, max_boost: float | None) -> None:
    """Usage errors for values the pipeline would reject per file, or obey uselessly (an
    all-black preview at +128 EV)."""
    problem = None
    if work_pixels < MULTIPLE * MULTIPLE:
        name, problem = "--work-pixels", f"{work_pixels} is below {MULTIPLE * MULTIPLE}"
    elif not math.isfinite(exposure) or abs(exposure) > MAX_EV:
        name, problem = "--exposure", f"{exposure} is not between -{MAX_EV:g} and {MAX_EV:g}"
    elif max_boost is not None and not math.isfinite(max_boost):
        name, problem = "--max-boost", f"{max_boost} is not a finite number"
    if problem:
        raise typer.BadParameter(problem, param_hint=name)


def _check_combinations(
    out: Path, fmt: list[str] | None, preview: bool | None, preview_only: bool, folder: bool
) -> None:
    """Usage errors for options that contradict each other or ``-o`` (one of them would be
    ignored): ``--preview-only`` with ``--no-preview`` or a ``--format``; ``-o x.png`` (the
    preview alone) with either; ``-o`` naming one file with a ``--format`` of another kind.
    ``folder``: ``-o`` was given with a trailing slash."""
    suffix = out.suffix.lower() if is_file_name(out) and not folder else ""
    named = "uhdr" if suffix in JPEG_SUFFIXES else suffix[1:]  # the format -o's file is
    hint = problem = None
    if preview_only and (preview is False or fmt):
        hint, problem = "--preview-only", "writes the preview alone (no --no-preview, no --format)"
    elif preview_only and suffix in FILE_SUFFIXES and suffix != ".png":
        hint, problem = "--preview-only", f"writes the preview alone: name a .png, not {out.name}"
    elif suffix == ".png" and (preview is False or fmt):
        hint = "--out"
        problem = f"{out.name} is the preview alone; name a folder for --format or --no-preview"
    elif suffix in FILE_SUFFIXES and fmt and any(f != named for f in fmt):
        wanted = " ".join(f"--format {f}" for f in fmt)
        hint, problem = "--format", f"-o {out.name} names one file; name a folder for {wanted}"
    if problem:
        raise typer.BadParameter(problem, param_hint=hint)


MODEL_ONLY = (  # PredictOptions fields the classical methods do not read, and their options
    ("blend", "--no-blend"),
    ("flip", "--flip"),
    ("response", "--response"),
    ("sky_ceiling_asked", "--sky-ceiling"),
    ("daylight_floor", "--daylight-floor"),
    ("work_pixels", "--work-pixels"),
)


def _note_unused(opts: PredictOptions, plan: Plan, model: str | None, max_boost: float | None):
    """Warn about options that the run (its method, ``plan``'s outputs) does not use."""
    default = PredictOptions()
    if opts.method != "model":
        given = ["--model"] if model is not None else []
        given += [
            flag for name, flag in MODEL_ONLY if getattr(opts, name) != getattr(default, name)
        ]
        if given:
            verb = "is" if len(given) == 1 else "are"
            note = f"{', '.join(given)} {verb} not used with --method {opts.method}"
            warnings.warn(note, stacklevel=2)
    suffixes = {d.suffix.lower() for _, job in plan.jobs for d in job}
    uhdr = [("--max-boost", max_boost is not None)]
    uhdr += [("--gainmap-quality", opts.uhdr.quality != default.uhdr.quality)]
    uhdr += [("--gainmap-scale", opts.uhdr.scale != default.uhdr.scale)]
    preview = [("--tonemap", opts.tonemap != default.tonemap), ("--exposure", opts.exposure_ev)]
    for flags, wanted, what in (
        (uhdr, JPEG_SUFFIXES, "the gain-map JPEG (--format uhdr)"),
        ([("--float", opts.dtype != default.dtype)], (".exr",), "the EXR (--format exr)"),
        (preview, (".png",), "the preview"),
    ):
        given = [flag for flag, set_ in flags if set_]
        if given and suffixes and not suffixes & set(wanted):
            verb = "acts" if len(given) == 1 else "act"
            warnings.warn(f"{', '.join(given)} {verb} on {what} only", stacklevel=2)


def set_floor_strength(net, floor_strength: float | None):
    """``net`` with ``--floor-strength`` applied (None: as it is); usage errors where there is
    no model to apply it to, or the model has no floor."""
    if floor_strength is None:
        return net
    if net is None:
        raise typer.BadParameter("applies to --method model only", param_hint="--floor-strength")
    from mlx_hdr.infer.model_hub import with_floor_strength

    try:
        return with_floor_strength(net, floor_strength)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--floor-strength") from None


def _report_error(path: str, problem: str) -> None:
    from tqdm import tqdm

    tqdm.write(f"error: {path}: {problem}", file=sys.stderr)


def predict_command(
    inputs: Annotated[list[str], typer.Argument(help="Images, folders or glob patterns.")],
    out: Annotated[
        str,
        typer.Option(
            "--out",
            "-o",
            help="Output folder (a name ending in / always is one), or a file for a single input.",
        ),
    ] = ".",
    model: Annotated[
        str | None,
        typer.Option(help="Local .safetensors or Hugging Face repo id (default: bundled)."),
    ] = None,
    method: Annotated[
        str,
        typer.Option(
            help=f"One of {', '.join(METHOD_CHOICES)}; expandnet2018 needs its released "
            "weights.pth in the environment variable MLX_HDR_EXPANDNET."
        ),
    ] = "model",
    fmt: Annotated[
        list[str] | None,
        typer.Option(
            "--format",
            help="hdr, exr, pfm, avif (10-bit PQ), or uhdr (<stem>_uhdr.jpg: a gain-map JPEG, "
            "the photo on SDR screens and HDR on HDR ones); repeat for several. Default hdr.",
        ),
    ] = None,
    float32: Annotated[bool, typer.Option("--float", help="float32 EXR (default half).")] = False,
    preview: Annotated[
        bool | None,
        typer.Option(
            "--preview/--no-preview",
            help="Also write <stem>_preview.png (default: yes, except with only --format uhdr).",
        ),
    ] = None,
    preview_only: Annotated[bool, typer.Option(help="Write only the preview PNG.")] = False,
    tonemap: Annotated[str, typer.Option(help=f"One of {', '.join(TONEMAP_CHOICES)}.")] = (
        "reinhard"
    ),
    exposure: Annotated[
        float, typer.Option(help=f"Preview exposure in stops (EV), -{MAX_EV:g} to {MAX_EV:g}.")
    ] = 0.0,
    max_size: Annotated[
        int | None,
        typer.Option(min=0, help="Downscale so the longer side is at most N px (0: as it is)."),
    ] = None,
    blend: Annotated[
        bool,
        typer.Option(
            help="Keep the input where it is not clipped (--no-blend: the reconstruction as "
            "the method gives it, for diagnosis; a black-and-white photo's stays tinted)."
        ),
    ] = True,
    work_pixels: Annotated[
        int,
        typer.Option(
            help="The model runs on at most this many pixels (at least "
            f"{MULTIPLE * MULTIPLE}); larger photos via a gain map."
        ),
    ] = WORK_PIXELS,
    flip: Annotated[
        bool | None,
        typer.Option(
            help="Model: average it over the photo and its mirror (a second pass). Default: "
            "on for photos the model sees in one pass (up to --work-pixels), off above.",
            show_default=False,
        ),
    ] = None,
    response: Annotated[
        str,
        typer.Option(
            help="Model: how kept (unclipped) pixels are linearised: 'camera' (the curve read "
            "from the network's output and a camera JPEG's highlight roll-off), 'model' (that "
            "curve only) or 'srgb' (for images rendered through the sRGB curve)."
        ),
    ] = RESPONSE,
    floor_strength: Annotated[
        float | None,
        typer.Option(
            min=0.0,
            max=1.0,
            help="Model: how much of Kovaleski & Oliveira 2014's expansion (in stops) the "
            "recovered highlights keep at least, 0-1 (default: the model's own, 1 for the "
            "bundled one; lower is less bold, 0 the network alone).",
            show_default=False,
        ),
    ] = None,
    sky_ceiling: Annotated[
        float | None,
        typer.Option(
            min=0.0,
            help="Model: with the photo's EXIF exposure (time, f-number, ISO), keep its clipped "
            f"pixels, as a whole, at most this bright in cd/m² (a sunlit cloud; default: "
            f"{SKY_CEILING:g}); 0: off.",
            show_default=False,
        ),
    ] = None,
    daylight_floor: Annotated[
        float,
        typer.Option(
            min=0.0,
            help="Model: with the photo's EXIF exposure, raise clipped pixels it reads as a "
            "light brighter than a lamp-lit room (a window, the sky), as a whole, towards this "
            "luminance in cd/m² by at most 2 stops (3000: an overcast sky); 0: off.",
        ),
    ] = 0.0,
    max_boost: Annotated[
        float | None,
        typer.Option(
            min=0,
            max=MAX_STOPS,
            help="Gain-map JPEG: the most stops its HDR rendition brightens a pixel over the "
            "photo, a clipped one's above SDR white (default: the prediction's peak, at most "
            "4; at most 16).",
        ),
    ] = None,
    gainmap_quality: Annotated[
        int, typer.Option(min=1, max=100, help="Gain-map JPEG: JPEG quality of the gain map.")
    ] = UhdrOptions.quality,
    gainmap_scale: Annotated[
        int,
        typer.Option(min=1, max=16, help="Gain-map JPEG: the map is 1/N of the photo (1 = full)."),
    ] = UhdrOptions.scale,
    skip_hdr_inputs: Annotated[
        bool,
        typer.Option(
            help="Skip photos that carry an HDR gain map already (Ultra HDR JPEG, iPhone "
            "HEIC or JPEG, Samsung HEIC, AVIF with a gain map)."
        ),
    ] = False,
    input_gain_map: Annotated[
        bool,
        typer.Option(
            help="Keep the highlights a phone photo records in its gain map (Ultra HDR JPEG, "
            "iPhone HEIC or JPEG, Samsung HEIC, AVIF with a gain map), reconstructing only "
            "where they are cut (--no-input-gain-map: from the photo alone)."
        ),
    ] = True,
    wide_gamut: Annotated[
        bool | None,
        typer.Option(
            help="A wide-gamut photo's colours outside sRGB (Display P3, Adobe RGB, ProPhoto, "
            "BT.2020): by default kept where a format holds them with values >= 0 (the AVIF; "
            "the gain-map JPEG and preview, in Display P3); --wide-gamut keeps them in the "
            "EXR/PFM too, as Rec.709 values below 0; --no-wide-gamut fits them into sRGB "
            "everywhere.",
            show_default=False,
        ),
    ] = None,
    skip_existing: Annotated[
        bool,
        typer.Option(
            help="Skip inputs whose outputs all exist: a batch run again after an "
            "interruption goes on where it stopped (each file is written whole or not at all; "
            "only whether the files exist is checked, not the options they were made with)."
        ),
    ] = False,
    max_pixels: Annotated[
        int,
        typer.Option(min=1, help="Refuse larger images (a guard against decompression bombs)."),
    ] = MAX_PIXELS,
    progress: Progress = None,
) -> None:
    """Reconstruct HDR from LDR images (exit code 3 when some of them failed)."""
    not_empty({"INPUTS": inputs, "--out": out, "--model": model})
    _check_numbers(work_pixels, exposure, max_boost)
    folder = out.endswith(("/", os.sep))  # "v1.2/" is a folder, not a file of type .2
    out = Path(out)
    _check_combinations(out, fmt, preview, preview_only, folder)
    opts = PredictOptions(
        method=choice(method, METHOD_CHOICES, "--method"),
        blend=blend,
        formats=tuple(dict.fromkeys(choice(f, tuple(FORMATS), "--format") for f in fmt or ["hdr"])),
        dtype="float" if float32 else "half",
        preview=preview,
        preview_only=preview_only,
        tonemap=choice(tonemap, TONEMAP_CHOICES, "--tonemap"),
        exposure_ev=exposure,
        max_size=max_size,
        work_pixels=work_pixels,
        flip=flip,
        response=choice(response, RESPONSES, "--response"),
        sky_ceiling=SKY_CEILING if sky_ceiling is None else sky_ceiling or None,
        sky_ceiling_asked=sky_ceiling is not None,
        daylight_floor=daylight_floor or None,
        max_pixels=max_pixels,
        uhdr=UhdrOptions(max_boost, gainmap_quality, gainmap_scale),
        skip_hdr_inputs=skip_hdr_inputs,
        input_gain_map=input_gain_map,
        wide_gamut=wide_gamut,
        skip_existing=skip_existing,
    )
    plan = plan_outputs(inputs, out, opts, folder)  # output problems: before any work
    _note_unused(opts, plan, model, max_boost)
    if n := len(plan.done):
        typer.echo(f"skipped {n} input{'s' * (n > 1)} whose outputs all exist (--skip-existing)")
    if n := len(plan.own):
        names = ", ".join(map(str, plan.own[:3])) + (", ..." if n > 3 else "")
        what = (
            "a file named like an mlx-hdr output"
            if n == 1
            else f"{n} files named like mlx-hdr's outputs"
        )
        them = "it" if n == 1 else "one"
        typer.echo(f"note: left out {what} ({names}); name {them} to take it", err=True)
    net = None
    if opts.method == "model":
        from mlx_hdr.infer.model_hub import load_net

        net = load_net(model)[0]
    net = set_floor_strength(net, floor_strength)  # a usage error first for another method
    if opts.method == "expandnet2018" and plan.jobs:  # its weights, once, before any photo
        from mlx_hdr.infer.methods.expandnet2018 import load_expandnet

        load_expandnet()
    try:
        shown = show_progress(progress)
        report = run_plan(plan, net, opts, _report_error, shown, stop=stop_requested)
    except KeyboardInterrupt as exc:  # say what was written before it stopped
        if (done := getattr(exc, "report", None)) and (shown := _written(done)):
            typer.echo(f"wrote {shown} before it stopped (--skip-existing goes on from there)")
        raise
    typer.echo(f"wrote {_written(report) or 'nothing'}")
    if report.failed:
        raise typer.Exit(EXIT_SOME_FAILED)


def _written(report) -> str:
    """The files ``report`` says were written, the first four named; "" when none."""
    files = [str(f) for _, written in report.written for f in written]
    return ", ".join(files[:4]) + (f", ... ({len(files)} files)" if len(files) > 4 else "")
