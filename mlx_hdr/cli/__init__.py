"""The ``mlx-hdr`` command line: thin Typer wrappers over library functions.

Each sub-module defines ``register(app)``; errors are caught once, here.
"""

from __future__ import annotations

import importlib
import sys
import warnings

import typer

from mlx_hdr import __version__
from mlx_hdr.errors import (
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    HDRError,
    UsageError,
    os_error_line,
)

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


def main() -> None:
    """Console entry point: run the app, turning expected errors into one line."""
    warnings.formatwarning = _one_line_warning  # user-facing notes, not source locations
    try:
        code = app(standalone_mode=False)  # returns typer.Exit codes instead of raising them
    except HDRError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(EXIT_USAGE if isinstance(exc, UsageError) else EXIT_ERROR)
    except OSError as exc:  # e.g. an output folder that cannot be created
        print(f"error: {os_error_line(exc)}", file=sys.stderr)
        sys.exit(EXIT_ERROR)
    except (KeyboardInterrupt, typer.Abort):
        print("aborted", file=sys.stderr)
        sys.exit(EXIT_INTERRUPTED)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.TyperException as exc:  # usage errors (Typer vendors its own click)
        if not hasattr(exc, "show"):
            raise
        exc.show()
        sys.exit(getattr(exc, "exit_code", EXIT_USAGE))
    sys.exit(code if isinstance(code, int) else 0)
