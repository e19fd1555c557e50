"""A photo's own pixels and colours, beside the sRGB that ``read_ldr`` reads it as.

:func:`own_photo` decodes a photo tagged other than sRGB (an ICC profile, Adobe RGB by its
EXIF, CICP primaries) as ``read_ldr`` decodes and turns it, with the conversion of its
values to linear Rec.709 light, unbounded; :mod:`mlx_hdr.io.native` builds the outputs'
wide colours from it. Display P3 profiles: :func:`is_display_p3` tells one by its
primaries and curve, :func:`made_display_p3_icc` makes one for a photo tagged by CICP alone.
"""

from __future__ import annotations

import io
import struct
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageCms

from mlx_hdr.color import DISPLAY_P3, REC709_CHROMATICITIES, srgb_to_linear
from mlx_hdr.errors import InputError
from mlx_hdr.io.exif import exif_orient, exif_orientation, pixel_orientation, turned
from mlx_hdr.io.heic import (
    SRGB_TRANSFERS,
    CicpColours,
    avif_deep_pixels,
    cicp_info,
    container,
    deep_pixels,
    nclx_curve,
    nclx_to_rec709,
    open_heif,
)
from mlx_hdr.io.icc import (
    D65,
    DISPLAY_P3_COLORANTS,
    RELATIVE_COLORIMETRIC,
    SRGB_ICC,
    adobe_rgb_icc,
    exif_adobe_rgb,
    has_colorants,
    has_srgb_curve,
    source_profile,
    xyy,
)
from mlx_hdr.io.image_io import is_16bit, open_photo, read_16bit_rgb
from mlx_hdr.io.pngcheck import colour_chunks

PROFILE_DATE = (2026, 1, 1, 0, 0, 0)  # the creation date written in a made profile
CICP_DISPLAY_P3 = 12  # CICP colour primaries: SMPTE EG 432-1, P3 with a D65 white
BOMB = Image.DecompressionBombError
READ_ERRORS = (OSError, ValueError, RuntimeError, SyntaxError, KeyError, InputError, BOMB)


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
    except READ_ERRORS:
        return None


def _p3_profile(im: Image.Image, path: Path) -> bytes | None:
    """An open photo's Display P3 profile, as :func:`display_p3_icc` says; None otherwise."""
    icc = im.info.get("icc_profile")
    if im.mode not in ("RGB", "RGBA"):
        return None
    heif = container(path) is not None
    png = None if heif else _png_cicp(path)  # a PNG's cICP chunk wins over its profile
    if png is None and (icc or not heif):
        return icc if is_display_p3(icc) else None
    nclx = (png or open_heif(path).info).get("nclx_profile") or {}
    p3 = nclx.get("color_primaries") == CICP_DISPLAY_P3
    return made_display_p3_icc() if p3 and _srgb_curve(nclx) else None


def _png_cicp(path: Path) -> dict | None:
    """A PNG's cICP chunk as a pillow-heif-style ``info`` (``heic.cicp_info``), which wins
    over its ICC profile as ``read_ldr`` reads it; None for any other file."""
    colour = colour_chunks(path)
    return cicp_info(*colour.cicp) if colour.cicp is not None else None


def _srgb_curve(nclx: dict) -> bool:
    """Whether a CICP/nclx tag's transfer is sRGB's (or unspecified, read as sRGB)."""
    return nclx.get("transfer_characteristics", 2) in SRGB_TRANSFERS


@cache
def made_display_p3_icc() -> bytes:
    """A Display P3 ICC profile (P3 primaries, D65 white, the sRGB tone curve), for a photo
    tagged Display P3 by CICP alone and for a wide photo's colours converted into P3: Little
    CMS's own sRGB profile (its curve parametric: 0.6 KB) with the colorants and primaries
    of one Little CMS makes for P3 (where its tags are not those sizes, that profile itself,
    its curve a 25 KB table); the same bytes on every run."""
    import imagecodecs

    curve = srgb_to_linear(np.linspace(0.0, 1.0, 1024, dtype=np.float32))
    made = imagecodecs.cms_profile(
        "rgb", whitepoint=[*D65, 1.0], primaries=xyy(DISPLAY_P3), transferfunction=curve
    )
    try:
        icc = bytearray(SRGB_ICC)
        for name in (b"rXYZ", b"gXYZ", b"bXYZ", b"chrm"):
            (at, size), (src, src_size) = _tag(icc, name), _tag(made, name)
            if size != src_size:
                raise ValueError(f"Little CMS wrote a {name.decode()} tag of another size")
            icc[at : at + size] = made[src : src + size]
    except ValueError:
        icc = bytearray(made)
    icc[24:36] = struct.pack(">6H", *PROFILE_DATE)  # not the hour it was made: same bytes each run
    icc[84:100] = bytes(16)  # no profile ID (an MD5 that would cover the date)
    return _described(bytes(icc), "Display P3")


def _tag(icc: bytes, name: bytes) -> tuple[int, int]:
    """An ICC profile's tag ``name``: (offset, size) of its data."""
    for i in range(struct.unpack_from(">I", icc, 128)[0]):
        if icc[132 + 12 * i : 136 + 12 * i] == name:
            return struct.unpack_from(">II", icc, 136 + 12 * i)
    raise ValueError(f"no {name.decode()} tag")


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


@dataclass(frozen=True)
class OwnPhoto:
    """A photo tagged other than sRGB, as ``read_ldr`` reads the tag (:func:`own_photo`).

    ``pixels``: HxWx3 uint8, or uint16 over the full range (a 16-bit PNG/TIFF, a 10/12-bit
    HEIC or AVIF), decoded and turned as ``read_ldr`` does; ``source``: what its values
    mean, the ICC profile (converted by Little CMS) or its CICP primaries and transfer
    (:class:`~mlx_hdr.io.heic.CicpColours`); ``p3_icc``:
    its Display P3 profile where it is tagged so (:func:`display_p3_icc`), else None.
    """

    pixels: np.ndarray
    source: bytes | CicpColours
    p3_icc: bytes | None

    def to_linear(self, x: np.ndarray) -> np.ndarray:
        """Nx3 values of :attr:`pixels`, scaled to [0, 1] -> their light, Nx3 float32 linear
        Rec.709, unbounded."""
        if isinstance(self.source, bytes):
            return _lcms_to_linear(x, self.source)
        return self.source.to_linear(x)


def own_photo(path) -> OwnPhoto | None:
    """``path``'s own pixels and colours where it is an RGB(A) photo tagged other than sRGB
    (an ICC profile, Adobe RGB by its EXIF at 8 bits, CICP primaries in a HEIC or AVIF);
    None for an sRGB, grey or CMYK photo, one whose profile Little CMS refuses, and one that
    cannot be read (``read_ldr``, which read it, has its own errors and size guard)."""
    path = Path(path)
    try:
        found = _own_pixels(path)
    except READ_ERRORS:
        return None
    return None if found is None else OwnPhoto(*found, display_p3_icc(path))


@cache
def linear_srgb_icc() -> bytes:
    """A linear-light ICC profile with sRGB's primaries and D65 white, by Little CMS: a
    float conversion into it gives linear Rec.709, unbounded."""
    import imagecodecs

    primaries = xyy(REC709_CHROMATICITIES)
    return imagecodecs.cms_profile("rgb", whitepoint=[*D65, 1.0], primaries=primaries, gamma=1.0)


def _own_pixels(path: Path) -> tuple[np.ndarray, bytes | CicpColours] | None:
    """A photo's pixels as ``read_ldr`` decodes them (HxWx3 uint8, or uint16 over the full
    range for a 16-bit PNG/TIFF or a 10/12-bit HEIC or AVIF), turned as it turns them, and
    what they mean (:attr:`OwnPhoto.source`), where the photo is tagged other than sRGB as
    ``read_ldr`` reads the tag: an ICC profile, Adobe RGB by its EXIF (8 bits), CICP
    primaries alone (HEIC, AVIF; a PNG's cICP chunk); else None."""
    heif = open_heif(path) if container(path) is not None else None
    stored = _deep_stored(path, heif) if heif is not None else None
    info = heif.info if heif is not None else _png_cicp(path)
    to709 = nclx_to_rec709(info) if info is not None else None
    cicp = None if to709 is None else CicpColours(to709, nclx_curve(info, path))
    if heif is not None and cicp is not None:
        if stored is not None:
            return stored(), cicp
        with open_photo(path) as im:
            return _turned(im, exif_orientation(im)), cicp
    if stored is not None:
        return _unless_srgb(heif.info.get("icc_profile"), path, stored)
    with open_photo(path) as im:
        if im.mode not in ("RGB", "RGBA"):
            return None
        wide = is_16bit(im)  # before the EXIF is read, which may decode a PNG
        orientation = exif_orientation(im)  # before anything loads a PNG's late eXIf chunk
        turn = pixel_orientation(im)  # what is left to do once Pillow decodes the pixels
        if wide:  # read_ldr converts these by their ICC profile alone
            stored = read_16bit_rgb(path, im.tell())  # open_photo's page
            if stored.ndim != 3 or stored.dtype != np.uint16:
                return None
            upright = lambda: exif_orient(stored[..., :3], orientation)  # noqa: E731
            if cicp is not None:  # a PNG tagged by cICP
                return np.ascontiguousarray(upright()), cicp
            return _unless_srgb(im.info.get("icc_profile"), path, upright)
        if cicp is not None:
            return _turned(im, turn), cicp
        icc = im.info.get("icc_profile") or (exif_adobe_rgb(im) and adobe_rgb_icc())
        return _unless_srgb(icc, path, lambda: _turned(im, turn))


def _deep_stored(path: Path, heif) -> Callable[[], np.ndarray] | None:
    """The pixels of a 10/12-bit HEIC or AVIF as ``read_ldr`` decodes them (HxWx3 uint16,
    turned; a function, so that they are decoded only where needed); None where it reads
    the photo at 8 bits (an 8-bit one, an animated AVIF)."""
    if (bits := int(heif.info["bit_depth"])) <= 8:
        return None
    if container(path) == "heif":
        return lambda: deep_pixels(heif)  # turned by libheif
    with open_photo(path) as im:  # an AVIF turned as Pillow reports its irot/imir
        orientation, frames = exif_orientation(im), getattr(im, "n_frames", 1)
    if frames > 1:
        return None
    return lambda: exif_orient(avif_deep_pixels(path, bits), orientation)


def eight_bits(pixels: np.ndarray) -> np.ndarray:
    """uint16 values over the full range -> uint8, rounded."""
    return ((pixels.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)


def _turned(im: Image.Image, orientation: int) -> np.ndarray:
    """An 8-bit RGB(A) Pillow image's RGB pixels, turned by an EXIF orientation."""
    im.load()
    return np.asarray(turned(im if im.mode == "RGB" else im.convert("RGB"), orientation))


def _unless_srgb(icc: bytes | None, path: Path, pixels) -> tuple | None:
    """``(pixels(), icc)`` where ``icc`` is a profile other than sRGB; else None."""
    if not icc:
        return None
    with warnings.catch_warnings():  # read_ldr has said what is wrong with the profile
        warnings.simplefilter("ignore")
        if source_profile(icc, path, 1) is None:
            return None
    return np.ascontiguousarray(pixels()), icc


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
