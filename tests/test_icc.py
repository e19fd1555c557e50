"""Colour management on input (mlx_hdr/io/icc.py): non-sRGB ICC profiles are converted to sRGB."""

from __future__ import annotations

import io
import struct
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageCms

from mlx_hdr.color import CLIP_THRESHOLD, REC709_LUMA, srgb_to_linear
from mlx_hdr.io.image_io import read_ldr

# Display P3's D50-adapted colorants (as in Apple's profile) and D50 white
P3_COLORANTS = {
    b"rXYZ": (0.515121, 0.241182, -0.001053),
    b"gXYZ": (0.291977, 0.692245, 0.041885),
    b"bXYZ": (0.157104, 0.066574, 0.784073),
}
D50 = (0.964203, 1.0, 0.824905)


def _s15(v: float) -> bytes:
    return struct.pack(">i", round(v * 65536))


def matrix_trc_icc(colorants: dict, gamma: float, name: str, table=None) -> bytes:
    """A minimal ICC v2 RGB display profile: colorants, white point, power-law TRCs (or the
    tone curve ``table``: values in [0, 1] at evenly spaced inputs)."""
    text = name.encode() + b"\0"
    desc = b"desc" + b"\0" * 4 + struct.pack(">I", len(text)) + text
    desc += b"\0" * 8 + b"\0" * 3 + b"\0" * 67  # empty Unicode and ScriptCode parts
    xyz = {k: b"XYZ " + b"\0" * 4 + b"".join(map(_s15, v)) for k, v in colorants.items()}
    curv = b"curv" + b"\0" * 4 + struct.pack(">IH", 1, round(gamma * 256)) + b"\0\0"
    if table is not None:
        entries = [round(float(v) * 65535) for v in table]
        curv = b"curv" + b"\0" * 4 + struct.pack(f">I{len(entries)}H", len(entries), *entries)
    tags = {b"desc": desc, b"wtpt": b"XYZ " + b"\0" * 4 + b"".join(map(_s15, D50)), **xyz}
    tags |= {b"rTRC": curv, b"gTRC": curv, b"bTRC": curv, b"cprt": b"text\0\0\0\0none\0"}
    offset = 128 + 4 + 12 * len(tags)
    table, data = struct.pack(">I", len(tags)), b""
    for sig, body in tags.items():
        body += b"\0" * (-len(body) % 4)
        table += sig + struct.pack(">II", offset + len(data), len(body))
        data += body
    size = offset + len(data)
    header = struct.pack(">I4sI4s4s4s", size, b"\0" * 4, 0x02100000, b"mntr", b"RGB ", b"XYZ ")
    header += b"\0" * 12 + b"acsp" + b"\0" * 24 + struct.pack(">I", 0)
    header += b"".join(map(_s15, D50)) + b"\0" * (128 - len(header) - 12)
    return header + table + data


@pytest.fixture
def colours():
    rng = np.random.default_rng(0)
    img = rng.integers(30, 226, (6, 8, 3), dtype=np.uint8)
    img[0, 0] = (128, 128, 128)
    return img


def test_display_p3_photo_is_converted_to_srgb(tmp_path, colours):
    icc = matrix_trc_icc(P3_COLORANTS, 2.2, "Display P3 test")
    path = tmp_path / "p3.png"
    Image.fromarray(colours).save(path, icc_profile=icc)
    out = read_ldr(path)
    ref = ImageCms.profileToProfile(
        Image.fromarray(colours),
        ImageCms.ImageCmsProfile(io.BytesIO(icc)),
        ImageCms.createProfile("sRGB"),
        renderingIntent=ImageCms.Intent.RELATIVE_COLORIMETRIC,
    )
    np.testing.assert_array_equal(out, np.asarray(ref, np.float32) / 255)
    naive = colours.astype(np.float32) / 255
    # P3 values read as sRGB look desaturated: converted, chroma grows; grey stays grey
    chroma = lambda a: (a.max(-1) - a.min(-1)).mean()  # noqa: E731
    assert chroma(out) > chroma(naive) + 0.01
    assert np.ptp(out[0, 0]) <= 1 / 255


def test_srgb_tagged_untagged_and_broken_profiles_read_as_srgb(tmp_path, colours):
    naive = colours.astype(np.float32) / 255
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    for name, icc in (("srgb.png", srgb), ("plain.png", None)):
        Image.fromarray(colours).save(tmp_path / name, **({"icc_profile": icc} if icc else {}))
        np.testing.assert_array_equal(read_ldr(tmp_path / name), naive)
    Image.fromarray(colours).save(tmp_path / "bad.png", icc_profile=b"not a profile" * 20)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        np.testing.assert_array_equal(read_ldr(tmp_path / "bad.png"), naive)
    assert any("bad.png: ICC profile not usable" in str(w.message) for w in caught)


def test_rotated_p3_jpeg_keeps_its_profile(tmp_path, colours):
    icc = matrix_trc_icc(P3_COLORANTS, 2.2, "Display P3 test")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise on display
    path = tmp_path / "p3.jpg"
    Image.fromarray(colours).save(path, icc_profile=icc, exif=exif, quality=100)
    out = read_ldr(path)
    with Image.open(path) as im:
        naive = np.asarray(im.convert("RGB"), np.float32).transpose(1, 0, 2)[:, ::-1] / 255
    assert out.shape == naive.shape == (8, 6, 3)
    chroma = lambda a: (a.max(-1) - a.min(-1)).mean()  # noqa: E731
    assert chroma(out) > chroma(naive) + 0.01


# D50 XYZ -> linear sRGB (Bradford-adapted, IEC 61966-2-1 primaries): an independent reference
XYZ_D50_TO_SRGB = np.array(
    [
        [3.1338561, -1.6168667, -0.4906146],
        [-0.9787684, 1.9161415, 0.0334540],
        [0.0719453, -0.2289914, 1.4052427],
    ]
)


def p3_to_linear_srgb(rgb8: np.ndarray) -> np.ndarray:
    """The test profile's colours (gamma 2.2, P3 colorants), unbounded linear sRGB."""
    colorants = np.array([P3_COLORANTS[k] for k in (b"rXYZ", b"gXYZ", b"bXYZ")]).T
    return ((rgb8 / 255.0) ** 2.2) @ colorants.T @ XYZ_D50_TO_SRGB.T


SATURATED = np.array([[[240, 130, 25], [235, 40, 30], [30, 241, 30], [240, 20, 120]]], np.uint8)


@pytest.mark.parametrize("bits", [8, 16])
def test_wide_gamut_colours_are_not_taken_for_clipped_ones(tmp_path, bits):
    # P3 colours below their own white that fall outside sRGB: cut at 1 they would read as
    # clipped highlights; fitted, they stay below the blend ramp, luminance and hue kept
    icc = matrix_trc_icc(P3_COLORANTS, 2.2, "Display P3 test")
    path = tmp_path / ("p3.png" if bits == 8 else "p3.tif")
    if bits == 8:
        Image.fromarray(SATURATED).save(path, icc_profile=icc)
    else:
        import tifffile  # a 16-bit TIFF: read through OpenCV, its profile by Pillow

        tifffile.imwrite(path, SATURATED.astype(np.uint16) * 257, iccprofile=icc)
    out = read_ldr(path)[0]
    ext = p3_to_linear_srgb(SATURATED.astype(np.float64))[0]
    assert (ext.max(-1) > srgb_to_linear(CLIP_THRESHOLD)).all()  # plain: in the blend ramp
    assert (out.max(-1) < CLIP_THRESHOLD).all()
    lin = srgb_to_linear(out).astype(np.float64)
    y, y_ext = lin @ REC709_LUMA, ext @ REC709_LUMA
    np.testing.assert_allclose(y, y_ext, rtol=0.05)  # negative channels cut: a little more
    hue = lambda c, y: (c - y[:, None]) / np.linalg.norm(c - y[:, None], axis=-1, keepdims=True)  # noqa: E731
    assert (np.sum(hue(lin, y) * hue(ext, y_ext), -1) > 0.97).all()


def test_the_gamut_fit_leaves_no_steps_in_a_gradient(tmp_path):
    # one code value at a time into and past the ramp: no step a viewer could see
    # (CIEDE2000 below 1.5; measured 0.99 at most, the cut conversion 0.43)
    from skimage.color import deltaE_ciede2000, rgb2lab

    icc = matrix_trc_icc(P3_COLORANTS, 2.2, "Display P3 test")
    v = np.arange(200, 256)
    rows = [(0 * v, v, 0 * v), (v, 22 + 0 * v, 22 + 0 * v), (v, v * 55 // 100, 25 + 0 * v)]
    img = np.stack([np.stack(r, -1) for r in rows]).astype(np.uint8)
    Image.fromarray(img).save(tmp_path / "g.png", icc_profile=icc)
    lab = rgb2lab(read_ldr(tmp_path / "g.png").astype(np.float64))
    assert deltaE_ciede2000(lab[:, 1:], lab[:, :-1]).max() < 1.5


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data")
def test_broken_exif_reads_as_srgb(tmp_path, colours):
    buf = io.BytesIO()
    Image.fromarray(colours).save(buf, "JPEG", exif=adobe_exif().tobytes()[:40], quality=100)
    (tmp_path / "t.jpg").write_bytes(buf.getvalue())
    with Image.open(tmp_path / "t.jpg") as im:
        plain = np.asarray(im.convert("RGB"), np.float32) / 255
    np.testing.assert_array_equal(read_ldr(tmp_path / "t.jpg"), plain)


def test_clipped_and_in_gamut_pixels_convert_as_before(tmp_path):
    icc = matrix_trc_icc(P3_COLORANTS, 2.2, "Display P3 test")
    img = np.array([[[255, 60, 20], [255, 255, 255], [120, 90, 60], [200, 180, 40]]], np.uint8)
    Image.fromarray(img).save(tmp_path / "p3.png", icc_profile=icc)
    out = read_ldr(tmp_path / "p3.png")[0]
    ref = ImageCms.profileToProfile(
        Image.fromarray(img),
        ImageCms.ImageCmsProfile(io.BytesIO(icc)),
        ImageCms.createProfile("sRGB"),
        renderingIntent=ImageCms.Intent.RELATIVE_COLORIMETRIC,
    )
    np.testing.assert_array_equal(out, np.asarray(ref, np.float32)[0] / 255)
    assert out[0, 0] == 1.0 and out[1].min() == 1.0  # clipped in the file: clipped still


def test_wide_gamut_photo_is_not_lifted_as_a_highlight(tmp_path):
    # end to end: saturated P3 colours, none clipped in the file, keep their level (the
    # magenta, cut at the sRGB white, came out 0.36 stops up; measured as the linearised
    # photo, so that only the reconstruction is judged)
    from mlx_hdr.infer.model_hub import load_net
    from mlx_hdr.infer.pipeline import predict_hdr

    y, x = np.mgrid[:240, :320]
    img = 0.45 * (0.8 + 0.2 * np.sin(x / 20))[..., None].repeat(3, -1)
    patches = {(60, 80): (237, 64, 31), (170, 80): (230, 26, 89), (170, 230): (51, 240, 51)}
    for (cy, cx), colour in patches.items():
        img[(y - cy) ** 2 + (x - cx) ** 2 < 40**2] = np.array(colour) / 255
    img = (img * 255 + 0.5).astype(np.uint8)
    icc = matrix_trc_icc(P3_COLORANTS, 2.2, "Display P3 test")
    Image.fromarray(img).save(tmp_path / "p3.png", icc_profile=icc)
    hdr = predict_hdr(read_ldr(tmp_path / "p3.png"), load_net(None)[0], response="srgb")
    ratio = (hdr @ REC709_LUMA) / np.maximum(p3_to_linear_srgb(img) @ REC709_LUMA, 1e-6)
    grey = np.median(ratio[100:130, 140:180])
    for cy, cx in patches:
        assert abs(np.log2(np.median(ratio[cy - 15 : cy + 15, cx - 15 : cx + 15]) / grey)) < 0.15


# Adobe RGB (1998) -> XYZ and XYZ -> linear sRGB, both D65 (the standards' own matrices)
ADOBE_TO_XYZ = np.array(
    [
        [0.5767309, 0.1855540, 0.1881852],
        [0.2973769, 0.6273491, 0.0752741],
        [0.0270343, 0.0706872, 0.9911085],
    ]
)
XYZ_TO_SRGB = np.array(
    [
        [3.2404542, -1.5371385, -0.4985314],
        [-0.9692660, 1.8760108, 0.0415560],
        [0.0556434, -0.2040259, 1.0572252],
    ]
)


def adobe_exif(interop: str = "R03", orientation: int = 1) -> Image.Exif:
    """EXIF as a camera writes it for an Adobe RGB JPEG without a profile."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif.get_ifd(0x8769)[0xA001] = 0xFFFF  # ColorSpace: uncalibrated
    exif.get_ifd(0x8769)[0xA005] = {0x0001: interop}  # Interoperability IFD: index
    return exif


@pytest.mark.parametrize("orientation", [1, 6])
def test_an_adobe_rgb_camera_jpeg_without_a_profile_is_read_as_adobe_rgb(
    tmp_path, colours, orientation
):
    path = tmp_path / "adobe.jpg"
    Image.fromarray(colours).save(path, exif=adobe_exif(orientation=orientation), quality=100)
    with Image.open(path) as im:
        decoded = np.asarray(im.convert("RGB"), np.float64) / 255
    out = read_ldr(path)
    if orientation == 6:
        out = np.rot90(out, 1)  # back to the stored layout
    ref = ((decoded ** (563 / 256)) @ ADOBE_TO_XYZ.T @ XYZ_TO_SRGB.T).clip(0, 1) ** (1 / 2.4)
    inside = (decoded ** (563 / 256) @ ADOBE_TO_XYZ.T @ XYZ_TO_SRGB.T).min(-1) > 0.01
    assert inside.mean() > 0.5
    # the sRGB curve against a plain 1/2.4 power: compare in linear light
    lin = srgb_to_linear(out)[inside]
    np.testing.assert_allclose(lin, (ref[inside] ** 2.4), rtol=0.02, atol=2e-3)
    chroma = lambda a: (a.max(-1) - a.min(-1)).mean()  # noqa: E731
    assert chroma(out) > chroma(decoded) + 0.01  # Adobe RGB read as sRGB would look duller


def test_other_exif_colour_spaces_read_as_srgb(tmp_path, colours):
    naive = colours.astype(np.float32) / 255
    exif = adobe_exif(interop="R98")  # uncalibrated but not the Adobe RGB option file
    Image.fromarray(colours).save(tmp_path / "a.png", exif=exif)
    np.testing.assert_array_equal(read_ldr(tmp_path / "a.png"), naive)


def test_a_p3_profile_named_for_its_srgb_curve_is_converted():
    # Samsung's "DCI-P3 D65 Gamut with sRGB Transfer": sRGB by name, P3 by primaries
    import pillow_heif

    from mlx_hdr.io.icc import source_profile

    pillow_heif.register_heif_opener()
    with Image.open(Path(__file__).parent / "fixtures" / "galaxy_s25ultra.heic") as im:
        icc = im.info["icc_profile"]
    assert "sRGB" in ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(io.BytesIO(icc)))
    assert source_profile(icc, Path("s.heic"), 1) is not None
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    assert source_profile(srgb, Path("s.png"), 1) is None


def test_a_linear_srgb_profile_is_converted(tmp_path):
    # sRGB primaries and name, but a linear curve: not sRGB (64/255 linear is 0.537 in sRGB)
    from mlx_hdr.io.icc import SRGB_COLORANTS

    colorants = dict(zip((b"rXYZ", b"gXYZ", b"bXYZ"), SRGB_COLORANTS, strict=True))
    icc = matrix_trc_icc(colorants, 1.0, "Linear sRGB")
    Image.fromarray(np.full((4, 4, 3), 64, np.uint8)).save(tmp_path / "lin.png", icc_profile=icc)
    assert abs(read_ldr(tmp_path / "lin.png")[0, 0, 0] - 0.537) < 0.01
