"""Whether a run may use its folder: a new run never writes into another run's folder.

A fresh run needs a new or empty ``run_dir``; ``resume`` continues the run there; ``overwrite``
replaces it: once the new run has been built, its files are set aside (``REPLACED``), and
removed when the new run saves its first checkpoint; a new run stopped or failed before that
leaves the folder as it was (:func:`forgotten_if_stopped`). Rank 0, the one that writes,
decides; under ``mlx.launch`` the other ranks follow its decision.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

from mlx_hdr.errors import HDRError, OutputClosed, UsageError
from mlx_hdr.io.atomic import write_text_atomic
from mlx_hdr.models.model_io import weights_dir
from mlx_hdr.train.checkpoint import checkpoint_step

RUN_FILES = ("config.json", "log.jsonl", "training_curves.png", "model.safetensors")
RUN_FOLDERS = ("checkpoints", "samples")
REPLACED = ".replaced"  # the files of a run being replaced, until the new run saves


def run_dir_problem(
    run_dir, resume: bool, overwrite: bool, busy: bool = False
) -> UsageError | None:
    """Why a run cannot use ``run_dir`` as asked (``busy``: another process trains in it,
    :func:`run_lock`), or None."""
    run_dir = Path(run_dir)
    if busy:
        return UsageError("another process is training in this folder", run_dir)
    if resume and overwrite:
        return UsageError("--resume continues a run and --overwrite replaces it: choose one")
    if resume or overwrite or not run_dir.exists():
        return None
    if not run_dir.is_dir():
        return UsageError("exists and is not a folder", run_dir)
    if resume_point(run_dir) is not None:
        return UsageError(
            "already holds a run: --resume continues it, --overwrite replaces it, or choose "
            "another --run-dir",
            run_dir,
        )
    if any((run_dir / name).exists() for name in RUN_FILES + RUN_FOLDERS):
        return UsageError(
            "holds a run without a checkpoint to resume from: --overwrite replaces it, or "
            "choose another --run-dir",
            run_dir,
        )
    if any(run_dir.iterdir()):
        return UsageError("is not empty: choose a new or empty --run-dir", run_dir)
    return None


def check_run_dir(run_dir, resume: bool, overwrite: bool, group=None, busy=False) -> None:
    """Raise :func:`run_dir_problem`'s error (rank 0's, on every rank of ``group``)."""
    import mlx.core as mx

    rank = 0 if group is None else group.rank()
    problem = run_dir_problem(run_dir, resume, overwrite, busy) if rank == 0 else None
    if group is not None:  # one all_sum: every rank learns rank 0's answer
        refused = mx.distributed.all_sum(mx.array(int(problem is not None)), group=group)
        if refused.item() and problem is None:
            raise HDRError("rank 0 refused the run folder", run_dir)
    if problem is not None:
        raise problem


def resume_point(run_dir) -> Path | None:
    """The checkpoint a resume continues from: ``last``, or ``best`` where that is later (an
    epoch's end saves ``best`` first, so a run stopped between the two, or before its first
    ``last``, has only ``best`` of that epoch); None where the run has neither. A ``last``
    that cannot be read is returned: loading it says what is wrong."""
    last, best = (Path(run_dir) / "checkpoints" / f"{n}.safetensors" for n in ("last", "best"))
    at_last, at_best = checkpoint_step(last), checkpoint_step(best)
    if not last.exists():
        return best if at_best is not None else None
    return best if at_best is not None and at_last is not None and at_best > at_last else last


def saved_anything(run_dir) -> bool:
    """Whether ``run_dir`` holds a checkpoint or a model (a run saves its best one first,
    before ``last``)."""
    run_dir = Path(run_dir)
    if (run_dir / "model.safetensors").exists():
        return True
    saved = (run_dir / "checkpoints").glob("*.safetensors")
    return any(not p.name.startswith(".") for p in saved)  # not a write cut short (.tmp)


@contextlib.contextmanager
def forgotten_if_stopped(run_dir, new: bool, existed: bool) -> Iterator[None]:
    """Run the block; stopped (Ctrl-C, SIGTERM, its output closed) or failed (diverged)
    before a ``new`` run saved anything, its files are removed, and its folder too unless it
    ``existed`` before the run; a run it replaces (:func:`set_aside`) is put back."""
    try:
        yield
    except (KeyboardInterrupt, OutputClosed, HDRError):
        if new and not saved_anything(run_dir):
            replacing = (Path(run_dir) / REPLACED).is_dir()
            clear_run(run_dir, remove_empty=not existed and not replacing)
            put_back(run_dir)
        raise


def set_aside(run_dir) -> None:
    """Move the run in ``run_dir`` (its ``RUN_FILES`` and ``RUN_FOLDERS``) into
    ``run_dir/REPLACED``, where it stays until the run replacing it saves (:func:`drop_set_aside`)
    or is stopped before that (:func:`put_back`)."""
    run_dir = Path(run_dir)
    aside = run_dir / REPLACED
    if not run_dir.is_dir():  # --overwrite of a folder not made yet: nothing to set aside
        return
    if aside.is_dir() and not saved_anything(run_dir):  # a run replacing it crashed unsaved
        clear_run(run_dir)  # that run's files; the one set aside is still the one to keep
        return
    shutil.rmtree(aside, ignore_errors=True)
    aside.mkdir()
    for name in (*RUN_FILES, *RUN_FOLDERS):
        if (run_dir / name).exists():
            os.replace(run_dir / name, aside / name)


def put_back(run_dir) -> None:
    """The run :func:`set_aside` moved away, back in ``run_dir`` (nothing where none was)."""
    aside = Path(run_dir) / REPLACED
    if aside.is_dir():
        for path in aside.iterdir():
            os.replace(path, Path(run_dir) / path.name)
        aside.rmdir()


def drop_set_aside(run_dir) -> None:
    """Remove the run :func:`set_aside` moved away: the run replacing it has saved."""
    shutil.rmtree(Path(run_dir) / REPLACED, ignore_errors=True)


def clear_run(run_dir, remove_empty: bool = False) -> None:
    """Remove a run's files from ``run_dir`` (other files stay); with ``remove_empty`` the
    folder too, where nothing else is left in it."""
    run_dir = Path(run_dir)
    for name in RUN_FILES:
        (run_dir / name).unlink(missing_ok=True)
    for name in RUN_FOLDERS:
        shutil.rmtree(run_dir / name, ignore_errors=True)
    if remove_empty:
        with contextlib.suppress(OSError):  # not empty (a lock, the user's files): kept
            run_dir.rmdir()


@contextlib.contextmanager
def run_lock(run_dir, main: bool = True) -> Iterator[bool]:
    """Hold ``run_dir`` for this process while it trains (rank 0, ``main``); yields whether
    it could (False: another process holds it: :func:`check_run_dir` refuses the run on
    every rank). An ``flock`` on a file in the user's cache (``weights_dir()/locks``), named
    after the folder's absolute path (:func:`_lock_key`: a symlink, or another case on
    macOS, finds the same lock), and where the folder exists, one on the folder itself
    (another ``MLX_HDR_HOME``, another user, finds that one); the locks go however the
    process ends."""
    if not main:
        yield True
        return
    locks = weights_dir() / "locks"
    locks.mkdir(parents=True, exist_ok=True)
    with open(locks / f"{_lock_key(Path(run_dir))}.lock", "a+") as f, _folder(run_dir) as fd:
        got = []
        try:
            for handle in [f.fileno(), *([] if fd is None else [fd])]:
                _flock(handle, must=handle == f.fileno())
                got.append(handle)
            yield True
        except BlockingIOError:  # another process holds it
            yield False
        finally:
            for handle in got:
                fcntl.flock(handle, fcntl.LOCK_UN)


def _flock(handle: int, must: bool) -> None:
    """An exclusive ``flock`` on ``handle`` without waiting (``BlockingIOError`` where
    another process holds it); where the file system has no flock (some network ones),
    an error only where the lock is a ``must``."""
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise
    except OSError:
        if must:
            raise


@contextlib.contextmanager
def _folder(run_dir) -> Iterator[int | None]:
    """An open descriptor of the folder ``run_dir`` for its lock, made here where only the
    folder is missing (and removed again where the run left it empty); None where it
    cannot be had."""
    run_dir = Path(run_dir)
    made = False
    if not run_dir.exists() and run_dir.parent.is_dir():
        with contextlib.suppress(OSError):
            run_dir.mkdir()
            made = True
    try:
        fd = os.open(run_dir, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        yield None
        return
    try:
        yield fd
    finally:
        os.close(fd)
        if made:
            with contextlib.suppress(OSError):  # not empty: the run's
                run_dir.rmdir()


def _lock_key(run_dir: Path) -> str:
    """The run folder's absolute path, symlinks resolved (the same before and after the
    folder and its parents are made), ignoring case on macOS, whose disks ignore it."""
    path = str(run_dir.resolve())
    path = path.casefold() if sys.platform == "darwin" else path
    return hashlib.sha256(path.encode()).hexdigest()[:20]


def write_config(run_dir: Path, cfg) -> None:
    """The run folder's ``config.json``: the ``TrainConfig`` ``cfg`` as indented JSON,
    written atomically."""
    write_text_atomic(
        Path(run_dir) / "config.json", json.dumps(json.loads(cfg.to_json()), indent=2)
    )
