"""``mlx-hdr bundle``: a trained model packaged to share (float16, no classifier, the
weights of chosen checkpoints, a recorded floor), refusing weights that are not its own
before it writes anything."""

from __future__ import annotations

from pathlib import Path

import mlx.core as mx
import numpy as np
import pytest
from mlx.utils import tree_flatten
from test_train_loop import run, tiny_cfg

from mlx_hdr.cli import main
from mlx_hdr.models.model_io import load_model
from mlx_hdr.train.checkpoint import checkpoint_weights

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = ROOT / "mlx_hdr" / "assets" / "default.safetensors"


def bundle(monkeypatch, capsys, *args) -> tuple[int, str]:
    """``mlx-hdr bundle ARGS``: the exit code, and stdout then stderr."""
    monkeypatch.setattr("sys.argv", ["mlx-hdr", "bundle", *map(str, args)])
    with pytest.raises(SystemExit) as done:
        main()
    out = capsys.readouterr()
    return done.value.code, out.out + out.err


def test_a_checkpoint_of_another_model_is_refused_and_nothing_written(
    tmp_path, monkeypatch, capsys
):
    run(tiny_cfg(tmp_path / "run", epochs=1))  # the original recipe's target, small widths
    ckpt = tmp_path / "run" / "checkpoints" / "last.safetensors"
    out = tmp_path / "out.safetensors"
    code, said = bundle(monkeypatch, capsys, DEFAULT, "--checkpoint", ckpt, "-o", out)
    assert said.startswith(f"error: {ckpt}: trained as another model (its -> the model's: ")
    assert "target minmax_log1p -> stops" in said and code == 2
    assert not out.exists() and not list(tmp_path.glob(".out*"))  # it had written it first


def test_the_shipped_model_bundles_back_to_itself(tmp_path, monkeypatch, capsys):
    out = tmp_path / "new" / "again.safetensors"  # its folder made, as convert and predict do
    code, said = bundle(monkeypatch, capsys, DEFAULT, "-o", out)
    assert code == 0 and "max |output diff| 0.00e+00" in said, said
    assert out.read_bytes() == DEFAULT.read_bytes()
    code, said = bundle(monkeypatch, capsys, tmp_path / "none.safetensors", "-o", out)
    assert said.startswith("error: ") and "not found" in said and "\n" not in said.strip()


def test_a_runs_checkpoints_bundle_to_their_mean_with_a_floor(tmp_path, monkeypatch, capsys):
    from test_train_cli import tiny_pool

    from mlx_hdr.train.pool import pool_source
    from mlx_hdr.train.trainer import train

    model = dict(encoder="mobilenet_v2", decoder_channels=(16, 16, 8, 8, 8, 8), target="stops")
    data = str(tiny_pool(tmp_path / "pool"))
    cfg = tiny_cfg(tmp_path / "run", epochs=2, model=model, data=data, crop=32, val_crop=32)
    train(cfg, pool_source(cfg), echo=None)
    folder = tmp_path / "run"
    ckpts = [folder / "checkpoints" / f"{n}.safetensors" for n in ("best", "last")]
    out = tmp_path / "mean.safetensors"
    args = ["--checkpoint", ckpts[0], "--checkpoint", ckpts[1], "--floor", "kovaleski2014"]
    code, said = bundle(monkeypatch, capsys, folder / "model.safetensors", *args, "-o", out)
    assert code == 0, said
    assert said.startswith("weights of the mean of steps ")
    model, _ = load_model(out)
    assert model.config.floor == "kovaleski2014" and model.config.floor_strength == 1.0
    mean, _ = checkpoint_weights(ckpts)
    got = dict(tree_flatten(model.parameters()))
    for k, v in mean.items():  # stored as float16
        np.testing.assert_array_equal(np.array(got[k]), np.array(v.astype(mx.float16)), k)
    assert not any(".classifier." in k for k in got)
    arrays, meta = mx.load(str(ckpts[1]), return_metadata=True)
    key = next(k for k in sorted(arrays) if k.startswith("model.") and "weight" in k)
    arrays[key] = mx.full(arrays[key].shape, float("nan"))
    mx.save_safetensors(str(tmp_path / "nan.safetensors"), arrays, metadata=meta)
    args = ["--checkpoint", tmp_path / "nan.safetensors", "-o", tmp_path / "b.safetensors"]
    code, said = bundle(monkeypatch, capsys, folder / "model.safetensors", *args)
    assert said.startswith(f"error: {tmp_path / 'nan.safetensors'}: 1 weights hold NaN"), said
    args = ["--floor-strength", "0.5", "-o", tmp_path / "b.safetensors"]  # no floor to share
    code, said = bundle(monkeypatch, capsys, folder / "model.safetensors", *args)
    assert code == 2 and "a floor strength needs a floor" in said, said
    assert not (tmp_path / "b.safetensors").exists()


def test_a_bundle_never_replaces_the_model_or_checkpoint_it_is_made_from(
    tmp_path, monkeypatch, capsys
):
    model = tmp_path / "model.safetensors"
    model.write_bytes(DEFAULT.read_bytes())
    (tmp_path / "link.safetensors").symlink_to(model)
    for args in (
        [model, "-o", model],
        [model, "-o", tmp_path / "link.safetensors"],
        [DEFAULT, "--checkpoint", model, "-o", model],  # refused before the checkpoint is read
    ):
        code, said = bundle(monkeypatch, capsys, *args)
        assert code == 2 and said.count("\n") == 1, said
        assert "the bundle is made from; name another file" in said
        assert model.read_bytes() == DEFAULT.read_bytes()
    code, said = bundle(monkeypatch, capsys, DEFAULT, "-o", model / "sub" / "b.safetensors")
    assert (
        code == 2
        and said == f"error: {model}: is a file, not a folder: the output cannot go in it\n"
    )


@pytest.mark.parametrize(
    ("args", "why"),
    [
        (["-o", "x.npz"], "x.npz: a model is written as .safetensors"),
        (["-o", "x.safetensors", "--floor", "akyuz"], "unknown floor 'akyuz' (known: kovaleski"),
        (["-o", "x.safetensors", "--floor-strength", "1.5"], "floor strength 1.5 does not lie"),
    ],
)
def test_bad_bundle_options_are_one_line(tmp_path, monkeypatch, capsys, args, why):
    monkeypatch.chdir(tmp_path)
    code, said = bundle(monkeypatch, capsys, DEFAULT, *args)
    assert code == 2 and said.startswith("error: ") and why in said and said.count("\n") == 1
    assert list(tmp_path.iterdir()) == []
