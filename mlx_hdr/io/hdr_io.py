"""HDR files: Radiance ``.hdr`` (RGBE, RLE or flat), OpenEXR ``.exr`` (half/float; RGB(A),
luminance-only ``Y`` and luminance/chroma ``Y, RY, BY``) and ``.pfm``, read as float32 HxWx3
**scene-linear** RGB (>= 0, unbounded; Rec.709 primaries) and written atomically.
:mod:`mlx_hdr.io.image_io` re-exports the public names."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import cv2
import numpy as np

from mlx_hdr.errors import InputError
from mlx_hdr.io.atomic import atomic_write
from mlx_hdr.io.checks import check_image, check_input, check_pixels, quiet_cv2
from mlx_hdr.io.exr import read_exr, write_exr
from mlx_hdr.io.pfm import read_pfm, write_pfm

HDR_SUFFIXES = (".hdr", ".exr", ".pfm")
HALF_MAX = float(np.finfo(np.float16).max)  # 65504: larger values would become inf in half


def sanitize_hdr(img: np.ndarray, path=None, negative: bool = False) -> np.ndarray:
    """Make HDR values finite and >= 0 (with ``negative``, finite only: a wide gamut's
    Rec.709 values below 0 kept), warning when anything changed.

    NaN -> 0, +inf -> the largest finite value in the image, negatives (and -inf) -> 0.
    An image without a single finite value has nothing to keep: ``InputError``.
    """
    img = np.asarray(img, np.float32)
    bad = ~np.isfinite(img) if negative else ~np.isfinite(img) | (img < 0)
    if not bad.any():
        return img
    n_nan, n_inf = np.isnan(img).sum(), np.isposinf(img).sum()
    n_neg = np.isneginf(img).sum() if negative else (img < 0).sum()
    if not np.isfinite(img).any():
        raise InputError("no finite pixel values (all NaN or inf)", path)
    out, top = _clamped(img, negative)
    low = "-inf" if negative else "negative"
    counts = {"NaN (->0)": n_nan, f"+inf (->{top:g})": n_inf, f"{low} (->0)": n_neg}
    what = ", ".join(f"{n} {k}" for k, n in counts.items() if n)
    where = f"{path}: " if path is not None else ""
    warnings.warn(f"{where}replaced {what} values", stacklevel=2)
    return out


def _clamped(img: np.ndarray, negative: bool = False) -> tuple[np.ndarray, float]:
    """``img`` with NaN and -inf as 0, +inf as its largest finite value (at least 0), and
    values below 0 as 0 unless ``negative``; and that largest value."""
    top = max(float(img[np.isfinite(img)].max(initial=0.0)), 0.0)
    out = np.nan_to_num(img, nan=0.0, posinf=top, neginf=0.0)
    return (out if negative else np.maximum(out, 0.0)), top


def read_hdr(path, max_pixels: int | None = None) -> np.ndarray:
    """Read a ``.hdr``/``.exr``/``.pfm`` file as float32 HxWx3 scene-linear RGB (Rec.709).

    Values are relative radiance (>= 0, unbounded). NaN, inf and negative values are replaced
    with a warning (see :func:`sanitize_hdr`). EXR files with other primaries are converted to
    Rec.709. Raises ``InputError`` for a missing, empty, truncated, unsupported or too large
    (``max_pixels``, default ``MAX_PIXELS``) file.
    """
    path = check_input(path, HDR_SUFFIXES, "HDR")
    reader = {".hdr": _read_rgbe, ".exr": _read_exr, ".pfm": _read_pfm}[path.suffix.lower()]
    img = reader(path, max_pixels)
    return sanitize_hdr(np.ascontiguousarray(img, np.float32), path)


def _rgbe_resolution(path: Path) -> re.Match:
    """A Radiance header's resolution line (read without decoding the pixels): groups 1-4
    the first axis (``-Y``: top row first), its length, the second axis, its length."""
    with open(path, "rb") as f:
        head = f.read(1 << 16)  # a header that records a long tool history: tens of KB
    if not head.startswith((b"#?", b"\n")):
        raise InputError("not a Radiance RGBE file (missing '#?' signature)", path)
    m = re.search(rb"\n\n([-+][YX]) (\d+) ([-+][YX]) (\d+)\n", head)
    if m is None:
        raise InputError("Radiance header has no resolution line", path)
    if b"FORMAT=32-bit_rle_xyze" in head[: m.start()]:
        raise InputError("a Radiance file in CIE XYZ (XYZE): only RGBE ones are read", path)
    return m


def _read_rgbe(path: Path, max_pixels: int | None) -> np.ndarray:
    m = _rgbe_resolution(path)
    a, b = int(m.group(2)), int(m.group(4))
    by_rows = m.group(1).endswith(b"Y")
    width, height = (b, a) if by_rows else (a, b)
    check_pixels(path, width, height, max_pixels)
    if not by_rows:  # "+X W -Y H": scanlines that are columns
        raise InputError("Radiance file stored by columns: not supported", path)
    flip_rows, flip_cols = m.group(1) == b"+Y", m.group(3) == b"-X"
    with quiet_cv2():  # OpenCV reads only the usual "-Y H +X W" (top row first, left to right)
        if flip_rows or flip_cols:  # given that header, the rows turned afterwards
            data = path.read_bytes()
            usual = b"\n\n-Y %s +X %s\n" % (m.group(2), m.group(4))
            buf = np.frombuffer(data[: m.start()] + usual + data[m.end() :], np.uint8)
            bgr = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
        else:
            bgr = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if bgr is None or bgr.ndim != 3 or bgr.shape[:2] != (height, width):
        raise InputError("corrupt or truncated Radiance RGBE data", path)
    return bgr[:: -1 if flip_rows else 1, :: -1 if flip_cols else 1, ::-1]


def _read_exr(path: Path, max_pixels: int | None) -> np.ndarray:
    return read_exr(path, lambda width, height: check_pixels(path, width, height, max_pixels))


def _read_pfm(path: Path, max_pixels: int | None) -> np.ndarray:
    return read_pfm(path, lambda width, height: check_pixels(path, width, height, max_pixels))


def write_rgbe(path: Path, img: np.ndarray, shown: Path | None = None) -> None:
    """HxWx3 ``img`` as a Radiance RGBE file, encoded in memory by OpenCV and written here,
    so that a failed write raises its own ``OSError`` (OpenCV only returns False); values
    below 0, NaN and -inf are written as 0, +inf as the largest finite value (each
    channel on its own)."""
    if not (np.isfinite(img).all() and img.min(initial=0.0) >= 0.0):  # RGBE holds neither
        img = _clamped(img)[0]  # (OpenCV would wrap them)
    with quiet_cv2():
        ok, data = cv2.imencode(".hdr", np.ascontiguousarray(img[..., ::-1]))
    if not ok:
        raise InputError("OpenCV could not encode the Radiance file", shown or path)
    path.write_bytes(data.tobytes())


def write_hdr(path, img: np.ndarray, dtype: str = "half") -> Path:
    """Write scene-linear HxWx3 RGB atomically; format by extension (.hdr/.exr/.pfm).

    ``dtype`` ("half" or "float") applies to EXR (ZIP-compressed scanlines); half clamps
    magnitudes above ``HALF_MAX`` with a warning. RGBE keeps 8-bit mantissas (~1% relative
    error); PFM stores float32. Negative/NaN values are written as is by PFM/EXR, clamped by
    RGBE. Returns the path.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in HDR_SUFFIXES:
        raise InputError(f"unsupported HDR output type {path.suffix!r} (.hdr, .exr, .pfm)", path)
    if dtype not in ("half", "float"):
        raise InputError(f"dtype must be 'half' or 'float', not {dtype!r}", path)
    img = check_image(img, path)
    half = suffix == ".exr" and dtype == "half"
    if half and max(np.nanmax(img, initial=0.0), -np.nanmin(img, initial=0.0)) > HALF_MAX:
        msg = f"{path}: values above {HALF_MAX:g} clamped (half-float EXR; use float)"
        warnings.warn(msg, stacklevel=2)
        img = np.clip(img, -HALF_MAX, HALF_MAX)
    with atomic_write(path) as tmp:
        if suffix == ".hdr":
            write_rgbe(tmp, img, path)
        elif suffix == ".exr":
            write_exr(tmp, img, np.float16 if dtype == "half" else np.float32)
        else:
            write_pfm(tmp, img)
    return path
