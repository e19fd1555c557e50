"""All image file reading and writing.

- :func:`read_hdr` -> float32 HxWx3 **scene-linear** RGB (>= 0, unbounded; Rec.709 primaries):
  Radiance ``.hdr``, OpenEXR ``.exr``, ``.pfm`` (:mod:`mlx_hdr.io.hdr_io`, re-exported here).
- :func:`read_ldr` -> float32 HxWx3 **display** RGB in [0, 1]: JPEG, PNG, TIFF (8 and 16 bit,
  grey, palette, alpha dropped, CMYK), WebP, AVIF (8, 10 and 12 bit), with the EXIF
  orientation applied;
  HEIC/HEIF (8 and 10 bit, the primary image, see :mod:`mlx_hdr.io.heic`).
- :func:`write_hdr` / :func:`write_ldr` write atomically (temp file beside the target, then
  ``os.replace``) with :func:`mlx_hdr.io.atomic.atomic_write`.

Every bad input raises :class:`mlx_hdr.errors.InputError` with a one-line message naming the
file. ``MAX_PIXELS`` (default 100 MP) refuses larger images before decoding them.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from mlx_hdr.color import linear_to_srgb, row_slices
from mlx_hdr.errors import InputError
from mlx_hdr.io import pngcheck
from mlx_hdr.io.atomic import atomic_write
from mlx_hdr.io.avif_gainmap import open_avif
from mlx_hdr.io.checks import (
    MAX_PIXELS,
    check_image,
    check_input,
    check_pixels,
    pil_pixel_limit,
    quiet_cv2,
)
from mlx_hdr.io.exif import ORIENTATION, exif_orient, exif_orientation, pixel_orientation, turned
from mlx_hdr.io.hdr_io import HALF_MAX, HDR_SUFFIXES, read_hdr, sanitize_hdr, write_hdr
from mlx_hdr.io.heic import (
    AVIF_SUFFIXES,
    CICP_PRIMARIES,
    HEIF_SUFFIXES,
    avif_deep_pixels,
    avif_info,
    cicp_info,
    container,
    is_hdr_avif,
    nclx_to_srgb,
    read_heif,
    refuse_hdr,
    register,
)
from mlx_hdr.io.icc import icc_to_srgb, icc_to_srgb16

__all__ = [
    "HALF_MAX",
    "HDR_SUFFIXES",
    "LDR_SUFFIXES",
    "MAX_PIXELS",
    "LdrInfo",
    "is_ldr_file",
    "distinct_files",
    "ldr_files",
    "read_hdr",
    "read_ldr",
    "read_ldr_info",
    "sanitize_hdr",
    "to_uint8",
    "write_hdr",
    "write_ldr",
]

NEW_SUBFILE_TYPE = 254  # TIFF tag: bit 0 marks a reduced-resolution copy
LDR_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp", *HEIF_SUFFIXES, *AVIF_SUFFIXES)
SEQUENCES = ("TIFF", "WEBP", "AVIF", "PNG")  # files that may hold several images (not MPO)
LDR_WRITE_SUFFIXES = (".jpg", ".jpeg", ".png")

_alpha_warned = False


# ---------------------------------------------------------------- listings


def is_ldr_file(path: Path) -> bool:
    """Whether ``path`` is named as a photo :func:`read_ldr` reads (``LDR_SUFFIXES``) and is
    not an HDR AVIF (``heic.is_hdr_avif``: our own ``--format avif`` output): what folder
    listings take as photos."""
    suffix = path.suffix.lower()  # only .avif files opened: listing a folder stays cheap
    return suffix in LDR_SUFFIXES and not (suffix in AVIF_SUFFIXES and is_hdr_avif(path))


def distinct_files(paths: list[Path]) -> list[Path]:
    """``paths`` in order, each file once: of names that resolve to one file (named twice,
    by a folder and by name, through a link), the first."""
    first = {p.resolve(): p for p in reversed(paths)}
    return [p for p in paths if first.get(p.resolve()) is p]


def ldr_files(folder: Path) -> list[Path]:
    """The photos in ``folder`` (files for which :func:`is_ldr_file` holds), sorted; hidden
    files (temporary files, macOS's ``._`` resource files) are not photos."""
    return sorted(
        p for p in folder.iterdir() if not p.name.startswith(".") and p.is_file() and is_ldr_file(p)
    )


# ---------------------------------------------------------------- LDR reading


@dataclass(frozen=True)
class LdrInfo:
    """What :func:`read_ldr_info` finds: size after orientation, bit depth, mode, EXIF tag."""

    width: int
    height: int
    bits: int
    mode: str
    orientation: int
    has_alpha: bool


def open_photo(path: Path) -> Image.Image:
    """``path`` opened by Pillow (its header read) as every reader here opens a photo: a HEIC
    through pillow-heif, an AVIF by Pillow's own decoder (pillow-heif, registered for HEIC,
    would take one whose major brand is mif1 and cannot decode AV1 here), a TIFF that
    Pillow turns as it loads it (an orientation tag) from an open file, a TIFF at its first
    full-size page (:func:`first_full_page`, ``im.tell()``: a thumbnail may come first).
    Pillow's errors pass through."""
    kind = container(path)
    if kind == "heif":
        register(path)
    im = open_avif(path) if kind == "avif" else Image.open(path)
    page = first_full_page(im)
    if im.format == "TIFF" and im.tag_v2.get(ORIENTATION, 1) != 1:
        im.close()  # Pillow maps an uncompressed TIFF from a named file at its turned size
        fp = path.open("rb")  # (garbled); from an open file it decodes it
        try:
            im = Image.open(fp)
            im.seek(page)
        except BaseException:
            fp.close()
            raise
        im._exclusive_fp = True  # closed with the image, as when Pillow opens the file
    return im


def _open_pil(path: Path, max_pixels: int | None) -> Image.Image:
    """:func:`open_photo`, its errors and pixel limit (``max_pixels``) as ``InputError``s."""
    try:
        with warnings.catch_warnings(), pil_pixel_limit():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = open_photo(path)
    except Image.DecompressionBombError as exc:
        raise InputError(f"refused: {exc}".split(". ")[0], path) from None
    except UnidentifiedImageError:
        raise InputError(_unrecognised(path), path) from None
    except (OSError, ValueError, RuntimeError) as exc:  # AVIF: "Failed to decode image: ..."
        raise InputError(f"cannot open image ({exc})", path) from None
    try:
        check_pixels(path, im.width, im.height, max_pixels)
    except InputError:
        im.close()  # refused: its file is not left open
        raise
    return im


def _unrecognised(path: Path) -> str:
    """Why Pillow could not open ``path``: a TIFF of samples that are not a photo's
    (:func:`tiff_samples`, read by tifffile), else not an image read here."""
    if path.suffix.lower() in (".tif", ".tiff"):
        try:
            import tifffile

            with tifffile.TiffFile(path) as tif:
                page = tif.pages[0]
                if why := tiff_samples(page.bitspersample, int(page.sampleformat)):
                    return why
        except Exception:  # noqa: BLE001 (not a TIFF tifffile reads either)
            pass
    return "not a recognised image (corrupt or wrong extension)"


def tiff_samples(bits: int, sample_format: int) -> str | None:
    """What is wrong with a TIFF of ``bits``-bit samples of TIFF SampleFormat
    ``sample_format`` (1 unsigned, 2 signed, 3 floating point) for a photo: one that is not
    8 or 16-bit unsigned (an HDR or scientific image) is not read as one; else None."""
    if sample_format in (1, 0) and bits <= 16:  # 0: not given, unsigned
        return None
    kind = {1: "unsigned", 2: "signed", 3: "floating-point"}.get(sample_format, "unknown")
    return f"a TIFF of {bits}-bit {kind} samples; photos are read at 8 or 16 bits"


def is_16bit(im: Image.Image) -> bool:
    """Whether an open image holds 16-bit samples (Pillow would give an RGB one at 8 bits);
    call before anything reads its EXIF, which may decode a PNG and drop its tile list."""
    raw = str(im.tile[0].args if im.tile else "")
    if im.format == "TIFF" and 16 in tuple(im.tag_v2.get(258, ())):  # BitsPerSample
        return True  # a planar one's tile does not say so
    return im.mode.startswith("I;16") or ";16" in raw or im.mode in ("I", "F")


def read_ldr_info(path, max_pixels: int | None = None) -> LdrInfo:
    """Header facts about an LDR file without decoding its pixels."""
    path = check_input(path, LDR_SUFFIXES, "LDR")
    with _open_pil(path, max_pixels) as im:
        bits = 16 if is_16bit(im) else 8
        orientation = exif_orientation(im)
        w, h = (im.height, im.width) if pixel_orientation(im) in (5, 6, 7, 8) else im.size
        alpha = im.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in im.info
        return LdrInfo(w, h, bits, im.mode, orientation, alpha)


def _warn_alpha(path: Path) -> None:
    global _alpha_warned
    if not _alpha_warned:
        _alpha_warned = True
        warnings.warn(
            f"{path}: alpha channel dropped (said for the first such photo only)", stacklevel=3
        )


def read_16bit_rgb(path: Path, page: int = 0) -> np.ndarray:
    """A 16-bit PNG/TIFF's pixels as stored, not turned, in RGB(A) order (HxW for grey): a
    PNG by OpenCV, a TIFF (its ``page``) by tifffile (OpenCV turns some orientation tags
    itself and fails on others, and garbles planar files)."""
    if path.suffix.lower() not in (".tif", ".tiff"):
        with quiet_cv2():
            arr = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if arr is not None:
            return arr[..., [2, 1, 0, 3][: arr.shape[2]]] if arr.ndim == 3 else arr
        raise InputError("corrupt or truncated 16-bit image data", path)
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            stored = tif.pages[page]
            arr = stored.asarray()
            if stored.planarconfig == tifffile.PLANARCONFIG.SEPARATE and arr.ndim == 3:
                arr = np.moveaxis(arr, 0, -1)  # stored one plane per channel
    except (OSError, ValueError, IndexError, RuntimeError, tifffile.TiffFileError):
        arr = None
    if arr is None or arr.ndim not in (2, 3) or arr.dtype not in (np.uint8, np.uint16):
        raise InputError("corrupt or truncated 16-bit image data", path)
    return arr


def _read_16bit(path: Path, orientation: int, icc: bytes | None, page: int = 0) -> np.ndarray:
    """16-bit RGB(A) PNG/TIFF (Pillow would truncate them to 8 bits; a TIFF's ``page``), its
    ICC profile ``icc`` (read by Pillow) converted to sRGB."""
    arr = read_16bit_rgb(path, page)
    if arr.ndim == 3 and arr.shape[2] == 4:
        _warn_alpha(path)
    if arr.ndim == 3 and arr.dtype == np.uint16:
        return exif_orient(icc_to_srgb16(arr[..., :3], icc, path), orientation)
    arr = arr[..., :3] if arr.ndim == 3 else arr[..., None].repeat(3, -1)
    scale = 65535.0 if arr.dtype == np.uint16 else 255.0
    return exif_orient(arr.astype(np.float32) / scale, orientation)


def _pil_to_rgb(im: Image.Image, path: Path) -> np.ndarray:
    """Decoded Pillow image of any mode -> HxWx3 float32 sRGB display values in [0, 1]."""
    if im.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        arr = np.asarray(im).astype(np.float32) / 65535.0
        return np.repeat(np.clip(arr, 0, 1)[..., None], 3, axis=-1)
    if im.mode == "F":
        return np.repeat(np.clip(np.asarray(im, np.float32), 0, 1)[..., None], 3, axis=-1)
    if im.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in im.info:
        _warn_alpha(path)
    if im.mode == "P" and "transparency" in im.info:
        im = im.convert("RGBA")
    return icc_to_srgb(im, path)


def read_ldr(path, max_pixels: int | None = None) -> np.ndarray:
    """Read a JPEG/PNG/TIFF/WebP/HEIC/AVIF as float32 HxWx3 display RGB in [0, 1].

    8-bit values are divided by 255, 16-bit by 65535 (10/12-bit HEIC and AVIF by their
    white); grey is repeated to 3 channels, palette and CMYK are converted to RGB, alpha is
    dropped (one warning per process), the EXIF orientation is applied, and an embedded
    non-sRGB ICC profile is converted to sRGB; so are colours a HEIC's or AVIF's CICP tag
    or a PNG's cICP or gAMA chunk gives (``heic.nclx_to_srgb``, :func:`_png_colours`). A
    multi-page TIFF or an animated WebP or PNG gives its first image (with a warning).
    Raises ``InputError`` for missing, empty, truncated, unsupported or too large
    (``max_pixels``, default ``MAX_PIXELS``) files, HDR ones (a PQ or HLG AVIF, HEIC or
    PNG) and TIFFs of samples other than 8 or 16-bit unsigned.
    """
    path = check_input(path, LDR_SUFFIXES, "LDR")
    kind = container(path)
    if kind == "heif":
        return _read_heif(path, max_pixels)
    if kind == "avif":
        info = avif_info(path)  # an HDR (PQ, HLG) file is refused before decoding
        bits = int(info.get("bit_depth") or 8)
        img = _read_pil(path, max_pixels) if bits <= 8 else _read_deep_avif(path, bits, max_pixels)
        return nclx_to_srgb(img, info, path)
    colour = pngcheck.colour_chunks(path)  # a PNG's cICP and gAMA chunks (others: none)
    if colour.cicp is not None:  # a PQ or HLG PNG (a fallback profile too), before decoding
        refuse_hdr(cicp_info(*colour.cicp), path)
    img = _read_pil(path, max_pixels, icc=colour.cicp is None)  # cICP wins over iCCP
    return _png_colours(img, colour, path)


def _png_colours(img: np.ndarray, colour: pngcheck.PngColour, path: Path) -> np.ndarray:
    """A PNG's colours as browsers read them (the PNG third edition's order): by its cICP
    chunk (CICP primaries and curve, :func:`~mlx_hdr.io.heic.nclx_to_srgb`; ``img`` read
    without its ICC profile then), else by its ICC profile (applied already), else,
    without an sRGB chunk, by a gAMA other than sRGB's 1/2.2 (a power curve; 1.0: linear)."""
    if colour.cicp is not None:  # before iCCP and gAMA (PNG, third edition)
        if colour.cicp[0] not in (1, 2, *CICP_PRIMARIES):
            warnings.warn(
                f"{path}: CICP primaries {colour.cicp[0]} are read as BT.709", stacklevel=3
            )
        return nclx_to_srgb(img, cicp_info(*colour.cicp), path)
    if colour.iccp:  # converted by its profile already
        return img
    if colour.gamma and not colour.srgb and abs(colour.gamma * 2.2 - 1.0) > 0.01:
        light = np.power(np.clip(img, 0.0, 1.0), np.float32(1.0 / colour.gamma))
        return linear_to_srgb(light)
    return img


def _read_deep_avif(path: Path, bits: int, max_pixels: int | None) -> np.ndarray:
    """A 10/12-bit AVIF at full precision (``heic.avif_deep_pixels``), turned and its ICC
    profile converted as Pillow's decoder would have it read (which gives 8 bits); an
    animated one as :func:`_read_pil` reads it (libavif would decode every frame)."""
    with _open_pil(path, max_pixels) as im:
        if getattr(im, "n_frames", 1) > 1:  # an animation: its first frame, at 8 bits
            return _read_pil(path, max_pixels)
        orientation, icc = exif_orientation(im), im.info.get("icc_profile")
        if im.mode in ("RGBA", "LA"):
            _warn_alpha(path)
    return exif_orient(icc_to_srgb16(avif_deep_pixels(path, bits), icc, path), orientation)


def _read_pil(path: Path, max_pixels: int | None, icc: bool = True) -> np.ndarray:
    """:func:`read_ldr` for the formats Pillow decodes (``icc``: by its ICC profile, if any;
    False for a PNG whose cICP chunk tells its colours instead)."""
    with _open_pil(path, max_pixels) as im:
        if not icc:
            im.info.pop("icc_profile", None)
        if im.format == "PNG" and (problem := pngcheck.problem(path)):
            raise InputError(problem, path)
        if im.format == "TIFF":  # a grey float or signed TIFF opens: not a photo all the same
            bits, kind = im.tag_v2.get(258, (8,)), im.tag_v2.get(339, (1,))
            first = lambda v: v[0] if isinstance(v, tuple) else v  # noqa: E731
            if problem := tiff_samples(int(first(bits)), int(first(kind))):
                raise InputError(problem, path)
        page = im.tell()  # open_photo's choice (a TIFF's first full-size page)
        if im.format in SEQUENCES and (n := getattr(im, "n_frames", 1)) > 1:
            which = "the first" if page == 0 else "the first full-size one"
            warnings.warn(f"{path}: holds {n} images; using {which}", stacklevel=2)
        try:
            wide = is_16bit(im)  # before getexif(), which may decode a PNG and drop .tile
            orientation = exif_orientation(im)
            if wide and im.mode in ("RGB", "RGBA"):  # others at 8 bits by Pillow (CMYK)
                return _read_16bit(path, orientation, im.info.get("icc_profile"), page)
            turn = pixel_orientation(im)
            im.load()  # full decode: truncated files fail here (LOAD_TRUNCATED_IMAGES is False)
            im = turned(im, turn)
            return _pil_to_rgb(im, path)
        except (OSError, SyntaxError, ValueError, RuntimeError) as exc:  # RuntimeError: AVIF
            if str(exc).startswith("image file is truncated"):  # Pillow's words for it
                raise InputError("truncated: the file ends before its image does", path) from None
            raise InputError(f"corrupt or truncated image data ({exc})", path) from None


def first_full_page(im: Image.Image) -> int:
    """Seek a multi-page TIFF to its first page not marked as a reduced-resolution copy (a
    thumbnail before the photo: NewSubfileType bit 0); the page's index (0 for others)."""
    if im.format != "TIFF" or getattr(im, "n_frames", 1) == 1:
        return 0
    for i in range(im.n_frames):
        im.seek(i)
        if not int(im.tag_v2.get(NEW_SUBFILE_TYPE, 0)) & 1:
            return i
    im.seek(0)  # thumbnails only: the first
    return 0


def _read_heif(path: Path, max_pixels: int | None) -> np.ndarray:
    """HEIC/HEIF via :func:`mlx_hdr.io.heic.read_heif`; 8-bit images go the JPEG way from there."""
    img, info, alpha = read_heif(path, lambda w, h: check_pixels(path, w, h, max_pixels))
    if alpha:
        _warn_alpha(path)
    img = _pil_to_rgb(img, path) if isinstance(img, Image.Image) else img
    return nclx_to_srgb(img, info, path)


# ---------------------------------------------------------------- writing


def to_uint8(img01: np.ndarray) -> np.ndarray:
    """Display values (HxWx3, clipped to [0, 1], NaN -> 0) -> uint8, rounded, in row strips."""
    u8 = np.empty(np.shape(img01), np.uint8)
    for rows in row_slices(u8.shape[0]):  # strips: no full-size float temporaries
        u8[rows] = np.clip(np.nan_to_num(img01[rows]), 0.0, 1.0) * 255.0 + 0.5
    return u8


def write_ldr(path, img01: np.ndarray, quality: int = 95, icc: bytes | None = None) -> Path:
    """Write a display image (HxWx3 in [0, 1], clipped) as 8-bit PNG or JPEG, atomically;
    tagged with the ICC profile ``icc`` where given (its values are in that colour space),
    else untagged sRGB."""
    path = Path(path)
    if path.suffix.lower() not in LDR_WRITE_SUFFIXES:
        raise InputError(f"unsupported LDR output type {path.suffix!r} (.png, .jpg)", path)
    u8 = to_uint8(check_image(img01, path))
    fmt = "PNG" if path.suffix.lower() == ".png" else "JPEG"
    # zlib level 3: a 24 MP preview in 1.8 s and 20 MB (Pillow's default 6: 5.0 s, 17 MB)
    opts = {"quality": int(quality)} if fmt == "JPEG" else {"compress_level": 3}
    opts |= {"icc_profile": icc} if icc else {}
    with atomic_write(path) as tmp:
        Image.fromarray(u8).save(tmp, format=fmt, **opts)
    return path
