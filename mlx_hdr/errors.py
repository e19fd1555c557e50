"""User-facing errors: one line, naming the file and the problem."""

from __future__ import annotations

from pathlib import Path

# exit codes of the ``mlx-hdr`` command (README, "Errors and exit codes")
EXIT_ERROR = 1  # the command stopped: one line "error: ..."
EXIT_USAGE = 2  # bad options or arguments, found before any work
EXIT_SOME_FAILED = 3  # some inputs failed (one line each); the others were written
EXIT_INTERRUPTED = 130


class HDRError(Exception):
    """An error the CLI reports as a single line (no traceback)."""

    def __init__(self, message: str, path: str | Path | None = None):
        self.path = None if path is None else str(path)
        # a library's reason may span lines (libheif's do): the message stays on one
        message = " ".join(line.strip() for line in str(message).splitlines() if line.strip())
        super().__init__(f"{self.path}: {message}" if self.path else message)


class InputError(HDRError):
    """Unreadable, corrupt or unsupported input file."""


class WeightsError(HDRError):
    """Missing, corrupt or mismatched model weights."""


class UsageError(HDRError):
    """Options or arguments that cannot work together, found before any work (exit code 2)."""


def os_error_line(exc: OSError) -> str:
    """An ``OSError`` as one line: ``<file>: <reason>`` (just the reason without a file)."""
    where = f"{exc.filename}: " if exc.filename else ""
    return f"{where}{exc.strerror or exc}"
