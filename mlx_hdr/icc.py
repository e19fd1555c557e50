"""Colour management on input: photos tagged with a non-sRGB ICC profile become sRGB.

The pipeline's LDR domain is sRGB display values (``color.srgb_to_linear``, Rec.709
primaries in the output). Phones tag JPEGs with Display P3 and many cameras offer Adobe RGB;
read as sRGB their colours would be wrong (P3 and Adobe RGB values look desaturated), so
``image_io.read_ldr`` converts them with Little CMS (Pillow's ``ImageCms``).
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

from PIL import Image


def icc_to_srgb(im: Image.Image, path: Path) -> Image.Image:
    """Convert an RGB/CMYK image with an embedded non-sRGB ICC profile (Display P3 from
    phones, Adobe RGB from cameras) to sRGB, relative colorimetric; colours outside sRGB
    clip. sRGB-tagged and untagged images are returned as they are (read as sRGB)."""
    icc = im.info.get("icc_profile")
    if not icc or im.mode not in ("RGB", "RGBA", "CMYK"):
        return im
    from PIL import ImageCms

    try:
        src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        if "srgb" in (ImageCms.getProfileDescription(src) or "").lower():
            return im
        return ImageCms.profileToProfile(
            im.convert("RGB") if im.mode == "RGBA" else im,
            src,
            ImageCms.createProfile("sRGB"),
            renderingIntent=ImageCms.Intent.RELATIVE_COLORIMETRIC,
            outputMode="RGB",
        )
    except (OSError, ValueError, ImageCms.PyCMSError) as exc:
        warnings.warn(f"{path}: ICC profile not usable ({exc}); read as sRGB", stacklevel=5)
        return im
