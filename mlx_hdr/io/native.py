"""A photo's own colours, for outputs that can carry them.

``read_ldr`` converts every photo to sRGB, which the model and the HDR outputs work in. An
iPhone photo is Display P3, though, and a camera's may be Adobe RGB: their most saturated
colours lie outside sRGB, and ``read_ldr`` fits them into it. Two outputs keep them, from
the photo's own pixels (:func:`~mlx_hdr.io.own_colours.own_photo`):

- the gain-map JPEG's base is the photo for SDR screens, and a JPEG can carry a profile:
  in Display P3 (:func:`display_p3_base`: a Display P3 photo's own pixels, another wide
  photo's colours converted) those colours stay on wide-gamut screens (every M-series
  Mac's), and the gain map is computed in the base's colour space (:mod:`mlx_hdr.io.uhdr`);
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

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from mlx_hdr.color import (
    DISPLAY_P3,
    clip_ramp,
    linear_to_srgb,
    rgb_to_luminance,
    rgb_to_rec709_matrix,
    row_slices,
    srgb_to_linear,
)
from mlx_hdr.io.icc import RELATIVE_COLORIMETRIC, fit_to_srgb
from mlx_hdr.io.image_io import to_uint8
from mlx_hdr.io.own_colours import OwnPhoto, eight_bits, made_display_p3_icc, own_photo

P3_TO_REC709 = rgb_to_rec709_matrix(DISPLAY_P3)  # linear, apply as ``x @ P3_TO_REC709.T``
P3_FROM_REC709 = np.linalg.inv(P3_TO_REC709).astype(np.float32)
OFFSET = 1 / 64  # keeps the gain of a black pixel finite (as the gain map's offset)
DARK = 32  # 8-bit display: a colour this dark or darker, cut at 0 in P3, is left so
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


def _as_own(photo) -> OwnPhoto | None:
    return photo if photo is None or isinstance(photo, OwnPhoto) else own_photo(photo)


def display_p3_base(photo, shape: tuple[int, int], convert: bool = False) -> NativeBase | None:
    """A gain-map JPEG's base in Display P3 for ``photo`` (an :class:`OwnPhoto`, or a path
    to read one from), at ``shape`` (HxW, the photo as loaded; area-resized to it): a photo
    tagged Display P3 gives its own pixels (8 bits; deeper ones rounded) and profile. With
    ``convert``, a photo tagged another space (Adobe RGB, ProPhoto, BT.2020) gives its
    colours converted into Display P3 (those outside it fitted as ``read_ldr`` fits colours
    into sRGB) with :func:`made_display_p3_icc`. None for any other photo, where its pixels
    do not fit ``shape``, or where Little CMS cannot convert them."""
    if (photo := _as_own(photo)) is None or not _fits(photo.pixels.shape[:2], shape):
        return None
    if photo.p3_icc is not None:
        pixels, icc = photo.pixels, photo.p3_icc
        pixels = eight_bits(pixels) if pixels.dtype == np.uint16 else pixels
    elif convert:
        try:
            pixels, icc = _into_display_p3(photo), made_display_p3_icc()
        except (RuntimeError, ValueError):  # a profile Little CMS cannot convert in float
            return None
    else:
        return None
    h, w = shape
    if pixels.shape[:2] != (h, w):
        pixels = cv2.resize(pixels, (w, h), interpolation=cv2.INTER_AREA)
    return NativeBase(np.ascontiguousarray(pixels), icc, P3_FROM_REC709)


def _into_display_p3(photo: OwnPhoto) -> np.ndarray:
    """A photo's colours in Display P3: HxWx3 uint8 display values (the sRGB curve). By
    Little CMS (relative colorimetric) where the photo has a profile, the pixels it may
    have cut at an edge of P3 converted again in float; there, and for a photo tagged by
    CICP, colours outside P3 are desaturated into it towards their luminance
    (:func:`_above_zero`, then ``icc.fit_to_srgb``)."""
    import imagecodecs

    pixels, full = photo.pixels, np.iinfo(photo.pixels.dtype).max
    if not isinstance(photo.source, bytes):  # CICP primaries and transfer
        return _matrix_into_p3(photo)
    out = imagecodecs.cms_transform(
        pixels,
        photo.source,
        made_display_p3_icc(),
        colorspace="rgb",
        outcolorspace="rgb",
        outdtype=np.uint8,
        intent=RELATIVE_COLORIMETRIC,
    )
    for rows in row_slices(out.shape[0]):
        part, src = out[rows], pixels[rows]
        top = np.maximum(np.maximum(part[..., 0], part[..., 1]), part[..., 2])
        low = np.minimum(np.minimum(part[..., 0], part[..., 1]), part[..., 2])
        near = (top >= 254) | ((low <= 2) & (top >= DARK))  # cut at an edge of P3 (16-bit: to 1-2)
        if near.any():
            part[near] = _fitted_p3(src[near], full, photo.to_linear)
    return out


def _matrix_into_p3(photo: OwnPhoto) -> np.ndarray:
    """:func:`_into_display_p3` for a photo tagged by CICP (``photo.source``, its primaries'
    matrix and its curve): by tables (its codes' light, P3 light's display value), in
    strips; the colours outside P3 fitted in float (:func:`_fitted_p3`)."""
    pixels, full = photo.pixels, np.iinfo(photo.pixels.dtype).max
    light = photo.source.curve(np.arange(full + 1, dtype=np.float32) / np.float32(full))
    to_p3 = (photo.source.matrix @ P3_FROM_REC709.T).astype(np.float32)
    encode = to_uint8(linear_to_srgb(np.linspace(0.0, 1.0, 65536, dtype=np.float32)))
    out = np.empty(pixels.shape, np.uint8)
    for rows in row_slices(pixels.shape[0]):
        src = pixels[rows]
        p3 = light[src] @ to_p3
        outside = (p3.max(axis=-1) > 1.0) | (p3.min(axis=-1) < 0.0)
        out[rows] = encode[(np.clip(p3, 0.0, 1.0) * 65535.0 + 0.5).astype(np.uint16)]
        if outside.any():
            out[rows][outside] = _fitted_p3(src[outside], full, photo.to_linear)
    return out


def _fitted_p3(pixels: np.ndarray, full: int, to_linear: Callable) -> np.ndarray:
    """Nx3 integer pixels (full scale ``full``) -> Nx3 uint8 Display P3 display values, their
    light from ``to_linear`` fitted into P3 (:func:`_into_display_p3`), in chunks."""
    out = np.empty(pixels.shape, np.uint8)
    for rows in row_slices(len(pixels), 1 << 16):
        src = pixels[rows] / np.float32(full)
        light = to_linear(src)
        y = rgb_to_luminance(light)
        p3 = _above_zero(light @ P3_FROM_REC709.T, y)
        out[rows] = to_uint8(fit_to_srgb(p3, src.max(axis=-1), luminance=y, top=1.0))
    return out


def _above_zero(rgb: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Nx3 linear colours with a channel below 0 desaturated towards their luminance ``y``
    (N) until none is: luminance and hue kept, where cutting the channel would brighten."""
    low = rgb.min(axis=-1, keepdims=True)
    yy = np.maximum(y, 0.0)[:, None]
    t = np.clip(yy / np.maximum(yy - low, 1e-6), 0.0, 1.0)
    return np.where(low < 0.0, yy + t * (rgb - yy), rgb)


def _fits(stored: tuple[int, int], shape: tuple[int, int]) -> bool:
    """Whether pixels stored at ``stored`` (HxW) are the photo as loaded at ``shape`` (HxW),
    perhaps downscaled: the same aspect within 1%."""
    return abs(np.log((stored[1] / stored[0]) / (shape[1] / shape[0]))) <= 0.01


@dataclass(frozen=True)
class GamutDelta:
    """What fitting a photo into sRGB took from it (:func:`gamut_delta`): ``values`` (Nx3
    float32, linear Rec.709) at the pixels ``where`` (HxW bool) is True; nothing elsewhere."""

    where: np.ndarray
    values: np.ndarray


def gamut_delta(photo, ldr: np.ndarray) -> GamutDelta | None:
    """What ``read_ldr`` took from ``photo``'s colours (an :class:`OwnPhoto`, or a path to
    read one from) to bring them into sRGB, in linear
    Rec.709 light, at ``ldr``'s size (the photo as loaded, HxWx3 display sRGB): there
    ``srgb_to_linear(ldr) + delta`` is the photo's own light, unbounded (Little CMS in
    float, or the CICP primaries' matrix). Only where the fitting can have acted: a channel
    cut at 0, or a pixel near the top (``NEAR_TOP``); zero where the photo clipped (the
    file's largest channel through ``color.clip_ramp``: a clipped colour is the
    reconstruction's to give). None for a photo in sRGB or one this cannot read (grey,
    CMYK, a profile Little CMS refuses), and where the sizes do not agree."""
    if (photo := _as_own(photo)) is None:
        return None
    pixels, to_linear, (h, w) = photo.pixels, photo.to_linear, ldr.shape[:2]
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
