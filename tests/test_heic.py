"""HEIC/HEIF input (mlx_hdr/io/heic.py): files made with pillow-heif, read against the same photo
as PNG; orientation, Display P3 (ICC and nclx), 8/10 bit, several images, bad files."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import pillow_heif
import pytest
from PIL import Image, ImageCms
from test_icc import P3_COLORANTS, matrix_trc_icc

from mlx_hdr.color import srgb_to_linear
from mlx_hdr.errors import InputError
from mlx_hdr.io.heic import gain_map_kind
from mlx_hdr.io.image_io import read_ldr
from mlx_hdr.io.photo_meta import existing_gain_map, read_exif

EXACT = {"quality": -1, "chroma": 444, "matrix_coefficients": 0}  # lossless RGB HEIC
P3_NCLX = {
    "color_primaries": 12,
    "transfer_characteristics": 13,
    "matrix_coefficients": 0,
    "full_range_flag": 1,
}
chroma = lambda a: float((a.max(-1) - a.min(-1)).mean())  # noqa: E731


def photo(h=24, w=40) -> np.ndarray:
    """A smooth, saturated 8-bit test photo with a marked top-left corner."""
    y, x = np.mgrid[:h, :w]
    img = np.stack([0.1 + 0.8 * x / w, 0.2 + 0.6 * y / h, 0.9 - 0.7 * x / w], -1)
    img[:3, :5] = (1.0, 0.0, 0.0)
    return (img * 255 + 0.5).astype(np.uint8)


def orientation_exif(tag: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = tag
    exif[0x010F] = "HeicCam"
    return exif.tobytes()


def save_heic(path, rgb: np.ndarray, bits: int = 8, **info) -> None:
    """Write ``rgb`` (uint8) as a lossless HEIC of ``bits`` bits with pillow-heif's info keys
    (``icc_profile``, ``exif``, ``nclx_profile``, ``xmp``)."""
    data = rgb if bits == 8 else (rgb.astype(np.uint16) * 257)
    heif = pillow_heif.from_bytes(
        "RGB" if bits == 8 else "RGB;16", rgb.shape[1::-1], data.tobytes()
    )
    heif.info.update(info)
    if "nclx_profile" in info:  # its own matrix_coefficients: 0, i.e. RGB as in EXACT
        heif.save(path, save_nclx_profile=True, quality=-1, chroma=444)
    else:
        heif.save(path, **EXACT)


@pytest.mark.parametrize("bits,tol", [(8, 0.0), (10, 1 / 1023)])
def test_plain_heic_matches_png(tmp_path, bits, tol):
    rgb = photo()
    Image.fromarray(rgb).save(tmp_path / "a.png")
    save_heic(tmp_path / "a.heic", rgb, bits)
    assert pillow_heif.open_heif(tmp_path / "a.heic").info["bit_depth"] == bits
    heic, png = read_ldr(tmp_path / "a.heic"), read_ldr(tmp_path / "a.png")
    assert heic.shape == png.shape == (24, 40, 3) and heic.dtype == np.float32
    assert np.abs(heic - png).max() <= tol + 1e-6


@pytest.mark.parametrize("bits", [8, 10])
def test_rotated_p3_heic_matches_the_same_png(tmp_path, bits):
    rgb, icc = photo(), matrix_trc_icc(P3_COLORANTS, 2.2, "Display P3 test")
    exif = orientation_exif(6)  # shown turned 90° clockwise
    Image.fromarray(rgb).save(tmp_path / "a.png", icc_profile=icc, exif=exif)
    save_heic(tmp_path / "a.heic", rgb, bits, icc_profile=icc, exif=exif)
    heic, png = read_ldr(tmp_path / "a.heic"), read_ldr(tmp_path / "a.png")
    assert heic.shape == png.shape == (40, 24, 3)
    assert heic[:5, -3:].min(axis=(0, 1))[0] > 0.9  # the red corner went to the top right
    # 10 bit: Little CMS in 16 bit vs Pillow's 8-bit transform (measured: p99 2.2/255, max
    # 0.042 at the gamut edge near black, where the sRGB curve is steep)
    diff = np.abs(heic - png)
    assert np.percentile(diff, 99) <= 3 / 255 and diff.max() <= 0.05, diff.max()
    assert chroma(heic) > chroma(rgb / 255.0) + 0.01  # converted: P3 values read as sRGB are duller


def test_exif_of_a_heic_keeps_tags_and_resets_orientation(tmp_path):
    save_heic(tmp_path / "a.heic", photo(), exif=orientation_exif(6))
    exif = Image.Exif()
    exif.load(read_exif(tmp_path / "a.heic"))
    assert exif[0x010F] == "HeicCam" and exif.get(0x0112, 1) == 1


def p3_by_lcms(rgb: np.ndarray, curve) -> np.ndarray:
    """``rgb`` (uint8) in Display P3 primaries with the tone curve ``curve`` (display ->
    linear) converted to sRGB by Little CMS (relative colorimetric): HxWx3 in [0, 1]."""
    table = curve(np.linspace(0.0, 1.0, 1024))
    icc = matrix_trc_icc(P3_COLORANTS, 2.2, "P3 test curve", table=table)
    ref = ImageCms.profileToProfile(
        Image.fromarray(rgb),
        ImageCms.ImageCmsProfile(io.BytesIO(icc)),
        ImageCms.createProfile("sRGB"),
        renderingIntent=ImageCms.Intent.RELATIVE_COLORIMETRIC,
    )
    return np.asarray(ref, np.float32) / 255


def test_nclx_display_p3_is_converted_like_an_icc_profile(tmp_path):
    rgb = photo()
    save_heic(tmp_path / "n.heic", rgb, nclx_profile=P3_NCLX)
    assert "icc_profile" not in pillow_heif.open_heif(tmp_path / "n.heic").info
    ref = p3_by_lcms(rgb, srgb_to_linear)  # a P3 profile with the sRGB tone curve
    out = read_ldr(tmp_path / "n.heic")
    inside = ref.max(-1) < 0.94  # colours well inside sRGB: no gamut fitting (test_icc)
    assert inside.mean() > 0.5
    assert np.abs(out - ref)[inside].max() <= 2 / 255
    np.testing.assert_allclose(out[:3, :5], ref[:3, :5], atol=2 / 255)  # clipped red: cut
    assert out[~inside].max(-1).min() > 0.9  # fitted, not darkened


def test_several_images_take_the_primary_and_say_so(tmp_path):
    heif = pillow_heif.from_bytes("RGB", (40, 24), photo().tobytes())
    heif.add_frombytes("RGB", (16, 8), np.full((8, 16, 3), 200, np.uint8).tobytes())
    heif.save(tmp_path / "m.heic", primary_index=1, **EXACT)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        img = read_ldr(tmp_path / "m.heic")
    assert img.shape == (8, 16, 3) and np.allclose(img, 200 / 255)
    assert [str(w.message) for w in caught] == [
        f"{tmp_path / 'm.heic'}: holds 2 images; using the primary one"
    ]


def test_hdr_heic_is_refused(tmp_path):
    pq = dict(P3_NCLX, transfer_characteristics=16, color_primaries=9)
    save_heic(tmp_path / "pq.heic", photo(), 10, nclx_profile=pq)
    with pytest.raises(InputError, match=r"pq\.heic: already an HDR image \(PQ transfer\)"):
        read_ldr(tmp_path / "pq.heic")


def test_bad_heic_files_are_one_line_errors(tmp_path):
    save_heic(tmp_path / "ok.heic", photo(48, 64))
    data = (tmp_path / "ok.heic").read_bytes()
    (tmp_path / "cut.heic").write_bytes(data[: len(data) // 2])
    (tmp_path / "junk.heic").write_bytes(b"\0\0\0\x18ftypheic" + b"x" * 200)
    (tmp_path / "jpeg.heic").write_bytes(b"\xff\xd8\xff\xe0 not a heic")
    for name in ("cut.heic", "junk.heic", "jpeg.heic"):
        with pytest.raises(InputError) as err:
            read_ldr(tmp_path / name)
        msg = str(err.value)
        assert msg.startswith(f"{tmp_path / name}: ") and "\n" not in msg, msg


def test_gain_map_kind_from_pillow_heif_info():
    assert gain_map_kind({"aux": {"urn:com:apple:photo:2020:aux:hdrgainmap": [3]}}) == (
        "an Apple HDR gain map"
    )
    assert gain_map_kind({"aux": {"urn:mpeg:hevc:2015:auxid:1": [2]}, "xmp": b"<x/>"}) is None
    assert gain_map_kind({"xmp": b'<rdf hdrgm:Version="1.0"/>'}) == "an HDR gain map"


def test_cli_reads_heic_folders_and_notes_gain_maps(cli, recwarn, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    save_heic(src / "plain.heic", photo())
    xmp = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF HDRGainMap:HDRGainMapVersion="1"/>'
    save_heic(src / "iphone.heic", photo(), xmp=xmp + b"</x:xmpmeta>")
    (src / "broken.heic").write_bytes(b"\0\0\0\x18ftypheic" + b"x" * 200)
    assert existing_gain_map(src / "iphone.heic") == "an HDR gain map"
    out = tmp_path / "out"
    code, _, err = cli("predict", src, "-o", out, "--method", "linear")
    assert code == 3 and "Traceback" not in err
    assert err.startswith(f"error: {src / 'broken.heic'}: not a readable HEIF image")
    assert err.count("\n") == 1
    assert [str(w.message) for w in recwarn] == [
        f"{src / 'iphone.heic'}: already HDR on screens that show an HDR gain map; "
        "reconstructing anyway"
    ]
    assert sorted(p.name for p in out.iterdir()) == [
        "iphone.hdr",
        "iphone_preview.png",
        "plain.hdr",
        "plain_preview.png",
    ]
    code, _, err = cli(
        *("predict", src / "iphone.heic", "-o", tmp_path / "o2", "--method", "linear"),
        "--skip-hdr-inputs",
    )
    assert code == 0 and "skipped (--skip-hdr-inputs)" in str(recwarn[-1].message)
    assert not (tmp_path / "o2").exists() or not any((tmp_path / "o2").iterdir())


def test_exposure_settings_of_a_heic(tmp_path):
    from PIL.TiffImagePlugin import IFDRational

    from mlx_hdr.io.exif import EXIF_IFD
    from mlx_hdr.io.photo_meta import Exposure, read_exposure

    exif = Image.Exif()
    ifd = exif.get_ifd(EXIF_IFD)
    ifd[0x829A], ifd[0x829D], ifd[0x8827] = IFDRational(1, 250), IFDRational(178, 100), 50
    save_heic(tmp_path / "a.heic", photo(), exif=exif.tobytes())
    assert read_exposure(tmp_path / "a.heic") == Exposure(1 / 250, 1.78, 50.0)


@pytest.mark.parametrize("name", ["iphone13pro_pug.heic", "seine_hdr_srgb.avif"])
def test_a_cut_short_heic_or_avif_is_refused_not_filled_in(tmp_path, name):
    """libheif decodes a HEIC whose tiles are missing without a word (the rest comes out
    green); the boxes say the file is short."""
    data = (Path(__file__).parent / "fixtures" / name).read_bytes()
    cut = tmp_path / f"cut{Path(name).suffix}"
    cut.write_bytes(data[: len(data) * 95 // 100])
    with pytest.raises(InputError, match=r"cut\.(heic|avif): truncated (HEIF|AVIF) file \("):
        read_ldr(cut)


def test_a_box_of_an_impossible_size_is_not_taken_for_a_cut_file(tmp_path):
    """A 64-bit box size below its own header once raised a ValueError past the reader (a
    traceback that stopped a batch); it is a malformed file, said as one."""
    import struct

    data = (Path(__file__).parent / "fixtures" / "iphone13pro_pug.heic").read_bytes()
    n = struct.unpack(">I", data[:4])[0]  # after the ftyp box
    for size in (8, 15):
        bad = tmp_path / f"bad{size}.heic"
        bad.write_bytes(data[:n] + struct.pack(">I4sQ", 1, b"free", size) + data[n:])
        with pytest.raises(InputError, match=r"not a readable HEIF image"):
            read_ldr(bad)


def test_heif_and_avif_are_told_by_their_content_not_their_name(tmp_path):
    """A HEIC named .JPG (as some transfer tools write it) is read as one; an HDR AVIF
    named .jpg is refused as one (it had been read as an sRGB photo)."""
    from mlx_hdr.io.heic import container

    save_heic(tmp_path / "a.heic", photo(48, 64))
    (tmp_path / "IMG_0001.JPG").write_bytes((tmp_path / "a.heic").read_bytes())
    assert container(tmp_path / "IMG_0001.JPG") == "heif"
    np.testing.assert_array_equal(
        read_ldr(tmp_path / "IMG_0001.JPG"), read_ldr(tmp_path / "a.heic")
    )
    hdr = Path(__file__).parent / "fixtures" / "seine_hdr_srgb.avif"
    (tmp_path / "pq_as.jpg").write_bytes(hdr.read_bytes())
    assert container(tmp_path / "pq_as.jpg") == "avif"
    with pytest.raises(InputError, match=r"pq_as\.jpg: already an HDR image \(PQ transfer\)"):
        read_ldr(tmp_path / "pq_as.jpg")
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "jpeg.heic", "JPEG")
    assert container(tmp_path / "jpeg.heic") is None  # a JPEG, whatever its name
    assert read_ldr(tmp_path / "jpeg.heic").shape == (4, 4, 3)
    (tmp_path / "empty.heic").write_bytes(b"")
    assert container(tmp_path / "empty.heic") == "heif"  # named as one: its reader says why
    for brand in (b"isom", b"qt  ", b"crx "):  # a video, a Canon CR3 raw: not HEIF images
        (tmp_path / "clip.jpg").write_bytes(b"\0\0\0\x18ftyp" + brand + b"\0" * 12)
        assert container(tmp_path / "clip.jpg") is None
