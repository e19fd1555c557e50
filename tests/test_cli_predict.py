"""``mlx-hdr predict`` end to end on tiny images, with a random model file and without one."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from mlx_hdr.errors import WeightsError
from mlx_hdr.infer import model_hub
from mlx_hdr.io.image_io import read_hdr, read_ldr, write_ldr
from mlx_hdr.models.hybrid import HybridAutoencoder, HybridConfig
from mlx_hdr.models.model_io import save_model
from mlx_hdr.train.build import zero_residual_init


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    d = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    for name, (h, w) in {"a": (40, 56), "b": (37, 70)}.items():
        img = rng.uniform(0, 1, (h, w, 3)).astype(np.float32)
        img[:10, :10] = 1.0  # a clipped patch
        write_ldr(d / f"{name}.jpg", img)
    (d / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    return d


@pytest.fixture(scope="module")
def random_model(tmp_path_factory):
    cfg = HybridConfig(decoder_channels=(16, 16, 16, 8, 8, 8))
    return save_model(tmp_path_factory.mktemp("model") / "m.safetensors", HybridAutoencoder(cfg))


def test_predict_with_random_model(cli, photos, random_model, tmp_path):
    code, _, err = cli(
        "predict",
        photos / "a.jpg",
        photos / "b.jpg",
        "-o",
        tmp_path / "out",
        "--model",
        random_model,
    )
    assert code == 0, err
    hdr = read_hdr(tmp_path / "out" / "b.hdr")
    assert hdr.shape == (37, 70, 3) and np.isfinite(hdr).all() and hdr.min() >= 0
    assert read_ldr(tmp_path / "out" / "b_preview.png").shape == (37, 70, 3)


def test_flip_option_reaches_the_model(cli, photos, random_model, tmp_path):
    """``--flip`` gives the mirror mean, ``--no-flip`` one pass; by default a photo that runs in
    one pass gets the mirror mean."""
    from mlx_hdr.infer.model_hub import load_net
    from mlx_hdr.infer.pipeline import predict_hdr

    net, ldr = load_net(str(random_model))[0], read_ldr(photos / "b.jpg")
    for name, flags, flip in (
        ("on", ["--flip"], True),
        ("off", ["--no-flip"], False),
        ("default", [], None),
    ):
        out = tmp_path / f"{name}.exr"
        args = ("-o", out, "--model", random_model, "--no-blend", "--float", *flags)
        code, _, err = cli("predict", photos / "b.jpg", *args)
        assert code == 0, err
        want = predict_hdr(ldr, net, blend=False, flip=flip)
        np.testing.assert_allclose(read_hdr(out), want, rtol=1e-5, atol=1e-6)
    assert not np.allclose(read_hdr(tmp_path / "on.exr"), read_hdr(tmp_path / "off.exr"))
    np.testing.assert_array_equal(read_hdr(tmp_path / "default.exr"), read_hdr(tmp_path / "on.exr"))


def test_response_option_reaches_the_blend(cli, photos, random_model, tmp_path):
    """``--response`` picks how kept pixels are linearised (default ``camera``); an unknown
    curve is a usage error before any output."""
    from mlx_hdr.infer.model_hub import load_net
    from mlx_hdr.infer.pipeline import predict_hdr

    net, ldr = load_net(str(random_model))[0], read_ldr(photos / "b.jpg")
    for name, flags, response in (
        ("srgb", ["--response", "srgb"], "srgb"),
        ("model", ["--response", "model"], "model"),
        ("default", [], "camera"),
    ):
        out = tmp_path / f"{name}.exr"
        code, _, err = cli(
            "predict", photos / "b.jpg", "-o", out, "--model", random_model, "--float", *flags
        )
        assert code == 0, err
        want = predict_hdr(ldr, net, response=response)
        np.testing.assert_allclose(read_hdr(out), want, rtol=1e-5, atol=1e-6)
    assert not np.allclose(read_hdr(tmp_path / "srgb.exr"), read_hdr(tmp_path / "model.exr"))
    assert not np.allclose(read_hdr(tmp_path / "model.exr"), read_hdr(tmp_path / "default.exr"))
    code, _, err = cli(
        "predict",
        photos / "b.jpg",
        "-o",
        tmp_path / "x.exr",
        "--model",
        random_model,
        "--response",
        "film",
    )
    assert code != 0 and "--response" in err and not (tmp_path / "x.exr").exists()


@pytest.fixture(scope="module")
def floored_model(tmp_path_factory):
    cfg = HybridConfig(
        decoder_channels=(16, 16, 16, 8, 8, 8),
        target="stops",
        floor="kovaleski2014",
        floor_strength=0.7,
    )
    model = HybridAutoencoder(cfg)
    zero_residual_init(model)  # the linearised input: the floor decides the clipped patch
    return save_model(tmp_path_factory.mktemp("floored") / "m.safetensors", model)


def test_floor_strength_option_sets_how_bold_the_floor_is(cli, photos, floored_model, tmp_path):
    """``--floor-strength S`` predicts as the model bundled with that strength would; the
    default is the model's own; a stronger floor only lifts the clipped patch."""
    from mlx_hdr.infer.model_hub import load_net, with_floor_strength
    from mlx_hdr.infer.pipeline import predict_hdr

    net, ldr = load_net(str(floored_model))[0], read_ldr(photos / "b.jpg")
    outs = {}
    for name, flags, strength in (("0", ["0"], 0.0), ("1", ["1"], 1.0), ("default", [], 0.7)):
        out = tmp_path / f"{name}.exr"
        args = ("-o", out, "--model", floored_model, "--float")
        flags = ["--floor-strength", *flags] if flags else []
        code, _, err = cli("predict", photos / "b.jpg", *args, *flags)
        assert code == 0, err
        want = predict_hdr(ldr, with_floor_strength(net, strength))
        np.testing.assert_allclose(read_hdr(out), want, rtol=1e-5, atol=1e-6)
        outs[name] = read_hdr(out)
    np.testing.assert_allclose(outs["default"], predict_hdr(ldr, net), rtol=1e-5, atol=1e-6)
    patch = np.s_[:10, :10]
    assert (outs["1"][patch] >= outs["0"][patch] - 1e-6).all()
    assert (outs["1"][patch] > outs["0"][patch] + 1e-3).any()


@pytest.mark.parametrize(
    "model_flags,value,problem",
    [
        ("floored", "1.5", "less than or equal to 1"),
        ("random", "0.5", "no floor"),
        ("kovaleski", "0.5", "--method model"),
    ],
)
def test_bad_floor_strength_is_a_usage_error(
    cli, photos, random_model, floored_model, tmp_path, model_flags, value, problem
):
    flags = {
        "floored": ["--model", floored_model],
        "random": ["--model", random_model],
        "kovaleski": ["--method", "kovaleski2014"],
    }[model_flags]
    out = tmp_path / "out"
    code, _, err = cli("predict", photos / "a.jpg", "-o", out, *flags, "--floor-strength", value)
    assert code == 2 and "--floor-strength" in err and problem in err, err
    assert "Traceback" not in err and not out.exists()


def test_model_path_any_name_from_a_folder_with_mlx_hdr(
    cli, monkeypatch, photos, random_model, tmp_path
):
    # run from a folder holding an ``mlx_hdr/`` directory (like the repo root), with the model
    # given by absolute and relative paths, also under a name without ".safetensors"
    work = tmp_path / "work"
    (work / "mlx_hdr").mkdir(parents=True)
    (work / "models").mkdir()
    for name in ("m.safetensors", "model"):
        shutil.copy(random_model, work / "models" / name)
    shutil.copy(random_model, work / "model")
    monkeypatch.chdir(work)
    specs = [random_model, work / "models/model", "models/m.safetensors", "models/model", "model"]
    for k, spec in enumerate(specs):
        out = tmp_path / f"out{k}"
        code, _, err = cli("predict", photos / "a.jpg", "-o", out, "--model", spec)
        assert code == 0, (spec, err)
        assert read_hdr(out / "a.hdr").shape == (40, 56, 3)


def test_single_output_file_exr_float(cli, photos, tmp_path):
    dest = tmp_path / "x.exr"
    code, _, err = cli(
        "predict",
        photos / "a.jpg",
        "-o",
        dest,
        "--method",
        "kovaleski2014",
        "--float",
        "--tonemap",
        "reinhard2002",
    )
    assert code == 0, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.exr", "x_preview.png"]
    assert read_hdr(dest).max() > 1.0  # the clipped patch was expanded


def test_preview_only_and_max_size(cli, photos, tmp_path):
    code, _, err = cli(
        "predict",
        photos,
        "-o",
        tmp_path,
        "--method",
        "linear",
        "--preview-only",
        "--max-size",
        "20",
        "--exposure",
        "1",
    )
    assert code == 3  # broken.jpg failed, the others were written
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_preview.png", "b_preview.png"]
    assert read_ldr(tmp_path / "a_preview.png").shape == (14, 20, 3)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {photos / 'broken.jpg'}: ")


def test_bad_inputs_one_line_each_and_no_partial_outputs(cli, photos, tmp_path):
    missing = tmp_path / "missing.jpg"
    code, _, err = cli(
        "predict",
        photos / "broken.jpg",
        missing,
        tmp_path / "*.png",
        "-o",
        tmp_path / "out",
        "--method",
        "masia2017",
    )
    assert code == 3  # some inputs failed (all three here)
    assert len(err.strip().splitlines()) == 3 and "Traceback" not in err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_a_librarys_warning_names_the_file(cli, photos, tmp_path, recwarn):
    """Pillow's note on a damaged EXIF block says nothing of which file it is about; predict
    prints it once, on one line, with the file in front."""
    from PIL import Image

    exif = Image.Exif()
    exif.get_ifd(0x8769)[0x829A] = 0.01
    src = tmp_path / "cut.jpg"
    Image.open(photos / "a.jpg").save(src, exif=exif.tobytes()[:20], quality=90)
    code, _, err = cli("predict", src, "-o", tmp_path / "out", "--method", "linear")
    assert code == 0, err
    # printed as "warning: <message>" by the CLI; pytest records them instead
    notes = [str(w.message) for w in recwarn if "Corrupt EXIF" in str(w.message)]
    notes += [line.removeprefix("warning: ") for line in err.splitlines() if "Corrupt EXIF" in line]
    assert notes and all(line.startswith(f"{src}: Corrupt EXIF data") for line in notes), notes
    assert len(notes) == len(set(notes))


def test_warnings_naming_prefixes_collapses_and_survives_a_failure(tmp_path):
    import warnings

    from mlx_hdr.errors import warnings_naming

    src = tmp_path / "x.jpg"
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with pytest.raises(ValueError), warnings_naming(src):
            warnings.warn("bad\n  block", UserWarning, stacklevel=1)
            warnings.warn("bad block", UserWarning, stacklevel=1)  # the same note again
            warnings.warn(f"{src}: named already", UserWarning, stacklevel=1)
            raise ValueError("the file failed")
    assert [str(w.message) for w in seen] == [f"{src}: bad block", f"{src}: named already"]
    own = warnings_naming.__wrapped__.__code__.co_filename  # a file of this package
    out = tmp_path / "out.jpg"
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with warnings_naming(src):  # this package's own notes name their file already
            warnings.warn_explicit(f"{out}: written with boost 1", UserWarning, own, 1)
    assert [str(w.message) for w in seen] == [f"{out}: written with boost 1"]
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with warnings_naming(src):  # Pillow: one note per damaged EXIF tag
            for tag in range(7):
                warnings.warn(f"Tag data larger than file. Skipping tag {tag}", stacklevel=1)
            warnings.warn_explicit(f"{out}: written with boost 1", UserWarning, own, 1)
    assert [str(w.message) for w in seen] == [
        *(f"{src}: Tag data larger than file. Skipping tag {tag}" for tag in range(3)),
        f"{out}: written with boost 1",
        f"{src}: and 4 more notes like these",
    ]


def test_never_overwrites_an_input(cli, photos, tmp_path):
    # `predict x.png -o x.png --preview-only` used to replace the photo with its own preview
    src = tmp_path / "x.png"
    write_ldr(src, read_ldr(photos / "a.jpg"))
    before = src.read_bytes()
    code, _, err = cli("predict", src, "-o", src, "--preview-only", "--method", "linear")
    assert code == 2  # refused before any work
    assert err == f"error: {src}: output {src} would overwrite an input; choose another -o\n"
    assert src.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["x.png"]


def test_never_overwrites_an_input_under_another_name_for_it(cli, photos, tmp_path):
    """On macOS's case-insensitive disks ``IMG.PNG``'s output ``img.png`` is the photo
    itself; a hard link stands in for that here."""
    src = tmp_path / "IMG.PNG"
    write_ldr(src, read_ldr(photos / "a.jpg"))
    try:
        os.link(src, tmp_path / "img.png")
    except FileExistsError:  # a case-insensitive disk: the name is the photo's already
        pass
    before = src.read_bytes()
    args = ["-o", tmp_path / "img.png", "--preview-only", "--method", "linear"]
    code, _, err = cli("predict", src, *args)
    assert code == 2 and "would overwrite an input" in err, err
    assert src.read_bytes() == before


@pytest.mark.parametrize("stem", ["写真" * 39, "😀" * 60])  # 234 and 240 bytes
def test_a_name_near_the_file_systems_limit_is_written(cli, photos, tmp_path, stem):
    """The temporary file's name had been 13 bytes longer than the output's: an output
    name of 243-255 bytes (78 CJK characters) could not be written."""
    src = tmp_path / f"{stem}.jpg"
    src.write_bytes((photos / "a.jpg").read_bytes())
    code, _, err = cli("predict", src, "-o", tmp_path / "out", "--method", "linear")
    assert code == 0, err
    assert {p.name for p in (tmp_path / "out").iterdir()} == {
        src.stem + ".hdr",
        src.stem + "_preview.png",
    }


def test_output_errors_name_the_output(cli, photos, tmp_path):
    # -o naming an existing file: the error used to be "<input>: File exists"
    taken = tmp_path / "taken"
    taken.write_text("not a folder")
    code, _, err = cli("predict", photos / "a.jpg", "-o", taken, "--method", "linear")
    assert code == 2
    assert err == f"error: {taken}: exists and is not a folder\n"


@pytest.mark.parametrize(
    "args,name",
    [
        (["--work-pixels", "100"], "--work-pixels"),
        (["--exposure", "nan"], "--exposure"),
        (["--max-size", "-5"], "--max-size"),
    ],
)
def test_bad_numbers_are_usage_errors(cli, photos, random_model, tmp_path, args, name):
    # bad numbers used to fail every file with a traceback after loading the model,
    # and a negative --max-size shrank every image to 1x1
    out = tmp_path / "out"
    code, _, err = cli("predict", photos / "a.jpg", "-o", out, "--model", random_model, *args)
    assert code == 2 and name in err and "Traceback" not in err, err
    assert not out.exists()


def test_model_with_nan_weights_is_refused(cli, photos, random_model, tmp_path):
    # such a model used to write an all-NaN EXR (and a black preview) with exit code 0
    import mlx.core as mx

    arrays, meta = mx.load(str(random_model), return_metadata=True)
    key = sorted(arrays)[0]
    arrays[key] = mx.full(arrays[key].shape, mx.nan, arrays[key].dtype)
    bad = tmp_path / "nan.safetensors"
    mx.save_safetensors(str(bad), arrays, metadata=meta)
    out = tmp_path / "out"
    code, _, err = cli(
        "predict",
        photos / "a.jpg",
        "-o",
        out,
        "--model",
        bad,
        "--format",
        "exr",
    )
    assert code == 1 and err == f"error: {bad}: 1 weights hold NaN or inf values ({key})\n"
    assert not out.exists()


def test_model_with_integer_norm_weights_is_refused(cli, photos, random_model, tmp_path):
    # int32 norm scales used to be cast to float and used without a word
    import mlx.core as mx

    arrays, meta = mx.load(str(random_model), return_metadata=True)
    for key in ("blocks.0.norm1.weight", "blocks.0.norm2.weight"):
        arrays[key] = mx.ones(arrays[key].shape, mx.int32)
    bad = tmp_path / "int.safetensors"
    mx.save_safetensors(str(bad), arrays, metadata=meta)
    out = tmp_path / "out"
    code, _, err = cli("predict", photos / "a.jpg", "-o", out, "--model", bad)
    assert code == 1 and err == (
        f"error: {bad}: 2 weights are not floating point "
        "(blocks.0.norm1.weight int32, blocks.0.norm2.weight int32)\n"
    )
    assert not out.exists()


def test_model_resolution_errors(cli, monkeypatch, photos, tmp_path):
    monkeypatch.setattr(model_hub, "BUNDLED", "assets/does-not-exist.safetensors")
    code, _, err = cli("predict", photos / "a.jpg", "-o", tmp_path)
    assert code == 1 and err.startswith("error: no bundled model yet") and err.count("\n") == 1
    code, _, err = cli("predict", photos / "a.jpg", "--model", "nope.safetensors")
    assert code == 1 and "model file not found" in err
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(WeightsError, match="someone/no-such-repo"):
        model_hub.resolve_model("someone/no-such-repo")
    assert list(tmp_path.iterdir()) == []


def test_image_output_names_and_repeated_inputs_run_once(cli, photos, tmp_path):
    # `-o out.jpg` used to create a folder called out.jpg; now one input gets its gain-map JPEG
    # there, several inputs (and TIFF/HEIC names) are refused; a repeated input "collided"
    target = tmp_path / "out.jpg"
    for args, problem in (
        ([photos / "a.jpg", photos / "b.jpg"], "is a file name, but there are several inputs"),
        ([photos / "a.jpg", "-o", tmp_path / "x.tif"], "cannot write this type"),
        ([photos / "a.jpg", "-o", tmp_path / "x.heic"], "cannot write this type"),
    ):
        args = args if "-o" in args else [*args, "-o", target]
        code, _, err = cli("predict", *args, "--method", "kovaleski2014")
        assert code == 2 and err.startswith(f"error: {args[-1]}: {problem}"), err
        assert err.count("\n") == 1 and list(tmp_path.iterdir()) == []
    args = ("predict", photos / "a.jpg", "-o", target, "--method", "kovaleski2014")
    code, _, err = cli(*args)
    assert code == 0 and [p.name for p in tmp_path.iterdir()] == ["out.jpg"]
    assert read_ldr(target).shape == (40, 56, 3)
    target.unlink()
    a = photos / "a.jpg"
    code, out, err = cli(
        "predict",
        a,
        str(a),
        photos / "." / "a.jpg",
        "-o",
        tmp_path,
        "--method",
        "linear",
    )
    assert (
        code == 0
        and err == ""
        and sorted(p.name for p in tmp_path.iterdir())
        == [
            "a.hdr",
            "a_preview.png",
        ]
    )


def test_sky_ceiling_and_daylight_floor_options_reach_the_model(cli, photos, tmp_path, monkeypatch):
    """``--sky-ceiling C`` and ``--daylight-floor F`` (cd/m², 0: off; the floor off by
    default) reach ``predict_hdr`` with the photo's EXIF exposure (none in these photos)."""
    import mlx_hdr.infer.pipeline as pipeline
    from mlx_hdr.infer.exposure import SKY_CEILING

    seen = []
    real = pipeline.predict_hdr

    def spy(*args, exposure=None, sky_ceiling=None, daylight_floor=None, **kw):
        seen.append((exposure, sky_ceiling, daylight_floor))
        return real(*args, exposure=exposure, sky_ceiling=sky_ceiling, **kw)

    monkeypatch.setattr(pipeline, "predict_hdr", spy)
    runs = ([], ["--sky-ceiling", "0"], ["--sky-ceiling", "20000"], ["--daylight-floor", "0"])
    for flags in (*runs, ["--daylight-floor", "2000"]):
        code, _, err = cli("predict", photos / "a.jpg", "-o", tmp_path / "o", *flags)
        assert code == 0, err
    c = SKY_CEILING
    assert seen == [(None, c, None), (None, None, None), (None, 20000.0, None)] + [
        (None, c, None),
        (None, c, 2000.0),
    ]


def test_file_ids_of_a_file_gone_or_without_inode_numbers_match_nothing(tmp_path, monkeypatch):
    """Some network and FUSE mounts give every file inode 0: every existing output had been
    taken for an input."""
    from types import SimpleNamespace

    from mlx_hdr.infer.outputs import file_id

    assert file_id(tmp_path / "gone.jpg") is None
    (tmp_path / "a.jpg").write_bytes(b"x")
    assert file_id(tmp_path / "a.jpg") is not None
    monkeypatch.setattr(Path, "stat", lambda self, **kw: SimpleNamespace(st_dev=1, st_ino=0))
    assert file_id(tmp_path / "a.jpg") is None
