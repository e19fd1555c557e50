"""An AVIF's ISO 21496-1 gain map (mlx_hdr/io/avif_gainmap.py), on libavif's test images
(``fixtures/seine_*.avif``, BSD-2): ``seine_sdr_gainmap_srgb.avif`` is an SDR photo with a
gain map made from the HDR ``seine_hdr_srgb.avif`` (10-bit PQ), which libavif's own test
requires its full-boost rendition to match at 40 dB or more (PSNR over the YUV planes)."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mlx_hdr.color import srgb_to_linear
from mlx_hdr.errors import InputError
from mlx_hdr.infer.recorded import KEPT, recorded_hdr
from mlx_hdr.io.avif_gainmap import (
    AVIF_GAIN_MAP,
    avif_gain_map,
    item_data,
    one_item_avif,
    parse_meta,
    parse_tmap,
)
from mlx_hdr.io.hdrgm_read import apply_hdrgm
from mlx_hdr.io.image_io import read_hdr, read_ldr
from mlx_hdr.io.photo_meta import ULTRA_HDR, existing_gain_map
from mlx_hdr.io.uhdr_input import recorded_gain

FIXTURES = Path(__file__).parent / "fixtures"
SDR = FIXTURES / "seine_sdr_gainmap_srgb.avif"
HDR = FIXTURES / "seine_hdr_srgb.avif"
SDR_WHITE_NITS = 203.0  # libavif's level of the SDR white in a PQ rendition


def tmap(channels=1, version=0, minimum=0, writer=0, extra=b"", gamma=(1, 1)) -> bytes:
    """ISO 21496-1 metadata: min -0.5, max 2 (+0.5 per channel), base/alternate offsets
    1/64 and 1/32, headrooms 0 and 2."""
    head = struct.pack(
        ">BHHB4I", version, minimum, writer, 0x80 if channels == 3 else 0, 0, 1, 2, 1
    )
    body = b"".join(
        struct.pack(">iIiIIIiIiI", -1, 2, 4 + c, 2, *gamma, 1, 64, 1, 32) for c in range(channels)
    )
    return head + body + extra


def test_metadata_is_read_as_libavif_reads_it():
    params, base, alternate = parse_tmap(tmap())
    assert (base, alternate) == (0.0, 2.0)
    assert params.min_log2 == (-0.5,) * 3 and params.max_log2 == (2.0,) * 3
    assert params.offset_sdr == (1 / 64,) * 3 and params.offset_hdr == (1 / 32,) * 3
    assert parse_tmap(tmap(channels=3))[0].max_log2 == (2.0, 2.5, 3.0)
    assert parse_tmap(tmap(writer=1, extra=b"future"))[0].gamma == (1.0,) * 3  # newer writer
    for bad, why in [
        (tmap(version=1), "version"),
        (tmap(minimum=1), "version"),
        (tmap(extra=b"x"), "left over"),  # a version-0 writer has nothing more to say
        (tmap()[:30], "cut short"),
        (tmap(gamma=(0, 1)), "gamma"),
        (tmap(gamma=(1, 0)), "zero denominator"),
    ]:
        with pytest.raises(ValueError, match=why):
            parse_tmap(bad)


def test_an_item_rewrapped_decodes_as_the_file_does(tmp_path):
    """The primary item taken out and wrapped alone decodes to the photo itself: the parser
    finds the item's data and properties, the wrapper is a valid AVIF."""
    data = SDR.read_bytes()
    meta = parse_meta(data)
    assert meta.types[meta.primary] == b"av01" and b"tmap" in meta.brands
    props = [(meta.props[i - 1], e) for i, e in meta.assoc[meta.primary]]
    alone = one_item_avif(item_data(data, meta, meta.primary), props)
    path = tmp_path / "alone.avif"
    path.write_bytes(alone)
    np.testing.assert_array_equal(read_ldr(path), read_ldr(SDR))


def test_the_rendition_matches_the_hdr_the_map_was_made_from():
    imagecodecs = pytest.importorskip("imagecodecs")
    assert existing_gain_map(SDR) == AVIF_GAIN_MAP
    photo = read_ldr(SDR)
    g, params = avif_gain_map(SDR)
    assert g.shape == photo.shape and 0.0 <= g.min() < g.max() <= 1.0
    hdr = apply_hdrgm(srgb_to_linear(photo), g, params)  # full boost, 1.0 = the SDR white
    pq = imagecodecs.avif_decode(HDR.read_bytes()).astype(np.float64) / 1023.0
    m1, m2, c1, c2, c3 = 0.1593017578125, 78.84375, 0.8359375, 18.8515625, 18.6875
    p = pq ** (1 / m2)
    truth = 1e4 * (np.maximum(p - c1, 0) / (c2 - c3 * p)) ** (1 / m1) / SDR_WHITE_NITS
    ratio = np.log2((hdr + 1 / 64) / (truth + 1 / 64))
    assert abs(np.median(ratio)) < 0.02  # measured 0.005
    assert np.log2(hdr.max()) > 1.0  # the highlights go above the photo's white
    y = np.clip(hdr * SDR_WHITE_NITS / 1e4, 0, 1) ** m1
    psnr = -10 * np.log10(np.mean((((c1 + c2 * y) / (1 + c3 * y)) ** m2 - pq) ** 2))
    assert psnr > 39.0, psnr  # in RGB 39.7 dB (libavif asks 40 or more over Y, U and V)
    # what predict keeps: the same rendition, levelled to the photo's mid-tones
    kept = recorded_hdr(photo, recorded_gain(SDR))
    level = np.median((hdr + 1 / 64) / (kept + 1 / 64))  # uhdr_input: gain over (lin + 1/64)
    expected = np.maximum((hdr + 1 / 64) / level - 1 / 64, 0.0)
    np.testing.assert_allclose(kept, expected, rtol=1e-4, atol=1e-5)


def test_a_file_without_the_brand_or_with_a_grid_map(tmp_path):
    data = SDR.read_bytes()
    nobrand = tmp_path / "nobrand.avif"
    nobrand.write_bytes(data.replace(b"MA1Atmap", b"MA1Amiaf", 1))
    assert existing_gain_map(nobrand) is None  # as libavif: the tmap item is not read
    grid = tmp_path / "grid.avif"
    grid.write_bytes(data.replace(b"\x00\x03\x00\x00av01GMap", b"\x00\x03\x00\x00gridGMap", 1))
    assert existing_gain_map(grid) == AVIF_GAIN_MAP
    with pytest.raises(InputError, match=r"grid\.avif: .*'grid' item, not one AV1 image"):
        avif_gain_map(grid)


def test_predict_keeps_an_avifs_recorded_highlights(cli, tmp_path, recwarn):
    code, _, err = cli("predict", SDR, "-o", tmp_path / "out", "--method", "linear")
    assert code == 0, err
    notes = [str(w.message) for w in recwarn] + err.splitlines()
    assert any(f"{SDR}: {KEPT}" in n for n in notes), notes
    out = read_hdr(tmp_path / "out" / f"{SDR.stem}.hdr")
    assert out.max() > 2.0  # the recorded highlights, where the linear method alone gives 1
    with Image.open(SDR) as im:
        assert out.shape[:2] == (im.height, im.width)


def test_an_adobe_gain_map_jpeg_that_libultrahdr_refuses_reads_as_its_avif_twin():
    """libavif made the AVIF from Adobe Camera Raw's gain-map JPEG (``fixtures/
    seine_sdr_gainmap_srgb.jpg``), which libultrahdr refuses ("could not find attribute
    hdrgm:Version"): read by its map's hdrgm XMP, it gives the AVIF's rendition."""
    imagecodecs = pytest.importorskip("imagecodecs")
    jpeg = FIXTURES / "seine_sdr_gainmap_srgb.jpg"
    with pytest.raises(Exception, match="hdrgm:Version"):
        imagecodecs.ultrahdr_decode(jpeg.read_bytes())
    assert existing_gain_map(jpeg) == ULTRA_HDR
    ratio = np.log2(recorded_gain(jpeg) / recorded_gain(SDR))
    assert abs(np.median(ratio)) < 0.005 and np.percentile(abs(ratio), 99) < 0.05  # 0.013
    assert np.log2(recorded_gain(jpeg).max()) > 1.0
