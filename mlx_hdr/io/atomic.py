"""Atomic file writes: a temporary file beside the target, renamed over it on success.

Every output of the package (images, manifests, plots, safetensors, downloads) goes through
here, so a failure never leaves a half-written file, and outputs get the permissions an
ordinary ``open(path, "w")`` would give them (``0o666 & ~umask``; ``mkstemp`` makes 0600).
The one exception is the training log ``log.jsonl``: appended one line per record (a crash
can cut at most its last line, which the reader skips), rewritten atomically on resume.
Temporary names are ``.<stem>.<random>.tmp<suffix>`` (the stem's first ``STEM_BYTES``
bytes), hidden and recognisable. A write that
fails for lack of storage (a full disk, a quota, an I/O error) is an ``InputError`` naming
the file and the cause.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from mlx_hdr.errors import InputError, UsageError


def is_file_name(path) -> bool:
    """Whether an output path names a file: it has an extension and is not an existing
    folder (``out.exr``, ``weights.safetensors``; not ``out`` or an existing ``runs.v2/``)."""
    path = Path(path)
    return bool(path.suffix) and not path.is_dir()


# failures of the storage itself, as opposed to a bad path or a bug
STORAGE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO, errno.EROFS)


def storage_cause(exc: BaseException, folder: Path) -> str | None:
    """Why a write into ``folder`` failed when the storage is to blame, else None.

    An ``OSError`` says so by its errno. Writers in C (OpenEXR, MLX) raise ``RuntimeError``:
    its text may name the cause ("... No space left on device."); if not, a folder on a
    file system with no free block is taken to be full.
    """
    if isinstance(exc, OSError):
        return exc.strerror if exc.errno in STORAGE_ERRNOS else None
    if not isinstance(exc, Exception):
        return None
    causes = [os.strerror(code) for code in STORAGE_ERRNOS]
    named = [cause for cause in causes if cause in str(exc)]
    if named:
        return named[0]
    if "Unable to write" in str(exc):  # MLX's writer: "[write] Unable to write N bytes ..."
        return "the file system took only part of it; is it full?"
    with contextlib.suppress(OSError):
        if os.statvfs(folder).f_bavail == 0:
            return os.strerror(errno.ENOSPC)
    return None


def current_umask() -> int:
    """The process umask (read by setting and restoring it)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def file_mode() -> int:
    """Permission bits of a newly created ordinary file: ``0o666 & ~umask``."""
    return 0o666 & ~current_umask()


STEM_BYTES = 64  # of the target's stem in a temporary name (file names: 255 bytes)


def short_stem(name: str, limit: int = STEM_BYTES) -> str:
    """``name`` cut to at most ``limit`` bytes in the file system's encoding, by whole
    characters: a temporary name beside a target whose own name is near the limit fits."""
    while len(os.fsencode(name)) > limit:
        name = name[:-1]
    return name


def temp_path(path: Path, suffix: str | None = None) -> Path:
    """Create an empty temporary file beside ``path`` and return its name.

    The name ends with ``suffix`` (default ``path``'s suffix): writers that pick the format
    from the extension (OpenCV, MLX's safetensors) then write the right format.
    """
    suffix = path.suffix if suffix is None else suffix
    prefix = f".{short_stem(path.stem)}."
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=prefix, suffix=f".tmp{suffix}")
    os.close(fd)
    return Path(tmp)


def commit(tmp: Path, path: Path) -> None:
    """Flush ``tmp`` to the disk, give it ordinary file permissions and rename it over
    ``path``, then flush the folder's entry: a crash of the system leaves the old file or
    the new one, not an empty one, as far as ``fsync`` reaches (macOS's keeps the drive's
    own cache)."""
    _fsync(tmp)  # before chmod: the file is still the writer's to open
    os.chmod(tmp, file_mode())
    os.replace(tmp, path)
    with contextlib.suppress(OSError):  # not every file system syncs a folder
        _fsync(path.parent)


def _fsync(path: Path) -> None:
    """Flush ``path`` (a file or a folder) to the disk; a file system that cannot (EINVAL,
    ENOTSUP: some network and FUSE ones) is let be."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS):
            raise
    finally:
        os.close(fd)


def nearest_existing(folder) -> Path:
    """``folder`` or the nearest of its parents that exists: what making it starts from
    (the root where none does)."""
    folder = Path(folder)
    return next(p for p in (folder, *folder.parents) if p.exists() or p == p.parent)


def check_folder_of(path) -> None:
    """``UsageError`` where the nearest existing folder on ``path``'s way is a file
    (``-o notes.txt/out.jsonl``): its folder cannot be made."""
    base = nearest_existing(Path(path).parent)
    if base.exists() and not base.is_dir():
        raise UsageError("is a file, not a folder: the output cannot go in it", base)


@contextlib.contextmanager
def atomic_write(path, *, suffix: str | None = None, parents: bool = False) -> Iterator[Path]:
    """Yield a temporary path (same directory) that replaces ``path`` on success.

    ``suffix``: the temporary name's ending (default ``path``'s suffix). ``parents``: create
    missing parent directories; otherwise a missing directory is an ``InputError``, and so is
    a directory where no file can be created (read-only, no permission). On any exception the
    temporary file is removed and ``path`` is left untouched; one caused by the storage
    (:func:`storage_cause`) becomes an ``InputError`` "cannot write (<cause>)" naming ``path``.
    """
    path = Path(path)
    if parents:
        check_folder_of(path)
        path.parent.mkdir(parents=True, exist_ok=True)
    elif not path.parent.is_dir():
        raise InputError("output directory does not exist", path.parent)
    try:
        tmp = temp_path(path, suffix)
    except OSError as exc:
        raise InputError(f"cannot write here ({exc.strerror or exc})", path) from None
    try:
        yield tmp
        commit(tmp, path)
    except BaseException as exc:
        cause = storage_cause(exc, path.parent)  # before the partial file frees its blocks
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if cause is None and isinstance(exc, OSError) and str(tmp) in (exc.filename, exc.filename2):
            cause = exc.strerror or str(exc)  # e.g. the rename onto a folder: name the output
        if cause:
            raise InputError(f"cannot write ({cause})", path) from None
        raise


def write_text_atomic(path, text: str) -> Path:
    """Replace ``path`` with UTF-8 ``text`` through :func:`atomic_write`; the path."""
    path = Path(path)
    with atomic_write(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path


def copy_atomic(src, dst) -> Path:
    """Copy the file ``src`` to ``dst`` atomically."""
    with atomic_write(dst) as tmp:
        shutil.copyfile(src, tmp)
    return Path(dst)


def save_safetensors_atomic(path, arrays: dict, metadata: dict, *, parents: bool = True) -> Path:
    """``mx.save_safetensors(path, arrays, metadata)`` through :func:`atomic_write`; the path.

    The temporary name ends with ``.safetensors``: MLX appends it to any other name.
    """
    import mlx.core as mx

    path = Path(path)
    with atomic_write(path, suffix=".safetensors", parents=parents) as tmp:
        mx.save_safetensors(str(tmp), arrays, metadata=metadata)
    return path
