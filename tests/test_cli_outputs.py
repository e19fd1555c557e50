"""What ``predict`` (and ``convert``) write, and the refusals found before any work: full
disks, inputs sharing a stem, option values out of range, file names given for folders."""

from __future__ import annotations

import errno
import os
import sys
from pathlib import Path

import numpy as np
import pytest

from mlx_hdr.cli import main
from mlx_hdr.io import hdr_io
from mlx_hdr.io.image_io import read_hdr, write_ldr

NO_SPACE = os.strerror(errno.ENOSPC)


@pytest.fixture
def pics(tmp_path):
    """``in/a.jpg``, ``in/b.jpg`` and ``in/a.png`` (a stem shared with a.jpg)."""
    rng = np.random.default_rng(1)
    (tmp_path / "in").mkdir()
    for name in ("a.jpg", "b.jpg", "a.png"):
        write_ldr(tmp_path / "in" / name, rng.uniform(0, 1, (24, 32, 3)))
    return tmp_path / "in"


def names(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def full_disk(fail_on: str, exc: Exception):
    """A writer for ``hdr_io`` that writes part of the file, then fails like a full disk
    for outputs whose name starts with ``fail_on`` (and writes the others as usual)."""
    real = {"write_exr": hdr_io.write_exr, "write_rgbe": hdr_io.write_rgbe}

    def make(name):
        def writer(path, img, *args):
            if path.name.startswith(f".{fail_on}."):  # the temporary name of the output
                path.write_bytes(b"partial")
                raise exc
            return real[name](path, img, *args)

        return writer

    return make


@pytest.mark.parametrize("fmt,writer", [("exr", "write_exr"), ("hdr", "write_rgbe")])
@pytest.mark.parametrize(
    "exc",
    [
        OSError(errno.ENOSPC, NO_SPACE),
        # what OpenEXR raises on a full disk (it used to end the batch with a traceback)
        RuntimeError(f'Failed to write pixel data to image file "x.exr". {NO_SPACE}.'),
    ],
)
def test_full_disk_is_one_line_per_file_and_the_batch_goes_on(
    cli, monkeypatch, pics, tmp_path, fmt, writer, exc
):
    monkeypatch.setattr(hdr_io, writer, full_disk("a", exc)(writer))
    out = tmp_path / "out"
    args = [pics / "a.jpg", pics / "b.jpg", "-o", out, "--method", "linear", "--format", fmt]
    code, _, err = cli("predict", *args)
    assert code == 3
    assert err == f"error: {pics / 'a.jpg'}: {out / ('a.' + fmt)}: cannot write ({NO_SPACE})\n"
    assert names(out) == [f"b.{fmt}", "b_preview.png"]  # no partial or temporary file of a
    assert read_hdr(out / f"b.{fmt}").shape == (24, 32, 3)


@pytest.mark.parametrize("fmt,name", [("uhdr", "a_uhdr.jpg"), ("avif", "a.avif")])
def test_full_disk_in_the_gain_map_and_avif_writers(cli, monkeypatch, pics, tmp_path, fmt, name):
    # both encode in memory, then write through atomic_write like the other outputs
    real = Path.write_bytes
    temporary = f".{Path(name).stem}."

    def write_bytes(path, data):
        if path.name.startswith(temporary):
            real(path, data[:100])
            raise OSError(errno.ENOSPC, NO_SPACE)
        return real(path, data)

    monkeypatch.setattr(Path, "write_bytes", write_bytes)
    out = tmp_path / "out"
    args = [pics / "a.jpg", pics / "b.jpg", "-o", out, "--method", "kovaleski2014"]
    code, _, err = cli("predict", *args, "--format", fmt)
    assert code == 3
    assert err == f"error: {pics / 'a.jpg'}: {out / name}: cannot write ({NO_SPACE})\n"
    assert names(out) == [name.replace("a", "b", 1), *(["b_preview.png"] * (fmt == "avif"))]


def test_inputs_sharing_a_stem_get_distinct_names(cli, monkeypatch, pics, tmp_path):
    # a.jpg and a.png used to be written as in_a.hdr and then refused as a collision
    out = tmp_path / "out"
    code, _, err = cli("predict", pics, "-o", out, "--method", "linear")
    assert code == 0, err
    assert names(out) == [
        "a_jpg.hdr",
        "a_jpg_preview.png",
        "a_png.hdr",
        "a_png_preview.png",
        "b.hdr",
        "b_preview.png",
    ]
    # from the current folder (no folder name in the paths): the same names
    monkeypatch.chdir(pics)
    code, _, err = cli("predict", "a.jpg", "a.png", "-o", tmp_path / "o2")
    assert code == 0, err
    assert names(tmp_path / "o2")[::2] == ["a_jpg.hdr", "a_png.hdr"]


def test_inputs_in_folders_of_one_name_take_the_folders_above(cli, pics, tmp_path):
    # 2023/jpg/a.jpg, 2024/jpg/a.jpg (and a.png beside the first) had been refused
    for sub in ("2023/jpg", "2024/jpg"):
        (tmp_path / sub).mkdir(parents=True)
        (tmp_path / sub / "a.jpg").write_bytes((pics / "a.jpg").read_bytes())
    (tmp_path / "2023/jpg/a.png").write_bytes((pics / "a.png").read_bytes())
    out = tmp_path / "out"
    code, _, err = cli("predict", tmp_path / "2023/jpg", tmp_path / "2024/jpg", "-o", out)
    assert code == 0, err
    assert names(out)[::2] == ["2023_jpg_a_jpg.hdr", "2023_jpg_a_png.hdr", "2024_jpg_a_jpg.hdr"]


def test_inputs_that_cannot_be_told_apart_are_refused_up_front(cli, pics, tmp_path):
    # a.jpg and a.JPG in one folder: one file where names ignore case (macOS)
    one, two = tmp_path / "a.jpg", tmp_path / "a.JPG"
    for p in (one, two):
        p.write_bytes((pics / "a.jpg").read_bytes())
    (tmp_path / "b").mkdir()
    three = tmp_path / "b" / "a.jpg"  # told apart by its folder: not the pair named
    three.write_bytes((pics / "a.jpg").read_bytes())
    out = tmp_path / "out"
    code, _, err = cli("predict", one, three, two, "-o", out, "--method", "linear")
    assert code == 2
    assert err == f"error: {two}: {one} and {two} would get the same output name; rename one\n"
    assert not out.exists()


@pytest.mark.parametrize("args", [["", "-o", "out"], ["a.jpg", "-o", ""], ["a.jpg", "--model", ""]])
def test_an_empty_name_is_refused_not_taken_for_the_current_folder(cli, pics, args, monkeypatch):
    # `predict "$PHOTOS" -o "$OUT"` with a variable unset had run on, or into, the current folder
    monkeypatch.chdir(pics)
    code, _, err = cli("predict", *args)
    assert code == 2 and "an empty name (an unset variable?)" in err, err
    assert sorted(p.name for p in pics.iterdir()) == ["a.jpg", "a.png", "b.jpg"]


@pytest.mark.parametrize("value", ["128", "-21", "1e308", "inf"])
def test_exposure_out_of_range_is_a_usage_error(cli, pics, tmp_path, value):
    # +128 EV wrote an all-black preview with exit code 0; 1e308 a traceback after the .hdr
    out = tmp_path / "out"
    code, _, err = cli("predict", pics / "a.jpg", "-o", out, "--exposure", value)
    assert code == 2 and "--exposure" in err and "between -20 and 20" in err, err
    assert "Traceback" not in err and not out.exists()


@pytest.mark.parametrize("extra", [["b.jpg"], []])
def test_a_file_name_is_never_made_a_folder(cli, pics, tmp_path, extra):
    # -o x.exr with several inputs (or a folder input) used to create a folder named x.exr
    inputs = [pics / "a.jpg", *(pics / e for e in extra)] if extra else [pics]
    dest = tmp_path / "x.exr"
    code, _, err = cli("predict", *inputs, "-o", dest, "--method", "linear")
    assert code == 2
    assert err == f"error: {dest}: is a file name, but there are several inputs; name a folder\n"
    assert names(tmp_path) == ["in"]


def test_an_unwritable_file_type_is_refused(cli, pics, tmp_path):
    dest = tmp_path / "x.txt"  # used to become a folder holding a.hdr
    code, _, err = cli("predict", pics / "a.jpg", "-o", dest)
    assert code == 2 and err == (
        f"error: {dest}: cannot write this type: name a folder (a new one with a dot ends "
        "in /) or a .hdr/.exr/.pfm/.avif/.png/.jpg/.jpeg file\n"
    )
    assert names(tmp_path) == ["in"]
    code, _, err = cli(
        "predict", pics / "a.jpg", "-o", f"{tmp_path / 'v1.2'}/", "--method", "linear"
    )
    assert code == 0, err  # a trailing slash: a new folder, whatever its name
    assert sorted(p.name for p in (tmp_path / "v1.2").iterdir()) == ["a.hdr", "a_preview.png"]


def test_convert_refuses_a_file_name_of_another_type(monkeypatch, capsys, tmp_path):
    # `convert ... -o out.txt` used to write out.txt/<arch>.safetensors
    dest = tmp_path / "out.txt"
    src = tmp_path / "missing.pth"
    monkeypatch.setattr(sys, "argv", ["mlx-hdr", "convert", "vgg16", str(src), "-o", str(dest)])
    with pytest.raises(SystemExit) as exit_:
        main()
    code, err = exit_.value.code, capsys.readouterr().err
    assert code == 2
    assert err == f"error: {dest}: cannot write this type: name a .safetensors file or a folder\n"
    assert not dest.exists()


def test_max_pixels_flag_sets_the_decompression_bomb_limit(cli, pics, tmp_path):
    out = tmp_path / "out"
    args = ["predict", pics / "a.jpg", "-o", out, "--method", "linear"]
    code, _, err = cli(*args, "--max-pixels", "500")
    assert code == 3 and "above the 0.0005 MP limit" in err and "--max-pixels" in err, err
    code, _, err = cli(*args, "--max-pixels", "768")  # 24 x 32
    assert code == 0 and names(out) == ["a.hdr", "a_preview.png"], err
    code, _, err = cli(*args, "--max-pixels", "0")
    assert code == 2 and "--max-pixels" in err


@pytest.mark.parametrize(
    ("args", "hint"),
    [
        (["convert", "lpips_vgg", "v.pth", "-o", ""], "--output"),
        (["convert", "lpips_vgg", ""], "SRC"),
        (["data", "index", ""], "DIRECTORY"),
        (["data", "index", "ds", "-o", ""], "--output"),
        (["data", "check", ""], "PATH"),
        (["data", "brackets", "", "-o", "set"], "PHOTOS"),
        (["data", "brackets", "a.jpg", "b.jpg", "-o", ""], "--output"),
        (["bundle", "", "-o", "m.safetensors"], "MODEL"),
        (["bundle", "m.safetensors", "-o", ""], "--out"),
        (["bundle", "m.safetensors", "--checkpoint", "", "-o", "b.safetensors"], "--checkpoint"),
        (["train", "--data", ""], "--data"),
        (["train", "--data", "pool", "--run-dir", ""], "--run-dir"),
        (["train", "--config", ""], "--config"),
        (["train", "--data", "pool", "--init-model", ""], "--init-model"),
    ],
)
def test_every_command_refuses_an_empty_name(pics, args, hint, monkeypatch, capsys):
    # convert -o "" had written into the current folder, data brackets "" merged its photos,
    # train --run-dir "" would have run in it
    from mlx_hdr.cli import main

    monkeypatch.chdir(pics)
    monkeypatch.setattr("sys.argv", ["mlx-hdr", *args])
    with pytest.raises(SystemExit) as done:
        main()
    code, err = done.value.code, capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert err.startswith(f"error: Invalid value for {hint}: an empty name (an unset variable?)")
    assert sorted(p.name for p in pics.iterdir()) == ["a.jpg", "a.png", "b.jpg"]
