"""User-facing errors: one line, naming the file and the problem."""

from __future__ import annotations

from pathlib import Path


class HDRError(Exception):
    """An error the CLI reports as a single line (no traceback)."""

    def __init__(self, message: str, path: str | Path | None = None):
        self.path = None if path is None else str(path)
        super().__init__(f"{self.path}: {message}" if self.path else message)


class InputError(HDRError):
    """Unreadable, corrupt or unsupported input file."""


class WeightsError(HDRError):
    """Missing, corrupt or mismatched model weights."""


def os_error_line(exc: OSError) -> str:
    """An ``OSError`` as one line: ``<file>: <reason>`` (just the reason without a file)."""
    where = f"{exc.filename}: " if exc.filename else ""
    return f"{where}{exc.strerror or exc}"
