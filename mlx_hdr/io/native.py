"""A photo's own Display P3 pixels, for an output that can carry its profile.

``read_ldr`` converts every photo to sRGB, which the model and the HDR outputs work in. An
iPhone photo is Display P3, though, and its most saturated colours lie outside sRGB. The
gain-map JPEG's base is the photo for SDR screens, and a JPEG can carry the photo's own
profile: there the photo's own pixels keep those colours on wide-gamut screens (every
M-series Mac's), and the gain map is computed in the base's colour space
(:mod:`mlx_hdr.io.uhdr`).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageCms, ImageOps

from mlx_hdr.color import rgb_to_rec709_matrix
from mlx_hdr.errors import InputError
from mlx_hdr.io.exif import exif_orientation
from mlx_hdr.io.heic import HEIF_SUFFIXES, register
from mlx_hdr.io.icc import DISPLAY_P3_COLORANTS, has_colorants, has_srgb_curve

DISPLAY_P3 = (0.680, 0.320, 0.265, 0.690, 0.150, 0.060, 0.3127, 0.3290)  # and the sRGB curve
P3_TO_REC709 = rgb_to_rec709_matrix(DISPLAY_P3)  # linear, apply as ``x @ P3_TO_REC709.T``
P3_FROM_REC709 = np.linalg.inv(P3_TO_REC709).astype(np.float32)


@dataclass(frozen=True)
class NativeBase:
    """A photo's own pixels in its own colour space.

    ``pixels``: HxWx3 uint8 display values, oriented as ``read_ldr`` returns the photo;
    ``icc``: its ICC profile; ``from_rec709``: 3x3, scene-linear Rec.709 -> the profile's
    linear RGB (apply as ``x @ from_rec709.T``); its tone curve is the sRGB one.
    """

    pixels: np.ndarray
    icc: bytes
    from_rec709: np.ndarray


def is_display_p3(icc: bytes | None) -> bool:
    """Whether an ICC profile is Display P3: its primaries, a D65 white and the sRGB tone
    curve (Apple's "Display P3", Samsung's "DCI-P3 D65 Gamut with sRGB Transfer")."""
    if not icc:
        return False
    try:
        src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        rgb = src.profile.xcolor_space.strip() == "RGB"
        return rgb and has_colorants(src, DISPLAY_P3_COLORANTS) and has_srgb_curve(icc)
    except (OSError, ValueError, ImageCms.PyCMSError):  # a corrupt profile (text fields too)
        return False


def display_p3_base(path, shape: tuple[int, int]) -> NativeBase | None:
    """``path``'s own pixels where it is an 8-bit RGB photo tagged Display P3, turned by its
    EXIF orientation and area-resized to ``shape`` (HxW, the photo as loaded); None for any
    other photo, or where its pixels do not fit ``shape``."""
    path = Path(path)
    try:
        if path.suffix.lower() in HEIF_SUFFIXES:
            register(path)
        with Image.open(path) as im:
            icc = im.info.get("icc_profile")
            if im.mode != "RGB" or not is_display_p3(icc):
                return None
            turned = exif_orientation(im) != 1
            im.load()
            pixels = np.asarray(ImageOps.exif_transpose(im) if turned else im)
    except (OSError, ValueError, SyntaxError, InputError, Image.DecompressionBombError):
        return None  # read_ldr, which read the photo, has its own size guard
    (h, w), (ph, pw) = shape, pixels.shape[:2]
    if abs(np.log((pw / ph) / (w / h))) > 0.01:
        return None
    if (ph, pw) != (h, w):
        pixels = cv2.resize(pixels, (w, h), interpolation=cv2.INTER_AREA)
    return NativeBase(np.ascontiguousarray(pixels), icc, P3_FROM_REC709)
