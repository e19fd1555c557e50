"""``scripts/fetch_hdrmerge_brackets.py`` (the raw merge and alignment) and
``scripts/fetch_gegl_brackets.py``; no download here."""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import fetch_gegl_brackets as gegl  # noqa: E402
import fetch_hdrmerge_brackets as fetch  # noqa: E402


def scene(h: int = 160, w: int = 240) -> np.ndarray:
    """Smooth scene-linear texture, 0.05-0.6, with a light at 3-6x over a sixth of it."""
    rng = np.random.default_rng(1)
    img = cv2.GaussianBlur(rng.uniform(0.05, 0.6, (h, w, 3)).astype(np.float32), (0, 0), 3)
    img[20:60, 30:110] *= np.float32([8.0, 9.0, 10.0])
    return img


def test_ecc_recovers_a_shift():
    img = fetch.log_luma(scene())
    shifted = np.roll(img, (3, -5), axis=(0, 1))
    warp = fetch.ecc_warp(img, shifted, np.ones(img.shape, bool))
    np.testing.assert_allclose(warp[:, 2], [-5, 3], atol=0.2)
    np.testing.assert_allclose(warp[:, :2], np.eye(2), atol=0.01)


def test_merge_takes_the_short_frame_where_the_reference_clips():
    truth = scene()
    ref = np.minimum(truth, 1.0)
    clipped = (truth >= fetch.SATURATED).any(axis=-1)
    short = np.roll(truth / 3.7, (2, 1), axis=(0, 1))  # handheld: shifted; 1.9 stops down
    frames = {"a": (ref, clipped, b""), "b": (short, np.zeros_like(clipped), b"")}
    hdr, info = fetch.merge(frames, "a", "b", labelled=4.0)
    assert abs(info["short_frame_ratio"]["measured"] - 3.7) < 0.01
    assert info["short_frame_ratio"]["labelled"] == 4.0
    # away from the rolled-in border and the light's edge (the step there is interpolated)
    edge = cv2.dilate(cv2.Canny(clipped.astype(np.uint8) * 255, 1, 1), np.ones((9, 9)))
    keep = edge == 0
    keep[:8], keep[-8:], keep[:, :8], keep[:, -8:] = False, False, False, False
    np.testing.assert_allclose(hdr[keep], truth[keep], rtol=0.02, atol=0.002)
    light = clipped & keep  # the light itself, where the reference clips at 1.0
    assert light.sum() > 1000 and truth[light].max() > 2.0
    np.testing.assert_allclose(hdr[light], truth[light], rtol=0.02)


def test_gegl_bracket_is_extracted_and_merged_with_its_licence(tmp_path, monkeypatch, capsys):
    """``scripts/fetch_gegl_brackets.py`` on a stand-in archive: the three named frames are
    taken from GEGL's test folder (others ignored), merged, and the set names its source."""
    import io
    import json
    import tarfile

    from PIL import Image

    from mlx_hdr.color import linear_to_srgb
    from mlx_hdr.io.image_io import read_hdr

    truth = scene(48, 64)
    archive = tmp_path / "gegl.orig.tar.xz"
    with tarfile.open(archive, "w:xz") as tar:
        for name, t in [*zip(gegl.FRAMES, (1 / 50, 1 / 13, 0.4), strict=True), ("other.png", 1.0)]:
            exif = Image.Exif()
            exif.get_ifd(0x8769).update({0x829A: t, 0x829D: 8.0, 0x8827: 800})
            rgb = linear_to_srgb(np.minimum(truth * t * 4, 1.0))
            buf = io.BytesIO()
            Image.fromarray(np.round(rgb * 255).astype(np.uint8)).save(
                buf, "PNG", exif=exif.tobytes()
            )
            info = tarfile.TarInfo(f"gegl-0.4.42{gegl.FOLDER}{name}")
            info.size = len(buf.getvalue())
            tar.addfile(info, io.BytesIO(buf.getvalue()))
    meta = gegl.build(tmp_path / "set", archive)
    assert [f["source"] for f in meta["frames"]] == [
        "parliament_2.png",
        "parliament_1.png",
        "parliament_0.png",
    ]
    assert json.loads((tmp_path / "set" / "exposures.json").read_text())["license"].startswith(
        "LGPL"
    )
    hdr = read_hdr(tmp_path / "set" / "merged.hdr")
    assert hdr.shape == truth.shape
    ratio = np.median(hdr[..., 1] / truth[..., 1])  # the merge is the scene up to one scale
    assert np.percentile(np.abs(np.log2(hdr[..., 1] / truth[..., 1] / ratio)), 90) < 0.15
    # the command: built beside -o and renamed into place; an existing set is refused
    argv = ["fetch_gegl_brackets.py", "-o", str(tmp_path / "cmd"), "--archive", str(archive)]
    monkeypatch.setattr("sys.argv", argv)
    gegl.main()
    assert (tmp_path / "cmd" / "exposures.json").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    with pytest.raises(SystemExit):
        gegl.main()
    assert "exists; name a new set folder" in capsys.readouterr().err
