"""The camera's response: read from the network's prediction (``--response model``), plus a
camera JPEG's highlight roll-off (``--response camera``, the default).

The blend (:func:`~mlx_hdr.infer.calibrate.blend_with_input`) keeps the photo wherever it
is not clipped, linearised with the sRGB curve. Camera JPEG engines do not use the sRGB
curve (a contrast S-curve, a highlight roll-off), so the kept pixels are off by a tone
curve. The network, trained on several response curves, undoes some of that in its own
output, but its output is not kept there. This module reads that correction back as one
global curve and applies it to the photo:

- per display level v (all channels pooled), the median of log2((P + f) / (L + f)) over the
  values in ``BAND``, with P the network's scene-linear output, L = srgb_to_linear(v) and
  f = ``targets.STOPS_FLOOR``, on ``BINS`` bins, interpolated and smoothed on a
  ``GRID``-point table;
- faded to 0 over ``FADE``: above it the pixels keep the sRGB curve (but for the shift
  below, a few hundredths of a stop), so those that clip keep the white the network's
  highlights are relative to. On clean sRGB renderings the
  network reads a highlight roll-off into the upper tones that is not there, and on the
  real bracket frames correcting them gained nothing (docs/MODEL_CARD.md, Validation);
- kept monotone (the corrected linearisation never decreases with v), then shifted so its
  mean over the well-exposed pixels is 0 (the photo's overall level is unchanged).

``camera`` adds to that table the highlight roll-off of a camera's JPEG engine
(:func:`shoulder_table`): the tone curve bends over near white, so a channel recorded at
display 0.9-0.95 holds more light than the sRGB curve says. Against their merged raw
brackets, both real cameras of the validation (docs/MODEL_CARD.md) lie 0.2-0.35 stops above
the sRGB curve at display 0.9 and 0.45-0.6 stops at 0.95. A clean sRGB rendering has no
roll-off: ``--response model`` (or ``srgb``) for those.

A global curve cannot add rings or streaks: the result is a function of each pixel's value.
"""

from __future__ import annotations

import numpy as np

from mlx_hdr.color import highlight_rolloff, srgb_to_linear, well_exposed_mask
from mlx_hdr.infer.targets import STOPS_FLOOR

RESPONSES = ("camera", "model", "srgb")
BAND = (0.02, 0.95)  # display values the fit uses
FADE = (0.5, 0.6)  # display values over which the correction fades out
BINS = 32
MIN_COUNT = 30  # values per bin, else the bin is left out (interpolated over)
MIN_SHARE = 0.05  # share of the photo's values in BAND, else no fit (a nearly black photo)
GRID = 256  # table points at display levels k / 255: exact for 8-bit photos
LUT_SIZE = 65536  # the lookup a table is read through (``_table_at``): 16-bit steps
SMOOTH = 9  # box filter over the table, in grid points
MAX_VALUES = 1 << 18  # the fit reads at most about this many values (a stride over pixels)
SHOULDER_KNEE = 0.85  # display level where the camera roll-off starts
SHOULDER_STOPS = 1.0  # its stops at display 1.0 were it not held: S ((v - knee) / (1 - knee))^2
SHOULDER_TOP = 0.95  # held above this level (the blend ramp's start): 0.44 stops


def _bin_medians(v: np.ndarray, r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(centres, medians) of ``r`` in the ``BINS`` bins of ``v`` over ``BAND`` that hold at
    least ``MIN_COUNT`` values."""
    edges = np.linspace(*BAND, BINS + 1)
    idx = np.clip(np.digitize(v, edges) - 1, 0, BINS - 1)
    order = np.argsort(idx, kind="stable")
    groups = np.split(r[order], np.cumsum(np.bincount(idx, minlength=BINS))[:-1])
    keep = [i for i, g in enumerate(groups) if g.size >= MIN_COUNT]
    centres = 0.5 * (edges[1:] + edges[:-1])
    return centres[keep], np.array([np.median(groups[i]) for i in keep])


def fit_response(ldr: np.ndarray, hdr: np.ndarray) -> np.ndarray | None:
    """The correction table of a photo from the network's output (see the module doc).

    Args:
        ldr: HxWx3 display photo in [0, 1].
        hdr: HxWx3 scene-linear network output for it (no blend, no floor), 1.0 = white.
    Returns:
        (GRID,) float32 log2 correction over display levels ``linspace(0, 1, GRID)``, or
        None (the sRGB curve is then kept) when fewer than 4 bins hold enough values or
        less than ``MIN_SHARE`` of the values lie in ``BAND``: in a nearly black photo the
        table, extrapolated below the band, would move most of the photo by what a few
        bright pixels say (docs/EXPERIMENTS.md, "The network's curve on nearly black
        photos").
    """
    ldr = np.asarray(ldr, np.float32)
    f = STOPS_FLOOR
    stride = max(1, ldr.size // MAX_VALUES)  # over pixels, so every channel is read
    v = ldr.reshape(-1, 3)[::stride].reshape(-1)
    p = np.asarray(hdr, np.float32).reshape(-1, 3)[::stride].reshape(-1)
    ok = (v >= BAND[0]) & (v <= BAND[1])
    if ok.mean() < MIN_SHARE:
        return None
    r = np.log2((np.maximum(p[ok], 0.0) + f) / (srgb_to_linear(v[ok]) + f))
    centres, medians = _bin_medians(v[ok], r)
    if centres.size < 4:
        return None
    grid = np.linspace(0.0, 1.0, GRID)
    table = np.interp(grid, centres, medians)  # constant beyond the first and last bins
    table = np.convolve(np.pad(table, SMOOTH // 2, mode="edge"), np.ones(SMOOTH) / SMOOTH, "valid")
    table *= np.clip((FADE[1] - grid) / (FADE[1] - FADE[0]), 0.0, 1.0)
    base = np.log2(srgb_to_linear(grid) + f)
    table = np.maximum.accumulate(base + table) - base
    well = well_exposed_mask(ldr)
    if well.any():
        table -= _table_at(table, ldr[well]).mean()
    return table.astype(np.float32)


def check_response(response: str) -> str:
    """``response`` when it names one of ``RESPONSES``, else ValueError."""
    if response not in RESPONSES:
        raise ValueError(f"response must be one of {RESPONSES}, got {response!r}")
    return response


def shoulder_table() -> np.ndarray:
    """(GRID,) float32 log2 table of a camera JPEG's highlight roll-off over display levels
    ``linspace(0, 1, GRID)``: 0 up to ``SHOULDER_KNEE``, then S x^2 stops with
    x = (min(v, SHOULDER_TOP) - knee) / (1 - knee) (S = ``SHOULDER_STOPS``). Held from the
    blend ramp's start up: a clipped channel's floor (what the blend never goes below) is
    that level."""
    v = np.linspace(0.0, 1.0, GRID)
    return highlight_rolloff(v, SHOULDER_STOPS, SHOULDER_KNEE, SHOULDER_TOP).astype(np.float32)


def response_table(response: str, ldr: np.ndarray, hdr: np.ndarray) -> np.ndarray | None:
    """The table ``response`` names for a photo and the network's output for it:
    :func:`fit_response` for ``"model"``, that plus :func:`shoulder_table` for
    ``"camera"``, None (the sRGB curve) for ``"srgb"``."""
    if check_response(response) == "srgb":
        return None
    table = fit_response(ldr, hdr)
    if response == "model":
        return table
    shoulder = shoulder_table()
    return shoulder if table is None else table + shoulder


def _table_at(table: np.ndarray, ldr: np.ndarray) -> np.ndarray:
    """A ``GRID``-point table read at display values ``ldr`` in [0, 1], linearly between
    its levels (so a 16-bit gradient keeps its steps: the camera roll-off's table moves by
    up to 0.034 stops from one level to the next), through a 16-bit lookup (exact at the
    8-bit levels, k / 255 being 257 k / 65535); float32 like ``ldr``'s shape."""
    lut = np.interp(np.linspace(0.0, 1.0, LUT_SIZE), np.linspace(0.0, 1.0, GRID), table)
    x = np.nan_to_num(np.clip(np.asarray(ldr, np.float32), 0.0, 1.0), copy=False)
    return lut.astype(np.float32)[
        (x * np.float32(LUT_SIZE - 1) + np.float32(0.5)).astype(np.uint16)
    ]


def response_to_linear(ldr: np.ndarray, table: np.ndarray | None) -> np.ndarray:
    """Display [0, 1] (any shape) -> scene-linear >= 0 through a :func:`fit_response`
    table: (srgb_to_linear(ldr) + f) * 2**table(ldr) - f; plain sRGB for ``None``.

    The table's gains are read linearly between its ``GRID`` levels (``_table_at``: at
    the levels themselves for 8-bit photos)."""
    lin = srgb_to_linear(ldr)
    if table is None:
        return lin
    f = STOPS_FLOOR
    gain = _table_at(np.exp2(np.asarray(table, np.float32)), ldr)  # the levels' gains, between
    return np.maximum((lin + f) * gain - f, 0.0).astype(np.float32, copy=False)
