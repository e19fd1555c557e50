"""Kovaleski & Oliveira 2014, "High-quality reverse tone mapping for a wide range of exposures".

A brightness enhancement (expand) map E in [1, 1 + alpha] is the cross-bilateral filtered mask of
clipped pixels, edge-stopped by the input's brightness, so the boost spreads smoothly around
highlights but not across strong edges:

    C = [max_c(I) > 254/255]                        (230/255 for video in the paper)
    E = 1 + alpha * CBF(C; guide = Y(I), sigma_s = 150 px, sigma_r = 25/255),  alpha = 3
    L_out = (L (1 - b) + b) * E,                     b = display black / white = 0.3 / 1200

I is the display input, Y(I) its Rec.709 luma (display values, where sigma_r = 25/255 is
specified), L the luminance of the linearised input. The paper's display is 0.3-1200 cd/m^2;
here the output is relative, 1.0 = an unexpanded white. Colour is kept by scaling RGB by
L_out / L. As in the paper, the filter is evaluated with a bilateral grid (Chen et al. 2007):
nearest-cell splatting at two cells per sigma, a Gaussian blur of the grid, trilinear slicing.

Banterle's HDR Toolbox (``KovaleskiOliveiraEO.m``) linearises the input first and guides the
filter by linear luminance, with sigma_r and the threshold raised to the same gamma. Its map
spreads further around highlights: over the clipped pixels of eval-public's scenes its mean
E is 2.97 where this one's is 2.04 (ilm_goldengate), 2.69 against 2.32 (ilm_tree), 3.56
against 3.31 (ilm_candleglass). Here the guide is the display luma the paper's sigma_r is
given for; since this operator is both a peer and the model's floor, both follow it.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from mlx_hdr.color import REC709_LUMA, rgb_to_luminance, row_slices, srgb_to_linear

CLIP_LEVEL = 254.0 / 255.0
SIGMA_S = 150.0
SIGMA_R = 25.0 / 255.0
ALPHA = 3.0
BLACK = 0.3 / 1200.0
CELLS_PER_SIGMA = 2.0


def _grid_coords(ys, xs, guide, g0, sigma_s: float, sigma_r: float) -> np.ndarray:
    """Grid coordinates (3, ...) float32 of pixels at rows ``ys``, columns ``xs`` (float32
    arrays) with guide values ``guide``; ``g0`` is the whole guide's minimum."""
    k = CELLS_PER_SIGMA
    return np.stack([ys * (k / sigma_s), xs * (k / sigma_s), (guide - g0) * (k / sigma_r)])


def _strip_coords(rows: slice, guide, g0, sigma_s: float, sigma_r: float) -> np.ndarray:
    """:func:`_grid_coords` of the pixels in ``rows`` of the whole HxW ``guide``."""
    h, w = guide.shape
    ys, xs = np.mgrid[rows.start : min(rows.stop, h), 0:w].astype(np.float32)
    return _grid_coords(ys, xs, guide[rows], g0, sigma_s, sigma_r)


def cross_bilateral_grid(
    signal: np.ndarray, guide: np.ndarray, sigma_s: float, sigma_r: float, rows: int = 256
) -> np.ndarray:
    """Cross-bilateral filter of an HxW ``signal`` edge-stopped by an HxW ``guide``.

    Approximates sum_q G_s(|p - q|) G_r(|g_p - g_q|) s_q / sum_q G_s G_r with a bilateral grid.
    Splatting and slicing run over strips of ``rows`` rows, so a large photo needs a few
    strip-sized temporaries besides the (small) grid. Returns HxW float32.
    """
    h, w = signal.shape
    g0 = guide.min()
    corner = [np.array([v], np.float32) for v in (h - 1, w - 1)]
    top = _grid_coords(*corner, np.array([guide.max()], np.float32), g0, sigma_s, sigma_r)
    shape = tuple(int(np.ceil(c[0])) + 1 for c in top)
    size = int(np.prod(shape))
    num, den = np.zeros(size), np.zeros(size)
    for r in row_slices(h, rows):
        coords = _strip_coords(r, guide, g0, sigma_s, sigma_r)
        cell = np.ravel_multi_index(tuple(np.rint(c).astype(np.int64) for c in coords), shape)
        num += np.bincount(cell.ravel(), signal[r].ravel().astype(np.float64), size)
        den += np.bincount(cell.ravel(), minlength=size)
    k = CELLS_PER_SIGMA
    num, den = (ndimage.gaussian_filter(a.reshape(shape), k, mode="constant") for a in (num, den))
    out = np.empty((h, w), np.float32)
    for r in row_slices(h, rows):
        coords = _strip_coords(r, guide, g0, sigma_s, sigma_r)
        num_p, den_p = (
            ndimage.map_coordinates(a, coords, order=1, mode="nearest") for a in (num, den)
        )
        out[r] = num_p / np.maximum(den_p, 1e-12)
    return out


def expand_map(
    ldr: np.ndarray, sigma_s: float = SIGMA_S, sigma_r: float = SIGMA_R, alpha: float = ALPHA
) -> np.ndarray:
    """The brightness enhancement function E (HxW, in [1, 1 + alpha]) of a display input."""
    ldr = np.asarray(ldr, np.float32)
    clipped = (ldr.max(axis=-1) > CLIP_LEVEL).astype(np.float32)
    if not clipped.any():
        return np.ones(ldr.shape[:2], np.float32)
    smooth = cross_bilateral_grid(clipped, ldr @ REC709_LUMA, sigma_s, sigma_r)
    return 1.0 + alpha * np.clip(smooth, 0.0, 1.0)


def kovaleski2014(
    ldr: np.ndarray, sigma_s: float = SIGMA_S, sigma_r: float = SIGMA_R, alpha: float = ALPHA
) -> np.ndarray:
    """Expand-map reverse tone mapping.

    Args:
        ldr: HxWx3 float display input in [0, 1].
        sigma_s: spatial sigma of the cross-bilateral filter in pixels (150 in the paper).
        sigma_r: range sigma in display units (25/255).
        alpha: maximum extra boost; E lies in [1, 1 + alpha] (3, so up to 4x).
    Returns:
        HxWx3 float32 scene-linear >= 0.
    """
    expand = expand_map(ldr, sigma_s, sigma_r, alpha)
    out = np.empty(np.shape(ldr), np.float32)
    for rows in row_slices(len(out)):  # per pixel, in strips: no full-size temporaries
        lin = srgb_to_linear(ldr[rows])
        lum = rgb_to_luminance(lin)
        lum_out = (lum * (1.0 - BLACK) + BLACK) * expand[rows]
        ratio = np.divide(lum_out, lum, out=np.zeros_like(lum), where=lum > 0)
        out[rows] = lin * ratio[..., None]
    return out
