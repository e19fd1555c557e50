"""Google's libultrahdr (1.4) through ctypes: assemble an Ultra HDR gain-map JPEG.

``imagecodecs`` ships libultrahdr, but its Python encoder (``imagecodecs.ultrahdr_encode``) takes
only the HDR rendition and tone-maps an SDR base of its own. Here the base must be the photo
itself, so this module calls the library's "API-4" directly: a compressed base JPEG, a compressed
gain-map JPEG and the gain-map metadata in, one JPEG with the MPF directory and the ISO 21496-1
metadata out. The library is the one ``imagecodecs``' extension module already loads; where
it cannot be called that way (:class:`LibraryUnavailable`), :mod:`mlx_hdr.io.uhdr` falls back to
``ultrahdr_encode``.
"""

from __future__ import annotations

import ctypes
import functools
import importlib
import re
from dataclasses import dataclass
from pathlib import Path

from mlx_hdr.errors import HDRError

UHDR_BASE_IMG = 2  # uhdr_img_label_t
UHDR_CG_BT_709, UHDR_CG_DISPLAY_P3 = 0, 1  # uhdr_color_gamut_t
UHDR_CT_SRGB = 3  # uhdr_color_transfer_t
UHDR_CT_UNSPECIFIED = -1
UHDR_CR_FULL_RANGE = 1  # uhdr_color_range_t
SUPPORTED = ((1, 4), (2, 0))  # the struct layouts below are libultrahdr 1.4's


class _Error(ctypes.Structure):
    _fields_ = [
        ("code", ctypes.c_int),
        ("has_detail", ctypes.c_int),
        ("detail", ctypes.c_char * 256),
    ]


class _Compressed(ctypes.Structure):
    _fields_ = [
        ("data", ctypes.c_void_p),
        ("data_sz", ctypes.c_size_t),
        ("capacity", ctypes.c_size_t),
        ("cg", ctypes.c_int),
        ("ct", ctypes.c_int),
        ("range", ctypes.c_int),
    ]


class _Metadata(ctypes.Structure):
    _fields_ = [
        ("max_content_boost", ctypes.c_float * 3),
        ("min_content_boost", ctypes.c_float * 3),
        ("gamma", ctypes.c_float * 3),
        ("offset_sdr", ctypes.c_float * 3),
        ("offset_hdr", ctypes.c_float * 3),
        ("hdr_capacity_min", ctypes.c_float),
        ("hdr_capacity_max", ctypes.c_float),
        ("use_base_cg", ctypes.c_int),
    ]


@dataclass(frozen=True)
class GainMapMetadata:
    """Gain-map metadata in linear units, the same for the three channels.

    ``min_boost``/``max_boost``: the gain a map value of 0/255 stands for (ratio HDR/SDR, > 0);
    ``gamma``: the map's encoding gamma; ``offset_sdr``/``offset_hdr``: added to the linear
    SDR/HDR values (1.0 = SDR white) before taking their ratio; ``capacity_min``/``capacity_max``:
    the display headroom (ratio) at which the map starts to apply and applies in full.
    """

    min_boost: float
    max_boost: float
    gamma: float = 1.0
    offset_sdr: float = 1 / 64
    offset_hdr: float = 1 / 64
    capacity_min: float = 1.0
    capacity_max: float = 1.0

    def to_c(self) -> _Metadata:
        three = lambda v: (ctypes.c_float * 3)(v, v, v)  # noqa: E731
        return _Metadata(
            three(self.max_boost),
            three(self.min_boost),
            three(self.gamma),
            three(self.offset_sdr),
            three(self.offset_hdr),
            self.capacity_min,
            self.capacity_max,
            1,  # the map applies in the base image's colour space
        )


def _version(text: str) -> tuple[int, int]:
    m = re.search(r"(\d+)\.(\d+)", text)
    return (int(m.group(1)), int(m.group(2))) if m else (0, 0)


def _bind(lib: ctypes.CDLL) -> ctypes.CDLL:
    """Declare the argument and result types of the functions used here."""
    p = ctypes.c_void_p
    lib.uhdr_create_encoder.restype = p
    lib.uhdr_create_encoder.argtypes = []
    lib.uhdr_release_encoder.argtypes = [p]
    lib.uhdr_release_encoder.restype = None
    calls = {
        "uhdr_enc_set_compressed_image": [p, ctypes.POINTER(_Compressed), ctypes.c_int],
        "uhdr_enc_set_gainmap_image": [p, ctypes.POINTER(_Compressed), ctypes.POINTER(_Metadata)],
        "uhdr_encode": [p],
    }
    for name, args in calls.items():
        getattr(lib, name).argtypes = args
        getattr(lib, name).restype = _Error
    lib.uhdr_get_encoded_stream.argtypes = [p]
    lib.uhdr_get_encoded_stream.restype = ctypes.POINTER(_Compressed)
    return lib


class LibraryUnavailable(HDRError):
    """libultrahdr cannot be called through ctypes here: ``imagecodecs`` lacks it, its
    extension module and its bundled libuhdr do not export the library's symbols, or its
    version has other struct layouts."""


def candidates() -> list[str]:
    """Files that may export libultrahdr's C API: ``imagecodecs``' extension module (its
    linked libuhdr is searched with it), then the libuhdr that its wheel bundles
    (``imagecodecs.libs/libuhdr*.so*`` on Linux, ``imagecodecs/.dylibs/libuhdr*.dylib`` on
    macOS)."""
    ext = Path(importlib.import_module("imagecodecs._ultrahdr").__file__)
    bundled = [*ext.parent.glob(".dylibs/libuhdr*.dylib")]
    bundled += ext.parent.parent.glob("imagecodecs.libs/libuhdr*.so*")
    return [str(ext), *map(str, sorted(bundled))]


def _open_first(paths: list[str]) -> ctypes.CDLL:
    """The first of ``paths`` that loads and exports the encoder's gain-map call."""
    problem: Exception = OSError("no candidate")
    for path in paths:
        try:
            lib = ctypes.CDLL(path)
            lib.uhdr_enc_set_gainmap_image  # noqa: B018
            return lib
        except (OSError, AttributeError) as exc:
            problem = exc
    raise problem


@functools.cache
def library() -> ctypes.CDLL:
    """libultrahdr as ``imagecodecs`` ships it (:func:`candidates`); ``LibraryUnavailable``
    if it cannot be used from here."""
    try:
        version = _version(importlib.import_module("imagecodecs").ultrahdr_version())
        lib = _open_first(candidates())
    except (ImportError, OSError, AttributeError) as exc:
        raise LibraryUnavailable(
            f"imagecodecs' libultrahdr cannot be called directly ({type(exc).__name__})"
        ) from None
    if not SUPPORTED[0] <= version < SUPPORTED[1]:
        raise LibraryUnavailable(
            f"imagecodecs has libultrahdr {version[0]}.{version[1]}; 1.4 or a later 1.x needed"
        )
    return _bind(lib)


def _compressed(data: bytes, keep: list, gamut: int = UHDR_CG_BT_709) -> _Compressed:
    buf = ctypes.create_string_buffer(data, len(data))
    keep.append(buf)
    return _Compressed(
        ctypes.cast(buf, ctypes.c_void_p),
        len(data),
        len(data),
        gamut,
        UHDR_CT_SRGB,
        UHDR_CR_FULL_RANGE,
    )


def _check(err: _Error, what: str) -> None:
    if err.code:
        detail = err.detail.decode(errors="replace") if err.has_detail else f"code {err.code}"
        raise HDRError(f"libultrahdr {what} failed: {detail}")


def assemble(
    base_jpeg: bytes, gainmap_jpeg: bytes, meta: GainMapMetadata, gamut: int = UHDR_CG_BT_709
) -> bytes:
    """Join a base JPEG and a gain-map JPEG into one Ultra HDR JPEG (libultrahdr API-4).

    Args:
        base_jpeg: the SDR rendition, a JPEG in ``gamut`` (``UHDR_CG_BT_709``: sRGB,
            ``UHDR_CG_DISPLAY_P3``) with the sRGB curve; its EXIF and ICC profile are kept, and
            an sRGB one is added when it has none.
        gainmap_jpeg: the gain map as a JPEG (1 or 3 channels, any size; decoders scale it to
            the base).
        meta: what the gain map's values mean.
    Returns:
        the file's bytes: the base, MPF, ISO 21496-1 metadata, then the gain map.
    """
    lib, keep = library(), []
    enc = lib.uhdr_create_encoder()
    if not enc:
        raise HDRError("libultrahdr could not create an encoder (out of memory?)")
    try:
        base, gain, c_meta = (
            _compressed(base_jpeg, keep, gamut),
            _compressed(gainmap_jpeg, keep, gamut),
            meta.to_c(),
        )
        _check(lib.uhdr_enc_set_compressed_image(enc, base, UHDR_BASE_IMG), "base image")
        _check(lib.uhdr_enc_set_gainmap_image(enc, gain, c_meta), "gain map")
        _check(lib.uhdr_encode(enc), "encode")
        out = lib.uhdr_get_encoded_stream(enc)
        if not out:
            raise HDRError("libultrahdr returned no encoded stream")
        return ctypes.string_at(out.contents.data, out.contents.data_sz)
    finally:
        lib.uhdr_release_encoder(enc)
