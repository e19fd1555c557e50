"""The ``mlx-hdr`` command itself: --version, help text, exit codes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import mlx_hdr

CLI = [sys.executable, "-c", "from mlx_hdr.cli import main; main()"]


def cli(*args: str, columns: int = 80) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": str(columns)}
    return subprocess.run([*CLI, *args], capture_output=True, text=True, env=env, timeout=120)


def test_version():
    proc = cli("--version")
    assert proc.returncode == 0 and proc.stdout == f"mlx-hdr {mlx_hdr.__version__}\n"


def test_a_closed_stdout_descriptor_is_no_error():
    # with descriptor 1 closed (a cron or daemon job), sys.stdout is None: nothing to guard
    proc = subprocess.run(
        [
            "sh",
            "-c",
            '"$0" -c "from mlx_hdr.cli import main; main()" --version >&-',
            sys.executable,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (proc.returncode, proc.stderr) == (0, "")


@pytest.mark.parametrize("command", ["predict", "evaluate", "train", "bundle", "convert"])
def test_help_is_wrapped_not_cut_at_80_columns(command):
    # the help used to end lines with "…" (e.g. "--no-preview-on…", "<stem>_preview.p…")
    proc = cli(command, "--help")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert "…" not in proc.stdout and max(map(len, lines)) <= 80
    if command == "predict":
        assert "--preview-only / --no-preview-only" in proc.stdout
        assert "<stem>_preview.png" in proc.stdout


def test_exit_codes_tell_usage_errors_from_failed_files(tmp_path):
    # "usage error" and "two files failed" used to share exit code 2
    missing = [str(tmp_path / "a.jpg"), str(tmp_path / "b.jpg")]
    failed = cli("predict", *missing, "-o", str(tmp_path / "out"), "--method", "linear")
    assert failed.returncode == 3  # some inputs failed
    assert failed.stderr.count("file not found") == 2
    usage = cli("predict", *missing, "--bogus")
    assert usage.returncode == 2 and usage.stderr.startswith("error: No such option: --bogus")
    assert usage.stderr.strip().endswith("(see mlx-hdr predict --help)")
    assert len(usage.stderr.splitlines()) == 1  # one line, as every other error
    stopped = cli("predict", *missing, "--model", str(tmp_path / "none.safetensors"))
    assert stopped.returncode == 1 and stopped.stderr.startswith("error: ")


def test_the_progress_bar_is_for_terminals_unless_asked(tmp_path):
    sample = str(Path(mlx_hdr.__file__).parent / "assets" / "sample.jpg")
    args = ["predict", sample, "-o", str(tmp_path), "--method", "linear"]
    quiet = cli(*args)  # stderr is a pipe here, as in a log or CI
    assert quiet.returncode == 0 and quiet.stderr == "", quiet.stderr
    shown = cli(*args, "--progress")
    assert shown.returncode == 0 and "img/s" in shown.stderr


def test_train_help_shows_the_defaults():
    # every option defaults to None ("keep the recipe's value"), so help showed no default
    proc = cli("train", "--help")
    text = " ".join(proc.stdout.split())
    for shown in [
        "--batch-size <int> global batch [default: (16)]",
        "--epochs <int> [default: (100)]",
        "--crop <int> training crop size (px) [default: (224)]",
        "--lpips-weight <float> 0 skips VGG [default: (3.0)]",
        "--data <str> HDR pool folder or manifest [default: (none: required)]",
        "--encoder <str> [default: (mobilenet_v2)]",
        "--overwrite / --no-overwrite replace the run in RUN_DIR",
    ]:
        assert shown in text, shown


@pytest.mark.parametrize(
    "args,name", [(["--max-value", "nan"], "--max-value"), (["--workers", "0"], "--workers")]
)
def test_data_index_numbers_are_checked_up_front(tmp_path, args, name):
    # nan kept every pair, -1 dropped them all, both with exit code 0
    proc = cli("data", "index", str(tmp_path), "-o", str(tmp_path / "m.jsonl"), *args)
    assert proc.returncode == 2 and name in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "m.jsonl").exists()
