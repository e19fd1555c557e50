"""``predict --skip-existing`` (mlx_hdr/infer/outputs.py: plan_outputs, Plan.done) on the
photos of test_cli_predict."""

from __future__ import annotations

from test_cli_predict import photos  # noqa: F401 (a fixture)


def stamp(path) -> tuple[int, int]:
    """Which file this is: a file written again (atomically: a new file renamed over it)
    differs in inode or modification time."""
    st = path.stat()
    return st.st_ino, st.st_mtime_ns


def test_skip_existing_goes_on_where_a_batch_stopped(cli, photos, tmp_path):  # noqa: F811
    out = tmp_path / "out"
    args = ("predict", photos, "-o", out, "--method", "linear", "--format", "exr")
    assert cli(*args)[0] == 3  # broken.jpg fails, a.jpg and b.jpg are written
    files = sorted(out.iterdir())
    assert [f.name for f in files] == ["a.exr", "a_preview.png", "b.exr", "b_preview.png"]
    stamps = {f: stamp(f) for f in files}
    files[0].unlink()  # as if the batch had stopped before a.jpg's EXR was written
    code, again, err = cli(*args, "--skip-existing")
    assert code == 3 and "broken.jpg" in err  # run again: it has no outputs
    assert "skipped 1 input whose outputs all exist" in again
    assert [stamp(f) != stamps[f] for f in files] == [True, True, False, False]
    stamps = {f: stamp(f) for f in files}
    assert cli(*args)[0] == 3  # without the option, everything is written again
    assert all(stamp(f) != stamps[f] for f in files)


def test_the_library_reports_what_it_skipped(photos, tmp_path):  # noqa: F811
    from mlx_hdr.infer.pipeline import PredictOptions, predict_files

    opts = PredictOptions(method="linear", skip_existing=True)
    first = predict_files([str(photos / "a.jpg")], tmp_path, None, opts, progress=False)
    assert first.skipped == [] and len(first.written) == 1
    again = predict_files([str(photos / "a.jpg")], tmp_path, None, opts, progress=False)
    assert again.skipped == [photos / "a.jpg"] and again.written == []
