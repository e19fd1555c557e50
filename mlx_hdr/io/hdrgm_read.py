"""A gain map described by Adobe's ``hdrgm`` XMP, applied as Ultra HDR 1.0 readers apply it.

Android phones that save HEIC (Samsung's Galaxy S24 and later) store the gain map as an
auxiliary image (``urn:com:samsung:photo:2024:aux:hdrgainmap``) with the Ultra HDR 1.0 XMP
that a gain-map JPEG carries. At full boost the rendition is, per channel,

    hdr = (sdr + OffsetSDR) * 2^(GainMapMin + (GainMapMax - GainMapMin) * g^(1/Gamma)) - OffsetHDR

with ``sdr`` the linear photo (1.0 = its white), ``g`` the map's value in [0, 1] resized to the
photo and the parameters in log2 units, one per channel or one for all (Adobe's gain-map
specification; libultrahdr decodes a JPEG so, which the tests compare with). A gain-map JPEG
that libultrahdr refuses (Adobe Camera Raw's of 2023: the map as the second MPF image with
its ``hdrgm`` XMP, which libultrahdr 1.4 fails to parse) is read the same way
(:func:`jpeg_hdrgm_map`).
"""

from __future__ import annotations

import io
import re
import struct
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from mlx_hdr.errors import InputError
from mlx_hdr.io.checks import pil_pixel_limit, too_large
from mlx_hdr.io.exif import exif_orient, exif_orientation
from mlx_hdr.io.hdrgm import APP1, mpf_images, segments
from mlx_hdr.io.heic import aux_image

FIELDS = {  # hdrgm name: (attribute, default)
    "GainMapMin": ("min_log2", 0.0),
    "GainMapMax": ("max_log2", None),
    "Gamma": ("gamma", 1.0),
    "OffsetSDR": ("offset_sdr", 1 / 64),
    "OffsetHDR": ("offset_hdr", 1 / 64),
}
_PACKET = re.compile(rb"<x:xmpmeta.*?</x:xmpmeta>", re.DOTALL)
HDR_BASE = re.compile(rb"hdrgm:BaseRenditionIsHDR\s*(=\s*[\"']|>)\s*True")
MAX_STOPS = 16.0  # a gain map's largest |log2 gain| read (65,536x): beyond it, a broken file


@dataclass(frozen=True)
class HdrgmParams:
    """A gain map's parameters, per channel (R, G, B), log2 units for min/max."""

    min_log2: tuple[float, float, float]
    max_log2: tuple[float, float, float]
    gamma: tuple[float, float, float]
    offset_sdr: tuple[float, float, float]
    offset_hdr: tuple[float, float, float]


def _values(packet: bytes, name: str) -> list[float] | None:
    """``hdrgm:name``'s value(s): an attribute, an element, or an element's ``rdf:Seq``."""
    attr = re.search(rb"hdrgm:" + name.encode() + rb"\s*=\s*[\"']([^\"']*)[\"']", packet)
    if attr:
        return [float(attr.group(1))]
    elem = re.search(
        rb"<hdrgm:" + name.encode() + rb">(.*?)</hdrgm:" + name.encode() + rb">", packet, re.DOTALL
    )
    if not elem:
        return None
    items = re.findall(rb"<rdf:li>([^<]*)</rdf:li>", elem.group(1))
    return [float(v) for v in items] if items else [float(elem.group(1))]


def parse_hdrgm(data: bytes) -> HdrgmParams | None:
    """The gain-map parameters of the first XMP packet in ``data`` that gives ``GainMapMax``;
    None when none does, or when its base rendition is the HDR one (not read here).

    Raises:
        ValueError: a value that is not a finite number, 2 values where 1 or 3 are allowed,
            or values that make no map (:func:`_check_hdrgm`).
    """
    for packet in _PACKET.findall(data):
        if b"hdrgm:GainMapMax" not in packet:
            continue
        if HDR_BASE.search(packet):
            return None
        fields = {}
        for name, (key, default) in FIELDS.items():
            values = _values(packet, name) or ([default] if default is not None else None)
            if values is None or len(values) not in (1, 3) or not np.all(np.isfinite(values)):
                raise ValueError(f"hdrgm:{name} gives {values}")
            fields[key] = tuple(values * 3 if len(values) == 1 else values)
        return _check_hdrgm(HdrgmParams(**fields), packet)
    return None


def _check_hdrgm(p: HdrgmParams, packet: bytes) -> HdrgmParams:
    """``p`` where it makes a map, as libavif requires (``avifjpeg.c``): gamma > 0, maximum
    at least the minimum, offsets >= 0, HDRCapacityMax above HDRCapacityMin >= 0 where
    given; and no gain beyond ``MAX_STOPS`` either way. ``ValueError`` otherwise."""
    cap = [
        (_values(packet, k) or [d])[0]
        for k, d in (("HDRCapacityMin", 0.0), ("HDRCapacityMax", 1.0))
    ]
    if min(p.gamma) <= 0 or any(h < m for h, m in zip(p.max_log2, p.min_log2, strict=True)):
        raise ValueError("hdrgm gives a gamma of 0 or a GainMapMax below GainMapMin")
    if min(p.offset_sdr + p.offset_hdr) < 0 or not 0 <= cap[0] < cap[1]:
        raise ValueError("hdrgm gives a negative offset or no HDR capacity")
    if max(map(abs, p.min_log2 + p.max_log2)) > MAX_STOPS:
        raise ValueError(f"hdrgm gives gains beyond {MAX_STOPS:g} stops")
    return p


def log2_gain(g: np.ndarray, p: HdrgmParams) -> np.ndarray:
    """HxWx3 float32 log2 gain of map values ``g`` (HxW or HxWx3 in [0, 1])."""
    g = np.clip(g, 0.0, 1.0)
    g = np.repeat(g[..., None], 3, axis=-1) if g.ndim == 2 else g[..., :3]
    lo, hi, gamma = (np.float32(v) for v in (p.min_log2, p.max_log2, p.gamma))
    return (lo + (hi - lo) * g ** (1.0 / gamma)).astype(np.float32)


def apply_hdrgm(
    sdr: np.ndarray, g: np.ndarray, p: HdrgmParams, to709: np.ndarray | None = None
) -> np.ndarray:
    """The full-boost rendition (module docstring) of linear ``sdr`` (HxWx3 Rec.709, 1.0 =
    white) under map values ``g`` at its size: HxWx3 float32 linear >= 0. ``to709``: the 3x3
    matrix from the primaries the map works in to Rec.709 (``x @ to709.T``), where they are
    others; the photo is taken into them first and the rendition back."""
    if to709 is not None:
        sdr = sdr @ np.linalg.inv(to709).T.astype(np.float32)
    osdr, ohdr = np.float32(p.offset_sdr), np.float32(p.offset_hdr)
    hdr = (sdr + osdr) * np.exp2(log2_gain(g, p)) - ohdr
    hdr = hdr if to709 is None else hdr @ to709.T.astype(np.float32)
    return np.maximum(hdr, 0.0).astype(np.float32)


def heic_hdrgm_map(path: Path) -> tuple[np.ndarray, HdrgmParams]:
    """A HEIC's auxiliary ``hdrgainmap`` image (HxW[x3] float32 in [0, 1], resized to the
    photo by :func:`upsample_map`) and the ``hdrgm`` parameters the file gives for it.

    Raises:
        InputError: no such image, no parameters, or parameters that do not parse.
    """
    try:
        params = parse_hdrgm(path.read_bytes())
    except ValueError as exc:
        raise InputError(f"its HDR gain map cannot be decoded ({exc})", path) from None
    if params is None:
        raise InputError("its HDR gain map cannot be decoded (no hdrgm parameters)", path)
    stored, size = aux_image(path, lambda kind: "hdrgainmap" in kind, "HDR gain map")
    return upsample_map(stored, size), params


def upsample_map(g: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A gain map (HxW[xC]) bilinearly resized to ``size`` (width, height), pixel x of the
    photo sampled at x * map width / photo width as libultrahdr samples it."""
    (w, h), (mh, mw) = size, g.shape[:2]
    warp = np.float32([[mw / w, 0, 0], [0, mh / h, 0]])
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    return cv2.warpAffine(g, warp, (w, h), flags=flags, borderMode=cv2.BORDER_REPLICATE)


def jpeg_hdrgm_map(
    path: Path, max_pixels: int | None = None
) -> tuple[np.ndarray, HdrgmParams] | None:
    """An MPF JPEG's gain-map image whose own XMP gives ``hdrgm`` parameters: the map as
    HxW[x3] float32 in [0, 1], resized to the photo (:func:`upsample_map`) and turned by its
    EXIF orientation as ``read_ldr`` turns the photo, and the parameters; None where the file
    has no such image.

    Raises:
        InputError: the image is there but cannot be decoded, is larger than ``max_pixels``
            (default ``MAX_PIXELS``), or its parameters make no map.
    """
    data = path.read_bytes()
    try:
        heads = [(im, segments(data, im.start)) for im in mpf_images(data)[1][1:]]
    except (ValueError, struct.error, IndexError):  # ContainerError is a ValueError
        return None
    for image, head in heads:
        xmp = b"".join(data[s:e] for m, s, e in head if m == APP1)
        try:
            params = parse_hdrgm(xmp)
            if params is None and HDR_BASE.search(xmp):
                raise ValueError("its photo is the HDR rendition, the map leads to SDR")
            if params is None:
                continue
            stored = data[image.start : image.start + image.size]
            with pil_pixel_limit():  # ours, below
                im, gm = Image.open(path), Image.open(io.BytesIO(stored))
            with im, gm:
                too_large(gm.width, gm.height, max_pixels)
                size, orientation = im.size, exif_orientation(im)
                g = np.asarray(gm.convert("L" if gm.mode == "L" else "RGB"), np.float32) / 255
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
            raise InputError(f"its HDR gain map cannot be decoded ({exc})", path) from None
        return exif_orient(upsample_map(g, size), orientation), params
    return None
