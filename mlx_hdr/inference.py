"""Any-size prediction and the predict pipeline.

The network is any callable ``net(x) -> y`` on MLX arrays, NHWC: x is the ImageNet-normalised
input (``color.ldr_to_input``) with H, W multiples of 32, y the log-domain target in [-1, 1]
(same H, W, 3 channels).

Images up to ``WORK_PIXELS`` (after padding to multiples of 32) run in one pass. Larger ones
run at a working resolution: the photo is area-downscaled to fit, the network's calibrated
prediction there becomes a per-channel gain map over the linearised input (log ratio,
like an Ultra HDR gain map), and the bilinearly upsampled gain is applied to the
full-resolution input. Detail comes from the full-resolution photo; the blend then keeps it
exactly wherever it is not clipped. The network is never tiled: its InstanceNorm layers
normalise over the whole image, and a tile inside a clipped sky looked like a flat white
image of its own (highlights were lost: peak 1.0 instead of 3.5 on an upscaled sample).
The working resolution is 1 MP: the model was trained on 160-px views and validated up to
~1.1 MP; on 3x-upscaled eval photos a 4 MP pass drew streaks inside clipped areas and a
1 MP pass did not, and on an 8x-upscaled sample rings grew from one small ring at 1 MP to
many at 2-4 MP.
"""

from __future__ import annotations

import glob
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import cv2
import mlx.core as mx
import numpy as np
from tqdm import tqdm

from mlx_hdr.avif import write_avif
from mlx_hdr.calibrate import blend_with_input, calibrate
from mlx_hdr.color import ldr_to_input, row_slices, srgb_to_linear
from mlx_hdr.errors import HDRError, InputError, os_error_line
from mlx_hdr.image_io import HDR_SUFFIXES, LDR_SUFFIXES, read_ldr, write_hdr, write_ldr
from mlx_hdr.photo_meta import existing_gain_map, read_exif
from mlx_hdr.targets import target_kind
from mlx_hdr.tonemap import tonemap
from mlx_hdr.uhdr import UHDR_SUFFIX, UhdrOptions, write_uhdr

MULTIPLE = 32
WORK_PIXELS = 1_000_000  # the scale the model was validated at (eval-public: <= 1.1 MP)
GAIN_FLOOR = 1e-4  # added before the gain map's log ratio: black pixels stay finite

Net = Callable[[mx.array], mx.array]


def pad_to_multiple(img: np.ndarray, multiple: int = MULTIPLE) -> np.ndarray:
    """Pad HWC at the bottom/right to multiples of ``multiple``.

    Reflect padding, or edge padding along an axis shorter than its pad (reflect needs more).
    """
    h, w = img.shape[:2]
    ph, pw = (-h) % multiple, (-w) % multiple
    for axis, pad in ((0, ph), (1, pw)):
        if pad:
            widths = [(0, 0)] * img.ndim
            widths[axis] = (0, pad)
            mode = "reflect" if pad < img.shape[axis] else "edge"
            img = np.pad(img, widths, mode=mode)
    return img


def padded_pixels(h: int, w: int) -> int:
    """Pixels of an h×w image once padded to multiples of ``MULTIPLE``."""
    return (-(-h // MULTIPLE) * MULTIPLE) * (-(-w // MULTIPLE) * MULTIPLE)


def work_size(h: int, w: int, work_pixels: int = WORK_PIXELS) -> tuple[int, int] | None:
    """(height, width) to run the network at, keeping the aspect; None if (h, w) fits."""
    if padded_pixels(h, w) <= work_pixels:
        return None
    scale = math.sqrt(work_pixels / (h * w))
    while True:
        size = (max(1, int(h * scale)), max(1, int(w * scale)))
        if padded_pixels(*size) <= work_pixels or size == (1, 1):
            return size
        scale *= 0.98


def predict_target(net: Net, ldr: np.ndarray) -> np.ndarray:
    """The network on a display image in one pass.

    Args:
        net: NHWC callable, normalised input -> [-1, 1].
        ldr: HxWx3 display input in [0, 1].
    Returns:
        HxWx3 float32 network output in [-1, 1], cropped back to the input size.
    """
    h, w = ldr.shape[:2]
    x = mx.array(pad_to_multiple(ldr_to_input(ldr))[None])
    y = net.infer(x) if hasattr(net, "infer") else net(x)
    mx.eval(y)
    return np.asarray(y, np.float32)[0, :h, :w]


def apply_gain_map(
    ldr: np.ndarray, small: np.ndarray, hdr_small: np.ndarray, blend: bool = False
) -> np.ndarray:
    """Carry a low-resolution reconstruction to the full-resolution photo.

    Args:
        ldr: HxWx3 display photo in [0, 1].
        small: its downscaled version, hxwx3 display in [0, 1].
        hdr_small: scene-linear reconstruction of ``small`` (hxwx3, >= 0).
        blend: then keep the photo where it is not clipped (:func:`blend_with_input`).
    Returns:
        HxWx3 float32 scene-linear image: ``srgb_to_linear(ldr)`` times the bilinearly
        upsampled per-channel ratio ``hdr_small / srgb_to_linear(small)`` (in log space).
        Computed in strips of rows (all per-pixel), so the peak memory is the photo, the
        gain and the output rather than a dozen full-size temporaries.
    """
    f = GAIN_FLOOR
    gain = np.log((hdr_small + f) / (srgb_to_linear(small) + f)).astype(np.float32)
    gain = cv2.resize(gain, ldr.shape[1::-1], interpolation=cv2.INTER_LINEAR)
    out = np.empty(ldr.shape, np.float32)
    for rows in row_slices(ldr.shape[0]):
        lin = srgb_to_linear(ldr[rows])
        hdr = np.maximum((lin + f) * np.exp(gain[rows]) - f, 0.0)
        out[rows] = blend_with_input(ldr[rows], hdr, lin=lin) if blend else hdr
    return out


def predict_model_hdr(
    net: Net, ldr: np.ndarray, blend: bool = True, work_pixels: int = WORK_PIXELS
) -> np.ndarray:
    """The model's scene-linear HDR for a display image of any size (see the module doc)."""
    size = work_size(*ldr.shape[:2], work_pixels)
    if size is None:
        return calibrate(ldr, predict_target(net, ldr), blend=blend, kind=target_kind(net))
    small = np.clip(cv2.resize(ldr, size[::-1], interpolation=cv2.INTER_AREA), 0.0, 1.0)
    hdr_small = calibrate(small, predict_target(net, small), blend=False, kind=target_kind(net))
    return apply_gain_map(ldr, small, hdr_small, blend)


def predict_hdr(
    ldr: np.ndarray,
    net: Net | None = None,
    method: str = "model",
    blend: bool = True,
    work_pixels: int = WORK_PIXELS,
) -> np.ndarray:
    """Reconstruct scene-linear HDR (HxWx3 float32 >= 0, 1.0 = the input's white).

    Args:
        ldr: HxWx3 display input in [0, 1].
        net: the network, required when ``method == "model"``.
        method: ``"model"`` or a classical method name from ``mlx_hdr.methods.METHODS``.
        blend: for the model, keep the linearised input where it is not clipped.
        work_pixels: the model runs on at most this many (padded) pixels; larger photos go
            through a gain map (:func:`predict_model_hdr`).
    """
    if method != "model":
        from mlx_hdr.methods import get_method

        return get_method(method)(ldr)
    if net is None:
        raise ValueError("method 'model' needs a network")
    return predict_model_hdr(net, ldr, blend, work_pixels)


# ---------------------------------------------------------------- files


GLOB_CHARS = set("*?[")
PREVIEW_SUFFIX = "_preview.png"
JPEG_SUFFIXES = (".jpg", ".jpeg")
HDR_OUTPUTS = (*HDR_SUFFIXES, ".avif")  # files that hold the HDR rendition alone
FORMATS = {"hdr": ".hdr", "exr": ".exr", "pfm": ".pfm", "avif": ".avif", "uhdr": UHDR_SUFFIX}


@dataclass
class PredictOptions:
    """Everything ``mlx-hdr predict`` can set besides inputs, outputs and the network."""

    method: str = "model"
    blend: bool = True
    formats: tuple[str, ...] = ("hdr",)  # FORMATS' keys; an output file's extension overrides
    dtype: str = "half"  # half | float (EXR)
    preview: bool | None = None  # None: with an HDR file, not beside a gain-map JPEG alone
    preview_only: bool = False
    tonemap: str = "reinhard"
    exposure_ev: float = 0.0
    max_size: int | None = None
    work_pixels: int = WORK_PIXELS
    uhdr: UhdrOptions = field(default_factory=UhdrOptions)
    skip_hdr_inputs: bool = False  # skip photos that carry an HDR gain map already


@dataclass
class PredictReport:
    """What :func:`predict_files` did: files written per input, and failures."""

    written: list[tuple[Path, list[Path]]] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)


def expand_inputs(inputs: list[str]) -> tuple[list[Path], list[tuple[str, str]]]:
    """Files, folders (their JPEG/PNG/TIFF/HEIC files, sorted, skipping our previews and
    gain-map JPEGs) and globs.

    Returns ``(paths, missing)``, ``missing`` as ``(input, problem)`` pairs.
    """
    paths, missing = [], []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found = [
                q
                for q in sorted(p.iterdir())
                if q.is_file()
                and q.suffix.lower() in LDR_SUFFIXES
                and not q.name.endswith((PREVIEW_SUFFIX, UHDR_SUFFIX))
            ]
            paths += found
            if not found:
                missing.append((item, "folder has no JPEG/PNG/TIFF/HEIC images"))
        elif p.exists() or not GLOB_CHARS & set(item):
            paths.append(p)  # a missing file fails later with read_ldr's message
        else:
            matched = sorted(Path(q) for q in glob.glob(item, recursive=True))
            paths += [q for q in matched if q.is_file()]
            if not matched:
                missing.append((item, "no files match this pattern"))
    unique = {p.resolve(): p for p in reversed(paths)}  # an input named twice runs once
    return [p for p in paths if unique.get(p.resolve()) is p], missing


def output_stems(paths: list[Path]) -> list[str]:
    """Output name per input: its stem, or ``<folder>_<stem>`` when stems repeat."""
    stems = [p.stem for p in paths]
    return [f"{p.parent.name}_{p.stem}" if stems.count(p.stem) > 1 else p.stem for p in paths]


def output_paths(stem: str, out: Path, single: bool, opts: PredictOptions) -> list[Path]:
    """The files to write for one input: [one per format..., preview?].

    ``out`` is a folder (``OUT/<stem>.hdr`` and the like, ``OUT/<stem>_uhdr.jpg`` for the
    gain-map JPEG, ``OUT/<stem>_preview.png``) unless a single input names a file:
    ``-o x.exr`` (or .avif) writes x.exr (+ x_preview.png), ``-o x.jpg`` the gain-map JPEG x.jpg,
    ``-o x.png`` the preview x.png. The preview comes with an HDR file unless ``opts.preview``
    says otherwise.
    """
    suffix = out.suffix.lower()
    if single and suffix in (*HDR_OUTPUTS, *JPEG_SUFFIXES, ".png") and not out.is_dir():
        if suffix == ".png":
            return [out]
        main, preview = [out], out.with_name(out.stem + PREVIEW_SUFFIX)
    else:
        main = [out / f"{stem}{FORMATS[fmt]}" for fmt in opts.formats]
        preview = out / f"{stem}{PREVIEW_SUFFIX}"
    if opts.preview_only:
        return [preview]
    wanted = opts.preview
    if wanted is None:
        wanted = any(p.suffix.lower() in HDR_OUTPUTS for p in main)
    return [*main, preview] if wanted else main


def load_input(path: Path, max_size: int | None) -> np.ndarray:
    """read_ldr, then an area downscale so the longer side is at most ``max_size``."""
    ldr = read_ldr(path)
    h, w = ldr.shape[:2]
    if max_size and max(h, w) > max_size:
        s = max_size / max(h, w)
        size = (max(1, round(w * s)), max(1, round(h * s)))
        ldr = np.clip(cv2.resize(ldr, size, interpolation=cv2.INTER_AREA), 0.0, 1.0)
    return ldr


def skip_hdr_input(src: Path, skip: bool) -> bool:
    """Say (one warning) when ``src`` carries an HDR gain map already; True to skip it."""
    kind = existing_gain_map(src)
    if kind is None:
        return False
    what = f"{src}: already HDR on screens that show {kind}"
    action = "skipped (--skip-hdr-inputs)" if skip else "reconstructing anyway"
    warnings.warn(f"{what}; {action}", stacklevel=2)
    return skip


def predict_file(src: Path, dests: list[Path], net: Net | None, opts: PredictOptions) -> list[Path]:
    """Predict one image and write ``dests`` by extension: ``.png`` the preview, ``.jpg`` the
    gain-map JPEG, ``.avif`` the PQ AVIF, else the HDR file. Nothing is written for a skipped
    HDR input."""
    if skip_hdr_input(src, opts.skip_hdr_inputs):
        return []
    ldr = load_input(src, opts.max_size)
    hdr = predict_hdr(ldr, net, opts.method, opts.blend, opts.work_pixels)
    for dest in dests:
        suffix = dest.suffix.lower()
        if suffix == ".png":
            write_ldr(dest, tonemap(hdr, opts.tonemap, opts.exposure_ev))
        elif suffix in JPEG_SUFFIXES:
            write_uhdr(dest, ldr, hdr, read_exif(src), opts.uhdr)
        elif suffix == ".avif":
            write_avif(dest, hdr)
        else:
            write_hdr(dest, hdr, dtype=opts.dtype)
    return dests


def check_output(out: Path, single: bool) -> None:
    """Refuse an ``-o`` that names an image type we do not write (``InputError``): a JPEG is
    the gain-map JPEG of a single input, PNG the preview; TIFF and HEIC are never written."""
    suffix = out.suffix.lower()
    if suffix not in LDR_SUFFIXES or suffix == ".png" or out.is_dir():
        return
    if not (single and suffix in JPEG_SUFFIXES):
        kinds = ".hdr/.exr/.pfm/.avif/.png/.jpg"
        raise InputError(
            f"cannot write this type: name a folder, or for one input a {kinds} file", out
        )


def _clash(dests: list[Path], claimed: dict[Path, Path], sources: set[Path]) -> str | None:
    """Why ``dests`` must not be written (an input file, another input's output), or None."""
    for dest in dests:
        if dest.resolve() in sources:
            return f"output {dest} would overwrite an input; choose another -o"
        if dest in claimed:
            return f"output name collides with {claimed[dest]}; rename one"
    return None


def record_failure(
    report, on_error: Callable[[str, str], None] | None, item: str, problem: str
) -> None:
    """Add ``(item, problem)`` to ``report.failed`` and pass it to ``on_error`` when given."""
    report.failed.append((item, problem))
    if on_error:
        on_error(item, problem)


def predict_files(
    inputs: list[str],
    out: Path,
    net: Net | None,
    opts: PredictOptions,
    on_error: Callable[[str, str], None] | None = None,
    progress: bool = True,
) -> PredictReport:
    """Predict every input (files, folders, globs) into ``out``; failing files are skipped.

    ``on_error(path, problem)`` is called for each failure as it happens. Each HDR and preview is
    written atomically, so a failure never leaves a partial file.
    """
    report = PredictReport()
    fail = partial(record_failure, report, on_error)
    paths, missing = expand_inputs(inputs)
    single = len(paths) == 1 and len(inputs) == 1 and not Path(inputs[0]).is_dir()
    check_output(out, single)
    for item, problem in missing:
        fail(item, problem)
    sources = {p.resolve() for p in paths}
    claimed: dict[Path, Path] = {}
    stems = output_stems(paths)
    for src, stem in tqdm(
        list(zip(paths, stems, strict=True)), desc="predict", unit="img", disable=not progress
    ):
        dests = output_paths(stem, out, single, opts)
        clash = _clash(dests, claimed, sources)
        if clash:
            fail(str(src), clash)
            continue
        claimed.update(dict.fromkeys(dests, src))
        problem = _predict_one(src, dests, net, opts, report)
        if problem:
            fail(str(src), problem)
    return report


def _predict_one(
    src: Path, dests: list[Path], net: Net | None, opts: PredictOptions, report: PredictReport
) -> str | None:
    """:func:`predict_file` into ``report``; the problem as one line if it failed."""
    try:
        dests[0].parent.mkdir(parents=True, exist_ok=True)
        report.written.append((src, predict_file(src, dests, net, opts)))
    except HDRError as exc:
        return str(exc).removeprefix(f"{src}: ")
    except OSError as exc:  # the output side: e.g. -o names a file or a read-only place
        return os_error_line(exc)
    return None
