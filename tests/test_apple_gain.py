"""An iPhone HEIC's Apple HDR gain map (mlx_hdr/io/apple_gain.py), on a real iPhone 13 Pro
photo (``fixtures/iphone13pro_pug.heic``, from pillow-heif's test images). Its MakerNote has
tag 33 but not tag 48, so Apple's method gives it no headroom; copies with one byte pair
changed (tag 29 renamed 48) or its XMP gain-map version turned into a headroom exercise the
full reading. ``scripts/apple_gain_check.py`` compares the reading with ``apple-hdr-heic``."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mlx_hdr.color import rgb_to_luminance, srgb_to_linear
from mlx_hdr.errors import InputError
from mlx_hdr.infer.recorded import KEPT, gain_for, recorded_hdr
from mlx_hdr.io.apple_gain import (
    EXIF_IFD,
    MAKER_NOTE,
    apple_gain,
    apple_headroom,
    headroom_of,
    maker_note_values,
)
from mlx_hdr.io.hdrgm import segments
from mlx_hdr.io.heic import (
    ANDROID_HDR,
    APPLE_GAIN_MAP_AUX,
    APPLE_HDR,
    gain_map_kind,
    open_heif,
    register,
)
from mlx_hdr.io.image_io import read_hdr, read_ldr
from mlx_hdr.io.photo_meta import existing_gain_map
from mlx_hdr.io.uhdr_input import recorded_gain

PUG = Path(__file__).parent / "fixtures" / "iphone13pro_pug.heic"
TAG_29 = b"\x00\x1d\x00\x0a\x00\x00\x00\x01"  # MakerNote entry: tag 29, signed rational, 1
XMP_VERSION = b"<HDRGainMap:HDRGainMapVersion>65536</HDRGainMap:HDRGainMapVersion>"
XMP_HEADROOM = b"<HDRGainMap:HDRGainMapHeadroom>2.5</HDRGainMap:HDRGainMapHeadroom>"
MAP_XMP = (
    '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
    'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description rdf:about="" '
    'xmlns:HDRGainMap="http://ns.apple.com/HDRGainMap/1.0/" '
    'xmlns:apdi="http://ns.apple.com/pixeldatainfo/1.0/">'
    "<HDRGainMap:HDRGainMapVersion>65536</HDRGainMap:HDRGainMapVersion>"
    f"<apdi:AuxiliaryImageType>{APPLE_GAIN_MAP_AUX}</apdi:AuxiliaryImageType>"
    "</rdf:Description></rdf:RDF></x:xmpmeta>"
).encode()


def variant(tmp_path, old: bytes, new: bytes) -> Path:
    data = PUG.read_bytes()
    assert data.count(old) == 1 and len(old) == len(new)
    path = tmp_path / "iphone.heic"
    path.write_bytes(data.replace(old, new))
    return path


def with_tag_48(tmp_path) -> Path:
    return variant(tmp_path, TAG_29, b"\x00\x30" + TAG_29[2:])


def test_headroom_formula_branches():
    assert apple_headroom(1.01, 1.9) == pytest.approx(2 ** (2.303 - 0.303 * 1.9))
    assert apple_headroom(0.5, 0.0) == pytest.approx(2**1.8)
    assert apple_headroom(0.5, 0.005) == pytest.approx(2**1.7)
    assert apple_headroom(0.5, 2.0) == pytest.approx(2 ** (1.601 - 0.202))
    assert apple_headroom(1.2, 0.005) == pytest.approx(2**2.65)
    assert apple_headroom(1.2, 20.0) == 1.0  # never below white


def test_maker_note_of_a_real_iphone_photo():
    register(PUG)
    with Image.open(PUG) as im:
        maker = im.getexif().get_ifd(EXIF_IFD)[MAKER_NOTE]
    values = maker_note_values(maker)
    assert values[33] == pytest.approx(22307 / 25388)
    assert values[29] == pytest.approx(3965 / 309256)
    assert 48 not in values
    assert maker_note_values(b"Canon" + maker[5:]) == {}
    assert maker_note_values(maker[:40]) == {}  # cut short: no entry read past the end


def test_gain_map_kinds():
    assert existing_gain_map(PUG) == APPLE_HDR
    samsung = {"aux": {"urn:com:samsung:photo:2024:aux:hdrgainmap": [37]}}
    assert gain_map_kind(samsung) == ANDROID_HDR  # not read as Apple's


def test_no_headroom_means_no_rendition(tmp_path):
    with pytest.raises(
        InputError,
        match=r"without a headroom \(no XMP HDRGainMapHeadroom, and the MakerNote lacks tag 48\)",
    ):
        recorded_gain(PUG)
    with pytest.warns(UserWarning) as notes:
        assert gain_for(PUG, (3024, 4032)) is None
    assert len(notes) == 1 and str(notes[0].message).endswith("reconstructing from the photo alone")


def test_headroom_from_the_maker_note_or_the_xmp(tmp_path):
    assert headroom_of(with_tag_48(tmp_path)) == pytest.approx(2 ** (1.601 - 0.101 * 3965 / 309256))
    assert headroom_of(variant(tmp_path, XMP_VERSION, XMP_HEADROOM)) == 2.5
    garbled = XMP_HEADROOM.replace(b">2.5<", b">2.-<")
    with pytest.raises(InputError, match="its XMP HDRGainMapHeadroom '2.-' is unusable"):
        headroom_of(variant(tmp_path, XMP_VERSION, garbled))  # the MakerNote was not read


def test_rendition_of_a_real_iphone_photo(tmp_path):
    path = with_tag_48(tmp_path)
    headroom = headroom_of(path)
    factor = apple_gain(path)
    ldr = read_ldr(path)
    assert factor.shape == ldr.shape[:2] == (3024, 4032)
    assert factor.min() >= 1.0 and factor.max() <= headroom
    hdr = recorded_hdr(ldr, recorded_gain(path))
    lin = srgb_to_linear(ldr)
    lit = lin > 0.05
    level = (hdr[lit] / (lin * factor[..., None])[lit]).astype(np.float64)
    assert level.std() < 2e-3 and 0.9 < level.mean() <= 1.0  # one scale: the mid-tones kept
    y = rgb_to_luminance(ldr)
    assert factor[y > 0.9].mean() > factor[y < 0.2].mean() + 0.05  # the map lifts the bright


def test_the_gain_over_the_photo_as_loaded(tmp_path):
    # predict passes the photo it loaded: no second decode, the same gain at full size, and
    # at a downscaled size the full-size gain's area average, to within 0.2%
    import cv2

    path = with_tag_48(tmp_path)
    ldr = read_ldr(path)
    full = recorded_gain(path)
    np.testing.assert_array_equal(recorded_gain(path, ldr), full)
    small = cv2.resize(ldr, (403, 302), interpolation=cv2.INTER_AREA)
    gain = recorded_gain(path, small)
    want = cv2.resize(full, (403, 302), interpolation=cv2.INTER_AREA)
    assert gain.shape == small.shape
    ratio = np.abs(np.log(gain / want))
    assert ratio.max() < 2e-3


def test_cli_keeps_an_iphone_photos_highlights(cli, recwarn, tmp_path):
    path = with_tag_48(tmp_path)
    args = ("predict", path, "--method", "linear", "--max-size", "400")
    code, _, err = cli(*args, "-o", tmp_path / "kept.hdr")
    assert code == 0, err
    assert [str(w.message) for w in recwarn] == [f"{path}: {KEPT}"]
    code, _, err = cli(*args, "-o", tmp_path / "alone.hdr", "--no-input-gain-map")
    assert code == 0, err
    kept, alone = read_hdr(tmp_path / "kept.hdr"), read_hdr(tmp_path / "alone.hdr")
    assert kept.shape == alone.shape == (300, 400, 3)
    assert kept.max() > 1.1 and alone.max() <= 1.0 + 1e-3
    ratio = rgb_to_luminance(kept).sum() / rgb_to_luminance(alone).sum()
    assert 1.0 < ratio < headroom_of(path)


def with_mpf(primary: bytes, second: bytes) -> bytes:
    """``primary`` with an MPF directory (APP2, after its APP segments) listing ``second``,
    appended: the two-image layout of an iPhone JPEG (CIPA DC-007)."""
    at = max(e for m, _, e in segments(primary) if 0xE0 <= m <= 0xEF)
    ifd = struct.pack(">H", 3) + struct.pack(">HHI4s", 0xB000, 7, 4, b"0100")
    ifd += struct.pack(">HHII", 0xB001, 4, 1, 2) + struct.pack(">HHII", 0xB002, 7, 32, 50)
    ifd += struct.pack(">I", 0)
    body_len = 4 + 8 + len(ifd) + 32
    first = len(primary) + 4 + body_len
    tiff = at + 8  # the MPF header's byte-order mark, which its offsets count from
    entries = struct.pack(">IIIHH", 0x030000, first, 0, 0, 0)
    entries += struct.pack(">IIIHH", 0, len(second), first - tiff, 0, 0)
    body = b"MPF\0" + b"MM\0\x2a" + struct.pack(">I", 8) + ifd + entries
    segment = b"\xff\xe2" + struct.pack(">H", len(body) + 2) + body
    return primary[:at] + segment + primary[at:] + second


def iphone_jpeg(tmp_path, heic: Path, orientation: int) -> Path:
    """``heic`` as an iPhone JPEG whose pixels and map are stored turned back by
    ``orientation`` (6: a portrait photo), its EXIF (MakerNote included) kept."""
    register(heic)
    heif = open_heif(heic)
    gmap = np.asarray(heif.get_aux_image(heif.info["aux"][APPLE_GAIN_MAP_AUX][0]))
    with Image.open(heic) as im:
        exif = im.getexif()
        photo = np.asarray(im.convert("RGB"))
    exif[0x0112] = orientation
    back = {1: lambda a: a, 6: lambda a: np.rot90(a, 1)}[orientation]
    primary, second = io.BytesIO(), io.BytesIO()
    Image.fromarray(back(photo)).save(primary, "JPEG", quality=95, exif=exif.tobytes())
    Image.fromarray(back(gmap)).save(second, "JPEG", quality=100, xmp=MAP_XMP)
    path = tmp_path / f"iphone_{orientation}.jpg"
    path.write_bytes(with_mpf(primary.getvalue(), second.getvalue()))
    return path


@pytest.mark.parametrize("orientation", [1, 6])
def test_an_iphone_jpeg_reads_as_its_heic(tmp_path, orientation):
    heic = with_tag_48(tmp_path)
    jpeg = iphone_jpeg(tmp_path, heic, orientation)
    assert existing_gain_map(jpeg) == APPLE_HDR
    from_heic, from_jpeg = apple_gain(heic), apple_gain(jpeg)
    assert from_jpeg.shape == from_heic.shape == read_ldr(jpeg).shape[:2]
    assert np.abs(from_jpeg - from_heic).mean() < 2e-3  # the map's JPEG round trip
    assert recorded_gain(jpeg).shape == (3024, 4032, 3)


def test_a_plain_mpo_is_no_gain_map(tmp_path):
    primary, second = io.BytesIO(), io.BytesIO()
    Image.new("RGB", (64, 48), (90, 120, 200)).save(primary, "JPEG")
    Image.new("L", (32, 24), 100).save(second, "JPEG")  # no Apple XMP: a stereo pair's half
    (tmp_path / "two.jpg").write_bytes(with_mpf(primary.getvalue(), second.getvalue()))
    assert existing_gain_map(tmp_path / "two.jpg") is None


def test_a_truncated_iphone_photo_is_noted_on_one_line(cli, recwarn, tmp_path):
    # libheif's reason for a map cut off by the end of the file spans two lines
    path = tmp_path / "cut.heic"
    path.write_bytes(with_tag_48(tmp_path).read_bytes()[:700_000])
    code, _, err = cli(
        "predict", path, "--method", "linear", "--max-size", "300", "-o", tmp_path / "o.hdr"
    )
    notes = [str(w.message) for w in recwarn] + err.strip().splitlines()
    assert notes and all(line.startswith((str(path), "error:", "warning:")) for line in notes), (
        notes
    )
    assert all("\n" not in str(w.message) for w in recwarn)


@pytest.mark.parametrize(
    "name,stops",  # libavif's avifjpeggainmaptest expects these headrooms of the same files
    [("iphone13mini_window_old.jpg", 3.0), ("iphone13mini_window_new.jpg", np.log2(4.532783))],
)
def test_a_real_iphone_jpeg_reads_as_libavif_reads_it(name, stops, recwarn):
    """A real iPhone HDR JPEG (libavif's test images): the headroom from the MakerNote (old)
    or the XMP (new) as libavif reads it, the 192x256 map stretched over the 384x512 photo."""
    path = Path(__file__).parent / "fixtures" / name
    assert existing_gain_map(path) == APPLE_HDR
    assert np.log2(headroom_of(path)) == pytest.approx(stops, abs=1e-6)
    with Image.open(path) as im:
        im.seek(1)
        assert im.size == (192, 256)  # the map, as libavif's test finds it
    factor = apple_gain(path)
    ldr = read_ldr(path)
    assert factor.shape == ldr.shape[:2] == (512, 384)
    assert factor.min() >= 1.0 and 2.0 < factor.max() <= 2**stops
    y = rgb_to_luminance(ldr)
    assert factor[y > 0.9].mean() > factor[y < 0.3].mean() + 0.3  # the window's sky is lifted
    assert gain_for(path, ldr.shape[:2], ldr) is not None
