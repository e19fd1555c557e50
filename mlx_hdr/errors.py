"""User-facing errors: one line, naming the file and the problem."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# exit codes of the ``mlx-hdr`` command (README, "Errors and exit codes")
EXIT_ERROR = 1  # the command stopped: one line "error: ..."
EXIT_USAGE = 2  # bad options or arguments, found before any work
EXIT_SOME_FAILED = 3  # some inputs failed (one line each); the others were written
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143  # 128 + SIGTERM


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


class OutputClosed(Exception):
    """The command's standard output was closed while it ran (``| head`` exited). Not an
    :class:`HDRError`: a command's handling of one input's error must not take it for one
    (it would go on to the next input, and fail there again)."""

    def __init__(self):
        super().__init__("standard output was closed (a broken pipe)")


def os_error_line(exc: OSError) -> str:
    """An ``OSError`` as one line: ``<file>: <reason>`` (just the reason without a file)."""
    where = f"{exc.filename}: " if exc.filename else ""
    return f"{where}{exc.strerror or exc}"


LIBRARY_NOTES = 3  # a library's notes on one file printed in full (warnings_naming)


@contextmanager
def warnings_naming(path: str | Path) -> Iterator[None]:
    """Warnings raised inside, issued again after it, each once and on one line; a
    library's with ``path`` in front unless they name it already: a library's note on a
    damaged file (Pillow's "Corrupt EXIF data. ...") says nothing of which file it is about,
    where this package's own notes name theirs (an input or an output). A library's notes
    beyond the first ``LIBRARY_NOTES`` on one file (Pillow gives one per damaged EXIF tag)
    are counted on one more line instead."""
    caught: list = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            yield
    finally:  # also when the file failed: its notes come before its error line
        seen: set[str] = set()
        library = 0  # a library's distinct notes so far
        for w in caught:
            text = " ".join(str(w.message).split())
            ours = "mlx_hdr" in Path(w.filename).parts
            text = text if ours or str(path) in text else f"{path}: {text}"
            if text in seen:
                continue
            seen.add(text)
            library += not ours
            if ours or library <= LIBRARY_NOTES:
                warnings.warn(text, w.category, stacklevel=3)
        if (more := library - LIBRARY_NOTES) > 0:
            warnings.warn(f"{path}: and {more} more notes like these", UserWarning, stacklevel=3)
