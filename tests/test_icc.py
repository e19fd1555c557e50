"""Colour management on input (mlx_hdr/io/icc.py): non-sRGB ICC profiles are converted to sRGB."""

from __future__ import annotations

import io
import struct
import warnings

import numpy as np
import pytest
from PIL import Image, ImageCms

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
