"""Shared fixtures. ``../shared`` (beside the checkout) holds real weights and data.

The test process opts in to the CPU backend's process settings (OpenBLAS, malloc), as the
command line does, before any test module imports ``mlx.core``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mlx_hdr import backend

# float32 matmuls and convolutions at full precision on every device: MLX runs them as
# TF32 on CUDA (and M5 GPUs) by default, about 1e-3 off, beyond the numerical tests'
# tolerances; read once, before the first matmul
os.environ.setdefault("MLX_ENABLE_TF32", "0")
backend.setup()

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MLX_HDR_SHARED", ROOT.parent / "shared"))


@pytest.fixture
def cli(monkeypatch, capsys):
    """``cli(*args) -> (exit code, stdout, stderr)``: ``mlx-hdr ARGS --no-progress`` in-process
    (warnings stay with pytest: check them with ``recwarn``)."""
    import sys

    from mlx_hdr.cli import main

    def run(*args) -> tuple[int, str, str]:
        monkeypatch.setattr(sys, "argv", ["mlx-hdr", *map(str, args), "--no-progress"])
        try:
            main()
            code = 0
        except SystemExit as exc:
            code = exc.code or 0
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.fixture
def locked(tmp_path, monkeypatch) -> Path:
    """A folder ``check_writable`` takes as read-only (``os.access`` says so: the tests may
    run as root, whom permissions do not stop)."""
    from mlx_hdr.infer import outputs

    folder = tmp_path / "ro"
    folder.mkdir()
    real_access = os.access
    monkeypatch.setattr(outputs.os, "access", lambda p, m: p != folder and real_access(p, m))
    return folder


@pytest.fixture(scope="session")
def shared() -> Path:
    """Path to ``../shared``; skip locally when absent, fail in CI where it must exist."""
    if not SHARED.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"{SHARED} is missing in CI")
        pytest.skip(f"{SHARED} not present")
    return SHARED


def _scene(h: int = 24, w: int = 32, seed: int = 0):
    """A smooth random HDR and its simulated sRGB LDR (display, 8 bit): ``(ldr, hdr)``."""
    import numpy as np

    from mlx_hdr.data.simulate import SimConfig, simulate_ldr

    rng = np.random.default_rng(seed)
    base = rng.normal(0, 2, (h // 4, w // 4, 3)).repeat(4, 0).repeat(4, 1)
    hdr = np.exp2(base + np.linspace(-2, 2, w)[None, :, None]).astype(np.float32)
    cfg = SimConfig(curves=("srgb",), noise_prob=0, jpeg_quality=None)
    ldr, scaled, _ = simulate_ldr(hdr, rng, cfg)
    return ldr, scaled


def _make_scenes(root: Path, n: int = 3) -> Path:
    """``root/s<i>/input.png`` + ``gt.hdr`` for i < n (the "scenes" layout), from ``_scene``."""
    from mlx_hdr.io.image_io import write_hdr, write_ldr

    for i in range(n):
        (root / f"s{i}").mkdir(parents=True)
        ldr, hdr = _scene(seed=i)
        write_ldr(root / f"s{i}/input.png", ldr)
        write_hdr(root / f"s{i}/gt.hdr", hdr)
    return root


@pytest.fixture(scope="session")
def scene():
    """Factory ``scene(h=24, w=32, seed=0) -> (ldr, hdr)``: a tiny simulated LDR/HDR pair."""
    return _scene


@pytest.fixture(scope="session")
def make_scenes():
    """Factory ``make_scenes(root, n=3) -> root``: a tiny paired dataset on disk."""
    return _make_scenes
