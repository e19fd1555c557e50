"""Ultra HDR gain-map JPEG output: the photo itself for SDR screens, the reconstruction on HDR ones.

The file's base image is the input photo (sRGB JPEG, quality 95, no chroma subsampling, its EXIF
kept with the orientation reset), so anyone who shares it shares the photo as it was; a Display
P3 photo keeps its own pixels and profile there, another wide-gamut photo (Adobe RGB) its
colours converted into Display P3 (:mod:`mlx_hdr.io.native`), and the gain is then taken in
Display P3 light. The gain map holds, per channel, log2 of the ratio between the
reconstruction and that base:

    gain = log2((hdr + offset) / (srgb_to_linear(base) + offset)),  offset = 1/64

averaged over ``scale`` x ``scale`` blocks and quantised to 8 bits between ``GainMapMin`` and
``GainMapMax`` (gamma 1). An HDR screen shows ``(base + offset) * 2^(gain * w) - offset`` with
``w`` from 0 (no headroom) to 1 (headroom >= the maximum boost), i.e. the reconstruction clipped
at the maximum boost; an SDR screen or an old viewer shows the base. The gain is measured
against the *decoded* base, so the HDR rendition also undoes the base's JPEG error.

libultrahdr (:mod:`mlx_hdr.io.libuhdr`) writes the container (MPF) and the ISO 21496-1 metadata,
:mod:`mlx_hdr.io.hdrgm` adds the Adobe/Google ``hdrgm`` XMP. Everything per pixel runs in strips
of rows: a 24 MP photo needs its base (uint8) and the gain map beside the HDR it came from.

Where libultrahdr cannot be called through ctypes (``imagecodecs`` builds for macOS may not
export its symbols), :func:`encode_uhdr_hdr_only` hands the HDR alone to
``imagecodecs.ultrahdr_encode``: libultrahdr then tone-maps a base of its own and computes the
gain map, so SDR screens show its rendition rather than the photo, without the photo's EXIF and
with the ISO 21496-1 metadata only; :func:`write_uhdr` says so once.
"""

from __future__ import annotations

import io
import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from mlx_hdr.color import row_slices, srgb_to_linear
from mlx_hdr.errors import HDRError
from mlx_hdr.io.atomic import atomic_write
from mlx_hdr.io.hdr_io import sanitize_hdr
from mlx_hdr.io.hdrgm import ContainerError, add_hdrgm_xmp, transplant
from mlx_hdr.io.hdrgm_read import MAX_STOPS
from mlx_hdr.io.image_io import to_uint8
from mlx_hdr.io.libuhdr import (
    UHDR_CG_BT_709,
    UHDR_CG_DISPLAY_P3,
    GainMapMetadata,
    LibraryUnavailable,
    assemble,
    library,
)
from mlx_hdr.io.native import NativeBase

UHDR_SUFFIX = "_uhdr.jpg"
JPEG_MAX_SIDE = 65500  # libjpeg's largest image side
BASE_QUALITY = 95
OFFSET = 1 / 64  # offset_sdr = offset_hdr: keeps the ratio of near-black pixels tame
AUTO_MAX_STOPS = 4.0  # the default boost is the prediction's peak, at most 16x SDR white
MAX_DARKEN_STOPS = 8.0  # gains below -8 stops (HDR far darker than the photo) are clipped
STRIP_ROWS = 256
MAX_EXIF_BYTES = 65533  # one JPEG APP1 segment
SDR_WHITE_NITS = 203.0  # libultrahdr's SDR white: its target display peak is in these units
MAX_PEAK_NITS = 10000.0  # the most ultrahdr_encode's target display peak may be
MAX_SIDE = 8192  # libultrahdr 1.4's build limit on each image's width and height
MAX_HDR_ONLY_STOPS = 15.0  # half floats (the HDR-only encoder's input) end near 2^16
_SRGB_LUT = srgb_to_linear(np.arange(256, dtype=np.float32) / 255.0)


@dataclass(frozen=True)
class UhdrOptions:
    """What photographers tune in the gain-map JPEG.

    ``max_boost``: the most the HDR rendition may brighten a pixel over the base, in stops
    (None: the prediction's peak, at most ``AUTO_MAX_STOPS``); brighter highlights clip there.
    ``quality``: JPEG quality of the gain map (1-100). ``scale``: the gain map is 1/scale of
    the photo's width and height (1 = full resolution).
    """

    max_boost: float | None = None
    quality: int = 90
    scale: int = 1


def encode_base(
    ldr: np.ndarray, exif: bytes | None = None, native: NativeBase | None = None
) -> bytes:
    """The SDR base: HxWx3 display RGB in [0, 1] -> sRGB JPEG bytes (quality 95, 4:4:4, with
    the EXIF block if given; at most ``MAX_EXIF_BYTES``); with ``native``, its pixels and
    profile instead of ``ldr``."""
    buf = io.BytesIO()
    pixels = to_uint8(ldr) if native is None else native.pixels
    extra = {} if native is None else {"icc_profile": native.icc}
    Image.fromarray(pixels).save(
        buf, "JPEG", quality=BASE_QUALITY, subsampling=0, exif=exif or b"", **extra
    )
    return buf.getvalue()


def _block_mean(g: np.ndarray, scale: int, width: int) -> np.ndarray:
    """Mean over scale x scale blocks of an rxWx3 strip (edges repeated) -> ceil(r/s)xwidthx3."""
    rows = -(-g.shape[0] // scale) * scale
    g = np.pad(g, ((0, rows - g.shape[0]), (0, width * scale - g.shape[1]), (0, 0)), mode="edge")
    return g.reshape(rows // scale, scale, width, scale, 3).mean(axis=(1, 3))


def _gain_strips(base: np.ndarray, hdr: np.ndarray, scale: int, to_base=None):
    """Yield ``(map row, gain rows, hdr peak)`` over strips of the photo: the per-channel log2
    gain of ``hdr`` (taken to the base's primaries by the 3x3 ``to_base`` where given) over
    ``base`` (uint8 display values with the sRGB curve, as decoders see them), block-averaged."""
    h, w = base.shape[:2]
    width, rows = -(-w // scale), scale * max(1, STRIP_ROWS // scale)
    for y in range(0, h, rows):
        strip = np.asarray(hdr[y : y + rows], np.float32)
        strip = np.maximum(strip if to_base is None else strip @ to_base.T, 0.0)
        g = np.log2((strip + OFFSET) / (_SRGB_LUT[base[y : y + rows]] + OFFSET))
        yield y // scale, _block_mean(g, scale, width), float(strip.max())


def gain_range(
    base: np.ndarray, hdr: np.ndarray, scale: int, to_base=None
) -> tuple[float, float, float]:
    """``(lowest, highest, peak)``: the gain map's extreme log2 gains (``scale`` x ``scale``
    block means) and the largest value of ``hdr`` (HxWx3 scene-linear, 1.0 = base white)."""
    lo, hi, peak = math.inf, -math.inf, 0.0
    for _, gain, top in _gain_strips(base, hdr, scale, to_base):
        lo, hi, peak = min(lo, float(gain.min())), max(hi, float(gain.max())), max(peak, top)
    return lo, hi, peak


def gain_metadata(lo: float, hi: float, peak: float, max_stops: float) -> GainMapMetadata:
    """The metadata for gains spanning [lo, hi] (log2): map values 0..255 stand for
    [min(lo, 0), min(hi, max_stops)], at least -8 stops and at most 16 (``MAX_STOPS``,
    beyond which readers take a map for broken). A reconstruction with nothing above
    white (``peak <= 1``) gets a maximum boost of 1 (0 stops)."""
    top = 0.0 if peak <= 1.0 else min(max(hi, 0.0), max_stops, MAX_STOPS)
    bottom = max(min(lo, 0.0), -MAX_DARKEN_STOPS)
    return GainMapMetadata(
        min_boost=2.0**bottom,
        max_boost=2.0**top,
        offset_sdr=OFFSET,
        offset_hdr=OFFSET,
        capacity_max=2.0 ** max(top, 0.01),  # libultrahdr needs capacity max > capacity min (1)
    )


def gain_map_image(
    base: np.ndarray, hdr: np.ndarray, scale: int, meta: GainMapMetadata, to_base=None
):
    """The 8-bit gain map: ceil(H/scale) x ceil(W/scale) x 3 uint8, 0..255 spanning
    log2(min_boost)..log2(max_boost) linearly (gamma 1), clipped."""
    lo, hi = math.log2(meta.min_boost), math.log2(meta.max_boost)
    h, w = base.shape[:2]
    out = np.zeros((-(-h // scale), -(-w // scale), 3), np.uint8)
    if hi - lo < 1e-6:
        return out
    for row, gain, _ in _gain_strips(base, hdr, scale, to_base):
        out[row : row + len(gain)] = np.clip((gain - lo) / (hi - lo), 0.0, 1.0) * 255.0 + 0.5
    return out


def _stand_in(jpeg: bytes) -> bytes:
    """An 8x8 grey JPEG of ``jpeg``'s colour mode, ICC profile and EXIF: what libultrahdr is
    given in its place (:func:`assemble_any_size`)."""
    with Image.open(io.BytesIO(jpeg)) as im:
        mode, icc, exif = im.mode, im.info.get("icc_profile"), im.info.get("exif")
    buf = io.BytesIO()
    extra = {k: v for k, v in (("icc_profile", icc), ("exif", exif)) if v}
    Image.new(mode, (8, 8), 128 if mode == "L" else (128,) * 3).save(buf, "JPEG", **extra)
    return buf.getvalue()


def assemble_any_size(
    base: bytes, gain_map: bytes, meta: GainMapMetadata, gamut: int = UHDR_CG_BT_709
) -> bytes:
    """libultrahdr's Ultra HDR JPEG of a base and a gain-map JPEG (``libuhdr.assemble``), at
    any size: where either is more than ``MAX_SIDE`` px a side, libultrahdr assembles 8x8
    stand-ins and the real images are put in their place (``hdrgm.transplant``)."""
    sizes = []
    for jpeg in (base, gain_map):
        with Image.open(io.BytesIO(jpeg)) as im:
            sizes += im.size
    if max(sizes) <= MAX_SIDE:
        return assemble(base, gain_map, meta, gamut)
    small = (_stand_in(base), _stand_in(gain_map))
    return transplant(assemble(*small, meta, gamut), small, (base, gain_map))


def encode_uhdr(
    ldr: np.ndarray,
    hdr: np.ndarray,
    exif: bytes | None = None,
    opts: UhdrOptions | None = None,
    native: NativeBase | None = None,
) -> tuple[bytes, GainMapMetadata]:
    """An Ultra HDR JPEG of a photo and its reconstruction (see the module doc).

    Args:
        ldr: HxWx3 display RGB in [0, 1], the photo as read (becomes the base).
        hdr: HxWx3 scene-linear RGB, 1.0 = the photo's white (``predict_hdr``'s output).
        exif: the photo's EXIF block to keep (``photo_meta.read_exif``), or None.
        opts: boost, gain-map quality and scale.
        native: the photo in Display P3 (:func:`~mlx_hdr.io.native.display_p3_base`) as the
            base instead of ``ldr``, the gain taken in its colour space.
    Returns:
        ``(jpeg bytes, metadata)``.
    """
    opts = opts or UhdrOptions()
    if hdr.shape != ldr.shape:
        raise HDRError(f"HDR shape {hdr.shape} differs from the photo's {ldr.shape}")
    if max(ldr.shape[:2]) > JPEG_MAX_SIDE:
        raise HDRError(f"a JPEG holds at most {JPEG_MAX_SIDE:,} px a side")
    hdr = sanitize_hdr(hdr, negative=True)  # a NaN would drop its strip from the gain range
    base = encode_base(ldr, exif, native)
    with Image.open(io.BytesIO(base)) as im:
        decoded = np.asarray(im.convert("RGB"))
    cap = AUTO_MAX_STOPS if opts.max_boost is None else opts.max_boost
    to_base = None if native is None else native.from_rec709
    meta = gain_metadata(*gain_range(decoded, hdr, opts.scale, to_base), cap)
    buf = io.BytesIO()
    gain_map = Image.fromarray(gain_map_image(decoded, hdr, opts.scale, meta, to_base))
    gain_map.save(buf, "JPEG", quality=opts.quality, subsampling=0)
    gamut = UHDR_CG_BT_709 if native is None else UHDR_CG_DISPLAY_P3
    try:
        return add_hdrgm_xmp(assemble_any_size(base, buf.getvalue(), meta, gamut), meta), meta
    except ContainerError as exc:
        raise HDRError(f"libultrahdr wrote an unexpected file layout ({exc})") from None


def encode_uhdr_hdr_only(hdr: np.ndarray, opts: UhdrOptions | None = None) -> tuple[bytes, float]:
    """An Ultra HDR JPEG from the reconstruction alone, by ``imagecodecs.ultrahdr_encode``
    (the fallback where :func:`encode_uhdr` cannot call libultrahdr; see the module doc).

    The HDR is clipped at the maximum boost (``opts.max_boost`` stops, default the peak, at
    most ``AUTO_MAX_STOPS``) and given as linear half floats (1.0 = SDR white); the display
    headroom at which the map applies in full is that boost. ``opts.scale`` sets the map's size;
    the JPEG quality is ``BASE_QUALITY`` for base and map alike (one setting there).
    Returns ``(jpeg bytes, maximum boost as a ratio)``.
    """
    import imagecodecs

    opts = opts or UhdrOptions()
    if not getattr(getattr(imagecodecs, "ULTRAHDR", None), "available", False):
        raise HDRError(
            "gain-map JPEG output needs imagecodecs built with libultrahdr 1.4 "
            "(pip install -U imagecodecs)"
        )
    cap = AUTO_MAX_STOPS if opts.max_boost is None else opts.max_boost
    top = 2.0 ** min(cap, MAX_HDR_ONLY_STOPS)
    rgba = np.ones((*hdr.shape[:2], 4), np.float16)
    peak = 0.0
    for rows in row_slices(hdr.shape[0]):
        strip = np.clip(np.nan_to_num(np.asarray(hdr[rows], np.float32)), 0.0, top)
        rgba[rows, :, :3] = strip
        peak = max(peak, float(strip.max(initial=0.0)))
    boost = max(peak, 1.0)
    # the target display peak becomes the headroom for the full boost; libultrahdr needs it
    # above SDR white
    nits = min(max(boost, 2.0**0.01) * SDR_WHITE_NITS, MAX_PEAK_NITS)
    try:
        data = imagecodecs.ultrahdr_encode(rgba, BASE_QUALITY, scale=opts.scale, nits=nits)
    except (RuntimeError, ValueError) as exc:
        raise HDRError(f"libultrahdr could not encode the gain-map JPEG ({exc})") from None
    return bytes(data), boost


_fallback_noted = False


def _note_fallback(path: Path, why: LibraryUnavailable) -> None:
    global _fallback_noted
    if not _fallback_noted:
        _fallback_noted = True
        warnings.warn(
            f"{path}: {why}; gain-map JPEGs get libultrahdr's own rendition of the HDR as "
            "their base, not the photo, and no EXIF (noted once)",
            stacklevel=3,
        )


def write_uhdr(
    path,
    ldr: np.ndarray,
    hdr: np.ndarray,
    exif: bytes | None = None,
    opts: UhdrOptions | None = None,
    native: NativeBase | None = None,
    wide: np.ndarray | None = None,
) -> Path:
    """:func:`encode_uhdr` written atomically to ``path``; warns when the boost is 1 (the
    prediction has nothing above white, so HDR screens show the photo unchanged) and when the
    EXIF block is too large to keep. Where libultrahdr cannot be called directly, the file
    comes from :func:`encode_uhdr_hdr_only`, with a note (once per process). ``wide``: the
    reconstruction with the photo's colours outside sRGB (``native.with_wide_gamut``), for
    the gain over a ``native`` base; the fallback's Rec.709 base takes ``hdr``."""
    path = Path(path)
    try:
        library()
    except LibraryUnavailable as why:
        _note_fallback(path, why)
        data, boost = encode_uhdr_hdr_only(hdr, opts)
    else:
        if exif and len(exif) > MAX_EXIF_BYTES:
            msg = f"{path}: the photo's EXIF ({len(exif)} bytes) does not fit a JPEG segment"
            warnings.warn(f"{msg}; not kept", stacklevel=2)
            exif = None
        own = wide if wide is not None and native is not None else hdr
        data, meta = encode_uhdr(ldr, own, exif, opts, native)
        boost = meta.max_boost
    with atomic_write(path) as tmp:
        tmp.write_bytes(data)
    if boost <= 1.0:  # said once the file is there
        capped = opts is not None and opts.max_boost == 0
        why = "--max-boost 0" if capped else "nothing above white in this HDR"
        warnings.warn(
            f"{path}: {why}; gain map written with boost 1 (HDR screens show the photo as it is)",
            stacklevel=2,
        )
    return path
