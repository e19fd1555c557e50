"""A wide-gamut photo's own colours in the HDR outputs (mlx_hdr/io/native.py: gamut_delta,
with_wide_gamut; the pipeline's EXR/PFM, AVIF and gain-map JPEG)."""

from __future__ import annotations

import io
import struct
import zlib

import cv2
import imagecodecs
import numpy as np
import pytest
from PIL import Image, ImageCms
from test_heic import P3_NCLX, save_heic
from test_icc import adobe_exif
from test_native import p3_icc  # noqa: F401 (a fixture)

from mlx_hdr.color import linear_to_srgb, rgb_to_rec709_matrix, srgb_to_linear
from mlx_hdr.io.heic import CicpColours, bt709_to_linear
from mlx_hdr.io.icc import adobe_rgb_icc
from mlx_hdr.io.image_io import read_hdr, read_ldr
from mlx_hdr.io.native import (
    P3_FROM_REC709,
    P3_TO_REC709,
    GamutDelta,
    display_p3_base,
    gamut_delta,
    with_wide_gamut,
)
from mlx_hdr.io.own_colours import is_display_p3
from mlx_hdr.io.pfm import read_pfm

OFFSET = 1 / 64
ORANGE, GREEN, WINDOW = (
    (slice(4, 16), slice(4, 28)),
    (slice(20, 30), slice(4, 28)),
    (
        slice(30, 44),
        slice(36, 60),
    ),
)


def wide_photo() -> np.ndarray:
    """Grey, a P3 orange and a P3 green outside sRGB, a clipped window (display values)."""
    rgb = np.full((48, 64, 3), 120, np.uint8)
    rgb[ORANGE] = (240, 60, 30)
    rgb[GREEN] = (40, 200, 50)
    rgb[WINDOW] = 255
    return rgb


def dense(delta: GamutDelta, shape) -> np.ndarray:
    out = np.zeros((*shape[:2], 3), np.float32)
    out[delta.where] = delta.values
    return out


def p3_light(rgb: np.ndarray) -> np.ndarray:
    """Display P3 pixels (uint8) as linear Rec.709 light, unbounded."""
    return srgb_to_linear(rgb / 255.0) @ P3_TO_REC709.T


def test_the_delta_gives_the_photos_own_light_back(tmp_path, p3_icc):  # noqa: F811
    Image.fromarray(wide_photo()).save(tmp_path / "p3.png", icc_profile=p3_icc)
    ldr = read_ldr(tmp_path / "p3.png")
    lin, own = srgb_to_linear(ldr), p3_light(wide_photo())
    assert own[GREEN].min() < -0.01 and own[ORANGE].max() > 1.0  # both outside sRGB
    delta = dense(gamut_delta(tmp_path / "p3.png", ldr), ldr.shape)
    for patch in (ORANGE, GREEN):
        assert np.abs(lin[patch] - own[patch]).max() > 0.03  # read_ldr fitted them
        np.testing.assert_allclose(lin[patch] + delta[patch], own[patch], atol=2e-3)
    np.testing.assert_array_equal(delta[WINDOW], 0.0)  # clipped: the reconstruction's to give
    half = np.asarray(Image.fromarray((ldr * 255).round().astype(np.uint8)).resize((32, 24)))
    assert gamut_delta(tmp_path / "p3.png", half / 255.0).where.shape == (24, 32)
    assert gamut_delta(tmp_path / "p3.png", ldr.transpose(1, 0, 2)) is None  # not this photo
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    for name, extra in (("plain.png", {}), ("srgb.png", {"icc_profile": srgb})):
        Image.fromarray(wide_photo()).save(tmp_path / name, **extra)
        assert gamut_delta(tmp_path / name, read_ldr(tmp_path / name)) is None
    (tmp_path / "junk.png").write_bytes(b"not a png")
    assert gamut_delta(tmp_path / "junk.png", ldr) is None


def test_a_turned_photo_and_an_adobe_rgb_one_by_its_exif(tmp_path):
    path = tmp_path / "adobe.jpg"
    Image.fromarray(wide_photo()).save(path, exif=adobe_exif(orientation=6), quality=100)
    ldr = read_ldr(path)
    assert ldr.shape == (64, 48, 3)
    delta = dense(gamut_delta(path, ldr), ldr.shape)
    with Image.open(path) as im:
        stored = np.asarray(im.convert("RGB"), np.float64) / 255
    adobe = rgb_to_rec709_matrix((0.64, 0.33, 0.21, 0.71, 0.15, 0.06, 0.3127, 0.3290))
    own = np.rot90((stored ** (563 / 256)) @ adobe.T, -1)  # turned as the photo is shown
    inside = np.rot90(wide_photo().max(-1) < 250, -1)
    near = gamut_delta(path, ldr).where  # the pixels the fitting can have changed
    inside = inside & near
    assert near.mean() < 0.8 and inside.sum() > 100
    np.testing.assert_allclose((srgb_to_linear(ldr) + delta)[inside], own[inside], atol=3e-3)


def test_a_lifted_pixel_keeps_its_colours_share():
    ldr = np.full((2, 2, 3), 0.5, np.float32)
    where = np.zeros((2, 2), bool)
    where[0, 0] = True
    delta = GamutDelta(where, np.float32([[0.05, -0.02, -0.01]]))
    hdr = srgb_to_linear(ldr)
    want = hdr + dense(delta, hdr.shape)
    np.testing.assert_allclose(with_wide_gamut(hdr, ldr, delta), want, atol=1e-6)
    lifted = with_wide_gamut(hdr * 4.0, ldr, delta)
    r = (4.0 * 0.214 + OFFSET) / (0.214 + OFFSET)  # the pixel's luminance gain
    np.testing.assert_allclose(lifted, 4.0 * hdr + r * dense(delta, hdr.shape), rtol=2e-3)


def predict(cli, tmp_path, p3_icc, method: str) -> dict:  # noqa: F811
    """``predict --method METHOD`` of the P3 photo to EXR, .hdr, PFM and gain-map JPEG, by
    default, with ``--wide-gamut`` and with ``--no-wide-gamut``: the three output folders."""
    Image.fromarray(wide_photo()).save(tmp_path / "p3.png", icc_profile=p3_icc)
    outs = {}
    runs = (("default", []), ("wide", ["--wide-gamut"]), ("fitted", ["--no-wide-gamut"]))
    for name, extra in runs:
        out = tmp_path / name
        fmts = ["--format", "exr", "--format", "hdr", "--format", "uhdr", "--format", "pfm"]
        code, _, err = cli(
            "predict", tmp_path / "p3.png", "-o", out, "--method", method, *fmts, *extra
        )
        assert code == 0, err
        outs[name] = out
    return outs


def test_the_exr_holds_the_photos_own_colours(cli, tmp_path, p3_icc):  # noqa: F811
    outs = predict(cli, tmp_path, p3_icc, "linear")  # the photo's light, nothing lifted
    wide, fitted = outs["wide"], outs["fitted"]
    import OpenEXR

    exr = OpenEXR.File(str(wide / "p3.exr")).parts[0].channels["RGB"].pixels.astype(np.float32)
    own = p3_light(wide_photo())
    for patch in (ORANGE, GREEN):
        np.testing.assert_allclose(exr[patch], own[patch], atol=4e-3)  # half floats
    assert exr[GREEN][..., 0].max() < -0.01  # negative: outside sRGB
    pfm = read_pfm(wide / "p3.pfm")  # as written: read_hdr would set negatives to 0
    np.testing.assert_allclose(pfm[GREEN], own[GREEN], atol=1e-3)
    for name in ("p3.hdr",):  # RGBE cannot hold negatives: the fitted colours either way
        np.testing.assert_allclose(
            read_hdr(wide / name), read_hdr(fitted / name), rtol=1e-6, atol=1e-6
        )
    plain = OpenEXR.File(str(fitted / "p3.exr")).parts[0].channels["RGB"].pixels
    assert plain.min() >= 0 and np.abs(plain[GREEN] - exr[GREEN]).max() > 0.03
    default = OpenEXR.File(str(outs["default"] / "p3.exr")).parts[0].channels["RGB"].pixels
    np.testing.assert_array_equal(default, plain)  # values >= 0 unless asked for
    assert read_pfm(outs["default"] / "p3.pfm").min() >= 0


def test_the_gain_map_jpegs_hdr_rendition_keeps_the_p3_colours(cli, tmp_path, p3_icc):  # noqa: F811
    """libultrahdr's rendition is in the base's Display P3: with the photo's own colours it
    is the base itself where nothing was lifted (the window is); fitted into sRGB it
    desaturates them."""
    predicted = predict(cli, tmp_path, p3_icc, "kovaleski2014")
    base_light = srgb_to_linear(wide_photo() / 255.0)  # P3 light, the base's own pixels
    errors = {}
    for name, out in predicted.items():
        data = (out / "p3_uhdr.jpg").read_bytes()
        rendition = imagecodecs.ultrahdr_decode(data).astype(np.float32)[..., :3]
        patch = np.concatenate([rendition[ORANGE], rendition[GREEN]], axis=0)
        want = np.concatenate([base_light[ORANGE], base_light[GREEN]], axis=0)
        errors[name] = np.median(np.abs(np.log2((patch + OFFSET) / (want + OFFSET))).max(-1))
    assert max(errors["default"], errors["wide"]) < 0.03 < 0.1 < errors["fitted"], errors


def save_tiff16(path, rgb: np.ndarray, icc: bytes) -> None:
    import tifffile

    tifffile.imwrite(path, rgb.astype(np.uint16) * 257, photometric="rgb", iccprofile=icc)


@pytest.mark.parametrize(
    "name,save",
    [
        ("p3_16bit.tif", lambda p, rgb, icc: save_tiff16(p, rgb, icc)),
        ("p3_10bit.heic", lambda p, rgb, icc: save_heic(p, rgb, 10, icc_profile=icc)),
        ("p3_nclx.heic", lambda p, rgb, icc: save_heic(p, rgb, nclx_profile=P3_NCLX)),
        ("p3_nclx_10bit.heic", lambda p, rgb, icc: save_heic(p, rgb, 10, nclx_profile=P3_NCLX)),
    ],
)
def test_deep_and_cicp_tagged_photos_too(tmp_path, p3_icc, name, save):  # noqa: F811
    save(tmp_path / name, wide_photo(), p3_icc)
    ldr = read_ldr(tmp_path / name)
    delta = dense(gamut_delta(tmp_path / name, ldr), ldr.shape)
    own = p3_light(wide_photo())
    for patch in (ORANGE, GREEN):
        np.testing.assert_allclose(srgb_to_linear(ldr[patch]) + delta[patch], own[patch], atol=3e-3)
    np.testing.assert_array_equal(delta[WINDOW], 0.0)


def adobe_light(rgb: np.ndarray) -> np.ndarray:
    """Adobe RGB pixels (uint8) as linear Rec.709 light, unbounded."""
    adobe = rgb_to_rec709_matrix((0.64, 0.33, 0.21, 0.71, 0.15, 0.06, 0.3127, 0.3290))
    return ((rgb / 255.0) ** (563 / 256)) @ adobe.T


def test_an_adobe_rgb_photo_gets_display_p3_base_and_preview(cli, tmp_path):
    """Its colours converted into Display P3 for the gain-map JPEG's base, the HDR rendition
    and the preview; ``--no-wide-gamut`` keeps the sRGB base of the fitted colours."""
    path = tmp_path / "adobe.jpg"
    Image.fromarray(wide_photo()).save(path, exif=adobe_exif(), quality=100)
    with Image.open(path) as im:
        own = adobe_light(np.asarray(im.convert("RGB")))  # the light its pixels stand for
    outs = {}
    for name, extra in (("default", []), ("fitted", ["--no-wide-gamut"])):
        outs[name] = tmp_path / name
        fmts = ["--format", "uhdr", "--format", "exr"]
        code, _, err = cli("predict", path, "-o", outs[name], "--method", "linear", *fmts, *extra)
        assert code == 0, err
    errors = {}
    for name, out in outs.items():
        with Image.open(out / "adobe_uhdr.jpg") as im:
            icc = im.info.get("icc_profile")
            base = srgb_to_linear(np.asarray(im.convert("RGB")) / 255.0)
        assert is_display_p3(icc) == (name == "default")
        data = (out / "adobe_uhdr.jpg").read_bytes()
        rendition = imagecodecs.ultrahdr_decode(data).astype(np.float32)[..., :3]
        if name == "default":  # both in the base's Display P3
            base, rendition = base @ P3_TO_REC709.T, rendition @ P3_TO_REC709.T
        want = own[ORANGE].mean(axis=(0, 1)) + OFFSET  # the patch's colour, JPEG noise averaged
        errors[name] = [
            np.abs(np.log2((x[ORANGE].mean(axis=(0, 1)) + OFFSET) / want)).max()
            for x in (base, rendition)
        ]
    assert max(errors["default"]) < 0.05 < 0.1 < min(errors["fitted"]), errors
    with Image.open(outs["default"] / "adobe_preview.png") as im:
        assert is_display_p3(im.info.get("icc_profile"))
    with Image.open(outs["fitted"] / "adobe_preview.png") as im:
        assert "icc_profile" not in im.info


def test_colours_outside_display_p3_are_fitted_into_it(tmp_path):
    """An Adobe RGB green beyond Display P3 keeps its luminance and stays green in the P3
    base: desaturated towards its luminance (cutting its P3 red at 0 brightened it)."""
    path = tmp_path / "adobe.png"
    rgb = np.full((32, 32, 3), (0, 200, 0), np.uint8)  # Adobe RGB's green: outside P3
    Image.fromarray(rgb).save(path, icc_profile=adobe_rgb_icc())
    own = adobe_light(rgb[:1, :1])[0, 0]
    assert (own @ P3_FROM_REC709.T).min() < -0.01
    base = display_p3_base(path, (32, 32), convert=True)
    assert display_p3_base(path, (32, 32)) is None  # only converted on request
    shown = srgb_to_linear(base.pixels[0, 0] / 255.0) @ P3_TO_REC709.T
    y = np.float32([0.2126, 0.7152, 0.0722])
    assert abs(shown @ y - own @ y) < 0.01 * (own @ y)
    p3, luma = own @ P3_FROM_REC709.T, own @ y  # towards grey until its P3 red is 0
    t = luma / (luma - p3.min())
    want = linear_to_srgb(luma + t * (p3 - luma)) * 255
    np.testing.assert_allclose(base.pixels[0, 0], want, atol=1.0)
    cut = linear_to_srgb(np.clip(p3, 0.0, 1.0)) * 255  # as Little CMS gives it
    assert np.abs(base.pixels[0, 0] - cut).max() > 3


def with_chunk(png: bytes, kind: bytes, data: bytes, before: bytes) -> bytes:
    """A PNG with one more chunk, put before the first ``before`` chunk."""
    i = png.index(before) - 4
    crc = struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    return png[:i] + struct.pack(">I", len(data)) + kind + data + crc + png[i:]


def test_the_tag_and_orientation_are_read_as_read_ldr_reads_them(tmp_path):
    """A 16-bit PNG marked Adobe RGB by its EXIF alone is read as sRGB (read_ldr converts
    16-bit photos by an ICC profile only): nothing to give back. A PNG whose eXIf chunk
    follows its pixels is not turned by it (read_ldr's rule) but is Adobe RGB."""
    exif = adobe_exif(orientation=6).tobytes().removeprefix(b"Exif\0\0")
    deep = cv2.imencode(".png", (wide_photo().astype(np.uint16) * 257)[..., ::-1])[1].tobytes()
    (tmp_path / "deep.png").write_bytes(with_chunk(deep, b"eXIf", exif, b"IDAT"))
    ldr = read_ldr(tmp_path / "deep.png")
    np.testing.assert_allclose(ldr, np.rot90(wide_photo(), -1) / 255.0, atol=1e-6)
    assert gamut_delta(tmp_path / "deep.png", ldr) is None
    square = wide_photo()[:, :48]
    late = with_chunk(cv2.imencode(".png", square[..., ::-1])[1].tobytes(), b"eXIf", exif, b"IEND")
    (tmp_path / "late.png").write_bytes(late)
    ldr = read_ldr(tmp_path / "late.png")
    adobe = rgb_to_rec709_matrix((0.64, 0.33, 0.21, 0.71, 0.15, 0.06, 0.3127, 0.3290))
    own = ((square / 255.0) ** (563 / 256)) @ adobe.T  # as stored: not turned
    delta = dense(gamut_delta(tmp_path / "late.png", ldr), ldr.shape)
    inside = square.max(-1) < 250
    np.testing.assert_allclose((srgb_to_linear(ldr) + delta)[inside], own[inside], atol=3e-3)


@pytest.mark.parametrize("compression", [None, "tiff_lzw"])
def test_a_turned_p3_tiff(tmp_path, p3_icc, compression):  # noqa: F811
    """Pillow turns a TIFF by its tag as it loads it: the delta and the base are turned
    once, as read_ldr turns the photo."""
    from PIL import TiffImagePlugin

    tags = TiffImagePlugin.ImageFileDirectory_v2()
    tags[0x0112] = 6
    extra = {"compression": compression} if compression else {}
    path = tmp_path / "p3.tif"
    Image.fromarray(wide_photo()).save(path, tiffinfo=tags, icc_profile=p3_icc, **extra)
    ldr = read_ldr(path)
    own = np.rot90(p3_light(wide_photo()), -1)
    delta = dense(gamut_delta(path, ldr), ldr.shape)
    inside = np.rot90(wide_photo().max(-1) < 250, -1)
    np.testing.assert_allclose((srgb_to_linear(ldr) + delta)[inside], own[inside], atol=3e-3)
    base = display_p3_base(path, ldr.shape[:2])
    np.testing.assert_array_equal(base.pixels, np.rot90(wide_photo(), -1))


def test_rgba_and_ten_bit_avif_photos(tmp_path, p3_icc):  # noqa: F811
    rgba = np.dstack([wide_photo(), np.full((48, 64), 255, np.uint8)])
    Image.fromarray(rgba).save(tmp_path / "rgba.png", icc_profile=p3_icc)
    ldr = read_ldr(tmp_path / "rgba.png")
    delta = dense(gamut_delta(tmp_path / "rgba.png", ldr), ldr.shape)
    own = p3_light(wide_photo())
    np.testing.assert_allclose(srgb_to_linear(ldr[GREEN]) + delta[GREEN], own[GREEN], atol=2e-3)
    base = display_p3_base(tmp_path / "rgba.png", ldr.shape[:2])  # its gain-map JPEG's base
    np.testing.assert_array_equal(base.pixels, wide_photo())
    ten = wide_photo().astype(np.uint16) * 4 + wide_photo() // 64  # 10-bit, read at 8 bits
    data = imagecodecs.avif_encode(ten, 100, bitspersample=10, primaries=12, transfer=13, matrix=1)
    (tmp_path / "p3.avif").write_bytes(data)
    ldr = read_ldr(tmp_path / "p3.avif")
    delta = dense(gamut_delta(tmp_path / "p3.avif", ldr), ldr.shape)
    np.testing.assert_allclose(srgb_to_linear(ldr[GREEN]) + delta[GREEN], own[GREEN], atol=4e-3)
    base = display_p3_base(tmp_path / "p3.avif", ldr.shape[:2]).pixels  # as libavif decodes it
    assert np.abs(base.astype(int) - wide_photo()).max() <= 1


def test_a_downscaled_photo_keeps_the_rims_of_its_colours(tmp_path, p3_icc):  # noqa: F811
    """``--max-size``: a pixel on the rim of a saturated patch averages fitted and unfitted
    ones; it is given back too (the mask widened by a pixel)."""
    from mlx_hdr.infer.pipeline import load_input

    big = np.repeat(np.repeat(wide_photo(), 3, axis=0), 3, axis=1)[:, 1:]  # 144 x 191
    Image.fromarray(big).save(tmp_path / "big.png", icc_profile=p3_icc)
    ldr = load_input(tmp_path / "big.png", 97)
    small = cv2.resize(big, ldr.shape[1::-1], interpolation=cv2.INTER_AREA)
    own = p3_light(small)  # the P3 display values downscaled as the photo is, then converted
    delta = dense(gamut_delta(tmp_path / "big.png", ldr), ldr.shape)
    inside = small.max(-1) < 250
    np.testing.assert_allclose((srgb_to_linear(ldr) + delta)[inside], own[inside], atol=3e-3)


def test_the_fallback_encoder_gets_the_fitted_colours(tmp_path, monkeypatch, p3_icc):  # noqa: F811
    """Where libultrahdr cannot be called directly, its own Rec.709 base is written: the
    reconstruction with the photo's own colours (negative there) is not handed to it."""
    from mlx_hdr.io import uhdr
    from mlx_hdr.io.libuhdr import LibraryUnavailable

    def unavailable():
        raise LibraryUnavailable("no ctypes binding in this test")

    seen = []
    monkeypatch.setattr(uhdr, "library", unavailable)
    monkeypatch.setattr(
        uhdr, "encode_uhdr_hdr_only", lambda hdr, opts: (seen.append(hdr), (b"x", 2.0))[1]
    )
    Image.fromarray(wide_photo()).save(tmp_path / "p3.png", icc_profile=p3_icc)
    ldr = read_ldr(tmp_path / "p3.png")
    hdr = srgb_to_linear(ldr)
    wide = with_wide_gamut(hdr, ldr, gamut_delta(tmp_path / "p3.png", ldr))
    native = display_p3_base(tmp_path / "p3.png", ldr.shape[:2])
    uhdr.write_uhdr(tmp_path / "o.jpg", ldr, hdr, None, None, native, wide)
    assert seen[0] is hdr and wide.min() < -0.01


def test_a_p3_photos_preview_is_a_p3_png_with_its_colours(cli, tmp_path, p3_icc):  # noqa: F811
    outs = predict(cli, tmp_path, p3_icc, "linear")
    own = p3_light(wide_photo())  # linear Rec.709; its luminance is what the tone map reads
    y = own @ np.float32([0.2126, 0.7152, 0.0722])
    want = linear_to_srgb(srgb_to_linear(wide_photo() / 255.0) / (1.0 + y[..., None]))
    with Image.open(outs["default"] / "p3_preview.png") as im:
        assert is_display_p3(im.info.get("icc_profile"))
        shown = np.asarray(im, np.float32) / 255.0
    for patch in (ORANGE, GREEN):  # Reinhard's L / (1 + L), in the photo's own P3 colours
        np.testing.assert_allclose(shown[patch], want[patch], atol=2.5 / 255)
    with Image.open(outs["fitted"] / "p3_preview.png") as im:
        assert "icc_profile" not in im.info  # sRGB, as every other photo's preview
        fitted = np.asarray(im, np.float32) / 255.0
    assert np.abs(fitted[GREEN] - want[GREEN]).max() > 0.05


def test_an_exposure_preview_clips_channel_by_channel_in_p3(cli, tmp_path, p3_icc):  # noqa: F811
    Image.fromarray(wide_photo()).save(tmp_path / "p3.png", icc_profile=p3_icc)
    out = tmp_path / "p.png"
    args = ("-o", out, "--method", "linear", "--tonemap", "exposure", "--exposure", "1")
    code, _, err = cli("predict", tmp_path / "p3.png", *args)
    assert code == 0, err
    with Image.open(out) as im:
        assert is_display_p3(im.info.get("icc_profile"))
        shown = np.asarray(im, np.float32) / 255.0
    want = linear_to_srgb(np.clip(2.0 * srgb_to_linear(wide_photo() / 255.0), 0.0, 1.0))
    for patch in (ORANGE, GREEN, WINDOW):  # the window blown to white, as the operator does
        np.testing.assert_allclose(shown[patch], want[patch], atol=2.5 / 255)


def test_a_made_display_p3_profile_is_the_same_bytes_each_run(p3_icc):  # noqa: F811
    from mlx_hdr.io.icc import SRGB_ICC
    from mlx_hdr.io.own_colours import made_display_p3_icc

    icc = made_display_p3_icc.__wrapped__()
    assert is_display_p3(icc) and icc == made_display_p3_icc.__wrapped__()
    assert len(icc) < 1024  # the sRGB curve parametric, not a table
    rgb = np.random.default_rng(0).integers(0, 256, (1, 4096, 3), dtype=np.uint8)
    kinds = {"colorspace": "rgb", "outcolorspace": "rgb"}
    ours, apples = (imagecodecs.cms_transform(rgb, p, SRGB_ICC, **kinds) for p in (icc, p3_icc))
    assert np.abs(ours.astype(int) - apples).max() <= 1  # converts as Apple's profile does
    assert struct.unpack(">6H", icc[24:36]) == (2026, 1, 1, 0, 0, 0)  # not today's date
    described = ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(io.BytesIO(icc)))
    assert described.strip() == "Display P3"  # the name colour-management tools show


def test_a_photo_tagged_display_p3_by_cicp_alone(cli, tmp_path):
    """A HEIC with nclx primaries 12 and no ICC profile: its gain-map JPEG's base and its
    preview carry a Display P3 profile made for it, and keep its colours."""
    save_heic(tmp_path / "n.heic", wide_photo(), nclx_profile=P3_NCLX)
    fmts = ("--format", "uhdr", "--preview", "--method", "kovaleski2014")
    code, _, err = cli("predict", tmp_path / "n.heic", "-o", tmp_path / "out", *fmts)
    assert code == 0, err
    for name in ("n_uhdr.jpg", "n_preview.png"):
        with Image.open(tmp_path / "out" / name) as im:
            assert is_display_p3(im.info.get("icc_profile")), name
    data = (tmp_path / "out" / "n_uhdr.jpg").read_bytes()
    rendition = imagecodecs.ultrahdr_decode(data).astype(np.float32)[..., :3]
    want = srgb_to_linear(wide_photo() / 255.0)  # P3 light, the base's own pixels
    err = np.abs(np.log2((rendition[GREEN] + OFFSET) / (want[GREEN] + OFFSET))).max(-1)
    assert np.median(err) < 0.05  # as with an ICC profile (0.036); fitted into sRGB: 1.73


@pytest.mark.parametrize("curve", [srgb_to_linear, bt709_to_linear])
def test_cicp_colours_by_tables_as_in_float(curve):
    """A photo tagged by CICP primaries (BT.2020) and transfer goes into Display P3 by
    tables, the colours outside P3 in float: within one level of the float conversion of
    every pixel."""
    from mlx_hdr.color import REC2020_CHROMATICITIES
    from mlx_hdr.io import native
    from mlx_hdr.io.own_colours import OwnPhoto

    to709 = rgb_to_rec709_matrix(REC2020_CHROMATICITIES).T.astype(np.float32)
    rng = np.random.default_rng(0)
    for full, dtype in ((255, np.uint8), (65535, np.uint16)):
        pixels = rng.integers(0, full + 1, (60, 80, 3)).astype(dtype)
        pixels[:30] //= 3  # duller colours, inside P3
        photo = OwnPhoto(pixels, CicpColours(to709, curve), None)
        fast = native._matrix_into_p3(photo).astype(int)
        exact = native._fitted_p3(pixels.reshape(-1, 3), full, photo.to_linear)
        assert np.abs(fast - exact.reshape(pixels.shape)).max() <= 1
