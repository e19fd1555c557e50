"""The Typer app of the ``mlx-hdr`` command line: its commands, and how their outcome turns
into an exit code.

Each command module defines ``register(app)``. The command line is an entry point, so this
module opts the process in to the CPU backend's settings (:func:`mlx_hdr.backend.setup`)
before the commands import ``mlx.core``; :func:`mlx_hdr.cli.main` imports it only after its
signal handlers are set, so a Ctrl-C during these imports is an abort like any other.
"""

from __future__ import annotations

import importlib
import sys

import typer

from mlx_hdr import __version__, backend
from mlx_hdr.errors import (
    EXIT_ERROR,
    EXIT_USAGE,
    HDRError,
    OutputClosed,
    UsageError,
    os_error_line,
)

backend.setup()  # before the commands below import mlx.core

COMMAND_MODULES = ("predict", "evaluate", "train", "bundle", "data", "convert")

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


def run() -> int | None:
    """The app's exit code; expected errors as one line and their exit code. An interrupt
    goes on up as ``KeyboardInterrupt`` (:func:`mlx_hdr.cli.main` says it)."""
    try:
        return app(standalone_mode=False, prog_name="mlx-hdr")  # typer.Exit codes returned
    except (HDRError, OutputClosed) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE if isinstance(exc, UsageError) else EXIT_ERROR
    except OSError as exc:  # e.g. an output folder that cannot be created
        print(f"error: {os_error_line(exc)}", file=sys.stderr)
        return EXIT_ERROR
    except typer.Abort:  # Click's name for an interrupt inside a command
        raise KeyboardInterrupt from None
    except typer.Exit as exc:
        return exc.exit_code
    except typer.TyperException as exc:  # usage errors (Typer vendors its own click)
        if not hasattr(exc, "show"):
            raise
        if type(exc).__name__ == "NoArgsIsHelpError" or not hasattr(exc, "format_message"):
            exc.show()  # a command without arguments: its help
        else:
            print(f"error: {usage_line(exc)}", file=sys.stderr)
        return getattr(exc, "exit_code", EXIT_USAGE)


def usage_line(exc) -> str:
    """A usage error as one line: Click's message and where the command's help is."""
    message = " ".join(exc.format_message().split())
    ctx = getattr(exc, "ctx", None)
    if ctx is not None:
        return f"{message} (see {ctx.command_path} --help)"
    command = next((a for a in sys.argv[1:2] if a in COMMAND_MODULES), None)  # as typed
    return f"{message} (see mlx-hdr{f' {command}' if command else ''} --help)"
