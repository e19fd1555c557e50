"""What ``predict`` takes from folders and globs, and how it stops on Ctrl-C or SIGTERM."""

from __future__ import annotations

import os
import signal

import numpy as np
import pytest

from mlx_hdr.io import atomic
from mlx_hdr.io.image_io import write_ldr

LINEAR = ("--method", "linear")


@pytest.fixture
def shoot(tmp_path):
    """A folder of two photos with a clipped patch."""
    d = tmp_path / "shoot"
    d.mkdir()
    rng = np.random.default_rng(1)
    for name in ("a", "b"):
        img = rng.uniform(0, 1, (24, 32, 3)).astype(np.float32)
        img[:6, :6] = 1.0
        write_ldr(d / f"{name}.jpg", img)
    return d


def test_a_glob_skips_our_own_outputs_so_a_run_can_go_on(cli, shoot):
    pattern = str(shoot / "*.jpg")
    code, _, err = cli("predict", pattern, "-o", shoot, "--format", "uhdr", *LINEAR)
    assert code == 0, err
    assert sorted(p.name for p in shoot.iterdir()) == ["a.jpg", "a_uhdr.jpg", "b.jpg", "b_uhdr.jpg"]
    code, _, err = cli("predict", pattern, "-o", shoot, "--format", "uhdr", "--skip-existing")
    assert code == 0, err  # the gain-map JPEGs are not taken for photos
    assert not list(shoot.glob("*_uhdr_uhdr.jpg"))
    code, _, err = cli("predict", str(shoot / "*_uhdr.jpg"), "-o", shoot / "o", *LINEAR)
    assert code == 3 and "no JPEG/PNG/TIFF/WebP/HEIC/AVIF photos match it" in err


def test_hidden_files_in_a_folder_are_not_photos(cli, shoot, tmp_path):
    (shoot / "._a.jpg").write_bytes(b"\x00\x05\x16\x07AppleDouble")  # macOS resource file
    (shoot / ".a_preview.x1y2.tmp.png").write_bytes(b"")  # an interrupted run's temp file
    code, _, err = cli("predict", shoot, "-o", tmp_path / "out", *LINEAR)
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "a.hdr",
        "a_preview.png",
        "b.hdr",
        "b_preview.png",
    ]


@pytest.mark.parametrize("how", ["sigterm", "ctrl-c"])
def test_an_interrupted_write_leaves_no_file_and_says_why(cli, shoot, tmp_path, monkeypatch, how):
    def stopped(tmp, path):  # the signal's handler raises before this returns
        os.kill(os.getpid(), signal.SIGTERM if how == "sigterm" else signal.SIGINT)

    monkeypatch.setattr(atomic, "commit", stopped)
    before = [signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)]
    code, _, err = cli("predict", shoot / "a.jpg", "-o", tmp_path / "out", *LINEAR)
    assert (code, err.strip()) == ((143, "terminated") if how == "sigterm" else (130, "aborted"))
    assert list((tmp_path / "out").iterdir()) == []  # the temporary file is gone too
    assert [signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)] == before
