"""Gain-map JPEGs that libultrahdr refuses, read by their map's ``hdrgm`` XMP
(``hdrgm_read.jpeg_hdrgm_map``), on libavif's test images (BSD-2): Adobe Camera Raw's
``seine_sdr_gainmap_srgb.jpg`` and a Pixel 4a photo edited in Photoshop with a Display P3
profile, ``paris_exif_xmp_icc_gainmap_bigendian.jpg``."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from mlx_hdr.color import srgb_to_linear
from mlx_hdr.errors import InputError
from mlx_hdr.infer.recorded import gain_for
from mlx_hdr.io.hdrgm import ContainerError, mpf_images
from mlx_hdr.io.hdrgm_read import apply_hdrgm, jpeg_hdrgm_map, parse_hdrgm
from mlx_hdr.io.image_io import read_ldr
from mlx_hdr.io.native import P3_TO_REC709
from mlx_hdr.io.photo_meta import ULTRA_HDR
from mlx_hdr.io.uhdr_input import OFFSET, READERS, recorded_gain

FIXTURES = Path(__file__).parent / "fixtures"
SEINE = FIXTURES / "seine_sdr_gainmap_srgb.jpg"
PARIS = FIXTURES / "paris_exif_xmp_icc_gainmap_bigendian.jpg"
NS = 'xmlns:hdrgm="http://ns.adobe.com/hdr-gain-map/1.0/"'


def packet(**values) -> bytes:
    attrs = " ".join(f'hdrgm:{k}="{v}"' for k, v in {"GainMapMax": 2, **values}.items())
    return f'<x:xmpmeta><rdf:Description {NS} hdrgm:Version="1.0" {attrs}/></x:xmpmeta>'.encode()


def variant(tmp_path, src: Path, old: bytes, new: bytes) -> Path:
    data = src.read_bytes()
    assert data.count(old) == 1
    path = tmp_path / src.name
    path.write_bytes(data.replace(old, new))
    return path


def test_parameters_that_make_no_map_are_refused():
    assert parse_hdrgm(packet()).max_log2 == (2.0,) * 3
    for bad, why in [
        ({"GainMapMax": "nan"}, "GainMapMax"),
        ({"OffsetSDR": "inf"}, "OffsetSDR"),
        ({"GainMapMax": 400}, "beyond 16 stops"),
        ({"Gamma": 0}, "gamma of 0"),
        ({"GainMapMin": 3}, "maximum gain below its minimum"),
        ({"OffsetHDR": -0.1}, "negative offset"),
        ({"HDRCapacityMax": 0}, "no HDR capacity"),
    ]:
        with pytest.raises(ValueError, match=why):
            parse_hdrgm(packet(**bad))


def test_the_map_is_turned_with_the_photo(tmp_path):
    entry = b"\x12\x01\x03\x00\x01\x00\x00\x00\x01\x00"  # EXIF orientation 1 (little-endian)
    turned = variant(tmp_path, PARIS, entry, entry[:8] + b"\x06\x00")  # 6: a quarter turn
    np.testing.assert_array_equal(read_ldr(turned), np.rot90(read_ldr(PARIS), -1))
    np.testing.assert_array_equal(jpeg_hdrgm_map(turned)[0], np.rot90(jpeg_hdrgm_map(PARIS)[0], -1))
    np.testing.assert_allclose(recorded_gain(turned), np.rot90(recorded_gain(PARIS), -1), rtol=1e-5)


def test_a_display_p3_photos_map_works_in_display_p3():
    """libultrahdr refuses the file; the fallback applies the map in the photo's own
    primaries (libavif's choice), not in the sRGB the photo is read into: on its own
    colours (Little CMS in float, where ``read_ldr`` converts at 8 bits: within 0.02 stops)."""
    photo = read_ldr(PARIS)
    gain, _ = READERS[ULTRA_HDR](PARIS, photo, None)  # before the mid-tone levelling
    lin = srgb_to_linear(photo)
    g, params = jpeg_hdrgm_map(PARIS)
    p3 = apply_hdrgm(lin, g, params, P3_TO_REC709)
    err = np.abs(np.log2(((lin + OFFSET) * gain) / (p3 + OFFSET)))
    assert np.median(err) < 0.001 and np.percentile(err, 99) < 0.005 and err.max() < 0.03
    assert np.abs(np.log2((p3 + OFFSET) / (apply_hdrgm(lin, g, params) + OFFSET))).max() > 0.02


def test_a_damaged_map_is_a_note_and_the_photo_is_reconstructed(tmp_path):
    mpf_count = b"\xb0\x02\x00\x07\x00\x00\x00\x20"  # MPF image list: 32 bytes, two images
    for count, why in (
        (b"\x00\x00\x00\x00", "not two images"),
        (b"\xff\xff\xff\xf0", "does not fit"),
    ):
        bad = variant(tmp_path, SEINE, mpf_count, mpf_count[:4] + count)
        with pytest.raises(ContainerError, match=why):
            mpf_images(bad.read_bytes())
        assert jpeg_hdrgm_map(bad) is None
    offset = b'hdrgm:OffsetSDR="0.015625"'
    bad = variant(tmp_path, SEINE, offset, offset.replace(b'"0.01', b'"-0.0'))
    with pytest.raises(InputError, match=r"seine_sdr_gainmap_srgb.jpg: .*negative offset"):
        jpeg_hdrgm_map(bad)
    photo = read_ldr(bad)
    with warnings.catch_warnings(record=True) as notes:
        warnings.simplefilter("always")
        assert gain_for(bad, photo.shape[:2], photo) is None
    assert [str(n.message).endswith("reconstructing from the photo alone") for n in notes] == [True]


def test_the_map_is_held_to_the_pixel_limit():
    g, _ = jpeg_hdrgm_map(SEINE)
    with pytest.raises(InputError, match=r"400x300 = 0.12 MP, above the 0.1 MP limit"):
        jpeg_hdrgm_map(SEINE, max_pixels=100_000)
    assert g.shape == (300, 400, 3)


def test_a_jpeg_whose_photo_is_the_hdr_rendition_says_so(tmp_path):
    base = b'hdrgm:BaseRenditionIsHDR="False"'
    bad = variant(tmp_path, SEINE, base, base.replace(b"False", b"True "))
    with pytest.raises(InputError, match="its photo is the HDR rendition"):
        jpeg_hdrgm_map(bad)
