"""Photos that record their own highlights: keep what the camera measured, reconstruct the rest.

A phone photo with a gain map (an Ultra HDR JPEG, an iPhone's or a Samsung's HDR HEIC, an
AVIF with an ISO 21496-1 gain map)
carries in it how bright its highlights were, up to the headroom the camera kept
(:mod:`mlx_hdr.io.uhdr_input`). That is a measurement; a reconstruction is an estimate. So
for such a photo the output is the recorded rendition, except where the camera ran out of
headroom: over the pixels clipped in the photo whose gain lies within ``SATURATION`` stops
of the map's largest, the reconstruction is taken where it is brighter (with a ramp over
those ``SATURATION`` stops, so no edge shows). Everything else is the camera's.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import cv2
import numpy as np

from mlx_hdr.color import clip_mask, rgb_to_luminance, row_slices, srgb_to_linear
from mlx_hdr.errors import InputError
from mlx_hdr.io.avif_gainmap import AVIF_GAIN_MAP
from mlx_hdr.io.heic import ANDROID_HDR, APPLE_HDR
from mlx_hdr.io.photo_meta import ULTRA_HDR, existing_gain_map
from mlx_hdr.io.uhdr_input import OFFSET, recorded_gain

READ = (ULTRA_HDR, APPLE_HDR, ANDROID_HDR, AVIF_GAIN_MAP)  # the gain maps whose rendition is read
KEPT = "records its own highlights; keeping them, reconstructing where they are cut"
SATURATION = 0.25  # stops below the map's largest gain where the recorded highlights count as cut


def note_hdr_input(src: Path, skip: bool, use_gain_map: bool) -> bool:
    """Say (one warning) what is done with a photo that carries an HDR gain map already; True
    to skip it (``skip``). A photo whose rendition is read (:data:`READ`, ``use_gain_map``) is
    noted by :func:`gain_for` instead, once it is known whether it decodes."""
    kind = existing_gain_map(src)
    if kind is None or (use_gain_map and not skip and kind in READ):
        return False
    action = "skipped (--skip-hdr-inputs)" if skip else "reconstructing anyway"
    warnings.warn(f"{src}: already HDR on screens that show {kind}; {action}", stacklevel=2)
    return skip


def gain_for(
    src: Path,
    shape: tuple[int, int],
    photo: np.ndarray | None = None,
    max_pixels: int | None = None,
) -> np.ndarray | None:
    """``src``'s recorded gain (:func:`~mlx_hdr.io.uhdr_input.recorded_gain`) at ``shape``
    (HxW, the photo as loaded: an area resize where it was downscaled), with a one-line note;
    None without one, or (noted) where it cannot be decoded. ``photo``: the photo as loaded
    (HxWx3 display, ``shape``), which the gain is then computed over instead of decoding the
    file's photo again. ``max_pixels``: a larger gain map is refused (noted)."""
    try:
        gain = recorded_gain(src, photo, max_pixels)
    except InputError as exc:
        warnings.warn(f"{exc}; reconstructing from the photo alone", stacklevel=2)
        return None
    if gain is None:
        return None
    warnings.warn(f"{src}: {KEPT}", stacklevel=2)
    if gain.shape[:2] != tuple(shape):
        gain = cv2.resize(gain, shape[::-1], interpolation=cv2.INTER_AREA)
    return gain


def recorded_hdr(ldr: np.ndarray, gain: np.ndarray) -> np.ndarray:
    """The camera's HDR rendition of ``ldr`` (HxWx3 display [0, 1]) under ``gain`` (HxWx3):
    HxWx3 float32 scene-linear >= 0, 1.0 = the photo's white."""
    out = (srgb_to_linear(ldr) + OFFSET) * gain - OFFSET
    return np.maximum(out, 0.0).astype(np.float32)


def cut_weight(
    ldr: np.ndarray, gain: np.ndarray, top: float, saturation: float = SATURATION
) -> np.ndarray:
    """HxW float32 in [0, 1]: where the recording ran out of headroom: the soft clipped mask
    (``color.clip_mask``) times a ramp from 0 at ``saturation`` stops below ``top`` (log2 of
    the map's largest luminance gain) to 1 at it."""
    stops = np.log2(np.maximum(rgb_to_luminance(gain), 1e-6))
    ramp = np.clip((stops - (top - saturation)) / saturation, 0.0, 1.0)
    return (clip_mask(ldr)[..., 0] * ramp).astype(np.float32)


def with_recorded(
    ldr: np.ndarray, hdr: np.ndarray, gain: np.ndarray, saturation: float = SATURATION
) -> np.ndarray:
    """``ldr``'s recorded rendition, raised towards the reconstruction ``hdr`` where the
    recording is cut (:func:`cut_weight`) and ``hdr`` is brighter.

    Args:
        ldr: HxWx3 display photo in [0, 1].
        hdr: HxWx3 scene-linear reconstruction of it (>= 0, 1.0 = the photo's white).
        gain: HxWx3 recorded gain over the photo (:func:`gain_for`).
        saturation: the width of the cut's ramp, stops (:func:`cut_weight`).
    Returns:
        HxWx3 float32 scene-linear >= 0, computed in strips of rows.
    """
    top = float(np.log2(max(float(rgb_to_luminance(gain).max()), 1e-6)))
    out = np.empty(hdr.shape, np.float32)
    for rows in row_slices(ldr.shape[0]):
        rec = recorded_hdr(ldr[rows], gain[rows])
        w = cut_weight(ldr[rows], gain[rows], top, saturation)[..., None]
        out[rows] = rec + w * np.maximum(hdr[rows] - rec, 0.0)
    return out
