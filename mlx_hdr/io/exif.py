"""EXIF in photos as read here: the orientation, and a block Pillow may fail to parse.

Each function takes an open Pillow image or an array; none opens a file.
"""

from __future__ import annotations

import contextlib
import struct

import numpy as np
from PIL import Image

ORIENTATION = 0x0112  # the EXIF orientation tag
EXIF_IFD = 0x8769  # the EXIF sub-IFD (exposure settings, MakerNote)
PIXEL_SIZE = (0xA002, 0xA003)  # the sub-IFD's PixelXDimension, PixelYDimension


def exif_of(im: Image.Image) -> Image.Exif:
    """An open image's EXIF, empty where it has none or where Pillow cannot parse it (a
    truncated or garbled block raises SyntaxError, struct.error, ... there): a photo is read
    as if it had no EXIF rather than refused for its metadata."""
    try:
        return im.getexif()
    except Exception:  # Pillow's EXIF parser has no single error type
        return Image.Exif()


def pixel_orientation(im: Image.Image) -> int:
    """The orientation still to apply to the pixels Pillow decodes from ``im``
    (:func:`exif_orientation`): 1 for a TIFF, which Pillow turns by its tag as it loads it
    (and, opened from a file object by :func:`~mlx_hdr.io.image_io.open_photo`, rightly)."""
    return 1 if im.format == "TIFF" else exif_orientation(im)


def exif_orientation(im: Image.Image) -> int:
    """An open image's EXIF orientation tag (1..8; 1 where it has none or another value).

    A PNG is oriented only by an ``eXIf`` chunk before its pixels, as browsers do (PNG 3rd
    edition): EXIF kept in ImageMagick's "Raw profile type exif" text, which viewers do not
    read, often carries a stale tag of pixels already turned upright. A TIFF's tag is read
    before Pillow loads its pixels (and turns them, deleting the tag)."""
    if im.format == "PNG" and "exif" not in im.info:
        return 1
    value = exif_of(im).get(ORIENTATION, 1)
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


TRANSPOSE = {  # EXIF orientation -> the Pillow transpose that shows the photo upright
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def turned(im: Image.Image, orientation: int) -> Image.Image:
    """An open image's pixels turned by an EXIF orientation tag (1..8), as
    ``ImageOps.exif_transpose`` turns them, its metadata untouched: ``exif_transpose`` writes
    the EXIF again, which raises on a block Pillow reads but cannot write (a GPS tag of
    another type than the standard's)."""
    method = TRANSPOSE.get(orientation)
    return im if method is None else im.transpose(method)


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


def upright_exif(raw: bytes, size: tuple[int, int] | None = None) -> bytes | None:
    """An EXIF block (``b"Exif\\0\\0"`` + TIFF data, or the TIFF data alone) with its IFD0
    orientation set to 1 and, given ``size`` (width, height), the EXIF sub-IFD's
    PixelXDimension/PixelYDimension set to it where they hold it, patched in place: for a
    block Pillow parses but cannot write again (a GPS tag of the wrong type, say). The block
    as given where it has none of these tags; None where its TIFF header or IFD0 cannot be
    read."""
    head = b"Exif\0\0" if raw.startswith(b"Exif\0\0") else b""
    tiff = bytearray(raw[len(head) :])
    order = {b"II": "<", b"MM": ">"}.get(bytes(tiff[:2]))
    try:
        if order is None or struct.unpack_from(order + "H", tiff, 2)[0] != 42:
            return None
        ifd0 = struct.unpack_from(order + "I", tiff, 4)[0]
        sub = _patch_ifd(tiff, order, ifd0, {ORIENTATION: 1}).get(EXIF_IFD)
    except struct.error:
        return None
    if size is not None and sub:
        with contextlib.suppress(struct.error):  # a sub-IFD past the block: left as it is
            _patch_ifd(tiff, order, sub, dict(zip(PIXEL_SIZE, size, strict=True)))
    return b"Exif\0\0" + bytes(tiff)


def _patch_ifd(tiff: bytearray, order: str, ifd: int, values: dict[int, int]) -> dict:
    """Set the single SHORT/LONG tags of ``values`` in the IFD at ``ifd``, all of them where
    each value fits its tag's type, else none; the IFD's LONG values by tag (to find its
    sub-IFDs)."""
    longs, places = {}, []
    for i in range(struct.unpack_from(order + "H", tiff, ifd)[0]):
        entry = ifd + 2 + 12 * i
        tag, kind, count = struct.unpack_from(order + "HHI", tiff, entry)
        if kind in (4, 13) and count == 1:  # LONG, or IFD (a sub-IFD's offset)
            longs[tag] = struct.unpack_from(order + "I", tiff, entry + 8)[0]
        if tag in values and kind in (3, 4) and count == 1:
            fits = int(values[tag]) < (1 << (16 if kind == 3 else 32))
            places.append((entry + 8, "H" if kind == 3 else "I", int(values[tag]), fits))
    if all(fits for *_, fits in places):  # all or none: never a size half old, half new
        for at, kind, value, _ in places:
            struct.pack_into(order + kind, tiff, at, value)
    return longs
