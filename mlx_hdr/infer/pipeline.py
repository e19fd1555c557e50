"""Any-size prediction and the predict pipeline.

The network is any callable ``net(x) -> y`` on MLX arrays, NHWC: x is the ImageNet-normalised
input (``color.ldr_to_input``) with H, W multiples of 32, y the log-domain target in [-1, 1]
(same H, W, 3 channels).

Images up to ``WORK_PIXELS`` (after padding to multiples of 32) run in one pass. Larger ones
run at a working resolution: the photo is area-downscaled to fit, the network's calibrated
prediction there becomes a per-channel gain map over the linearised input (log ratio,
like an Ultra HDR gain map), and the bilinearly upsampled gain is applied to the
full-resolution input. Detail comes from the full-resolution photo; the blend then keeps it
wherever it is not clipped (through the camera curve of ``infer.response``, or sRGB).
The network is never tiled: its InstanceNorm layers normalise over the whole image, and a
tile inside a clipped sky looked like a flat white image of its own (highlights were lost:
peak 1.0 instead of 3.5 on an upscaled sample). The working resolution is 1 MP: the model
was trained on 160- and 224-px views (224 px in its last phases) and validated up to ~1.1 MP;
on 3x-upscaled eval photos a 4 MP pass drew streaks inside clipped areas and a 1 MP pass did
not, and on an 8x-upscaled sample rings grew from one small ring at 1 MP to many at 2-4 MP.
"""

from __future__ import annotations

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

from mlx_hdr import backend
from mlx_hdr.color import ldr_to_input, row_slices
from mlx_hdr.errors import HDRError, os_error_line, warnings_naming
from mlx_hdr.infer.calibrate import (
    blend_with_input,
    calibrate,
    calibrate_with_table,
    fill_colour,
    floor_image,
    grey_for_grey,
    recolour_clipped,
)
from mlx_hdr.infer.exposure import SKY_CEILING, lift_to_daylight, limit_to_ceiling
from mlx_hdr.infer.outputs import Plan, plan_outputs, write_outputs
from mlx_hdr.infer.recorded import gain_for, note_hdr_input, with_recorded
from mlx_hdr.infer.response import response_table, response_to_linear
from mlx_hdr.infer.targets import target_kind
from mlx_hdr.io.image_io import MAX_PIXELS, read_ldr
from mlx_hdr.io.photo_meta import Exposure, read_exposure
from mlx_hdr.io.uhdr import UhdrOptions
from mlx_hdr.models.hybrid import MULTIPLE, pad_to_multiple

WORK_PIXELS = 1_000_000  # the scale the model was validated at (eval-public: <= 1.1 MP)
GAIN_FLOOR = 1e-4  # added before the gain map's log ratio: black pixels stay finite
RESPONSE = "camera"  # the default of ``response`` (``scripts/validate_model.py --response``)

Net = Callable[[mx.array], mx.array]


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


def _net_output(net: Net, ldr: np.ndarray, white: float | None = None) -> np.ndarray:
    """One pass of ``net`` over the padded HxWx3 display image, cropped back to HxW;
    ``white`` (log2 cd/m²) goes to a network that reads it (``exposure_gain``)."""
    h, w = ldr.shape[:2]
    x = pad_to_multiple(mx.array(ldr_to_input(ldr))[None])
    reads = getattr(getattr(net, "config", None), "exposure_gain", False)
    w_arr = mx.array([white], mx.float32) if reads and white is not None else None
    return np.asarray(backend.infer(net, x, w_arr), np.float32)[0, :h, :w]


def predict_target(
    net: Net, ldr: np.ndarray, flip: bool = False, white: float | None = None
) -> np.ndarray:
    """The network's output for a display image: one pass, or two with ``flip``.

    Args:
        net: NHWC callable, normalised input -> [-1, 1].
        ldr: HxWx3 display input in [0, 1].
        flip: also run the network on the mirror image (left-right) and return the mean of
            the two outputs, the second mirrored back: twice the network's time
            (``scripts/validate_model.py --flip`` measures what it changes).
        white: log2 of the photo's white in cd/m² (its EXIF exposure), for a network with
            ``exposure_gain``; None: unknown.
    Returns:
        HxWx3 float32 network output in [-1, 1], cropped back to the input size.
    """
    y = _net_output(net, ldr, white)
    if flip:
        y = 0.5 * (y + _net_output(net, ldr[:, ::-1], white)[:, ::-1])
    return y


def apply_gain_map(
    ldr: np.ndarray,
    small: np.ndarray,
    hdr_small: np.ndarray,
    blend: bool = False,
    floor: np.ndarray | None = None,
    response: np.ndarray | None = None,
    lin_small: np.ndarray | None = None,
) -> np.ndarray:
    """Carry a low-resolution reconstruction to the full-resolution photo.

    Args:
        ldr: HxWx3 display photo in [0, 1].
        small: its downscaled version, hxwx3 display in [0, 1].
        hdr_small: scene-linear reconstruction of ``small`` (hxwx3, >= 0).
        blend: then keep the photo where it is not clipped (:func:`blend_with_input`),
            with the fully clipped pixels in the colour ``hdr_small`` carries there
            (:func:`small_with_colour`).
        floor: HxWx3 float32 scene-linear image the result is never below, per channel,
            before the blend (a classical operator's output at full resolution). The result
            is written over it (one full-size array less on a large photo).
        response: a :func:`~mlx_hdr.infer.response.fit_response` table that linearises
            both photos (and what the blend keeps) instead of the sRGB curve.
        lin_small: ``small`` linearised by ``response``, where the caller has it already.
    Returns:
        HxWx3 float32 scene-linear image: the linearised ``ldr`` times the bilinearly
        upsampled per-channel ratio of ``hdr_small`` over the linearised ``small`` (in log
        space).
        Computed in strips of rows (all per-pixel), so the peak memory is the photo, the
        gain and the output rather than a dozen full-size temporaries.
    """
    f = GAIN_FLOOR
    if lin_small is None:
        lin_small = response_to_linear(small, response)
    gain = np.log((hdr_small + f) / (lin_small + f))
    gain = cv2.resize(gain.astype(np.float32), ldr.shape[1::-1], interpolation=cv2.INTER_LINEAR)
    out = floor if floor is not None else np.empty(ldr.shape, np.float32)
    for rows in row_slices(ldr.shape[0]):
        lin = response_to_linear(ldr[rows], response)
        hdr = colour = np.maximum((lin + f) * np.exp(gain[rows]) - f, 0.0)
        if floor is not None:
            hdr = np.maximum(hdr, floor[rows])
        out[rows] = blend_with_input(ldr[rows], hdr, lin=lin, colour=colour) if blend else hdr
    return out


def small_with_colour(small: np.ndarray, hdr: np.ndarray, lin: np.ndarray) -> np.ndarray:
    """The work-size reconstruction ``hdr`` of display ``small`` (linearised: ``lin``) with
    its fully clipped pixels in the colour the one-pass blend gives them
    (:func:`~mlx_hdr.infer.calibrate.fill_colour`, or the input's): the gain map carries it
    to the full-size photo, whose blend keeps it, as the fill's radii are in work-size
    pixels."""
    colour = fill_colour(small, lin)
    return recolour_clipped(small, hdr, lin if colour is None else colour)


def predict_model_hdr(
    net: Net,
    ldr: np.ndarray,
    blend: bool = True,
    work_pixels: int = WORK_PIXELS,
    flip: bool | None = None,
    response: str = RESPONSE,
    white: float | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """The model's scene-linear HDR for a display image of any size (see the module doc), and
    the response table the blend read the photo with (None: the sRGB curve, or no blend).

    ``blend=False`` gives the network's own output: no blend with the input and no floor.
    ``flip``: the mean of the network over the photo and its mirror (:func:`predict_target`);
    None (auto) for it where the photo runs in one pass and not on the gain-map path, where
    it measured worse (``scripts/validate_model.py --flip``).
    ``response``: how the blend linearises the pixels it keeps (``calibrate``).
    ``white``: the photo's white, log2 cd/m² (:func:`predict_target`)."""
    size = work_size(*ldr.shape[:2], work_pixels)
    config = getattr(net, "config", None)
    floor = getattr(config, "floor", None) if blend else None
    strength = getattr(config, "floor_strength", 1.0)
    kind = target_kind(net)
    if size is None:
        target = predict_target(net, ldr, flip is not False, white)
        return calibrate_with_table(
            ldr, target, blend, kind=kind, floor=floor, response=response, floor_strength=strength
        )
    small = np.clip(cv2.resize(ldr, size[::-1], interpolation=cv2.INTER_AREA), 0.0, 1.0)
    target = predict_target(net, small, bool(flip), white)
    hdr_small = calibrate(small, target, blend=False, kind=kind)
    table = response_table(response, small, hdr_small) if blend else None
    lin_small = response_to_linear(small, table)
    if blend:
        hdr_small = small_with_colour(small, hdr_small, lin_small)
    floor_hdr = floor_image(floor, ldr, strength)
    return apply_gain_map(ldr, small, hdr_small, blend, floor_hdr, table, lin_small), table


def predict_hdr(
    ldr: np.ndarray,
    net: Net | None = None,
    method: str = "model",
    blend: bool = True,
    work_pixels: int = WORK_PIXELS,
    flip: bool | None = None,
    response: str = RESPONSE,
    *,
    exposure: Exposure | None = None,
    sky_ceiling: float | None = SKY_CEILING,
    daylight_floor: float | None = None,
) -> np.ndarray:
    """Reconstruct scene-linear HDR (HxWx3 float32 >= 0, 1.0 = the input's white).

    Args:
        ldr: HxWx3 display input in [0, 1].
        net: the network, required when ``method == "model"``.
        method: ``"model"`` or a classical method name from ``mlx_hdr.infer.methods.METHODS``.
        blend: for the model, keep the linearised input where it is not clipped (and a
            black-and-white photo's output grey, ``calibrate.grey_for_grey``).
        work_pixels: the model runs on at most this many (padded) pixels; larger photos go
            through a gain map (:func:`predict_model_hdr`).
        flip: for the model, average it over the photo and its mirror (:func:`predict_target`);
            None: only where the photo runs in one pass (:func:`predict_model_hdr`).
        response: for the model, how the blend linearises the pixels it keeps: ``"camera"``
            (the default, ``RESPONSE``: the curve read from the network's output plus a camera
            JPEG's highlight roll-off), ``"model"`` (that curve alone) or ``"srgb"``
            (:mod:`~mlx_hdr.infer.response`).
        exposure: the photo's exposure settings (:func:`~mlx_hdr.io.photo_meta.read_exposure`);
            with ``sky_ceiling`` (cd/m^2), the model's clipped pixels are lowered, as a
            whole, by their median's excess over that luminance
            (:mod:`~mlx_hdr.infer.exposure`). None: no ceiling. A model
            with ``exposure_gain`` also reads the photo's white from it.
        daylight_floor: with ``exposure``, clipped pixels the model reads as a light
            brighter than a lamp-lit surface are raised, as a whole, towards this
            luminance (cd/m^2; :func:`~mlx_hdr.infer.exposure.lift_to_daylight`). None
            (the default): no floor.

    Raises ``ValueError`` for a photo holding NaN or inf (``read_ldr`` never gives one).
    """
    if not np.isfinite(ldr).all():  # Kovaleski's grid had failed on int(NaN), masia2017 ...
        raise ValueError("predict_hdr takes finite display values; the photo holds NaN or inf")
    if method != "model":
        from mlx_hdr.infer.methods import get_method

        return get_method(method)(ldr)
    if net is None:
        raise ValueError("method 'model' needs a network")
    white = None if exposure is None else exposure.white_log2()
    hdr, table = predict_model_hdr(net, ldr, blend, work_pixels, flip, response, white)
    hdr = lift_to_daylight(ldr, hdr, exposure, daylight_floor)
    hdr = limit_to_ceiling(ldr, hdr, exposure, sky_ceiling, table, blended=blend)
    return grey_for_grey(ldr, hdr) if blend else hdr


# ---------------------------------------------------------------- files


@dataclass
class PredictOptions:
    """Everything ``mlx-hdr predict`` can set besides inputs, outputs and the network."""

    method: str = "model"
    blend: bool = True
    formats: tuple[str, ...] = ("hdr",)  # outputs.FORMATS' keys; -o FILE's extension overrides
    dtype: str = "half"  # half | float (EXR)
    preview: bool | None = None  # None: with an HDR file, not beside a gain-map JPEG alone
    preview_only: bool = False
    tonemap: str = "reinhard"
    exposure_ev: float = 0.0
    max_size: int | None = None
    work_pixels: int = WORK_PIXELS
    flip: bool | None = None  # the mirror mean (predict_target); None: on one-pass photos
    response: str = RESPONSE  # how the blend linearises the kept pixels (infer.response)
    sky_ceiling: float | None = SKY_CEILING  # cd/m^2, with the photo's EXIF (infer.exposure)
    sky_ceiling_asked: bool = False  # given by the user: a note where a photo has no EXIF
    daylight_floor: float | None = None  # cd/m^2, likewise (opt-in)
    max_pixels: int = MAX_PIXELS  # larger inputs are refused (decompression bombs)
    uhdr: UhdrOptions = field(default_factory=UhdrOptions)
    skip_hdr_inputs: bool = False  # skip photos that carry an HDR gain map already
    input_gain_map: bool = True  # keep a phone photo's recorded highlights (infer.recorded)
    wide_gamut: bool | None = None  # a wide-gamut photo's colours outside sRGB (io.native):
    # None in the outputs that hold them >= 0, True in the EXR/PFM too (< 0), False nowhere
    skip_existing: bool = False  # leave inputs whose outputs all exist (a batch run again)


@dataclass
class PredictReport:
    """What :func:`predict_files` did: files written per input, failures, and inputs left
    alone because their outputs all exist (``skip_existing``)."""

    written: list[tuple[Path, list[Path]]] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)


def load_input(path: Path, max_size: int | None, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """read_ldr (at most ``max_pixels``), then an area downscale so the longer side is at
    most ``max_size``."""
    ldr = read_ldr(path, max_pixels)
    h, w = ldr.shape[:2]
    if max_size and max(h, w) > max_size:
        s = max_size / max(h, w)
        size = (max(1, round(w * s)), max(1, round(h * s)))
        ldr = np.clip(cv2.resize(ldr, size, interpolation=cv2.INTER_AREA), 0.0, 1.0)
    return ldr


def _note_no_exposure(src: Path, opts: PredictOptions) -> None:
    """Warn that the EXIF options the user asked for cannot act on ``src`` (no exposure)."""
    asked = [opts.sky_ceiling_asked and opts.sky_ceiling, opts.daylight_floor]
    flags = [f for f, on in zip(("--sky-ceiling", "--daylight-floor"), asked, strict=True) if on]
    if flags:
        verb = "does" if len(flags) == 1 else "do"
        warnings.warn(
            f"{src}: no EXIF exposure: {' and '.join(flags)} {verb} not act", stacklevel=3
        )


def predict_file(src: Path, dests: list[Path], net: Net | None, opts: PredictOptions) -> list[Path]:
    """Predict one image and write ``dests`` by extension: ``.png`` the preview, ``.jpg`` the
    gain-map JPEG, ``.avif`` the PQ AVIF, else the HDR file. Nothing is written for a skipped
    HDR input; a photo with a gain map keeps its recorded highlights
    (:mod:`~mlx_hdr.infer.recorded`)."""
    if note_hdr_input(src, opts.skip_hdr_inputs, opts.input_gain_map):
        return []
    ldr = load_input(src, opts.max_size, opts.max_pixels)
    gain = gain_for(src, ldr.shape[:2], ldr, opts.max_pixels) if opts.input_gain_map else None
    exposure = read_exposure(src)
    if exposure is None and opts.method == "model":
        _note_no_exposure(src, opts)
    hdr = predict_hdr(
        ldr,
        net,
        opts.method,
        opts.blend,
        opts.work_pixels,
        opts.flip,
        opts.response,
        exposure=exposure,
        sky_ceiling=opts.sky_ceiling,
        daylight_floor=opts.daylight_floor,
    )
    if gain is not None:
        hdr = with_recorded(ldr, hdr, gain)
    return write_outputs(src, dests, ldr, hdr, opts)


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

    :func:`~mlx_hdr.infer.outputs.plan_outputs` then :func:`run_plan`: ``UsageError`` before any
    work for outputs that cannot be written.
    """
    return run_plan(plan_outputs(inputs, out, opts), net, opts, on_error, progress)


def run_plan(
    plan: Plan,
    net: Net | None,
    opts: PredictOptions,
    on_error: Callable[[str, str], None] | None = None,
    progress: bool = True,
    stop: Callable[[], bool] | None = None,
) -> PredictReport:
    """Predict each of ``plan``'s inputs into its files; a failing file is reported and
    skipped.

    ``on_error(path, problem)`` is called for each failure as it happens. Each HDR and preview is
    written atomically, so a failure (a full disk included) never leaves a partial file. An
    interrupt (Ctrl-C, SIGTERM) goes on up with the report so far as its ``report``; so does
    one raised before the next file where ``stop()`` says a stop was asked for (a signal's
    interrupt raised inside a destructor or a library's callback is lost).
    """
    report = PredictReport(skipped=list(plan.done))
    fail = partial(record_failure, report, on_error)
    for item, problem in plan.missing:
        fail(item, problem)
    try:
        for src, dests in tqdm(plan.jobs, desc="predict", unit="img", disable=not progress):
            if stop is not None and stop():
                raise KeyboardInterrupt
            problem = _predict_one(src, dests, net, opts, report)
            if problem:
                fail(str(src), problem)
    except KeyboardInterrupt as exc:  # Ctrl-C or SIGTERM: what was written goes with it
        exc.report = report
        raise
    return report


def _predict_one(
    src: Path, dests: list[Path], net: Net | None, opts: PredictOptions, report: PredictReport
) -> str | None:
    """:func:`predict_file` into ``report``; the problem as one line if it failed."""
    try:
        dests[0].parent.mkdir(parents=True, exist_ok=True)
        with warnings_naming(src):
            report.written.append((src, predict_file(src, dests, net, opts)))
    except (HDRError, OSError, KeyboardInterrupt) as exc:  # OSError: e.g. a folder
        if written := getattr(exc, "written", None):  # the outputs before the failed one
            report.written.append((src, written))
        if isinstance(exc, KeyboardInterrupt):
            raise
        if isinstance(exc, OSError):
            return os_error_line(exc)
        return str(exc).removeprefix(f"{src}: ")
    return None
