"""Dataset layouts, the manifest (index/read/summary) and the ``data`` CLI."""

from __future__ import annotations

import csv
import sys

import numpy as np
import pytest

from mlx_hdr.cli import main
from mlx_hdr.data.datasets import scan_dataset
from mlx_hdr.data.manifest import check, format_summary, index_dataset, read_manifest, summarize
from mlx_hdr.data.orientation import apply_dihedral
from mlx_hdr.errors import InputError
from mlx_hdr.io.image_io import write_hdr, write_ldr


def test_hdr_real_layout(tmp_path, scene):
    (tmp_path / "LDR_in").mkdir()
    (tmp_path / "HDR_gt").mkdir()
    ldr, hdr = scene()
    for stem in ("a", "b"):
        write_ldr(tmp_path / f"LDR_in/{stem}.jpg", ldr)
    for stem in ("a", "c"):
        write_hdr(tmp_path / f"HDR_gt/{stem}.hdr", hdr)
    ds = scan_dataset(tmp_path)
    assert ds.layout == "hdr-real" and [p.name for p in ds.pairs] == ["a"]
    assert sorted(p.name for p in ds.unpaired) == ["b.jpg", "c.hdr"]
    write_ldr(tmp_path / "LDR_in/a.png", ldr)  # a second file of one stem: listed, not lost
    write_hdr(tmp_path / "HDR_gt/a.exr", hdr)
    ds = scan_dataset(tmp_path)
    assert [(p.ldr_path.name, p.hdr_path.name) for p in ds.pairs] == [("a.jpg", "a.exr")]
    assert sorted(p.name for p in ds.unpaired) == ["a.hdr", "a.png", "b.jpg", "c.hdr"]


def test_hdr_synth_and_pool_layouts(tmp_path, scene):
    (tmp_path / "synth/HDR_gt").mkdir(parents=True)
    write_hdr(tmp_path / "synth/HDR_gt/x.exr", scene()[1])
    ds = scan_dataset(tmp_path / "synth")
    assert ds.layout == "hdr-synth" and ds.pairs[0].ldr_path is None
    (tmp_path / "pool").mkdir()
    write_hdr(tmp_path / "pool/p.hdr", scene()[1])
    write_hdr(tmp_path / "pool/q.pfm", scene()[1])
    (tmp_path / "pool/MANIFEST.csv").write_text("file,kind\np.hdr,panorama\n")
    (tmp_path / "pool/._p.hdr").write_bytes(b"\0\5\26\7")  # macOS's companion on an exFAT disk
    ds = scan_dataset(tmp_path / "pool")
    assert ds.layout == "hdr-pool" and {p.name: p.kind for p in ds.pairs} == {
        "p": "panorama",
        "q": None,
    }


def test_scenes_layout_reports_unpaired(tmp_path, scene, make_scenes):
    make_scenes(tmp_path, 2)
    (tmp_path / "odd").mkdir()
    write_hdr(tmp_path / "odd/gt.exr", scene()[1])
    for name in ("a.jpg", "b.jpg"):  # two LDRs and no input.*: ambiguous
        write_ldr(tmp_path / f"odd/{name}", scene()[0])
    ds = scan_dataset(tmp_path)
    assert ds.layout == "scenes" and [p.name for p in ds.pairs] == ["s0", "s1"]
    assert [p.name for p in ds.unpaired] == ["gt.exr", "a.jpg", "b.jpg"] and not ds.left_out
    assert set(ds.why.values()) == {"scene odd has 2 photos and none is named input.*"}
    (tmp_path / "odd/b.jpg").unlink()
    (tmp_path / "odd/a.jpg").rename(tmp_path / "odd/gt.jpg")  # a photo named gt is an input
    write_hdr(tmp_path / "odd/gt.hdr", scene()[1])
    assert set(scan_dataset(tmp_path).why.values()) == {
        "scene odd has 2 ground truths named gt; it needs one"
    }
    (tmp_path / "odd/gt.hdr").unlink()
    write_ldr(tmp_path / "odd/input.png", scene()[0])
    write_ldr(tmp_path / "odd/input.jpg", scene()[0])
    assert set(scan_dataset(tmp_path).why.values()) == {
        "scene odd has 2 photos named input.*; it needs one"
    }


def test_no_layout_is_one_line_error(tmp_path):
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(InputError, match="expected LDR_in/") as info:
        scan_dataset(tmp_path)
    assert "\n" not in str(info.value) and str(tmp_path) in str(info.value)
    with pytest.raises(InputError, match="not found"):
        scan_dataset(tmp_path / "missing")


def test_real_layouts(shared):
    ds = scan_dataset(shared / "data/eval-public")
    assert ds.layout == "scenes" and len(ds.pairs) == 5 and not ds.unpaired
    pool = scan_dataset(shared / "data/hdr-pool")
    assert pool.layout == "hdr-pool" and len(pool.pairs) == 36
    kinds = [p.kind for p in pool.pairs]
    assert kinds.count("photo") == 6 and kinds.count("panorama") == 30


def test_index_records_orientation_and_drops(tmp_path, scene, make_scenes):
    root = make_scenes(tmp_path / "ds", 6)
    ldr, hdr = scene(seed=1)
    write_hdr(root / "s4/gt.hdr", hdr * 0)  # black: as evaluate refuses it
    write_ldr(root / "s5/input.png", ldr * 0)
    write_hdr(root / "s1/gt.hdr", apply_dihedral(hdr, "rot180"))  # stored upside down
    write_hdr(root / "s2/gt.hdr", hdr * 1e4)  # brighter than the brightness filter's 4096
    (root / "s3/gt.hdr").write_bytes(b"#?RADIANCE\n\n-Y 4 +X 4\n")  # truncated
    out = tmp_path / "m.jsonl"
    manifest = index_dataset(root, out, workers=2)
    recs = {r["name"]: r for r in read_manifest(out).records}
    assert recs == {r["name"]: r for r in manifest.records}
    assert recs["s0"]["kept"] and recs["s0"]["orientation"] == "identity"
    assert recs["s1"]["kept"] and recs["s1"]["orientation"] == "rot180"
    assert recs["s2"]["reason"] == "too_bright" and recs["s3"]["reason"] == "unreadable"
    assert recs["s0"]["dr_stops"] > 3 and recs["s0"]["width"] == 32
    summary = summarize(manifest)
    assert summary["kept"] == 2
    assert summary["dropped"] == {"too_bright": 1, "unreadable": 1, "black": 2}
    assert recs["s4"]["detail"] == "the HDR is 0 in every pixel"
    assert recs["s5"]["detail"] == "the LDR is 0 in every pixel"
    assert summary["orientation_fixes"] == {"rot180": 1}
    assert check(out) == summary == check(root)
    said = format_summary(summary)  # each dropped file named with why (up to five)
    assert "dropped: s4/input.png: the HDR is 0 in every pixel" in said
    assert said.count("\ndropped: ") == 4


def test_read_manifest_rejects_other_files(tmp_path):
    (tmp_path / "x.jsonl").write_text('{"a": 1}\n')
    with pytest.raises(InputError, match="not an mlx-hdr manifest"):
        read_manifest(tmp_path / "x.jsonl")
    (tmp_path / "y.jsonl").write_text("{oops\n")
    with pytest.raises(InputError, match="JSON"):
        read_manifest(tmp_path / "y.jsonl")


@pytest.mark.parametrize(
    "header, record, message",
    [
        ({}, None, "without its dataset folder"),
        ({"root": "/data", "left_out": ["a.jpg"]}, None, "left_out is not a list of"),
        ({"root": "/data"}, '"x"', "line 2: not a record"),
        ({"root": "/data"}, '{"name": "a", "hdr": "a.hdr", "ldr": null}', "line 2: kept missing"),
        ({"root": "/data"}, '{"name": "a", "hdr": null, "kept": true}', "line 2: hdr missing"),
        (
            {"root": "/data"},
            '{"name": "a", "hdr": "a.hdr", "ldr": null, "kept": true, "orientation": "bogus"}',
            "unknown orientation 'bogus'",
        ),
    ],
)
def test_a_malformed_manifest_is_one_line(tmp_path, monkeypatch, capsys, header, record, message):
    """Records are checked as read: each of these was a KeyError or TypeError traceback in
    ``data check`` and ``train``."""
    import json

    lines = [json.dumps({"format": "mlx-hdr-manifest", "version": 1} | header)]
    path = tmp_path / "m.jsonl"
    path.write_text("\n".join(lines + ([record] if record else [])) + "\n")
    with pytest.raises(InputError, match=message):
        read_manifest(path)
    code, _, err = run_cli(monkeypatch, capsys, "data", "check", path)
    assert code == 1 and err.count("\n") == 1 and message.split(": ")[-1] in err


def run_cli(monkeypatch, capsys, *args):
    monkeypatch.setattr(sys, "argv", ["mlx-hdr", *map(str, args)])
    code = 0
    try:
        main()
    except SystemExit as exc:
        code = exc.code
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_index_check_and_errors(tmp_path, monkeypatch, capsys, shared):
    out = tmp_path / "pool.jsonl"
    code, stdout, _ = run_cli(
        monkeypatch, capsys, "data", "index", shared / "data/hdr-pool", "-o", out, "--no-progress"
    )
    assert code == 0 and "36 HDR images (photos simulated)" in stdout and out.is_file()
    assert len(read_manifest(out).kept()) == 36  # HDR-only: brightness filtered per sample
    with open(shared / "data/hdr-pool/MANIFEST.csv", newline="") as f:  # the pool's own figures
        ref = {r["file"]: float(r["dr_stops"]) for r in csv.DictReader(f)}
    for rec in read_manifest(out).records:
        assert rec["dr_stops"] == pytest.approx(ref[rec["hdr"]], abs=0.01)
    code, stdout, _ = run_cli(monkeypatch, capsys, "data", "check", out)
    assert code == 0 and "kept 36" in stdout and "dynamic range" in stdout
    code, _, err = run_cli(monkeypatch, capsys, "data", "check", tmp_path / "nope.jsonl")
    assert code == 1 and err.count("\n") == 1 and "nope.jsonl" in err
    code, _, err = run_cli(monkeypatch, capsys, "data", "index", tmp_path / "empty_dir_missing")
    assert code == 1 and err.startswith("error: ") and err.count("\n") == 1
    args = ("data", "index", shared / "data/hdr-pool", "-o", tmp_path, "--no-progress")
    code, _, err = run_cli(monkeypatch, capsys, *args)  # a folder: refused before decoding
    assert code == 2 and "is a folder; name the manifest file" in " ".join(err.split())


def test_index_never_writes_over_a_file_that_is_not_a_manifest(tmp_path, monkeypatch, capsys):
    """``-o`` naming one of the dataset's own files (a set's merged.hdr, a photo, its
    exposures.json) or any other file is refused before the scan; a manifest is replaced."""
    (tmp_path / "ds").mkdir()
    hdr = tmp_path / "ds" / "scene.hdr"
    write_hdr(hdr, np.full((8, 16, 3), 2.0, np.float32))
    before = hdr.read_bytes()
    (tmp_path / "notes.jsonl").write_text('{"format": "other"}\n')
    for out in (hdr, tmp_path / "notes.jsonl"):
        code, _, err = run_cli(monkeypatch, capsys, "data", "index", tmp_path / "ds", "-o", out)
        said = f"error: {out}: exists and is not a manifest: it would be overwritten\n"
        assert code == 2 and err == said, err
    assert hdr.read_bytes() == before
    code, _, err = run_cli(
        monkeypatch, capsys, "data", "index", tmp_path / "ds", "-o", hdr / "m.jsonl"
    )
    assert (
        code == 2 and err == f"error: {hdr}: is a file, not a folder: the output cannot go in it\n"
    )
    code, _, err = run_cli(
        monkeypatch, capsys, "data", "index", tmp_path / "ds", "-o", tmp_path / "new/m.jsonl"
    )
    assert code == 0 and (tmp_path / "new/m.jsonl").is_file(), err  # its folder made
    manifest = tmp_path / "ds" / "m.jsonl"
    manifest.touch()  # an empty file (mktemp's) is no one's data
    for _ in range(2):  # the second run replaces the first's manifest
        code, _, err = run_cli(
            monkeypatch, capsys, "data", "index", tmp_path / "ds", "-o", manifest
        )
        assert code == 0 and read_manifest(manifest).records, err


def test_linked_files_and_a_merged_hdr_beside_the_folder_are_indexed(tmp_path, scene):
    """Record paths may lead out of the dataset folder: links to files elsewhere (kept as
    named), a bracket set's HDR one level up (``..``); they had raised a traceback."""
    ldr, hdr = scene()
    store = tmp_path / "store"
    store.mkdir()
    write_ldr(store / "input.jpg", ldr)
    write_hdr(store / "gt.hdr", hdr)
    (tmp_path / "ds" / "case1").mkdir(parents=True)
    for name in ("input.jpg", "gt.hdr"):
        (tmp_path / "ds" / "case1" / name).symlink_to(store / name)
    manifest = index_dataset(tmp_path / "ds", tmp_path / "m.jsonl", workers=1)
    (rec,) = read_manifest(tmp_path / "m.jsonl").records
    assert rec["kept"] and rec["ldr"] == "case1/input.jpg" and rec["hdr"] == "case1/gt.hdr"
    assert manifest.path(rec, "hdr").is_file()
    from mlx_hdr.data.manifest import _rel

    assert _rel(tmp_path / "set.hdr", tmp_path / "ds") == "../set.hdr"


def test_a_manifest_moved_with_its_dataset_reads_it_and_check_names_missing_files(
    tmp_path, make_scenes, monkeypatch, capsys
):
    import shutil

    from mlx_hdr.data.manifest import write_manifest

    make_scenes(tmp_path / "a/ds", 3)
    index = index_dataset(tmp_path / "a/ds")
    write_manifest(index, tmp_path / "a/m.jsonl")
    shutil.move(tmp_path / "a", tmp_path / "b")  # the folder and its manifest, together
    (tmp_path / "a/ds").mkdir(parents=True)  # and an empty folder where it was
    with pytest.warns(
        UserWarning, match=r"dataset folder .*/a/ds lacks its files; reading .*/b/ds"
    ):
        moved = read_manifest(tmp_path / "b/m.jsonl")
    assert moved.root == tmp_path / "b/ds" and moved.records == index.records
    assert all(moved.path(r, "ldr").is_file() for r in moved.kept())
    gone = [tmp_path / "b/ds/s1/gt.hdr", tmp_path / "b/ds/s2/gt.hdr"]
    for p in gone:
        p.unlink()
    with pytest.warns(UserWarning):
        summary = check(tmp_path / "b/m.jsonl")
    assert summary["missing"] == [str(p) for p in gone]
    lines = format_summary(summary).splitlines()
    assert "missing: 2 files of the kept pairs (moved or deleted since indexing)" in lines
    assert all(f"missing: {p}" in lines for p in gone)  # each named, not only the first
    with pytest.warns(UserWarning):
        code, stdout, _ = run_cli(monkeypatch, capsys, "data", "check", tmp_path / "b/m.jsonl")
    assert code == 3 and f"missing: {gone[1]}" in stdout  # a script can tell
