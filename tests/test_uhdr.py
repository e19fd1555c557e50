"""HDR outputs beside the EXR: the Ultra HDR gain-map JPEG (mlx_hdr/io/uhdr.py, libuhdr.py,
hdrgm.py) decoded by libultrahdr against the EXR of the same prediction, its base against the
photo, its metadata through exiftool, boosts, EXIF, bad cases, the CLI; the PQ AVIF (avif.py)."""

from __future__ import annotations

import io
import math
import re
import shutil
import subprocess
from pathlib import Path

import cv2
import imagecodecs
import numpy as np
import pytest
from PIL import Image

import mlx_hdr
from mlx_hdr.color import rgb_to_rec709_matrix, srgb_to_linear
from mlx_hdr.errors import HDRError
from mlx_hdr.infer.model_hub import load_net
from mlx_hdr.infer.pipeline import PredictOptions, predict_files
from mlx_hdr.io import libuhdr, uhdr
from mlx_hdr.io.avif import REC2020_CHROMATICITIES, REFERENCE_WHITE_NITS, pq_decode, pq_encode
from mlx_hdr.io.hdrgm import mpf_images
from mlx_hdr.io.image_io import read_hdr, read_ldr, to_uint8, write_ldr
from mlx_hdr.io.uhdr import UhdrOptions, encode_uhdr, gain_metadata

SAMPLE = Path(mlx_hdr.__file__).parent / "assets" / "sample.jpg"
ISO_NS = b"urn:iso:std:iso:ts:21496:-1"
XMP_NS = b"http://ns.adobe.com/xap/1.0/"
OFFSET = 1 / 64


def decode(data: bytes) -> np.ndarray:
    """libultrahdr's HDR rendition at full boost: HxWx3 float32, linear, 1.0 = SDR white."""
    return imagecodecs.ultrahdr_decode(data).astype(np.float32)[..., :3]


def stops(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.abs(np.log2((a + OFFSET) / (b + OFFSET)))


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory):
    """The bundled model on the sample photo, written as float EXR, gain-map JPEG and PQ AVIF
    at once."""
    out = tmp_path_factory.mktemp("uhdr")
    opts = PredictOptions(formats=("exr", "uhdr", "avif"), dtype="float")
    report = predict_files([str(SAMPLE)], out, load_net(None)[0], opts, progress=False)
    assert not report.failed and [p.name for p in report.written[0][1]] == [
        "sample.exr",
        "sample_uhdr.jpg",
        "sample.avif",
        "sample_preview.png",
    ]
    return out / "sample_uhdr.jpg", read_hdr(out / "sample.exr"), read_ldr(SAMPLE)


def regions(ldr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Highlights (a channel >= 0.95: the reconstruction's part) and unclipped pixels (more than
    16 px from any highlight: the gain map's JPEG blocks are 8 px)."""
    high = (ldr >= 0.95).any(axis=-1)
    return high, cv2.dilate(high.astype(np.uint8), np.ones((33, 33), np.uint8)) == 0


def test_decoded_hdr_matches_the_exr_per_region(sample_run):
    path, exr, ldr = sample_run
    decoded = decode(path.read_bytes())
    assert decoded.shape == exr.shape and exr.max() > 2.0  # the sample has recovered highlights
    high, unclipped = regions(ldr)
    err = stops(decoded, exr)
    # measured (scale 1, quality 90): highlights p99 0.117 max 0.223 stops; unclipped p99
    # 0.041 max 0.112 stops (the base's own JPEG error, partly undone by the gain map)
    assert np.percentile(err[high], 99) < 0.15 and err[high].max() < 0.3
    assert np.percentile(err[unclipped], 99) < 0.06 and err[unclipped].max() < 0.15
    assert abs(math.log2(decoded.max() / exr.max())) < 0.05


def test_sdr_base_is_the_photo_to_jpeg_error(sample_run):
    path, _, ldr = sample_run
    with Image.open(path) as im:
        base = np.asarray(im.convert("RGB"), np.int16)
    diff = np.abs(base - to_uint8(ldr).astype(np.int16))
    assert diff.mean() < 0.5 and diff.max() <= 10  # measured: mean 0.23, max 8 levels


def test_iso_and_xmp_metadata_each_decode_alone(sample_run):
    # blanking one namespace (same length, so every offset holds) makes libultrahdr read the
    # other: each metadata flavour alone must give the same rendition; neither: not a gain map
    data = sample_run[0].read_bytes()
    assert data.count(ISO_NS) == 2 and data.count(b"hdrgm:Version") == 2
    full = decode(data)
    iso_only = data.replace(XMP_NS, b"http://ns.adobe.com/xxx/1.0/")
    xmp_only = data.replace(ISO_NS, b"urn:xxx:std:iso:ts:21496:-1")
    # (XMP holds the numbers to 6 digits, ISO as fractions: 1 float16 step apart at most)
    np.testing.assert_allclose(decode(iso_only), full, rtol=2e-3, atol=1e-4)
    np.testing.assert_allclose(decode(xmp_only), full, rtol=2e-3, atol=1e-4)
    with pytest.raises(RuntimeError, match="gainmap metadata"):
        decode(xmp_only.replace(XMP_NS, b"http://ns.adobe.com/xxx/1.0/"))


def _exiftool(*args) -> str:
    return subprocess.run(["exiftool", *args], capture_output=True, check=True).stdout.decode()


def test_exiftool_reads_mpf_hdrgm_and_iso_blocks(sample_run, tmp_path):
    if shutil.which("exiftool") is None:
        pytest.skip("exiftool not installed (apt install libimage-exiftool-perl): not checked")
    path = sample_run[0]
    info = {}
    for group, name, value in re.findall(
        r"^\[(\S+)\]\s+(\w+)\s+: (.*)$", _exiftool("-a", "-G1", "-s", "-ee", path), re.M
    ):
        info.setdefault(f"{group}:{name}", []).append(value)
    assert info["MPF0:NumberOfImages"] == ["2"]
    assert info["XMP-hdrgm:Version"] == ["1.0", "1.0"]  # primary and gain map
    assert info["XMP-Container:DirectoryItemSemantic"] == ["Primary", "GainMap"]
    gm_length = info["MPImage2:MPImageLength"][0]
    assert info["XMP-Container:DirectoryItemLength"] == [gm_length]
    assert int(info["MPImage1:MPImageLength"][0]) + int(gm_length) == path.stat().st_size
    # the largest per-pixel gain of the EXR over the base as decoders see it (map scale 1)
    with Image.open(path) as im:
        base = srgb_to_linear(np.asarray(im.convert("RGB"), np.float32) / 255.0)
    top_gain = float(np.log2((sample_run[1] + OFFSET) / (base + OFFSET)).max())
    assert abs(float(info["XMP-hdrgm:GainMapMax"][0]) - top_gain) < 0.01
    assert info["XMP-hdrgm:HDRCapacityMax"] == info["XMP-hdrgm:GainMapMax"]
    # the ISO 21496-1 APP2 blocks: exiftool 12 dumps them without decoding; one per image
    gain_map = tmp_path / "gm.jpg"
    gain_map.write_bytes(
        subprocess.run(["exiftool", "-b", "-MPImage2", path], capture_output=True).stdout
    )
    for image in (path, gain_map):
        dump = _exiftool("-v3", image)
        assert "[urn:iso:std:iso:]" in dump and "[ts:21496:-1" in dump, image
    avif = _exiftool(
        "-s", "-ColorPrimaries", "-TransferCharacteristics", path.parent / "sample.avif"
    )
    assert "BT.2020" in avif and "SMPTE ST 2084" in avif


def test_boost_cap_clips_highlights_at_the_boost():
    ldr = np.full((32, 48, 3), 0.5, np.float32)
    ldr[8:24, 8:24] = 1.0
    hdr = srgb_to_linear(ldr)
    hdr[8:24, 8:24] = 8.0  # 3 stops above white
    # boosts are ratios of offset values: (8 + 1/64) / (1 + 1/64) for the whole 3 stops
    for cap, boost in ((None, (8 + OFFSET) / (1 + OFFSET)), (1.0, 2.0), (0.0, 1.0)):
        data, meta = encode_uhdr(ldr, hdr, None, UhdrOptions(max_boost=cap))
        assert abs(math.log2(meta.max_boost / boost)) < 1e-6, (cap, meta)
        expected = (1 + OFFSET) * boost - OFFSET
        patch = decode(data)[12:20, 12:20]
        assert np.all(stops(patch, np.float32(expected)) < 0.01), (cap, patch.mean())


def test_gain_metadata_ranges():
    assert gain_metadata(-0.1, 3.0, peak=8.0, max_stops=4.0).max_boost == 8.0
    assert gain_metadata(-0.1, 6.0, peak=64.0, max_stops=4.0).max_boost == 16.0  # auto cap
    no_highlights = gain_metadata(-0.05, 0.04, peak=1.0, max_stops=4.0)
    assert no_highlights.max_boost == 1.0 and no_highlights.capacity_max > 1.0
    assert gain_metadata(-20.0, 1.0, peak=2.0, max_stops=4.0).min_boost == 2.0**-8
    # readers take a map beyond 16 stops for a broken one (hdrgm_read.MAX_STOPS)
    assert gain_metadata(0.0, 20.0, peak=2.0**20, max_stops=20.0).max_boost == 2.0**16


def test_exif_is_kept_with_orientation_reset(cli, tmp_path):
    rgb = np.zeros((24, 40, 3), np.uint8)
    rgb[:4, :8] = 255
    exif = Image.Exif()
    exif[0x0112], exif[0x010F] = 6, "TestCam"
    Image.fromarray(rgb).save(tmp_path / "p.jpg", exif=exif.tobytes(), quality=95)
    code, _, err = cli(
        "predict", tmp_path / "p.jpg", "-o", tmp_path / "o.jpg", "--method", "kovaleski2014"
    )
    assert code == 0, err
    with Image.open(tmp_path / "o.jpg") as im:
        kept = im.getexif()
        assert im.size == (24, 40) and kept[0x010F] == "TestCam" and kept.get(0x0112, 1) == 1
        assert "sRGB" in im.info["icc_profile"].decode("latin1", "replace").replace("\0", "")


def photos(folder: Path) -> Path:
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        img = cv2.GaussianBlur(rng.uniform(0, 1, (40, 56, 3)).astype(np.float32), (0, 0), 3)
        img[:12, :12] = 1.0
        write_ldr(folder / f"{name}.jpg", img)
    return folder


def test_folder_to_gain_map_jpegs_and_rerun_skips_them(cli, tmp_path):
    src = photos(tmp_path / "in")
    args = ("predict", src, "-o", src, "--format", "uhdr", "--method", "kovaleski2014")
    for _ in range(2):  # the second run must not take a_uhdr.jpg for an input
        code, out, err = cli(*args)
        assert code == 0 and err == "", err
        assert sorted(p.name for p in src.iterdir()) == [
            "a.jpg",
            "a_uhdr.jpg",
            "b.jpg",
            "b_uhdr.jpg",
        ]
    assert decode((src / "a_uhdr.jpg").read_bytes()).max() > 1.5


def test_no_highlights_write_boost_1_and_say_so(cli, recwarn, tmp_path):
    src = photos(tmp_path / "in")
    code, out, err = cli(
        "predict", src / "a.jpg", "-o", tmp_path, "--format", "uhdr", "--method", "linear"
    )
    dest = tmp_path / "a_uhdr.jpg"
    assert code == 0 and err == ""
    assert [str(w.message) for w in recwarn] == [
        f"{dest}: nothing above white in this HDR; gain map written with "
        "boost 1 (HDR screens show the photo as it is)"
    ]
    data = dest.read_bytes()
    assert b'hdrgm:GainMapMax="0"' in data
    err = stops(decode(data), srgb_to_linear(read_ldr(src / "a.jpg")))
    assert np.percentile(err, 99) < 0.06 and err.max() < 0.15  # the photo, to JPEG error
    recwarn.clear()  # a reconstruction with highlights, capped by the option: said so
    args = ("predict", src / "a.jpg", "-o", tmp_path / "cap", "--format", "uhdr")
    code, _, err = cli(*args, "--method", "kovaleski2014", "--max-boost", "0")
    assert code == 0 and [str(w.message) for w in recwarn] == [
        f"{tmp_path / 'cap' / 'a_uhdr.jpg'}: --max-boost 0; gain map written with boost 1 "
        "(HDR screens show the photo as it is)"
    ]


@pytest.fixture
def no_ctypes_libuhdr(monkeypatch):
    """libultrahdr's ctypes loading fails, as it may where imagecodecs' extension module does
    not export the library's symbols (macOS)."""

    def cannot_load(*_args, **_kwargs):
        raise OSError("dlopen: symbol not found")

    monkeypatch.setattr(libuhdr.ctypes, "CDLL", cannot_load)
    monkeypatch.setattr(uhdr, "_fallback_noted", False)
    libuhdr.library.cache_clear()
    yield
    libuhdr.library.cache_clear()


def test_without_ctypes_libuhdr_the_hdr_only_encoder_is_used(
    cli, monkeypatch, recwarn, no_ctypes_libuhdr, tmp_path
):
    src = photos(tmp_path / "in")
    with pytest.raises(libuhdr.LibraryUnavailable):
        libuhdr.library()
    for cap, clip in ((None, 16.0), ("1", 2.0)):  # default: the peak, at most 4 stops
        out = tmp_path / f"out{cap}"
        boost = ("--max-boost", cap) if cap else ()
        formats = ("--format", "exr", "--format", "uhdr", "--float", *boost)
        code, _, err = cli("predict", src, "-o", out, *formats, "--method", "kovaleski2014")
        assert code == 0 and err == "", err
        data = (out / "a_uhdr.jpg").read_bytes()
        assert ISO_NS in data and imagecodecs.ultrahdr_check(data)
        exr, ldr = read_hdr(out / "a.exr"), read_ldr(src / "a.jpg")
        assert exr.max() > 2.0  # something above the --max-boost 1 cap
        gap = stops(decode(data), np.minimum(exr, clip))
        high, unclipped = regions(ldr)
        # measured: highlights p99 0.072 (max 0.084) stops, unclipped p99 0.076 (max 0.11);
        # with --max-boost 1: 0.066 (0.13) and the same
        assert np.percentile(gap[high], 99) < 0.12 and gap[high].max() < 0.25, cap
        assert np.percentile(gap[unclipped], 99) < 0.12 and gap[unclipped].max() < 0.25, cap
        with Image.open(io.BytesIO(data)) as base:  # an ordinary JPEG to SDR readers
            assert base.size == (56, 40)
    # one note for the whole run, naming the first file
    assert [str(w.message) for w in recwarn] == [
        f"{tmp_path / 'outNone' / 'a_uhdr.jpg'}: imagecodecs' libultrahdr cannot be called "
        "directly (OSError); gain-map JPEGs get libultrahdr's own rendition of the HDR as their "
        "base, not the photo, and no EXIF (noted once)"
    ]
    monkeypatch.setattr(imagecodecs.ULTRAHDR, "available", False)  # no libultrahdr at all
    with pytest.raises(HDRError, match="needs imagecodecs built with libultrahdr"):
        uhdr.encode_uhdr_hdr_only(np.ones((4, 4, 3), np.float32))


def test_encoder_failure_leaves_no_file(cli, monkeypatch, tmp_path):
    src = photos(tmp_path / "in")
    out = tmp_path / "out"

    def broken(*_):
        raise HDRError("libultrahdr encode failed: injected")

    monkeypatch.setattr(uhdr, "assemble", broken)
    formats = ("--format", "exr", "--format", "uhdr")
    code, _, err = cli("predict", src, "-o", out, *formats, "--method", "kovaleski2014")
    assert code == 3 and err.splitlines() == [
        f"error: {src / n}.jpg: libultrahdr encode failed: injected" for n in "ab"
    ]
    # each input's EXR was written before its gain-map JPEG failed; nothing half-written
    # (and no temporary file is left: iterdir lists hidden names too)
    assert sorted(p.name for p in out.iterdir()) == ["a.exr", "b.exr"]


def test_bad_options_are_usage_errors(cli, tmp_path):
    src = photos(tmp_path / "in")
    for args in (
        ["--max-boost", "nan"],
        ["--max-boost", "-1"],
        ["--max-boost", "17"],
        ["--gainmap-scale", "0"],
        ["--gainmap-quality", "101"],
        ["--format", "webp"],
    ):
        code, _, err = cli(
            "predict", src / "a.jpg", "-o", tmp_path / "o", "--method", "linear", *args
        )
        assert code == 2 and args[0] in err and "Traceback" not in err, (args, err)
    assert not (tmp_path / "o").exists()


def test_gainmap_scale_and_quality_reach_the_file(cli, tmp_path):
    src = photos(tmp_path / "in")
    sizes = {}
    for scale, quality in ((1, 90), (4, 50)):
        out = tmp_path / f"s{scale}"
        opts = ("--gainmap-scale", scale, "--gainmap-quality", quality, "--method", "kovaleski2014")
        code, _, err = cli("predict", src / "a.jpg", "-o", out / "a.jpg", *opts)
        assert code == 0, err
        data = (out / "a.jpg").read_bytes()
        start = mpf_images(data)[1][1].start
        with Image.open(io.BytesIO(data[start:])) as gain_map:
            sizes[scale] = gain_map.size, len(data)
    assert sizes[1][0] == (56, 40) and sizes[4][0] == (14, 10)  # ceil(56/4) x ceil(40/4)
    assert sizes[4][1] < sizes[1][1]


def test_pq_curve_and_avif_against_the_exr(sample_run):
    # ST 2084 reference points: 100 cd/m² -> 0.5081, 203 -> 0.5806 (BT.2408), 10000 -> 1
    np.testing.assert_allclose(
        pq_encode(np.array([100.0, 203.0, 1e4])), [0.5081, 0.5806, 1.0], atol=2e-4
    )
    nits = np.geomspace(0.01, 1e4, 50)
    np.testing.assert_allclose(pq_decode(pq_encode(nits)), nits, rtol=1e-3)
    path, exr, ldr = sample_run
    pq = imagecodecs.avif_decode((path.parent / "sample.avif").read_bytes())
    assert pq.dtype == np.uint16 and pq.shape == exr.shape and pq.max() <= 1023
    to709 = rgb_to_rec709_matrix(REC2020_CHROMATICITIES).T
    err = stops(pq_decode(pq / 1023.0) / REFERENCE_WHITE_NITS @ to709, exr)
    high, unclipped = regions(ldr)
    # measured (quality 95, speed 8): highlights p99 0.187 max 0.433 stops; unclipped p99 0.061
    # max 0.20 stops (scripts/uhdr_check.py)
    assert np.percentile(err[high], 99) < 0.23 and err[high].max() < 0.55
    assert np.percentile(err[unclipped], 99) < 0.08 and err[unclipped].max() < 0.3


def test_oversized_exif_is_dropped_with_a_note(tmp_path, recwarn):
    ldr = np.full((16, 16, 3), 0.5, np.float32)
    exif = Image.Exif()
    exif[0x010E] = "x" * 70000  # ImageDescription beyond one JPEG segment
    big = exif.tobytes()
    path = uhdr.write_uhdr(tmp_path / "e.jpg", ldr, srgb_to_linear(ldr), big)
    assert [str(w.message) for w in recwarn] == [
        f"{path}: the photo's EXIF ({len(big)} bytes) does not fit a JPEG segment; not kept",
        f"{path}: nothing above white in this HDR; gain map written with boost 1 "
        "(HDR screens show the photo as it is)",
    ]
    with Image.open(path) as im:
        assert not im.getexif()


def test_bundled_libuhdr_is_used_when_the_extension_does_not_export_it(monkeypatch):
    # macOS wheels keep libuhdr in imagecodecs/.dylibs, Linux ones in imagecodecs.libs: when
    # the extension module's handle does not reach its symbols, the bundled file is opened
    found = libuhdr.candidates()
    assert len(found) >= 2 and "libuhdr" in Path(found[1]).name
    real = libuhdr.ctypes.CDLL

    def no_symbols_in_the_extension(path, *a, **kw):
        if path == found[0]:
            return object()  # a handle without uhdr_* attributes
        return real(path, *a, **kw)

    monkeypatch.setattr(libuhdr.ctypes, "CDLL", no_symbols_in_the_extension)
    libuhdr.library.cache_clear()
    try:
        lib = libuhdr.library()
        assert lib._name == found[1] and lib.uhdr_enc_set_gainmap_image.restype is not None
    finally:
        libuhdr.library.cache_clear()


def test_a_nan_in_the_reconstruction_is_said_and_keeps_the_boost():
    """One NaN had made its strip of rows drop out of the gain range: boost 1."""
    ldr = np.full((64, 64, 3), 0.5, np.float32)
    ldr[:, 40:] = 1.0
    hdr = ldr**2.2
    hdr[:, 40:] = 8.0
    _, clean = encode_uhdr(ldr, hdr)
    hdr[3, 3, 1] = np.nan
    with pytest.warns(UserWarning, match=r"replaced 1 NaN \(->0\) values"):
        _, meta = encode_uhdr(ldr, hdr)
    assert meta.max_boost == clean.max_boost > 7


def test_sanitize_keeps_a_wide_gamuts_negative_values_where_asked():
    from mlx_hdr.io.hdr_io import sanitize_hdr

    img = np.array([[[-0.2, 1.0, np.inf], [0.5, -np.inf, np.nan]]], np.float32)
    with pytest.warns(UserWarning, match=r"replaced 1 NaN \(->0\), 1 \+inf \(->1\), 1 -inf"):
        wide = sanitize_hdr(img, negative=True)
    np.testing.assert_allclose(wide, [[[-0.2, 1.0, 1.0], [0.5, 0.0, 0.0]]], rtol=1e-6)
    with pytest.warns(UserWarning, match=r"2 negative \(->0\)"):
        assert sanitize_hdr(img).min() == 0.0


def test_highlights_beyond_libultrahdrs_decode_are_read_back_whole(tmp_path):
    """libultrahdr's float decode stops at 10,000 cd/m^2 (49.25x white): a gain-map JPEG
    whose rendition reaches it is read by its map instead (100x here)."""
    from mlx_hdr.infer.recorded import recorded_hdr
    from mlx_hdr.io.uhdr_input import recorded_gain

    ldr = np.full((64, 64, 3), 0.5, np.float32)
    ldr[:, 32:] = 1.0
    hdr = ldr**2.2
    hdr[:, 32:] = 100.0
    data, _ = encode_uhdr(ldr, hdr, None, UhdrOptions(max_boost=8))
    (tmp_path / "b.jpg").write_bytes(data)
    assert imagecodecs.ultrahdr_decode(data).max() < 50
    photo = read_ldr(tmp_path / "b.jpg")
    back = recorded_hdr(photo, recorded_gain(tmp_path / "b.jpg", photo))
    assert abs(np.log2(np.median(back[:, 40:]) / 100.0)) < 0.03
    # XMP our reader refuses (libultrahdr reads the ISO segment): libultrahdr's cut decode
    assert data.count(b'hdrgm:Gamma="1"') == 1
    (tmp_path / "c.jpg").write_bytes(data.replace(b'hdrgm:Gamma="1"', b'hdrgm:Gamma="0"'))
    back = recorded_hdr(photo, recorded_gain(tmp_path / "c.jpg", photo))
    assert abs(np.log2(np.median(back[:, 40:]) / 49.25)) < 0.03
