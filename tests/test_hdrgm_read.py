"""Gain maps described by ``hdrgm`` XMP (mlx_hdr/io/hdrgm_read.py): the parameters parsed in
each XMP form, the rendition against libultrahdr's decode of the same JPEG, and a real Samsung
Galaxy S25 Ultra HEIC (``fixtures/galaxy_s25ultra.heic``, from pillow-heif's test images)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mlx_hdr.color import linear_to_srgb, rgb_to_luminance, srgb_to_linear
from mlx_hdr.io.hdrgm import mpf_images
from mlx_hdr.io.hdrgm_read import apply_hdrgm, parse_hdrgm, upsample_map
from mlx_hdr.io.heic import ANDROID_HDR
from mlx_hdr.io.image_io import read_ldr
from mlx_hdr.io.photo_meta import existing_gain_map
from mlx_hdr.io.uhdr import UhdrOptions, encode_uhdr
from mlx_hdr.io.uhdr_input import midtone_level, recorded_gain

GALAXY = Path(__file__).parent / "fixtures" / "galaxy_s25ultra.heic"
NS = 'xmlns:hdrgm="http://ns.adobe.com/hdr-gain-map/1.0/" xmlns:rdf="r"'


def packet(body: str) -> bytes:
    return f'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:Description {NS} {body}</x:xmpmeta>'.encode()


def test_parse_each_xmp_form():
    attrs = packet('hdrgm:GainMapMax="2.3" hdrgm:Gamma="2" hdrgm:OffsetSDR="0"/>')
    p = parse_hdrgm(b"junk" + packet('hdrgm:Version="1.0"/>') + attrs)
    assert p.max_log2 == (2.3,) * 3 and p.gamma == (2.0,) * 3 and p.offset_sdr == (0.0,) * 3
    assert p.min_log2 == (0.0,) * 3 and p.offset_hdr == (1 / 64,) * 3  # the defaults
    elems = packet(
        "><hdrgm:GainMapMax><rdf:Seq><rdf:li>1</rdf:li><rdf:li>2</rdf:li><rdf:li>3</rdf:li>"
        "</rdf:Seq></hdrgm:GainMapMax><hdrgm:GainMapMin>-0.5</hdrgm:GainMapMin></rdf:Description>"
    )
    p = parse_hdrgm(elems)
    assert p.max_log2 == (1.0, 2.0, 3.0) and p.min_log2 == (-0.5,) * 3
    assert parse_hdrgm(packet('hdrgm:Version="1.0"/>')) is None  # no parameters
    hdr_base = packet('hdrgm:GainMapMax="2" hdrgm:BaseRenditionIsHDR="True"/>')
    assert parse_hdrgm(hdr_base) is None
    with pytest.raises(ValueError):
        parse_hdrgm(packet('hdrgm:GainMapMax="2" hdrgm:Gamma="x"/>') + b"")
    two = "><hdrgm:GainMapMax><rdf:Seq><rdf:li>1</rdf:li><rdf:li>2</rdf:li></rdf:Seq>"
    with pytest.raises(ValueError):
        parse_hdrgm(packet(two + "</hdrgm:GainMapMax></rdf:Description>"))


@pytest.mark.parametrize("scale", [1, 4])
def test_rendition_matches_libultrahdr(scale):
    imagecodecs = pytest.importorskip("imagecodecs")
    h, w = 120, 160
    x = np.linspace(0.02, 0.9, w, dtype=np.float32)
    hdr = np.repeat(np.repeat(x[None, :, None], h, 0), 3, 2) * np.float32([1.0, 0.9, 0.8])
    yy, xx = np.mgrid[:h, :w]
    hdr[(yy - 60) ** 2 + (xx - 80) ** 2 < 25**2] = np.float32([6.0, 5.0, 4.0])
    data, _ = encode_uhdr(linear_to_srgb(np.clip(hdr, 0, 1)), hdr, opts=UhdrOptions(scale=scale))
    gm = mpf_images(data)[1][1]
    with Image.open(io.BytesIO(data[gm.start : gm.start + gm.size])) as im:
        g = np.asarray(im.convert("RGB"), np.float32) / 255.0
    base = imagecodecs.ultrahdr_decode(data, dtype=np.uint8)[..., :3] / 255.0
    ref = imagecodecs.ultrahdr_decode(data)[..., :3].astype(np.float32)
    ours = apply_hdrgm(srgb_to_linear(base), upsample_map(g, (w, h)), parse_hdrgm(data))
    rel = np.abs(ours / np.maximum(ref, 1e-3) - 1.0)
    assert np.median(rel) < 0.01
    r = np.hypot(yy - 60, xx - 80)
    steady = np.abs(r - 25) > 3 * scale  # 3 map pixels from the light's edge: interpolation
    np.testing.assert_allclose(ours[steady], ref[steady], rtol=0.03, atol=0.005)


def test_a_real_samsung_heic():
    assert existing_gain_map(GALAXY) == ANDROID_HDR
    gain = recorded_gain(GALAXY)
    photo = read_ldr(GALAXY)
    assert gain.shape == photo.shape == (1848, 4000, 3)
    assert midtone_level(gain, photo) == pytest.approx(1.0, abs=1e-3)  # scaled back
    y = rgb_to_luminance(photo)
    lift = rgb_to_luminance(gain)
    assert 2.0**-1.5 < lift.min() and lift.max() < 2.0**2.3  # GainMapMax 2.3 stops
    dark, mid, bright = (
        lift[(y >= lo) & (y < hi)].mean() for lo, hi in ((0, 0.3), (0.3, 0.5), (0.6, 1))
    )
    assert dark < mid < bright  # a low-contrast photo (peak 0.77): its map lifts the brightest most


def test_a_map_that_does_not_fit_the_photo_is_refused(monkeypatch):
    """A map turned otherwise than the photo (a HEIC's irot on one of them) is not
    stretched over it."""
    import mlx_hdr.io.hdrgm_read as hdrgm_read
    from mlx_hdr.errors import InputError

    real = hdrgm_read.aux_image
    stored, size = real(GALAXY, lambda kind: "hdrgainmap" in kind, "HDR gain map")
    turned = lambda *a: (np.ascontiguousarray(np.rot90(stored)), size)  # noqa: E731
    monkeypatch.setattr(hdrgm_read, "aux_image", turned)
    with pytest.raises(InputError, match=r"HDR gain map \(\d+x\d+\) does not fit the photo"):
        hdrgm_read.heic_hdrgm_map(GALAXY)
    tiny = np.zeros((26, 75), np.float32)  # a quarter of 101x300, rounded up: it fits
    monkeypatch.setattr(hdrgm_read, "aux_image", lambda *a: (tiny, (300, 101)))
    assert hdrgm_read.heic_hdrgm_map(GALAXY)[0].shape == (101, 300)


def test_a_display_p3_heics_map_works_in_display_p3(monkeypatch):
    """Samsung's HEIC is tagged Display P3: its map is worked in P3 on the photo's own
    colours, as libultrahdr works a P3 gain-map JPEG's (the arithmetic: test_native)."""
    import mlx_hdr.io.uhdr_input as uhdr_input
    from mlx_hdr.io.native import P3_TO_REC709

    seen = []
    monkeypatch.setattr(uhdr_input, "_hdrgm_recorded", lambda *a: seen.append(a[-1]) or a)
    uhdr_input._hdrgm_heic_recorded(GALAXY, None, None)
    assert seen[0] is P3_TO_REC709
