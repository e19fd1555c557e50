"""An iPhone HEIC's Apple HDR gain map (mlx_hdr/io/apple_gain.py), on a real iPhone 13 Pro
photo (``fixtures/iphone13pro_pug.heic``, from pillow-heif's test images). Its MakerNote has
tag 33 but not tag 48, so Apple's method gives it no headroom; copies with one byte pair
changed (tag 29 renamed 48) or its XMP gain-map version turned into a headroom exercise the
full reading. ``scripts/apple_gain_check.py`` compares the reading with ``apple-hdr-heic``."""

from __future__ import annotations

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
from mlx_hdr.io.heic import ANDROID_HDR, APPLE_HDR, gain_map_kind, register
from mlx_hdr.io.image_io import read_hdr, read_ldr
from mlx_hdr.io.photo_meta import existing_gain_map
from mlx_hdr.io.uhdr_input import recorded_gain

PUG = Path(__file__).parent / "fixtures" / "iphone13pro_pug.heic"
TAG_29 = b"\x00\x1d\x00\x0a\x00\x00\x00\x01"  # MakerNote entry: tag 29, signed rational, 1
XMP_VERSION = b"<HDRGainMap:HDRGainMapVersion>65536</HDRGainMap:HDRGainMapVersion>"
XMP_HEADROOM = b"<HDRGainMap:HDRGainMapHeadroom>2.5</HDRGainMap:HDRGainMapHeadroom>"


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
    with pytest.raises(InputError, match="comes without a headroom"):
        recorded_gain(PUG)
    with pytest.warns(UserWarning) as notes:
        assert gain_for(PUG, (3024, 4032)) is None
    assert len(notes) == 1 and str(notes[0].message).endswith("reconstructing from the photo alone")


def test_headroom_from_the_maker_note_or_the_xmp(tmp_path):
    assert headroom_of(with_tag_48(tmp_path)) == pytest.approx(2 ** (1.601 - 0.101 * 3965 / 309256))
    assert headroom_of(variant(tmp_path, XMP_VERSION, XMP_HEADROOM)) == 2.5
    garbled = XMP_HEADROOM.replace(b">2.5<", b">2.-<")
    with pytest.raises(InputError, match="comes without a headroom"):
        headroom_of(variant(tmp_path, XMP_VERSION, garbled))


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
