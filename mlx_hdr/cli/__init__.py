"""The ``mlx-hdr`` command line: thin Typer wrappers over library functions.

:func:`main` is the console entry point. It sets its signal handlers before it imports the
commands (:mod:`mlx_hdr.cli.app`, which loads MLX: about a second on a cold start), so that a
Ctrl-C at any moment says ``aborted``; errors are caught once, in :func:`mlx_hdr.cli.app.run`.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import warnings

from mlx_hdr.errors import EXIT_INTERRUPTED, EXIT_TERMINATED, OutputClosed


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


def stop_requested() -> bool:
    """Whether a stopping signal came in this run: long loops check it between items, since
    the interrupt it raised may have been lost (Python only prints one raised inside a
    destructor or a callback), and later signals are only noted."""
    return bool(_stopped)


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


class GuardedOutput:
    """A text stream (``sys.stdout``) whose write or flush into a closed pipe raises
    :class:`OutputClosed`: an error that stops the command with its one line on stderr, as
    any other does, where Click would end it without a word (and a training run with its
    data thread still running)."""

    def __init__(self, stream):
        self.stream, self.closed_pipe = stream, False

    def write(self, text: str) -> int:
        return self._guard(self.stream.write, text)

    def writelines(self, lines) -> None:
        self._guard(self.stream.writelines, lines)

    def flush(self) -> None:
        self._guard(self.stream.flush)

    def _guard(self, call, *args):
        try:
            return call(*args)
        except BrokenPipeError:
            self.closed_pipe = True
            raise OutputClosed() from None

    def __getattr__(self, name: str):
        return getattr(self.stream, name)


def guard_stdout() -> GuardedOutput | None:
    """Put :class:`GuardedOutput` in place of ``sys.stdout``, line-buffered (into a pipe,
    Python would hold 8 KB of a training run's lines: ``| tee`` would show nothing for
    minutes, and a closed pipe would be found as late); None where there is no stdout
    (its descriptor closed: ``sys.stdout`` is None) or it is closed."""
    if sys.stdout is None or getattr(sys.stdout, "closed", False):
        return None
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(line_buffering=True)
    sys.stdout = GuardedOutput(sys.stdout)
    return sys.stdout


def main() -> None:
    """Console entry point: run the app, turning expected errors into one line."""
    warnings.formatwarning = _one_line_warning  # user-facing notes, not source locations
    _stopped.clear()
    previous = _handle_signals()
    out = guard_stdout()
    try:
        code = _run()
        if _stopped:  # say why, with the signal's own exit code
            why, code = STOPPED[_stopped[0]]
            print(why, file=sys.stderr)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        if out is not None:
            sys.stdout = out.stream
            if out.closed_pipe:  # what is still buffered would fail again at exit
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    sys.exit(code if isinstance(code, int) else 0)


def _run() -> int | None:
    """The app's exit code, the commands imported first; an interrupt, during those imports
    or the command, is an abort (said by :func:`main` where a signal raised it)."""
    try:
        from mlx_hdr.cli.app import run

        return run()
    except KeyboardInterrupt:
        if not _stopped:
            print("aborted", file=sys.stderr)
        return EXIT_INTERRUPTED
