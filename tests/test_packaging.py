"""pyproject.toml builds without setuptools' deprecation warnings."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_license_is_an_spdx_expression():
    # a `license = { text = ... }` table made every install print a SetuptoolsDeprecationWarning
    tomllib = pytest.importorskip("tomllib")
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert meta["project"]["license"] == "BSD-3-Clause"
    # SPDX strings need setuptools >= 77: an older build backend would reject the string
    assert meta["build-system"]["requires"][0] == "setuptools>=77"
