"""Shared fixtures. ``../shared`` (beside the checkout) holds real weights and data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MLX_HDR_SHARED", ROOT.parent / "shared"))


@pytest.fixture(scope="session")
def shared() -> Path:
    """Path to ``../shared``; skip locally when absent, fail in CI where it must exist."""
    if not SHARED.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"{SHARED} is missing in CI")
        pytest.skip(f"{SHARED} not present")
    return SHARED
