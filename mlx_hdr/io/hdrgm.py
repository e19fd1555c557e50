"""The Adobe/Google ``hdrgm`` XMP that Ultra HDR 1.0 readers look for, added to a gain-map JPEG.

libultrahdr 1.4 as built in ``imagecodecs`` writes the ISO 21496-1 metadata only (its XMP writer
is a build option that is off there). Readers that know only Ultra HDR 1.0 (Android 14, older
Chrome) need the XMP: in the primary image ``hdrgm:Version`` and a ``Container:Directory`` naming
the gain map and its length, in the gain-map image the map's parameters (log2 units). This module
inserts those two APP1 segments into the file libultrahdr wrote and updates the two image lengths
in its MPF directory; the offsets there are relative to the MPF header, which the primary's XMP is
inserted before, so they stay valid. Layout as in the Ultra HDR 1.0 specification.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass

from mlx_hdr.io.libuhdr import GainMapMetadata

XMP_NS = b"http://ns.adobe.com/xap/1.0/\0"
APP1, APP2, SOS = 0xE1, 0xE2, 0xDA
_RDF = (
    '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
    'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">{}</rdf:RDF></x:xmpmeta>'
)
_PRIMARY = (
    '<rdf:Description rdf:about="" xmlns:Container="http://ns.google.com/photos/1.0/container/"'
    ' xmlns:Item="http://ns.google.com/photos/1.0/container/item/"'
    ' xmlns:hdrgm="http://ns.adobe.com/hdr-gain-map/1.0/" hdrgm:Version="1.0">'
    "<Container:Directory><rdf:Seq>"
    '<rdf:li rdf:parseType="Resource"><Container:Item Item:Semantic="Primary"'
    ' Item:Mime="image/jpeg"/></rdf:li>'
    '<rdf:li rdf:parseType="Resource"><Container:Item Item:Semantic="GainMap"'
    ' Item:Mime="image/jpeg" Item:Length="{}"/></rdf:li>'
    "</rdf:Seq></Container:Directory></rdf:Description>"
)


class ContainerError(ValueError):
    """The JPEG is not the two-image MPF file libultrahdr writes."""


def segments(data: bytes, start: int = 0) -> list[tuple[int, int, int]]:
    """``(marker, start, end)`` of the marker segments of the JPEG at ``start``, up to its SOS."""
    if data[start : start + 2] != b"\xff\xd8":
        raise ContainerError(f"no JPEG start marker at byte {start}")
    out, pos = [], start + 2
    while pos + 4 <= len(data) and data[pos] == 0xFF:
        marker = data[pos + 1]
        end = pos + 2 + struct.unpack(">H", data[pos + 2 : pos + 4])[0]
        out.append((marker, pos, end))
        if marker == SOS:
            return out
        pos = end
    raise ContainerError("JPEG header ends before its image data")


def _app1_xmp(xml: str) -> bytes:
    body = XMP_NS + xml.encode()
    return b"\xff\xe1" + struct.pack(">H", len(body) + 2) + body


def gainmap_xmp(meta: GainMapMetadata) -> bytes:
    """The gain-map image's XMP segment (APP1): the map's parameters, boosts in log2 (stops)."""
    fields = {
        "Version": "1.0",
        "GainMapMin": math.log2(meta.min_boost),
        "GainMapMax": math.log2(meta.max_boost),
        "Gamma": meta.gamma,
        "OffsetSDR": meta.offset_sdr,
        "OffsetHDR": meta.offset_hdr,
        "HDRCapacityMin": math.log2(meta.capacity_min),
        "HDRCapacityMax": math.log2(meta.capacity_max),
        "BaseRenditionIsHDR": "False",
    }
    attrs = " ".join(
        f'hdrgm:{k}="{v if isinstance(v, str) else format(v, ".6g")}"' for k, v in fields.items()
    )
    desc = (
        '<rdf:Description rdf:about="" xmlns:hdrgm="http://ns.adobe.com/hdr-gain-map/1.0/" '
        f"{attrs}/>"
    )
    return _app1_xmp(_RDF.format(desc))


def primary_xmp(gainmap_length: int) -> bytes:
    """The primary image's XMP segment: ``hdrgm:Version`` and the container directory."""
    return _app1_xmp(_RDF.format(_PRIMARY.format(gainmap_length)))


@dataclass(frozen=True)
class MpfImage:
    """One image of an MPF file: where its 16-byte directory entry is, where it starts, its
    length (absolute byte positions; the primary image starts at 0)."""

    entry: int
    start: int
    size: int


def mpf_images(data: bytes) -> tuple[str, list[MpfImage]]:
    """The images an MPF JPEG lists: ``(byte order "<" or ">", [MpfImage, ...])``."""
    mpf = [s for m, s, _ in segments(data) if m == APP2 and data[s + 4 : s + 8] == b"MPF\0"]
    if not mpf:
        raise ContainerError("no MPF directory in the primary image")
    tiff = mpf[0] + 8  # offsets count from the MPF header's byte-order mark
    order = "<" if data[tiff : tiff + 2] == b"II" else ">"
    ifd = tiff + struct.unpack_from(order + "I", data, tiff + 4)[0]
    for i in range(struct.unpack_from(order + "H", data, ifd)[0]):
        tag, _, count, value = struct.unpack_from(order + "HHII", data, ifd + 2 + 12 * i)
        if tag == 0xB002:
            if count < 32 or count % 16:
                raise ContainerError(f"MPF image list of {count} bytes: not two images or more")
            if tiff + value + count > len(data):
                raise ContainerError(f"MPF image list of {count} bytes does not fit the file")
            entries = [tiff + value + 16 * k for k in range(count // 16)]
            sizes = [struct.unpack_from(order + "II", data, e + 4) for e in entries]
            starts = [0] + [tiff + offset for _, offset in sizes[1:]]
            return order, [
                MpfImage(e, st, size)
                for e, st, (size, _) in zip(entries, starts, sizes, strict=True)
            ]
    raise ContainerError("MPF directory has no image list")


def add_hdrgm_xmp(data: bytes, meta: GainMapMetadata) -> bytes:
    """Insert the Ultra HDR 1.0 XMP into libultrahdr's two-image JPEG ``data``; the new bytes.

    Raises ``ContainerError`` when ``data`` is not a two-image MPF JPEG.
    """
    order, images = mpf_images(data)
    if len(images) != 2:
        raise ContainerError(f"expected 2 MPF images, found {len(images)}")
    gain_map = images[1].start
    segments(data, gain_map)  # the gain map is a JPEG where MPF says
    gm_xmp = gainmap_xmp(meta)
    main_xmp = primary_xmp(images[1].size + len(gm_xmp))
    at = next(s for m, s, _ in segments(data) if m == APP2)  # before ISO's and MPF's APP2
    out = data[:at] + main_xmp + data[at : gain_map + 2] + gm_xmp + data[gain_map + 2 :]
    out = bytearray(out)
    for image, extra in zip(images, (len(main_xmp), len(gm_xmp)), strict=True):
        struct.pack_into(order + "I", out, image.entry + len(main_xmp) + 4, image.size + extra)
    return bytes(out)


def _without_exif(jpeg: bytes) -> bytes:
    """``jpeg`` without its EXIF segment: libultrahdr moves a base's EXIF to the front, so the
    stand-in carries the same one and it is taken out of both before they are compared."""
    for marker, start, end in segments(jpeg):
        if marker == APP1 and jpeg[start + 4 : start + 10] == b"Exif\0\0":
            return jpeg[:start] + jpeg[end:]
    return jpeg


def transplant(
    container: bytes, stand_ins: tuple[bytes, bytes], images: tuple[bytes, bytes]
) -> bytes:
    """libultrahdr's two-image JPEG ``container``, written for the small ``stand_ins`` (base,
    gain map), with the real ``images`` (base, gain map JPEGs) put in their place.

    libultrahdr takes images of at most 8192 px a side, a limit of its build, not of the
    format. It writes each image as its SOI, the segments it adds (an ICC profile where the
    base has none, the ISO 21496-1 metadata, the MPF directory; a base's EXIF moved in front
    of them), then the rest of the image as given: so the same segments before each real
    image, and the MPF directory's two sizes and the gain map's offset set again, make the
    file it would have written (the stand-ins carry the images' EXIF and ICC profile).
    Raises ``ContainerError`` where ``container`` is not laid out so.
    """
    order, entries = mpf_images(container)
    if len(entries) != 2:
        raise ContainerError(f"expected 2 MPF images, found {len(entries)}")
    parts = (container[: entries[1].start], container[entries[1].start :])
    stand_ins, images = tuple(map(_without_exif, stand_ins)), tuple(map(_without_exif, images))
    out = []
    for part, stand_in, image in zip(parts, stand_ins, images, strict=True):
        added = len(part) - len(stand_in)
        if added < 0 or part[2 + added :] != stand_in[2:] or image[:2] != b"\xff\xd8":
            raise ContainerError("libultrahdr's images are not the ones given")
        out.append(part[: 2 + added] + image[2:])
    data = bytearray(b"".join(out))
    mpf = (
        s for m, s, _ in segments(container) if m == APP2 and container[s + 4 : s + 8] == b"MPF\0"
    )
    tiff = next(mpf) + 8  # where it is in the container: the prefix is the same
    struct.pack_into(order + "I", data, entries[0].entry + 4, len(out[0]))
    struct.pack_into(order + "II", data, entries[1].entry + 4, len(out[1]), len(out[0]) - tiff)
    return bytes(data)
