"""``evaluate`` on a tiny synthetic scenes dataset (and on eval-public when present)."""

from __future__ import annotations

import csv
import shutil
import sys

import numpy as np
import pytest

from mlx_hdr.cli import main
from mlx_hdr.color import linear_to_srgb
from mlx_hdr.errors import InputError
from mlx_hdr.eval.evaluate import evaluate
from mlx_hdr.io.image_io import read_hdr, write_hdr, write_ldr


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("scenes")
    rng = np.random.default_rng(0)
    for case in ("one", "two"):
        gt = rng.uniform(0.02, 0.8, (32, 40, 3)).astype(np.float32)
        gt[:8, :8] = 6.0  # a highlight the input clips
        (root / case).mkdir()
        write_hdr(root / case / "gt.hdr", gt * 3.0)  # arbitrary absolute scale
        write_ldr(root / case / "input.png", linear_to_srgb(gt))
    return root


def test_evaluate_writes_csv_summary_and_sheets(dataset, tmp_path):
    report = evaluate(dataset, tmp_path, ["linear", "kovaleski2014"], progress=False)
    rows = list(csv.DictReader((tmp_path / "metrics.csv").open()))
    assert [(r["case"], r["method"]) for r in rows] == [
        ("one", "linear"),
        ("one", "kovaleski2014"),
        ("two", "linear"),
        ("two", "kovaleski2014"),
    ]
    lin = report.means["linear"]
    # the linearised input is exact except the 6.0 highlight, clipped to 1: log2(6) error
    assert lin["highlight_log2"] == pytest.approx(np.log2(6.0), abs=0.05)
    assert 15 < lin["pu21_psnr"] < 40  # exact except the clipped 4% of pixels
    # expanding the highlight (up to 4x) must reduce the highlight error
    assert report.means["kovaleski2014"]["highlight_log2"] < lin["highlight_log2"]
    summary = (tmp_path / "summary.md").read_text()
    assert "| linear |" in summary and "| kovaleski2014 |" in summary
    assert (tmp_path / "sheets" / "one.png").is_file()


def test_evaluate_cli_unknown_method(dataset, tmp_path, monkeypatch, capsys):
    argv = ["mlx-hdr", "evaluate", str(dataset), "--method", "nope", "-o", str(tmp_path)]
    monkeypatch.setattr(sys, "argv", [*argv, "--no-progress"])
    with pytest.raises(SystemExit) as exc:
        main()
    assert exc.value.code == 2  # a usage error: nothing was done
    assert capsys.readouterr().err.startswith("error: unknown method 'nope'")


def test_evaluate_cli_output_folder_error_is_one_line(dataset, tmp_path, monkeypatch, capsys):
    # -o naming an existing file: mkdir's NotADirectoryError used to end in a traceback
    (tmp_path / "taken").write_text("not a folder")
    argv = [
        "mlx-hdr",
        "evaluate",
        str(dataset),
        "--method",
        "linear",
        "-o",
        str(tmp_path / "taken"),
    ]
    monkeypatch.setattr(sys, "argv", [*argv, "--no-progress"])
    with pytest.raises(SystemExit) as exc:
        main()
    err = capsys.readouterr().err
    assert exc.value.code == 2  # a usage error, said before any case is run
    taken = tmp_path / "taken"
    assert (
        err == f"error: {taken}: exists and is not a folder: -o names the folder for the results\n"
    )


def test_evaluate_cli_reports_unpaired_files(dataset, tmp_path, monkeypatch, capsys):
    # a scene with only its ground truth and a folder with only an input were skipped silently
    root = tmp_path / "data"
    shutil.copytree(dataset, root)
    (root / "two" / "input.png").unlink()
    (root / "three").mkdir()
    shutil.copy(dataset / "one" / "input.png", root / "three" / "input.png")
    argv = ["mlx-hdr", "evaluate", str(root), "--method", "linear", "-o", str(tmp_path / "out")]
    monkeypatch.setattr(sys, "argv", [*argv, "--no-progress"])
    with pytest.raises(SystemExit) as exc:
        main()
    err = capsys.readouterr().err
    assert exc.value.code == 3, err  # some failed: not 2, the usage-error code
    assert err.splitlines() == [
        f"error: {root}/two/gt.hdr: scene two has no input photo beside its ground truth; skipped",
        f"error: {root}/three/input.png: no input/ground-truth partner; skipped",
    ]
    rows = list(csv.DictReader((tmp_path / "out" / "metrics.csv").open()))
    assert [r["case"] for r in rows] == ["one"]


def test_a_truth_stored_turned_is_scored_turned_back(dataset, tmp_path):
    """Some SingleHDR ground truths are stored rotated or mirrored: evaluate turns them back
    as ``data index`` does for training, and says so (a quarter turn of a non-square image
    had been refused, a half turn scored misaligned)."""
    root = tmp_path / "data"
    shutil.copytree(dataset, root)
    for case, turn in (("one", lambda a: np.rot90(a)), ("two", lambda a: a[::-1, ::-1])):
        write_hdr(root / case / "gt.hdr", turn(read_hdr(dataset / case / "gt.hdr")))
    with pytest.warns(UserWarning, match="stored turned from its input") as said:
        report = evaluate(root, tmp_path / "out", ["linear"], progress=False)
    assert {str(w.message).split(":")[0] for w in said} == {
        str(root / c / "gt.hdr") for c in ("one", "two")
    }
    straight = evaluate(dataset, tmp_path / "ref", ["linear"], progress=False)
    assert report.means["linear"] == pytest.approx(straight.means["linear"], rel=1e-6)


def test_summary_names_what_is_not_in_its_means(dataset, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(dataset, root)
    (root / "two" / "input.png").unlink()
    evaluate(root, tmp_path / "out", ["linear", "linear"], progress=False)  # each method once
    summary = (tmp_path / "out" / "summary.md").read_text()
    assert summary.count("| linear |") == 1 and "(1 case; 1 not scored)" in summary
    why = "scene two has no input photo beside its ground truth; skipped"
    assert summary.endswith(f"Not in the means:\n\n- {root}/two/gt.hdr: {why}\n")
    (tmp_path / "sheetless" / "sheets" / "one.png").mkdir(parents=True)  # a sheet it loses
    evaluate(root, tmp_path / "sheetless", ["linear"], progress=False)
    summary = (tmp_path / "sheetless" / "summary.md").read_text()
    assert "(1 case; 1 not scored)" in summary and "one.png" not in summary  # one is scored
    (tmp_path / "pool").mkdir()
    shutil.copy(dataset / "one" / "gt.hdr", tmp_path / "pool" / "a.hdr")
    with pytest.raises(InputError, match=r"no LDR/HDR pairs found \(HDR images without their"):
        evaluate(tmp_path / "pool", tmp_path / "p", ["linear"], progress=False)
    shutil.copy(dataset / "one" / "input.png", tmp_path / "pool" / "a.png")  # beside it
    with pytest.raises(InputError, match=r"found \(expected LDR_in/ \+ HDR_gt/"):
        evaluate(tmp_path / "pool", tmp_path / "p", ["linear"], progress=False)
    shutil.rmtree(root / "one")
    with pytest.raises(InputError, match=r"no LDR/HDR pairs found \(gt\.hdr: scene two has no"):
        evaluate(root, tmp_path / "none", ["linear"], progress=False)


def test_eval_public_linear_matches_reference(shared, tmp_path):
    report = evaluate(shared / "data" / "eval-public", tmp_path, ["linear"], progress=False)
    m = report.means["linear"]
    # independent reference implementation: 26.34 / 0.9430 / 31.49 / 0.68
    assert m["pu21_psnr"] == pytest.approx(26.34, abs=0.05)
    assert m["pu21_ssim"] == pytest.approx(0.9430, abs=0.002)
    assert m["mu_psnr"] == pytest.approx(31.49, abs=0.05)
    assert m["highlight_log2"] == pytest.approx(0.68, abs=0.01)
    # log-domain metrics in cd/m^2 (input white = 200), the reference table's convention
    assert m["log_psnr"] == pytest.approx(16.03, abs=0.1)
    assert m["log_ssim"] == pytest.approx(0.416, abs=0.005)


def test_net_for_methods_loads_only_what_is_asked(tmp_path):
    from mlx_hdr.errors import WeightsError
    from mlx_hdr.eval.evaluate import net_for_methods

    missing = str(tmp_path / "missing.safetensors")
    with pytest.warns(UserWarning, match="not used: --method does not name model"):
        assert net_for_methods(["linear"], missing) is None  # never touches the file
    for methods in (None, ["model"]):
        with pytest.raises(WeightsError, match="missing.safetensors"):
            net_for_methods(methods, missing)


def _with_gt(dataset, root, case: str, gt) -> None:
    """A copy of ``dataset`` whose ``case`` has ``gt`` as its ground truth."""
    shutil.copytree(dataset, root)
    write_hdr(root / case / "gt.hdr", gt)


def test_huge_ground_truth_values_give_finite_metrics(dataset, tmp_path):
    # a ground truth with finite pixels near float32's limit (~1e38) gave NaN log-domain
    # metrics without a word (x * 200 cd/m² overflowed to inf)
    from mlx_hdr.io.image_io import read_hdr

    gt = read_hdr(dataset / "one" / "gt.hdr")
    gt[:2, :2] = 1e38
    _with_gt(dataset, tmp_path / "data", "one", gt)
    report = evaluate(tmp_path / "data", tmp_path / "out", ["linear"], progress=False)
    one = next(r for r in report.rows if r["case"] == "one")
    assert all(np.isfinite(one[k]) for k in ("log_psnr", "log_ssim", "log_l1", "pu21_psnr"))
    assert "nan" not in (tmp_path / "out" / "summary.md").read_text()


def test_black_ground_truth_is_refused(dataset, tmp_path):
    # an all-zero ground truth used to give degenerate metrics without a warning
    root = tmp_path / "data"
    _with_gt(dataset, root, "two", np.zeros((32, 40, 3), np.float32))
    problems = []
    report = evaluate(
        root, tmp_path / "out", ["linear"], on_error=lambda *a: problems.append(a), progress=False
    )
    assert problems == [
        (
            "two",
            f"{root / 'two' / 'gt.hdr'}: ground truth is black (every pixel 0): "
            "no metric means anything",
        )
    ]
    assert [r["case"] for r in report.rows] == ["one"]


def test_where_every_case_fails_nothing_is_written_and_an_earlier_report_stays(
    dataset, tmp_path, monkeypatch, capsys
):
    # it had written an empty metrics.csv and summary.md over the earlier ones, and said so
    root, out = tmp_path / "data", tmp_path / "out"
    shutil.copytree(dataset, root)
    argv = ["mlx-hdr", "evaluate", str(root), "--method", "linear", "-o", str(out)]
    monkeypatch.setattr(sys, "argv", [*argv, "--no-progress"])
    with pytest.raises(SystemExit) as exc:
        main()
    assert exc.value.code == 0
    earlier = (out / "metrics.csv").read_bytes(), (out / "summary.md").read_bytes()
    for case in ("one", "two"):
        (root / case / "gt.hdr").write_bytes(b"#?RADIANCE\n")  # cut short
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        main()
    said = capsys.readouterr()
    assert exc.value.code == 3 and said.out == "wrote nothing\n", said
    assert said.err.count("\n") == 2 and said.err.startswith("error: ")
    assert ((out / "metrics.csv").read_bytes(), (out / "summary.md").read_bytes()) == earlier
    assert sorted(p.name for p in (out / "sheets").iterdir()) == ["one.png", "two.png"]
    new = tmp_path / "new"
    monkeypatch.setattr(sys, "argv", [*argv[:-1], str(new), "--no-progress"])
    with pytest.raises(SystemExit) as exc:
        main()
    assert exc.value.code == 3 and list(new.iterdir()) == []  # no empty sheets/ either


def test_a_sheet_on_a_full_disk_is_reported_and_the_run_goes_on(dataset, tmp_path, monkeypatch):
    # a write error used to end the evaluation with a traceback
    import errno
    import os

    from PIL import Image

    real = Image.Image.save

    def save(img, path, *args, **kwargs):
        if path.name.startswith(".one."):  # the temporary file of sheets/one.png
            path.write_bytes(b"partial")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(img, path, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "save", save)
    problems = []
    out = tmp_path / "out"
    report = evaluate(
        dataset, out, ["linear"], on_error=lambda *a: problems.append(a), progress=False
    )
    assert problems == [
        ("one", f"{out / 'sheets' / 'one.png'}: cannot write (No space left on device)")
    ]
    assert [r["case"] for r in report.rows] == ["one", "two"]  # the metrics are kept
    assert sorted(p.name for p in (out / "sheets").iterdir()) == ["two.png"]


def test_evaluate_flip_and_response_reach_the_model(dataset, tmp_path, monkeypatch):
    """``flip`` and ``response`` reach ``predict_hdr`` (which uses them for the model only);
    the response defaults to the camera curve, the mirror mean to auto (None)."""
    import mlx_hdr.eval.evaluate as ev

    seen = []

    def fake_predict(ldr, net, method, blend=True, flip=False, response="srgb", **kw):
        seen.append((method, flip, response))
        return np.ones_like(ldr)

    monkeypatch.setattr(ev, "predict_hdr", fake_predict)
    for flip in (False, True):
        out = tmp_path / str(flip)
        evaluate(dataset, out, ["linear", "model"], net=object(), progress=False, flip=flip)
    evaluate(dataset, tmp_path / "s", ["model"], net=object(), progress=False, response="srgb")
    assert set(seen) == {
        ("linear", False, "camera"),
        ("model", False, "camera"),
        ("linear", True, "camera"),
        ("model", True, "camera"),
        ("model", None, "srgb"),
    }


def test_evaluate_floor_strength_reaches_the_model(dataset, tmp_path, monkeypatch, capsys):
    """``--floor-strength`` runs the model with that floor strength; without a model to set
    it on it is a usage error before any work."""
    import mlx_hdr.eval.evaluate as ev

    seen = []

    def fake_predict(ldr, net, method, blend=True, flip=False, response="srgb", **kw):
        seen.append(getattr(getattr(net, "config", None), "floor_strength", None))
        return np.ones_like(ldr)

    monkeypatch.setattr(ev, "predict_hdr", fake_predict)
    base = ["mlx-hdr", "evaluate", str(dataset), "--no-progress", "--floor-strength", "0.3"]
    monkeypatch.setattr(sys, "argv", [*base, "--method", "model", "-o", str(tmp_path / "m")])
    with pytest.raises(SystemExit) as exc:
        main()
    assert exc.value.code == 0
    assert seen == [0.3, 0.3]  # one per case, the bundled model at 0.3 instead of its own
    monkeypatch.setattr(sys, "argv", [*base, "--method", "linear", "-o", str(tmp_path / "l")])
    with pytest.raises(SystemExit) as exc:
        main()
    assert exc.value.code == 2 and "--floor-strength" in capsys.readouterr().err
    assert not (tmp_path / "l").exists()


def test_evaluate_sky_ceiling_and_exposure_reach_the_model(dataset, tmp_path, monkeypatch):
    """Each case's EXIF exposure (none in PNG inputs), ``--sky-ceiling`` and
    ``--daylight-floor`` (0: off) reach ``predict_hdr``."""
    import mlx_hdr.eval.evaluate as ev
    from mlx_hdr.infer.exposure import SKY_CEILING

    seen = []

    def fake_predict(ldr, net, method, exposure=None, sky_ceiling=None, daylight_floor=0, **kw):
        seen.append((exposure, sky_ceiling, daylight_floor))
        return np.ones_like(ldr)

    monkeypatch.setattr(ev, "predict_hdr", fake_predict)
    base = ["mlx-hdr", "evaluate", str(dataset), "--no-progress", "--method", "model"]
    runs = (("on", []), ("off", ["--sky-ceiling", "0"]), ("df", ["--daylight-floor", "3000"]))
    for name, flags in runs:
        monkeypatch.setattr(sys, "argv", [*base, *flags, "-o", str(tmp_path / name)])
        with pytest.raises(SystemExit) as exc:
            main()
        assert exc.value.code == 0
    c = SKY_CEILING
    assert seen == [(None, c, None)] * 2 + [(None, None, None)] * 2 + [(None, c, 3000.0)] * 2


def test_a_librarys_warning_names_the_case_file(dataset, tmp_path, recwarn):
    """Pillow's note on a damaged EXIF block names no file; evaluate puts the input in front
    (a case has two files, so the note must say which)."""
    from PIL import Image

    root = tmp_path / "data"
    shutil.copytree(dataset, root)
    src = root / "one" / "input.jpg"
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0x829A] = 0.01
    Image.open(root / "one" / "input.png").save(src, exif=exif.tobytes()[:20], quality=95)
    (root / "one" / "input.png").unlink()
    report = evaluate(root, tmp_path / "out", ["linear"], progress=False)
    assert [r["case"] for r in report.rows] == ["one", "two"]
    notes = [str(w.message) for w in recwarn if "Corrupt EXIF" in str(w.message)]
    assert notes and all(note.startswith(f"{src}: Corrupt EXIF data") for note in notes), notes
    assert len(notes) == len(set(notes))


def test_bad_expandnet_weights_stop_the_run_before_any_case(dataset, tmp_path, monkeypatch):
    """They failed every case, each with the same error, and the other methods' results
    were thrown away with them."""
    from mlx_hdr.errors import WeightsError

    (tmp_path / "cut.pth").write_bytes(b"PK\x03\x04 truncated")
    for value in (str(tmp_path / "cut.pth"), str(tmp_path / "none.pth")):
        monkeypatch.setenv("MLX_HDR_EXPANDNET", value)
        with pytest.raises(WeightsError, match="pth"):
            evaluate(dataset, tmp_path / "out", ["linear", "expandnet2018"], progress=False)
        assert not (tmp_path / "out").exists()


def test_a_nan_case_shows_in_the_means_and_a_missing_highlight_does_not():
    """The highlight error is NaN where nothing clipped, SSIM on an image under 7 px: left
    out of their means. A NaN prediction (every metric NaN) makes every mean NaN, the
    highlight error's too, instead of a mean over the rest."""
    from mlx_hdr.eval.evaluate import METRICS, _means

    row = lambda m, v, h: {"method": m, **{k: v for k, _, _ in METRICS}, "highlight_log2": h}  # noqa: E731
    rows = [row("a", 20.0, 1.0), row("a", 30.0, np.nan), row("b", 20.0, 1.0), row("b", np.nan, 3.0)]
    rows += [row("c", 20.0, 1.0), row("c", np.nan, np.nan), row("d", 20.0, 1.0)]
    rows.append(row("d", 30.0, 3.0) | {"log_ssim": np.nan, "pu21_ssim": np.nan})  # 2x2 px
    means = _means(rows, ["a", "b", "c", "d"])
    assert means["a"]["pu21_psnr"] == 25.0 and means["a"]["highlight_log2"] == 1.0
    assert np.isnan(means["b"]["pu21_psnr"]) and np.isnan(means["b"]["mu_psnr"])
    assert all(np.isnan(v) for v in means["c"].values())
    assert means["d"]["log_ssim"] == means["d"]["pu21_ssim"] == 20.0
    assert means["d"]["highlight_log2"] == 2.0 and means["d"]["log_psnr"] == 25.0


def test_a_rerun_keeps_only_its_own_sheets_and_says_how_the_model_ran(
    dataset, tmp_path, monkeypatch, capsys
):
    out = tmp_path / "out"
    (out / "sheets").mkdir(parents=True)
    (out / "metrics.csv").write_text("case,method\ngone,linear\none,linear\n")
    (out / "sheets" / "gone.png").write_bytes(b"an earlier run's case")
    (out / "sheets" / "mine.png").write_bytes(b"the user's own")  # no run's case: kept
    (out / "sheets" / "notes.txt").write_text("not a sheet")
    argv = ["mlx-hdr", "evaluate", str(dataset), "--method", "linear", "--method", "model"]
    argv += ["-o", str(out), "--no-progress", "--response", "srgb", "--no-flip"]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as exc:
        main()
    assert exc.value.code == 0, capsys.readouterr().err
    sheets = sorted(p.name for p in (out / "sheets").iterdir())
    assert sheets == ["mine.png", "notes.txt", "one.png", "two.png"]
    summary = (out / "summary.md").read_text()
    assert summary.endswith(
        "The model (the bundled default, its floor kovaleski2014) ran with `--floor-strength 1 "
        "--response srgb --no-flip --sky-ceiling 10000 --daylight-floor 0`.\n"
    )


@pytest.mark.parametrize("args", [["", "-o", "out"], ["DATA", "-o", ""], ["DATA", "--model", ""]])
def test_an_empty_name_is_refused_not_taken_for_the_current_folder(
    dataset, tmp_path, monkeypatch, capsys, args
):
    monkeypatch.chdir(tmp_path)
    args = [str(dataset) if a == "DATA" else a for a in args]
    monkeypatch.setattr(sys, "argv", ["mlx-hdr", "evaluate", *args, "--method", "linear"])
    with pytest.raises(SystemExit) as exc:
        main()
    assert exc.value.code == 2 and "an empty name" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_a_folder_without_pairs_is_told_the_paired_layouts(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match=r"no LDR/HDR pairs found \(expected LDR_in/") as err:
        evaluate(tmp_path / "empty", tmp_path / "out", ["linear"], progress=False)
    assert "folder of .hdr" not in str(err.value)


def test_stale_sheets_go_and_other_files_stay(tmp_path):
    from mlx_hdr.eval.evaluate import _drop_stale_sheets

    for name in ("one.png", "gone.png", "lost.png", "mine.png"):
        (tmp_path / name).write_bytes(b"a sheet")
    earlier = {"one", "gone", "lost", "ONE", "../up"}  # lost: scored now, its sheet not written
    (tmp_path.parent / "up.png").write_bytes(b"outside")
    _drop_stale_sheets(tmp_path, earlier, [tmp_path / "one.png"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.png", "one.png"]
    assert (tmp_path.parent / "up.png").is_file()


def test_an_output_folder_that_cannot_be_written_is_said_before_any_case(
    dataset, locked, monkeypatch, capsys
):
    from mlx_hdr.eval import evaluate as ev

    monkeypatch.setattr(ev, "_eval_case", lambda *a: pytest.fail("worked first"))
    argv = ["mlx-hdr", "evaluate", str(dataset), "--method", "linear", "-o", str(locked / "o")]
    monkeypatch.setattr(sys, "argv", [*argv, "--no-progress"])
    with pytest.raises(SystemExit) as exc:
        main()
    err = capsys.readouterr().err
    assert exc.value.code == 1, err
    assert err == f"error: {locked}: cannot write here (read-only file system or no permission)\n"
