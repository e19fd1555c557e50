"""Colour management on input: photos tagged with a non-sRGB ICC profile become sRGB.

The pipeline's LDR domain is sRGB display values (``color.srgb_to_linear``, Rec.709
primaries in the output). Phones tag JPEGs and HEICs with Display P3 and many cameras offer
Adobe RGB; read as sRGB their colours would be wrong (P3 and Adobe RGB values look
desaturated), so ``image_io.read_ldr`` converts them with Little CMS: Pillow's ``ImageCms`` for
8-bit images, ``imagecodecs``' build for 16-bit arrays (10-bit HEIC).
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageCms

RELATIVE_COLORIMETRIC = 1  # Little CMS rendering intent


def _unusable(path: Path, exc: Exception, stacklevel: int) -> None:
    warnings.warn(
        f"{path}: ICC profile not usable ({exc}); read as sRGB", stacklevel=stacklevel + 1
    )


def _source_profile(icc: bytes, path: Path, stacklevel: int) -> ImageCms.ImageCmsProfile | None:
    """The embedded profile to convert from; None for an sRGB profile or an unusable one
    (warned: the image is read as sRGB)."""
    try:
        src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        if "srgb" in (ImageCms.getProfileDescription(src) or "").lower():
            return None
        return src
    except (OSError, ValueError, ImageCms.PyCMSError) as exc:
        _unusable(path, exc, stacklevel)
        return None


def icc_to_srgb(im: Image.Image, path: Path) -> Image.Image:
    """Convert an RGB/CMYK image with an embedded non-sRGB ICC profile (Display P3 from
    phones, Adobe RGB from cameras) to sRGB, relative colorimetric; colours outside sRGB
    clip. sRGB-tagged and untagged images are returned as they are (read as sRGB)."""
    icc = im.info.get("icc_profile")
    if not icc or im.mode not in ("RGB", "RGBA", "CMYK"):
        return im
    src = _source_profile(icc, path, stacklevel=6)
    if src is None:
        return im
    try:
        return ImageCms.profileToProfile(
            im.convert("RGB") if im.mode == "RGBA" else im,
            src,
            ImageCms.createProfile("sRGB"),
            renderingIntent=ImageCms.Intent.RELATIVE_COLORIMETRIC,
            outputMode="RGB",
        )
    except (OSError, ValueError, ImageCms.PyCMSError) as exc:
        _unusable(path, exc, 5)
        return im


def icc_to_srgb16(rgb: np.ndarray, icc: bytes | None, path: Path) -> np.ndarray:
    """:func:`icc_to_srgb` for an HxWx3 uint16 RGB array (values over the full 16-bit range):
    the converted uint16 array, or ``rgb`` itself when there is nothing to convert."""
    src = _source_profile(icc, path, stacklevel=4) if icc else None
    if src is None:
        return rgb
    import imagecodecs

    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    try:
        return imagecodecs.cms_transform(
            np.ascontiguousarray(rgb),
            src.tobytes(),
            srgb,
            colorspace="rgb",
            outcolorspace="rgb",
            intent=RELATIVE_COLORIMETRIC,
        )
    except (RuntimeError, ValueError) as exc:  # imagecodecs' CmsError is a RuntimeError
        _unusable(path, exc, 3)
        return rgb
