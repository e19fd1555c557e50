"""HDR AVIF output: the reconstruction as a 10-bit PQ (SMPTE ST 2084) image, BT.2020 primaries.

Unlike the gain-map JPEG this file has no SDR base: it is the HDR rendition alone, for viewers
that show HDR AVIF (PQ) images. The scene-linear HDR (1.0 = the photo's white) is converted to
BT.2020, its white put at the 203 cd/m² of ITU-R BT.2408's HDR reference white, PQ-encoded to
10 bits (values above 10,000 cd/m², 49x white, clip) and compressed with libavif through
``imagecodecs``, tagged with CICP primaries 9 (BT.2020), transfer 16 (PQ), matrix 9.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mlx_hdr.color import REC2020_CHROMATICITIES, rgb_to_rec709_matrix, row_slices
from mlx_hdr.errors import HDRError
from mlx_hdr.io.atomic import atomic_write

REFERENCE_WHITE_NITS = 203.0  # ITU-R BT.2408: HDR reference white
PQ_PEAK_NITS = 10000.0
MAX_SIDE = 65536  # AV1's largest frame side
CICP = {"primaries": 9, "transfer": 16, "matrix": 9}  # BT.2020, PQ, BT.2020 non-constant
QUALITY, SPEED = 95, 8  # a 24 MP photo: 4.2 s, 5 MB (one run on 2 cores)
M1, M2 = 2610 / 16384, 2523 / 4096 * 128  # ST 2084 constants
C1, C2, C3 = 3424 / 4096, 2413 / 4096 * 32, 2392 / 4096 * 32


def pq_encode(nits: np.ndarray) -> np.ndarray:
    """ST 2084 inverse EOTF: absolute luminance in cd/m² (>= 0) -> PQ signal in [0, 1]."""
    y = np.clip(np.asarray(nits, np.float32) / PQ_PEAK_NITS, 0.0, 1.0) ** M1
    return ((C1 + C2 * y) / (1.0 + C3 * y)) ** M2


def pq_decode(signal: np.ndarray) -> np.ndarray:
    """ST 2084 EOTF: PQ signal in [0, 1] -> absolute luminance in cd/m²."""
    e = np.clip(np.asarray(signal, np.float32), 0.0, 1.0) ** (1 / M2)
    return PQ_PEAK_NITS * (np.maximum(e - C1, 0.0) / (C2 - C3 * e)) ** (1 / M1)


def to_pq10(hdr: np.ndarray) -> np.ndarray:
    """HxWx3 scene-linear Rec.709 (1.0 = white) -> HxWx3 uint16 10-bit PQ BT.2020 code values."""
    to2020 = np.linalg.inv(rgb_to_rec709_matrix(REC2020_CHROMATICITIES)).T.astype(np.float32)
    out = np.empty(hdr.shape, np.uint16)
    for rows in row_slices(hdr.shape[0]):
        nits = np.maximum(np.asarray(hdr[rows], np.float32) @ to2020, 0.0) * REFERENCE_WHITE_NITS
        out[rows] = pq_encode(nits) * 1023.0 + 0.5
    return out


def write_avif(path, hdr: np.ndarray) -> Path:
    """Write ``hdr`` (HxWx3 scene-linear, 1.0 = the photo's white) as a 10-bit PQ AVIF,
    atomically; the path."""
    import imagecodecs

    path = Path(path)
    if max(hdr.shape[:2]) > MAX_SIDE:
        raise HDRError(f"an AVIF holds at most {MAX_SIDE:,} px a side (AV1)", path)
    try:
        data = imagecodecs.avif_encode(
            to_pq10(hdr), level=QUALITY, speed=SPEED, bitspersample=10, **CICP
        )
    except RuntimeError as exc:  # imagecodecs.AvifError
        raise HDRError(f"libavif could not encode it ({str(exc).strip()})", path) from None
    with atomic_write(path) as tmp:
        tmp.write_bytes(data)
    return path
