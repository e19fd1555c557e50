"""PNGs whose compressed rows end early are refused, complete ones (every mode) pass."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from mlx_hdr.errors import InputError
from mlx_hdr.io import image_io, pngcheck


def _png(width, height, raw: bytes, color_type=2, interlace=0) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, color_type, 0, 0, interlace)
    body = chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    return pngcheck.SIGNATURE + body


def _rows(width: int, rows: int, value: int = 200) -> bytes:
    return b"".join(b"\x00" + bytes([value]) * (3 * width) for _ in range(rows))


def test_short_zlib_stream_is_refused_with_the_file_name(tmp_path):
    path = tmp_path / "short.png"
    path.write_bytes(_png(64, 48, _rows(64, 24)))  # a clean zlib stream with half the rows
    with Image.open(path) as im:
        im.load()  # Pillow accepts it and fills the rest with black
    assert pngcheck.missing_bytes(path) == 24 * (1 + 3 * 64)
    with pytest.raises(InputError, match=r"short\.png.*truncated PNG"):
        image_io.read_ldr(path)


def test_complete_handmade_png_reads(tmp_path):
    path = tmp_path / "full.png"
    path.write_bytes(_png(64, 48, _rows(64, 48)))
    assert pngcheck.missing_bytes(path) == 0
    np.testing.assert_allclose(image_io.read_ldr(path), 200 / 255, atol=1e-7)


def test_interlaced_sizes_follow_adam7(tmp_path):
    # 5x3 RGB: passes 1, 2 (none: x0 = 4 < 5 -> 1 px), ... computed by hand from the spec
    w, h = 5, 3
    passes = [(1, 1), (1, 1), (0, 0), (1, 1), (3, 1), (2, 2), (5, 1)]  # (pass w, pass h)
    assert pngcheck.expected_bytes(w, h, 8, 2, 1) == sum(
        ph * (1 + 3 * pw) for pw, ph in passes if pw and ph
    )
    raw = b"".join(b"\x00" + b"\x80" * 3 * pw for pw, ph in passes for _ in range(ph) if pw)
    path = tmp_path / "adam7.png"
    path.write_bytes(_png(w, h, raw, interlace=1))
    assert pngcheck.missing_bytes(path) == 0
    assert image_io.read_ldr(path).shape == (3, 5, 3)


@pytest.mark.parametrize("mode", ["L", "LA", "P", "RGB", "RGBA", "I;16"])
def test_pillow_pngs_of_every_mode_are_complete(tmp_path, mode):
    rng = np.random.default_rng(0)
    img = Image.fromarray(rng.integers(0, 255, (37, 53, 3), dtype=np.uint8)).convert(mode)
    img.save(tmp_path / "x.png")
    assert pngcheck.missing_bytes(tmp_path / "x.png") == 0


def test_non_png_bytes_are_left_to_the_decoder(tmp_path):
    (tmp_path / "x.png").write_bytes(b"not a png")
    assert pngcheck.missing_bytes(tmp_path / "x.png") == 0


def test_wrong_idat_crc_is_refused(tmp_path):
    # Pillow does not check the IDAT CRC: a flipped CRC byte used to read as a valid image
    data = bytearray(_png(16, 8, _rows(16, 8)))
    crc_at = data.index(b"IEND") - 8  # the IDAT CRC: just before IEND's length and type
    data[crc_at] ^= 0xFF
    path = tmp_path / "crc.png"
    path.write_bytes(bytes(data))
    with Image.open(path) as im:
        im.load()  # accepted by Pillow
    with pytest.raises(InputError, match=r"crc\.png: .*CRC mismatch in the IDAT chunk"):
        image_io.read_ldr(path)
