"""``mlx-hdr train`` end to end on a tiny generated HDR pool, and its one-line errors."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np

CLI = [sys.executable, "-c", "from mlx_hdr.cli import main; main()"]
RECIPES = Path(__file__).resolve().parents[1] / "configs"


def tiny_pool(root: Path) -> Path:
    from mlx_hdr.io.image_io import write_hdr

    root.mkdir()
    rng = np.random.default_rng(0)
    for name, (h, w) in {"pano.hdr": (64, 128), "photo.hdr": (80, 96), "b.hdr": (70, 90)}.items():
        img = rng.random((h, w, 3)).astype(np.float32) * 0.5
        img[h // 3 : h // 2, w // 3 : w // 2] = 20.0  # a light source
        write_hdr(root / name, img)
    return root


def test_cli_trains_on_a_pool(tmp_path):
    pool, run = tiny_pool(tmp_path / "pool"), tmp_path / "run"
    (pool / "broken.hdr").write_bytes(b"#?RADIANCE\n not really")  # `data index` drops it
    from mlx_hdr.io.image_io import write_hdr

    write_hdr(pool / "black.hdr", np.zeros((8, 8, 3), np.float32))  # and this one
    args = ["train", "--data", str(pool), "--run-dir", str(run), "--encoder-weights", "random"]
    args += ["--lpips-weight", "0", "--batch-size", "2", "--crop", "64", "--val-crop", "64"]
    args += ["--epochs", "2", "--steps-per-epoch", "3", "--val-size", "2", "--no-compile"]
    args += ["--progress"]  # a pipe gets no bar unless asked
    proc = subprocess.run(CLI + args, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "done: 6 steps" in proc.stdout
    # an unreadable HDR is left out with a warning (it used to abort the run)
    assert f"warning: {pool / 'broken.hdr'}: " in proc.stderr
    assert f"warning: {pool / 'black.hdr'}: 0 in every pixel; left out" in proc.stderr
    assert "; left out of training" in proc.stderr and "Traceback" not in proc.stderr
    # the cost before the start, the estimate after the first steps, a bar with total and ETA
    assert "training 6 steps (to step 6: 2 epochs x 3 steps), batch 2, 64 px crops, L1" in (
        proc.stdout
    )
    assert re.search(r"s/step: about \d+ s for the 2 steps left", proc.stdout), proc.stdout
    assert re.search(r"train: .*\d/6 \[\d\d:\d\d<\d\d:\d\d", proc.stderr), proc.stderr
    cfg = json.loads((run / "config.json").read_text())
    assert (cfg["batch_size"], cfg["model"]["encoder"], cfg["compile"]) == (
        2,
        "mobilenet_v2",
        False,
    )
    assert (run / "model.safetensors").is_file() and (run / "samples" / "epoch_002.png").is_file()
    # resume with more epochs continues from step 6, reading the saved config
    more = ["train", "--resume", "--run-dir", str(run), "--epochs", "3", "--no-progress"]
    proc = subprocess.run(CLI + more, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "resumed from step 6" in proc.stdout and "done: 9 steps" in proc.stdout
    assert "train: " not in proc.stderr  # --no-progress: no bar


def test_a_run_whose_output_is_closed_stops_in_one_line(tmp_path):
    pool, run = tiny_pool(tmp_path / "pool"), tmp_path / "run"
    args = ["train", "--data", str(pool), "--run-dir", str(run), "--encoder-weights", "random"]
    args += ["--lpips-weight", "0", "--batch-size", "2", "--crop", "32", "--val-crop", "32"]
    args += ["--epochs", "8", "--steps-per-epoch", "50", "--log-every", "1", "--no-compile"]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # a pipe's 8 KB
    proc = subprocess.Popen(CLI + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    assert proc.stdout.readline().decode().startswith("training 400 steps")
    assert proc.stdout.readline().decode().startswith("step 1: loss")
    proc.stdout.close()  # as `| head -2` does
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=300) == 1, err
    assert err.splitlines()[-1] == "error: standard output was closed (a broken pipe)"
    assert "Traceback" not in err and "terminate" not in err and "Exception ignored" not in err
    assert not run.exists()  # stopped before its first checkpoint (step 50): no run folder


def test_an_epoch_said_into_a_closed_output_is_saved_first(tmp_path):
    from mlx_hdr.train.checkpoint import checkpoint_step

    pool, run = tiny_pool(tmp_path / "pool"), tmp_path / "run"
    args = ["train", "--data", str(pool), "--run-dir", str(run), "--encoder-weights", "random"]
    args += ["--lpips-weight", "0", "--batch-size", "2", "--crop", "32", "--val-crop", "32"]
    args += ["--epochs", "8", "--steps-per-epoch", "2", "--log-every", "100", "--no-compile"]
    proc = subprocess.Popen(CLI + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout.readline().decode().startswith("training 16 steps")
    proc.stdout.close()  # the next line is epoch 1's
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=300) == 1, err
    assert checkpoint_step(run / "checkpoints" / "last.safetensors") == 2
    assert (run / "model.safetensors").is_file()


def test_existing_run_folder_is_refused_without_resume(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text("{}")
    (run / "log.jsonl").write_text('{"kind": "train", "step": 1}\n')
    proc = subprocess.run(
        [*CLI, "train", "--run-dir", str(run), "--data", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr == (  # no checkpoint yet: --resume would have nothing to continue
        f"error: {run}: holds a run without a checkpoint to resume from: --overwrite replaces "
        "it, or choose another --run-dir\n"
    )
    assert (run / "config.json").read_text() == "{}" and len(list(run.iterdir())) == 2


def test_no_data_is_a_usage_error_not_a_development_folder(tmp_path):
    # without --config, train used to start the full recipe on ../shared/data/hdr-pool,
    # relative to the current folder: here such a folder exists
    work = tmp_path / "work"
    work.mkdir()
    (tmp_path / "shared" / "data").mkdir(parents=True)
    tiny_pool(tmp_path / "shared" / "data" / "hdr-pool")
    args = ["train", "--encoder-weights", "random", "--lpips-weight", "0", "--max-steps", "1"]
    args += ["--batch-size", "1", "--crop", "32", "--val-crop", "32", "--val-size", "1"]
    proc = subprocess.run(CLI + args, capture_output=True, text=True, timeout=300, cwd=work)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stderr.startswith("error: no training data: pass --data") and (
        proc.stderr.count("\n") == 1
    )
    assert list(work.iterdir()) == []  # no runs/default


def test_pool_without_a_readable_image_leaves_no_run_folder(tmp_path):
    pool, run = tmp_path / "pool", tmp_path / "run"
    pool.mkdir()
    (pool / "a.hdr").write_bytes(b"garbage")
    (pool / "b.hdr").write_bytes(b"#?RADIANCE\n cut short")
    args = ["train", "--data", str(pool), "--run-dir", str(run), "--encoder-weights", "random"]
    proc = subprocess.run(CLI + args, capture_output=True, text=True, timeout=120)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 1 and lines[-1] == f"error: {pool}: no readable HDR image", lines
    assert all(line.startswith("warning: ") for line in lines[:-1]) and len(lines) == 3
    assert not run.exists()


def test_cli_errors_are_one_line(tmp_path):
    cases = [
        (["train", "--resume", "--run-dir", str(tmp_path / "none")], "no checkpoint to resume"),
        (["train", "--config", str(tmp_path / "missing.json")], "config file not found"),
        (
            ["train", "--data", str(tmp_path / "nopool"), "--run-dir", str(tmp_path / "r")],
            "dataset folder not found",
        ),
        (["train", "--streams", "-1", "--run-dir", str(tmp_path / "r")], "streams must be"),
        (
            ["train", "--highlight-views", "2", "--run-dir", str(tmp_path / "r")],
            "highlight_views must lie in [0, 1]",
        ),
    ]
    for args, message in cases:
        proc = subprocess.run(CLI + args, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 1, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines


def test_bad_options_are_one_line_errors(tmp_path):
    # each of these used to start the run and end in a traceback (ZeroDivisionError, numpy
    # stack of nothing, a str batch size) or, for lr nan, train a NaN model with exit code 0
    (tmp_path / "list.json").write_text("[1, 2]")
    (tmp_path / "model.json").write_text('{"model": "x"}')
    (tmp_path / "str.json").write_text('{"batch_size": "x"}')
    (tmp_path / "sim.json").write_text('{"sim": {"clip_fraction": "x"}}')
    cases = [
        (["--steps-per-epoch", "0"], "steps_per_epoch must be an integer >= 1, got 0"),
        (["--batch-size", "0"], "batch_size must be an integer >= 1, got 0"),
        (["--lr", "nan"], "lr must be a finite number, got nan"),
        # a huge crop ran out of memory with a traceback; a negative loss weight trained away
        (["--crop", "100000"], "crop must be an integer >= 1 and <= 4096, got 100000"),
        (["--alpha-weight", "-5"], "alpha_weight must be >= 0, got -5.0"),
        (["--encoder", "bogus"], "unknown encoder 'bogus'"),
        (["--config", str(tmp_path / "list.json")], "not a JSON object of options"),
        (["--config", str(tmp_path / "model.json")], "model must be an object, got 'x'"),
        (["--config", str(tmp_path / "str.json")], "batch_size must be an integer >= 1, got 'x'"),
        (["--config", str(tmp_path / "sim.json")], "simulator setting clip_fraction cannot be"),
        # a bad value given on the command line is not blamed on a sound recipe
        (["--config", str(RECIPES / "cpu_l1.json"), "--lr", "-1"], "bad training option (lr"),
        (["--config", str(tmp_path / "str.json"), "--lr", "1"], "str.json: bad training config"),
    ]
    for args, message in cases:
        run = tmp_path / "run"
        proc = subprocess.run(
            [*CLI, "train", "--run-dir", str(run), *args], capture_output=True, text=True
        )
        assert proc.returncode == 1, proc.stderr[-2000:]
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines
        assert not run.exists()


def test_done_message_when_nothing_ran(tmp_path):
    from mlx_hdr.cli.train import done_message
    from mlx_hdr.train.trainer import TrainResult

    idle = done_message(TrainResult(run_dir=tmp_path, step=60, epoch=1))
    assert idle.startswith("nothing to do") and "nan" not in idle
    ran = done_message(
        TrainResult(tmp_path, 60, 1, losses=[1.0], best_psnr=20.0, seconds_per_step=0.5)
    )
    assert ran.startswith("done: 60 steps") and "0.50 s/step" in ran
    one_step = done_message(TrainResult(tmp_path, 1, 0, losses=[1.0], best_psnr=20.0))
    assert one_step.startswith("done: 1 step,") and "nan" not in one_step
    stops = TrainResult(tmp_path, 60, 1, losses=[1.0], best_psnr=26.4, best_name="PU21-PSNR")
    assert "best val PU21-PSNR 26.40 dB" in done_message(stops)  # the score it chose by


def test_missing_weights_leave_no_run_folder(tmp_path):
    pool, run = tiny_pool(tmp_path / "pool"), tmp_path / "run"
    missing = tmp_path / "none.safetensors"
    args = ["train", "--data", str(pool), "--run-dir", str(run), "--encoder-weights", str(missing)]
    proc = subprocess.run(CLI + args, capture_output=True, text=True, timeout=120)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 1 and len(lines) == 1 and "none.safetensors" in lines[0], lines
    assert not run.exists()  # it used to keep empty checkpoints/ and samples/ folders


def test_a_stopped_run_resumes_to_its_end(tmp_path):
    """--stop-at is for the run it is given to: a plain --resume (here in the default run
    folder, whose config.json it reads) goes on to the end of the schedule."""
    pool = tiny_pool(tmp_path / "pool")
    args = ["train", "--data", str(pool), "--encoder-weights", "random", "--lpips-weight", "0"]
    args += ["--batch-size", "2", "--crop", "64", "--val-crop", "64", "--epochs", "1"]
    args += ["--steps-per-epoch", "3", "--val-size", "2", "--no-compile", "--no-progress"]

    def train(*more):
        return subprocess.run(CLI + [*more], capture_output=True, text=True, cwd=tmp_path)

    proc = train(*args, "--stop-at", "2")
    assert proc.returncode == 0 and "done: 2 steps" in proc.stdout, proc.stderr[-2000:]
    proc = train("train", "--resume", "--no-progress")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "resumed from step 2" in proc.stdout and "done: 3 steps" in proc.stdout
    saved = json.loads((tmp_path / "runs" / "default" / "config.json").read_text())
    assert (saved["batch_size"], saved["stop_at"]) == (2, 0)
    proc = train("train", "--resume", "--stop-at", "1")
    assert proc.returncode == 2 and "is not after the checkpoint's step 3" in proc.stderr
    # a recipe's own stop_at holds on a resume from that recipe
    recipe = {"data": str(pool), "encoder_weights": "random", "lpips_weight": 0, "crop": 64}
    recipe |= {"batch_size": 2, "val_crop": 64, "val_size": 2, "steps_per_epoch": 3}
    recipe |= {"epochs": 2, "stop_at": 3, "compile": False}
    (tmp_path / "r.json").write_text(json.dumps(recipe))
    again = ("train", "--config", "r.json", "--run-dir", "r2", "--no-progress")
    proc = train(*again, "--stop-at", "1")
    assert proc.returncode == 0 and "done: 1 step," in proc.stdout, proc.stderr[-2000:]
    proc = train(*again, "--resume")
    assert "done: 3 steps" in proc.stdout, proc.stderr[-2000:]
