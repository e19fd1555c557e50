"""A gain map described by Adobe's ``hdrgm`` XMP or by ISO 21496-1's binary metadata, applied as
Ultra HDR 1.0 readers apply it.

Android phones that save HEIC (Samsung's Galaxy S24 and later) store the gain map as an
auxiliary image (``urn:com:samsung:photo:2024:aux:hdrgainmap``) with the Ultra HDR 1.0 XMP
that a gain-map JPEG carries. At full boost the rendition is, per channel,

    hdr = (sdr + OffsetSDR) * 2^(GainMapMin + (GainMapMax - GainMapMin) * g^(1/Gamma)) - OffsetHDR

with ``sdr`` the linear photo (1.0 = its white), ``g`` the map's value in [0, 1] resized to the
photo and the parameters in log2 units, one per channel or one for all (Adobe's gain-map
specification; libultrahdr decodes a JPEG so, which the tests compare with). A gain-map JPEG
that libultrahdr refuses (Adobe Camera Raw's of 2023, whose ``hdrgm`` XMP libultrahdr 1.4
fails to parse; any more than 8192 px a side) is read the same way, by the map's XMP or its
ISO 21496-1 segment (:func:`jpeg_hdrgm_map`); an AVIF's ``tmap`` item carries the same ISO
21496-1 metadata (:func:`parse_tmap`).
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
from mlx_hdr.io.hdrgm import APP1, APP2, mpf_images, segments
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
ISO_NS = b"urn:iso:std:iso:ts:21496:-1\0"  # an ISO 21496-1 APP2 segment's namespace
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
    """``p`` where it makes a map, as libavif requires (``avifjpeg.c``): offsets >= 0,
    HDRCapacityMax above HDRCapacityMin >= 0 where given, and :func:`check_gains`.
    ``ValueError`` otherwise."""
    cap = [
        (_values(packet, k) or [d])[0]
        for k, d in (("HDRCapacityMin", 0.0), ("HDRCapacityMax", 1.0))
    ]
    if min(p.offset_sdr + p.offset_hdr) < 0 or not 0 <= cap[0] < cap[1]:
        raise ValueError("hdrgm gives a negative offset or no HDR capacity")
    return check_gains(p, "hdrgm")


def check_gains(p: HdrgmParams, source: str) -> HdrgmParams:
    """``p`` where its gains make a map, whoever wrote them (``source`` names the metadata in
    the error): gamma > 0, each maximum at least its minimum, no gain beyond ``MAX_STOPS``
    either way (a corrupt file's, which would give inf). ``ValueError`` otherwise."""
    if min(p.gamma) <= 0 or any(h < m for h, m in zip(p.max_log2, p.min_log2, strict=True)):
        raise ValueError(f"{source} gives a gamma of 0 or a maximum gain below its minimum")
    if max(map(abs, p.min_log2 + p.max_log2)) > MAX_STOPS:
        raise ValueError(f"{source} gives gains beyond {MAX_STOPS:g} stops")
    return p


@dataclass(frozen=True)
class Tmap:
    """A ``tmap`` item's metadata: the map's parameters, the photo's and the HDR rendition's
    headrooms (stops), and whether the map works in the photo's primaries."""

    params: HdrgmParams
    base_headroom: float
    alternate_headroom: float
    use_base_colour_space: bool


def _fractions(payload: bytes, flags: int, channels: int) -> tuple[list[tuple], int]:
    """The headrooms' and each channel's (numerator, denominator) pairs, and the metadata's
    size: with ISO 21496-1's use_common_denominator flag (0x08, libultrahdr writes it where
    every denominator is equal) one denominator, then the numerators alone."""
    if flags & 0x08:
        d, base_n, alt_n = struct.unpack_from(">III", payload, 6)
        nums = [struct.unpack_from(">iiIii", payload, 18 + 20 * c) for c in range(channels)]
        per = [tuple(x for n in v for x in (n, d)) for v in nums]
        return [(base_n, d, alt_n, d), *per], 18 + 20 * channels
    head = struct.unpack_from(">4I", payload, 6)
    per = [struct.unpack_from(">iIiIIIiIiI", payload, 22 + 40 * c) for c in range(channels)]
    return [head, *per], 22 + 40 * channels


def parse_tmap(payload: bytes) -> Tmap:
    """ISO 21496-1 metadata (a ``tmap`` item's data; a JPEG's APP2 holds the same after the
    namespace, without the leading version byte). ``ValueError`` for a version this reader
    does not know (as libavif, which then ignores the map) or values that make no map."""
    try:
        version, minimum, writer, flags = struct.unpack_from(">BHHB", payload, 0)
        if version != 0 or minimum > 0:
            raise ValueError(f"gain map metadata version {version}.{minimum} is not supported")
        channels = 3 if flags & 0x80 else 1
        (base_n, base_d, alt_n, alt_d), *values = (f := _fractions(payload, flags, channels))[0]
    except struct.error:
        raise ValueError("gain map metadata cut short") from None
    if writer == 0 and len(payload) != f[1]:
        raise ValueError("gain map metadata has bytes left over")
    if 0 in (base_d, alt_d) or any(0 in v[1::2] for v in values):
        raise ValueError("gain map metadata has a zero denominator")
    per = [[v[i] / v[i + 1] for v in values] for i in range(0, 10, 2)]
    per = [tuple(p * 3 if channels == 1 else p) for p in per]
    params = check_gains(HdrgmParams(*per), "gain map metadata")
    return Tmap(params, base_n / base_d, alt_n / alt_d, bool(flags & 0x40))


def log2_gain(g: np.ndarray, p: HdrgmParams) -> np.ndarray:
    """HxWx3 float32 log2 gain of map values ``g`` (HxW or HxWx3 in [0, 1])."""
    g = np.clip(g, 0.0, 1.0)
    g = np.repeat(g[..., None], 3, axis=-1) if g.ndim == 2 else g[..., :3]
    lo, hi, gamma = (np.float32(v) for v in (p.min_log2, p.max_log2, p.gamma))
    return (lo + (hi - lo) * g ** (1.0 / gamma)).astype(np.float32)


def apply_hdrgm(
    sdr: np.ndarray,
    g: np.ndarray,
    p: HdrgmParams,
    to709: np.ndarray | None = None,
    floor: bool = True,
) -> np.ndarray:
    """The full-boost rendition (module docstring) of linear ``sdr`` (...x3 Rec.709, 1.0 =
    white) under map values ``g`` (...[x3]) at its size: float32 linear, >= 0 unless
    ``floor`` is False. ``to709``: the 3x3 matrix from the primaries the map works in to
    Rec.709 (``x @ to709.T``), where they are others; the photo is taken into them first
    and the rendition back."""
    if to709 is not None:
        sdr = sdr @ np.linalg.inv(to709).T.astype(np.float32)
    osdr, ohdr = np.float32(p.offset_sdr), np.float32(p.offset_hdr)
    hdr = (sdr + osdr) * np.exp2(log2_gain(g, p)) - ohdr
    hdr = hdr if to709 is None else hdr @ to709.T.astype(np.float32)
    return (np.maximum(hdr, 0.0) if floor else hdr).astype(np.float32)


def heic_hdrgm_map(path: Path) -> tuple[np.ndarray, HdrgmParams]:
    """A HEIC's auxiliary ``hdrgainmap`` image (HxW[x3] float32 in [0, 1], resized to the
    photo by :func:`upsample_map`) and the ``hdrgm`` parameters the file gives for it.

    Raises:
        InputError: no such image, no parameters, parameters that do not parse, or a map
        whose shape does not fit the photo.
    """
    try:
        params = parse_hdrgm(path.read_bytes())
    except ValueError as exc:
        raise InputError(f"its HDR gain map cannot be decoded ({exc})", path) from None
    if params is None:
        raise InputError("its HDR gain map cannot be decoded (no hdrgm parameters)", path)
    stored, (w, h) = aux_image(path, lambda kind: "hdrgainmap" in kind, "HDR gain map")
    mh, mw = stored.shape[:2]
    if abs(np.log((mw / mh) / (w / h))) > 0.02 + 1.0 / min(mw, mh):  # turned, or cropped
        raise InputError(f"its HDR gain map ({mw}x{mh}) does not fit the photo", path)
    return upsample_map(stored, (w, h)), params


def upsample_map(g: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A gain map (HxW[xC]) bilinearly resized to ``size`` (width, height), pixel x of the
    photo sampled at x * map width / photo width as libultrahdr samples it."""
    (w, h), (mh, mw) = size, g.shape[:2]
    warp = np.float32([[mw / w, 0, 0], [0, mh / h, 0]])
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    return cv2.warpAffine(g, warp, (w, h), flags=flags, borderMode=cv2.BORDER_REPLICATE)


def _iso_params(data: bytes, head: list[tuple[int, int, int]]) -> HdrgmParams | None:
    """The parameters of a gain-map image's ISO 21496-1 segment (APP2: the namespace, then
    the metadata of an AVIF ``tmap`` item without its leading version byte), None without
    one. ``ValueError`` where it makes no map or leads to a rendition no brighter. The map is
    applied in the photo's primaries whatever its use_base_colour_space flag says (a map
    made in others would name them in its own ICC profile, not read here)."""
    for marker, start, end in head:
        body = data[start + 4 : end]
        if marker == APP2 and body.startswith(ISO_NS) and len(body) > len(ISO_NS) + 4:
            tmap = parse_tmap(b"\0" + body[len(ISO_NS) :])
            if tmap.alternate_headroom <= tmap.base_headroom:
                raise ValueError("its photo is the HDR rendition, the map leads to SDR")
            return tmap.params
    return None


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
            params = parse_hdrgm(xmp) or _iso_params(data, head)
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
