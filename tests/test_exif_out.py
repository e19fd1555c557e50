"""The EXIF passed on to a gain-map JPEG (mlx_hdr/io/photo_meta.py: read_exif, and
mlx_hdr/io/exif.py: upright_exif for a block Pillow cannot write again)."""

from __future__ import annotations

import struct

import numpy as np
from PIL import Image

from mlx_hdr.io.exif import upright_exif
from mlx_hdr.io.photo_meta import read_exif


def exif_block(order: str = ">", orientation: int = 6, kind: int = 3) -> bytes:
    """IFD0 {Orientation, GPS IFD}, GPS IFD {GPSLatitude written as text}: Pillow reads it,
    but writing it again fails (it takes GPSLatitude for rationals)."""
    text = b"12 deg 30' 0.00\"\0"
    gps = 8 + 2 + 2 * 12 + 4
    tiff = (b"MM" if order == ">" else b"II") + struct.pack(order + "HI", 42, 8)
    tiff += struct.pack(order + "H", 2)
    value = struct.pack(order + ("HH" if kind == 3 else "I"), *[orientation, 0][: 5 - kind])
    tiff += struct.pack(order + "HHI", 0x0112, kind, 1) + value  # SHORT or LONG
    tiff += struct.pack(order + "HHII", 0x8825, 4, 1, gps) + struct.pack(order + "I", 0)
    tiff += struct.pack(order + "HHHII", 1, 2, 2, len(text), gps + 18) + struct.pack(order + "I", 0)
    return b"Exif\0\0" + tiff + text


def test_a_block_pillow_cannot_write_again_is_passed_on_upright(tmp_path, cli):
    for order, kind in ((">", 3), ("<", 3), (">", 4), ("<", 4)):
        path = tmp_path / f"gps{order == '>'}{kind}.jpg"
        block = exif_block(order, kind=kind)
        Image.fromarray(np.full((8, 12, 3), 90, np.uint8)).save(path, exif=block)
        with Image.open(path) as im:
            exif = im.getexif()
            assert exif[0x0112] == 6 and isinstance(exif.get_ifd(0x8825)[2], str)
        out = Image.Exif()
        out.load(read_exif(path))
        assert out[0x0112] == 1 and out.get_ifd(0x8825)[2].startswith("12 deg")
    code, _, err = cli("predict", path, "-o", tmp_path / "o.jpg", "--method", "linear")
    assert code == 0, err
    with Image.open(tmp_path / "o.jpg") as im:
        assert im.size == (8, 12) and im.getexif()[0x0112] == 1  # turned once, not twice


def test_upright_exif_leaves_what_it_cannot_read():
    assert upright_exif(b"Exif\0\0XX\0\x2a") is None  # no byte order
    assert upright_exif(exif_block()[:14]) is None  # IFD0 cut off
    tag = struct.pack(">HH", 0x0112, 3)
    no_tag = exif_block().replace(tag, struct.pack(">HH", 0x0131, 3))  # Software, not turned
    assert tag not in no_tag and upright_exif(no_tag) == no_tag
    assert upright_exif(exif_block()[6:]).startswith(b"Exif\0\0MM")  # without the prefix


def test_a_tiffs_exif_keeps_what_describes_the_photo_not_the_tiff(tmp_path):
    """A TIFF's IFD0 holds its strips, sizes and ICC profile: they went into the gain-map
    JPEG's EXIF, describing another file (a ProPhoto profile beside the JPEG's P3 one)."""
    import tifffile

    rgb = np.zeros((12, 16, 3), np.uint16)
    tags = [(271, "s", 0, "Canon", True), (274, "H", 1, 6, True), (34675, "B", 4, b"icc!", True)]
    tifffile.imwrite(tmp_path / "a.tif", rgb, photometric="rgb", extratags=tags)
    kept = Image.Exif()
    kept.load(read_exif(tmp_path / "a.tif")[6:])
    assert kept[271] == "Canon" and kept[274] == 1
    assert not {256, 257, 258, 273, 279, 34675} & set(kept)  # sizes, strips, bits, profile


def _ifd(entries, base: int) -> bytes:
    """A little-endian TIFF IFD placed at ``base``: (tag, type, count, value bytes) entries,
    values over 4 bytes after it."""
    head, out, data = 2 + 12 * len(entries) + 4, struct.pack("<H", len(entries)), b""
    for tag, kind, count, value in sorted(entries):
        if len(value) <= 4:
            out += struct.pack("<HHI", tag, kind, count) + value.ljust(4, b"\0")
        else:
            out += struct.pack("<HHII", tag, kind, count, base + head + len(data))
            data += value + b"\0" * (len(value) % 2)
    return out + struct.pack("<I", 0) + data


def test_a_tiffs_exif_interoperability_tags_are_written_anew(tmp_path):
    """The EXIF sub-IFD's interoperability pointer is an offset into the TIFF: copied as it
    was, readers found the tags at the wrong place in the JPEG (or none)."""
    pixels = bytes(range(64)) * 3  # 8x8 RGB
    short = lambda v: struct.pack("<H", v)  # noqa: E731
    long = lambda v: struct.pack("<I", v)  # noqa: E731
    interop_at = 8 + len(pixels)
    interop = _ifd([(1, 2, 4, b"R98\0"), (2, 7, 4, b"0100")], interop_at)
    exif_at = interop_at + len(interop)
    exif = _ifd([(0x8827, 3, 1, short(200)), (0xA005, 4, 1, long(interop_at))], exif_at)
    ifd0_at = exif_at + len(exif)
    ifd0 = _ifd(
        [(256, 3, 1, short(8)), (257, 3, 1, short(8)), (258, 3, 3, short(8) * 3)]
        + [(259, 3, 1, short(1)), (262, 3, 1, short(2)), (273, 4, 1, long(8))]
        + [(277, 3, 1, short(3)), (278, 3, 1, short(8)), (279, 4, 1, long(len(pixels)))]
        + [(271, 2, 6, b"Nikon\0"), (34665, 4, 1, long(exif_at))],
        ifd0_at,
    )
    tiff = b"II*\0" + long(ifd0_at) + pixels + interop + exif + ifd0
    (tmp_path / "a.tif").write_bytes(tiff)
    kept = Image.Exif()
    kept.load(read_exif(tmp_path / "a.tif")[6:])
    assert kept[271] == "Nikon" and kept.get_ifd(0x8769)[0x8827] == 200
    assert dict(kept.get_ifd(0xA005)) == {1: "R98", 2: b"0100"}


def test_the_gain_map_jpegs_exif_gives_its_own_size(tmp_path, cli):
    """PixelXDimension/PixelYDimension follow the pixels: turned (orientation 6) and
    downscaled (--max-size), as the gain-map JPEG's base is."""
    exif = Image.Exif()
    exif[0x0112] = 6
    sub = exif.get_ifd(0x8769)
    sub[0xA002], sub[0xA003], sub[0x829A] = 80, 48, 0.01
    img = np.full((48, 80, 3), 120, np.uint8)
    img[:8, :8] = 255
    Image.fromarray(img).save(tmp_path / "a.jpg", exif=exif.tobytes(), quality=95)
    args = ("--format", "uhdr", "--method", "linear", "--max-size", "40")
    code, _, err = cli("predict", tmp_path / "a.jpg", "-o", tmp_path / "out", *args)
    assert code == 0, err
    with Image.open(tmp_path / "out" / "a_uhdr.jpg") as im:
        size, written = im.size, im.getexif()
    sub = written.get_ifd(0x8769)
    assert size == (24, 40) and (sub[0xA002], sub[0xA003]) == size
    assert written.get(0x0112, 1) == 1 and float(sub[0x829A]) == 0.01


def test_a_block_passed_on_as_stored_gets_the_outputs_size():
    """IFD0 {Orientation, EXIF IFD}, EXIF IFD {PixelXDimension SHORT, PixelYDimension LONG}."""
    o = ">"
    sub = 8 + 2 + 2 * 12 + 4
    tiff = b"MM" + struct.pack(o + "HI", 42, 8) + struct.pack(o + "H", 2)
    tiff += struct.pack(o + "HHIHH", 0x0112, 3, 1, 6, 0)
    tiff += struct.pack(o + "HHII", 0x8769, 4, 1, sub) + struct.pack(o + "I", 0)
    tiff += struct.pack(o + "H", 2) + struct.pack(o + "HHIHH", 0xA002, 3, 1, 120, 0)
    tiff += struct.pack(o + "HHII", 0xA003, 4, 1, 80) + struct.pack(o + "I", 0)
    out = Image.Exif()
    out.load(upright_exif(b"Exif\0\0" + tiff, (80, 120)))  # turned: width and height swap
    assert out[0x0112] == 1 and dict(out.get_ifd(0x8769)) == {0xA002: 80, 0xA003: 120}
    too_wide = Image.Exif()  # 70,000 px does not fit the SHORT: both left as stored
    too_wide.load(upright_exif(b"Exif\0\0" + tiff, (70_000, 5)))
    assert dict(too_wide.get_ifd(0x8769)) == {0xA002: 120, 0xA003: 80}
    bogus = tiff[:30] + struct.pack(o + "I", 9999) + tiff[34:]  # a sub-IFD past the block
    assert upright_exif(b"Exif\0\0" + bogus, (80, 120)) is not None
