"""A photo's own HDR rendition, where it carries one as a gain map.

Phones record highlights above the photo's white in a gain map stored beside the photo:
Google's Ultra HDR JPEG (Android 14 and later; ISO 21496-1, which libultrahdr also reads) and
Apple's HDR HEIC (iPhone 12 and later). Decoded at full boost, it says how much brighter than
the photo the camera measured each pixel: recorded highlights, up to the headroom it kept.
An Ultra HDR JPEG is decoded by Google's libultrahdr (through ``imagecodecs``), an Apple HEIC
by :mod:`mlx_hdr.io.apple_gain`.

:func:`recorded_gain` returns that as a per-pixel, per-channel factor over the photo,

    gain = (hdr + OFFSET) / (srgb_to_linear(base) + OFFSET),  OFFSET = 1/64

with ``hdr`` the decoded rendition and ``base`` the decoded photo (for a JPEG libultrahdr's own
decode of both, in the file's colour space; for a HEIC the photo as ``read_ldr`` returns it,
under Apple's grey factor), so that ``(srgb_to_linear(photo) + OFFSET) * gain -
OFFSET`` gives back the rendition for the photo as ``read_ldr`` returns it. A single-channel
map (the common case) is a grey factor and carries over exactly to the sRGB photo
``read_ldr`` converts a Display P3 file to; a three-channel one approximately.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from mlx_hdr.color import srgb_to_linear
from mlx_hdr.errors import InputError
from mlx_hdr.io.apple_gain import apple_gain
from mlx_hdr.io.heic import APPLE_HDR
from mlx_hdr.io.image_io import exif_orient, read_ldr
from mlx_hdr.io.photo_meta import ORIENTATION, ULTRA_HDR, existing_gain_map

OFFSET = 1 / 64  # libultrahdr's default offset_sdr and offset_hdr


def carries_uhdr(path) -> bool:
    """Whether ``path`` is a JPEG whose metadata announces an Ultra HDR / ISO 21496-1 gain map."""
    return existing_gain_map(path) == ULTRA_HDR


def _orientation(path: Path) -> int:
    with Image.open(path) as im:
        return int(im.getexif().get(ORIENTATION, 1) or 1)


def recorded_gain(path) -> np.ndarray | None:
    """The gain of the HDR rendition ``path`` records over its photo (module docstring).

    Returns:
        HxWx3 float32 > 0, oriented as ``read_ldr`` returns the photo (EXIF rotation applied);
        None where ``path`` carries no Ultra HDR or Apple gain map.
    Raises:
        InputError: it announces one that cannot be decoded (one line, naming the file).
    """
    path = Path(path)
    kind = existing_gain_map(path)
    if kind == APPLE_HDR:
        return _apple_recorded(path)
    return _uhdr_recorded(path) if kind == ULTRA_HDR else None


def _apple_recorded(path: Path) -> np.ndarray:
    factor = apple_gain(path)[..., None]
    lin = srgb_to_linear(read_ldr(path))
    return ((lin * factor + OFFSET) / (lin + OFFSET)).astype(np.float32)


def _uhdr_recorded(path: Path) -> np.ndarray:
    import imagecodecs

    data = path.read_bytes()
    try:
        hdr = imagecodecs.ultrahdr_decode(data)[..., :3].astype(np.float32)
        base = imagecodecs.ultrahdr_decode(data, dtype=np.uint8)[..., :3]
    except Exception as exc:  # imagecodecs raises its own error types, or lacks the codec
        why = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"its HDR gain map cannot be decoded ({why})", path) from None
    gain = (np.maximum(hdr, 0.0) + OFFSET) / (srgb_to_linear(base / 255.0) + OFFSET)
    return np.ascontiguousarray(exif_orient(gain.astype(np.float32), _orientation(path)))
