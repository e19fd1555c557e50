"""An AVIF's own HDR rendition: an ISO 21496-1 gain map stored as AVIF stores it.

Such a file (libavif 1.2 and later write it; the ``tmap`` brand in its ``ftyp``) holds a
``tmap`` item deriving the HDR rendition from two images, the primary (the SDR photo every
viewer shows) and a hidden AV1 gain-map image, and an ``altr`` group that prefers the
``tmap`` item to the primary. It is found and read as libavif finds and reads it
(``avifParseToneMappedImageBox``): version 0; per channel (one or three) the map's log2
range, gamma and the two offsets; the two renditions' headrooms; and whether the map works
in the photo's primaries or in those of the ``tmap`` item's ``nclx``. At full boost that is
the arithmetic of Adobe's ``hdrgm``, so it is returned as
:class:`~mlx_hdr.io.hdrgm_read.HdrgmParams` for :func:`~mlx_hdr.io.hdrgm_read.apply_hdrgm`.

Pillow decodes only an AVIF's primary image, so the gain-map item's AV1 data and its
properties are wrapped as a one-item AVIF (:func:`~mlx_hdr.io.isobmff.one_item_avif`) and
decoded by Pillow too, at 8 bits. A map stored as a grid of tiles, a derived map, or one
whose metadata needs a newer reader is not read: :class:`~mlx_hdr.errors.InputError`, as
for any map that cannot be decoded.
"""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from mlx_hdr.color import rgb_to_rec709_matrix
from mlx_hdr.errors import InputError
from mlx_hdr.io.checks import pil_pixel_limit, too_large
from mlx_hdr.io.exif import exif_orient, exif_orientation
from mlx_hdr.io.hdrgm_read import HdrgmParams, parse_tmap
from mlx_hdr.io.heic import CICP_PRIMARIES
from mlx_hdr.io.isobmff import (
    Meta,
    item_data,
    nclx_primaries,
    one_item_avif,
    parse_meta,
    without_gain_map,
)

AVIF_GAIN_MAP = "an AVIF gain map"  # existing_gain_map's answer for such a file
TRANSFORMS = (b"irot", b"imir", b"clap")  # the photo's turn is applied to the map by hand
UNREADABLE = (OSError, ValueError, RuntimeError, SyntaxError, Image.DecompressionBombError)


def _map_item(meta: Meta) -> tuple[int, int] | None:
    """(tmap item, gain-map item) where the file has a gain map for its primary image: as
    libavif, the ``tmap`` brand, and the ``tmap`` item before the primary in an ``altr``
    group."""
    if b"tmap" not in meta.brands:
        return None
    for item, kind in meta.types.items():
        inputs = meta.refs.get((b"dimg", item), [])
        if kind == b"tmap" and len(inputs) == 2 and inputs[0] == meta.primary:
            for group, ids in meta.groups:
                if group == b"altr" and item in ids and meta.primary in ids[ids.index(item) :]:
                    return item, inputs[1]
    return None


def open_avif(path: Path) -> Image.Image:
    """An AVIF opened by Pillow; where libavif refuses it and it holds a gain map, its
    primary image alone (``isobmff.without_gain_map``: a gain map whose metadata libavif
    cannot read made it refuse the intact photo; reading the map says why it is not
    used). Pillow's first error where that fails too."""
    try:
        return Image.open(path, formats=["AVIF"])
    except (OSError, ValueError, RuntimeError) as exc:
        error = exc
    try:
        alone = without_gain_map(path.read_bytes())
        if alone is not None:
            return Image.open(io.BytesIO(alone), formats=["AVIF"])
    except (OSError, ValueError, RuntimeError):
        pass
    raise error


def has_gain_map(path: Path) -> bool:
    """Whether the AVIF at ``path`` holds a gain map for its primary image (False where the
    file cannot be parsed: reading it reports that)."""
    try:
        return _map_item(parse_meta(Path(path).read_bytes())) is not None
    except (OSError, ValueError):
        return False


def _to_rec709(meta: Meta, item: int) -> np.ndarray | None:
    """The 3x3 linear matrix from ``item``'s primaries to Rec.709 (``x @ m.T``); None for
    BT.709, unspecified or unknown primaries (the photo's own, as ``read_ldr`` gives it)."""
    chroma = CICP_PRIMARIES.get(nclx_primaries(meta, item))
    return None if chroma is None else rgb_to_rec709_matrix(chroma).astype(np.float32)


def _decode(avif: bytes, size: tuple[int, int], max_pixels: int | None) -> np.ndarray:
    """The map in the one-item AVIF ``avif``: HxWx3 float32 in [0, 1], resized to ``size``
    (width, height) as libavif resizes it (bilinear, pixel centres aligned)."""
    with pil_pixel_limit():  # ours, below: a map above Pillow's own may be allowed
        im = Image.open(io.BytesIO(avif), formats=["AVIF"])
    with im:
        too_large(im.width, im.height, max_pixels)
        g = np.asarray(im.convert("RGB"), np.float32) / np.float32(255.0)
    return g if g.shape[1::-1] == size else cv2.resize(g, size, interpolation=cv2.INTER_LINEAR)


def avif_gain_map(
    path, max_pixels: int | None = None
) -> tuple[np.ndarray, HdrgmParams, np.ndarray | None]:
    """The gain map of the AVIF at ``path`` (module docstring).

    Returns:
        The map as HxWx3 float32 in [0, 1] at the photo's size, turned as ``read_ldr`` turns
        the photo; its parameters for full boost; the 3x3 linear matrix from the primaries
        the map works in (the ``tmap`` item's where ``use_base_colour_space`` is clear and it
        names them, else the photo's) to Rec.709 (``x @ m.T``), None for BT.709 or
        primaries not given by CICP.
    Raises:
        InputError: no gain map, or one that cannot be read here (one line, naming the file),
            also a map above ``max_pixels`` (default ``MAX_PIXELS``).
    """
    path = Path(path)
    try:
        data = path.read_bytes()
        meta = parse_meta(data)
        tmap, gain = _map_item(meta) or (0, 0)
        if not tmap:
            raise ValueError("the file holds no gain map for its photo")
        if meta.types.get(gain) != b"av01":
            kind = meta.types.get(gain, b"?").decode("latin-1")
            raise ValueError(f"the map is a {kind!r} item, not one AV1 image")
        info = parse_tmap(item_data(data, meta, tmap))
        if info.alternate_headroom <= info.base_headroom:
            raise ValueError("its rendition is no brighter than the photo")
        props = [
            (meta.props[i - 1], essential)
            for i, essential in meta.assoc.get(gain, [])
            if 0 < i <= len(meta.props) and meta.props[i - 1][4:8] not in TRANSFORMS
        ]
        with pil_pixel_limit(), Image.open(path, formats=["AVIF"]) as im:  # header only
            size, orientation = im.size, exif_orientation(im)
        g = _decode(one_item_avif(item_data(data, meta, gain), props), size, max_pixels)
    except UNREADABLE as exc:
        raise InputError(f"its HDR gain map cannot be decoded ({exc})", path) from None
    own = None if info.use_base_colour_space else nclx_primaries(meta, tmap)
    to709 = _to_rec709(meta, tmap if own not in (None, 2) else meta.primary)  # as libavif
    return exif_orient(g, orientation), info.params, to709
