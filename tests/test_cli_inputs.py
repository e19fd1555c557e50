"""What ``predict`` takes from folders and globs, which options it refuses or notes, what it
reports, and how it stops on Ctrl-C or SIGTERM."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys

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
    assert not list(shoot.glob("*_uhdr_uhdr.jpg")) and "left out" not in err  # its own: quiet
    (shoot / "c_uhdr.jpg").write_bytes((shoot / "a.jpg").read_bytes())  # a photo of that name
    code, _, err = cli("predict", pattern, "-o", shoot, "--format", "uhdr", "--skip-existing")
    note = f"note: left out a file named like an mlx-hdr output ({shoot / 'c_uhdr.jpg'}); name it"
    assert code == 0 and note in err, err
    (shoot / "c_uhdr.jpg").unlink()
    code, _, err = cli("predict", pattern, "-o", shoot, *LINEAR)  # another format beside them
    assert code == 0 and "left out" not in err, err  # a_uhdr.jpg: a photo's output, not one
    code, _, err = cli("predict", str(shoot / "*_uhdr.jpg"), "-o", shoot / "o", *LINEAR)
    assert code == 3 and "matches only mlx-hdr's outputs or hidden files" in err
    outputs = shoot / "o"  # a folder of our outputs alone: said so, not "no images"
    outputs.mkdir()
    for name in ("a_uhdr.jpg", "b_uhdr.jpg"):
        (shoot / name).rename(outputs / name)
    code, _, err = cli("predict", outputs, "-o", shoot / "p", *LINEAR)
    assert code == 3 and "folder holds only mlx-hdr's outputs" in err, err


def test_a_mistyped_folder_is_said_to_be_missing(cli, shoot, tmp_path):
    """It had been told its file type ('') is not supported."""
    for name in ("shot/", "shot", "zz*z/"):
        code, _, err = cli("predict", tmp_path / name, "-o", tmp_path / "o", *LINEAR)
        why = "no files match this pattern" if "*" in name else "no such file or folder"
        assert code == 3 and err.startswith(f"error: {tmp_path / name}"), err
        assert why in err and "file type" not in err
    code, _, err = cli("predict", tmp_path / "gone.jpg", "-o", tmp_path / "o", *LINEAR)
    assert "gone.jpg: file not found" in err


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
    # as from a terminal (a background job, as CI may run the tests, starts with SIGINT ignored)
    defaults = {signal.SIGTERM: signal.SIG_DFL, signal.SIGINT: signal.default_int_handler}
    outer = {s: signal.signal(s, handler) for s, handler in defaults.items()}
    try:
        code, _, err = cli("predict", shoot / "a.jpg", "-o", tmp_path / "out", *LINEAR)
        assert {s: signal.getsignal(s) for s in defaults} == defaults  # put back
    finally:
        for s, handler in outer.items():
            signal.signal(s, handler)
    assert (code, err.strip()) == ((143, "terminated") if how == "sigterm" else (130, "aborted"))
    assert list((tmp_path / "out").iterdir()) == []  # the temporary file is gone too


def test_a_stopped_batch_says_what_it_wrote(cli, shoot, tmp_path, monkeypatch):
    real_commit, commits = atomic.commit, []

    def commit(tmp, path):  # Ctrl-C while the second photo's HDR is written
        commits.append(path)
        if len(commits) == 3:
            os.kill(os.getpid(), signal.SIGINT)
        real_commit(tmp, path)

    monkeypatch.setattr(atomic, "commit", commit)
    outer = signal.signal(signal.SIGINT, signal.default_int_handler)  # as from a terminal
    try:
        code, stdout, err = cli("predict", shoot, "-o", tmp_path / "out", *LINEAR)
    finally:
        signal.signal(signal.SIGINT, outer)
    out = tmp_path / "out"
    assert (code, err.strip()) == (130, "aborted")
    assert stdout.strip() == (
        f"wrote {out / 'a.hdr'}, {out / 'a_preview.png'} before it stopped "
        "(--skip-existing goes on from there)"
    )
    assert sorted(p.name for p in out.iterdir()) == ["a.hdr", "a_preview.png"]


def test_a_stop_whose_interrupt_was_lost_ends_the_batch_at_the_next_photo(
    cli, shoot, tmp_path, monkeypatch
):
    """An interrupt raised inside a destructor or a library's callback is only printed;
    the batch had gone on to write every photo, and a second signal was only noted."""
    real_commit, commits = atomic.commit, []

    def commit(tmp, path):
        commits.append(path)
        if len(commits) == 2:  # SIGTERM while the first photo's preview is written...
            with contextlib.suppress(KeyboardInterrupt):  # ...its interrupt swallowed
                os.kill(os.getpid(), signal.SIGTERM)
        real_commit(tmp, path)

    monkeypatch.setattr(atomic, "commit", commit)
    outer = signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        code, stdout, err = cli("predict", shoot, "-o", tmp_path / "out", *LINEAR)
    finally:
        signal.signal(signal.SIGTERM, outer)
    assert (code, err.strip()) == (143, "terminated")
    assert "before it stopped" in stdout
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.hdr", "a_preview.png"]


def test_a_ctrl_c_while_the_commands_load_is_an_abort():
    stop = (
        "import sys\n"
        "class Stop:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'mlx_hdr.cli.app':\n"
        "            raise KeyboardInterrupt\n"
        "sys.meta_path.insert(0, Stop())\n"
        "from mlx_hdr.cli import main\n"
        "main()\n"
    )
    run = subprocess.run([sys.executable, "-c", stop, "--version"], capture_output=True, text=True)
    assert (run.returncode, run.stderr.strip(), run.stdout) == (130, "aborted", "")


def test_outputs_written_before_a_failed_one_are_reported(cli, shoot, tmp_path, monkeypatch):
    from mlx_hdr.errors import InputError
    from mlx_hdr.infer import outputs

    def full_disk(dest, *args):
        raise InputError("cannot write (No space left on device)", dest)

    monkeypatch.setattr(outputs, "write_uhdr", full_disk)
    out = tmp_path / "out"
    code, stdout, err = cli(
        "predict", shoot / "a.jpg", "-o", out, "--format", "exr", "--format", "uhdr"
    )
    assert code == 3 and "a_uhdr.jpg: cannot write (No space left on device)" in err
    assert stdout.strip() == f"wrote {out / 'a.exr'}" and (out / "a.exr").is_file()


def test_an_output_that_is_a_folder_is_a_usage_error_before_any_work(cli, shoot, tmp_path):
    (tmp_path / "out" / "a_uhdr.jpg").mkdir(parents=True)
    code, _, err = cli(
        "predict", shoot, "-o", tmp_path / "out", "--format", "exr", "--format", "uhdr"
    )
    assert code == 2 and "a_uhdr.jpg is a folder; choose another -o" in err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a_uhdr.jpg"]


def test_one_photo_however_named_may_be_written_to_a_file_name(cli, shoot, tmp_path):
    (tmp_path / "one").mkdir()
    (tmp_path / "one" / "a.jpg").write_bytes((shoot / "a.jpg").read_bytes())
    for inputs in ([tmp_path / "one"], [shoot / "a.jpg", shoot / "a.jpg"]):
        out = tmp_path / "x.exr"
        code, _, err = cli("predict", *inputs, "-o", out, *LINEAR)
        assert code == 0 and out.is_file(), err
        out.unlink()


def test_an_animated_png_says_it_takes_the_first_image(tmp_path, recwarn):
    from PIL import Image

    from mlx_hdr.io.image_io import read_ldr

    frames = [Image.new("RGB", (8, 6), c) for c in ((200, 0, 0), (0, 200, 0))]
    frames[0].save(tmp_path / "a.png", save_all=True, append_images=frames[1:])
    assert np.allclose(read_ldr(tmp_path / "a.png")[0, 0], (200 / 255, 0, 0))
    assert [str(w.message) for w in recwarn] == [
        f"{tmp_path / 'a.png'}: holds 2 images; using the first"
    ]


@pytest.mark.parametrize(
    "args,message",
    [
        (
            ("-o", "x.exr", "--format", "uhdr"),
            "-o x.exr names one file; name a folder for --format uhdr",
        ),
        (("-o", "x.png", "--no-preview"), "x.png is the preview alone"),
        (("--preview-only", "--format", "exr"), "writes the preview alone"),
        (("--preview-only", "--no-preview"), "writes the preview alone"),
        (("--preview-only", "-o", "x.exr"), "name a .png, not x.exr"),
    ],
)
def test_options_that_would_be_ignored_are_usage_errors(cli, shoot, tmp_path, args, message):
    args = tuple(str(tmp_path / a) if a.startswith("x.") else a for a in args)
    code, _, err = cli("predict", shoot / "a.jpg", *args, *LINEAR)
    assert code == 2 and message in " ".join(err.split()), err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shoot"]


def test_options_the_run_does_not_use_are_noted(cli, shoot, tmp_path, recwarn):
    code, _, err = cli(
        "predict",
        shoot / "a.jpg",
        "-o",
        tmp_path / "o",
        "--model",
        "m.safetensors",
        "--max-boost",
        "2",
        *LINEAR,
    )
    assert code == 0, err
    assert [str(w.message) for w in recwarn] == [
        "--model is not used with --method linear",
        "--max-boost acts on the gain-map JPEG (--format uhdr) only",
    ]
    recwarn.clear()
    more = ["--no-blend", "--response", "srgb", "--gainmap-scale", "2", "--float", "--no-preview"]
    code, _, err = cli(
        "predict", shoot / "a.jpg", "-o", tmp_path / "p", "--exposure", "1", *more, *LINEAR
    )
    assert code == 0, err
    assert [str(w.message) for w in recwarn] == [
        "--no-blend, --response are not used with --method linear",
        "--gainmap-scale acts on the gain-map JPEG (--format uhdr) only",
        "--float acts on the EXR (--format exr) only",
        "--exposure acts on the preview only",
    ]


def test_a_sky_ceiling_given_at_its_default_value_is_noted_too(cli, shoot, tmp_path, recwarn):
    args = ["-o", tmp_path / "o", "--sky-ceiling", "10000", *LINEAR]
    code, _, err = cli("predict", shoot / "a.jpg", *args)
    assert code == 0, err
    assert [str(w.message) for w in recwarn] == ["--sky-ceiling is not used with --method linear"]


def test_an_ignored_signal_stays_ignored(cli, shoot, tmp_path, monkeypatch):
    """A job started with SIGINT ignored (``cmd &`` in a script) is not stopped by it."""
    real = atomic.commit

    def interrupted(tmp, path):
        os.kill(os.getpid(), signal.SIGINT)
        real(tmp, path)

    monkeypatch.setattr(atomic, "commit", interrupted)
    before = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        code, _, err = cli("predict", shoot / "a.jpg", "-o", tmp_path / "out", *LINEAR)
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, before)
    assert code == 0 and (tmp_path / "out" / "a.hdr").is_file(), err


def test_a_panorama_wider_than_avif_or_jpeg_allow_is_one_line(cli, tmp_path):
    from PIL import Image

    Image.fromarray(np.full((2, 70000, 3), 200, np.uint8)).save(tmp_path / "wide.png")
    out = tmp_path / "out"
    args = ("--format", "exr", "--format", "avif", "--format", "uhdr", *LINEAR)
    code, stdout, err = cli("predict", tmp_path / "wide.png", "-o", out, *args)
    assert code == 3 and "Traceback" not in err and err.count("\n") == 1
    assert "an AVIF holds at most 65,536 px a side" in err
    assert stdout.strip() == f"wrote {out / 'wide.exr'}"  # what came before it
    code, _, err = cli("predict", tmp_path / "wide.png", "-o", out, "--format", "uhdr", *LINEAR)
    assert code == 3 and "a JPEG holds at most 65,500 px a side" in err


def test_missing_expandnet_weights_are_said_once_before_any_photo(
    cli, shoot, tmp_path, monkeypatch
):
    monkeypatch.delenv("MLX_HDR_EXPANDNET", raising=False)
    code, _, err = cli("predict", shoot, "-o", tmp_path / "out", "--method", "expandnet2018")
    assert code == 1 and err.count("\n") == 1, err
    assert err.startswith("error: ExpandNet weights not given: set MLX_HDR_EXPANDNET")
    assert not (tmp_path / "out").exists()


def test_an_output_folder_that_cannot_be_written_is_said_before_any_work(
    cli, shoot, locked, monkeypatch
):
    from mlx_hdr.infer import pipeline

    monkeypatch.setattr(pipeline, "predict_file", lambda *a: pytest.fail("worked first"))
    code, _, err = cli("predict", shoot, "-o", locked / "sub", *LINEAR)
    assert (
        code == 1
        and err == f"error: {locked}: cannot write here (read-only file system or no permission)\n"
    )
    assert list(locked.iterdir()) == []


def test_a_rerun_with_nothing_left_to_do_needs_no_expandnet_weights(
    cli, shoot, tmp_path, monkeypatch
):
    monkeypatch.setenv("MLX_HDR_EXPANDNET", "/no/weights.pth")
    out = tmp_path / "out"
    out.mkdir()
    for name in ("a.hdr", "a_preview.png"):
        (out / name).write_bytes(b"done")
    code, stdout, err = cli(
        "predict", shoot / "a.jpg", "-o", out, "--method", "expandnet2018", "--skip-existing"
    )
    assert code == 0 and "skipped 1 input" in stdout, err


def test_an_output_folder_under_a_file_is_a_usage_error(cli, shoot, tmp_path):
    (tmp_path / "afile").write_text("")
    code, _, err = cli("predict", shoot, "-o", f"{tmp_path / 'afile' / 'sub'}/", *LINEAR)
    assert (
        code == 2
        and err == f"error: {tmp_path / 'afile'}: is a file, not a folder: choose another -o\n"
    )
