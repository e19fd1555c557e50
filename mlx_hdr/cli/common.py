"""What several commands share: the progress bar option."""

from __future__ import annotations

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
