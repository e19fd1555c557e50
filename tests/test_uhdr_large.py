"""Gain-map JPEGs larger than libultrahdr takes (8192 px a side, a limit of its build):
libultrahdr assembles small stand-ins and the real images are put in their place
(``uhdr.assemble_any_size``, ``hdrgm.transplant``). Photos of 45-MP and larger cameras are
wider (Nikon Z8: 8256 px, Sony A7R V: 9504)."""

from __future__ import annotations

import io

import imagecodecs
import numpy as np
import pytest
from PIL import Image

from mlx_hdr.infer.recorded import recorded_hdr
from mlx_hdr.io.hdrgm import ContainerError, mpf_images, transplant
from mlx_hdr.io.hdrgm_read import jpeg_hdrgm_map
from mlx_hdr.io.libuhdr import GainMapMetadata, LibraryUnavailable, assemble, library
from mlx_hdr.io.photo_meta import ULTRA_HDR, existing_gain_map
from mlx_hdr.io.uhdr import MAX_SIDE, _stand_in, encode_base, encode_uhdr
from mlx_hdr.io.uhdr_input import recorded_gain

try:
    library()
except LibraryUnavailable:
    pytest.skip("libultrahdr cannot be called directly here", allow_module_level=True)


def jpeg(pixels: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "JPEG", quality=90)
    return buf.getvalue()


@pytest.mark.parametrize("exif", [False, True])
@pytest.mark.parametrize("p3", [False, True])
@pytest.mark.parametrize("grey_map", [False, True])
def test_the_stand_ins_give_libultrahdrs_own_file_byte_for_byte(exif, p3, grey_map):
    """With or without the camera's EXIF (libultrahdr moves it in front), a Display P3 base
    with its profile, a grey or a colour map."""
    from test_icc import P3_COLORANTS, matrix_trc_icc

    from mlx_hdr.io.libuhdr import UHDR_CG_BT_709, UHDR_CG_DISPLAY_P3
    from mlx_hdr.io.native import P3_FROM_REC709, NativeBase

    rng = np.random.default_rng(0)
    ldr = rng.random((32, 48, 3)).astype(np.float32)
    tags = Image.Exif()
    tags[0x0112], tags[0x010F] = 6, "Nikon"
    native = NativeBase(
        (ldr * 255).astype(np.uint8), matrix_trc_icc(P3_COLORANTS, 2.2, "P3"), P3_FROM_REC709
    )
    base = encode_base(ldr, tags.tobytes() if exif else None, native if p3 else None)
    gamut = UHDR_CG_DISPLAY_P3 if p3 else UHDR_CG_BT_709
    gain_map = jpeg((rng.random((16, 24) if grey_map else (16, 24, 3)) * 255).astype(np.uint8))
    meta = GainMapMetadata(1.0, 4.0, capacity_max=4.0)
    small = (_stand_in(base), _stand_in(gain_map))
    direct = assemble(base, gain_map, meta, gamut)
    assert transplant(assemble(*small, meta, gamut), small, (base, gain_map)) == direct
    with pytest.raises(ContainerError, match="not the ones given"):
        transplant(assemble(*small, meta, gamut), (base, gain_map), (base, gain_map))


def test_iso_metadata_with_one_common_denominator_is_read():
    """libultrahdr writes ISO 21496-1's use_common_denominator form (flag 0x08) where every
    denominator is equal, here with offsets of 0."""
    from mlx_hdr.io.hdrgm import APP2, segments
    from mlx_hdr.io.hdrgm_read import ISO_NS, parse_tmap

    rng = np.random.default_rng(3)
    base = encode_base(rng.random((16, 24, 3)).astype(np.float32))
    gain_map = jpeg((rng.random((16, 24, 3)) * 255).astype(np.uint8))
    for meta, flags in [
        (GainMapMetadata(1.0, 4.0, offset_sdr=0.0, offset_hdr=0.0, capacity_max=4.0), 0x48),
        (GainMapMetadata(1.0, 4.0, capacity_max=4.0), 0x40),
    ]:
        out = assemble(base, gain_map, meta)
        start = mpf_images(out)[1][1].start
        (payload,) = [
            out[s + 4 + len(ISO_NS) : e]
            for m, s, e in segments(out, start)
            if m == APP2 and out[s + 4 : e].startswith(ISO_NS)
        ]
        assert payload[4] == flags
        tmap = parse_tmap(b"\0" + payload)
        assert tmap.params.max_log2 == pytest.approx((2.0,) * 3, abs=1e-6)
        assert tmap.params.offset_sdr == (meta.offset_sdr,) * 3
        assert (tmap.base_headroom, tmap.alternate_headroom) == pytest.approx((0.0, 2.0), abs=1e-6)


def test_a_photo_wider_than_libultrahdr_takes_gets_its_gain_map_jpeg(tmp_path):
    """8300 px wide: written whole, read back (libultrahdr refuses to decode it too; the
    file's hdrgm XMP is read instead) to the rendition it was made from."""
    rng = np.random.default_rng(1)
    w = MAX_SIDE + 108
    ldr = np.clip(rng.random((24, w, 3)) * 0.3 + np.linspace(0.2, 1.2, w)[None, :, None], 0, 1)
    ldr = ldr.astype(np.float32)
    hdr = (ldr**2.2 * np.where(ldr >= 1.0, 3.0, 1.0)).astype(np.float32)  # the clipped end x3
    data, meta = encode_uhdr(ldr, hdr)
    path = tmp_path / "wide_uhdr.jpg"
    path.write_bytes(data)
    images = mpf_images(data)[1]
    assert [im.start for im in images] == [0, images[0].size] and sum(
        im.size for im in images
    ) == len(data)
    with Image.open(path) as im:
        assert im.size == (w, 24)
    assert existing_gain_map(path) == ULTRA_HDR
    photo = np.asarray(Image.open(path).convert("RGB"), np.float32) / 255
    rendition = recorded_hdr(photo, recorded_gain(path, photo))
    error = np.abs(np.log2((rendition + 1 / 64) / (hdr + 1 / 64)))
    bright = ldr.max(axis=-1) >= 1.0
    assert bright.sum() > 100 and meta.max_boost > 2.5
    assert np.median(error) < 0.05 and np.median(error[bright]) < 0.1  # the x3 highlights kept


def test_a_large_file_with_iso_21496_1_metadata_alone_is_read(tmp_path):
    """Without the hdrgm XMP (ISO 21496-1 only, as newer writers may), a file libultrahdr
    refuses is read by its gain-map image's ISO segment: the same rendition."""
    from mlx_hdr.io.hdrgm import XMP_NS, segments

    rng = np.random.default_rng(2)
    w = MAX_SIDE + 8
    ldr = np.clip(rng.random((16, w, 3)) * 0.3 + np.linspace(0.2, 1.2, w)[None, :, None], 0, 1)
    hdr = (ldr**2.2 * np.where(ldr >= 1.0, 3.0, 1.0)).astype(np.float32)
    data, _ = encode_uhdr(ldr.astype(np.float32), hdr)
    both, iso_only = tmp_path / "both.jpg", tmp_path / "iso.jpg"
    both.write_bytes(data)
    gm = mpf_images(data)[1][1].start
    xmp = [(s, e) for m, s, e in segments(data, gm) if data[s + 4 : s + 4 + len(XMP_NS)] == XMP_NS]
    ((s, e),) = xmp
    iso_only.write_bytes(
        data[:s] + b"\xff\xfe" + (e - s - 2).to_bytes(2, "big") + bytes(e - s - 4) + data[e:]
    )
    photo = np.asarray(Image.open(both).convert("RGB"), np.float32) / 255
    with pytest.raises(imagecodecs.UltrahdrError, match="8192"):  # refused: the fallback reads it
        imagecodecs.ultrahdr_decode(iso_only.read_bytes())
    assert jpeg_hdrgm_map(iso_only) is not None
    np.testing.assert_allclose(
        recorded_gain(iso_only, photo), recorded_gain(both, photo), rtol=1e-4
    )
