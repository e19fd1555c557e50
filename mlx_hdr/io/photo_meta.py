"""What a photo carries besides its pixels: EXIF to pass on to outputs, and an HDR gain map
that makes it HDR already (an iPhone HEIC, an Ultra HDR JPEG, an AVIF with a gain map)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from mlx_hdr.errors import InputError
from mlx_hdr.io.apple_gain import jpeg_apple_map
from mlx_hdr.io.avif_gainmap import AVIF_GAIN_MAP, has_gain_map, open_avif
from mlx_hdr.io.exif import EXIF_IFD, ORIENTATION, PIXEL_SIZE, exif_of, upright_exif
from mlx_hdr.io.heic import (
    APPLE_HDR,
    container,
    gain_map_kind,
    open_heif,
    register,
)

# what opening a photo's metadata may raise (RuntimeError: an AVIF libavif refuses); reading
# its pixels (read_ldr) reports the problem
UNREADABLE = (
    OSError,
    ValueError,
    RuntimeError,
    SyntaxError,
    InputError,
    Image.DecompressionBombError,
)
WHITE_K = 78.0 / 0.65  # cd/m^2 s: L_white = WHITE_K * N^2 / (t * S), ISO 12232, q = 0.65
EXPOSURE_TIME, F_NUMBER, ISO_SPEED = 0x829A, 0x829D, 0x8827
SETTINGS = ("exposure time", "f-number", "ISO")  # what exposure_settings reads, by name
ISO_FULL = (0x8833, 0x8832)  # EXIF 2.3 ISOSpeed, RecommendedExposureIndex: above 65,535
ISO_21496_NS = b"urn:iso:std:iso:ts:21496:-1"
ULTRA_HDR = "an Ultra HDR gain map"  # existing_gain_map's answer for such a JPEG


def _open(path: Path) -> Image.Image:
    """``path`` opened by Pillow, an AVIF as ``read_ldr`` opens it (``open_avif``)."""
    return open_avif(path) if container(path) == "avif" else Image.open(path)


def read_exif(path, size: tuple[int, int] | None = None) -> bytes | None:
    """The photo's EXIF block (``b"Exif\\0\\0"`` + TIFF data) with the orientation set to 1 (the
    pixels ``read_ldr`` returns are turned already), or None when it has none or is unreadable.
    ``size`` (width, height): the pixels the block will describe, set in its
    PixelXDimension/PixelYDimension where it has them (the photo turned or downscaled). A
    block Pillow cannot write again is passed on as stored, its orientation and size patched
    (``exif.upright_exif``)."""
    path = Path(path)
    try:
        if container(path) == "heif":
            register(path)
        with _open(path) as im:
            exif = exif_of(im)
            if im.format == "TIFF":  # its IFD0 describes the TIFF's own strips and profile
                exif = _descriptive(exif)
            if not exif:
                return None
            if ORIENTATION in exif:
                exif[ORIENTATION] = 1
            _set_size(exif, size)
            try:
                return exif.tobytes()
            except Exception:  # Pillow's writer has no single error type (TypeError, ...)
                raw = im.info.get("exif")
                return upright_exif(raw, size) if isinstance(raw, bytes) else None
    except UNREADABLE:
        return None


def _set_size(exif: Image.Exif, size: tuple[int, int] | None) -> None:
    """Set the EXIF sub-IFD's PixelXDimension/PixelYDimension to ``size`` where it has them."""
    if size is None:
        return
    ifd = exif.get_ifd(EXIF_IFD)
    for tag, value in zip(PIXEL_SIZE, size, strict=True):
        if tag in ifd:
            ifd[tag] = int(value)


# IFD0 tags that describe the photo rather than how a TIFF stores it: what a TIFF's EXIF
# keeps in a JPEG (make, model, date, artist, copyright, description, resolution, the EXIF
# and GPS sub-IFDs)
DESCRIPTIVE = (270, 271, 272, 274, 282, 283, 296, 305, 306, 315, 33432)
SUB_IFDS = (0x8769, 0x8825)
INTEROP = 0xA005  # the EXIF sub-IFD's pointer to its interoperability IFD


def _descriptive(exif: Image.Exif) -> Image.Exif:
    """A TIFF's IFD0 with only its ``DESCRIPTIVE`` tags (its strips, sizes, bit depths and
    ICC profile describe the TIFF file, not the JPEG it is passed on to)."""
    out = Image.Exif()
    for tag in DESCRIPTIVE:
        if tag in exif:
            out[tag] = exif[tag]
    for ifd in SUB_IFDS:
        if ifd in exif and (tags := dict(exif.get_ifd(ifd))):
            if INTEROP in tags:  # an offset into the TIFF file: its tags, written anew
                tags.pop(INTEROP)
                if interop := dict(exif.get_ifd(INTEROP)):
                    tags[INTEROP] = interop
            out.get_ifd(ifd).update(tags)
    return out


def existing_gain_map(path) -> str | None:
    """``"an Apple HDR gain map"`` and the like when the photo already carries an HDR rendition
    through a gain map (HEIC: an auxiliary image or XMP; JPEG: Ultra HDR / ISO 21496-1
    metadata, or Apple's map as its second MPF image; AVIF: an ISO 21496-1 ``tmap`` item), else
    None. Unreadable files give None (reading them reports the problem)."""
    path = Path(path)
    try:
        if (kind := container(path)) == "heif":
            return gain_map_kind(open_heif(path).info)
        if kind == "avif":
            return AVIF_GAIN_MAP if has_gain_map(path) else None
        with _open(path) as im:  # a JPEG by its content, whatever its name
            jpeg = im.format in ("JPEG", "MPO")  # MPO: a JPEG with more images after it
            app = b"".join(content for _, content in getattr(im, "applist", []))
        if jpeg:
            if b"hdrgm:Version" in app or ISO_21496_NS in app:
                return ULTRA_HDR
            if b"MPF\0" in app and jpeg_apple_map(path.read_bytes()) is not None:
                return APPLE_HDR
    except UNREADABLE:
        return None
    return None


@dataclass(frozen=True)
class Exposure:
    """A photo's exposure settings: time in seconds, f-number, ISO speed (all > 0)."""

    time_s: float
    f_number: float
    iso: float

    def white_luminance(self) -> float:
        """The luminance that saturates the camera at these settings, cd/m^2."""
        return WHITE_K * self.f_number**2 / (self.time_s * self.iso)

    def white_log2(self) -> float:
        """log2 of :meth:`white_luminance`: the white as the exposure branch reads it."""
        return math.log2(self.white_luminance())


def exposure_from_values(time_s, f_number, iso) -> Exposure | None:
    """An :class:`Exposure` from three EXIF values (numbers or rationals; ISO may be a
    sequence), or None where one is missing, not a number or not positive, or where they
    put the white beyond what a float holds (an f-number of 1e200 stored as a DOUBLE)."""
    values = [_positive(v) for v in (time_s, f_number, _first(iso))]
    if None in values:
        return None
    exposure = Exposure(*values)
    try:
        white = exposure.white_luminance()
    except OverflowError:
        return None
    return exposure if math.isfinite(white) and white > 0 else None


def _exposure_values(path: Path) -> tuple | None:
    """The EXIF exposure time, f-number and ISO as stored (each None where missing), or None
    for a file that cannot be opened."""
    try:
        if container(path) == "heif":
            register(path)
        with _open(path) as im:
            ifd = exif_of(im).get_ifd(EXIF_IFD)
    except UNREADABLE:
        return None
    return ifd.get(EXPOSURE_TIME), ifd.get(F_NUMBER), _iso(ifd)


def read_exposure(path) -> Exposure | None:
    """The exposure settings in a photo's EXIF, or None when it has none (or is unreadable:
    reading its pixels reports that)."""
    values = _exposure_values(Path(path))
    return None if values is None else exposure_from_values(*values)


def exposure_settings(path) -> tuple[float | None, float | None, float | None]:
    """A photo's EXIF exposure time (s), f-number and ISO (``SETTINGS``), each None where
    it is missing or no positive number (a manual lens records its f-number as 0)."""
    time_s, f_number, iso = _exposure_values(Path(path)) or (None, None, None)
    return _positive(time_s), _positive(f_number), _positive(_first(iso))


def _first(iso):
    """An EXIF ISO value as one value: the first of a sequence (None for an empty one)."""
    if isinstance(iso, tuple | list):
        return iso[0] if iso else None
    return iso


def _positive(value) -> float | None:
    """An EXIF number (a rational) as a positive finite float, else None."""
    try:
        v = float(value)
    except (TypeError, ValueError, ZeroDivisionError, OverflowError):
        return None
    return v if math.isfinite(v) and v > 0 else None


def _iso(ifd) -> object:
    """The ISO speed: ``ISO_SPEED``, or where that holds EXIF's 16-bit ceiling (65,535) or is
    missing, the EXIF 2.3 value that carries the full figure."""
    iso = ifd.get(ISO_SPEED)
    first = iso[0] if isinstance(iso, tuple | list) and iso else iso
    if first in (None, 65535):
        return next((ifd[tag] for tag in ISO_FULL if ifd.get(tag)), iso)
    return iso
