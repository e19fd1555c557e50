"""A photo's own colours, for outputs that can carry them.

``read_ldr`` converts every photo to sRGB, which the model and the HDR outputs work in. An
iPhone photo is Display P3, though, and a camera's may be Adobe RGB: their most saturated
colours lie outside sRGB, and ``read_ldr`` fits them into it. Two outputs keep them:

- the gain-map JPEG's base is the photo for SDR screens, and a JPEG can carry the photo's
  own profile: there a Display P3 photo's own pixels keep those colours on wide-gamut
  screens (every M-series Mac's), and the gain map is computed in the base's colour space
  (:mod:`mlx_hdr.io.uhdr`);
- the HDR itself: :func:`gamut_delta` is what ``read_ldr``'s fitting took from each pixel,
  in linear Rec.709, and :func:`with_wide_gamut` gives it back to the reconstruction. Colours
  outside sRGB then have a channel below 0 (or above what sRGB allows at their luminance).
  The AVIF's BT.2020 holds them as they are, the gain-map JPEG's HDR rendition keeps the
  base's P3 colours, a preview in Display P3 shows them; an EXR or PFM holds them, on
  request, as Rec.709 values below 0 (macOS's "extended linear sRGB"; this project's HDR
  values are otherwise >= 0). A Radiance ``.hdr`` cannot hold negative values and keeps
  the fitted colours.
"""

from __future__ import annotations

import io
import struct
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache, partial
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageCms

from mlx_hdr.color import (
    DISPLAY_P3,
    REC709_CHROMATICITIES,
    clip_ramp,
    linear_to_srgb,
    rgb_to_luminance,
    rgb_to_rec709_matrix,
    row_slices,
    srgb_to_linear,
)
from mlx_hdr.errors import InputError
from mlx_hdr.io.exif import exif_orient, exif_orientation, turned
from mlx_hdr.io.heic import (
    AVIF_SUFFIXES,
    HEIF_SUFFIXES,
    avif_deep_pixels,
    deep_pixels,
    nclx_to_rec709,
    open_heif,
)
from mlx_hdr.io.icc import (
    D65,
    DISPLAY_P3_COLORANTS,
    RELATIVE_COLORIMETRIC,
    adobe_rgb_icc,
    exif_adobe_rgb,
    has_colorants,
    has_srgb_curve,
    source_profile,
    xyy,
)
from mlx_hdr.io.image_io import is_16bit, open_photo, read_16bit_rgb

P3_TO_REC709 = rgb_to_rec709_matrix(DISPLAY_P3)  # linear, apply as ``x @ P3_TO_REC709.T``
P3_FROM_REC709 = np.linalg.inv(P3_TO_REC709).astype(np.float32)
PROFILE_DATE = (2026, 1, 1, 0, 0, 0)  # the creation date written in a made profile
CICP_DISPLAY_P3 = 12  # CICP colour primaries: SMPTE EG 432-1, P3 with a D65 white
OFFSET = 1 / 64  # keeps the gain of a black pixel finite (as the gain map's offset)
BOMB = Image.DecompressionBombError
NEAR_TOP = 0.9  # display: above it a pixel may have been fitted into sRGB (icc.GAMUT_TOP)
NEAR_BLACK = (1.5 / 255, 12 / 255)  # display: below it a channel may have been cut at 0
# (8 bits; 16 bits, where Little CMS's 16-bit transform leaves such a channel up to ten
# 8-bit levels above 0)


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


def display_p3_icc(path) -> bytes | None:
    """The Display P3 ICC profile of an RGB photo tagged so (:func:`is_display_p3`; a HEIC or
    AVIF tagged by its CICP primaries alone gets :func:`made_display_p3_icc`), without
    decoding its pixels; None for any other photo or one that cannot be opened."""
    try:
        with open_photo(Path(path)) as im:
            return _p3_profile(im, Path(path))
    except (OSError, ValueError, RuntimeError, SyntaxError, KeyError, InputError, BOMB):
        return None


def _p3_profile(im: Image.Image, path: Path) -> bytes | None:
    """An open photo's Display P3 profile, as :func:`display_p3_icc` says; None otherwise."""
    icc = im.info.get("icc_profile")
    if im.mode not in ("RGB", "RGBA"):
        return None
    if icc or path.suffix.lower() not in (*HEIF_SUFFIXES, *AVIF_SUFFIXES):
        return icc if is_display_p3(icc) else None
    nclx = open_heif(path).info.get("nclx_profile") or {}
    return made_display_p3_icc() if nclx.get("color_primaries") == CICP_DISPLAY_P3 else None


@cache
def made_display_p3_icc() -> bytes:
    """A Display P3 ICC profile (P3 primaries, D65 white, the sRGB tone curve as a table) by
    Little CMS, for a photo tagged Display P3 by CICP alone."""
    import imagecodecs

    curve = srgb_to_linear(np.linspace(0.0, 1.0, 1024, dtype=np.float32))
    icc = bytearray(
        imagecodecs.cms_profile(
            "rgb", whitepoint=[*D65, 1.0], primaries=xyy(DISPLAY_P3), transferfunction=curve
        )
    )
    icc[24:36] = struct.pack(">6H", *PROFILE_DATE)  # not the hour it was made: same bytes each run
    icc[84:100] = bytes(16)  # no profile ID (an MD5 that would cover the date)
    return _described(bytes(icc), "Display P3")


def _described(icc: bytes, name: str) -> bytes:
    """An ICC v4 profile with its ``desc`` tag (the name colour-management tools show) set
    to ``name``: a ``mluc`` tag (one en-US record) appended, its table entry pointed at it."""
    text = name.encode("utf-16-be")
    tag = b"mluc" + struct.pack(">3I2s2s2I", 0, 1, 12, b"en", b"US", len(text), 28) + text
    out = bytearray(icc + bytes(-len(icc) % 4))
    start = len(out)
    out += tag + bytes(-len(tag) % 4)
    for i in range(struct.unpack_from(">I", out, 128)[0]):
        if out[132 + 12 * i : 136 + 12 * i] == b"desc":
            struct.pack_into(">II", out, 136 + 12 * i, start, len(tag))
    struct.pack_into(">I", out, 0, len(out))
    return bytes(out)


def in_display_p3(shown: np.ndarray, hdr: np.ndarray, wide: np.ndarray) -> np.ndarray:
    """A preview of ``hdr`` (``shown``: HxWx3 display sRGB in [0, 1], a tone map of it that
    scales each pixel's luminance: Reinhard's) made again in Display P3 from ``wide``
    (``hdr`` with the photo's own colours, :func:`with_wide_gamut`): each pixel scaled as
    the tone map scaled its luminance, HxWx3 display values in [0, 1] with the sRGB curve,
    for a Display P3 profile."""
    out = np.empty(shown.shape, np.float32)
    for rows in row_slices(shown.shape[0]):
        y_in = rgb_to_luminance(np.maximum(hdr[rows], 0.0))
        y_out = rgb_to_luminance(srgb_to_linear(shown[rows]))
        scale = np.divide(y_out, y_in, out=np.zeros_like(y_in), where=y_in > 0)[..., None]
        out[rows] = linear_to_srgb(np.clip(wide[rows] @ P3_FROM_REC709.T * scale, 0.0, 1.0))
    return out


def display_p3_base(path, shape: tuple[int, int]) -> NativeBase | None:
    """``path``'s own pixels where it is an RGB(A) photo tagged Display P3 (by an ICC
    profile, or by CICP primaries: :func:`display_p3_icc`), in 8 bits (a 10/12-bit HEIC or
    AVIF decoded as ``read_ldr`` decodes it, then rounded), turned as ``read_ldr`` turns it
    and area-resized to ``shape`` (HxW, the photo as loaded); None for any other photo, or
    where its pixels do not fit ``shape``."""
    path = Path(path)
    try:
        with open_photo(path) as im:
            if (icc := _p3_profile(im, path)) is None:  # RGB(A) tagged Display P3
                return None
            heif = path.suffix.lower() in (*HEIF_SUFFIXES, *AVIF_SUFFIXES)
            deep = _deep_stored(path, open_heif(path)) if heif else None
            pixels = _turned(im, exif_orientation(im)) if deep is None else _eight_bits(deep())
    except (OSError, ValueError, RuntimeError, SyntaxError, KeyError, InputError, BOMB):
        return None  # read_ldr, which read the photo, has its own size guard
    h, w = shape
    if not _fits(pixels.shape[:2], shape):
        return None
    if pixels.shape[:2] != (h, w):
        pixels = cv2.resize(pixels, (w, h), interpolation=cv2.INTER_AREA)
    return NativeBase(np.ascontiguousarray(pixels), icc, P3_FROM_REC709)


def _fits(stored: tuple[int, int], shape: tuple[int, int]) -> bool:
    """Whether pixels stored at ``stored`` (HxW) are the photo as loaded at ``shape`` (HxW),
    perhaps downscaled: the same aspect within 1%."""
    return abs(np.log((stored[1] / stored[0]) / (shape[1] / shape[0]))) <= 0.01


@cache
def linear_srgb_icc() -> bytes:
    """A linear-light ICC profile with sRGB's primaries and D65 white, by Little CMS: a
    float conversion into it gives linear Rec.709, unbounded."""
    import imagecodecs

    primaries = xyy(REC709_CHROMATICITIES)
    return imagecodecs.cms_profile("rgb", whitepoint=[*D65, 1.0], primaries=primaries, gamma=1.0)


def _own_pixels(path: Path) -> tuple[np.ndarray, Callable] | None:
    """A photo's pixels as ``read_ldr`` decodes them (HxWx3 uint8, or uint16 over the full
    range for a 16-bit PNG/TIFF or a 10/12-bit HEIC or AVIF), turned as it turns
    them, and a function from such values (Nx3, [0, 1]) to their linear Rec.709 light (Nx3
    float32), where the photo is tagged other than sRGB as ``read_ldr`` reads the tag: an ICC
    profile, Adobe RGB by its EXIF (8 bits), CICP primaries alone (HEIC, AVIF); else None."""
    heif = open_heif(path) if path.suffix.lower() in (*HEIF_SUFFIXES, *AVIF_SUFFIXES) else None
    stored = _deep_stored(path, heif) if heif is not None else None
    to709 = nclx_to_rec709(heif.info) if heif is not None else None
    if to709 is not None:
        convert = lambda x: srgb_to_linear(x) @ to709  # noqa: E731
        if stored is not None:
            return stored(), convert
        with open_photo(path) as im:
            return _turned(im, exif_orientation(im)), convert
    if stored is not None:
        return _unless_srgb(heif.info.get("icc_profile"), path, stored)
    with open_photo(path) as im:
        if im.mode not in ("RGB", "RGBA"):
            return None
        wide = is_16bit(im)  # before the EXIF is read, which may decode a PNG
        orientation = exif_orientation(im)  # before anything loads a PNG's late eXIf chunk
        if wide:  # read_ldr converts these by their ICC profile alone
            stored = read_16bit_rgb(path)
            if stored.ndim != 3 or stored.dtype != np.uint16:
                return None
            turn = lambda: exif_orient(stored[..., :3], orientation)  # noqa: E731
            return _unless_srgb(im.info.get("icc_profile"), path, turn)
        icc = im.info.get("icc_profile") or (exif_adobe_rgb(im) and adobe_rgb_icc())
        return _unless_srgb(icc, path, lambda: _turned(im, orientation))


def _deep_stored(path: Path, heif) -> Callable[[], np.ndarray] | None:
    """The pixels of a 10/12-bit HEIC or AVIF as ``read_ldr`` decodes them (HxWx3 uint16,
    turned; a function, so that they are decoded only where needed); None where it reads
    the photo at 8 bits (an 8-bit one, an animated AVIF)."""
    if (bits := int(heif.info["bit_depth"])) <= 8:
        return None
    if path.suffix.lower() in HEIF_SUFFIXES:
        return lambda: deep_pixels(heif)  # turned by libheif
    with open_photo(path) as im:  # an AVIF turned as Pillow reports its irot/imir
        orientation, frames = exif_orientation(im), getattr(im, "n_frames", 1)
    if frames > 1:
        return None
    return lambda: exif_orient(avif_deep_pixels(path, bits), orientation)


def _eight_bits(pixels: np.ndarray) -> np.ndarray:
    """uint16 values over the full range -> uint8, rounded."""
    return ((pixels.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)


def _turned(im: Image.Image, orientation: int) -> np.ndarray:
    """An 8-bit RGB(A) Pillow image's RGB pixels, turned by an EXIF orientation."""
    im.load()
    return np.asarray(turned(im if im.mode == "RGB" else im.convert("RGB"), orientation))


def _unless_srgb(icc: bytes | None, path: Path, pixels) -> tuple[np.ndarray, Callable] | None:
    """``(pixels(), conversion by Little CMS from icc)`` where ``icc`` is a profile other
    than sRGB; else None."""
    if not icc:
        return None
    with warnings.catch_warnings():  # read_ldr has said what is wrong with the profile
        warnings.simplefilter("ignore")
        if source_profile(icc, path, 1) is None:
            return None
    return np.ascontiguousarray(pixels()), partial(_lcms_to_linear, icc=icc)


def _lcms_to_linear(x: np.ndarray, icc: bytes) -> np.ndarray:
    """Nx3 values in [0, 1] of the profile ``icc`` -> Nx3 float32 linear Rec.709, unbounded."""
    import imagecodecs

    return imagecodecs.cms_transform(
        np.ascontiguousarray(x[None], np.float32),
        icc,
        linear_srgb_icc(),
        colorspace="rgb",
        outcolorspace="rgb",
        intent=RELATIVE_COLORIMETRIC,
    )[0]


@dataclass(frozen=True)
class GamutDelta:
    """What fitting a photo into sRGB took from it (:func:`gamut_delta`): ``values`` (Nx3
    float32, linear Rec.709) at the pixels ``where`` (HxW bool) is True; nothing elsewhere."""

    where: np.ndarray
    values: np.ndarray


def gamut_delta(path, ldr: np.ndarray) -> GamutDelta | None:
    """What ``read_ldr`` took from ``path``'s colours to bring them into sRGB, in linear
    Rec.709 light, at ``ldr``'s size (the photo as loaded, HxWx3 display sRGB): there
    ``srgb_to_linear(ldr) + delta`` is the photo's own light, unbounded (Little CMS in
    float, or the CICP primaries' matrix). Only where the fitting can have acted: a channel
    cut at 0, or a pixel near the top (``NEAR_TOP``); zero where the photo clipped (the
    file's largest channel through ``color.clip_ramp``: a clipped colour is the
    reconstruction's to give). None for a photo in sRGB or one this cannot read (grey,
    CMYK, a profile Little CMS refuses), and where the sizes do not agree."""
    try:
        found = _own_pixels(Path(path))
    except (OSError, ValueError, RuntimeError, SyntaxError, KeyError, InputError, BOMB):
        return None  # read_ldr, which read the photo, has its own errors and size guard
    if found is None:
        return None
    (pixels, to_linear), (h, w) = found, ldr.shape[:2]
    if not _fits(pixels.shape[:2], (h, w)):
        return None
    r, g, b = ldr[..., 0], ldr[..., 1], ldr[..., 2]  # channel-wise: no slow reductions
    where = np.minimum(np.minimum(r, g), b) < NEAR_BLACK[pixels.dtype == np.uint16]
    where |= np.maximum(np.maximum(r, g), b) > NEAR_TOP
    if pixels.shape[:2] != (h, w):  # as load_input downscales the photo: display values
        pixels = cv2.resize(pixels, (w, h), interpolation=cv2.INTER_AREA)
        where = cv2.dilate(where.view(np.uint8), np.ones((3, 3), np.uint8)).view(bool)
    stored = pixels[where] / np.float32(np.iinfo(pixels.dtype).max)
    try:
        own = to_linear(stored) if len(stored) else np.zeros((0, 3), np.float32)
    except (RuntimeError, ValueError):  # a profile Little CMS cannot convert in float
        return None
    keep = 1.0 - clip_ramp(stored.max(axis=-1))[:, None]
    return GamutDelta(where, (keep * (own - srgb_to_linear(ldr[where]))).astype(np.float32))


def with_wide_gamut(hdr: np.ndarray, ldr: np.ndarray, delta: GamutDelta) -> np.ndarray:
    """The reconstruction ``hdr`` (HxWx3 scene-linear Rec.709, 1.0 = white) with the photo's
    own colours given back: ``hdr + r * delta``, ``delta`` from :func:`gamut_delta`, ``r``
    the pixel's luminance gain over the linearised photo ``ldr`` (so a lifted pixel keeps
    its colour's share). A new HxWx3 float32 array, unbounded: a colour outside sRGB has a
    channel < 0."""
    out = np.array(hdr, np.float32)
    y = rgb_to_luminance(srgb_to_linear(ldr[delta.where]))
    r = (rgb_to_luminance(out[delta.where]) + OFFSET) / (y + OFFSET)
    out[delta.where] += r[:, None] * delta.values
    return out
