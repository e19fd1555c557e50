"""Converted-weights location, strict loading, and the convert command lines and download."""

from __future__ import annotations

import importlib
import io
import pickle
import sys
import urllib.error
import zipfile
from pathlib import Path

import mlx.core as mx
import mlx.nn as nn
import numpy as np
import pytest
import typer
from mlx.utils import tree_flatten
from typer.testing import CliRunner

import mlx_hdr.convert.download as download
from mlx_hdr.cli.convert import register
from mlx_hdr.convert import convert_checkpoint
from mlx_hdr.convert.mapping import load_spec
from mlx_hdr.errors import WeightsError
from mlx_hdr.models.model_io import (
    converted_path,
    load_converted,
    load_model,
    load_strict,
    weights_dir,
)


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = [nn.Conv2d(3, 4, 3), nn.BatchNorm(4)]
        self.head = nn.Linear(4, 2)


def tiny_weights(**changes) -> dict[str, mx.array]:
    shapes = {k: v.shape for k, v in tree_flatten(Tiny().parameters())}
    weights = {k: mx.full(s, i + 1.0) for i, (k, s) in enumerate(sorted(shapes.items()))}
    for key, value in changes.items():
        key = key.replace("__", ".")
        if value is None:
            del weights[key]
        else:
            weights[key] = value
    return weights


def test_weights_dir_and_converted_path(monkeypatch, tmp_path):
    monkeypatch.setenv("MLX_HDR_HOME", str(tmp_path))
    assert weights_dir() == tmp_path
    assert converted_path("vgg16") == tmp_path / "vgg16.safetensors"
    monkeypatch.delenv("MLX_HDR_HOME")
    assert weights_dir() == Path("~/.cache/mlx-hdr").expanduser()


def test_load_strict_loads_and_casts():
    model = Tiny()
    weights = tiny_weights(head__bias=mx.array([5.0, 6.0], mx.float16))
    load_strict(model, weights)
    params = dict(tree_flatten(model.parameters()))
    assert params["head.bias"].dtype == mx.float32
    assert params["head.bias"].tolist() == [5.0, 6.0]
    assert all(mx.array_equal(params[k], v).item() for k, v in weights.items())


def test_load_strict_names_the_bad_keys():
    weights = tiny_weights(
        features__1__running_var=None,
        head__weight=mx.zeros((3, 4)),
        extra__weight=mx.zeros(1),
    )
    with pytest.raises(WeightsError) as info:
        load_strict(Tiny(), weights)
    msg = str(info.value)
    assert "weights for Tiny does not match" in msg and "\n" not in msg
    assert "1 missing (features.1.running_var)" in msg
    assert "1 unexpected (extra.weight)" in msg
    assert "head.weight (3, 4) != expected (2, 4)" in msg


def test_load_strict_rejects_nan_and_inf():
    weights = tiny_weights(head__bias=mx.array([1.0, float("nan")]))
    weights["features.1.running_var"] = mx.full(weights["features.1.running_var"].shape, mx.inf)
    with pytest.raises(WeightsError) as info:
        load_strict(Tiny(), weights)
    msg = str(info.value)
    assert msg == "2 weights hold NaN or inf values (features.1.running_var, head.bias)"


def test_load_strict_from_file_checks_architecture(tmp_path):
    path = tmp_path / "tiny.safetensors"
    mx.save_safetensors(str(path), tiny_weights(), {"architecture": "tiny", "format": "mlx-hdr"})
    load_strict(Tiny(), path, "tiny")
    with pytest.raises(WeightsError, match="holds tiny weights, expected vgg16") as info:
        load_strict(Tiny(), path, "vgg16")
    assert str(info.value).startswith(str(path))


def test_load_converted_errors(monkeypatch, tmp_path):
    monkeypatch.setenv("MLX_HDR_HOME", str(tmp_path))
    with pytest.raises(WeightsError, match="`mlx-hdr convert mobilenet_v2 --download`") as info:
        load_converted("mobilenet_v2")
    assert str(info.value).startswith(str(tmp_path / "mobilenet_v2.safetensors"))
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{broken")
    with pytest.raises(WeightsError, match="unreadable safetensors file") as info:
        load_converted(bad)
    assert "\n" not in str(info.value)
    monkeypatch.chdir(tmp_path)  # --encoder-weights FILE: a file's name, not an architecture
    with zipfile.ZipFile(tmp_path / "mine.pth", "w") as archive:  # as torch.save writes
        archive.writestr("mine/data.pkl", b"\x80\x02}q\x00.")
    with pytest.raises(WeightsError, match=r"a PyTorch file: convert it first \(`mlx-hdr conv"):
        load_converted("mine.pth")
    with pytest.raises(WeightsError, match="mine.pth: a PyTorch file, not a model file"):
        load_model(tmp_path / "mine.pth")  # convert makes no model: not told to
    np.savez(tmp_path / "arrays.npz", a=np.zeros(2))  # a zip, but not torch's
    with pytest.raises(WeightsError, match="unreadable safetensors file"):
        load_converted(tmp_path / "arrays.npz")
    (tmp_path / "myv2").write_bytes(bad.read_bytes())
    with pytest.raises(WeightsError, match="unreadable safetensors file"):
        load_converted("myv2")  # an existing file named like no architecture


MODELS = {
    "mobilenet_v2": ("mlx_hdr.models.mobilenetv2", "MobileNetV2"),
    "mobilenet_v3_large": ("mlx_hdr.models.mobilenetv3", "MobileNetV3Large"),
    "vgg16": ("mlx_hdr.models.vgg", "VGG16Features"),
}


@pytest.mark.parametrize("arch", sorted(MODELS))
def test_specs_equal_the_mlx_models_parameters(arch):
    """The converter's specs are exactly what the MLX backbones expect."""
    module = importlib.import_module(MODELS[arch][0])
    model = getattr(module, MODELS[arch][1])()
    assert {k: v.shape for k, v in tree_flatten(model.parameters())} == load_spec(arch)


def test_lpips_spec_equals_the_lpips_layers():
    lpips = importlib.import_module("mlx_hdr.models.lpips")
    lins = {f"lins.{k}": v for k, v in tree_flatten(lpips.LPIPS().parameters()["lins"])}
    assert {k: v.shape for k, v in lins.items()} == load_spec("lpips_vgg")


def test_converted_mobilenet_v2_loads_strictly(shared, tmp_path):
    from mlx_hdr.models.mobilenetv2 import MobileNetV2

    path = convert_checkpoint(
        "mobilenet_v2", shared / "weights/mobilenet_v2-b0353104.pth", tmp_path
    )
    model = load_strict(MobileNetV2(), path, "mobilenet_v2")
    kernel = dict(tree_flatten(model.parameters()))["features.18.0.weight"]
    assert kernel.shape == (1280, 1, 1, 320)
    assert float(np.array(kernel, np.float64).sum()) == pytest.approx(-98.14512792168709, 1e-6)


def test_mlx_hdr_convert_errors_are_one_line(shared, tmp_path, capsys, monkeypatch):
    from mlx_hdr.cli import main

    def convert_main(args):
        monkeypatch.setattr(sys, "argv", ["mlx-hdr", "convert", *args])
        try:
            main()
        except SystemExit as exc:
            return exc.code or 0
        return 0

    src = str(shared / "weights/lpips_v0.1_vgg.pth")
    assert convert_main(["lpips_vgg", src, "-o", str(tmp_path)]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "lpips_vgg.safetensors")
    assert convert_main(["vgg16", src, "-o", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: {src}: vgg16 checkpoint does not match") and err.count("\n") == 1
    assert convert_main(["vgg16"]) == 2  # usage errors
    assert "give either a checkpoint file or --download" in capsys.readouterr().err
    assert convert_main(["resnet50", src]) == 2
    assert "unknown architecture 'resnet50'" in capsys.readouterr().err
    assert convert_main(["vgg16", "--download", "--variant", "NOPE"]) == 2  # before any download
    assert "vgg16 has no variant 'NOPE' (known: " in capsys.readouterr().err
    (tmp_path / "taken").write_text("")
    assert convert_main(["lpips_vgg", src, "-o", str(tmp_path / "taken")]) == 2
    assert "taken: exists and is not a folder" in capsys.readouterr().err
    plain = tmp_path / "plain.pkl"
    plain.write_bytes(pickle.dumps({"a": 1}))  # not a torch file: said at its first pickle
    assert convert_main(["vgg16", str(plain)]) == 1
    assert "(bad magic number)" in capsys.readouterr().err


def test_cli_convert_command(shared, tmp_path):
    app = typer.Typer()
    app.callback()(lambda: None)  # keep "convert" a sub-command
    register(app)
    out = tmp_path / "lp.safetensors"
    src = str(shared / "weights/lpips_v0.1_vgg.pth")
    result = CliRunner().invoke(app, ["convert", "lpips_vgg", src, "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == str(out) and out.is_file()
    failed = CliRunner().invoke(app, ["convert", "vgg16", src, "-o", str(tmp_path)])
    assert isinstance(failed.exception, WeightsError)


def serve(monkeypatch, payload: bytes | Exception):
    def urlopen(url, timeout):
        if isinstance(payload, Exception):
            raise payload
        return io.BytesIO(payload)

    monkeypatch.setattr(download.urllib.request, "urlopen", urlopen)


def test_download_offline_is_one_line_error(monkeypatch, tmp_path):
    serve(monkeypatch, urllib.error.URLError("Name or service not known"))
    with pytest.raises(WeightsError, match="cannot download https://download.pytorch.org") as e:
        download.download_checkpoint("mobilenet_v2", cache=tmp_path)
    assert "mlx-hdr convert mobilenet_v2 FILE" in str(e.value) and "\n" not in str(e.value)
    assert list(tmp_path.iterdir()) == []


def test_download_verifies_the_hash(monkeypatch, shared, tmp_path):
    real = (shared / "weights/lpips_v0.1_vgg.pth").read_bytes()
    serve(monkeypatch, real[:-1] + b"x")
    with pytest.raises(WeightsError, match="sha256 does not start with a78928a0"):
        download.download_checkpoint("lpips_vgg", cache=tmp_path)
    assert list(tmp_path.iterdir()) == []
    serve(monkeypatch, real)
    path = download.download_checkpoint("lpips_vgg", cache=tmp_path)
    assert path == tmp_path / "vgg.pth" and path.read_bytes() == real


def test_torchvision_hash_prefixes_and_variants():
    source = download.source_for("mobilenet_v3_large", "IMAGENET1K_V2")
    assert source.filename == "mobilenet_v3_large-5c1a4163.pth"
    assert source.expected_hash == "5c1a4163"
    assert download.source_for("vgg16").expected_hash == "397923af"
    with pytest.raises(WeightsError, match="no variant 'V9'"):
        download.source_for("mobilenet_v2", "V9")


def test_download_problems_and_options_before_it(monkeypatch, tmp_path):
    """A cut HTTP body is a one-line error; a download folder that cannot be made says so;
    a bad --dtype or a --variant without --download is refused before anything is fetched."""
    import http.client

    from mlx_hdr.convert.convert import convert_from
    from mlx_hdr.errors import UsageError

    serve(monkeypatch, http.client.IncompleteRead(b"x" * 10, 5))
    with pytest.raises(WeightsError, match="cannot download .*IncompleteRead"):
        download.download_checkpoint("lpips_vgg", cache=tmp_path)
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(WeightsError, match="cannot make the download folder"):
        download.download_checkpoint("lpips_vgg", cache=tmp_path / "file" / "sub")
    serve(monkeypatch, AssertionError("fetched"))
    with pytest.raises(UsageError, match="unsupported dtype 'int8'"):  # exit code 2
        convert_from("lpips_vgg", download=True, dtype="int8", dst=tmp_path / "o")
    with pytest.raises(UsageError, match="--variant names the official weights"):
        convert_from("mobilenet_v2", tmp_path / "x.pth", variant="IMAGENET1K_V2")
