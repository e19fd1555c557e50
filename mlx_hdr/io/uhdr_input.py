"""A photo's own HDR rendition, where it carries one as a gain map.

Phones record highlights above the photo's white in a gain map stored beside the photo:
Google's Ultra HDR JPEG (Android 14 and later; ISO 21496-1, which libultrahdr also reads),
Apple's HDR photos (iPhone 12 and later, HEIC or MPF JPEG) and Android HEICs that carry the
map as an auxiliary image with Ultra HDR's ``hdrgm`` XMP (Samsung). Decoded at full boost, it
says how much brighter than the photo the camera measured each pixel: recorded highlights,
up to the headroom it kept. An Ultra HDR JPEG is decoded by Google's libultrahdr (through
``imagecodecs``; one it refuses by its map's ``hdrgm`` XMP, :func:`~mlx_hdr.io.hdrgm_read.
jpeg_hdrgm_map`), an iPhone photo by :mod:`mlx_hdr.io.apple_gain`, an Android HEIC by
:mod:`mlx_hdr.io.hdrgm_read`, an AVIF with an ISO 21496-1 gain map (``tmap``) by
:mod:`mlx_hdr.io.avif_gainmap`.

:func:`recorded_gain` returns that as a per-pixel, per-channel factor over the photo,

    gain = (hdr + OFFSET) / (srgb_to_linear(base) + OFFSET) / level,  OFFSET = 1/64

with ``hdr`` the decoded rendition and ``base`` the decoded photo (for an Ultra HDR JPEG
libultrahdr's own decode of both, in the file's colour space; otherwise the photo as
``read_ldr`` returns it, under the map's factor). Where the map works in wider primaries
(Display P3, an AVIF's CICP primaries), it is applied to the photo's own colours and the
gain taken in Rec.709 light, the photo's colours outside sRGB and their rendition
desaturated alike (:func:`_wide_gain`), so that

    (srgb_to_linear(photo) + OFFSET) * gain - OFFSET

gives back the rendition, over ``level``, for the photo as ``read_ldr`` returns it.
``level`` is the gain of the photo's mid-tones (:func:`midtone_level`): a rendition made
brighter everywhere for an HDR screen is scaled back so that 1.0 stays the photo's white, as
in every output. Every rendition is so of the photo fitted into sRGB; the outputs give the
photo's own colours back (:mod:`mlx_hdr.io.native`).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from mlx_hdr.color import rgb_to_luminance, row_slices, srgb_to_linear
from mlx_hdr.errors import InputError
from mlx_hdr.io.apple_gain import apple_gain
from mlx_hdr.io.avif_gainmap import AVIF_GAIN_MAP, avif_gain_map
from mlx_hdr.io.exif import exif_orient, exif_orientation
from mlx_hdr.io.hdrgm_read import HdrgmParams, apply_hdrgm, heic_hdrgm_map, jpeg_hdrgm_map
from mlx_hdr.io.heic import ANDROID_HDR, APPLE_HDR
from mlx_hdr.io.image_io import read_ldr
from mlx_hdr.io.native import P3_TO_REC709, gamut_delta
from mlx_hdr.io.own_colours import display_p3_icc, own_photo
from mlx_hdr.io.photo_meta import ULTRA_HDR, existing_gain_map

OFFSET = 1 / 64  # libultrahdr's default offset_sdr and offset_hdr
LIBUHDR_PEAK = 49.0  # libultrahdr's float decode stops at 10,000 cd/m^2 (49.25 in half floats)
MIDTONES = (0.1, 0.7)  # display luminance of the pixels whose gain sets the rendition's level


def _orientation(path: Path) -> int:
    with Image.open(path) as im:
        return exif_orientation(im)


def recorded_gain(
    path, photo: np.ndarray | None = None, max_pixels: int | None = None
) -> np.ndarray | None:
    """The gain of the HDR rendition ``path`` records over its photo (module docstring).

    Args:
        path: the photo's file.
        photo: the photo as already read (``read_ldr``, possibly downscaled), so that it is
            not decoded again; None: read here.
        max_pixels: a larger map is refused (an AVIF's; default ``MAX_PIXELS``).
    Returns:
        HxWx3 float32 > 0, oriented as ``read_ldr`` returns the photo (EXIF rotation applied),
        at ``photo``'s size where given, scaled so that the photo's mid-tones keep their level
        (:func:`midtone_level`); None where ``path`` carries no gain map read here
        (:data:`READERS`).
    Raises:
        InputError: it announces one that cannot be decoded (one line, naming the file).
    """
    path = Path(path)
    reader = READERS.get(existing_gain_map(path))
    if reader is None:
        return None
    gain, photo = reader(path, photo, max_pixels)
    gain /= np.float32(midtone_level(gain, photo))  # in place: a 60-MP gain is 720 MB
    return gain


def midtone_level(gain: np.ndarray, photo: np.ndarray) -> float:
    """The median luminance gain over the photo's mid-tones (display luminance within
    ``MIDTONES``), 1.0 where they are fewer than 1% of the pixels. Some phones' renditions
    lift the whole picture for an HDR screen; dividing by this keeps 1.0 at the photo's white."""
    y = rgb_to_luminance(photo)
    mid = (y > MIDTONES[0]) & (y < MIDTONES[1])
    if mid.sum() < 0.01 * mid.size:
        return 1.0
    return float(np.median(rgb_to_luminance(gain)[mid]))


def _over(photo: np.ndarray, hdr_of, maps: tuple[np.ndarray, ...] = ()) -> np.ndarray:
    """The gain of ``hdr_of(lin, *rows of maps)`` over the linearised ``photo``, HxWx3
    float32, in strips of rows: ``maps`` are arrays of the photo's height that ``hdr_of``
    reads row for row (a gain map, a rendition), so that no full-size temporaries are made."""
    gain = np.empty(photo.shape, np.float32)
    for rows in row_slices(photo.shape[0]):
        lin = srgb_to_linear(photo[rows])
        gain[rows] = (hdr_of(lin, *(m[rows] for m in maps)) + OFFSET) / (lin + OFFSET)
    return gain


def _to_photo(a: np.ndarray, photo: np.ndarray) -> np.ndarray:
    """A full-size map ``a`` (HxW[xC]) area-resized to ``photo``'s size where it differs."""
    h, w = photo.shape[:2]
    return a if a.shape[:2] == (h, w) else cv2.resize(a, (w, h), interpolation=cv2.INTER_AREA)


def _apple_recorded(path: Path, photo: np.ndarray | None, _) -> tuple[np.ndarray, np.ndarray]:
    factor = apple_gain(path)
    photo = read_ldr(path) if photo is None else photo
    factor = _to_photo(factor, photo)[..., None]
    return _over(photo, lambda lin, f: lin * f, (factor,)), photo


def _hdrgm_recorded(
    path: Path,
    photo: np.ndarray | None,
    g: np.ndarray,
    params: HdrgmParams,
    to709: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The gain of map ``g`` (full size, turned as the photo) under ``params``, worked in the
    primaries ``to709`` takes to Rec.709 where given (``apply_hdrgm``; on the photo's own
    colours where it has them, :func:`_wide_gain`)."""
    photo = read_ldr(path) if photo is None else photo
    g = _to_photo(g, photo)
    if to709 is not None:
        render = lambda x, g: apply_hdrgm(x, g, params, floor=False)  # noqa: E731
        return _wide_gain(path, photo, to709, render, g), photo
    return _over(photo, lambda lin, g: apply_hdrgm(lin, g, params), (g,)), photo


def _hdrgm_heic_recorded(path: Path, photo: np.ndarray | None, _) -> tuple[np.ndarray, np.ndarray]:
    """An Android HEIC's map, worked in the photo's own primaries where they are Display
    P3 (Samsung's), as libultrahdr works a Display P3 gain-map JPEG's."""
    to709 = P3_TO_REC709 if display_p3_icc(path) is not None else None
    return _hdrgm_recorded(path, photo, *heic_hdrgm_map(path), to709)


def _avif_recorded(
    path: Path, photo: np.ndarray | None, max_pixels: int | None
) -> tuple[np.ndarray, np.ndarray]:
    return _hdrgm_recorded(path, photo, *avif_gain_map(path, max_pixels))


def _uhdr_recorded(
    path: Path, photo: np.ndarray | None, max_pixels: int | None
) -> tuple[np.ndarray, np.ndarray]:
    import imagecodecs

    data, p3 = path.read_bytes(), display_p3_icc(path) is not None
    try:
        hdr = imagecodecs.ultrahdr_decode(data)[..., :3].astype(np.float32)
        base = imagecodecs.ultrahdr_decode(data, dtype=np.uint8)[..., :3]
    except Exception as exc:  # imagecodecs raises its own error types, or lacks the codec
        why = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if (found := jpeg_hdrgm_map(path, max_pixels)) is not None:  # what libultrahdr refuses
            return _hdrgm_recorded(path, photo, *found, P3_TO_REC709 if p3 else None)
        raise InputError(f"its HDR gain map cannot be decoded ({why})", path) from None
    if hdr.max() >= LIBUHDR_PEAK and (found := _uncut_map(path, max_pixels)) is not None:
        return _hdrgm_recorded(path, photo, *found, P3_TO_REC709 if p3 else None)
    orient = _orientation(path)
    sdr = base / np.float32(255.0)
    gain = _over(sdr, lambda lin, h: np.maximum(h, 0.0), (hdr,))  # in the base's primaries
    gain = np.ascontiguousarray(exif_orient(gain, orient))
    if p3:  # a gain in Display P3 light, on the photo's own colours
        photo = read_ldr(path) if photo is None else photo
        render = lambda x, r: (x + OFFSET) * r - OFFSET  # noqa: E731
        return _wide_gain(path, photo, P3_TO_REC709, render, _to_photo(gain, photo)), photo
    if photo is None:  # libultrahdr's own decode of the photo sets the level
        return gain, exif_orient(sdr, orient)
    return _to_photo(gain, photo), photo


def _uncut_map(path: Path, max_pixels: int | None):
    """The map and parameters of a gain-map JPEG whose libultrahdr decode reached its limit,
    read by our own reader (``jpeg_hdrgm_map``) so the highlights above it are not cut;
    None where that reader cannot read them (libultrahdr's cut decode serves then)."""
    try:
        return jpeg_hdrgm_map(path, max_pixels)
    except InputError:
        return None


def _wide_gain(path: Path, photo: np.ndarray, to709: np.ndarray, render, ratio) -> np.ndarray:
    """The per-channel gain, in Rec.709 light, of a rendition worked in wider primaries
    (``to709``: theirs -> Rec.709, ``x @ to709.T``) over ``photo`` (HxWx3 display sRGB, as
    ``read_ldr`` fits it into sRGB): HxWx3 float32 > 0 at its size. ``render(light,
    ratio)`` gives the rendition of linear light in those primaries (...x3) under the map
    ``ratio`` (HxW[x3] at the photo's size, indexed alike). Where the fitting into sRGB
    changed the photo (``native.gamut_delta``), the map is applied to the photo's own
    colours and the colour and its rendition are desaturated into Rec.709 alike
    (:func:`_desaturated`): a colour outside sRGB that the map leaves alone keeps a gain
    of 1, one it brightens keeps its hue."""
    from709 = np.linalg.inv(to709).astype(np.float32)
    to709 = to709.astype(np.float32)

    def rendition(lin: np.ndarray, r: np.ndarray) -> np.ndarray:
        return np.maximum(render(lin @ from709.T, r) @ to709.T, 0.0)

    gain = _over(photo, rendition, (ratio,))
    delta = gamut_delta(own_photo(path), photo)
    if delta is None or not delta.where.any():
        return gain
    own = srgb_to_linear(photo[delta.where]) + delta.values  # Nx3 linear Rec.709
    r = ratio[delta.where][:, None]  # Nx1[x3]: a map's shape, one pixel wide
    lin, hdr = _desaturated(own, render((own @ from709.T)[:, None], r)[:, 0] @ to709.T)
    gain[delta.where] = np.maximum((hdr + OFFSET) / (lin + OFFSET), 1e-6)
    return gain


def _desaturated(lin: np.ndarray, hdr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Linear Rec.709 colours ``lin`` (...x3) with a channel below 0 desaturated towards
    their luminance until none is, luminance and hue kept; their rendition ``hdr`` by the
    same share (so that a rendition k times a colour stays k times it), cut at 0."""
    y, y_hdr = (np.maximum(rgb_to_luminance(x), 0.0)[..., None] for x in (lin, hdr))
    low = lin.min(axis=-1, keepdims=True)
    t = np.where(low < 0.0, np.clip(y / np.maximum(y - low, 1e-6), 0.0, 1.0), 1.0)
    return y + t * (lin - y), np.maximum(y_hdr + t * (hdr - y_hdr), 0.0)


READERS = {
    ULTRA_HDR: _uhdr_recorded,
    APPLE_HDR: _apple_recorded,
    ANDROID_HDR: _hdrgm_heic_recorded,
    AVIF_GAIN_MAP: _avif_recorded,
}
