"""mlx_hdr.io.atomic: content, permissions, and nothing left behind after a failure."""

from __future__ import annotations

import os

import mlx.core as mx
import numpy as np
import pytest

from mlx_hdr.errors import InputError
from mlx_hdr.io.atomic import atomic_write, save_safetensors_atomic


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_atomic_write_replaces_with_ordinary_permissions(tmp_path, umask_022):
    target = tmp_path / "a.txt"
    target.write_text("old")
    with atomic_write(target) as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".a.") and tmp.suffix == ".txt"
        assert target.read_text() == "old"  # untouched until the block ends
        tmp.write_text("new")
    assert target.read_text() == "new"
    assert target.stat().st_mode & 0o777 == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_atomic_write_follows_the_umask(tmp_path):
    old = os.umask(0o077)
    try:
        with atomic_write(tmp_path / "p.txt") as tmp:
            tmp.write_text("x")
    finally:
        os.umask(old)
    assert (tmp_path / "p.txt").stat().st_mode & 0o777 == 0o600


def test_atomic_write_failure_leaves_nothing(tmp_path):
    target = tmp_path / "a.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError, match="boom"), atomic_write(target) as tmp:
        tmp.write_text("partial")
        raise RuntimeError("boom")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_atomic_write_directories(tmp_path):
    with pytest.raises(InputError, match="output directory does not exist"):
        with atomic_write(tmp_path / "no" / "a.txt"):
            pass
    assert list(tmp_path.iterdir()) == []
    with atomic_write(tmp_path / "new" / "a.txt", parents=True) as tmp:
        tmp.write_text("x")
    assert (tmp_path / "new" / "a.txt").read_text() == "x"


def test_atomic_write_unwritable_directory_is_one_line_error(tmp_path, monkeypatch):
    # a read-only folder (simulated: tests may run as root) raised a bare PermissionError
    # naming the hidden temporary file
    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(tmp_path / ".a.x.tmp.txt"))

    monkeypatch.setattr("mlx_hdr.io.atomic.tempfile.mkstemp", refuse)
    with pytest.raises(InputError, match="cannot write here \\(Permission denied\\)") as info:
        with atomic_write(tmp_path / "a.txt"):
            pass
    assert str(info.value).startswith(f"{tmp_path / 'a.txt'}: ")


def test_save_safetensors_atomic_any_suffix(tmp_path, umask_022):
    # MLX appends ".safetensors" to other names: the temporary name must already end with it
    path = save_safetensors_atomic(tmp_path / "d" / "w.ckpt", {"a": mx.arange(3)}, {"k": "v"})
    arrays, meta = mx.load(str(path), format="safetensors", return_metadata=True)
    np.testing.assert_array_equal(np.asarray(arrays["a"]), [0, 1, 2])
    assert meta == {"k": "v"}
    assert path.stat().st_mode & 0o777 == 0o644
    assert [p.name for p in path.parent.iterdir()] == ["w.ckpt"]


def test_save_safetensors_atomic_failure_keeps_old_file(tmp_path):
    path = tmp_path / "w.safetensors"
    path.write_bytes(b"previous")
    with pytest.raises((TypeError, ValueError, RuntimeError)):
        save_safetensors_atomic(path, {"a": "not an array"}, {})
    assert path.read_bytes() == b"previous"
    assert [p.name for p in tmp_path.iterdir()] == ["w.safetensors"]


def test_a_write_that_fills_the_disk_is_one_line_naming_the_output(tmp_path, monkeypatch):
    """A C writer's RuntimeError on a full disk: the free space is looked at while the
    partial file still holds it (it was measured after deleting it: a traceback), and
    MLX's own wording is taken as a failed write."""
    import os
    import types

    target = tmp_path / "m.safetensors"
    held = []

    def statvfs(folder):
        return types.SimpleNamespace(f_bavail=0 if any(p.exists() for p in held) else 100)

    monkeypatch.setattr(os, "statvfs", statvfs)
    with pytest.raises(InputError, match="cannot write .No space left on device") as info:
        with atomic_write(target) as tmp:
            held.append(tmp)
            raise RuntimeError("[write] failed")
    assert str(target) in str(info.value) and not target.exists() and not held[0].exists()
    with pytest.raises(InputError, match="is it full"):
        with atomic_write(target):
            raise RuntimeError("[write] Unable to write 1366024 bytes to file.")


def test_a_rename_onto_a_folder_names_the_output_not_the_temporary_file(tmp_path):
    (tmp_path / "out.json").mkdir()
    with pytest.raises(InputError) as info:
        with atomic_write(tmp_path / "out.json") as tmp:
            tmp.write_text("{}")
    assert str(info.value).startswith(str(tmp_path / "out.json")) and ".tmp" not in str(info.value)
