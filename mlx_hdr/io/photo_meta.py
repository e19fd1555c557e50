"""What a photo carries besides its pixels: EXIF to pass on to outputs, and an HDR gain map
that makes it HDR already (an iPhone HEIC, an Ultra HDR JPEG)."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from mlx_hdr.errors import InputError
from mlx_hdr.io.heic import HEIF_SUFFIXES, gain_map_kind, open_heif, register

ORIENTATION = 0x0112
ISO_21496_NS = b"urn:iso:std:iso:ts:21496:-1"


def read_exif(path) -> bytes | None:
    """The photo's EXIF block (``b"Exif\\0\\0"`` + TIFF data) with the orientation set to 1 (the
    pixels ``read_ldr`` returns are turned already), or None when it has none or is unreadable."""
    path = Path(path)
    try:
        if path.suffix.lower() in HEIF_SUFFIXES:
            register(path)
        with Image.open(path) as im:
            exif = im.getexif()
            if not exif:
                return None
            if ORIENTATION in exif:
                exif[ORIENTATION] = 1
            return exif.tobytes()
    except (OSError, ValueError, SyntaxError, InputError):
        return None


def existing_gain_map(path) -> str | None:
    """``"an Apple HDR gain map"`` and the like when the photo already carries an HDR rendition
    through a gain map (HEIC: Apple's auxiliary image or XMP; JPEG: Ultra HDR / ISO 21496-1
    metadata), else None. Unreadable files give None (reading them reports the problem)."""
    path = Path(path)
    suffix = path.suffix.lower()
    try:
        if suffix in HEIF_SUFFIXES:
            return gain_map_kind(open_heif(path).info)
        if suffix in (".jpg", ".jpeg"):
            with Image.open(path) as im:
                app = b"".join(content for _, content in getattr(im, "applist", []))
            if b"hdrgm:Version" in app or ISO_21496_NS in app:
                return "an Ultra HDR gain map"
    except (OSError, ValueError, SyntaxError, InputError):
        return None
    return None
