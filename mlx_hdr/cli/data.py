"""``mlx-hdr data index|check|brackets``: build and inspect dataset manifests, merge your own
exposure brackets into LDR/HDR pairs."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated

import typer

from mlx_hdr.cli.common import Progress, not_empty, show_progress
from mlx_hdr.data.brackets import (
    MOVED_WARN,
    SHORTEST_CLIP_WARN,
    bracket_set_use,
    write_bracket_set,
)
from mlx_hdr.data.manifest import check, format_summary, index_dataset, summarize
from mlx_hdr.data.preprocess import MAX_HDR_VALUE

data_app = typer.Typer(
    help="Dataset manifests: index a folder once, check a manifest; merge exposure brackets."
)


def register(app: typer.Typer) -> None:
    """Add the ``data`` command group to ``app``."""
    app.add_typer(data_app, name="data")


@data_app.command("index")
def index_command(
    directory: Annotated[str, typer.Argument(help="Dataset folder (any supported layout).")],
    output: Annotated[
        str, typer.Option("-o", "--output", help="Manifest to write (JSON lines).")
    ] = "manifest.jsonl",
    max_value: Annotated[
        float, typer.Option(help="Drop paired HDRs brighter than this (the design: 4096).")
    ] = MAX_HDR_VALUE,
    orientation: Annotated[
        bool, typer.Option(help="Detect rotated/flipped HDRs (paired data).")
    ] = True,
    workers: Annotated[int, typer.Option(min=1, help="Decoding threads.")] = 2,
    progress: Progress = None,
) -> dict:
    """Scan DIRECTORY once and write a manifest of its pairs (kept/dropped and why)."""
    if not (math.isfinite(max_value) and max_value > 0):
        raise typer.BadParameter(f"{max_value} is not a number > 0", param_hint="--max-value")
    not_empty({"DIRECTORY": directory, "--output": output})
    directory, output = Path(directory), Path(output)
    if output.is_dir():  # found before the decoding, not after it
        raise typer.BadParameter(f"{output} is a folder; name the manifest file", param_hint="-o")
    manifest = index_dataset(
        directory, output, max_value, orientation, workers, show_progress(progress)
    )
    summary = summarize(manifest)
    typer.echo(format_summary(summary))
    typer.echo(f"wrote {output}")
    return summary


@data_app.command("check")
def check_command(
    path: Annotated[str, typer.Argument(help="A manifest (.jsonl) or a dataset folder.")],
) -> dict:
    """Print counts, drop reasons and dynamic-range statistics (exit code 3 when files of
    the kept pairs are missing)."""
    not_empty({"PATH": path})
    summary = check(Path(path))
    typer.echo(format_summary(summary))
    if summary["missing"]:
        raise typer.Exit(3)
    return summary


@data_app.command("brackets")
def brackets_command(
    photos: Annotated[
        list[str], typer.Argument(help="The bracket's photos (with EXIF), or their folder.")
    ],
    output: Annotated[str, typer.Option("-o", "--output", help="The bracket set's folder (new).")],
    align: Annotated[
        bool,
        typer.Option(help="Shift the photos onto each other first (a handheld bracket)."),
    ] = False,
) -> dict:
    """Merge one exposure bracket into an HDR and write it with its photos as a bracket set:
    real LDR/HDR pairs from your camera for validation and training."""
    not_empty({"PHOTOS": photos, "--output": output})
    output = Path(output)
    meta = write_bracket_set([Path(p) for p in photos], output, align)
    frames = meta["frames"]
    times = ", ".join(f"{f['exposure_time_s']:.4g} s" for f in frames)
    typer.echo(f"merged {len(frames)} photos ({times}) into {output / meta['merge']['output']}")
    for line in bracket_notes(frames, align):
        typer.echo(line)
    typer.echo(bracket_set_use(Path(output)))
    return meta


def bracket_notes(frames: list[dict], align: bool) -> list[str]:
    """What ``data brackets`` says about the set whose ``exposures.json`` frames are
    ``frames``: settings no photo records, photos that disagree with the next longer one
    (something moved), light the shortest photo clips, photos ``align`` could not align."""
    lines = []
    keys = (("f_number", "f-number"), ("iso", "ISO"))
    if unknown := [name for key, name in keys if frames[0][key] is None]:
        lens = " (a manual lens?)" if "f-number" in unknown else ""
        lines.append(
            f"no photo records its {' or '.join(unknown)}{lens}: merged by the rest; the set"
            " gives no absolute exposure (no EXIF white for the sky ceiling)"
        )
    if moved := [f for f in frames if (f["moved"] or 0.0) > MOVED_WARN]:
        lines.append(
            f"frames disagree with the next longer one (something moved?) in up to "
            f"{max(f['moved'] for f in moved):.0%} of the pixels both record: "
            + ", ".join(f["source"] for f in moved)
        )
    if (short := frames[-1])["clipped"] > SHORTEST_CLIP_WARN:
        lines.append(
            f"the shortest photo ({short['source']}) clips {short['clipped']:.1%} of its "
            "pixels: where a channel clips even there, the merge holds it at that photo's "
            "white, below its truth (add a shorter exposure to measure it)"
        )
    if stuck := [f["source"] for f in frames if align and f["shift_px"] is None]:
        lines.append(f"not aligned (too little in common with the others): {', '.join(stuck)}")
    return lines
