"""image_io: round trips, odd formats on tiny generated files, real files, bad inputs."""

from __future__ import annotations

import json
import warnings

import cv2
import numpy as np
import OpenEXR
import pytest
from PIL import Image, ImageOps

from mlx_hdr.color import (
    REC709_CHROMATICITIES,
    linear_to_srgb,
    rgb_to_rec709_matrix,
    rgb_to_xyz_matrix,
    srgb_to_linear,
)
from mlx_hdr.errors import InputError
from mlx_hdr.io import checks, hdr_io
from mlx_hdr.io import image_io as io
from mlx_hdr.io.exif import exif_orient

AP0 = (0.7347, 0.2653, 0.0, 1.0, 0.0001, -0.077, 0.32168, 0.33767)


def hdr_image(h=9, w=13, seed=0):
    rng = np.random.default_rng(seed)
    return np.exp2(rng.uniform(-6, 8, (h, w, 3))).astype(np.float32)


def rgb8(h=6, w=10, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


# ---------------------------------------------------------------- HDR round trips


@pytest.mark.parametrize("width", [5, 40])  # OpenCV writes flat RGBE below 8 px, RLE above
def test_rgbe_round_trip(tmp_path, width):
    img = hdr_image(w=width)
    path = io.write_hdr(tmp_path / "a.hdr", img)
    data = path.read_bytes()
    first = data[data.index(b"+X %d\n" % width) + len(b"+X %d\n" % width) :][:2]
    assert (first == b"\x02\x02") == (width >= 8)  # new-style RLE scanline marker
    out = io.read_hdr(path)
    assert out.shape == img.shape and out.dtype == np.float32
    # RGBE: 8-bit mantissa shared by the pixel: error <= 2^-7 of the pixel's max channel.
    err = np.abs(out - img) / img.max(axis=-1, keepdims=True)
    assert err.max() < 2**-7


@pytest.mark.parametrize("dtype,tol", [("half", 2**-11), ("float", 0.0)])
def test_exr_round_trip(tmp_path, dtype, tol):
    img = hdr_image()
    out = io.read_hdr(io.write_hdr(tmp_path / "a.exr", img, dtype=dtype))
    assert np.all(np.abs(out - img) <= tol * img)
    channels = OpenEXR.File(str(tmp_path / "a.exr"), separate_channels=True).parts[0].channels
    assert channels["R"].pixels.dtype == (np.float16 if dtype == "half" else np.float32)
    header = OpenEXR.File(str(tmp_path / "a.exr"), header_only=True).header()
    np.testing.assert_allclose(header["chromaticities"], REC709_CHROMATICITIES, atol=1e-6)


def test_half_exr_clamps_instead_of_writing_inf(tmp_path):
    # a 1e5 highlight used to become +inf in a half EXR, which reads back as the image max
    img = np.ones((4, 4, 3), np.float32)
    img[0, 0] = 1e5
    with pytest.warns(UserWarning, match="values above 65504 clamped"):
        io.write_hdr(tmp_path / "a.exr", img)
    pixels = OpenEXR.File(str(tmp_path / "a.exr")).parts[0].channels["RGB"].pixels
    assert np.isfinite(pixels).all() and pixels[0, 0, 0] == 65504
    assert io.read_hdr(tmp_path / "a.exr")[0, 0, 0] == 65504


def test_pfm_round_trip_and_row_order(tmp_path):
    img = hdr_image()
    out = io.read_hdr(io.write_hdr(tmp_path / "a.pfm", img))
    np.testing.assert_array_equal(out, img)
    # Hand-made big-endian greyscale PFM: first stored row is the bottom of the image.
    rows = np.arange(6, dtype=">f4").reshape(3, 2)
    (tmp_path / "g.pfm").write_bytes(b"Pf\n2 3\n1.0\n" + rows.tobytes())
    grey = io.read_hdr(tmp_path / "g.pfm")
    assert grey.shape == (3, 2, 3)
    np.testing.assert_array_equal(grey[..., 1], [[4, 5], [2, 3], [0, 1]])
    # a header with Windows line ends: its "\r\n" is one separator, not "\r" then data
    (tmp_path / "w.pfm").write_bytes(b"Pf\r\n2 3\r\n1.0\r\n" + rows.tobytes())
    np.testing.assert_array_equal(io.read_hdr(tmp_path / "w.pfm"), grey)
    (tmp_path / "s.pfm").write_bytes(b"Pf\n2 3\n1.0 \t\n" + rows.tobytes())  # spaces after it
    np.testing.assert_array_equal(io.read_hdr(tmp_path / "s.pfm"), grey)
    data = b"\n\0\x80?" + np.float32(2.0).tobytes()  # a first value whose first byte is "\n"
    (tmp_path / "r.pfm").write_bytes(b"Pf\n2 1\n-1.0\r" + data)  # a lone "\r" separator
    np.testing.assert_array_equal(
        io.read_hdr(tmp_path / "r.pfm")[0, :, 0], np.frombuffer(data, "<f4")
    )


def test_hdr_sanitised_with_warning(tmp_path):
    img = hdr_image(4, 4)
    img[0, 0, 0], img[0, 1, 1], img[0, 2, 2] = np.nan, np.inf, -3.0
    io.write_hdr(tmp_path / "bad.pfm", img)
    with pytest.warns(UserWarning, match="NaN"):
        out = io.read_hdr(tmp_path / "bad.pfm")
    finite = img[np.isfinite(img)]
    assert out[0, 0, 0] == 0 and out[0, 2, 2] == 0 and out[0, 1, 1] == finite.max()
    assert np.isfinite(out).all() and out.min() >= 0


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_hdr_without_finite_values_is_an_error(tmp_path, value):
    # nothing to keep: all NaN/inf used to become an all-black image with only a warning
    io.write_hdr(tmp_path / "bad.exr", np.full((4, 5, 3), value, np.float32), dtype="float")
    with pytest.raises(InputError, match="no finite pixel values") as info:
        io.read_hdr(tmp_path / "bad.exr")
    assert str(info.value).startswith(str(tmp_path / "bad.exr")) and "\n" not in str(info.value)


# ---------------------------------------------------------------- EXR variants


def test_exr_luminance_only(tmp_path):
    y = hdr_image()[..., 0]
    OpenEXR.File({}, {"Y": y.astype(np.float16)}).write(str(tmp_path / "y.exr"))
    out = io.read_hdr(tmp_path / "y.exr")
    assert out.shape == (*y.shape, 3)
    np.testing.assert_allclose(out[..., 2], y, rtol=1e-3)


def test_exr_luminance_chroma(tmp_path):
    rgb = hdr_image()
    y = rgb @ rgb_to_xyz_matrix(REC709_CHROMATICITIES)[1].astype(np.float32)
    ry, by = (rgb[..., 0] - y) / y, (rgb[..., 2] - y) / y  # OpenEXR's RGBAtoYCA
    OpenEXR.File({}, {"Y": y, "RY": ry, "BY": by}).write(str(tmp_path / "yc.exr"))
    out = io.read_hdr(tmp_path / "yc.exr")
    # float32 cancellation in G = (Y - wr R - wb B) / wg: error relative to the pixel's max.
    assert (np.abs(out - rgb) / rgb.max(-1, keepdims=True)).max() < 1e-5


def test_exr_subsampled_chroma_upsampling():
    ch = np.array([[1.0, 2.0], [3.0, 4.0]], np.float32)
    from mlx_hdr.io.exr import _upsample

    up = _upsample(ch, (3, 4))
    np.testing.assert_array_equal(up, [[1, 1, 2, 2], [1, 1, 2, 2], [3, 3, 4, 4]])


def test_exr_other_primaries_converted(tmp_path):
    rgb = hdr_image()
    rgb[0, 0] = 1.0  # white stays white under Bradford adaptation D60 -> D65
    OpenEXR.File({"chromaticities": AP0}, {"RGB": rgb}).write(str(tmp_path / "aces.exr"))
    with pytest.warns(UserWarning, match="negative"):  # out-of-gamut colours clamped
        out = io.read_hdr(tmp_path / "aces.exr")
    np.testing.assert_allclose(out[0, 0], 1.0, atol=2e-4)
    expected = np.maximum(rgb[1:] @ rgb_to_rec709_matrix(AP0).T, 0)
    assert (np.abs(out[1:] - expected) / rgb[1:].max(-1, keepdims=True)).max() < 1e-5


def test_exr_rgba_and_no_colour_channels(tmp_path):
    rgb = hdr_image()
    a = np.ones(rgb.shape[:2], np.float32)
    # The OpenEXR binding ignores numpy strides: pass contiguous planes.
    chans = {c: np.ascontiguousarray(rgb[..., i]) for i, c in enumerate("RGB")} | {"A": a}
    OpenEXR.File({}, chans).write(str(tmp_path / "rgba.exr"))
    np.testing.assert_array_equal(io.read_hdr(tmp_path / "rgba.exr"), rgb)
    OpenEXR.File({}, {"Z": a}).write(str(tmp_path / "z.exr"))
    with pytest.raises(InputError, match="found: Z"):
        io.read_hdr(tmp_path / "z.exr")


def test_a_truncated_exr_says_so(tmp_path):
    """The library reads no part of it (its note goes to stderr): was 'list index out of
    range'."""
    io.write_hdr(tmp_path / "a.exr", np.random.default_rng(0).random((64, 64, 3)), dtype="float")
    data = (tmp_path / "a.exr").read_bytes()
    (tmp_path / "cut.exr").write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(InputError, match="corrupt or truncated OpenEXR file"):
        io.read_hdr(tmp_path / "cut.exr")


# ---------------------------------------------------------------- LDR formats


@pytest.mark.parametrize("ext", [".png", ".tif"])
def test_16bit_rgb_and_grey(tmp_path, ext):
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 65536, (5, 7, 3), dtype=np.uint16)
    cv2.imwrite(str(tmp_path / f"c{ext}"), rgb[..., ::-1])
    out = io.read_ldr(tmp_path / f"c{ext}")
    np.testing.assert_allclose(out, rgb / 65535.0, atol=1e-7)
    assert io.read_ldr_info(tmp_path / f"c{ext}").bits == 16
    cv2.imwrite(str(tmp_path / f"g{ext}"), rgb[..., 0])
    grey = io.read_ldr(tmp_path / f"g{ext}")
    np.testing.assert_allclose(grey, np.repeat(rgb[..., :1] / 65535.0, 3, -1), atol=1e-7)


def test_8bit_modes(tmp_path, monkeypatch):
    rgb = rgb8()
    Image.fromarray(rgb[..., 0]).save(tmp_path / "l.png")
    np.testing.assert_allclose(io.read_ldr(tmp_path / "l.png"), rgb[..., [0, 0, 0]] / 255.0)
    pal = Image.fromarray(rgb).quantize(16)
    pal.save(tmp_path / "p.png")
    np.testing.assert_allclose(
        io.read_ldr(tmp_path / "p.png"), np.asarray(pal.convert("RGB")) / 255.0
    )
    Image.fromarray(rgb).convert("CMYK").save(tmp_path / "cmyk.jpg", quality=100)
    assert Image.open(tmp_path / "cmyk.jpg").mode == "CMYK"
    assert np.abs(io.read_ldr(tmp_path / "cmyk.jpg") - rgb / 255.0).mean() < 0.05


def test_webp_and_first_of_several_images(tmp_path):
    rgb, other = rgb8(), rgb8(seed=1)
    Image.fromarray(rgb).save(tmp_path / "a.webp", lossless=True, exact=True)
    np.testing.assert_allclose(io.read_ldr(tmp_path / "a.webp"), rgb / 255.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a single image: no note
        io.read_ldr(tmp_path / "a.webp")
    for name, kw in (("anim.webp", {"lossless": True, "exact": True}), ("pages.tif", {})):
        first, second = Image.fromarray(rgb), Image.fromarray(other)
        first.save(tmp_path / name, save_all=True, append_images=[second], **kw)
        with pytest.warns(UserWarning, match=f"{name}: holds 2 images; using the first"):
            np.testing.assert_allclose(io.read_ldr(tmp_path / name), rgb / 255.0)


def _avif(path, rgb, primaries=1, transfer=13, bits=8):
    """An AVIF file of ``rgb`` (uint8) as libavif writes it, lossless-ish (4:4:4, level
    100), tagged with these CICP primaries and transfer."""
    import imagecodecs

    data = rgb.astype(np.uint16) * 4 + rgb // 64 if bits == 10 else rgb
    path.write_bytes(
        imagecodecs.avif_encode(
            data, 100, bitspersample=bits, primaries=primaries, transfer=transfer, matrix=1
        )
    )
    return path


def test_avif_sdr_read_tagged_colours_converted_hdr_refused(tmp_path):
    """An SDR AVIF reads like a JPEG (EXIF rotation included); Display P3 primaries (CICP
    12) are converted to sRGB; a PQ or HLG AVIF (``predict --format avif``'s own output) is
    refused with one line, before its pixels are decoded."""
    grey = np.full((24, 32, 3), 128, np.uint8)
    grey[:, :16] = (200, 30, 40)  # a saturated red, in P3 outside sRGB
    srgb = io.read_ldr(_avif(tmp_path / "a.avif", grey))
    assert np.abs(srgb - grey / 255.0).max() < 3 / 255
    p3 = io.read_ldr(_avif(tmp_path / "p3.avif", grey, primaries=12))
    assert np.abs(p3[:, 16:] - srgb[:, 16:]).max() < 1e-6  # grey stays grey
    assert p3[:, :16, 0].mean() > srgb[:, :16, 0].mean() + 0.03  # P3 red is redder
    deep = io.read_ldr(_avif(tmp_path / "d.avif", grey, bits=10))
    assert np.abs(deep - srgb).max() < 2 / 255
    info = io.read_ldr_info(tmp_path / "a.avif")
    assert (info.width, info.height, info.bits) == (32, 24, 8)
    ex = Image.Exif()
    ex[0x0112] = 6  # shown turned 90 degrees clockwise
    Image.fromarray(grey).save(tmp_path / "r.avif", exif=ex, quality=100)
    turned = io.read_ldr(tmp_path / "r.avif")
    assert turned.shape == (32, 24, 3) and turned[0, -1, 1] < 0.3 < turned[-1, -1, 1]
    for transfer, name in ((16, "PQ"), (18, "HLG")):
        f = _avif(tmp_path / f"{name}.avif", grey, primaries=9, transfer=transfer, bits=10)
        with pytest.raises(InputError, match=f"already an HDR image \\({name} transfer\\)"):
            io.read_ldr(f)
    (tmp_path / "bad.avif").write_bytes(b"not an avif")
    with pytest.raises(InputError, match="bad.avif: not a readable AVIF image"):
        io.read_ldr(tmp_path / "bad.avif")
    # major brand mif1 with avif compatible (allowed): read by Pillow's AVIF decoder, not
    # by pillow-heif's HEIF opener (which has no AV1 decoder here)
    data = bytearray((tmp_path / "a.avif").read_bytes())
    assert data[4:12] == b"ftypavif"
    data[8:12] = b"mif1"
    (tmp_path / "mif1.avif").write_bytes(bytes(data))
    np.testing.assert_array_equal(io.read_ldr(tmp_path / "mif1.avif"), srgb)


def test_a_folder_input_skips_hdr_avifs_only(tmp_path):
    """Our own PQ AVIF output beside the photos is not taken for a photo; an SDR AVIF is."""
    from mlx_hdr.infer.outputs import expand_inputs

    grey = np.full((8, 8, 3), 128, np.uint8)
    _avif(tmp_path / "photo.avif", grey)
    _avif(tmp_path / "photo_hdr.avif", grey, primaries=9, transfer=16, bits=10)
    (tmp_path / "junk.avif").write_bytes(b"not an avif")  # kept: read_ldr names its problem
    paths, missing, own = expand_inputs([str(tmp_path)])
    assert [p.name for p in paths] == ["junk.avif", "photo.avif"] and not missing and not own
    # a scene folder of a dataset: the HDR AVIF beside the photo leaves it paired
    from mlx_hdr.data.datasets import scan_dataset

    scene = tmp_path / "set" / "case1"
    scene.mkdir(parents=True)
    io.write_hdr(scene / "gt.hdr", np.full((8, 8, 3), 0.5, np.float32))
    _avif(scene / "photo.avif", grey)
    _avif(scene / "photo_hdr.avif", grey, primaries=9, transfer=16, bits=10)
    found = scan_dataset(tmp_path / "set")
    assert [p.ldr_path.name for p in found.pairs] == ["photo.avif"] and not found.unpaired


def test_alpha_dropped_with_one_warning(tmp_path, monkeypatch):
    monkeypatch.setattr(io, "_alpha_warned", False)
    rgba = np.dstack([rgb8(), np.full((6, 10), 7, np.uint8)])
    Image.fromarray(rgba).save(tmp_path / "a.png")
    Image.fromarray(rgba[..., [0, 3]]).save(tmp_path / "la.png")
    with pytest.warns(UserWarning, match="alpha"):
        out = io.read_ldr(tmp_path / "a.png")
    np.testing.assert_allclose(out, rgba[..., :3] / 255.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # second file: no second warning
        la = io.read_ldr(tmp_path / "la.png")
    np.testing.assert_allclose(la, rgba[..., [0, 0, 0]] / 255.0)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation(tmp_path, orientation):
    rgb = rgb8(4, 6)
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(rgb).save(tmp_path / "o.png", exif=exif)
    out = io.read_ldr(tmp_path / "o.png")
    np.testing.assert_array_equal(out, exif_orient(rgb, orientation) / np.float32(255))
    with Image.open(tmp_path / "o.png") as im:  # Pillow's own turn, EXIF rewritten
        expected = np.asarray(ImageOps.exif_transpose(im))
    np.testing.assert_array_equal(exif_orient(rgb, orientation), expected)
    info = io.read_ldr_info(tmp_path / "o.png")
    assert (info.height, info.width) == out.shape[:2] and info.orientation == orientation


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data")
@pytest.mark.parametrize("cut", [8, 14, 20])  # inside the TIFF header or first IFD
def test_a_photo_whose_exif_cannot_be_parsed_reads_as_if_it_had_none(tmp_path, cut):
    from mlx_hdr.io.photo_meta import read_exposure

    exif = Image.Exif()
    exif[0x0112] = 6
    exif.get_ifd(0x8769)[0x829A] = 0.01
    rgb = rgb8()
    for name in ("a.png", "a.jpg"):
        Image.fromarray(rgb).save(tmp_path / name, exif=exif.tobytes()[:cut], quality=100)
        with Image.open(tmp_path / name) as im:
            plain = np.asarray(im.convert("RGB"), np.float32) / 255.0
        np.testing.assert_array_equal(io.read_ldr(tmp_path / name), plain)
        assert read_exposure(tmp_path / name) is None


def test_a_16bit_tiff_with_an_orientation_tag(tmp_path):
    # OpenCV 5 cannot read it (tifffile does); turned as its tag says
    import tifffile

    rgb = np.random.default_rng(0).integers(0, 65536, (5, 7, 3), dtype=np.uint16)
    for orientation in range(1, 9):  # OpenCV turned 2-4 itself (then turned again here)
        for compression in (None, "zlib"):
            tags = [(274, "H", 1, orientation, True)]
            tifffile.imwrite(tmp_path / "o.tif", rgb, extratags=tags, compression=compression)
            np.testing.assert_allclose(
                io.read_ldr(tmp_path / "o.tif"), exif_orient(rgb / 65535.0, orientation)
            )
    cmyk = np.zeros((5, 7, 4), np.uint16)
    cmyk[:2, :, 3] = 65535  # black ink on the top rows, white paper below
    tifffile.imwrite(tmp_path / "c.tif", cmyk, photometric="separated")  # was read as RGBA
    np.testing.assert_allclose(io.read_ldr(tmp_path / "c.tif")[:, 0, 0], [0, 0, 1, 1, 1])
    planar = np.moveaxis(rgb, -1, 0)  # one plane per channel: was read as 8-bit and garbled
    tifffile.imwrite(tmp_path / "p.tif", planar, photometric="rgb", planarconfig="separate")
    np.testing.assert_allclose(io.read_ldr(tmp_path / "p.tif"), rgb / 65535.0, atol=1e-7)


@pytest.mark.parametrize("compression", [None, "tiff_lzw"])
@pytest.mark.parametrize("mode", ["RGB", "L", "I;16", "P"])
def test_a_tiff_is_turned_once_by_its_orientation_tag(tmp_path, mode, compression):
    """Pillow turns a TIFF by its tag as it loads it: not turned again here, and not
    garbled (Pillow maps an uncompressed one from a file at its turned size)."""
    rgb = rgb8(6, 9)
    im = Image.fromarray(rgb).convert(mode if mode != "I;16" else "L")
    if mode == "I;16":
        im = Image.fromarray(np.asarray(im).astype(np.uint16) * 257)
    plain = io.read_ldr(_save_tiff(im, tmp_path / "plain.tif", 1, compression))
    for orientation in range(2, 9):
        path = _save_tiff(im, tmp_path / f"o{orientation}.tif", orientation, compression)
        out = io.read_ldr(path)
        np.testing.assert_array_equal(out, exif_orient(plain, orientation), err_msg=orientation)
        info = io.read_ldr_info(path)
        assert (info.height, info.width) == out.shape[:2]


def _save_tiff(im: Image.Image, path, orientation: int, compression):
    from PIL import TiffImagePlugin

    tags = TiffImagePlugin.ImageFileDirectory_v2()
    tags[0x0112] = orientation
    im.save(path, tiffinfo=tags, **({"compression": compression} if compression else {}))
    return path


def test_metadata_of_a_photo_beyond_pillows_size_guard_reads_as_none(tmp_path, monkeypatch):
    # with --max-pixels raised above Pillow's own guard, the metadata readers must not raise
    from mlx_hdr.io.native import display_p3_base
    from mlx_hdr.io.photo_meta import existing_gain_map, read_exif, read_exposure

    Image.fromarray(rgb8(64, 64)).save(tmp_path / "big.jpg", exif=Image.Exif().tobytes())
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    for reader in (existing_gain_map, read_exif, read_exposure):
        assert reader(tmp_path / "big.jpg") is None
    assert display_p3_base(tmp_path / "big.jpg", (64, 64)) is None


def test_exif_rotated_jpeg(tmp_path):
    rgb = np.zeros((8, 16, 3), np.uint8)
    rgb[:, :8] = 255  # left half white
    exif = Image.Exif()
    exif[0x0112] = 6  # display = rotate 90 degrees clockwise: left half -> top half
    Image.fromarray(rgb).save(tmp_path / "r.jpg", exif=exif, quality=100)
    out = io.read_ldr(tmp_path / "r.jpg")
    assert out.shape == (16, 8, 3)
    assert out[:6].mean() > 0.9 and out[10:].mean() < 0.1


# ---------------------------------------------------------------- real files


def test_real_eval_pair_consistent(shared):
    case = shared / "data/eval-public/ilm_desk"
    gt, ldr = io.read_hdr(case / "gt.hdr"), io.read_ldr(case / "input.jpg")
    scale = json.loads((case / "meta.json").read_text())["exposure_scale"]
    assert gt.shape == ldr.shape == (874, 644, 3)
    # The synthetic LDR recipe: ldr = srgb(clip(gt * s)), so they agree on unclipped pixels.
    ok = (gt * scale).max(axis=-1) < 0.9
    diff = np.abs(linear_to_srgb(gt * scale) - ldr)[ok]
    assert np.median(diff) < 0.01
    assert np.abs(srgb_to_linear(ldr[ok]) - gt[ok] * scale).mean() < 0.01


def test_real_pool_file(shared):
    img = io.read_hdr(shared / "data/hdr-pool/ph_lebombo.hdr")
    assert img.shape == (512, 1024, 3) and img.min() >= 0 and img.max() > 1


# ---------------------------------------------------------------- bad inputs


def _bad_files(tmp_path, shared_dir):
    real = (shared_dir / "data/eval-public/ilm_desk/gt.hdr").read_bytes()
    jpg = (shared_dir / "data/eval-public/ilm_desk/input.jpg").read_bytes()
    io.write_hdr(tmp_path / "ok.exr", hdr_image(64, 64))
    io.write_ldr(tmp_path / "ok.png", np.random.default_rng(0).random((64, 64, 3)))
    files = {
        "empty.jpg": b"",
        "trunc.jpg": jpg[: len(jpg) // 2],
        "trunc.png": (tmp_path / "ok.png").read_bytes()[:300],
        "garbage.png": b"this is not an image at all",
        "trunc.hdr": real[: len(real) // 2],
        "noheader.hdr": b"hello world\n",
        "trunc.exr": (tmp_path / "ok.exr").read_bytes()[:200],
        "trunc.pfm": b"PF\n4 4\n-1.0\n" + b"\0" * 20,
        "scale.pfm": b"PF\n2 2\ne\n" + b"\0" * 48,  # matched the header, then ValueError
        "xyze.hdr": real.replace(b"32-bit_rle_rgbe", b"32-bit_rle_xyze", 1),
        "image.gif": b"GIF89a",
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    return list(files) + ["missing.hdr", "missing.jpg"]


def test_bad_inputs_give_one_line_input_error(tmp_path, shared):
    for name in _bad_files(tmp_path, shared):
        path = tmp_path / name
        reader = io.read_hdr if path.suffix in (".hdr", ".exr", ".pfm") else io.read_ldr
        with pytest.raises(InputError) as info:
            reader(path)
        msg = str(info.value)
        assert str(path) in msg and "\n" not in msg, (name, msg)
    (tmp_path / "dir.hdr").mkdir()
    with pytest.raises(InputError, match="not a regular file"):
        io.read_hdr(tmp_path / "dir.hdr")


def test_pixel_limit_and_decompression_bomb(tmp_path, monkeypatch):
    io.write_ldr(tmp_path / "big.png", np.zeros((40, 50, 3)))
    io.write_hdr(tmp_path / "big.hdr", np.ones((40, 50, 3)))
    io.write_hdr(tmp_path / "big.exr", np.ones((40, 50, 3)))
    for p, read in [("big.png", io.read_ldr), ("big.hdr", io.read_hdr), ("big.exr", io.read_hdr)]:
        with pytest.raises(InputError, match="limit"):
            read(tmp_path / p, max_pixels=1000)
    monkeypatch.setattr(checks, "MAX_PIXELS", 1000)  # the default every reader applies
    with pytest.raises(InputError, match="limit"):
        io.read_hdr(tmp_path / "big.hdr")
    with pytest.raises(InputError, match=str(tmp_path / "big.png")):
        io.read_ldr(tmp_path / "big.png")  # the default limit applies to Pillow's files too


# ---------------------------------------------------------------- atomic writes


def test_failed_write_leaves_nothing(tmp_path, monkeypatch):
    target = tmp_path / "out.exr"
    target.write_bytes(b"old")

    def boom(path, img, dtype):
        path.write_bytes(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(hdr_io, "write_exr", boom)
    with pytest.raises(OSError):
        io.write_hdr(target, hdr_image())
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.exr"]
    for bad in [
        lambda: io.write_hdr(tmp_path / "x.tga", hdr_image()),
        lambda: io.write_ldr(tmp_path / "x.png", np.zeros((4, 4, 5))),
        lambda: io.write_ldr(tmp_path / "nodir" / "x.png", np.zeros((4, 4, 3))),
    ]:
        with pytest.raises(InputError):
            bad()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.exr"]


def test_write_ldr_png_and_jpeg(tmp_path):
    img = np.random.default_rng(0).random((8, 8, 3)).astype(np.float32)
    png = io.read_ldr(io.write_ldr(tmp_path / "a.png", img))
    assert np.abs(png - img).max() <= 0.5 / 255 + 1e-6
    ramp_x, ramp_y = np.meshgrid(np.linspace(0, 1, 16), np.linspace(0, 1, 16))
    smooth = np.dstack([ramp_x, ramp_y, np.full((16, 16), 0.5)])
    jpg = io.read_ldr(io.write_ldr(tmp_path / "a.jpg", smooth, quality=95))
    assert np.abs(jpg - smooth).max() < 0.06 and np.abs(jpg - smooth).mean() < 0.01


def test_atomic_outputs_get_ordinary_permissions(tmp_path):
    import os

    mask = os.umask(0o022)
    try:
        out = io.write_ldr(tmp_path / "p.png", np.zeros((4, 4, 3), np.float32))
    finally:
        os.umask(mask)
    assert out.stat().st_mode & 0o777 == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["p.png"]


def test_max_pixels_above_pillows_own_limit_is_honoured(tmp_path, monkeypatch):
    # Pillow refuses images above twice its MAX_IMAGE_PIXELS on its own; a larger
    # --max-pixels must still let them through (and a smaller one refuse them)
    path = tmp_path / "big.png"
    Image.new("RGB", (64, 64), (10, 20, 30)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # Pillow alone would refuse 4096 px
    assert io.read_ldr(path, max_pixels=10_000).shape == (64, 64, 3)
    assert Image.MAX_IMAGE_PIXELS == 1000  # restored
    with pytest.raises(InputError, match="above the 0.002 MP limit"):
        io.read_ldr(path, max_pixels=2000)


def test_a_png_is_oriented_by_its_exif_chunk_only(tmp_path):
    """A stale orientation in ImageMagick's "Raw profile type exif" text (GEGL's parliament
    frames: portrait pixels tagged 8) is not applied, as browsers do not; an eXIf chunk is."""
    from PIL.PngImagePlugin import PngInfo

    from mlx_hdr.io.photo_meta import read_exposure

    exif = Image.Exif()
    exif[0x0112] = 8
    exif.get_ifd(0x8769).update({0x829A: 0.25, 0x829D: 8.0, 0x8827: 800})
    raw = b"Exif\x00\x00" + exif.tobytes()
    text = PngInfo()
    text.add_text("Raw profile type exif", f"\nexif\n{len(raw):8d}\n{raw.hex()}\n", zip=True)
    rgb = rgb8(4, 6)
    Image.fromarray(rgb).save(tmp_path / "text.png", pnginfo=text)
    with Image.open(tmp_path / "text.png") as im:
        assert im.getexif()[0x0112] == 8  # Pillow reads the text's tag
    np.testing.assert_array_equal(io.read_ldr(tmp_path / "text.png"), rgb / np.float32(255))
    assert io.read_ldr_info(tmp_path / "text.png").orientation == 1
    assert read_exposure(tmp_path / "text.png").time_s == pytest.approx(0.25)  # kept
    Image.fromarray(rgb).save(tmp_path / "chunk.png", exif=exif)
    assert io.read_ldr(tmp_path / "chunk.png").shape == (6, 4, 3)  # eXIf: turned


def test_a_radiance_file_stored_bottom_up_or_right_to_left(tmp_path):
    """'+Y H +X W' and the other row orders of the Radiance format are read the right way
    up (were 'corrupt or truncated'); a file stored by columns is refused by name."""
    img = np.random.default_rng(0).random((6, 9, 3)).astype(np.float32) * 4
    io.write_hdr(tmp_path / "a.hdr", img)
    base, data = io.read_hdr(tmp_path / "a.hdr"), (tmp_path / "a.hdr").read_bytes()
    cases = {b"+Y 6 +X 9": base[::-1], b"-Y 6 -X 9": base[:, ::-1], b"+Y 6 -X 9": base[::-1, ::-1]}
    for header, want in cases.items():
        (tmp_path / "o.hdr").write_bytes(data.replace(b"-Y 6 +X 9", header))
        np.testing.assert_array_equal(io.read_hdr(tmp_path / "o.hdr"), want)
    (tmp_path / "c.hdr").write_bytes(data.replace(b"-Y 6 +X 9", b"+X 9 -Y 6"))
    with pytest.raises(InputError, match="stored by columns"):
        io.read_hdr(tmp_path / "c.hdr")


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_a_tiff_whose_first_page_is_a_thumbnail_gives_the_photo(tmp_path, recwarn, dtype):
    """A reduced-resolution copy first (NewSubfileType 1), as some scanners and raw
    converters write it: the HDR had come out 12x8."""
    import tifffile

    top = np.iinfo(dtype).max
    photo = np.zeros((24, 36, 3), dtype)
    photo[..., 1] = top // 2
    thumb = np.full((8, 12, 3), top, dtype)
    with tifffile.TiffWriter(tmp_path / "t.tif") as tif:
        tif.write(thumb, photometric="rgb", subfiletype=1)
        tif.write(photo, photometric="rgb")
    img = io.read_ldr(tmp_path / "t.tif")
    assert img.shape == (24, 36, 3)
    np.testing.assert_allclose(img[0, 0], (0, (top // 2) / top, 0), atol=1 / 255)
    assert "holds 2 images; using the first full-size one" in str(recwarn[-1].message)
