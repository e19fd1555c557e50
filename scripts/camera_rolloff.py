"""How far real camera JPEGs lie above the sRGB curve near white (no model).

For each real exposure-bracket frame (``bracket_sets.bracket_cases``), the merged HDR on
the linearised photo's scale (one factor over its well-exposed pixels) over the photo
linearised with the sRGB curve, per channel: the median log2 ratio of the channel values in
each display-level bin, stops. Printed as the range over a set's frames, with the shipped
roll-off (``infer.response.shoulder_table``, ``--response camera``) beside it:

    python scripts/camera_rolloff.py ../shared/data/hdr-pool-2/brackets/lumilab_fisheye_office \\
        runs/brackets/hdrmerge_whitworth
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from mlx_hdr.color import srgb_to_linear
from mlx_hdr.infer.response import GRID, shoulder_table

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bracket_sets import bracket_cases  # noqa: E402
from validate_model import aligned  # noqa: E402

EDGES = (0.80, 0.85, 0.90, 0.93, 0.95, 0.97, 0.99)  # display-level bins
MIN_VALUES = 100  # channel values a bin needs, else it is left blank


def rolloff(ldr: np.ndarray, hdr: np.ndarray) -> list[float]:
    """Per bin of ``EDGES``: median log2 of aligned ``hdr`` over srgb_to_linear(``ldr``) for
    the channel values of display ``ldr`` in the bin (NaN where fewer than ``MIN_VALUES``)."""
    truth, lin = aligned(hdr, ldr), srgb_to_linear(ldr)
    out = []
    for lo, hi in zip(EDGES[:-1], EDGES[1:], strict=True):
        m = (ldr >= lo) & (ldr < hi) & (truth > 0)
        r = np.log2((truth[m] + 1e-3) / (lin[m] + 1e-3))
        out.append(float(np.median(r)) if r.size >= MIN_VALUES else float("nan"))
    return out


def shipped_row() -> list[str]:
    """The shipped roll-off over each bin (its values at the bin's ends), stops."""
    table = shoulder_table()
    at = [float(table[round(v * (GRID - 1))]) for v in EDGES]
    return [f"{a:.2f}…{b:.2f}" for a, b in zip(at[:-1], at[1:], strict=True)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("brackets", nargs="+", type=Path, help="bracket set folder(s)")
    ap.add_argument("--long-side", type=int, default=1024, help="frames resized to")
    args = ap.parse_args()
    bins = [f"{lo:.2f}–{hi:.2f}" for lo, hi in zip(EDGES[:-1], EDGES[1:], strict=True)]
    print("| set (frames) | " + " | ".join(bins) + " |")
    print("|---" * (len(bins) + 1) + "|")
    for folder in args.brackets:
        rows = np.array([rolloff(ldr, hdr) for ldr, hdr in bracket_cases(folder, args.long_side)])
        lo, hi = np.nanmin(rows, axis=0), np.nanmax(rows, axis=0)
        cells = [f"{a:+.2f}…{b:+.2f}" for a, b in zip(lo, hi, strict=True)]
        print(f"| {folder.name} ({len(rows)}) | " + " | ".join(cells) + " |")
    print("| shipped roll-off | " + " | ".join(shipped_row()) + " |")


if __name__ == "__main__":
    main()
