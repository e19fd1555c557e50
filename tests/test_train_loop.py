"""Training loop: loss falls, exact resume, NaN guard, SIGKILL resume, logs and plots."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import mlx.core as mx
import numpy as np
import pytest
from test_hybrid import SMALL, TinyEncoder

from mlx_hdr.errors import InputError
from mlx_hdr.train.checkpoint import load_checkpoint, read_checkpoint
from mlx_hdr.train.config import TrainConfig, load_config
from mlx_hdr.train.data import ArrayBatches, synthetic_pairs
from mlx_hdr.train.trainer import RunLog, TrainingDiverged, train

ROOT = Path(__file__).resolve().parents[1]


def tiny_cfg(run_dir, **kw) -> TrainConfig:
    base = dict(
        run_dir=str(run_dir),
        encoder_weights="random",
        lpips_weight=0.0,
        batch_size=4,
        steps_per_epoch=3,
        epochs=2,
        log_every=1,
        val_size=2,
        lr=2e-3,
        compile=False,
        model=dict(decoder_channels=SMALL),
    )
    base.update(kw)
    return TrainConfig(**base)


def source(seed=0) -> ArrayBatches:
    ldr, hdr = synthetic_pairs(4, 80, seed=1)
    return ArrayBatches(ldr, hdr, batch_size=4, crop=64, seed=seed)


def encoder() -> TinyEncoder:
    mx.random.seed(123)
    return TinyEncoder()


def run(cfg, **kw):
    return train(cfg, source(), encoder=encoder(), echo=None, **kw)


def params_of(run_dir) -> dict[str, np.ndarray]:
    arrays, _ = read_checkpoint(Path(run_dir) / "checkpoints" / "last.safetensors")
    return {k: np.array(v) for k, v in arrays.items() if k.startswith("model.")}


def test_batches_are_a_pure_function_of_seed_and_step():
    a, b = source().batch(5), source().batch(5)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(source().batch(6)["ldr"], a["ldr"])
    shards = [source().batch(5, rank=r, size=2)["ldr"] for r in (0, 1)]
    np.testing.assert_array_equal(np.concatenate(shards), a["ldr"][[0, 2, 1, 3]])


def test_loss_falls_and_outputs_appear(tmp_path):
    cfg = tiny_cfg(tmp_path / "run", epochs=3, steps_per_epoch=6)
    result = run(cfg)
    assert result.step == 18
    assert np.mean(result.losses[-4:]) < 0.8 * np.mean(result.losses[:4])
    for name in ("training_curves.png", "model.safetensors", "log.jsonl", "config.json"):
        assert (cfg_dir := Path(cfg.run_dir) / name).is_file(), cfg_dir
    assert sorted(p.name for p in (Path(cfg.run_dir) / "samples").iterdir()) == [
        "epoch_001.png",
        "epoch_002.png",
        "epoch_003.png",
    ]
    records = [json.loads(x) for x in (Path(cfg.run_dir) / "log.jsonl").read_text().splitlines()]
    train_recs = [r for r in records if r["kind"] == "train"]
    assert [r["step"] for r in train_recs] == list(range(1, 19))
    assert {"loss", "l1", "images_per_s", "peak_mem_mb", "max_rss_mb"} <= set(train_recs[0])
    val = [r for r in records if r["kind"] == "val"]
    assert len(val) == 3 and all(np.isfinite([r["psnr"], r["ssim"], r["l1"]]).all() for r in val)
    assert not list(Path(cfg.run_dir).rglob(".*tmp*"))


@pytest.mark.parametrize("compiled, corrected", [(False, False), (True, False), (True, True)])
def test_resume_is_exact(tmp_path, compiled, corrected):
    kw = dict(compile=compiled, bias_correction=corrected)  # corrected: by Adam's step count
    straight = tiny_cfg(tmp_path / "a", epochs=2, **kw)
    run(straight)
    half = tiny_cfg(tmp_path / "b", epochs=1, **kw)
    run(half)
    result = run(tiny_cfg(tmp_path / "b", epochs=2, **kw), resume=True)
    assert result.step == 6
    a, b = params_of(tmp_path / "a"), params_of(tmp_path / "b")
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_allclose(b[k], a[k], atol=1e-6, err_msg=k)


def test_stop_at_is_the_first_part_of_the_full_run(tmp_path):
    """Unlike max_steps, stop_at keeps the cosine schedule: stopping at step 4 of 6 and
    resuming to the end gives the uninterrupted run's weights."""
    kw = dict(epochs=2, schedule="cosine", warmup_steps=1)
    run(tiny_cfg(tmp_path / "a", **kw))
    first = run(tiny_cfg(tmp_path / "b", stop_at=4, **kw))
    assert first.step == 4 and len(first.losses) == 4
    assert int(read_checkpoint(tmp_path / "b" / "checkpoints" / "last.safetensors")[1]["step"]) == 4
    rest = run(tiny_cfg(tmp_path / "b", **kw), resume=True)
    assert rest.step == 6 and len(rest.losses) == 2
    a, b = params_of(tmp_path / "a"), params_of(tmp_path / "b")
    for k in a:
        np.testing.assert_allclose(b[k], a[k], atol=1e-6, err_msg=k)
    # stopped mid-epoch, it did not validate: the same checks, the same best model
    assert [r["step"] for r in _records(tmp_path / "b", "val")] == [3, 6]
    best = [mx.load(str(tmp_path / n / "model.safetensors")) for n in ("a", "b")]
    for k in best[0]:
        np.testing.assert_allclose(np.array(best[1][k]), np.array(best[0][k]), atol=1e-6)
    capped = run(tiny_cfg(tmp_path / "c", max_steps=4, **kw))  # max_steps: a shorter schedule
    c = params_of(tmp_path / "c")
    assert capped.step == 4 and any(not np.allclose(c[k], a[k]) for k in c)


class Poisoned(ArrayBatches):
    def batch(self, step, rank=0, size=1):
        b = super().batch(step, rank, size)
        if step == 4:
            b["hdr"][0, 0, 0, 0] = np.nan
        return b


def test_nan_guard_stops_and_keeps_last_good_checkpoint(tmp_path):
    cfg = tiny_cfg(tmp_path / "run", epochs=3, steps_per_epoch=2)
    ldr, hdr = synthetic_pairs(4, 80, seed=1)
    with pytest.raises(TrainingDiverged, match="diverged at step 5.*last good checkpoint"):
        train(cfg, Poisoned(ldr, hdr, batch_size=4, crop=64), encoder=encoder(), echo=None)
    arrays, meta = read_checkpoint(tmp_path / "run" / "checkpoints" / "last.safetensors")
    assert meta["step"] == "4"
    assert all(np.isfinite(np.array(v)).all() for v in arrays.values())


def test_nan_guard_on_absurd_learning_rate(tmp_path):
    with pytest.raises(TrainingDiverged, match="no checkpoint was written"):
        run(tiny_cfg(tmp_path / "run", lr=1e30, steps_per_epoch=50))


KILL_SCRIPT = """
import sys
sys.path.insert(0, {tests!r})
from test_train_loop import run, tiny_cfg
run(tiny_cfg({run_dir!r}, epochs=1, steps_per_epoch=400, checkpoint_every=2))
"""


def test_sigkill_mid_run_resumes_from_last_checkpoint(tmp_path):
    run_dir = tmp_path / "run"
    script = KILL_SCRIPT.format(tests=str(ROOT / "tests"), run_dir=str(run_dir))
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT)
    last = run_dir / "checkpoints" / "last.safetensors"
    try:
        deadline = time.time() + 120
        while time.time() < deadline and proc.poll() is None:
            if last.exists() and int(read_checkpoint(last)[1]["step"]) >= 4:
                break
            time.sleep(0.2)
        assert proc.poll() is None, "the training process ended before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    done = int(read_checkpoint(last)[1]["step"])
    assert done >= 4 and done % 2 == 0
    cfg = tiny_cfg(run_dir, epochs=1, steps_per_epoch=400, checkpoint_every=2, max_steps=done + 2)
    result = run(cfg, resume=True)
    assert result.step == done + 2 and len(result.losses) == 2
    records = [json.loads(x) for x in (run_dir / "log.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in records if r["kind"] == "train"]
    assert steps == list(range(1, done + 3))  # killed steps' records dropped, then redone


def test_checkpoint_mismatch_is_a_clear_error(tmp_path):
    run(tiny_cfg(tmp_path / "run", epochs=1))
    from mlx_hdr.errors import WeightsError
    from mlx_hdr.models.hybrid import HybridAutoencoder, HybridConfig
    from mlx_hdr.train.step import make_optimizer

    other = HybridAutoencoder(HybridConfig(decoder_channels=(8,) * 6), encoder=encoder())
    path = tmp_path / "run" / "checkpoints" / "last.safetensors"
    with pytest.raises(WeightsError, match="does not match the model"):
        load_checkpoint(path, other, make_optimizer(tiny_cfg(tmp_path)))


def test_plan_line_says_where_a_stopped_run_ends():
    from mlx_hdr.train import progress

    cfg = tiny_cfg("runs/x", epochs=5, steps_per_epoch=20, stop_at=30)
    assert cfg.end_step == 30 and cfg.total_steps == 100
    assert "stopping at step 30 of the schedule's 100" in progress.plan_line(cfg, 0)
    past = tiny_cfg("runs/x", epochs=5, steps_per_epoch=20, stop_at=999)  # had been silent
    assert past.end_step == 100 and "stop_at 999 lies past its last step" in progress.plan_line(
        past, 0
    )


def test_config_file_and_overrides(tmp_path):
    recipe = tmp_path / "r.json"
    recipe.write_text(
        json.dumps({"lr": 1e-3, "batch_size": 8, "model": {"upsample": "resize_conv"}})
    )
    cfg = load_config(recipe, batch_size=2, lr=None, encoder="mobilenet_v3_large")
    assert (cfg.lr, cfg.batch_size) == (1e-3, 2)
    assert (cfg.model.upsample, cfg.model.encoder) == ("resize_conv", "mobilenet_v3_large")
    recipe.write_text(json.dumps({"learning_rate": 1}))
    with pytest.raises(InputError, match="unknown training options: learning_rate"):
        load_config(recipe)
    for name in ("default.json", "cpu.json"):
        assert load_config(ROOT / "configs" / name).batch_size > 0


class Broken(ArrayBatches):
    def __init__(self, *args, at: int = 2, **kw):
        super().__init__(*args, **kw)
        self.at = at  # the step whose batch fails; -1: the validation set

    def batch(self, step, rank=0, size=1):
        if step == self.at:
            raise InputError("corrupt file", "x.hdr")
        return super().batch(step, rank, size)

    def validation(self, n):
        if self.at == -1:
            raise InputError("corrupt file", "x.hdr")
        return super().validation(n)


def test_prefetch_keeps_order_and_surfaces_loader_errors():
    from mlx_hdr.train.data import prefetch

    assert [s for s, _ in prefetch(source(), 3, 7)] == [3, 4, 5, 6]
    ldr, hdr = synthetic_pairs(2, 80)
    seen = []
    with pytest.raises(InputError, match="x.hdr: corrupt file"):
        for step, _ in prefetch(Broken(ldr, hdr, batch_size=2, crop=64), 0, 5):
            seen.append(step)
    assert seen == [0, 1]


def test_stream_sharded_step_equals_one_stream():
    """A batch split over 2 CPU streams gives the single-stream loss and gradients."""
    import mlx.nn as nn
    from mlx.utils import tree_flatten

    from mlx_hdr.models.hybrid import HybridAutoencoder, HybridConfig
    from mlx_hdr.train.loss import hybrid_loss
    from mlx_hdr.train.step import sharded

    mx.random.seed(7)
    model = HybridAutoencoder(HybridConfig(decoder_channels=SMALL), encoder=encoder())
    x = mx.random.normal((3, 64, 64, 3))  # odd batch: shards of 1 and 2 (weighted mean)
    t, m = mx.tanh(mx.random.normal(x.shape)), mx.random.uniform(shape=(3, 64, 64, 1))
    fn = nn.value_and_grad(model, lambda *b: hybrid_loss(model(b[0]), b[1], b[2], alpha_weight=2))
    (v1, p1), g1 = fn(x, t, m)
    (v2, p2), g2 = sharded(fn, [mx.new_stream(mx.cpu) for _ in range(2)])(x, t, m)
    assert abs(v1.item() - v2.item()) < 1e-5 * abs(v1.item())
    g1, g2 = dict(tree_flatten(g1)), dict(tree_flatten(g2))
    assert g1.keys() == g2.keys()
    # float32 summation order differs; InstanceNorm at init amplifies it to ~1e-4
    for k in g1:
        if k.endswith(("conv1.bias", "conv2.bias")):  # true gradient 0 before InstanceNorm
            continue
        scale = max(float(mx.abs(g1[k]).max()), 1e-6)
        np.testing.assert_allclose(np.array(g2[k]), np.array(g1[k]), atol=1e-3 * scale)


def test_stream_shards_keep_exposure_pairs_whole():
    """With the exposure-pair term, shards are cut between pairs and give the one-stream loss."""
    import mlx.nn as nn

    from mlx_hdr.models.hybrid import HybridAutoencoder, HybridConfig
    from mlx_hdr.train.loss import hybrid_loss
    from mlx_hdr.train.step import sharded

    mx.random.seed(8)
    model = HybridAutoencoder(HybridConfig(decoder_channels=SMALL), encoder=encoder())
    x = mx.random.normal((6, 64, 64, 3))  # 3 pairs over 2 streams: 3 + 3 would split pair 1
    t, m = mx.tanh(mx.random.normal(x.shape)), mx.random.uniform(shape=(6, 64, 64, 1))
    fn = nn.value_and_grad(model, lambda *b: hybrid_loss(model(b[0]), b[1], b[2], pair_weight=1))
    one = fn(x, t, m)[0][0].item()
    streams = [mx.new_stream(mx.cpu) for _ in range(2)]
    assert sharded(fn, streams, 2)(x, t, m)[0][0].item() == pytest.approx(one, rel=1e-5)
    with pytest.raises(ValueError):  # cut at 3: a shard holding half a pair is refused
        sharded(fn, streams)(x, t, m)


def test_run_log_skips_a_last_line_cut_by_a_kill(tmp_path):
    path = tmp_path / "log.jsonl"
    path.write_text('{"step": 1}\n{"step": 2}\n{"step": 3, "lo')
    log = RunLog(path, echo=None)
    assert [r["step"] for r in log.records] == [1, 2]
    log.truncate_after(1)
    assert path.read_text() == '{"step": 1}\n'
    lines = b'{"step": 1}\n{"st\xff\n[2]\n{"kind": "train", "step": null}\n'
    lines += b'{"kind": "val", "step": 2}\n{"kind": "train", "step": 3, "loss": null}\n'
    lines += b'{"step": 4}\n'  # damaged or edited inside
    path.write_bytes(lines)
    with pytest.warns(UserWarning, match="5 damaged line"):
        assert [r["step"] for r in RunLog(path, echo=None).records] == [1, 4]
    log = RunLog(tmp_path / "nan.jsonl", echo=None)  # a score with nothing to measure
    log.write({"kind": "val", "step": 3, "epoch": 1, "psnr": float("nan"), "ssim": 0.5, "l1": 0.1})
    assert json.loads((tmp_path / "nan.jsonl").read_text())["psnr"] is None  # not NaN: jq reads it
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # not a damaged line
        assert RunLog(tmp_path / "nan.jsonl", echo=None).records[0]["psnr"] is None
    with open(tmp_path / "nan.jsonl", "a") as f:  # a score missing, not null: the curves need it
        f.write('{"kind": "val", "step": 6, "epoch": 2, "psnr": 20.0, "l1": 0.1}\n{"step": 7}\n')
    with pytest.warns(UserWarning, match="1 damaged line"):
        assert [r["step"] for r in RunLog(tmp_path / "nan.jsonl", echo=None).records] == [3, 7]
    from mlx_hdr.train.plots import plot_curves

    plot_curves(RunLog(tmp_path / "nan.jsonl", echo=None).records, tmp_path / "c.png")


@pytest.mark.parametrize("suffix", [".json", ".jsonl"])  # config.json, log.jsonl on resume
def test_run_files_rewritten_atomically(tmp_path, monkeypatch, suffix):
    # a failure mid-write (disk full, kill) must leave the previous file, no temporary
    cfg = tiny_cfg(tmp_path / "run", epochs=1, steps_per_epoch=2)
    run(cfg)
    name = "config.json" if suffix == ".json" else "log.jsonl"
    before = (tmp_path / "run" / name).read_text()
    write_text = Path.write_text

    def half_then_fail(self, text, *args, **kwargs):
        if self.suffix != suffix:
            return write_text(self, text, *args, **kwargs)
        write_text(self, text[: len(text) // 2], *args, **kwargs)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "write_text", half_then_fail)
    longer = tiny_cfg(tmp_path / "run", epochs=2, steps_per_epoch=2)  # a checkpoint to save
    with pytest.raises(InputError, match=rf"{name}: cannot write \(No space left on device\)"):
        run(longer, resume=True)
    assert (tmp_path / "run" / name).read_text() == before
    assert not [p.name for p in (tmp_path / "run").iterdir() if p.name.startswith(".")]


def test_auto_streams_follow_the_loss():
    """Auto streams on the CPU: one with LPIPS (Winograd GEMMs use the cores), up to two
    without; an explicit count wins; compiled steps never split."""
    cores = max(1, min(2, os.cpu_count() or 1))
    on_cpu = mx.default_device() == mx.cpu
    assert TrainConfig(lpips_weight=3.0, compile=False).use_streams == 1
    assert TrainConfig(lpips_weight=0.0, compile=False).use_streams == (cores if on_cpu else 1)
    assert TrainConfig(lpips_weight=3.0, compile=False, streams=2).use_streams == (
        2 if on_cpu else 1
    )
    assert TrainConfig(lpips_weight=0.0, compile=True).use_streams == 1


def test_stops_model_starts_at_the_identity(tmp_path):
    from mlx_hdr.color import ldr_to_input, srgb_to_linear
    from mlx_hdr.infer.calibrate import calibrate
    from mlx_hdr.train.build import build_model

    cfg = tiny_cfg(tmp_path, model=dict(decoder_channels=SMALL, target="stops"))
    model = build_model(cfg, encoder=encoder())
    ldr, _ = synthetic_pairs(1, 64, seed=3)
    out = np.array(model(mx.array(ldr_to_input(ldr))))[0]
    hdr = calibrate(ldr[0], out, blend=False, kind="stops")
    np.testing.assert_allclose(hdr, srgb_to_linear(ldr[0]), rtol=1e-4, atol=1e-5)


def test_simulator_settings_reach_the_pool_and_are_checked(tmp_path):
    from mlx_hdr.train.pool import pool_source

    pool = ROOT.parent / "shared" / "data" / "hdr-pool"
    if not pool.is_dir():
        pytest.skip("needs ../shared/data/hdr-pool")
    cfg = tiny_cfg(tmp_path, data=str(pool), sim={"metering_prob": 0.7})
    batches = pool_source(cfg)
    assert batches.train.sim.metering_prob == batches.val.sim.metering_prob == 0.7
    with pytest.raises(ValueError, match="unknown simulator settings: bogus"):
        tiny_cfg(tmp_path, sim={"bogus": 1})


def _records(run_dir, kind: str) -> list[dict]:
    records = [json.loads(x) for x in (Path(run_dir) / "log.jsonl").read_text().splitlines()]
    return [r for r in records if r["kind"] == kind]


def _train_steps(run_dir) -> list[int]:
    return [r["step"] for r in _records(run_dir, "train")]


def test_a_failed_resume_or_overwrite_leaves_the_run_as_it_was(tmp_path):
    """A checkpoint that does not fit the recipe, or data that fail before the first step,
    change nothing in the run folder (config.json was rewritten first; --overwrite had
    already deleted the run)."""
    from mlx_hdr.errors import UsageError

    cfg = tiny_cfg(tmp_path / "run", epochs=1)
    run(cfg)
    before = {p: p.read_bytes() for p in (tmp_path / "run").rglob("*") if p.is_file()}
    other = tiny_cfg(tmp_path / "run", epochs=2, model=dict(decoder_channels=(8,) * 6))
    with pytest.raises(UsageError, match=r"model is not the run's \(decoder_channels"):
        run(other, resume=True)
    ldr, hdr = synthetic_pairs(4, 80, seed=1)
    for broken in (Broken(ldr, hdr, batch_size=4, crop=64, at=0), Broken(ldr, hdr, 4, 64, at=-1)):
        with pytest.raises(InputError, match="corrupt file"):
            train(cfg, broken, encoder=encoder(), echo=None, overwrite=True)
    after = {p: p.read_bytes() for p in (tmp_path / "run").rglob("*") if p.is_file()}
    assert after == before


def test_a_run_stopped_between_its_last_and_best_checkpoints_keeps_its_best(tmp_path, monkeypatch):
    """Best is saved before last: interrupted between them, a resume redoes the epoch and
    writes the best model (it had been lost for good)."""
    from mlx_hdr.train.trainer import Trainer

    save = Trainer.save

    def interrupted(self, name):
        if name == "best" and self.step == 3 and not (Path(self.run_dir) / "stop").exists():
            (Path(self.run_dir) / "stop").write_text("")
            raise KeyboardInterrupt
        save(self, name)

    monkeypatch.setattr(Trainer, "save", interrupted)
    cfg = tiny_cfg(tmp_path / "run", epochs=1, checkpoint_every=1)
    with pytest.raises(KeyboardInterrupt):
        run(cfg)
    (tmp_path / "run" / "stop").unlink()
    monkeypatch.setattr(Trainer, "save", save)
    assert run(cfg, resume=True).step == 3
    assert (tmp_path / "run" / "model.safetensors").is_file()
    assert (tmp_path / "run" / "checkpoints" / "best.safetensors").is_file()


def test_a_run_never_writes_into_another_runs_folder(tmp_path):
    # without --resume, a second run used to rewrite config.json and append its steps to the
    # first run's log.jsonl (the step count restarting), then overwrite its checkpoints
    from mlx_hdr.errors import UsageError, WeightsError

    cfg = tiny_cfg(tmp_path / "run", epochs=1, steps_per_epoch=2)
    run(cfg)
    before = {p.name: p.read_bytes() for p in (tmp_path / "run").iterdir() if p.is_file()}
    with pytest.raises(UsageError, match="already holds a run: --resume continues it"):
        run(cfg)
    with pytest.raises(UsageError, match="choose one"):
        run(cfg, resume=True, overwrite=True)
    # --overwrite replaces the run only once the new one is built
    broken = tiny_cfg(tmp_path / "run", encoder_weights=str(tmp_path / "none.safetensors"))
    with pytest.raises(WeightsError):
        train(broken, source(), echo=None, overwrite=True)
    after = {p.name: p.read_bytes() for p in (tmp_path / "run").iterdir() if p.is_file()}
    assert after == before
    result = run(tiny_cfg(tmp_path / "run", epochs=1, steps_per_epoch=3), overwrite=True)
    assert result.step == 3 and _train_steps(tmp_path / "run") == [1, 2, 3]
    # a folder of other files is not a run folder either; an empty one is fine
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(UsageError, match="is not empty"):
        run(tiny_cfg(tmp_path / "other"))
    (tmp_path / "empty").mkdir()
    assert run(tiny_cfg(tmp_path / "empty", epochs=1, steps_per_epoch=1)).step == 1


def test_step_clock_estimates_the_run_after_its_first_steps(monkeypatch):
    from mlx_hdr.train import progress

    now = iter([0.0, 10.0, 12.0, 14.0, 16.0, 18.0])  # start, then the end of steps 0..4
    monkeypatch.setattr(progress.time, "perf_counter", lambda: next(now))
    said = []
    clock = progress.StepClock(total=100, start=0, say=said.append, bar=False)
    durations = [clock.tick(step) for step in range(5)]
    assert durations == [10.0, 2.0, 2.0, 2.0, 2.0] and clock.seconds_per_step == 2.0
    # once, after three timed steps (the first step, compiling, is not timed)
    assert said == [
        "2.00 s/step: about 3 min 12 s for the 96 steps left (plus validation each epoch)"
    ]
    cfg = tiny_cfg("runs/x", epochs=5, steps_per_epoch=20, max_steps=50, data="pool/")
    assert progress.plan_line(cfg, 10) == (
        "training 40 steps (to step 50: 5 epochs x 20 steps, capped by max_steps 50), batch 4, "
        "224 px crops, L1, from pool/, into runs/x; time estimate after 4 steps"
    )
    pools = tiny_cfg("runs/x", data=["a", "b"])
    assert ", from a + b, into runs/x;" in progress.plan_line(pools, 0)
    one = tiny_cfg("runs/x", epochs=1, steps_per_epoch=1)
    assert progress.plan_line(one, 0).startswith("training 1 step (to step 1: 1 epoch x 1 step)")
    assert not progress.plan_line(one, 0).endswith("4 steps")  # over before an estimate
    ticks = iter(range(0, 100, 2))
    monkeypatch.setattr(progress.time, "perf_counter", lambda: float(next(ticks)))
    said.clear()
    short = progress.StepClock(total=4, start=0, say=said.append, bar=False)
    for step in range(4):  # the estimate would be for no step left: not said
        short.tick(step)
    assert said == []


def test_config_of_an_older_run_with_retired_keys_still_loads():
    d = json.loads(TrainConfig().to_json()) | {"workers": 2}
    assert TrainConfig.from_dict(d) == TrainConfig.from_dict(json.loads(TrainConfig().to_json()))
    with pytest.raises(ValueError, match="unknown training options: typo"):
        TrainConfig.from_dict({"typo": 1})
    with pytest.raises(ValueError, match=r"^unknown model options: decoder_channel$"):
        TrainConfig.from_dict({"model": {"target": "stops", "decoder_channel": [8]}})


def test_init_from_a_bundled_model_ignores_the_encoder_head(tmp_path):
    from mlx.utils import tree_flatten

    from mlx_hdr.models.model_io import save_model
    from mlx_hdr.train.build import HEAD, build_model

    bundled = dict(encoder="mobilenet_v2", decoder_channels=SMALL, target="stops")
    headless = bundled | {"encoder_kwargs": {"num_classes": 0}}
    src = build_model(tiny_cfg(tmp_path / "a", model=headless))
    path = save_model(tmp_path / "phase1.safetensors", src, dtype=mx.float32)
    # the run's encoder keeps its ImageNet head; the bundled file has none
    model = build_model(tiny_cfg(tmp_path / "b", model=bundled, init_model=str(path)))
    got = dict(tree_flatten(model.parameters()))
    assert any(HEAD in k for k in got)
    for k, v in tree_flatten(src.parameters()):
        np.testing.assert_array_equal(np.array(got[k]), np.array(v), err_msg=k)
    with pytest.raises(InputError, match="architecture differs"):
        other = bundled | {"decoder_channels": tuple(2 * c for c in SMALL)}
        build_model(tiny_cfg(tmp_path / "c", model=other, init_model=str(path)))


def test_init_adds_a_global_gain_that_starts_at_the_saved_models_output(tmp_path):
    from mlx_hdr.models.model_io import save_model
    from mlx_hdr.train.build import build_model

    plain = dict(encoder="mobilenet_v2", decoder_channels=SMALL, target="stops")
    src = build_model(tiny_cfg(tmp_path / "a", model=plain))
    src.out.weight = mx.random.normal(src.out.weight.shape) * 0.1  # not the identity
    path = save_model(tmp_path / "plain.safetensors", src, dtype=mx.float32)
    cfg = tiny_cfg(tmp_path / "b", model=plain | {"global_gain": True}, init_model=str(path))
    model = build_model(cfg)
    x = mx.random.normal((1, 64, 64, 3))
    np.testing.assert_allclose(np.array(model(x)), np.array(src(x)), atol=1e-6)
    path2 = save_model(tmp_path / "gain.safetensors", model, dtype=mx.float32)
    with pytest.raises(InputError, match="architecture differs"):  # no silent drop of a branch
        build_model(tiny_cfg(tmp_path / "c", model=plain, init_model=str(path2)))


def test_exposure_pairs_stay_whole_across_ranks_and_train(tmp_path):
    from mlx_hdr.train.pool import pool_source

    pool = ROOT.parent / "shared" / "data" / "hdr-pool"
    if not pool.is_dir():
        pytest.skip("needs ../shared/data/hdr-pool")
    kw = dict(data=str(pool), pair_weight=1.0, crop=32, val_crop=32, epochs=1, steps_per_epoch=2)
    cfg = tiny_cfg(tmp_path / "run", streams=2, **kw)
    batches = pool_source(cfg)
    full = batches.batch(5)
    shards = [batches.batch(5, rank, 2) for rank in (0, 1)]  # pair 0 on rank 0, pair 1 on 1
    for k in full:
        np.testing.assert_array_equal(np.concatenate([s[k] for s in shards]), full[k])
    singles = pool_source(tiny_cfg(tmp_path / "other", **(kw | {"pair_weight": 0.0}))).batch(5)
    assert not np.array_equal(singles["ldr"], full["ldr"])
    train(cfg, encoder=encoder(), echo=None)  # the pool's pairs, on two streams
    logged = [json.loads(x) for x in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    pair = [r["pair"] for r in logged if r["kind"] == "train"]
    assert len(pair) == 2 and all(np.isfinite(pair))


def test_exposure_pair_settings_are_checked(tmp_path):
    with pytest.raises(ValueError, match="even batch_size"):
        tiny_cfg(tmp_path, pair_weight=1.0, batch_size=3)
    for stops in ([2.0, 1.0], [0.5], [-1.0, 1.0], [1.0, 9.0], "12"):
        with pytest.raises(ValueError, match="pair_stops"):
            tiny_cfg(tmp_path, pair_stops=stops)
    with pytest.raises(ValueError, match="pair_weight"):
        tiny_cfg(tmp_path, pair_weight=-1.0)


def test_exposure_pairs_refuse_a_manifest_of_photo_pairs(tmp_path):
    from mlx_hdr.data.sources import PairSource
    from mlx_hdr.errors import UsageError
    from mlx_hdr.train.pool import _batches

    photos = PairSource.__new__(PairSource)  # no sample_pair: real photos cannot be re-exposed
    with pytest.raises(UsageError, match="need an HDR-only pool"):
        _batches(photos, photos, tiny_cfg(tmp_path, pair_weight=1.0))


def test_exposure_pairs_need_a_batch_that_splits_into_pairs_per_rank(tmp_path):
    from mlx_hdr.errors import HDRError
    from mlx_hdr.train.trainer import Trainer

    class TwoRanks:  # what the trainer asks of an mx.distributed group before any step
        def rank(self):
            return 0

        def size(self):
            return 2

    cfg = tiny_cfg(tmp_path, batch_size=6, pair_weight=1.0)  # 3 pairs cannot split over 2
    with pytest.raises(HDRError, match="not divisible by exposure pairs over 2 ranks"):
        Trainer(cfg, source(), group=TwoRanks(), encoder=encoder(), echo=None)
    single = tiny_cfg(tmp_path, batch_size=6)  # single photos: 3 per rank
    assert Trainer(single, source(), group=TwoRanks(), encoder=encoder(), echo=None).size == 2


def test_a_pools_bracketed_images_never_train(tmp_path):
    """An image the pool's MANIFEST.csv calls ``bracketed`` (a real bracket set's merge:
    validation data) is left out whether the pool is given as a folder or a list."""
    from mlx_hdr.io.image_io import write_hdr
    from mlx_hdr.train.pool import pool_source

    rng = np.random.default_rng(0)
    for name in ("a.hdr", "b.hdr", "c.hdr", "office.hdr"):
        write_hdr(tmp_path / name, rng.random((40, 60, 3)).astype(np.float32) * 4)
    (tmp_path / "MANIFEST.csv").write_text(
        "file,kind\na.hdr,panorama\nb.hdr,photo\nc.hdr,photo\noffice.hdr,bracketed\n"
    )
    for data in (str(tmp_path), [str(tmp_path)]):
        batches = pool_source(tiny_cfg(tmp_path / "run", data=data))
        used = {p.hdr_path.name for s in (batches.train, batches.val) for p in s.pairs}
        assert used == {"a.hdr", "b.hdr", "c.hdr"}, data
    (tmp_path / "MANIFEST.csv").write_text(
        "file,kind\n" + "".join(f"{n}.hdr,bracketed\n" for n in ("a", "b", "c", "office"))
    )
    with pytest.raises(InputError, match="holds only bracketed images"):
        pool_source(tiny_cfg(tmp_path / "run", data=str(tmp_path)))


def test_a_pool_manifests_kinds_are_read_in_any_case_and_a_typo_is_named(tmp_path):
    from mlx_hdr.data.datasets import read_pool_kinds

    (tmp_path / "MANIFEST.csv").write_text("file,kind\na.hdr, Panorama\nb.hdr,PHOTO\nc.hdr,\n")
    assert read_pool_kinds(tmp_path) == {"a.hdr": "panorama", "b.hdr": "photo", "c.hdr": None}
    (tmp_path / "MANIFEST.csv").write_text("file,kind\na.hdr,panorama\nb.hdr,equirect\n")
    with pytest.raises(InputError, match="b.hdr: unknown kind 'equirect'"):
        read_pool_kinds(tmp_path)


def test_an_image_twice_as_wide_as_high_is_a_panorama_unless_its_pool_says_otherwise(tmp_path):
    from mlx_hdr.data.sources import PoolSource
    from mlx_hdr.io.image_io import write_hdr

    pano = np.random.default_rng(0).random((32, 64, 3)).astype(np.float32)
    write_hdr(tmp_path / "pano.hdr", pano)
    views = PoolSource(tmp_path, size=16).view(np.random.default_rng(1))[1]
    assert "yaw" in views and "x0" not in views  # a perspective view, not a crop
    (tmp_path / "MANIFEST.csv").write_text("file,kind\npano.hdr,photo\n")
    crops = PoolSource(tmp_path, size=16).view(np.random.default_rng(1))[1]
    assert "x0" in crops and "yaw" not in crops


def test_held_out_views_are_the_images_training_holds_out(tmp_path):
    """With an unreadable or black image in the pool, training's split (after it drops the
    image) and the validation sets' had differed: a training image scored as held out."""
    from mlx_hdr.io.image_io import write_hdr
    from mlx_hdr.train.pool import HOLDOUT, _heldout_source, pool_source

    rng = np.random.default_rng(0)
    for i in range(HOLDOUT + 2):
        level = 0.0 if i == 1 else 4.0  # img01 black
        write_hdr(tmp_path / f"img{i:02d}.hdr", rng.random((24, 36, 3)).astype(np.float32) * level)
    with pytest.warns(UserWarning, match="img01.hdr: 0 in every pixel"):
        val = pool_source(tiny_cfg(tmp_path / "run", data=str(tmp_path))).val
        held = _heldout_source(str(tmp_path), 16)
    assert [p.name for p in held.pairs] == [p.name for p in val.pairs]


@pytest.mark.parametrize(
    "recipe, message",
    [
        ({"seed": 99999999999999999999}, "seed must be an integer >= 0 and <= 18446688732643"),
        ({"data": 5}, "data must be a str or list or null"),
        ({"data": [5]}, "data must be a folder, a manifest or a list of folders"),
        ({"init_model": 5}, "init_model must be a str or null"),
        ({"compile": "yes"}, "compile must be a bool or null"),
        ({"bias_correction": "false"}, "bias_correction must be a bool, got 'false'"),  # on
        ({"model": {"floor_strength": "x"}}, "floor_strength must be a number in [0, 1]"),
        ({"model": {"decoder_channels": [1.5, 1, 1, 1, 1, 1]}}, "must be whole numbers"),
        ({"model": {"input_skip": "no"}}, "input_skip must be true or false"),
        ({"sim": {"exif_prob": 5}}, "simulator setting exif_prob cannot be 5"),
        ({"model": {"encoder_kwargs": {"width_mult": "x"}}}, "width_mult cannot be 'x'"),
        ({"model": {"encoder_kwargs": {"width_mult": 1e400}}}, "width_mult cannot be inf"),
        ({"model": {"decoder_channels": [1e300] * 6}}, "cannot be wider than 8192"),
        ({"sim": {"glare_amount": [0, 0.03]}}, "glare_amount cannot be [0, 0.03]"),
        ({"sim": {"camera_knee": [0.9, 1]}}, "camera_knee cannot be [0.9, 1]"),
        ({"sim": {"camera_rolloff": [-0.25, 1]}}, "camera_rolloff cannot be [-0.25, 1]"),
        ({"sim": {"shoulder_white": [0.25, 0.5]}}, "shoulder_white cannot be [0.25, 0.5]"),
        ({"sim": {"glare_amount": [1.5, 2]}}, "glare_amount cannot be [1.5, 2]"),  # < 0 out
        ({"sim": {"boost_knee": [0, 0]}}, "boost_knee cannot be [0, 0]"),  # all to the cap
        ({"sim": {"curves": "srgb"}}, "curves is a list of names, not 'srgb'"),
        ({"sim": {"response_files": "a.json"}}, "response_files is a list of names, not 'a.json'"),
        ({"crop": 8}, "LPIPS needs crops of at least 16 px"),
    ],
)
def test_a_recipes_values_are_checked_before_the_run(tmp_path, recipe, message):
    """Each of these ended in a traceback mid-run, or was taken silently (1.5 -> 1)."""
    path = tmp_path / "r.json"
    path.write_text(json.dumps(recipe))
    with pytest.raises(InputError, match=re.escape(message)):
        load_config(path)


@pytest.mark.parametrize(
    "spoil, message",
    [
        (lambda a, m: (a, m | {"step": "x"}), "metadata is not what training writes"),
        (lambda a, m: (a, m | {"step": "-3"}), "metadata is not what training writes"),
        (lambda a, m: (a, m | {"extra": "{"}), "metadata is not what training writes"),
        (lambda a, m: (a, m | {"extra": '{"best_psnr": null}'}), "metadata is not what"),
        (lambda a, m: (a, m | {"np_rng": "{"}), "metadata is not what training writes"),
        (
            lambda a, m: ({k: v for k, v in a.items() if not k.startswith("optimizer.")}, m),
            "optimizer state does not match",
        ),
        (
            lambda a, m: ({k: v for k, v in a.items() if not k.endswith(".v")}, m),
            "optimizer state does not match",
        ),
        (
            lambda a, m: ({k: v.astype(mx.float16) for k, v in a.items()}, m),
            "does not match the model",
        ),
    ],
)
def test_a_hand_edited_checkpoint_is_refused_whole(tmp_path, spoil, message):
    """Each of these was a traceback on resume, or resumed silently with the optimizer
    state re-initialised or the weights in half precision."""
    from mlx_hdr.errors import WeightsError

    run(tiny_cfg(tmp_path / "run", epochs=1))
    path = tmp_path / "run" / "checkpoints" / "last.safetensors"
    arrays, meta = spoil(*mx.load(str(path), return_metadata=True))
    mx.save_safetensors(str(path), arrays, meta)
    with pytest.raises(WeightsError, match=message):
        run(tiny_cfg(tmp_path / "run", epochs=2), resume=True)


def test_two_trainings_in_one_folder_are_refused(tmp_path):
    """A resume started twice wrote one log and one set of checkpoints from two processes."""
    from mlx_hdr.errors import UsageError
    from mlx_hdr.train.rundir import run_lock

    cfg = tiny_cfg(tmp_path / "run", epochs=1)
    (tmp_path / "link").symlink_to(tmp_path)
    with run_lock(cfg.run_dir) as held:  # as another process holds it
        assert held
        with pytest.raises(UsageError, match="another process is training in this folder"):
            run(cfg)
        with run_lock(tmp_path / "link" / "run") as again:  # the same folder spelt otherwise
            assert not again
        with run_lock(tmp_path / "new" / "deeper" / "run") as other:  # parents made later
            (tmp_path / "new" / "deeper").mkdir(parents=True)
            with run_lock(tmp_path / "new" / "deeper" / "run") as again:
                assert other and not again
    assert not (tmp_path / "run").exists() and run(cfg).step == 3  # released
    with run_lock(cfg.run_dir) as held:  # the folder exists now: the same lock
        with pytest.raises(UsageError, match="another process is training"):
            run(tiny_cfg(tmp_path / "link" / "run", epochs=2), resume=True)
        # a resume from a shell with another MLX_HDR_HOME (the lock file another) had run
        # beside it, the two writing one log
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("MLX_HDR_HOME", str(tmp_path / "other-home"))
            with run_lock(cfg.run_dir) as again:
                assert not again
    with run_lock(tmp_path / "fresh") as held:  # a new run's folder: made, and held, at once
        assert held and (tmp_path / "fresh").is_dir()
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("MLX_HDR_HOME", str(tmp_path / "other-home"))
            with run_lock(tmp_path / "fresh") as again:
                assert not again
    assert not (tmp_path / "fresh").exists()  # left empty: taken away again


def test_recipes_the_old_checks_took_still_load(tmp_path):
    """Whole numbers written as floats, signed stop settings, tuples from Python, a seed
    above 32 bits: all accepted before the recipe checks, and still."""
    from mlx_hdr.data.simulate import SimConfig

    recipe = {
        "seed": 2**40,
        "model": {"decoder_channels": [16.0, 8, 8, 8, 8, 8]},
        "sim": {"jpeg_quality": [90.0, 95.0], "lights_knee": [-1.0, 2.0], "gain_floor": -0.5},
    }
    (tmp_path / "r.json").write_text(json.dumps(recipe))
    cfg = load_config(tmp_path / "r.json")
    assert cfg.model.decoder_channels == (16, 8, 8, 8, 8, 8) and cfg.seed == 2**40
    assert SimConfig(window_stops=(-1.0, 2.0), metering_ev=(-2.0, 1.0)).window_stops[0] == -1.0
    assert tiny_cfg(tmp_path, pair_stops=(0.5, 2.5), data=("a", "b")).data == ("a", "b")


def test_a_resume_says_when_the_untrained_weights_changed(tmp_path):
    """The encoder (and, with train_only, the rest) comes from its files on a resume: were
    they changed since, the run would mix weights without a word."""
    run(tiny_cfg(tmp_path / "run", epochs=1))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the same encoder: no note
        run(tiny_cfg(tmp_path / "run", epochs=2), resume=True)
    mx.random.seed(7)
    other = TinyEncoder()  # another encoder's weights
    with pytest.warns(UserWarning, match="differ from those it was trained with"):
        train(tiny_cfg(tmp_path / "run", epochs=3), source(), encoder=other, echo=None, resume=True)


def test_a_resume_says_when_the_images_it_validates_on_changed(tmp_path):
    """A pool or manifest changed since (or split otherwise) gives validation other images:
    the run's best so far was scored on the old ones."""
    from test_train_cli import tiny_pool

    from mlx_hdr.io.image_io import write_hdr
    from mlx_hdr.train.pool import pool_source

    pool = tiny_pool(tmp_path / "pool")  # validation: its first image, every 9th
    cfg = lambda epochs: tiny_cfg(tmp_path / "run", epochs=epochs, data=str(pool), crop=32)  # noqa: E731
    train(cfg(1), pool_source(cfg(1)), encoder=encoder(), echo=None)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the same images: no note
        train(cfg(2), pool_source(cfg(2)), encoder=encoder(), echo=None, resume=True)
    changed = r"this run's validation samples differ from those its checkpoints were scored on"
    wider = tiny_cfg(tmp_path / "run", epochs=3, data=str(pool), crop=32, val_crop=48)
    with pytest.warns(UserWarning, match=changed):  # other crops of the same images
        train(wider, pool_source(wider), encoder=encoder(), echo=None, resume=True)
    noisier = tiny_cfg(tmp_path / "run", epochs=4, data=str(pool), crop=32, sim={"noise_prob": 1})
    with pytest.warns(UserWarning, match=changed):  # other simulated photos of them
        train(noisier, pool_source(noisier), encoder=encoder(), echo=None, resume=True)
    write_hdr(pool / "0_first.hdr", np.full((40, 60, 3), 0.5, np.float32))  # now the first
    with pytest.warns(UserWarning, match=changed):
        train(cfg(5), pool_source(cfg(5)), encoder=encoder(), echo=None, resume=True)


def test_pairs_added_that_validation_does_not_draw_keep_its_digest(tmp_path, make_scenes):
    from conftest import _scene

    from mlx_hdr.data.manifest import index_dataset, write_manifest
    from mlx_hdr.io.image_io import write_hdr, write_ldr
    from mlx_hdr.train.checkpoint import heldout_digest
    from mlx_hdr.train.pool import pool_source

    root = make_scenes(tmp_path / "ds", 10)  # scenes s0 and s9 held out; val_size 1: s0
    cfg = tiny_cfg(tmp_path / "run", data=str(tmp_path / "pairs.jsonl"), val_size=1)
    digest = lambda: heldout_digest(pool_source(cfg), cfg)  # noqa: E731
    write_manifest(index_dataset(root), tmp_path / "pairs.jsonl")
    before = digest()
    for i in range(3):  # more scenes, listed after the others
        (root / f"t{i}").mkdir()
        ldr, hdr = _scene(seed=20 + i)
        write_ldr(root / f"t{i}/input.png", ldr)
        write_hdr(root / f"t{i}/gt.hdr", hdr)
    write_manifest(index_dataset(root), tmp_path / "pairs.jsonl")
    assert digest() == before
    (root / "s0/input.png").unlink()  # the pair validation drew is gone
    write_manifest(index_dataset(root), tmp_path / "pairs.jsonl")
    assert digest() != before


def test_a_run_of_no_steps_is_refused_before_its_folder_is_made(tmp_path):
    from mlx_hdr.errors import UsageError

    with pytest.raises(UsageError, match="no steps"):
        run(tiny_cfg(tmp_path / "run", epochs=0))
    assert not (tmp_path / "run").exists()  # a later run there is not refused


def test_a_pool_of_one_image_says_validation_scores_it(tmp_path):
    from mlx_hdr.train.pool import split

    with pytest.warns(UserWarning, match="validation is scored on it too"):
        assert split(["only"], 4) == (["only"], ["only"])


@pytest.mark.parametrize("corrected, first_step", [(True, 1.0), (False, 0.5 / 0.001**0.5)])
def test_adams_bias_correction_is_a_recipe_setting(corrected, first_step):
    from mlx_hdr.train.step import make_optimizer

    opt = make_optimizer(TrainConfig(lpips_weight=0.0, bias_correction=corrected))
    new = opt.apply_gradients({"w": mx.array([1.0, -2.0])}, {"w": mx.zeros((2,))})["w"]
    np.testing.assert_allclose(np.array(new) / -9e-4, [first_step, -first_step], rtol=1e-4)
    assert load_config("configs/default.json").bias_correction  # the original recipe's Adam


def test_a_run_stopped_before_its_first_checkpoint_leaves_no_folder(tmp_path, monkeypatch):
    from mlx_hdr.train.trainer import Trainer

    one_step, calls = Trainer.one_step, []

    def stopped(self, *args):  # Ctrl-C during the second step
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return one_step(self, *args)

    monkeypatch.setattr(Trainer, "one_step", stopped)
    with pytest.raises(KeyboardInterrupt):
        run(tiny_cfg(tmp_path / "run"))
    assert not (tmp_path / "run").exists()  # so the same command runs again
    (tmp_path / "mine").mkdir()  # an empty folder it was given stays, empty
    calls.clear()
    with pytest.raises(KeyboardInterrupt):
        run(tiny_cfg(tmp_path / "mine"))
    assert list((tmp_path / "mine").iterdir()) == []


def test_a_resume_stopped_before_its_next_checkpoint_keeps_the_runs_config(tmp_path, monkeypatch):
    from mlx_hdr.train.trainer import Trainer

    run(tiny_cfg(tmp_path / "run", epochs=1))
    before = (tmp_path / "run" / "config.json").read_text()

    def stopped(self, *args):
        raise KeyboardInterrupt

    monkeypatch.setattr(Trainer, "one_step", stopped)
    with pytest.raises(KeyboardInterrupt):
        run(tiny_cfg(tmp_path / "run", epochs=5), resume=True)
    assert (tmp_path / "run" / "config.json").read_text() == before
    monkeypatch.undo()
    run(tiny_cfg(tmp_path / "run", epochs=2), resume=True)  # its next checkpoint: written
    assert json.loads((tmp_path / "run" / "config.json").read_text())["epochs"] == 2


def test_a_run_stopped_after_saving_its_best_keeps_it(tmp_path, monkeypatch):
    from mlx_hdr.train.trainer import Trainer

    save = Trainer.save

    def stopped(self, name):  # Ctrl-C between the best checkpoint and "last"
        if name == "last":
            raise KeyboardInterrupt
        save(self, name)

    monkeypatch.setattr(Trainer, "save", stopped)
    with pytest.raises(KeyboardInterrupt):
        run(tiny_cfg(tmp_path / "run"))
    assert (tmp_path / "run" / "model.safetensors").is_file()
    assert not (tmp_path / "run" / "checkpoints" / "last.safetensors").exists()
    monkeypatch.undo()
    from mlx_hdr.errors import UsageError

    with pytest.raises(UsageError, match="already holds a run: --resume continues it"):
        run(tiny_cfg(tmp_path / "run"))
    result = run(tiny_cfg(tmp_path / "run"), resume=True)  # from "best", the epoch's end
    assert result.step == 6 and len(result.losses) == 3
    run(tiny_cfg(tmp_path / "straight"))
    a, b = params_of(tmp_path / "straight"), params_of(tmp_path / "run")
    for k in a:
        np.testing.assert_allclose(b[k], a[k], atol=1e-6, err_msg=k)


def test_a_run_stopped_before_its_final_last_checkpoint_gets_it_on_resume(tmp_path, monkeypatch):
    """At the run's end there is nothing left to do, but "last" (what bundling reads) must
    be the final step's, not an epoch's before."""
    from mlx_hdr.train.checkpoint import checkpoint_step
    from mlx_hdr.train.trainer import Trainer

    save = Trainer.save

    def stopped(self, name):
        if name == "last" and self.step == 6:
            raise KeyboardInterrupt
        save(self, name)

    monkeypatch.setattr(Trainer, "save", stopped)
    with pytest.raises(KeyboardInterrupt):
        run(tiny_cfg(tmp_path / "run", epochs=2, lr=2e-4))  # a best model each epoch
    monkeypatch.undo()
    last = tmp_path / "run" / "checkpoints" / "last.safetensors"
    assert checkpoint_step(last) == 3
    assert run(tiny_cfg(tmp_path / "run", epochs=2, lr=2e-4), resume=True).losses == []
    assert checkpoint_step(last) == 6


def test_a_resume_refuses_another_network_or_an_end_before_its_step(tmp_path):
    from mlx_hdr.errors import UsageError

    run(tiny_cfg(tmp_path / "run", epochs=2))
    stops = dict(decoder_channels=SMALL, target="stops")
    with pytest.raises(UsageError, match=r"model is not the run's \(target minmax_log1p -> stops"):
        run(tiny_cfg(tmp_path / "run", epochs=3, model=stops), resume=True)
    with pytest.raises(UsageError, match="ends at step 3 .* before the checkpoint's step 6"):
        run(tiny_cfg(tmp_path / "run", epochs=1), resume=True)
    bundled = dict(decoder_channels=SMALL, floor="kovaleski2014", floor_strength=0.9)
    assert run(tiny_cfg(tmp_path / "run", epochs=3, model=bundled), resume=True).step == 9
    from mlx_hdr.train.config import check_same_model

    old = {"config": json.dumps({"model": {"decoder_channels": list(SMALL)}})}  # no target yet
    with pytest.raises(UsageError, match="target minmax_log1p -> stops"):
        check_same_model(old, tiny_cfg(tmp_path / "run", model=stops), "old.safetensors")


def test_a_resume_with_other_optimizer_settings_says_so(tmp_path):
    run(tiny_cfg(tmp_path / "run", epochs=1))
    with pytest.warns(
        UserWarning, match=r"other optimizer settings \(bias_correction False -> True"
    ):
        run(tiny_cfg(tmp_path / "run", epochs=2, bias_correction=True), resume=True)


def test_a_resume_that_stretches_its_cosine_says_so(tmp_path):
    run(tiny_cfg(tmp_path / "run", epochs=1, schedule="cosine"))
    with pytest.warns(UserWarning, match=r"cosine length 3 -> 9 steps"):
        run(tiny_cfg(tmp_path / "run", epochs=3, schedule="cosine"), resume=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the same schedule, a longer constant run: no note
        run(tiny_cfg(tmp_path / "c", epochs=1))
        run(tiny_cfg(tmp_path / "c", epochs=2), resume=True)


def test_weights_beyond_float16_end_the_run_as_diverged(tmp_path, monkeypatch):
    """The loss can stay finite while the weights outgrow float16: the run had ended with
    'save as float32', an option train does not have, and a 'best' of diverged weights."""
    from mlx_hdr.train.trainer import Trainer

    real = Trainer.end_epoch

    def blown(self, val):
        self.model.head.conv1.weight = self.model.head.conv1.weight + 1e6
        return real(self, val)

    monkeypatch.setattr(Trainer, "end_epoch", blown)
    with pytest.raises(TrainingDiverged, match="beyond float16's range .*this run saved no model"):
        run(tiny_cfg(tmp_path / "run", epochs=1))
    assert not (tmp_path / "run" / "model.safetensors").exists()
    assert not (tmp_path / "run" / "checkpoints" / "best.safetensors").exists()


def test_weights_that_diverge_later_leave_the_last_good_checkpoint(tmp_path, monkeypatch):
    # finite weights beyond float16 had been saved over the good "last" (only "best" was
    # guarded), and a run whose validation no longer improved ended with exit 0
    from mlx_hdr.train.trainer import Trainer

    real = Trainer.end_epoch

    def blown_late(self, val):
        if self.step == 6:  # and its validation no better than before: no "best" to save
            self.model.head.conv1.weight = self.model.head.conv1.weight + 1e6
            self.best = float("inf")
        return real(self, val)

    monkeypatch.setattr(Trainer, "end_epoch", blown_late)
    with pytest.raises(TrainingDiverged, match="by step 6: .*beyond float16's range"):
        run(tiny_cfg(tmp_path / "run", epochs=2))
    _, meta = read_checkpoint(tmp_path / "run" / "checkpoints" / "last.safetensors")
    assert meta["step"] == "3"


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` by its relative path, with its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_a_run_that_fails_before_it_saves_leaves_the_folder_as_it_was(tmp_path):
    from mlx_hdr.train.rundir import put_back, set_aside

    # --overwrite had removed the old run once the new one was built: a divergence (or a
    # Ctrl-C) before the new run's first checkpoint left nothing; a new run that diverged
    # left a folder the same command then refused
    run(tiny_cfg(tmp_path / "run", epochs=1))
    before = snapshot(tmp_path / "run")
    for _ in range(2):  # the second time, a replaced run left by the first would show
        with pytest.raises(TrainingDiverged, match="no checkpoint was written"):
            run(tiny_cfg(tmp_path / "run", lr=1e30, steps_per_epoch=50), overwrite=True)
        assert snapshot(tmp_path / "run") == before
    with pytest.raises(TrainingDiverged):
        run(tiny_cfg(tmp_path / "new", lr=1e30, steps_per_epoch=50))
    assert not (tmp_path / "new").exists()
    set_aside(tmp_path / "run")  # a replacing run killed (-9) before it saved: its files
    (tmp_path / "run" / "log.jsonl").write_text("{}\n")  # beside the run set aside, and
    (tmp_path / "run" / "checkpoints").mkdir()  # a checkpoint it was writing, cut short
    (tmp_path / "run" / "checkpoints" / ".last.x1y2.tmp.safetensors").write_bytes(b"cut")
    with pytest.raises(TrainingDiverged):  # the next replacement keeps the one set aside
        run(tiny_cfg(tmp_path / "run", lr=1e30, steps_per_epoch=50), overwrite=True)
    put_back(tmp_path / "run")
    assert snapshot(tmp_path / "run") == before
    run(tiny_cfg(tmp_path / "run", epochs=1, seed=3), overwrite=True)  # saves: replaced
    assert not (tmp_path / "run" / ".replaced").exists()
    assert run(tiny_cfg(tmp_path / "a" / "new", epochs=1), overwrite=True).step == 3  # none
    assert snapshot(tmp_path / "run").keys() == before.keys()
    assert snapshot(tmp_path / "run") != before


def test_data_index_counts_an_unstated_twice_as_wide_image_as_training_does(tmp_path):
    from mlx_hdr.data.manifest import index_dataset, summarize
    from mlx_hdr.io.image_io import write_hdr

    rng = np.random.default_rng(0)
    write_hdr(tmp_path / "pano.hdr", rng.random((16, 32, 3)).astype(np.float32) + 0.1)
    write_hdr(tmp_path / "flat.hdr", rng.random((16, 24, 3)).astype(np.float32) + 0.1)
    kinds = summarize(index_dataset(tmp_path))["kinds"]
    assert kinds == {"panorama": 1, "unknown": 1}


def test_a_run_whose_gradient_stays_zero_says_it_no_longer_learns(tmp_path, monkeypatch):
    """A finite loss with a gradient of exactly 0 (a collapsed branch) is no divergence, but
    the run says, once, that it has stopped learning."""
    import mlx_hdr.train.trainer as trainer

    real = trainer.make_train_step

    def zero_gradient(*args, **kw):
        step = real(*args, **kw)
        return lambda *a: (lambda loss, parts, norm: (loss, parts, norm * 0))(*step(*a))

    monkeypatch.setattr(trainer, "make_train_step", zero_gradient)
    import mlx_hdr.train.progress as progress

    monkeypatch.setattr(trainer, "STALLED_STEPS", 4)
    monkeypatch.setattr(progress, "STALLED_STEPS", 4)
    with pytest.warns(UserWarning, match="step 4: a zero gradient for 4 steps: .* warm-up") as said:
        run(tiny_cfg(tmp_path / "run", epochs=3))  # 9 steps
    assert sum("zero gradient" in str(w.message) for w in said) == 1
    logged = [json.loads(line) for line in (tmp_path / "run/log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in logged if r["kind"] == "warning"] == [4]
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # a learning run says nothing of it
        monkeypatch.setattr(trainer, "make_train_step", real)
        run(tiny_cfg(tmp_path / "run2", epochs=3))


def test_a_stalled_run_is_told_its_likely_cause():
    from mlx_hdr.train.progress import stalled

    exposure = TrainConfig(model=dict(target="stops", exposure_gain=True), train_only="exposure")
    assert "no photo of the batches carries an EXIF white" in stalled(exposure)
    assert "warm-up" in stalled(TrainConfig())
