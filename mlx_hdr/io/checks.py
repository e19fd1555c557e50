"""Checks every image reader and writer shares: the input file, the pixel limit, the array to
write, and OpenCV's own messages kept quiet. Each failure raises
:class:`mlx_hdr.errors.InputError` with a one-line message naming the file."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from mlx_hdr.errors import InputError

MAX_PIXELS = 100_000_000  # refuse images above this many pixels (decompression bombs)


def check_input(path, suffixes: tuple[str, ...], kind: str) -> Path:
    """``path`` as a ``Path`` where it names a readable, non-empty file whose suffix is one of
    ``suffixes``; ``InputError`` naming the problem (``kind``: "HDR", "LDR") otherwise."""
    path = Path(path)
    if path.suffix.lower() not in suffixes:
        raise InputError(
            f"unsupported {kind} file type {path.suffix!r} ({', '.join(suffixes)})", path
        )
    if not path.exists():
        raise InputError("file not found", path)
    if not path.is_file():
        raise InputError("not a regular file", path)
    if not os.access(path, os.R_OK):
        raise InputError("permission denied", path)
    if path.stat().st_size == 0:
        raise InputError("empty file (0 bytes)", path)
    return path


def _over_limit(width: int, height: int, max_pixels: int | None) -> str | None:
    """ "WxH = N MP, above the L MP limit" for more than ``max_pixels`` pixels (default
    ``MAX_PIXELS``), else None."""
    limit = MAX_PIXELS if max_pixels is None else max_pixels
    if width * height <= limit:
        return None
    return f"{width}x{height} = {width * height / 1e6:.3g} MP, above the {limit / 1e6:.3g} MP limit"


def check_pixels(path, width: int, height: int, max_pixels: int | None) -> None:
    """``InputError`` for an image of no size or of more than ``max_pixels`` pixels (default
    ``MAX_PIXELS``), before it is decoded."""
    if width <= 0 or height <= 0:
        raise InputError(f"invalid image size {width}x{height}", path)
    if over := _over_limit(width, height, max_pixels):
        raise InputError(f"image is {over} (possible decompression bomb; see --max-pixels)", path)


def too_large(width: int, height: int, max_pixels: int | None) -> None:
    """``ValueError`` for an image inside a file (a gain map) of more than ``max_pixels``
    pixels (default ``MAX_PIXELS``), before it is decoded: the reader names its file."""
    if over := _over_limit(width, height, max_pixels):
        raise ValueError(f"{over}; see --max-pixels")


def check_image(img, path: Path) -> np.ndarray:
    """An image to write to ``path`` as HxWx3 float32 (grey HxW repeated); ``InputError``
    for any other shape."""
    img = np.asarray(img)
    if img.ndim == 2:
        img = img[..., None].repeat(3, axis=-1)
    if img.ndim != 3 or img.shape[2] != 3 or img.shape[0] == 0 or img.shape[1] == 0:
        raise InputError(f"cannot write an image of shape {img.shape} (need HxWx3)", path)
    return img.astype(np.float32, copy=False)


_cv2_quiet = {"depth": 0, "level": None}
_cv2_lock = threading.Lock()


@contextlib.contextmanager
def quiet_cv2() -> Iterator[None]:
    """Silence OpenCV's own stderr messages (we raise our own one-line error instead).

    OpenCV's log level is global: a counter keeps it silent while any thread is inside.
    """
    logging = cv2.utils.logging
    with _cv2_lock:
        if _cv2_quiet["depth"] == 0:
            _cv2_quiet["level"] = logging.getLogLevel()
            logging.setLogLevel(logging.LOG_LEVEL_SILENT)
        _cv2_quiet["depth"] += 1
    try:
        yield
    finally:
        with _cv2_lock:
            _cv2_quiet["depth"] -= 1
            if _cv2_quiet["depth"] == 0:
                logging.setLogLevel(_cv2_quiet["level"])


_PIL_LIMIT = threading.Lock()


@contextlib.contextmanager
def pil_pixel_limit() -> Iterator[None]:
    """Pillow's own decompression-bomb check off while a file is opened (header only), so
    that ``--max-pixels`` above Pillow's default (89.5 MP, refused from 179 MP) is honoured:
    :func:`check_pixels` applies our limit right after, before any pixel is decoded."""
    with _PIL_LIMIT:
        saved = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None
        try:
            yield
        finally:
            Image.MAX_IMAGE_PIXELS = saved
