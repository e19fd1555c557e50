"""The network's target domains: scene-linear HDR <-> the [-1, 1] range of its tanh output.

Two domains, named in the model's config (``HybridConfig.target``):

- ``minmax_log1p`` (the original hybrid-autoencoder recipe): log1p of the HDR, per-image
  min-max to [-1, 1]. It carries no absolute scale: inference fits the range back from the
  well-exposed pixels (:mod:`mlx_hdr.infer.calibrate`).
- ``stops``: the HDR's per-channel residual over the linearised input, in stops,
  r = log2((H + f) / (srgb_to_linear(I) + f)), mapped linearly from [STOPS_LO, STOPS_HI] to
  [-1, 1]. It carries the highlight scale relative to the input's white: a clipped pixel
  (linearised value 1.0) predicted at t holds 2^r times white, with no fit at inference.

``H`` is scene-linear (>= 0, 1.0 = the input's white, see ``data.simulate``), ``I`` display
[0, 1]; arrays are (..., H, W, 3) float32.
"""

from __future__ import annotations

import numpy as np

from mlx_hdr.color import STOPS_HI, STOPS_LO, hdr_to_target, srgb_to_linear

TARGETS = ("minmax_log1p", "stops")
STOPS_FLOOR = 1e-2  # f: linear offset, so noise in dark pixels gives small residuals


def hdr_to_stops(hdr: np.ndarray, ldr: np.ndarray) -> np.ndarray:
    """Scene-linear HDR and its display input -> the ``stops`` target in [-1, 1] (clipped)."""
    f = STOPS_FLOOR
    lin = srgb_to_linear(ldr)
    r = np.log2((np.maximum(np.asarray(hdr, np.float32), 0.0) + f) / (lin + f))
    t = (r - STOPS_LO) / (STOPS_HI - STOPS_LO) * 2.0 - 1.0
    return np.clip(t, -1.0, 1.0).astype(np.float32)


def stops_to_hdr(target: np.ndarray, ldr: np.ndarray) -> np.ndarray:
    """Inverse of :func:`hdr_to_stops`: [-1, 1] and the display input -> scene-linear >= 0."""
    f = STOPS_FLOOR
    r = (np.asarray(target, np.float32) + 1.0) * 0.5 * (STOPS_HI - STOPS_LO) + STOPS_LO
    hdr = (srgb_to_linear(ldr) + f) * np.exp2(r) - f
    return np.maximum(hdr, 0.0).astype(np.float32)


def encode_target(kind: str, hdr: np.ndarray, ldr: np.ndarray) -> np.ndarray:
    """The training target of domain ``kind`` for a batch (NHWC or HWC), in [-1, 1]."""
    if kind == "stops":
        return hdr_to_stops(hdr, ldr)
    if kind == "minmax_log1p":
        return hdr_to_target(hdr)[0]
    raise ValueError(f"unknown target domain {kind!r} (choose from {TARGETS})")


def target_kind(net) -> str:
    """The target domain of a network: its config's ``target``, else the original one."""
    return getattr(getattr(net, "config", None), "target", "minmax_log1p")
