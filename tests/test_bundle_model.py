"""``scripts/bundle_model.py``: the shipped model's packaging refuses weights that are not
its own before it writes anything."""

from __future__ import annotations

import sys
from pathlib import Path

from test_train_loop import run, tiny_cfg

from mlx_hdr.models.model_io import load_model

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = ROOT / "mlx_hdr" / "assets" / "default.safetensors"


def bundle(monkeypatch, capsys, *args) -> tuple[int, str]:
    sys.path.insert(0, str(ROOT / "scripts"))
    import bundle_model

    monkeypatch.setattr(sys, "argv", ["bundle_model.py", *map(str, args)])
    try:
        bundle_model.main()
        code = 0
    except SystemExit as exc:
        code = exc.code
    out = capsys.readouterr()
    return code, out.out + (out.err if isinstance(code, int) else str(code))


def test_a_checkpoint_of_another_model_is_refused_and_nothing_written(
    tmp_path, monkeypatch, capsys
):
    run(tiny_cfg(tmp_path / "run", epochs=1))  # the original recipe's target, small widths
    ckpt = tmp_path / "run" / "checkpoints" / "last.safetensors"
    out = tmp_path / "out.safetensors"
    code, said = bundle(monkeypatch, capsys, DEFAULT, "--checkpoint", ckpt, "-o", out)
    assert said.startswith(f"error: {ckpt}: trained as another model (its -> the model's: ")
    assert "target minmax_log1p -> stops" in said and code != 0
    assert not out.exists() and not list(tmp_path.glob(".out*"))  # it had written it first


def test_the_shipped_model_bundles_back_to_itself(tmp_path, monkeypatch, capsys):
    out = tmp_path / "again.safetensors"
    code, said = bundle(monkeypatch, capsys, DEFAULT, "-o", out)
    assert code == 0 and "max |output diff| 0.00e+00" in said, said
    config_a, config_b = load_model(out)[0].config, load_model(DEFAULT)[0].config
    assert config_a == config_b and config_a.floor_strength == 1.0
    code, said = bundle(monkeypatch, capsys, tmp_path / "none.safetensors", "-o", out)
    assert said.startswith("error: ") and "not found" in said and "\n" not in said.strip()
