"""An AVIF's own HDR rendition: an ISO 21496-1 gain map stored as AVIF stores it.

Such a file (libavif 1.1 and later write it; the ``tmap`` brand in its ``ftyp``) holds a
``tmap`` item deriving the HDR rendition from two images: the primary (the SDR photo every
viewer shows) and a hidden AV1 gain-map image. The ``tmap`` item's data is ISO 21496-1's
metadata, read as libavif reads it (``avifParseToneMappedImageBox``): version 0, per channel
(one or three) the map's log2 range, gamma and the two offsets, and the two renditions'
headrooms. At full boost that is the same arithmetic as Adobe's ``hdrgm``, so it is returned
as :class:`~mlx_hdr.io.hdrgm_read.HdrgmParams` and applied by
:func:`~mlx_hdr.io.hdrgm_read.apply_hdrgm`.

Pillow decodes only an AVIF's primary image, so the gain-map item's AV1 data and its
properties are wrapped as a one-item AVIF (:func:`one_item_avif`) and decoded by Pillow too.
A map stored as a grid of tiles, a derived map or one whose metadata needs a newer reader
is not read: :class:`~mlx_hdr.errors.InputError`, as for any map that cannot be decoded.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from mlx_hdr.errors import InputError
from mlx_hdr.io.checks import check_pixels
from mlx_hdr.io.exif import exif_orient, exif_orientation
from mlx_hdr.io.hdrgm_read import HdrgmParams, upsample_map

AVIF_GAIN_MAP = "an AVIF gain map"  # existing_gain_map's answer for such a file
TRANSFORMS = (b"irot", b"imir", b"clap")  # the base's own, applied to the map by hand


@dataclass
class Meta:
    """What an AVIF's ``meta`` box says about its items (ISO/IEC 14496-12, 23008-12)."""

    brands: set[bytes] = field(default_factory=set)
    primary: int = 0
    types: dict[int, bytes] = field(default_factory=dict)
    extents: dict[int, tuple[int, list[tuple[int, int]]]] = field(default_factory=dict)
    refs: dict[tuple[bytes, int], list[int]] = field(default_factory=dict)
    props: list[bytes] = field(default_factory=list)  # ipco's boxes, whole
    assoc: dict[int, list[tuple[int, bool]]] = field(default_factory=dict)  # 1-based, essential
    idat: bytes = b""


def _boxes(data: bytes, start: int, end: int) -> Iterator[tuple[bytes, int, int]]:
    """(type, payload start, end) of each box in ``data[start:end]``."""
    pos = start
    while pos + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, pos)
        head = 16 if size == 1 else 8
        size = struct.unpack_from(">Q", data, pos + 8)[0] if size == 1 else size or end - pos
        if size < head or pos + size > end:
            raise ValueError(f"box {kind.decode('latin-1')!r} runs past its container")
        yield kind, pos + head, pos + size
        pos += size


def _uint(data: bytes, pos: int, n: int) -> tuple[int, int]:
    if pos + n > len(data):
        raise ValueError("truncated box")
    return int.from_bytes(data[pos : pos + n], "big"), pos + n


def _iloc(meta: Meta, data: bytes, pos: int, version: int) -> None:
    sizes, pos = _uint(data, pos, 2)
    off_n, len_n, base_n = sizes >> 12, sizes >> 8 & 15, sizes >> 4 & 15
    idx_n = sizes & 15 if version in (1, 2) else 0
    count, pos = _uint(data, pos, 2 if version < 2 else 4)
    for _ in range(count):
        item, pos = _uint(data, pos, 2 if version < 2 else 4)
        method = 0
        if version in (1, 2):
            method, pos = _uint(data, pos, 2)
        base, pos = _uint(data, pos + 2, base_n)  # past data_reference_index
        n, pos = _uint(data, pos, 2)
        extents = []
        for _ in range(n):
            offset, pos = _uint(data, pos + idx_n, off_n)
            length, pos = _uint(data, pos, len_n)
            extents.append((base + offset, length))
        meta.extents[item] = (method & 15, extents)


def _iinf(meta: Meta, data: bytes, pos: int, end: int, version: int) -> None:
    for kind, s, _ in _boxes(data, pos + (2 if version == 0 else 4), end):
        if kind == b"infe" and data[s] >= 2:
            item, p = _uint(data, s + 4, 2 if data[s] == 2 else 4)
            meta.types[item] = data[p + 2 : p + 6]


def _iref(meta: Meta, data: bytes, pos: int, end: int, version: int) -> None:
    n = 2 if version == 0 else 4
    for kind, s, _ in _boxes(data, pos, end):
        item, p = _uint(data, s, n)
        count, p = _uint(data, p, 2)
        meta.refs[(kind, item)] = [_uint(data, p + i * n, n)[0] for i in range(count)]


def _iprp(meta: Meta, data: bytes, pos: int, end: int) -> None:
    for kind, s, e in _boxes(data, pos, end):
        if kind == b"ipco":
            meta.props = [data[a - 8 : b] for _, a, b in _boxes(data, s, e)]
        elif kind == b"ipma":
            version, flags = data[s], data[s + 3]
            count, p = _uint(data, s + 4, 4)
            for _ in range(count):
                item, p = _uint(data, p, 2 if version < 1 else 4)
                n, p = _uint(data, p, 1)
                wide = 2 if flags & 1 else 1
                values = [_uint(data, p + i * wide, wide)[0] for i in range(n)]
                p += n * wide
                top = 15 if wide == 2 else 7
                meta.assoc[item] = [(v & ((1 << top) - 1), bool(v >> top)) for v in values]


def parse_meta(data: bytes) -> Meta:
    """The items, references and properties of an AVIF (``ValueError`` if malformed)."""
    try:
        return _parse_meta(data)
    except (IndexError, struct.error):
        raise ValueError("malformed box structure") from None


def _parse_meta(data: bytes) -> Meta:
    meta = Meta()
    for kind, s, e in _boxes(data, 0, len(data)):
        if kind == b"ftyp":
            meta.brands = {data[i : i + 4] for i in range(s, e, 4) if i != s + 4}
        elif kind == b"meta":
            for sub, a, b in _boxes(data, s + 4, e):
                version = data[a] if b > a else 0
                if sub == b"pitm":
                    meta.primary = _uint(data, a + 4, 2 if version == 0 else 4)[0]
                elif sub == b"iloc":
                    _iloc(meta, data, a + 4, version)
                elif sub == b"iinf":
                    _iinf(meta, data, a + 4, b, version)
                elif sub == b"iref":
                    _iref(meta, data, a + 4, b, version)
                elif sub == b"iprp":
                    _iprp(meta, data, a, b)
                elif sub == b"idat":
                    meta.idat = data[a:b]
    return meta


def item_data(data: bytes, meta: Meta, item: int) -> bytes:
    """The bytes of ``item`` (in the file, or in ``idat``)."""
    method, extents = meta.extents.get(item, (0, []))
    if method not in (0, 1) or not extents:
        raise ValueError(f"item {item} has no data this reader can locate")
    src = data if method == 0 else meta.idat
    out = [src[o : o + n] if n else src[o:] for o, n in extents]
    if any(len(part) < n for part, (_, n) in zip(out, extents, strict=True)):
        raise ValueError(f"item {item}'s data is cut short")
    return b"".join(out)


def parse_tmap(payload: bytes) -> tuple[HdrgmParams, float, float]:
    """ISO 21496-1 metadata (a ``tmap`` item's data) -> (parameters, base headroom, alternate
    headroom), the headrooms in stops. ``ValueError`` for a version this reader does not know
    (as libavif, which then ignores the map) or values that make no map."""
    try:
        version, minimum, writer, flags = struct.unpack_from(">BHHB", payload, 0)
        if version != 0 or minimum > 0:
            raise ValueError(f"gain map metadata version {version}.{minimum} is not supported")
        base_n, base_d, alt_n, alt_d = struct.unpack_from(">4I", payload, 6)
        channels = 3 if flags & 0x80 else 1
        values = [struct.unpack_from(">iIiIIIiIiI", payload, 22 + 40 * c) for c in range(channels)]
    except struct.error:
        raise ValueError("gain map metadata cut short") from None
    if writer == 0 and len(payload) != 22 + 40 * channels:
        raise ValueError("gain map metadata has bytes left over")
    if 0 in (base_d, alt_d) or any(0 in v[1::2] for v in values):
        raise ValueError("gain map metadata has a zero denominator")
    per = [[v[i] / v[i + 1] for v in values] for i in range(0, 10, 2)]
    per = [tuple(p * 3 if channels == 1 else p) for p in per]
    lo, hi, gamma, base_offset, alt_offset = per
    if any(g <= 0 for g in gamma) or any(h < m for h, m in zip(hi, lo, strict=True)):
        raise ValueError("gain map metadata has a gamma of 0 or a maximum below its minimum")
    params = HdrgmParams(lo, hi, gamma, base_offset, alt_offset)
    return params, base_n / base_d, alt_n / alt_d


def _box(kind: bytes, payload: bytes, version: int | None = None) -> bytes:
    """A box (a full box, with flags 0, where ``version`` is given)."""
    head = b"" if version is None else bytes([version, 0, 0, 0])
    return struct.pack(">I4s", 8 + len(head) + len(payload), kind) + head + payload


def one_item_avif(av1: bytes, props: list[tuple[bytes, bool]]) -> bytes:
    """A minimal AVIF whose primary image is the AV1 data ``av1`` with the property boxes
    ``props`` (each whole, with whether it is essential)."""
    ftyp = _box(b"ftyp", b"avif\0\0\0\0avifmif1miaf")
    hdlr = _box(b"hdlr", b"\0\0\0\0pict" + bytes(13), 0)
    pitm = _box(b"pitm", struct.pack(">H", 1), 0)
    infe = _box(b"infe", struct.pack(">HH4s", 1, 0, b"av01") + b"\0", 2)
    iinf = _box(b"iinf", struct.pack(">H", 1) + infe, 0)
    assoc = bytes((i + 1) | (0x80 if essential else 0) for i, (_, essential) in enumerate(props))
    ipma = _box(b"ipma", struct.pack(">IHB", 1, 1, len(props)) + assoc, 0)
    iprp = _box(b"iprp", _box(b"ipco", b"".join(p for p, _ in props)) + ipma)

    def meta(offset: int) -> bytes:
        iloc = _box(b"iloc", b"\x44\0" + struct.pack(">HHHHII", 1, 1, 0, 1, offset, len(av1)), 0)
        return _box(b"meta", hdlr + pitm + iloc + iinf + iprp, 0)

    start = len(ftyp) + len(meta(0)) + 8
    return ftyp + meta(start) + _box(b"mdat", av1)


def _map_item(meta: Meta) -> tuple[int, int] | None:
    """(tmap item, gain-map item) where the file has a gain map for its primary image."""
    if b"tmap" not in meta.brands:
        return None  # as libavif: without the brand the tmap item is not read
    for item, kind in meta.types.items():
        inputs = meta.refs.get((b"dimg", item), [])
        if kind == b"tmap" and len(inputs) == 2 and inputs[0] == meta.primary:
            return item, inputs[1]
    return None


def has_gain_map(path: Path) -> bool:
    """Whether the AVIF at ``path`` holds a gain map for its primary image (False where the
    file cannot be parsed: reading it reports that)."""
    try:
        return _map_item(parse_meta(Path(path).read_bytes())) is not None
    except (OSError, ValueError):
        return False


def _decode(avif: bytes, path: Path, max_pixels: int | None) -> np.ndarray:
    """The gain map in the one-item AVIF ``avif``: HxWx3 float32 in [0, 1]."""
    try:
        with Image.open(io.BytesIO(avif), formats=["AVIF"]) as im:
            check_pixels(path, im.width, im.height, max_pixels)
            return np.asarray(im.convert("RGB"), np.float32) / np.float32(255.0)
    except (OSError, RuntimeError, SyntaxError) as exc:  # RuntimeError: Pillow's AV1 decode
        raise ValueError(f"its AV1 image does not decode: {exc}") from None


def avif_gain_map(path, max_pixels: int | None = None) -> tuple[np.ndarray, HdrgmParams]:
    """The gain map of the AVIF at ``path`` and its parameters (module docstring).

    Returns:
        The map as HxWx3 float32 in [0, 1], resized to the photo by
        :func:`~mlx_hdr.io.hdrgm_read.upsample_map` and turned as ``read_ldr`` turns the
        photo; the parameters for full boost.
    Raises:
        InputError: no gain map, or one that cannot be read here (one line, naming the file).
    """
    path = Path(path)
    try:
        data = path.read_bytes()
        meta = parse_meta(data)
        found = _map_item(meta)
        if found is None:
            raise ValueError("the file holds no gain map for its photo")
        tmap, gain = found
        if meta.types.get(gain) != b"av01":
            kind = meta.types.get(gain, b"?").decode("latin-1")
            raise ValueError(f"the map is a {kind!r} item, not one AV1 image")
        params, base_headroom, alternate_headroom = parse_tmap(item_data(data, meta, tmap))
        if alternate_headroom <= base_headroom:
            raise ValueError("its rendition is no brighter than the photo")
        props = [
            (meta.props[i - 1], essential)
            for i, essential in meta.assoc.get(gain, [])
            if 0 < i <= len(meta.props) and meta.props[i - 1][4:8] not in TRANSFORMS
        ]
        g = _decode(one_item_avif(item_data(data, meta, gain), props), path, max_pixels)
    except ValueError as exc:
        raise InputError(f"its HDR gain map cannot be decoded ({exc})", path) from None
    with Image.open(path, formats=["AVIF"]) as im:  # the photo's size and turn, undecoded
        size, orientation = im.size, exif_orientation(im)
    return exif_orient(upsample_map(g, size), orientation), params
