"""HEIC/HEIF input (iPhone photos) through pillow-heif (libheif).

:func:`read_heif` decodes a file's primary image the way a viewer shows it: libheif applies the
file's rotation/mirroring (HEIF's ``irot``/``imir``; pillow-heif then resets the EXIF
orientation, which HEIF readers ignore), 8-bit images come back as a Pillow image for
``image_io`` to convert like a JPEG (ICC profile to sRGB), 10/12-bit images as float32 display
RGB in [0, 1] with an ICC profile converted to sRGB here. Colour given as CICP/nclx primaries
and transfer instead of an ICC profile (Display P3, BT.2020; the BT.709, gamma and linear
curves) is converted by :func:`nclx_to_srgb`.
Photos that are already HDR (PQ/HLG transfer) are refused; a gain map next to an SDR image
(Apple's HDR photos) is reported by :func:`gain_map_kind`.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from mlx_hdr.color import (
    DISPLAY_P3,
    REC2020_CHROMATICITIES,
    linear_to_srgb,
    rgb_to_rec709_matrix,
    row_slices,
    srgb_to_linear,
)
from mlx_hdr.errors import InputError
from mlx_hdr.io.icc import fit_to_srgb, icc_to_srgb16
from mlx_hdr.io.isobmff import cut_short

HEIF_SUFFIXES = (".heic", ".heif", ".hif")
AVIF_SUFFIXES = (".avif",)  # AV1 in HEIF: the container read here, the pixels by Pillow
HDR_TRANSFERS = {16: "PQ", 18: "HLG"}  # CICP transfer characteristics of HDR video/photos
APPLE_GAIN_MAP_AUX = "urn:com:apple:photo:2020:aux:hdrgainmap"
APPLE_HDR = "an Apple HDR gain map"  # gain_map_kind's answer for an iPhone HDR photo
ANDROID_HDR = "an Android HDR gain map"  # another maker's auxiliary gain-map image (Samsung)
SRGB_PRIMARIES = (1, 2)  # CICP: BT.709 (= sRGB), unspecified (read as sRGB)
SRGB_TRANSFERS = (2, 13)  # CICP: unspecified (read as sRGB), IEC 61966-2-1 (sRGB)
BT709 = (1.09929682680944, 0.018053968510807)  # alpha, beta: BT.2020's exact BT.709 curve
ST240 = (1.1115721959217, 0.0228215)  # the same for SMPTE ST 240 (rounded: 1.1115, 0.0228)
_PRIMARY_KEYS = ("red_x", "red_y", "green_x", "green_y", "blue_x", "blue_y", "white_x", "white_y")


AVIF_BRANDS = {b"avif", b"avis"}
HEIF_BRANDS = {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"hevm", b"hevs"}
HEIF_BRANDS |= {b"mif1", b"msf1", b"mif2", b"miaf"}  # image/sequence brands of any codec
OTHER_IMAGES = (b"\xff\xd8\xff", b"\x89PNG", b"II*\x00", b"MM\x00*", b"RIFF", b"#?RADIANCE")


def container(path: Path) -> str | None:
    """``"avif"`` or ``"heif"`` for a file of the HEIF family, else None, told by its
    ``ftyp`` box's brands (AVIF: ``avif`` or ``avis`` among them) whatever its name, so that
    a HEIC named ``.JPG`` is read as one and an HDR AVIF named ``.jpg`` is refused as one;
    another ``ftyp`` (a video, a CR3 raw) is None. A file without an ``ftyp`` box goes by
    its suffix (so that an empty or cut-short ``.heic`` is named as one), unless it starts
    as another image format does."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            head = f.read(64)
    except OSError:
        head = b""
    if head[4:8] == b"ftyp":
        size = int.from_bytes(head[:4], "big")
        brands = {head[i : i + 4] for i in range(8, min(max(size, 16), len(head)) - 3, 4)}
        return "avif" if brands & AVIF_BRANDS else "heif" if brands & HEIF_BRANDS else None
    if head.startswith(OTHER_IMAGES):
        return None
    suffix = path.suffix.lower()
    return "avif" if suffix in AVIF_SUFFIXES else "heif" if suffix in HEIF_SUFFIXES else None


def register(path: Path):
    """Import pillow-heif and register its Pillow opener (``InputError`` naming ``path`` if it
    is not installed)."""
    try:
        import pillow_heif
    except ImportError:
        raise InputError("reading HEIC needs pillow-heif: pip install pillow-heif", path) from None
    pillow_heif.register_heif_opener()  # Image.open() reads HEIC too (EXIF, gain-map checks)
    return pillow_heif


def open_heif(path: Path):
    """pillow-heif's ``HeifFile`` for ``path`` (pixels decoded on first use), any bit depth;
    ``InputError`` where it has no primary image that can be read (its ``info`` is read here)."""
    kind = "AVIF" if container(path) == "avif" else "HEIF"
    try:
        data = path.read_bytes()  # read once: checked here, decoded from memory
        if why := cut_short(data):  # its decoder may fill the gap in silently
            raise InputError(f"truncated {kind} file ({why})", path)
        heif = register(path).open_heif(data, convert_hdr_to_8bit=False)
        _ = heif.info, heif.size  # a damaged file without a primary image fails here
        return heif
    except (ValueError, RuntimeError, OSError, SyntaxError, IndexError, KeyError) as exc:
        raise InputError(f"not a readable {kind} image ({str(exc).strip()})", path) from None


def aux_image(
    path: Path, match: Callable[[str], bool], what: str
) -> tuple[np.ndarray, tuple[int, int]]:
    """The first auxiliary image of the HEIC at ``path`` whose type (lower-cased) ``match``es,
    as HxW[xC] float32 in [0, 1], and the primary image's (width, height).

    Raises:
        InputError: there is none, or it cannot be decoded (``what`` names it).
    """
    heif = open_heif(path)
    aux = (heif.info.get("aux") or {}).items()
    ids = next((v for k, v in aux if match(str(k).lower())), None)
    if not ids:
        raise InputError(f"it carries no {what}", path)
    try:
        stored = np.asarray(heif.get_aux_image(ids[0]))
    except (ValueError, RuntimeError, OSError) as exc:
        raise InputError(f"its {what} cannot be decoded ({exc})", path) from None
    top = 255.0 if stored.dtype == np.uint8 else float(np.iinfo(stored.dtype).max)
    return stored.astype(np.float32) / np.float32(top), heif.size


def gain_map_kind(info: dict) -> str | None:
    """What HDR gain map an image's pillow-heif ``info`` shows, or None.

    Apple stores it as an auxiliary image ``urn:com:apple:photo:2020:aux:hdrgainmap``
    (:data:`APPLE_HDR`); other makers as an auxiliary image of their own name (Samsung's
    ``urn:com:samsung:photo:2024:aux:hdrgainmap``, :data:`ANDROID_HDR`) or in the image's
    XMP (Apple's ``HDRGainMap``, Adobe's ``hdrgm``).
    """
    aux = [str(kind).lower() for kind in info.get("aux") or {}]
    if APPLE_GAIN_MAP_AUX in aux:
        return APPLE_HDR
    if any("hdrgainmap" in kind for kind in aux):
        return ANDROID_HDR
    xmp = info.get("xmp") or b""
    if b"HDRGainMap" in xmp or b"hdrgm:Version" in xmp:
        return "an HDR gain map"
    return None


def deep_pixels(heif) -> np.ndarray:
    """A 10/12-bit image (pillow-heif: uint16, values shifted to the top bits) -> HxWx3
    uint16 over the full 16-bit range, as stored (not turned)."""
    bits = int(heif.info["bit_depth"])
    return _full_range(np.asarray(heif), ((1 << bits) - 1) << (16 - bits))  # pillow-heif's white


def avif_deep_pixels(path: Path, bits: int) -> np.ndarray:
    """A 10/12-bit AVIF's primary image decoded by libavif (``imagecodecs``; Pillow's
    decoder gives 8 bits) -> HxWx3 uint16 over the full 16-bit range, as stored (not turned:
    Pillow reports its irot/imir as an EXIF orientation). ``InputError`` where it cannot."""
    import imagecodecs

    try:
        arr = imagecodecs.avif_decode(path.read_bytes())
    except Exception as exc:  # imagecodecs' AvifError, or a build without the codec
        why = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"corrupt or truncated AVIF image data ({why})", path) from None
    return _full_range(arr, (1 << bits) - 1)


def _full_range(arr: np.ndarray, top: int) -> np.ndarray:
    """HxW or HxWxC integer samples with white at ``top`` -> HxWx3 uint16 with white at
    65535 (grey repeated, alpha dropped, values above ``top`` held there)."""
    arr = arr[..., None].repeat(3, axis=-1) if arr.ndim == 2 else arr[..., :3]
    return (np.minimum(arr.astype(np.uint32), top) * 65535 // top).astype(np.uint16)


def _wide_to_float(heif, path: Path) -> np.ndarray:
    """A 10/12-bit image -> HxWx3 float32 display RGB in [0, 1], an embedded ICC profile
    converted to sRGB."""
    return icc_to_srgb16(deep_pixels(heif), heif.info.get("icc_profile"), path)


def read_heif(
    path: Path, check_size: Callable[[int, int], None]
) -> tuple[Image.Image | np.ndarray, dict, bool]:
    """Decode the primary image of a HEIC/HEIF file.

    Args:
        path: the file.
        check_size: called with (width, height) before the pixels are decoded.
    Returns:
        ``(image, info, alpha)``: an 8-bit image as a Pillow image (``info`` with its ICC
        profile attached) or a deeper one as HxWx3 float32 display RGB in [0, 1]; pillow-heif's
        ``info`` of the image (``nclx_profile``, ``aux``, ``xmp``, ``exif``); whether an alpha
        channel was dropped from a deep image. A file holding several images gives its
        primary one, with a warning. Raises ``InputError`` for unreadable or HDR files.
    """
    heif = open_heif(path)
    if len(heif) > 1:
        warnings.warn(f"{path}: holds {len(heif)} images; using the primary one", stacklevel=3)
    check_size(*heif.size)
    info = refuse_hdr(heif.info, path)
    try:
        if int(info["bit_depth"]) <= 8:
            return heif.to_pillow(), info, False
        return _wide_to_float(heif, path), info, heif.has_alpha
    except (ValueError, RuntimeError, OSError) as exc:
        raise InputError(
            f"corrupt or truncated HEIF image data ({str(exc).strip()})", path
        ) from None


def hdr_transfer(info: dict) -> str | None:
    """ "PQ" or "HLG" where pillow-heif's ``info`` has that nclx transfer, else None."""
    return HDR_TRANSFERS.get((info.get("nclx_profile") or {}).get("transfer_characteristics"))


def refuse_hdr(info: dict, path: Path) -> dict:
    """``info`` (pillow-heif's) as it is; ``InputError`` where its nclx transfer is an HDR
    one (PQ, HLG): the file holds HDR already."""
    if transfer := hdr_transfer(info):
        raise InputError(
            f"already an HDR image ({transfer} transfer); mlx-hdr reconstructs HDR from SDR photos",
            path,
        )
    return info


def avif_info(path: Path) -> dict:
    """pillow-heif's ``info`` of an AVIF file's primary image, read from the container
    without decoding (its nclx colour: primaries, transfer; its ICC profile); Pillow's AVIF
    decoder gives the pixels. ``InputError`` for an unreadable file or an HDR (PQ, HLG)
    one, such as ``predict --format avif``'s output."""
    return refuse_hdr(open_heif(path).info, path)


def is_hdr_avif(path: Path) -> bool:
    """Whether ``path`` is an AVIF whose nclx transfer is PQ or HLG (such as our own
    ``--format avif`` output); False for any other file, an unreadable one included."""
    if container(path) != "avif":
        return False
    try:
        return hdr_transfer(open_heif(path).info) is not None
    except InputError:
        return False


def bt709_to_linear(v: np.ndarray) -> np.ndarray:
    """The inverse of the BT.709 camera curve (OETF): display [0, 1] -> linear [0, 1], as
    browsers read CICP transfer 1 (and 6, 11, 12, 14, 15, the same curve on [0, 1])."""
    return _inverse_oetf(v, *BT709, 4.5)


def smpte240_to_linear(v: np.ndarray) -> np.ndarray:
    """The inverse of SMPTE ST 240's camera curve (CICP transfer 7): display [0, 1] ->
    linear [0, 1]."""
    return _inverse_oetf(v, *ST240, 4.0)


def _inverse_oetf(v: np.ndarray, alpha: float, beta: float, slope: float) -> np.ndarray:
    """The inverse of a camera curve ``alpha * L**0.45 - (alpha - 1)`` from ``beta`` up,
    ``slope * L`` below (display [0, 1] -> linear [0, 1])."""
    v = np.asarray(v, np.float32)
    high = ((v + np.float32(alpha - 1)) / np.float32(alpha)) ** np.float32(1 / 0.45)
    return np.where(v < slope * beta, v / np.float32(slope), high).astype(np.float32)


def _power(gamma: float) -> Callable[[np.ndarray], np.ndarray]:
    """A pure power curve (display [0, 1] -> linear [0, 1])."""
    return lambda v: np.asarray(v, np.float32) ** np.float32(gamma)


CICP_CURVES = {  # CICP transfer characteristics other than sRGB: display -> linear
    1: bt709_to_linear,
    4: _power(2.2),  # BT.470 System M
    5: _power(2.8),  # BT.470 System B, G
    6: bt709_to_linear,  # BT.601
    7: smpte240_to_linear,
    8: _power(1.0),  # linear
    11: bt709_to_linear,  # IEC 61966-2-4 (xvYCC)
    12: bt709_to_linear,  # BT.1361
    14: bt709_to_linear,  # BT.2020, 10-bit
    15: bt709_to_linear,  # BT.2020, 12-bit
}


CICP_PRIMARIES = {  # CICP colour primaries other than BT.709: red, green, blue, white (x, y)
    9: REC2020_CHROMATICITIES,
    11: (0.680, 0.320, 0.265, 0.690, 0.150, 0.060, 0.314, 0.351),  # DCI-P3
    12: DISPLAY_P3,
}


def cicp_info(primaries: int, transfer: int) -> dict:
    """A pillow-heif-style ``info`` (its ``nclx_profile``) for a CICP tag given by its codes
    (a PNG's cICP chunk); primaries not in ``CICP_PRIMARIES`` are read as BT.709."""
    nclx = {"color_primaries": 1, "transfer_characteristics": transfer}
    if chroma := CICP_PRIMARIES.get(primaries):
        nclx |= {"color_primaries": primaries}
        nclx |= {f"color_primary_{k}": v for k, v in zip(_PRIMARY_KEYS, chroma, strict=True)}
    return {"nclx_profile": nclx}


def nclx_curve(info: dict, path: Path) -> Callable[[np.ndarray], np.ndarray]:
    """The curve (display [0, 1] -> linear [0, 1]) of an image's CICP/nclx transfer;
    ``srgb_to_linear`` where it has an ICC profile, an sRGB or unspecified transfer, or
    one not known here (a warning names it: read with the sRGB curve)."""
    nclx = info.get("nclx_profile") or {}
    transfer = nclx.get("transfer_characteristics", 2)
    if info.get("icc_profile") or transfer in SRGB_TRANSFERS:
        return srgb_to_linear
    if transfer not in CICP_CURVES:
        warnings.warn(f"{path}: CICP transfer {transfer} is read with the sRGB curve", stacklevel=3)
    return CICP_CURVES.get(transfer, srgb_to_linear)


def nclx_to_rec709(info: dict) -> np.ndarray | None:
    """The 3x3 matrix (apply as ``x @ m``) from the linear RGB of an image's CICP/nclx
    primaries to Rec.709, with Bradford white adaptation (``color.rgb_to_rec709_matrix``);
    None where it has an ICC profile or sRGB/unspecified primaries."""
    nclx = info.get("nclx_profile") or {}
    if info.get("icc_profile") or nclx.get("color_primaries", 2) in SRGB_PRIMARIES:
        return None
    return rgb_to_rec709_matrix([nclx[f"color_primary_{k}"] for k in _PRIMARY_KEYS]).T


@dataclass(frozen=True)
class CicpColours:
    """What an image's CICP/nclx tag makes of its display values: ``curve`` (display
    [0, 1] -> linear, :func:`nclx_curve`) and ``matrix`` (3x3, its primaries' linear RGB ->
    Rec.709, applied as ``x @ matrix``, :func:`nclx_to_rec709`)."""

    matrix: np.ndarray
    curve: Callable[[np.ndarray], np.ndarray]

    def to_linear(self, x: np.ndarray) -> np.ndarray:
        """Display values (..., 3) in [0, 1] -> float32 linear Rec.709, unbounded."""
        return self.curve(x) @ self.matrix


def nclx_to_srgb(img: np.ndarray, info: dict, path: Path) -> np.ndarray:
    """Convert display RGB (HxWx3 in [0, 1]) tagged with CICP/nclx primaries other than
    BT.709 (Display P3, BT.2020) or a transfer other than sRGB (:func:`nclx_curve`) to
    sRGB: linearise, :func:`nclx_to_rec709`, colours outside sRGB fitted into it
    (``icc.fit_to_srgb``, its clip ramp over the light's sRGB value), re-encode. Images
    with an ICC profile (converted already) or sRGB/unspecified primaries and transfer are
    returned as they are."""
    to709, curve = nclx_to_rec709(info), nclx_curve(info, path)
    if to709 is None and curve is srgb_to_linear:
        return img
    out = np.empty(img.shape, np.float32)
    for rows in row_slices(img.shape[0]):
        light, top = curve(img[rows]), img[rows].max(axis=-1)
        if to709 is None:  # sRGB primaries: only the curve changes
            out[rows] = linear_to_srgb(light)
            continue
        if curve is not srgb_to_linear:  # its white where sRGB's would be
            top = linear_to_srgb(curve(top))
        out[rows] = fit_to_srgb(light @ to709, top)
    return out
