"""Photos that record their own highlights (mlx_hdr/io/uhdr_input.py, infer/recorded.py): an
Ultra HDR JPEG's rendition read back, oriented like its photo, kept where it is measured and
extended by the reconstruction only where it is cut; the CLI's notes and fallbacks."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from mlx_hdr.color import linear_to_srgb, rgb_to_luminance, srgb_to_linear
from mlx_hdr.infer.recorded import KEPT, SATURATION, gain_for, recorded_hdr, with_recorded
from mlx_hdr.io.image_io import read_hdr, read_ldr
from mlx_hdr.io.photo_meta import ORIENTATION
from mlx_hdr.io.uhdr import encode_uhdr
from mlx_hdr.io.uhdr_input import recorded_gain

HEADROOM = 4.0  # the phone keeps two stops above white


def scene(h: int = 96, w: int = 128) -> np.ndarray:
    """Scene-linear truth, 1.0 = the photo's white: a ramp and two lights, at 2.5x and 16x."""
    x = np.linspace(0.05, 0.8, w, dtype=np.float32)
    hdr = np.repeat(np.repeat(x[None, :, None], h, 0), 3, 2) * np.float32([1.0, 0.9, 0.8])
    yy, xx = np.mgrid[:h, :w]
    hdr[(yy - 30) ** 2 + (xx - 30) ** 2 < 12**2] = 2.5
    hdr[(yy - 60) ** 2 + (xx - 95) ** 2 < 14**2] = 16.0
    return hdr


def phone_jpeg(path, hdr: np.ndarray, exif: bytes | None = None) -> np.ndarray:
    """An Ultra HDR JPEG at ``path``: the clipped photo of ``hdr`` as base, ``hdr`` cut at
    ``HEADROOM`` as rendition. Returns the photo (display [0, 1])."""
    ldr = linear_to_srgb(np.clip(hdr, 0.0, 1.0))
    data, _ = encode_uhdr(ldr, np.minimum(hdr, HEADROOM), exif)
    path.write_bytes(data)
    return ldr


def lights(hdr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return hdr[28:33, 28:33], hdr[57:63, 92:98]


def test_recorded_rendition_reads_back(tmp_path):
    hdr = scene()
    phone_jpeg(tmp_path / "p.jpg", hdr)
    ldr = read_ldr(tmp_path / "p.jpg")
    rec = recorded_hdr(ldr, recorded_gain(tmp_path / "p.jpg"))
    dim, bright = lights(rec)
    assert abs(np.log2(np.median(dim) / 2.5)) < 0.1  # measured, under the headroom
    assert abs(np.log2(np.median(bright) / HEADROOM)) < 0.1  # cut at it
    assert abs(np.log2(np.median(rec[40:50, 60:70]) / np.median(hdr[40:50, 60:70]))) < 0.05


def test_no_gain_map_is_none(tmp_path):
    Image.new("RGB", (16, 8), (200, 100, 50)).save(tmp_path / "plain.jpg")
    assert recorded_gain(tmp_path / "plain.jpg") is None
    assert gain_for(tmp_path / "plain.jpg", (8, 16)) is None


def test_gain_follows_the_exif_rotation(tmp_path):
    hdr = scene()
    exif = Image.Exif()
    exif[ORIENTATION] = 6  # shown turned 90 degrees clockwise
    phone_jpeg(tmp_path / "r.jpg", hdr, exif.tobytes())
    ldr = read_ldr(tmp_path / "r.jpg")
    assert ldr.shape == (128, 96, 3)
    rec = recorded_hdr(ldr, recorded_gain(tmp_path / "r.jpg"))
    truth = np.minimum(np.rot90(hdr, k=-1), HEADROOM)  # orientation 6: turned clockwise
    err = np.abs(np.log2((rec + 1 / 64) / (truth + 1 / 64)))
    assert np.median(err) < 0.05 and np.percentile(err, 95) < 0.3


def test_with_recorded_extends_only_where_the_recording_is_cut():
    hdr = scene()
    ldr = linear_to_srgb(np.clip(hdr, 0.0, 1.0))
    lin = srgb_to_linear(ldr)
    rec = np.minimum(hdr, HEADROOM)
    gain = (rec + 1 / 64) / (lin + 1 / 64)
    guess = np.where(hdr >= 1.0, 10.0, lin).astype(np.float32)  # a bold reconstruction
    out = with_recorded(ldr, guess, gain)
    dim, bright = lights(out)
    assert np.allclose(dim, 2.5, rtol=1e-3)  # measured below the headroom: kept
    assert np.allclose(bright, 10.0, rtol=1e-3)  # cut at it: the reconstruction
    assert np.allclose(out[40:50, 60:70], rec[40:50, 60:70], rtol=1e-3)
    timid = np.where(hdr >= 1.0, 1.5, lin).astype(np.float32)
    dim, bright = lights(with_recorded(ldr, timid, gain))
    assert np.allclose(bright, HEADROOM, rtol=1e-3)  # never below what was recorded
    assert np.allclose(dim, 2.5, rtol=1e-3)


def test_cut_ramp_spans_saturation():
    ldr = np.ones((1, 3, 3), np.float32)
    top = 2.0
    gain = np.exp2(np.float32([top, top - SATURATION / 2, top - SATURATION]))
    gain = np.repeat(gain[None, :, None], 3, 2)
    rec = recorded_hdr(ldr, gain)
    out = with_recorded(ldr, rec + 8.0, gain)
    lifted = rgb_to_luminance(out - rec)[0]
    np.testing.assert_allclose(lifted, [8.0, 4.0, 0.0], atol=1e-4)


def test_undecodable_gain_map_falls_back_with_a_note(tmp_path):
    xmp = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF><rdf:Description hdrgm:Version="1.0"/>'
    buf = io.BytesIO()
    Image.new("RGB", (32, 24), (250, 250, 250)).save(buf, "JPEG", xmp=xmp + b"</x:xmpmeta>")
    (tmp_path / "f.jpg").write_bytes(buf.getvalue())
    with pytest.warns(UserWarning) as rec:
        assert gain_for(tmp_path / "f.jpg", (24, 32)) is None
    assert len(rec) == 1
    msg = str(rec[0].message)
    assert msg.startswith(f"{tmp_path / 'f.jpg'}: its HDR gain map cannot be decoded (")
    assert msg.endswith("; reconstructing from the photo alone") and "\n" not in msg


def test_cli_keeps_a_phone_photos_highlights(cli, recwarn, tmp_path):
    hdr = scene()
    phone_jpeg(tmp_path / "phone.jpg", hdr)
    code, _, err = cli("predict", tmp_path / "phone.jpg", "-o", tmp_path / "a.hdr")
    assert code == 0, err
    notes = [str(w.message) for w in recwarn]
    assert notes == [f"{tmp_path / 'phone.jpg'}: {KEPT}"]
    dim, bright = lights(read_hdr(tmp_path / "a.hdr"))
    assert abs(np.log2(np.median(dim) / 2.5)) < 0.1
    assert np.median(bright) >= HEADROOM * 0.95
    code, _, err = cli(
        *("predict", tmp_path / "phone.jpg", "-o", tmp_path / "b.hdr"), "--no-input-gain-map"
    )
    assert code == 0, err
    assert "reconstructing anyway" in str(recwarn[-1].message)
    dim, _ = lights(read_hdr(tmp_path / "b.hdr"))
    assert abs(np.log2(np.median(dim) / 2.5)) > 0.2  # a guess from the photo alone


def test_cli_downscaled_photo_takes_the_gain_at_its_size(cli, recwarn, tmp_path):
    phone_jpeg(tmp_path / "phone.jpg", scene())
    code, _, err = cli(
        *("predict", tmp_path / "phone.jpg", "-o", tmp_path / "s.hdr"), "--max-size", "64"
    )
    assert code == 0, err
    out = read_hdr(tmp_path / "s.hdr")
    assert out.shape == (48, 64, 3)
    assert abs(np.log2(np.median(out[14:16, 14:16]) / 2.5)) < 0.15  # the 2.5x light, halved


def test_cli_notes_an_undecodable_gain_map_once(cli, recwarn, tmp_path):
    xmp = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF><rdf:Description hdrgm:Version="1.0"/>'
    Image.new("RGB", (32, 24), (250, 250, 250)).save(
        tmp_path / "f.jpg", "JPEG", xmp=xmp + b"</x:xmpmeta>"
    )
    code, _, err = cli(
        "predict", tmp_path / "f.jpg", "-o", tmp_path / "f.hdr", "--method", "linear"
    )
    assert code == 0, err
    notes = [str(w.message) for w in recwarn]
    assert len(notes) == 1 and "its HDR gain map cannot be decoded" in notes[0], notes
    assert read_hdr(tmp_path / "f.hdr").shape == (24, 32, 3)


def test_an_iso_21496_only_file_is_read_too(tmp_path):
    hdr = scene()
    phone_jpeg(tmp_path / "p.jpg", hdr)
    data = (tmp_path / "p.jpg").read_bytes()
    iso_only = data.replace(b"http://ns.adobe.com/xap/1.0/", b"http://ns.adobe.com/xxx/1.0/")
    iso_only = iso_only.replace(b"hdrgm:Version", b"hdrgm:Vxxxxxx")  # same lengths: no XMP
    assert b"hdrgm:Version" not in iso_only and b"urn:iso:std:iso:ts:21496:-1" in iso_only
    (tmp_path / "iso.jpg").write_bytes(iso_only)
    ldr = read_ldr(tmp_path / "iso.jpg")
    dim, bright = lights(recorded_hdr(ldr, recorded_gain(tmp_path / "iso.jpg")))
    assert abs(np.log2(np.median(dim) / 2.5)) < 0.1
    assert abs(np.log2(np.median(bright) / HEADROOM)) < 0.1
