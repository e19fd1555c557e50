"""The boxes of an ISO base media file as HEIF/AVIF use them (ISO/IEC 14496-12, 23008-12):
an AVIF's items, their data, references, properties and entity groups, read from its ``meta``
box; and a one-item AVIF written around one item's AV1 data (:func:`one_item_avif`), so that
a decoder that reads only an AVIF's primary image (Pillow's) can decode another of its items.
Every reader raises ``ValueError`` on a malformed file.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass, field


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
    groups: list[tuple[bytes, list[int]]] = field(default_factory=list)  # grpl: type, entities
    idat: bytes = b""


HIDDEN = b"xmap"  # what :func:`without_gain_map` renames ``tmap`` to: a type no reader knows


def boxes(data: bytes, start: int, end: int) -> Iterator[tuple[bytes, int, int, int]]:
    """(type, box start, payload start, end) of each box in ``data[start:end]``."""
    pos = start
    while pos + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, pos)
        head = 16 if size == 1 else 8
        size = struct.unpack_from(">Q", data, pos + 8)[0] if size == 1 else size or end - pos
        if size < head or pos + size > end:
            raise ValueError(f"box {kind.decode('latin-1')!r} runs past its container")
        yield kind, pos, pos + head, pos + size
        pos += size


def _uint(data: bytes, pos: int, n: int) -> tuple[int, int]:
    """The ``n``-byte big-endian unsigned integer at ``pos``, and the position after it."""
    if pos + n > len(data):
        raise ValueError("truncated box")
    return int.from_bytes(data[pos : pos + n], "big"), pos + n


def _iloc(meta: Meta, data: bytes, pos: int, version: int) -> None:
    """Item locations: construction method and (offset, length) extents, base offset added."""
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
    """Item types (``infe`` versions 2 and 3)."""
    for kind, _, s, _ in boxes(data, pos + (2 if version == 0 else 4), end):
        if kind == b"infe" and data[s] >= 2:
            item, p = _uint(data, s + 4, 2 if data[s] == 2 else 4)
            meta.types[item] = data[p + 2 : p + 6]


def _iref(meta: Meta, data: bytes, pos: int, end: int, version: int) -> None:
    """Item references by type and source item (16-bit IDs in version 0, else 32-bit)."""
    n = 2 if version == 0 else 4
    for kind, _, s, _ in boxes(data, pos, end):
        item, p = _uint(data, s, n)
        count, p = _uint(data, p, 2)
        meta.refs[(kind, item)] = [_uint(data, p + i * n, n)[0] for i in range(count)]


def _iprp(meta: Meta, data: bytes, pos: int, end: int) -> None:
    """Properties (each box whole) and their associations (7- or 15-bit indices)."""
    for kind, _, s, e in boxes(data, pos, end):
        if kind == b"ipco":
            meta.props = [data[a:b] for _, a, _, b in boxes(data, s, e)]
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


def _grpl(meta: Meta, data: bytes, pos: int, end: int) -> None:
    """Entity groups (``altr`` and others): type and entity IDs, in order."""
    for kind, _, s, _ in boxes(data, pos, end):
        n, p = _uint(data, s + 8, 4)  # past the full box header and group_id
        meta.groups.append((kind, [_uint(data, p + 4 * i, 4)[0] for i in range(n)]))


def nclx_primaries(meta: Meta, item: int) -> int | None:
    """The CICP colour primaries of ``item``'s ``nclx`` colour property, None without one."""
    for index, _ in meta.assoc.get(item, []):
        box = meta.props[index - 1] if 0 < index <= len(meta.props) else b""
        if box[4:8] == b"colr" and box[8:12] == b"nclx" and len(box) >= 14:
            return struct.unpack_from(">H", box, 12)[0]
    return None


def parse_meta(data: bytes) -> Meta:
    """The items, references and properties of an AVIF (``ValueError`` if malformed)."""
    try:
        return _parse_meta(data)
    except (IndexError, struct.error):
        raise ValueError("malformed box structure") from None


def _parse_meta(data: bytes) -> Meta:
    meta = Meta()
    for kind, _, s, e in boxes(data, 0, len(data)):
        if kind == b"ftyp":
            meta.brands = {data[i : i + 4] for i in range(s, e, 4) if i != s + 4}
        elif kind == b"meta":
            for sub, _, a, b in boxes(data, s + 4, e):
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
                elif sub == b"grpl":
                    _grpl(meta, data, a, b)
                elif sub == b"idat":
                    meta.idat = data[a:b]
    return meta


def without_gain_map(data: bytes) -> bytes | None:
    """An AVIF's bytes ``data`` with its ``tmap`` brand and ``tmap`` item renamed (``HIDDEN``),
    so that a reader takes the primary image alone; None where it has neither. libavif
    refuses the whole file where it cannot read the gain map's metadata, though the photo
    is intact. ``ValueError`` if malformed."""
    out = bytearray(data)
    try:
        for kind, _, s, e in boxes(data, 0, len(data)):
            if kind == b"ftyp":
                for i in range(s + 8, e - 3, 4):
                    if data[i : i + 4] == b"tmap":
                        out[i : i + 4] = HIDDEN
            elif kind == b"meta":
                for sub, _, a, b in boxes(data, s + 4, e):
                    if sub == b"iinf":
                        for k, _, i, _ in boxes(data, a + (6 if data[a] == 0 else 8), b):
                            if k == b"infe" and data[i] >= 2:
                                p = i + 4 + (2 if data[i] == 2 else 4) + 2
                                if data[p : p + 4] == b"tmap":
                                    out[p : p + 4] = HIDDEN
    except (IndexError, struct.error):
        raise ValueError("malformed box structure") from None
    return bytes(out) if out != data else None


def cut_short(data: bytes) -> str | None:
    """Why an ISO base media file's bytes ``data`` end before the file does, or None: a
    top-level box (usually ``mdat``, the coded pixels) that runs past the end, or an item
    whose data lies beyond it. A decoder may fill what is missing in silently (a HEIC's
    tiles), so this is read from the boxes themselves; a file malformed in another way
    gives None (its decoder says what it makes of it)."""
    if data[4:8] != b"ftyp":  # not an ISO base media file: the decoder says so
        return None
    try:
        cut = _first_cut(data)
        if cut is not None:  # a real box whose end is missing: a file cut short
            return f"its {cut.decode()!r} box runs past the end of the file" if cut in CUT else None
        meta = _parse_meta(data)  # no meta box: no items
    except (ValueError, IndexError, struct.error):  # malformed, not short
        return None
    for item, (method, extents) in meta.extents.items():
        if method == 0 and any(o + n > len(data) for o, n in extents):
            return f"the data of item {item} lies past the end of the file"
    return None


CUT = (b"meta", b"mdat", b"idat", b"moov")  # boxes whose end a file cut short loses


def _first_cut(data: bytes) -> bytes | None:
    """The type of the first top-level box that runs past the end of ``data``; None if all
    fit. ``ValueError`` for a box whose size cannot be one (malformed, not cut short)."""
    pos = 0
    while pos + 8 <= len(data):
        size, kind = struct.unpack_from(">I4s", data, pos)
        head = 8
        if size == 1:
            if pos + 16 > len(data):
                return kind
            size, head = struct.unpack_from(">Q", data, pos + 8)[0], 16
        if size == 0:  # to the end of the file
            return None
        if size < head:
            raise ValueError(f"box {kind!r} has a size of {size}")
        if pos + size > len(data):
            return kind
        pos += size
    return None


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


def make_box(kind: bytes, payload: bytes, version: int | None = None) -> bytes:
    """A box (a full box, with flags 0, where ``version`` is given)."""
    head = b"" if version is None else bytes([version, 0, 0, 0])
    return struct.pack(">I4s", 8 + len(head) + len(payload), kind) + head + payload


def one_item_avif(av1: bytes, props: list[tuple[bytes, bool]]) -> bytes:
    """A minimal AVIF whose primary image is the AV1 data ``av1`` with the property boxes
    ``props`` (each whole, with whether it is essential; at most 127)."""
    if len(props) > 127:
        raise ValueError(f"{len(props)} properties for one item")
    ftyp = make_box(b"ftyp", b"avif\0\0\0\0avifmif1miaf")
    hdlr = make_box(b"hdlr", b"\0\0\0\0pict" + bytes(13), 0)
    pitm = make_box(b"pitm", struct.pack(">H", 1), 0)
    infe = make_box(b"infe", struct.pack(">HH4s", 1, 0, b"av01") + b"\0", 2)
    iinf = make_box(b"iinf", struct.pack(">H", 1) + infe, 0)
    assoc = bytes((i + 1) | (0x80 if essential else 0) for i, (_, essential) in enumerate(props))
    ipma = make_box(b"ipma", struct.pack(">IHB", 1, 1, len(props)) + assoc, 0)
    iprp = make_box(b"iprp", make_box(b"ipco", b"".join(p for p, _ in props)) + ipma)

    def meta(offset: int) -> bytes:
        iloc = make_box(
            b"iloc", b"\x44\0" + struct.pack(">HHHHII", 1, 1, 0, 1, offset, len(av1)), 0
        )
        return make_box(b"meta", hdlr + pitm + iloc + iinf + iprp, 0)

    start = len(ftyp) + len(meta(0)) + 8
    return ftyp + meta(start) + make_box(b"mdat", av1)
