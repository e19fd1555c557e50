"""A Display P3 photo's own pixels and profile as the gain-map JPEG's base (mlx_hdr/io/native.py,
the ``native`` path of mlx_hdr/io/uhdr.py), decoded by libultrahdr."""

from __future__ import annotations

import io
from pathlib import Path

import imagecodecs
import numpy as np
import pillow_heif
import pytest
from PIL import Image, ImageCms

from mlx_hdr.color import DISPLAY_P3, rgb_to_rec709_matrix, srgb_to_linear
from mlx_hdr.io.image_io import read_ldr
from mlx_hdr.io.native import display_p3_base, gamut_delta, with_wide_gamut
from mlx_hdr.io.own_colours import is_display_p3
from mlx_hdr.io.uhdr import encode_uhdr

PUG = Path(__file__).parent / "fixtures" / "iphone13pro_pug.heic"
OFFSET = 1 / 64


@pytest.fixture(scope="module")
def p3_icc() -> bytes:
    """Apple's Display P3 profile, as the real iPhone photo carries it."""
    pillow_heif.register_heif_opener()
    with Image.open(PUG) as im:
        return im.info["icc_profile"]


def photo() -> np.ndarray:
    """A grey room with a saturated P3 orange (outside sRGB) and a clipped window."""
    rgb = np.full((48, 64, 3), 120, np.uint8)
    rgb[6:20, 6:30] = (240, 60, 30)
    rgb[26:44, 36:60] = 255
    return rgb


def test_the_base_is_the_files_own_pixels(tmp_path, p3_icc):
    rgb = photo()
    Image.fromarray(rgb).save(tmp_path / "p3.png", icc_profile=p3_icc)
    base = display_p3_base(tmp_path / "p3.png", (48, 64))
    assert base is not None and base.icc == p3_icc
    np.testing.assert_array_equal(base.pixels, rgb)
    assert display_p3_base(tmp_path / "p3.png", (24, 32)).pixels.shape == (24, 32, 3)
    assert display_p3_base(tmp_path / "p3.png", (64, 48)) is None  # does not fit the photo
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    for name, extra in (("plain.png", {}), ("srgb.png", {"icc_profile": srgb})):
        Image.fromarray(rgb).save(tmp_path / name, **extra)
        assert display_p3_base(tmp_path / name, (48, 64)) is None
    assert is_display_p3(p3_icc) and not is_display_p3(srgb) and not is_display_p3(b"junk")
    from test_icc import P3_COLORANTS, matrix_trc_icc

    assert not is_display_p3(matrix_trc_icc(P3_COLORANTS, 2.2, "P3 primaries, gamma 2.2"))


def test_the_base_is_turned_as_the_photo_is(tmp_path, p3_icc):
    exif = Image.Exif()
    exif[0x0112] = 6  # shown turned 90° clockwise
    Image.fromarray(photo()).save(tmp_path / "p3.jpg", icc_profile=p3_icc, exif=exif, quality=100)
    ldr = read_ldr(tmp_path / "p3.jpg")
    base = display_p3_base(tmp_path / "p3.jpg", ldr.shape[:2])
    assert base.pixels.shape == ldr.shape == (64, 48, 3)
    diff = np.abs(base.pixels.astype(int) - np.rot90(photo(), -1))
    assert diff.mean() < 1.5 and np.median(diff) == 0  # JPEG rings at the patches' edges


def test_gain_map_jpeg_of_a_p3_photo_keeps_its_colours(tmp_path, p3_icc):
    rgb = photo()
    Image.fromarray(rgb).save(tmp_path / "p3.png", icc_profile=p3_icc)
    ldr = read_ldr(tmp_path / "p3.png")
    hdr = srgb_to_linear(ldr)
    hdr[26:44, 36:60] *= 4.0  # the window two stops above white
    native = display_p3_base(tmp_path / "p3.png", ldr.shape[:2])
    data, _ = encode_uhdr(ldr, hdr, native=native)
    with Image.open(io.BytesIO(data)) as im:  # the base: the photo's own P3 pixels and profile
        assert is_display_p3(im.info.get("icc_profile"))
        base = np.asarray(im.convert("RGB")).astype(int)
    assert np.abs(base - rgb).mean() < 1.5 and np.abs(base - rgb)[9:17, 9:27].max() <= 6
    srgb_pixels = np.round(ldr[12, 12] * 255)  # what an sRGB base would hold: another colour
    assert np.abs(base[12, 12] - srgb_pixels).max() > 20
    # libultrahdr's HDR rendition is in the base's primaries: back to Rec.709, it is ours
    rendition = imagecodecs.ultrahdr_decode(data).astype(np.float32)[..., :3]
    rec709 = rendition @ rgb_to_rec709_matrix(DISPLAY_P3).T
    err = np.abs(np.log2((np.maximum(rec709, 0) + OFFSET) / (hdr + OFFSET)))
    assert np.median(err) < 0.01 and err[28:42, 38:58].max() < 0.08  # as an sRGB base: 0.057


def test_cli_writes_a_p3_base_for_a_p3_photo(cli, tmp_path, p3_icc):
    Image.fromarray(photo()).save(tmp_path / "p3.png", icc_profile=p3_icc)
    Image.fromarray(photo()).save(tmp_path / "plain.png")
    for name, p3 in (("p3", True), ("plain", False)):
        out = tmp_path / f"{name}.jpg"
        code, _, err = cli(
            "predict", tmp_path / f"{name}.png", "-o", out, "--method", "kovaleski2014"
        )
        assert code == 0, err
        with Image.open(out) as im:
            assert is_display_p3(im.info.get("icc_profile")) is p3


def test_a_p3_gain_map_jpeg_read_back_gives_its_rendition(tmp_path, p3_icc):
    # our own output as an input: the recorded rendition, read over the photo in sRGB, is
    # the HDR it was written from as read_ldr fits it into sRGB, the saturated orange too
    from mlx_hdr.infer.recorded import recorded_hdr
    from mlx_hdr.io.uhdr_input import recorded_gain

    rgb = photo()
    Image.fromarray(rgb).save(tmp_path / "p3.png", icc_profile=p3_icc)
    ldr = read_ldr(tmp_path / "p3.png")
    hdr = srgb_to_linear(ldr)
    hdr[26:44, 36:60] *= 4.0
    wide = with_wide_gamut(hdr, ldr, gamut_delta(tmp_path / "p3.png", ldr))
    data, _ = encode_uhdr(ldr, wide, native=display_p3_base(tmp_path / "p3.png", ldr.shape[:2]))
    (tmp_path / "p3_uhdr.jpg").write_bytes(data)
    photo_again = read_ldr(tmp_path / "p3_uhdr.jpg")
    back = recorded_hdr(photo_again, recorded_gain(tmp_path / "p3_uhdr.jpg", photo_again))
    err = np.abs(np.log2((back + OFFSET) / (hdr + OFFSET)))
    assert np.median(err) < 0.02 and err[28:42, 38:58].max() < 0.1
    again = srgb_to_linear(photo_again)  # the base's JPEG error kept out of the measure
    again[26:44, 36:60] *= 4.0
    err = np.abs(np.log2((back + OFFSET) / (again + OFFSET)))[9:17, 9:27]
    # the orange's small green and blue channels too (the map's JPEG rings near the window)
    assert np.median(err, axis=(0, 1)).max() < 0.02 and err.max() < 0.3


@pytest.mark.parametrize("reader", ["libultrahdr", "hdrgm"])
def test_a_colour_outside_srgb_keeps_its_hue_under_a_three_channel_map(
    tmp_path, monkeypatch, reader
):
    """A Display P3 gain-map JPEG whose map doubles a P3 green (and adds a little red): the
    rendition read over the photo ``read_ldr`` fitted into sRGB stays green, near the
    luminance libultrahdr decodes, by libultrahdr or by the map's XMP (``hdrgm``)."""
    from mlx_hdr.io.native import P3_FROM_REC709, P3_TO_REC709, NativeBase
    from mlx_hdr.io.own_colours import made_display_p3_icc
    from mlx_hdr.io.uhdr import write_uhdr
    from mlx_hdr.io.uhdr_input import READERS, ULTRA_HDR

    p3 = np.full((64, 64, 3), 128, np.uint8)
    p3[:, 32:] = (0, 200, 0)  # a P3 green, outside sRGB
    hdr_p3 = 2.0 * srgb_to_linear(p3 / 255.0)
    hdr_p3[:, 32:, 0] += 0.05
    wide = hdr_p3 @ P3_TO_REC709.T  # its red below 0
    native = NativeBase(p3, made_display_p3_icc(), P3_FROM_REC709)
    path = write_uhdr(tmp_path / "g_uhdr.jpg", np.zeros_like(wide), wide, native=native, wide=wide)
    truth = imagecodecs.ultrahdr_decode(path.read_bytes())[..., :3].astype(np.float32)
    truth = truth[16:48, 40:56] @ P3_TO_REC709.T
    if reader == "hdrgm":  # as for a file libultrahdr refuses
        monkeypatch.setattr(imagecodecs, "ultrahdr_decode", lambda *a, **k: 1 / 0)
    photo = read_ldr(path)
    gain, _ = READERS[ULTRA_HDR](path, photo, None)
    got = ((srgb_to_linear(photo) + OFFSET) * gain - OFFSET)[16:48, 40:56]
    assert (got[..., 0] < 0.1 * got[..., 1]).all() and (got[..., 2] < 0.1 * got[..., 1]).all()
    lum = lambda x: x @ np.float32([0.2126, 0.7152, 0.0722])  # noqa: E731
    assert np.abs(np.log2(lum(got) / lum(truth))).max() < 0.15
