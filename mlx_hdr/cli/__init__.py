"""The ``mlx-hdr`` command line: thin Typer wrappers over library functions.

Each sub-module defines ``register(app)``; errors are caught once, here. The command line is
an entry point, so it opts the process in to the CPU backend's settings
(:func:`mlx_hdr.backend.setup`) before the commands import ``mlx.core``.
"""

from __future__ import annotations

import importlib
import signal
import sys
import threading
import warnings

import typer

from mlx_hdr import __version__, backend
from mlx_hdr.errors import (
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_TERMINATED,
    EXIT_USAGE,
    HDRError,
    UsageError,
    os_error_line,
)

backend.setup()  # before the commands below import mlx.core

COMMAND_MODULES = ("predict", "evaluate", "train", "data", "convert")

app = typer.Typer(
    name="mlx-hdr",
    help="Single-image LDR to HDR reconstruction with MLX.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,  # plain help: wrapped to the terminal, never cut off
)

for _name in COMMAND_MODULES:
    importlib.import_module(f"mlx_hdr.cli.{_name}").register(app)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"mlx-hdr {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", is_eager=True, callback=_print_version, help="Print the version."
    ),
) -> None:
    """Single-image LDR to HDR reconstruction with MLX."""


def _one_line_warning(message, category, filename, lineno, line=None) -> str:
    return f"warning: {message}\n"


STOPPED = {  # the signals that stop a run: what is said, the exit code
    signal.SIGINT: ("aborted", EXIT_INTERRUPTED),
    signal.SIGTERM: ("terminated", EXIT_TERMINATED),
}
_stopped: list[int] = []  # the signals received in this run


def _on_signal(signum, frame) -> None:
    """Ctrl-C or SIGTERM (``timeout``, systemd, ``docker stop``, a batch scheduler): noted,
    then raised as an interrupt, so that what was being written is removed (Typer turns
    the interrupt into exit code 130 before :func:`main` sees it); a second one while that
    cleanup runs is noted only."""
    _stopped.append(signum)
    if len(_stopped) == 1:
        raise KeyboardInterrupt


def _handle_signals() -> dict:
    """Install :func:`_on_signal` for ``STOPPED``'s signals that are not ignored (a job
    started with them ignored keeps them so); the handlers it replaced, to put back. None
    are installed outside the main thread, where Python cannot set handlers."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    previous = {s: signal.getsignal(s) for s in STOPPED}
    for s, handler in previous.items():
        if handler is not signal.SIG_IGN:
            signal.signal(s, _on_signal)
    return previous


def main() -> None:
    """Console entry point: run the app, turning expected errors into one line."""
    warnings.formatwarning = _one_line_warning  # user-facing notes, not source locations
    _stopped.clear()
    previous = _handle_signals()
    try:
        code = _run()
        if _stopped:  # say why, with the signal's own exit code
            why, code = STOPPED[_stopped[0]]
            print(why, file=sys.stderr)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    sys.exit(code if isinstance(code, int) else 0)


def _run() -> int | None:
    """The app's exit code; expected errors as one line and their exit code."""
    try:
        return app(standalone_mode=False)  # returns typer.Exit codes instead of raising them
    except HDRError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE if isinstance(exc, UsageError) else EXIT_ERROR
    except OSError as exc:  # e.g. an output folder that cannot be created
        print(f"error: {os_error_line(exc)}", file=sys.stderr)
        return EXIT_ERROR
    except (KeyboardInterrupt, typer.Abort):
        if not _stopped:
            print("aborted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except typer.Exit as exc:
        return exc.exit_code
    except typer.TyperException as exc:  # usage errors (Typer vendors its own click)
        if not hasattr(exc, "show"):
            raise
        exc.show()
        return getattr(exc, "exit_code", EXIT_USAGE)
