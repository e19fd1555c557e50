"""The ``mlx-hdr`` command line: thin Typer wrappers over library functions.

Each sub-module defines ``register(app)``; errors are caught once, here. The command line is
an entry point, so it opts the process in to the CPU backend's settings
(:func:`mlx_hdr.backend.setup`) before the commands import ``mlx.core``.
"""

from __future__ import annotations

import importlib
import sys
import warnings

import typer

from mlx_hdr import backend
from mlx_hdr.errors import HDRError, os_error_line

backend.setup()  # before the commands below import mlx.core

COMMAND_MODULES = ("predict", "evaluate", "train", "data", "convert")

app = typer.Typer(
    name="mlx-hdr",
    help="Single-image LDR to HDR reconstruction with MLX.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

for _name in COMMAND_MODULES:
    importlib.import_module(f"mlx_hdr.cli.{_name}").register(app)


@app.callback()
def _root() -> None:
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
        sys.exit(1)
    except OSError as exc:  # e.g. an output folder that cannot be created
        print(f"error: {os_error_line(exc)}", file=sys.stderr)
        sys.exit(1)
    except (KeyboardInterrupt, typer.Abort):
        print("aborted", file=sys.stderr)
        sys.exit(130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.TyperException as exc:  # usage errors (Typer vendors its own click)
        if not hasattr(exc, "show"):
            raise
        exc.show()
        sys.exit(getattr(exc, "exit_code", 2))
    sys.exit(code if isinstance(code, int) else 0)
