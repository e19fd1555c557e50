"""Any-size prediction: padding, overlapping tiles with feathered blending, the predict pipeline.

The network is any callable ``net(x) -> y`` on MLX arrays, NHWC: x is the ImageNet-normalised
input (``color.ldr_to_input``) with H, W multiples of 32, y the log-domain target in [-1, 1]
(same H, W, 3 channels). Images up to ``WHOLE_PIXELS`` run in one pass; larger ones run as
``TILE`` x ``TILE`` tiles overlapping by ``OVERLAP`` pixels. Each tile's weight is 0 on the
outer ``OVERLAP // 4`` pixels of an inner edge (where its zero padding differs from the
whole-image result), then ramps linearly to 1, so a network whose receptive field reaches at
most that far gives exactly the whole-image result; the input normalisation always uses
whole-image statistics. Peak memory is then bounded by one batch of tiles plus a few
full-size float32 buffers.
"""

from __future__ import annotations

import glob
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import mlx.core as mx
import numpy as np
from tqdm import tqdm

from mlx_hdr._blas import blas_threads
from mlx_hdr.calibrate import calibrate
from mlx_hdr.color import ldr_to_input
from mlx_hdr.errors import HDRError
from mlx_hdr.image_io import LDR_SUFFIXES, read_ldr, write_hdr, write_ldr
from mlx_hdr.tonemap import tonemap

MULTIPLE = 32
WHOLE_PIXELS = 4_000_000
TILE = 512
OVERLAP = 64
TILE_BATCH = 2

Net = Callable[[mx.array], mx.array]


def pad_to_multiple(img: np.ndarray, multiple: int = MULTIPLE) -> np.ndarray:
    """Pad HWC at the bottom/right to multiples of ``multiple``.

    Reflect padding, or edge padding along an axis shorter than its pad (reflect needs more).
    numpy, as tiling slices the padded image; the model pads in MLX itself
    (``models.hybrid.pad_to_multiple``) only when called on other sizes.
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


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles of size ``tile`` covering ``length`` with >= ``overlap`` overlap.

    The last tile ends exactly at ``length``; with ``tile`` >= ``length`` there is one tile.
    """
    if tile >= length:
        return [0]
    stride = tile - overlap
    starts = list(range(0, length - tile, stride))
    return starts + [length - tile]


def feather(length: int, overlap: int, start_edge: bool, end_edge: bool) -> np.ndarray:
    """1-D tile weight: 0 on the outer overlap/4, linear ramp over overlap/2, then 1.

    Sides on the image border (``start_edge`` / ``end_edge``) keep weight 1.
    """
    i = np.arange(length, dtype=np.float32)
    margin, ramp = overlap // 4, max(overlap // 2, 1)
    w = np.ones(length, np.float32)
    if not start_edge:
        w = np.minimum(w, np.clip((i + 1 - margin) / ramp, 0.0, 1.0))
    if not end_edge:
        w = np.minimum(w, np.clip((length - i - margin) / ramp, 0.0, 1.0))
    return w


_STREAMS: list = []


def _cpu_streams(n: int) -> list:
    while len(_STREAMS) < n:
        _STREAMS.append(mx.new_stream(mx.cpu))
    return _STREAMS[:n]


def _run(net: Net, batch: np.ndarray) -> np.ndarray:
    """``net`` on an NHWC batch; on the CPU each image runs on its own stream (thread).

    MLX's CPU element-wise kernels are single-threaded, so independent tiles on separate
    streams use more cores. The tiles are independent; the result equals a batched pass up to
    float rounding (batch-1 vs batch-2 GEMMs sum in another order).
    """
    x = mx.array(batch)
    if len(batch) < 2 or mx.default_device() != mx.cpu:
        y = net(x)
        mx.eval(y)
        return np.asarray(y, np.float32)
    outs = []
    for i, stream in enumerate(_cpu_streams(len(batch))):
        with mx.stream(stream):
            outs.append(net(x[i : i + 1]))
    with blas_threads(1):
        mx.eval(outs)
    return np.concatenate([np.asarray(o, np.float32) for o in outs])


def run_tiled(
    net: Net, x: np.ndarray, tile: int = TILE, overlap: int = OVERLAP, batch: int = TILE_BATCH
) -> np.ndarray:
    """Run ``net`` over HxWxC ``x`` (H, W multiples of 32) in feathered tiles -> HxWx3."""
    h, w = x.shape[:2]
    th, tw = min(tile, h), min(tile, w)
    boxes = [(y0, x0) for y0 in tile_starts(h, th, overlap) for x0 in tile_starts(w, tw, overlap)]
    acc = np.zeros((h, w, 3), np.float32)
    weight = np.zeros((h, w), np.float32)
    for i in range(0, len(boxes), batch):
        group = boxes[i : i + batch]
        out = _run(net, np.stack([x[y0 : y0 + th, x0 : x0 + tw] for y0, x0 in group]))
        for (y0, x0), o in zip(group, out, strict=True):
            wy = feather(th, overlap, y0 == 0, y0 + th == h)
            wx = feather(tw, overlap, x0 == 0, x0 + tw == w)
            wt = wy[:, None] * wx[None, :]
            acc[y0 : y0 + th, x0 : x0 + tw] += o * wt[..., None]
            weight[y0 : y0 + th, x0 : x0 + tw] += wt
    return acc / weight[..., None]


def predict_target(
    net: Net,
    ldr: np.ndarray,
    whole_pixels: int = WHOLE_PIXELS,
    tile: int = TILE,
    overlap: int = OVERLAP,
) -> np.ndarray:
    """Network prediction for a display image of any size.

    Args:
        net: NHWC callable, normalised input -> [-1, 1].
        ldr: HxWx3 display input in [0, 1].
        whole_pixels: images with at most this many (padded) pixels run in one pass.
        tile, overlap: tile size and overlap (multiples of 32 and of 4) for larger images.
    Returns:
        HxWx3 float32 network output in [-1, 1], cropped back to the input size.
    """
    if tile % MULTIPLE or overlap % 4 or not 0 < overlap < tile:
        raise ValueError(f"tile must be a multiple of {MULTIPLE} and 0 < overlap < tile")
    h, w = ldr.shape[:2]
    x = pad_to_multiple(ldr_to_input(ldr))  # whole-image min-max, then pad
    if x.shape[0] * x.shape[1] <= whole_pixels:
        out = _run(net, x[None])[0]
    else:
        out = run_tiled(net, x, tile, overlap)
    return out[:h, :w]


def predict_hdr(
    ldr: np.ndarray,
    net: Net | None = None,
    method: str = "model",
    blend: bool = True,
    **tiling,
) -> np.ndarray:
    """Reconstruct scene-linear HDR (HxWx3 float32 >= 0, 1.0 = the input's white).

    Args:
        ldr: HxWx3 display input in [0, 1].
        net: the network, required when ``method == "model"``.
        method: ``"model"`` or a classical method name from ``mlx_hdr.methods.METHODS``.
        blend: for the model, keep the linearised input where it is not clipped.
        **tiling: ``whole_pixels``, ``tile``, ``overlap`` for :func:`predict_target`.
    """
    if method != "model":
        from mlx_hdr.methods import get_method

        return get_method(method)(ldr)
    if net is None:
        raise ValueError("method 'model' needs a network")
    return calibrate(ldr, predict_target(net, ldr, **tiling), blend=blend)


# ---------------------------------------------------------------- files


GLOB_CHARS = set("*?[")
PREVIEW_SUFFIX = "_preview.png"


@dataclass
class PredictOptions:
    """Everything ``mlx-hdr predict`` can set besides inputs, outputs and the network."""

    method: str = "model"
    blend: bool = True
    fmt: str = "hdr"  # hdr | exr (| pfm); overridden by an explicit output file's extension
    dtype: str = "half"  # half | float (EXR)
    preview: bool = True
    preview_only: bool = False
    tonemap: str = "reinhard"
    exposure_ev: float = 0.0
    max_size: int | None = None
    whole_pixels: int = WHOLE_PIXELS
    tile: int = TILE
    overlap: int = OVERLAP


@dataclass
class PredictReport:
    """What :func:`predict_files` did: files written per input, and failures."""

    written: list[tuple[Path, list[Path]]] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)


def expand_inputs(inputs: list[str]) -> tuple[list[Path], list[tuple[str, str]]]:
    """Files, folders (their JPEG/PNG/TIFF files, sorted, skipping our previews) and globs.

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
                and not q.name.endswith(PREVIEW_SUFFIX)
            ]
            paths += found
            if not found:
                missing.append((item, "folder has no JPEG/PNG/TIFF images"))
        elif p.exists() or not GLOB_CHARS & set(item):
            paths.append(p)  # a missing file fails later with read_ldr's message
        else:
            matched = sorted(Path(q) for q in glob.glob(item, recursive=True))
            paths += [q for q in matched if q.is_file()]
            if not matched:
                missing.append((item, "no files match this pattern"))
    return paths, missing


def output_stems(paths: list[Path]) -> list[str]:
    """Output name per input: its stem, or ``<folder>_<stem>`` when stems repeat."""
    stems = [p.stem for p in paths]
    return [f"{p.parent.name}_{p.stem}" if stems.count(p.stem) > 1 else p.stem for p in paths]


def output_paths(stem: str, out: Path, single: bool, opts: PredictOptions) -> list[Path]:
    """The files to write for one input: [hdr?, preview?].

    ``out`` is a folder (``OUT/<stem>.<fmt>`` and ``OUT/<stem>_preview.png``) unless a single
    input names a file: ``-o x.exr`` writes x.exr (+ x_preview.png), ``-o x.png`` with
    ``preview_only`` writes x.png.
    """
    hdr_ext = {".hdr", ".exr", ".pfm"}
    if single and out.suffix.lower() in hdr_ext | {".png"} and not out.is_dir():
        if out.suffix.lower() == ".png":
            return [out]
        hdr, preview = out, out.with_name(out.stem + PREVIEW_SUFFIX)
    else:
        hdr = out / f"{stem}.{opts.fmt}"
        preview = out / f"{stem}{PREVIEW_SUFFIX}"
    if opts.preview_only:
        return [preview]
    return [hdr, preview] if opts.preview else [hdr]


def load_input(path: Path, max_size: int | None) -> np.ndarray:
    """read_ldr, then an area downscale so the longer side is at most ``max_size``."""
    ldr = read_ldr(path)
    h, w = ldr.shape[:2]
    if max_size and max(h, w) > max_size:
        s = max_size / max(h, w)
        size = (max(1, round(w * s)), max(1, round(h * s)))
        ldr = np.clip(cv2.resize(ldr, size, interpolation=cv2.INTER_AREA), 0.0, 1.0)
    return ldr


def predict_file(src: Path, dests: list[Path], net: Net | None, opts: PredictOptions) -> list[Path]:
    """Predict one image and write ``dests`` (HDR by extension, ``.png`` = preview)."""
    ldr = load_input(src, opts.max_size)
    tiling = {"whole_pixels": opts.whole_pixels, "tile": opts.tile, "overlap": opts.overlap}
    hdr = predict_hdr(ldr, net, opts.method, opts.blend, **tiling)
    for dest in dests:
        if dest.suffix.lower() == ".png":
            write_ldr(dest, tonemap(hdr, opts.tonemap, opts.exposure_ev))
        else:
            write_hdr(dest, hdr, dtype=opts.dtype)
    return dests


def _clash(dests: list[Path], claimed: dict[Path, Path], sources: set[Path]) -> str | None:
    """Why ``dests`` must not be written (an input file, another input's output), or None."""
    for dest in dests:
        if dest.resolve() in sources:
            return f"output {dest} would overwrite an input; choose another -o"
        if dest in claimed:
            return f"output name collides with {claimed[dest]}; rename one"
    return None


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

    def fail(item: str, problem: str) -> None:
        report.failed.append((item, problem))
        if on_error:
            on_error(item, problem)

    paths, missing = expand_inputs(inputs)
    for item, problem in missing:
        fail(item, problem)
    single = len(paths) == 1 and len(inputs) == 1 and not Path(inputs[0]).is_dir()
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
        try:
            dests[0].parent.mkdir(parents=True, exist_ok=True)
            report.written.append((src, predict_file(src, dests, net, opts)))
        except HDRError as exc:
            fail(str(src), str(exc).removeprefix(f"{src}: "))
        except OSError as exc:  # the output side: e.g. -o names a file or a read-only place
            where = f"{exc.filename}: " if exc.filename else ""
            fail(str(src), f"{where}{exc.strerror or exc}")
    return report
