"""EXIF in photos as read here: the orientation, and a block Pillow may fail to parse.

Each function takes an open Pillow image or an array; none opens a file.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

ORIENTATION = 0x0112  # the EXIF orientation tag
EXIF_IFD = 0x8769  # the EXIF sub-IFD (exposure settings, MakerNote)


def exif_of(im: Image.Image) -> Image.Exif:
    """An open image's EXIF, empty where it has none or where Pillow cannot parse it (a
    truncated or garbled block raises SyntaxError, struct.error, ... there): a photo is read
    as if it had no EXIF rather than refused for its metadata."""
    try:
        return im.getexif()
    except Exception:  # Pillow's EXIF parser has no single error type
        return Image.Exif()


def exif_orientation(im: Image.Image) -> int:
    """An open image's EXIF orientation tag (1..8; 1 where it has none or another value).

    A PNG is oriented only by an ``eXIf`` chunk before its pixels, as browsers do (PNG 3rd
    edition): EXIF kept in ImageMagick's "Raw profile type exif" text, which viewers do not
    read, often carries a stale tag of pixels already turned upright."""
    if im.format == "PNG" and "exif" not in im.info:
        return 1
    value = exif_of(im).get(ORIENTATION, 1)
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def exif_orient(img: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation tag (1..8) to an HxWxC array, like ``ImageOps.exif_transpose``."""
    ops = {
        1: lambda a: a,
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1],
        5: lambda a: a.swapaxes(0, 1),
        6: lambda a: np.rot90(a, -1),
        7: lambda a: a[::-1, ::-1].swapaxes(0, 1),
        8: lambda a: np.rot90(a, 1),
    }
    return np.ascontiguousarray(ops.get(orientation, ops[1])(img))
