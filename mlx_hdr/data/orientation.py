"""Find and undo a rotation/flip between an LDR and its HDR (the 8 dihedral transforms).

In some SingleHDR pairs the HDR is rotated or flipped relative to the LDR. We compare each
candidate orientation of the HDR with the LDR by SSIM on small (64 px) tone-mapped luminance
and keep the best. Only candidates whose shape matches the LDR's are compared.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from skimage.metrics import structural_similarity

from mlx_hdr.color import rgb_to_luminance, srgb_to_linear

DIHEDRAL = (
    "identity",
    "rot90",
    "rot180",
    "rot270",
    "flip_lr",
    "flip_ud",
    "transpose",
    "transverse",
)
_INVERSE = {"rot90": "rot270", "rot270": "rot90"}  # every other op is its own inverse


def apply_dihedral(img: np.ndarray, op: str) -> np.ndarray:
    """Apply one of :data:`DIHEDRAL` to an HxW[xC] array (rotations counter-clockwise)."""
    ops = {
        "identity": lambda a: a,
        "rot90": lambda a: np.rot90(a, 1),
        "rot180": lambda a: a[::-1, ::-1],
        "rot270": lambda a: np.rot90(a, 3),
        "flip_lr": lambda a: a[:, ::-1],
        "flip_ud": lambda a: a[::-1],
        "transpose": lambda a: a.swapaxes(0, 1),
        "transverse": lambda a: a[::-1, ::-1].swapaxes(0, 1),
    }
    if op not in ops:
        raise ValueError(f"unknown orientation {op!r} (choose from {DIHEDRAL})")
    return np.ascontiguousarray(ops[op](img))


def invert_dihedral(op: str) -> str:
    """The op undoing ``op``."""
    return _INVERSE.get(op, op)


def _tonemapped_small(lum: np.ndarray, size: int) -> np.ndarray:
    """Linear luminance -> size x size Reinhard L/(1+L) with the log-mean mapped to 0.18."""
    small = cv2.resize(np.ascontiguousarray(lum, np.float32), (size, size), cv2.INTER_AREA)
    key = np.exp(np.mean(np.log(small + 1e-6)))
    scaled = small * (0.18 / key)
    return (scaled / (1.0 + scaled)).astype(np.float32)


@dataclass
class OrientationResult:
    """Best op (apply it to the HDR to match the LDR), its SSIM and the identity's SSIM."""

    op: str
    score: float
    identity_score: float
    scores: dict[str, float]


def find_orientation(
    ldr: np.ndarray, hdr: np.ndarray, size: int = 64, margin: float = 0.05
) -> OrientationResult:
    """The dihedral op that best aligns ``hdr`` (linear HxWx3) with ``ldr`` (display HxWx3).

    Both are reduced to ``size`` x ``size`` tone-mapped luminance (the LDR linearised with the
    sRGB EOTF); candidates whose oriented shape differs from the LDR's are skipped. A
    non-identity op is chosen only if it beats identity by ``margin`` SSIM, so symmetric
    scenes are left alone. ``ldr`` may already be small: only its shape is used at full size.
    """
    shape = ldr.shape[:2]
    a = _tonemapped_small(rgb_to_luminance(srgb_to_linear(ldr)), size)
    b = _tonemapped_small(rgb_to_luminance(hdr), size)
    scores = {}
    for op in DIHEDRAL:
        if apply_dihedral(np.empty(hdr.shape[:2] + (0,)), op).shape[:2] != shape:
            continue
        scores[op] = float(structural_similarity(a, apply_dihedral(b, op), data_range=1.0))
    if not scores:
        raise ValueError(f"no orientation of HDR {hdr.shape[:2]} matches LDR {shape}")
    best = max(scores, key=scores.get)
    ident = scores.get("identity", -1.0)
    if best != "identity" and "identity" in scores and scores[best] < ident + margin:
        best = "identity"
    return OrientationResult(best, scores[best], ident, scores)
