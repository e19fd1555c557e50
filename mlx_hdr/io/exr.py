"""OpenEXR reading and writing for :mod:`mlx_hdr.io.image_io` (which checks paths, sizes and
values and writes atomically): RGB(A), luminance-only ``Y`` and luminance/chroma
``Y, RY, BY`` files, other primaries converted to Rec.709.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from mlx_hdr.color import REC709_CHROMATICITIES, rgb_to_rec709_matrix, rgb_to_xyz_matrix
from mlx_hdr.errors import InputError


def read_exr(path: Path, check_size: Callable[[int, int], None]) -> np.ndarray:
    """An OpenEXR file's first part as HxWx3 float32 Rec.709 RGB (not yet sanitised).

    ``check_size(width, height)`` runs on the header before the pixels are decoded.
    """
    import OpenEXR

    try:
        header = OpenEXR.File(str(path), header_only=True).header()
        lo, hi = header["dataWindow"]
        check_size(int(hi[0] - lo[0] + 1), int(hi[1] - lo[1] + 1))
        parts = OpenEXR.File(str(path), separate_channels=True).parts
        if not parts or not parts[0].channels:  # the library printed why and read nothing
            raise InputError("corrupt or truncated OpenEXR file (no pixel data read)", path)
        part = parts[0]
    except InputError:
        raise
    except Exception as exc:  # OpenEXR raises RuntimeError/ValueError with multi-line text
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(f"cannot read OpenEXR file ({first})", path) from None
    channels = {name: ch.pixels for name, ch in part.channels.items()}
    chroma = header.get("chromaticities", REC709_CHROMATICITIES)
    img = _exr_channels_to_rgb(channels, chroma, path)
    if not np.allclose(chroma, REC709_CHROMATICITIES, atol=1e-3):
        img = img @ rgb_to_rec709_matrix(chroma).T
    return img


def _upsample(ch: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour upsampling of a subsampled EXR channel to ``shape``."""
    if ch.shape == shape:
        return ch
    ry, rx = -(-shape[0] // ch.shape[0]), -(-shape[1] // ch.shape[1])
    return np.repeat(np.repeat(ch, ry, axis=0), rx, axis=1)[: shape[0], : shape[1]]


def _exr_channels_to_rgb(channels: dict, chroma, path: Path) -> np.ndarray:
    """RGB(A), Y, or Y/RY/BY channels -> HxWx3 float32 (RGB in the file's primaries)."""
    ch = {k: np.asarray(v, np.float32) for k, v in channels.items()}
    if {"R", "G", "B"} <= ch.keys():
        return np.stack([ch["R"], ch["G"], ch["B"]], axis=-1)
    if "Y" not in ch:
        names = ", ".join(sorted(ch)) or "none"
        raise InputError(f"OpenEXR file has no R,G,B or Y channels (found: {names})", path)
    y = ch["Y"]
    if not {"RY", "BY"} <= ch.keys():
        return np.repeat(y[..., None], 3, axis=-1)
    # Luminance/chroma, reconstructed like OpenEXR's RgbaYca::YCAtoRGBA.
    ry, by = _upsample(ch["RY"], y.shape), _upsample(ch["BY"], y.shape)
    yw = rgb_to_xyz_matrix(chroma)[1]
    r, b = (ry + 1.0) * y, (by + 1.0) * y
    g = (y - r * yw[0] - b * yw[2]) / yw[1]
    return np.stack([r, g, b], axis=-1).astype(np.float32)


def write_exr(path: Path, img: np.ndarray, dtype) -> None:
    """HxWx3 ``img`` (linear Rec.709; a wide-gamut colour has values below 0) as a
    ZIP-compressed scanline OpenEXR file of ``dtype`` (half/float), its ``chromaticities``
    attribute saying so for colour-managed readers."""
    import OpenEXR

    header = {
        "compression": OpenEXR.ZIP_COMPRESSION,
        "type": OpenEXR.scanlineimage,
        "chromaticities": tuple(float(v) for v in REC709_CHROMATICITIES),
    }
    OpenEXR.File(header, {"RGB": np.ascontiguousarray(img.astype(dtype))}).write(str(path))
