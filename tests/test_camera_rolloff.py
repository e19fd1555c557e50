"""``scripts/camera_rolloff.py``: the per-level gap of a truth over the sRGB curve."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import camera_rolloff  # noqa: E402

from mlx_hdr.color import srgb_to_linear  # noqa: E402


def test_rolloff_reads_a_known_gap_per_level():
    """A truth half a stop above the sRGB curve from display 0.9 up, on it below: the bins
    below 0.9 read 0, those above 0.5 stops (the well-exposed pixels fix the scale at 1)."""
    rng = np.random.default_rng(0)
    ldr = rng.uniform(0.05, 0.99, (96, 128, 3)).astype(np.float32)
    hdr = srgb_to_linear(ldr) * np.where(ldr >= 0.9, 2**0.5, 1.0).astype(np.float32)
    got = camera_rolloff.rolloff(ldr, hdr)
    np.testing.assert_allclose(got[:2], 0.0, atol=1e-3)  # 0.80-0.85, 0.85-0.90
    np.testing.assert_allclose(got[2:], 0.5, atol=1e-2)


def test_shipped_row_is_the_roll_off_at_the_bin_ends():
    row = camera_rolloff.shipped_row()
    assert len(row) == len(camera_rolloff.EDGES) - 1
    assert row[0] == "0.00…0.00" and row[-1] == "0.44…0.44"
