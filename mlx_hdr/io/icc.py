"""Colour management on input: photos tagged with a non-sRGB ICC profile become sRGB.

The pipeline's LDR domain is sRGB display values (``color.srgb_to_linear``, Rec.709
primaries in the output). Phones tag JPEGs and HEICs with Display P3, many cameras offer
Adobe RGB and raw converters write 16-bit TIFFs in ProPhoto RGB; read as sRGB their colours
would be wrong (such values look desaturated), so ``image_io.read_ldr`` converts them with
Little CMS: Pillow's ``ImageCms`` for 8-bit images, ``imagecodecs``' build for 16-bit arrays
(16-bit PNG/TIFF, 10-bit HEIC).

A camera JPEG in Adobe RGB often carries no profile: the EXIF says so instead (ColorSpace
"uncalibrated" and the DCF option file's interoperability index ``R03``, as Canon and Nikon
write it), and viewers that honour it show Adobe RGB (1998); so is it read here, through a
profile Little CMS builds for it.

Saturated colours of a wider gamut lie outside sRGB: converted, a channel goes above 1. Cut
at 1 it would look clipped, and the pipeline would reconstruct a highlight the camera never
clipped (a saturated P3 orange, brightened as if it were a light). So a pixel the conversion pushes
into the blend ramp (display above ``CLIP_THRESHOLD``) is converted again without bounds and
:func:`fit_to_srgb` brings it into sRGB by desaturating it towards its own luminance, hue and
luminance kept, below the ramp; only as far as the source pixel itself was near its white
does it keep the plain, cut conversion (the same ramp on the source's largest channel).
"""

from __future__ import annotations

import io
import warnings
from functools import cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageCms
from PIL.ExifTags import IFD, Base

from mlx_hdr.color import (
    CLIP_THRESHOLD,
    clip_ramp,
    linear_to_srgb,
    rgb_to_luminance,
    row_slices,
    srgb_to_linear,
)

RELATIVE_COLORIMETRIC = 1  # Little CMS rendering intent
ADOBE_RGB = (0.64, 0.33, 0.21, 0.71, 0.15, 0.06)  # Adobe RGB (1998) primaries, xy
ADOBE_GAMMA = 563 / 256
D65 = (0.3127, 0.3290)
UNCALIBRATED = 0xFFFF  # EXIF ColorSpace: not sRGB
GAMUT_TOP = float(srgb_to_linear(np.float32(CLIP_THRESHOLD))) * 0.999  # linear, below the ramp
NEUTRAL = 0.1  # display max - min below which a converted pixel is too grey to lie outside sRGB
SRGB_ICC = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
# D50-adapted colorants (rows: red, green, blue XYZ) as profiles store them
SRGB_COLORANTS = ((0.4360, 0.2225, 0.0139), (0.3851, 0.7169, 0.0971), (0.1430, 0.0606, 0.7139))
DISPLAY_P3_COLORANTS = (
    (0.5151, 0.2412, -0.0011),
    (0.2920, 0.6922, 0.0419),
    (0.1571, 0.0666, 0.7841),
)


def _unusable(path: Path, exc: Exception, stacklevel: int) -> None:
    warnings.warn(
        f"{path}: ICC profile not usable ({exc}); read as sRGB", stacklevel=stacklevel + 1
    )


def has_colorants(src: ImageCms.ImageCmsProfile, colorants, tol: float = 0.003) -> bool:
    """Whether an RGB profile's primaries are ``colorants`` (3x3 D50 XYZ, rows R, G, B)."""
    p = src.profile
    try:
        have = [c[0] for c in (p.red_colorant, p.green_colorant, p.blue_colorant)]
    except (TypeError, IndexError):  # a profile without colorant tags (a LUT profile)
        return False
    return bool(np.abs(np.asarray(have, np.float64) - colorants).max() <= tol)


def has_srgb_curve(icc: bytes) -> bool:
    """Whether an RGB profile's greys come out as the same sRGB values (its tone curve is the
    sRGB one, its white D65): Little CMS converts a grey ramp."""
    import imagecodecs

    greys = np.linspace(0.05, 0.95, 10, dtype=np.float32)[:, None, None].repeat(3, -1)
    try:
        out = imagecodecs.cms_transform(
            greys, icc, SRGB_ICC, colorspace="rgb", outcolorspace="rgb", intent=1
        )
    except (RuntimeError, ValueError):
        return False
    return bool(np.abs(out - greys).max() < 2e-3)


def source_profile(icc: bytes, path: Path, stacklevel: int) -> ImageCms.ImageCmsProfile | None:
    """The embedded profile to convert from; None for an sRGB profile (sRGB by name, primaries
    and curve: "DCI-P3 D65 Gamut with sRGB Transfer" and a linear sRGB are not) or an
    unusable one (warned: the image is read as sRGB)."""
    try:
        src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        named = "srgb" in (ImageCms.getProfileDescription(src) or "").lower()
        if named and has_colorants(src, SRGB_COLORANTS) and has_srgb_curve(icc):
            return None
        if src.profile.xcolor_space.strip() not in ("RGB", "CMYK"):
            return None  # a grey profile: the image is read as it is
        return src
    except (OSError, ValueError, ImageCms.PyCMSError) as exc:
        _unusable(path, exc, stacklevel)
        return None


def fit_to_srgb(
    linear: np.ndarray,
    source_max: np.ndarray,
    plain: np.ndarray | None = None,
    luminance: np.ndarray | None = None,
    top: float = GAMUT_TOP,
) -> np.ndarray:
    """Scene-linear RGB in sRGB primaries, unbounded (..., 3; a wider gamut's colours have
    channels < 0 or > 1) -> display sRGB (..., 3) float32 in [0, 1]. Given ``luminance``
    (..., the colours' Y, relative to the white), ``linear`` may be in other primaries with
    a D65 white (Display P3's) and the result is display values in those; ``top`` (linear)
    sets where the desaturation starts (default ``GAMUT_TOP``; 1.0 only fits a colour into
    the gamut, without keeping it off the blend ramp).

    Where the largest channel lies above ``top`` (``GAMUT_TOP``: the blend ramp's start,
    linear), the colour is desaturated towards its luminance Y until it does not:
    ``Y + t * (rgb - Y)``, ``t`` in [0, 1] (continuous at ``top``, where t = 1). Negative
    channels are then cut at 0, as everywhere.

    ``source_max`` (...,) is the source pixel's largest display channel in its own encoding,
    [0, 1]: by ``color.clip_ramp`` of it (0 below ``CLIP_THRESHOLD``, 1 at its white) the
    result leans to the plain, cut conversion ``plain`` (display, default ``linear`` cut and
    encoded), so that what the camera clipped still reads as clipped.
    """
    linear = np.asarray(linear, np.float32)
    y = rgb_to_luminance(linear) if luminance is None else np.asarray(luminance, np.float32)
    y = np.maximum(y, 0.0)[..., None]
    high = linear.max(axis=-1, keepdims=True)
    t = np.clip((top - y) / np.maximum(high - y, 1e-6), 0.0, 1.0)
    fitted = np.where(high > top, y + t * (linear - y), linear)
    w = clip_ramp(source_max)[..., None]
    plain = linear_to_srgb(linear) if plain is None else plain
    return ((1 - w) * linear_to_srgb(fitted) + w * plain).astype(np.float32)


def _refit(out: np.ndarray, source: np.ndarray, scale: float, icc: bytes) -> None:
    """Convert again, unbounded (Little CMS in float), the pixels of ``out`` (HxWx3 display
    sRGB, cut to [0, 1]) that the conversion put in the blend ramp, from ``source`` (HxWx3
    integer values of full scale ``scale``), and bring them into sRGB by :func:`fit_to_srgb`;
    in place, in strips. Skipped: pixels too grey to lie outside sRGB (``NEUTRAL``) and those
    clipped in the source, which keep the plain conversion either way."""
    for rows in row_slices(out.shape[0]):
        part, src = out[rows], source[rows]
        r, g, b = part[..., 0], part[..., 1], part[..., 2]  # channel-wise: no slow reductions
        top = np.maximum(np.maximum(r, g), b)
        near = (top > CLIP_THRESHOLD) & (top - np.minimum(np.minimum(r, g), b) > NEUTRAL)
        near &= np.maximum(np.maximum(src[..., 0], src[..., 1]), src[..., 2]) < scale
        if near.any():
            part[near] = _fitted(part[near], src[near], scale, icc)


def _fitted(plain: np.ndarray, source: np.ndarray, scale: float, icc: bytes) -> np.ndarray:
    """Nx3 pixels converted unbounded from ``source`` and fitted (:func:`_refit`); ``plain``
    (their cut conversion) where Little CMS cannot convert in float."""
    import imagecodecs

    pix = source.astype(np.float32) / np.float32(scale)
    try:
        ext = imagecodecs.cms_transform(
            pix[None],
            icc,
            SRGB_ICC,
            colorspace="rgb",
            outcolorspace="rgb",
            intent=RELATIVE_COLORIMETRIC,
        )[0]
    except (RuntimeError, ValueError):  # a profile Little CMS takes for 8/16 bits only
        return plain
    linear = srgb_to_linear(np.maximum(ext, 0.0)) + np.minimum(ext, 0.0) / np.float32(12.92)
    return fit_to_srgb(linear, pix.max(axis=-1), plain)


def icc_to_srgb(im: Image.Image, path: Path) -> np.ndarray:
    """A decoded Pillow image of any mode -> HxWx3 float32 display sRGB in [0, 1].

    An RGB/CMYK image with an embedded non-sRGB ICC profile (Display P3 from phones, Adobe
    RGB from cameras) is converted relative colorimetric, an RGB one's colours outside sRGB
    fitted as the module docstring says (a CMYK one's cut). sRGB-tagged and untagged images,
    and other modes, are read as sRGB."""
    icc = im.info.get("icc_profile")
    if not icc and im.mode == "RGB" and exif_adobe_rgb(im):
        icc = adobe_rgb_icc()
    src = source_profile(icc, path, 6) if icc and im.mode in ("RGB", "RGBA", "CMYK") else None
    base = im.convert("RGB") if im.mode == "RGBA" else im
    if src is not None:
        try:
            srgb = ImageCms.profileToProfile(
                base,
                src,
                ImageCms.createProfile("sRGB"),
                renderingIntent=ImageCms.Intent.RELATIVE_COLORIMETRIC,
                outputMode="RGB",
            )
        except (OSError, ValueError, ImageCms.PyCMSError) as exc:
            _unusable(path, exc, 5)
            src = None
    arr = np.asarray(srgb if src is not None else im.convert("RGB"), np.float32)
    arr /= 255.0  # in place: one full-size float array, not two
    if src is not None and base.mode == "RGB":
        _refit(arr, np.asarray(base), 255.0, icc)
    return arr


def exif_adobe_rgb(im: Image.Image) -> bool:
    """Whether ``im``'s EXIF marks it Adobe RGB without a profile (module docstring); False
    where the EXIF cannot be parsed (the photo is read as sRGB, as before)."""
    try:
        exif = im.getexif()
        if exif.get_ifd(IFD.Exif).get(Base.ColorSpace) != UNCALIBRATED:
            return False
        return str(exif.get_ifd(IFD.Interop).get(Base.InteropIndex, "")).strip("\0 ") == "R03"
    except Exception:  # Pillow's EXIF parser raises SyntaxError, struct.error, ... on junk
        return False


def xyy(primaries) -> list[float]:
    """Primaries as xy (rx ry gx gy bx by, a white after them ignored) -> the xyY list, Y 1,
    that ``imagecodecs.cms_profile`` takes."""
    return [v for i in range(0, 6, 2) for v in (*primaries[i : i + 2], 1.0)]


@cache
def adobe_rgb_icc() -> bytes:
    """An Adobe RGB (1998) ICC profile (primaries, D65 white, gamma 563/256) by Little CMS."""
    import imagecodecs

    return imagecodecs.cms_profile(
        "rgb", whitepoint=[*D65, 1.0], primaries=xyy(ADOBE_RGB), gamma=ADOBE_GAMMA
    )


def icc_to_srgb16(rgb: np.ndarray, icc: bytes | None, path: Path) -> np.ndarray:
    """:func:`icc_to_srgb` for an HxWx3 uint16 RGB array (values over the full 16-bit range):
    HxWx3 float32 display sRGB in [0, 1]."""
    src = source_profile(icc, path, stacklevel=4) if icc else None
    out = rgb
    if src is not None:
        import imagecodecs

        try:
            out = imagecodecs.cms_transform(
                np.ascontiguousarray(rgb),
                icc,
                SRGB_ICC,
                colorspace="rgb",
                outcolorspace="rgb",
                intent=RELATIVE_COLORIMETRIC,
            )
        except (RuntimeError, ValueError) as exc:  # imagecodecs' CmsError is a RuntimeError
            _unusable(path, exc, 3)
            src = None
    arr = out.astype(np.float32)
    arr /= 65535.0
    if src is not None:
        _refit(arr, rgb, 65535.0, icc)
    return arr
