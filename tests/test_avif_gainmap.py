"""An AVIF's ISO 21496-1 gain map (mlx_hdr/io/avif_gainmap.py), on libavif's test images
(``fixtures/seine_*.avif``, BSD-2): ``seine_sdr_gainmap_srgb.avif`` is an SDR photo with a
gain map; ``seine_hdr_srgb.avif`` is the HDR (10-bit PQ) of the same Photoshop edit, which
libavif's own test requires the full-boost rendition to match at 40 dB or more (PSNR over
the YUV planes)."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mlx_hdr.color import srgb_to_linear
from mlx_hdr.errors import InputError
from mlx_hdr.infer.recorded import KEPT, recorded_hdr
from mlx_hdr.io.avif_gainmap import AVIF_GAIN_MAP, avif_gain_map, parse_tmap
from mlx_hdr.io.hdrgm_read import apply_hdrgm
from mlx_hdr.io.image_io import read_hdr, read_ldr
from mlx_hdr.io.isobmff import boxes, item_data, make_box, one_item_avif, parse_meta
from mlx_hdr.io.photo_meta import ULTRA_HDR, existing_gain_map
from mlx_hdr.io.uhdr_input import recorded_gain

FIXTURES = Path(__file__).parent / "fixtures"
SDR = FIXTURES / "seine_sdr_gainmap_srgb.avif"
HDR = FIXTURES / "seine_hdr_srgb.avif"
SDR_WHITE_NITS = 203.0  # libavif's level of the SDR white in a PQ rendition


def tmap(
    channels=1, version=0, minimum=0, writer=0, extra=b"", gamma=(1, 1), base=0, top=(4, 2)
) -> bytes:
    """ISO 21496-1 metadata: min -0.5, max ``top`` (2; +0.5 per channel), base/alternate
    offsets 1/64 and 1/32, headrooms 0 and 2; ``base``: the use_base_colour_space bit."""
    flags = (0x80 if channels == 3 else 0) | (0x40 if base else 0)
    head = struct.pack(">BHHB4I", version, minimum, writer, flags, 0, 1, 2, 1)
    body = b"".join(
        struct.pack(">iIiIIIiIiI", -1, 2, top[0] + c, top[1], *gamma, 1, 64, 1, 32)
        for c in range(channels)
    )
    return head + body + extra


def test_metadata_is_read_as_libavif_reads_it():
    info = parse_tmap(tmap())
    params = info.params
    assert (info.base_headroom, info.alternate_headroom) == (0.0, 2.0)
    assert params.min_log2 == (-0.5,) * 3 and params.max_log2 == (2.0,) * 3
    assert params.offset_sdr == (1 / 64,) * 3 and params.offset_hdr == (1 / 32,) * 3
    assert not info.use_base_colour_space and parse_tmap(tmap(base=1)).use_base_colour_space
    assert parse_tmap(tmap(channels=3)).params.max_log2 == (2.0, 2.5, 3.0)
    assert parse_tmap(tmap(writer=1, extra=b"future")).params.gamma == (1.0,) * 3  # newer
    for bad, why in [
        (tmap(version=1), "version"),
        (tmap(minimum=1), "version"),
        (tmap(extra=b"x"), "left over"),  # a version-0 writer has nothing more to say
        (tmap()[:30], "cut short"),
        (tmap(gamma=(0, 1)), "gamma"),
        (tmap(gamma=(1, 0)), "zero denominator"),
        (tmap(top=(-2, 1)), "maximum gain below its minimum"),
        (tmap(top=(2**31 - 1, 1)), "beyond 16 stops"),  # else 2^(2^31): inf, a black HDR
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
    g, params, to709 = avif_gain_map(SDR)
    assert to709 is None  # the map works in the photo's BT.709
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


@pytest.mark.parametrize("no_map", [False, True])
def test_a_map_libavif_refuses_leaves_the_photo_readable(cli, tmp_path, recwarn, no_map):
    # libavif refuses a whole file whose tmap holds a zero denominator: the photo had failed,
    # even with --no-input-gain-map, where the README promises a fallback to it
    data = SDR.read_bytes()
    meta = parse_meta(data)
    payload = item_data(data, meta, next(i for i, k in meta.types.items() if k == b"tmap"))
    assert data.count(payload) == 1
    bad = tmp_path / "zeros.avif"
    bad.write_bytes(data.replace(payload, payload[:6] + bytes(len(payload) - 6)))
    np.testing.assert_array_equal(read_ldr(bad), read_ldr(SDR))
    args = ["--no-input-gain-map"] if no_map else []
    code, _, err = cli("predict", bad, "-o", tmp_path / "out", "--method", "linear", *args)
    assert code == 0 and "Traceback" not in err, err
    notes = [str(w.message) for w in recwarn] + err.splitlines()
    if not no_map:
        assert any("its HDR gain map cannot be decoded" in n for n in notes), notes
    assert (tmp_path / "out" / "zeros.hdr").is_file()


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


def rebuilt(data: bytes, props=(), on=(), drop=()) -> bytes:
    """``data`` with its ``meta`` box written again: the property boxes ``props`` added and
    associated (essential) with the items ``on``, the child boxes of types ``drop`` left
    out, every item's data offset moved by the change in the box's size."""
    meta = parse_meta(data)
    assoc = {k: list(v) for k, v in meta.assoc.items()}
    for item in on:
        assoc[item] += [(len(meta.props) + k + 1, True) for k in range(len(props))]
    entries = [
        struct.pack(">HB", i, len(a)) + bytes(n | e << 7 for n, e in a) for i, a in assoc.items()
    ]
    ipma = make_box(b"ipma", struct.pack(">I", len(assoc)) + b"".join(entries), 0)
    iprp = make_box(b"iprp", make_box(b"ipco", b"".join([*meta.props, *props])) + ipma)
    start, payload, end = next(
        (a, s, e) for k, a, s, e in boxes(data, 0, len(data)) if k == b"meta"
    )
    assert all(method == 0 for method, _ in meta.extents.values())

    def meta_box(shift: int) -> bytes:
        ext = [(i, e) for i, (_, e) in sorted(meta.extents.items())]
        iloc = (
            b"\x44\0"
            + struct.pack(">H", len(ext))
            + b"".join(
                struct.pack(">HHH", i, 0, len(e))
                + b"".join(struct.pack(">II", o + shift, n) for o, n in e)
                for i, e in ext
            )
        )
        new = {b"iprp": iprp, b"iloc": make_box(b"iloc", iloc, 0)}
        kept = [
            new.get(k, data[a:e]) for k, a, _, e in boxes(data, payload + 4, end) if k not in drop
        ]
        return make_box(b"meta", b"".join(kept), 0)

    shift = len(meta_box(0)) - (end - start)
    return data[:start] + meta_box(shift) + data[end:]


@pytest.mark.parametrize("turn", [1, 3])
def test_a_turned_photos_map_is_turned_with_it(tmp_path, turn):
    """irot on the photo and on its map, as libavif writes a turned photo: Pillow turns the
    photo by its EXIF-style orientation; the map, decoded unturned, is turned the same."""
    path = tmp_path / "turned.avif"
    path.write_bytes(rebuilt(SDR.read_bytes(), [make_box(b"irot", bytes([turn]))], on=(1, 3)))
    photo = read_ldr(path)
    np.testing.assert_array_equal(photo, np.rot90(read_ldr(SDR), turn))
    np.testing.assert_allclose(avif_gain_map(path)[0], np.rot90(avif_gain_map(SDR)[0], turn))


def test_without_its_altr_group_the_map_is_not_read(tmp_path):
    path = tmp_path / "no_altr.avif"
    path.write_bytes(rebuilt(SDR.read_bytes(), drop=(b"grpl",)))
    assert existing_gain_map(path) is None  # as libavif: not an alternative to the photo
    np.testing.assert_array_equal(read_ldr(path), read_ldr(SDR))


def test_a_map_above_the_pixel_limit_is_refused_on_one_line():
    from mlx_hdr.infer.recorded import gain_for

    limit = r"400x300 = 0.12 MP, above the 0.1 MP limit; see --max-pixels"
    with pytest.raises(InputError, match=limit):
        avif_gain_map(SDR, max_pixels=100_000)
    photo = read_ldr(SDR)
    with pytest.warns(UserWarning, match=limit):
        assert gain_for(SDR, photo.shape[:2], photo, max_pixels=100_000) is None
    with pytest.warns(UserWarning, match="records its own highlights"):
        assert gain_for(SDR, photo.shape[:2], photo, max_pixels=200_000) is not None


def test_a_map_made_in_other_primaries_works_in_them():
    """ISO 21496-1 with use_base_colour_space clear: the map works in the primaries of the
    tmap item's colour property; the photo is taken into them and the rendition back."""
    from mlx_hdr.color import rgb_to_rec709_matrix
    from mlx_hdr.io.hdrgm_read import HdrgmParams
    from mlx_hdr.io.heic import CICP_PRIMARIES as PRIMARIES

    rng = np.random.default_rng(0)
    sdr, g = rng.random((4, 5, 3), np.float32), rng.random((4, 5, 3), np.float32)
    m = rgb_to_rec709_matrix(PRIMARIES[9]).astype(np.float32)  # BT.2020 -> Rec.709
    p = HdrgmParams((0.0,) * 3, (2.0, 1.0, 0.5), (1.0,) * 3, (0.01,) * 3, (0.02,) * 3)
    wide = (sdr @ np.linalg.inv(m).T + 0.01) * np.exp2(g * np.float32([2.0, 1.0, 0.5])) - 0.02
    np.testing.assert_allclose(apply_hdrgm(sdr, g, p, m), np.maximum(wide @ m.T, 0), atol=1e-5)
    assert np.abs(apply_hdrgm(sdr, g, p, m) - apply_hdrgm(sdr, g, p)).max() > 0.01
    grey = HdrgmParams((0.0,) * 3, (2.0,) * 3, (1.0,) * 3, (0.01,) * 3, (0.01,) * 3)
    g1 = np.repeat(g[..., :1], 3, axis=-1)  # one gain for all channels: the same anywhere
    np.testing.assert_allclose(apply_hdrgm(sdr, g1, grey, m), apply_hdrgm(sdr, g1, grey), atol=1e-5)


@pytest.mark.parametrize("use_base", [False, True])
def test_the_map_works_in_the_primaries_the_file_names(tmp_path, use_base):
    """use_base_colour_space clear and the tmap item's nclx naming BT.2020: the map works in
    BT.2020; set: in the photo's BT.709 (no matrix), as libavif chooses."""
    from mlx_hdr.color import rgb_to_rec709_matrix
    from mlx_hdr.io.heic import CICP_PRIMARIES as PRIMARIES

    src = SDR.read_bytes()
    tmap_nclx = b"nclx\x00\x01\x00\x10"  # the tmap item's own: BT.709 primaries, PQ
    assert src.count(tmap_nclx) == 1
    data = bytearray(src.replace(tmap_nclx, b"nclx\x00\x09\x00\x10"))  # BT.2020
    offset = parse_meta(src).extents[2][1][0][0]  # item 2: the tmap item's metadata
    assert data[offset + 5] == 0xC0  # multichannel, use_base_colour_space set
    data[offset + 5] = 0xC0 if use_base else 0x80
    path = tmp_path / "bt2020.avif"
    path.write_bytes(bytes(data))
    to709 = avif_gain_map(path)[2]
    if use_base:
        assert to709 is None
    else:
        np.testing.assert_allclose(to709, rgb_to_rec709_matrix(PRIMARIES[9]), rtol=1e-6)


def test_a_ten_bit_avif_is_read_at_ten_bits(tmp_path):
    """Pillow's decoder gives 8 bits; a 10-bit AVIF is decoded by libavif at full precision,
    turned as Pillow reports its irot."""
    import imagecodecs

    ramp = np.linspace(0, 1023, 48 * 64).reshape(48, 64)
    ten = np.stack([ramp, ramp[::-1], np.full_like(ramp, 512)], -1).astype(np.uint16)
    data = imagecodecs.avif_encode(ten, 100, bitspersample=10, primaries=1, transfer=13, matrix=1)
    (tmp_path / "ten.avif").write_bytes(data)
    photo = read_ldr(tmp_path / "ten.avif")
    np.testing.assert_allclose(photo, ten / 1023.0, atol=3 / 1023)
    assert len(np.unique(np.round(photo[..., 0] * 1023))) > 900  # 8 bits hold 256
    turned = tmp_path / "turned.avif"
    turned.write_bytes(rebuilt(data, [make_box(b"irot", bytes([1]))], on=(1,)))
    np.testing.assert_array_equal(read_ldr(turned), np.rot90(photo, 1))


def test_an_animated_ten_bit_avif_gives_its_first_frame(tmp_path, recwarn):
    """libavif would decode every frame; read as Pillow reads an animation: the first
    frame (at 8 bits), with a note."""
    import imagecodecs

    frames = np.stack([np.full((48, 64, 3), v, np.uint16) for v in (100, 500, 900)])
    (tmp_path / "anim.avif").write_bytes(imagecodecs.avif_encode(frames, 100, bitspersample=10))
    photo = read_ldr(tmp_path / "anim.avif")
    assert photo.shape == (48, 64, 3) and abs(float(photo.mean()) - 100 / 1023) < 3 / 255
    assert any("holds 3 images; using the first" in str(w.message) for w in recwarn)
