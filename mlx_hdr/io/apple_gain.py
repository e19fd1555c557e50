"""An iPhone HEIC's own HDR rendition, from Apple's HDR gain map.

iPhones (iOS 14.1 and later, iPhone 12 and later) store beside the photo an 8-bit grey
auxiliary image, ``urn:com:apple:photo:2020:aux:hdrgainmap``, at a half or a quarter of its
size, and the headroom it was made for. Apple's published method ("Applying Apple HDR effect
to your photos"), as the MIT-licensed ``apple-hdr-heic`` package implements it:

    hdr = sdr * (1 + (headroom - 1) * g),   g = sRGB EOTF of the map's value in [0, 1]

in linear light, 1.0 = the photo's white, with the map resized to the photo (Lanczos) and
clipped to [0, 1]. The factor is grey, so it holds for the photo in any RGB space, the sRGB
that ``read_ldr`` converts a Display P3 photo to included.

The headroom is the map's own XMP ``HDRGainMap:HDRGainMapHeadroom`` where the file gives it
(newer iOS), else it is read from the EXIF MakerNote's tags 33 and 48 by Apple's piecewise
formula (:func:`apple_headroom`). A map with neither is not used: Apple's method gives it no
headroom, and no default is guessed.

An iPhone JPEG ("Most Compatible") carries the same map as the second image of its MPF
container, named by its XMP (``apdi:AuxiliaryImageType`` and ``HDRGainMap:HDRGainMapVersion``,
as Skia finds it), stored in the photo's sensor orientation: it is turned by the photo's EXIF
orientation as ``read_ldr`` turns the photo.
"""

from __future__ import annotations

import io
import math
import re
import struct
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from mlx_hdr.color import srgb_to_linear
from mlx_hdr.errors import InputError
from mlx_hdr.io.exif import EXIF_IFD, exif_of, exif_orient, exif_orientation
from mlx_hdr.io.hdrgm import APP1, ContainerError, mpf_images, segments
from mlx_hdr.io.heic import APPLE_GAIN_MAP_AUX, aux_image, container, register

MAKER_NOTE = 0x927C
APPLE_MAP = "Apple HDR gain map"  # as the notes name it
JPEG_MARKS = (APPLE_GAIN_MAP_AUX.encode(), b"HDRGainMapVersion")  # in the map image's XMP
HEADROOM_TAG, GAIN_TAG = 33, 48  # Apple MakerNote: exiftool's HDRHeadroom and HDRGain
_XMP_HEADROOM = re.compile(
    rb"HDRGainMap:HDRGainMapHeadroom\s*(?:=\s*[\"']|>)\s*([0-9.eE+-]+)", re.IGNORECASE
)
_TYPES = {5: ">II", 10: ">ii", 11: ">f", 12: ">d"}  # rational, signed rational, float, double


def apple_headroom(maker33: float, maker48: float) -> float:
    """Apple's headroom (a linear ratio >= 1) from MakerNote tags 33 and 48."""
    if maker33 < 1.0:
        stops = -20.0 * maker48 + 1.8 if maker48 <= 0.01 else -0.101 * maker48 + 1.601
    else:
        stops = -70.0 * maker48 + 3.0 if maker48 <= 0.01 else -0.303 * maker48 + 2.303
    return float(2.0 ** max(stops, 0.0))


def maker_note_values(maker: bytes) -> dict[int, float]:
    """The numeric single-value entries of an Apple MakerNote (``b"Apple iOS\\0"``, a version,
    a byte order, then a TIFF IFD whose offsets count from the MakerNote's start)."""
    if not maker.startswith(b"Apple iOS\0") or len(maker) < 16:
        return {}
    order = ">" if maker[12:14] == b"MM" else "<"
    count = struct.unpack_from(order + "H", maker, 14)[0]
    values: dict[int, float] = {}
    for at in range(16, min(16 + 12 * count, len(maker) - 11), 12):
        tag, kind, n, where = struct.unpack_from(order + "HHII", maker, at)
        fmt = _TYPES.get(kind)
        if fmt is None or n != 1:
            continue
        fmt = order + fmt[1:]
        size = struct.calcsize(fmt)
        start = at + 8 if size <= 4 else where
        if start + size > len(maker):
            continue
        parts = struct.unpack_from(fmt, maker, start)
        if len(parts) == 2:
            if parts[1] == 0:
                continue
            values[tag] = parts[0] / parts[1]
        else:
            values[tag] = float(parts[0])
    return values


def _maker_values(path: Path) -> dict[int, float]:
    """The numeric entries of the photo's Apple MakerNote (empty without one)."""
    register(path)
    with Image.open(path) as im:
        maker = exif_of(im).get_ifd(EXIF_IFD).get(MAKER_NOTE)
    return maker_note_values(maker) if isinstance(maker, bytes) else {}


def headroom_of(path: Path) -> float:
    """The headroom ``path``'s Apple gain map was made for (module docstring), >= 1.

    Raises:
        InputError: the file gives none.
    """
    found = _XMP_HEADROOM.search(path.read_bytes())
    if found:
        try:
            headroom = float(found.group(1))
        except ValueError:
            headroom = math.nan
        why = f"its XMP HDRGainMapHeadroom {found.group(1).decode(errors='replace')!r} is unusable"
    else:
        values = _maker_values(path)
        missing = [str(t) for t in (HEADROOM_TAG, GAIN_TAG) if t not in values]
        headroom = math.nan if missing else apple_headroom(values[HEADROOM_TAG], values[GAIN_TAG])
        lacks = f"lacks tag {' and '.join(missing)}" if missing else "gives no number"
        why = f"no XMP HDRGainMapHeadroom, and the MakerNote {lacks}"
    if not np.isfinite(headroom):
        raise InputError(f"its Apple HDR gain map comes without a headroom ({why})", path)
    return max(headroom, 1.0)


def jpeg_apple_map(data: bytes) -> bytes | None:
    """The JPEG bytes of an MPF JPEG's Apple gain-map image (module docstring), or None."""
    try:
        for image in mpf_images(data)[1][1:]:
            head = segments(data, image.start)
            xmp = b"".join(data[s:e] for m, s, e in head if m == APP1)
            if all(mark in xmp for mark in JPEG_MARKS):
                return data[image.start : image.start + image.size]
    except (ContainerError, struct.error):
        return None
    return None


def _heic_map(path: Path) -> tuple[np.ndarray, tuple[int, int], int]:
    stored, size = aux_image(path, lambda kind: kind == APPLE_GAIN_MAP_AUX, APPLE_MAP)
    return stored, size, 1  # libheif turns the map as it turns the photo


def _jpeg_map(path: Path) -> tuple[np.ndarray, tuple[int, int], int]:
    found = jpeg_apple_map(path.read_bytes())
    if found is None:
        raise InputError(f"it carries no {APPLE_MAP}", path)
    try:
        with Image.open(path) as im, Image.open(io.BytesIO(found)) as gm:
            stored = np.asarray(gm.convert("L"), np.float32) / np.float32(255.0)
            return stored, im.size, exif_orientation(im)
    except (OSError, ValueError, SyntaxError) as exc:
        raise InputError(f"its {APPLE_MAP} cannot be decoded ({exc})", path) from None


def _gain_map(path: Path) -> tuple[np.ndarray, tuple[int, int], int]:
    """The map (HxW float32 in [0, 1], as stored), the photo's stored (width, height) and the
    EXIF orientation that turns both for display."""
    read = _heic_map if container(path) == "heif" else _jpeg_map
    stored, size, orientation = read(path)
    return (stored[..., 0] if stored.ndim == 3 else stored), size, orientation


def apple_gain(path) -> np.ndarray:
    """``path``'s Apple gain factor ``1 + (headroom - 1) * g`` (module docstring).

    Returns:
        HxW float32 in [1, headroom], at the photo's size and orientation as ``read_ldr``
        returns it.
    Raises:
        InputError: no map, no headroom, or a map whose shape does not fit the photo.
    """
    path = Path(path)
    headroom = headroom_of(path)
    stored, (w, h), orientation = _gain_map(path)
    mh, mw = stored.shape[:2]
    if abs(np.log((mw / mh) / (w / h))) > 0.02:
        raise InputError(f"its Apple HDR gain map ({mw}x{mh}) does not fit the photo", path)
    g = np.clip(cv2.resize(stored, (w, h), interpolation=cv2.INTER_LANCZOS4), 0.0, 1.0)
    factor = (1.0 + (headroom - 1.0) * srgb_to_linear(g)).astype(np.float32)
    return exif_orient(factor, orientation)
