"""Measured camera responses for the simulator (its ``"table"`` curve).

A response table maps each 8-bit code to the linear exposure that gives it, per channel:
256×3 in RGB order, as OpenCV's ``CalibrateDebevec`` fits it from an exposure bracket (its
output is 256×1×3 in the frames' channel order: BGR for frames read with ``cv2.imread``,
so ``np.save`` it reversed, ``response[..., ::-1]``) or as the bracket sets'
``exposures.json`` store it (key ``response_curve_rgb``). The simulator runs it backwards:
linear [0, 1] -> display [0, 1].
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import numpy as np

CODES = 256


@lru_cache(maxsize=16)
def load_response(path: str) -> np.ndarray:
    """A response table from ``path`` (.npy or .json, see the module doc), as 256×3 float64
    code -> linear, scaled so code 255 is 1.0 and made non-decreasing per channel.
    ``ValueError`` naming the file and the problem."""
    p = Path(path)
    try:
        if p.suffix.lower() == ".npy":
            raw = np.load(p, allow_pickle=False)
        else:
            data = json.loads(p.read_text())
            raw = data.get("response_curve_rgb") if isinstance(data, dict) else data
        raw = np.asarray(raw, np.float64)
    except (OSError, ValueError, TypeError) as exc:
        raise ValueError(f"{p}: not a readable response table ({exc})") from None
    table = raw.reshape(-1, raw.shape[-1]) if raw.ndim else raw
    if table.shape != (CODES, 3) or not np.isfinite(table).all():
        raise ValueError(f"{p}: a response table must be {CODES}x3 finite values")
    if (table[-1] <= 0).any():
        raise ValueError(f"{p}: the response at code 255 must be > 0")
    table = np.maximum.accumulate(np.maximum(table, 0.0), axis=0)
    return table / table[-1]


def table_curve(x: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Linear HxWx3 exposure in [0, 1] -> display [0, 1] through a response ``table``
    (:func:`load_response`): per channel, the code whose linear value it is, interpolated
    between codes. A run of codes with one value (a flat toe, or a dip that
    :func:`load_response` levelled) is spread over the light up to the next value: its first
    code at its value, so black stays at code 0; full light is code 255."""
    x = np.clip(np.asarray(x, np.float32), 0.0, 1.0)
    levels = np.arange(CODES) / (CODES - 1.0)
    out = np.empty_like(x)
    for c in range(3):
        values, first = np.unique(table[:, c], return_index=True)  # increasing, each run once
        codes = levels[first]
        codes[-1] = 1.0  # a flat top (the levelled codes above 255's light) still clips at 255
        out[..., c] = np.interp(x[..., c], values, codes)
    return out
