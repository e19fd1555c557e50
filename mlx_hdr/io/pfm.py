"""Portable float map (``.pfm``) reading and writing; :mod:`mlx_hdr.io.image_io` dispatches here.

Images are float32 HxWx3 scene-linear RGB. Rows are stored bottom-to-top; a negative scale
means little-endian. The scale's magnitude is ignored, as most PFM readers and writers do.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import numpy as np

from mlx_hdr.errors import InputError


def read_pfm(path: Path, check_size: Callable[[int, int], None] | None = None) -> np.ndarray:
    """Read ``PF`` (RGB) or ``Pf`` (grey, repeated to 3 channels) as float32 HxWx3.

    ``check_size(width, height)`` runs on the header before the pixels are decoded (it may
    raise, e.g. for too large images). Raises ``InputError`` for a bad header, a zero scale
    or truncated data.
    """
    with open(path, "rb") as f:
        data = f.read()
    m = re.match(rb"(P[Ff])\s+(\d+)\s+(\d+)\s+([-+0-9.eE]+)\s", data)
    if m is None:
        raise InputError("not a PFM file (bad header)", path)
    channels = 3 if m.group(1) == b"PF" else 1
    width, height = int(m.group(2)), int(m.group(3))
    try:
        scale = float(m.group(4))
    except ValueError:
        what = f"its scale {m.group(4).decode()!r} is no number"
        raise InputError(f"not a PFM file ({what})", path) from None
    if check_size is not None:
        check_size(width, height)
    if scale == 0:
        raise InputError("PFM scale is 0", path)
    count = width * height * channels
    body = data[m.end() :]
    while len(body) > 4 * count and body[:1] in (b" ", b"\t", b"\r", b"\n"):
        body = body[1:]  # the rest of the scale's line ("-1.0 \n", Windows' "\r\n")
    if len(body) < 4 * count:
        raise InputError(f"truncated PFM data ({len(body)} of {4 * count} bytes)", path)
    dtype = "<f4" if scale < 0 else ">f4"
    img = np.frombuffer(body, dtype, count).reshape(height, width, channels)[::-1]
    img = img.astype(np.float32)
    return np.repeat(img, 3, axis=-1) if channels == 1 else img


def write_pfm(path: Path, img: np.ndarray) -> None:
    """Write HxWx3 ``img`` as little-endian float32 ``PF`` (not atomic: callers are)."""
    height, width = img.shape[:2]
    with open(path, "wb") as f:
        f.write(f"PF\n{width} {height}\n-1.0\n".encode("ascii"))
        f.write(np.ascontiguousarray(img[::-1], "<f4").tobytes())
