"""What several commands share: the progress bar option, the check of names given empty."""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer

Progress = Annotated[
    bool | None,
    typer.Option(
        "--progress/--no-progress",
        help="Show a progress bar (default: when the error stream is a terminal).",
        show_default=False,
    ),
]


def show_progress(progress: bool | None) -> bool:
    """``--progress``/``--no-progress`` as given, else whether stderr is a terminal (a log
    file or a pipe gets no bar)."""
    return sys.stderr.isatty() if progress is None else progress


def not_empty(names: dict[str, list | str | os.PathLike | None]) -> None:
    """A usage error for an empty name among ``names`` (what an unset shell variable gives,
    ``-o "$OUT"``), by option: it would stand for the current folder. None: not given."""
    for hint, given in names.items():
        if given is None:
            continue
        if "" in map(str, [given] if isinstance(given, str | os.PathLike) else given):
            problem = "an empty name (an unset variable?); name the current folder as ."
            raise typer.BadParameter(problem, param_hint=hint)
