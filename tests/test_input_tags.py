"""What a photo's tags say beyond its ICC profile: a PNG's colour chunks
(mlx_hdr/io/image_io.py ``_png_colours``, ``pngcheck.colour_chunks``: cICP, with CICP
primaries and curve, PQ and HLG refused as HDR; gAMA), read as browsers read them; a TIFF's
sample format, where Pillow cannot read it."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image, ImageCms

from mlx_hdr.color import linear_to_srgb
from mlx_hdr.errors import InputError
from mlx_hdr.io.heic import cicp_info, nclx_to_srgb
from mlx_hdr.io.image_io import read_ldr


def chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png(path, rgb: np.ndarray, *chunks: bytes) -> None:
    """``rgb`` (uint8 or uint16) as a PNG with ``chunks`` before its image data."""
    buf = io.BytesIO()
    if rgb.dtype == np.uint16:
        import cv2

        buf.write(cv2.imencode(".png", rgb[..., ::-1])[1].tobytes())
    else:
        Image.fromarray(rgb).save(buf, "PNG")
    data = buf.getvalue()
    at = data.index(b"IDAT") - 4
    path.write_bytes(data[:at] + b"".join(chunks) + data[at:])


def cicp(primaries: int, transfer: int) -> bytes:
    return chunk(b"cICP", bytes([primaries, transfer, 0, 1]))


def gama(value: float) -> bytes:
    return chunk(b"gAMA", struct.pack(">I", round(value * 100000)))


@pytest.fixture
def rgb() -> np.ndarray:
    y, x = np.mgrid[:16, :24]
    img = np.stack([x / 23, y / 15, 1 - x / 23], -1) * 0.9 + 0.05
    return (img * 255 + 0.5).astype(np.uint8)


def test_cicp_primaries_and_curve(tmp_path, rgb):
    png(tmp_path / "lin.png", rgb, cicp(1, 8))  # BT.709 primaries, linear
    np.testing.assert_allclose(
        read_ldr(tmp_path / "lin.png"), linear_to_srgb(rgb / 255.0), atol=1e-6
    )
    png(tmp_path / "p3.png", rgb, cicp(12, 13))  # Display P3
    want = nclx_to_srgb(rgb / np.float32(255.0), cicp_info(12, 13), tmp_path / "p3.png")
    got = read_ldr(tmp_path / "p3.png")
    np.testing.assert_allclose(got, want, atol=1e-6)
    assert np.abs(got - rgb / 255.0).max() > 0.05  # converted, not read as sRGB


@pytest.mark.parametrize("transfer,name", [(16, "PQ"), (18, "HLG")])
def test_an_hdr_png_is_refused(tmp_path, rgb, transfer, name):
    """cICP wins over a fallback profile (PNG, third edition)."""
    icc = chunk(
        b"iCCP",
        b"sRGB\x00\x00"
        + zlib.compress(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()),
    )
    for extra in ((), (icc,)):
        png(tmp_path / "hdr.png", rgb, cicp(9, transfer), *extra)
        with pytest.raises(InputError, match=rf"already an HDR image \({name} transfer\)"):
            read_ldr(tmp_path / "hdr.png")


def test_cicp_wins_over_a_profile_beside_it(tmp_path, rgb):
    """The PNG third edition's order: cICP, then iCCP, then gAMA."""
    from mlx_hdr.io.heic import CicpColours
    from mlx_hdr.io.own_colours import display_p3_icc, is_display_p3, own_photo

    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    icc = chunk(b"iCCP", b"sRGB\x00\x00" + zlib.compress(srgb))
    png(tmp_path / "p3.png", rgb, cicp(12, 13))
    png(tmp_path / "both.png", rgb, cicp(12, 13), icc, gama(1.0))
    np.testing.assert_array_equal(read_ldr(tmp_path / "both.png"), read_ldr(tmp_path / "p3.png"))
    assert isinstance(own_photo(tmp_path / "both.png").source, CicpColours)
    assert is_display_p3(display_p3_icc(tmp_path / "both.png"))


def test_unknown_primaries_and_a_gama_out_of_range(tmp_path, rgb, recwarn):
    png(tmp_path / "plain.png", rgb)
    plain = read_ldr(tmp_path / "plain.png")
    png(tmp_path / "p22.png", rgb, cicp(22, 13))  # EBU Tech 3213: not known here
    np.testing.assert_array_equal(read_ldr(tmp_path / "p22.png"), plain)
    assert [str(w.message) for w in recwarn] == [
        f"{tmp_path / 'p22.png'}: CICP primaries 22 are read as BT.709"
    ]
    for value in (1, 2**32 - 1):  # 1e-5 and 42,950: libpng ignores them, and so is it here
        png(tmp_path / "g.png", rgb, chunk(b"gAMA", struct.pack(">I", value)))
        np.testing.assert_array_equal(read_ldr(tmp_path / "g.png"), plain)


def test_gama_other_than_srgbs_is_honoured(tmp_path, rgb):
    png(tmp_path / "plain.png", rgb)
    plain = read_ldr(tmp_path / "plain.png")
    png(tmp_path / "g22.png", rgb, gama(1 / 2.2))  # the usual: read as sRGB
    np.testing.assert_array_equal(read_ldr(tmp_path / "g22.png"), plain)
    png(tmp_path / "srgb.png", rgb, chunk(b"sRGB", b"\x00"), gama(1.0))  # sRGB chunk wins
    np.testing.assert_array_equal(read_ldr(tmp_path / "srgb.png"), plain)
    png(tmp_path / "g1.png", rgb, gama(1.0))  # linear values
    np.testing.assert_allclose(read_ldr(tmp_path / "g1.png"), linear_to_srgb(plain), atol=1e-6)
    deep = rgb.astype(np.uint16) * 257
    png(tmp_path / "g1_16.png", deep, gama(1.0))  # 16 bits, the same
    np.testing.assert_allclose(read_ldr(tmp_path / "g1_16.png"), linear_to_srgb(plain), atol=1e-6)


@pytest.mark.parametrize("shape", [(8, 8, 3), (8, 8)])
@pytest.mark.parametrize("dtype", [np.float32, np.float16, np.int16, np.uint32])
def test_a_tiff_of_float_or_wide_samples_says_what_it_holds(tmp_path, dtype, shape):
    """RGB ones Pillow cannot open, grey ones it opens: neither is read as a photo."""
    import tifffile

    tifffile.imwrite(tmp_path / "x.tif", np.ones(shape, dtype))
    bits, kind = np.dtype(dtype).itemsize * 8, {"f": "floating-point", "i": "signed"}
    kind = kind.get(np.dtype(dtype).kind, "unsigned")
    with pytest.raises(InputError, match=f"a TIFF of {bits}-bit {kind} samples; photos are read"):
        read_ldr(tmp_path / "x.tif")


def test_a_png_tagged_p3_by_cicp_keeps_its_colours_in_the_outputs(cli, tmp_path, rgb):
    """As a HEIC tagged by CICP: its own pixels are the gain-map JPEG's Display P3 base."""
    from mlx_hdr.io.heic import CicpColours
    from mlx_hdr.io.own_colours import display_p3_icc, is_display_p3, own_photo

    png(tmp_path / "p3.png", rgb, cicp(12, 13))
    own = own_photo(tmp_path / "p3.png")
    assert isinstance(own.source, CicpColours) and np.array_equal(own.pixels, rgb)
    assert is_display_p3(display_p3_icc(tmp_path / "p3.png"))
    png(tmp_path / "p3_709curve.png", rgb, cicp(12, 1))  # P3, another curve: converted
    assert display_p3_icc(tmp_path / "p3_709curve.png") is None
    assert own_photo(tmp_path / "p3_709curve.png").source.curve.__name__ == "bt709_to_linear"
    args = ("--format", "uhdr", "--method", "kovaleski2014")
    code, _, err = cli("predict", tmp_path / "p3.png", "-o", tmp_path / "out", *args)
    assert code == 0, err
    with Image.open(tmp_path / "out" / "p3_uhdr.jpg") as im:
        assert is_display_p3(im.info.get("icc_profile"))
        base = np.asarray(im.convert("RGB"), np.int16)
    assert np.abs(base - rgb).mean() < 2  # the photo's own P3 values, to JPEG error
