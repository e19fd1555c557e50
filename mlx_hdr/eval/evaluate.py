"""Evaluate LDR -> HDR methods side by side on a paired dataset.

For every case (an LDR input and its HDR ground truth, any layout ``data.datasets`` knows) and
every method, :func:`mlx_hdr.eval.metrics.hdr_metrics` gives the scale-invariant HDR metrics and
the log-domain metrics. Outputs in ``out``: ``metrics.csv`` (one row per case and method),
``summary.md`` (means per method) and ``sheets/<case>.png`` contact sheets (input | each
method | ground truth; every HDR aligned to the ground truth in input-white units, then the same
Reinhard L/(1+L) preview).
"""

from __future__ import annotations

import csv
import io
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from mlx_hdr.color import align_scale, srgb_to_linear, well_exposed_mask
from mlx_hdr.data.datasets import NoDataset, scan_dataset
from mlx_hdr.data.orientation import apply_dihedral, find_orientation
from mlx_hdr.errors import (
    HDRError,
    InputError,
    UsageError,
    WeightsError,
    os_error_line,
    warnings_naming,
)
from mlx_hdr.eval.labels import draw_label
from mlx_hdr.eval.metrics import hdr_metrics
from mlx_hdr.infer.exposure import SKY_CEILING
from mlx_hdr.infer.methods import METHODS, default_methods
from mlx_hdr.infer.outputs import check_writable
from mlx_hdr.infer.pipeline import RESPONSE, Net, predict_hdr, record_failure
from mlx_hdr.infer.tonemap import reinhard_simple
from mlx_hdr.io.atomic import write_text_atomic
from mlx_hdr.io.image_io import MAX_PIXELS, read_hdr, read_ldr, write_ldr
from mlx_hdr.io.photo_meta import read_exposure

METRICS = (
    ("pu21_psnr", "PU21-PSNR", "{:.2f}"),
    ("pu21_ssim", "PU21-SSIM", "{:.4f}"),
    ("mu_psnr", "μ-PSNR", "{:.2f}"),
    ("highlight_log2", "highlight log2 err", "{:.2f}"),
    ("log_psnr", "log-domain PSNR", "{:.2f}"),
    ("log_ssim", "log-domain SSIM", "{:.3f}"),
    ("log_l1", "log-domain L1", "{:.4f}"),
)
# NaN where a case has none to measure: no clipped pixel; SSIM on an image under 3 px
UNDEFINED_IN_SOME = ("highlight_log2", "pu21_ssim", "log_ssim")
SHEET_HEIGHT = 256


@dataclass
class EvalReport:
    """Per-row metrics, per-method means and the files written."""

    rows: list[dict] = field(default_factory=list)
    means: dict[str, dict[str, float]] = field(default_factory=dict)
    failed: list[tuple[str, str]] = field(default_factory=list)
    left_out: list[tuple[str, str]] = field(default_factory=list)  # not cases by design
    notes: list[str] = field(default_factory=list)  # how cases were scored, where it differs
    files: list[Path] = field(default_factory=list)


def labelled_panel(img01: np.ndarray, label: str) -> np.ndarray:
    """Resize a display image to the sheet height and draw its label."""
    h, w = img01.shape[:2]
    size = (max(1, round(w * SHEET_HEIGHT / h)), SHEET_HEIGHT)
    panel = cv2.resize(img01, size, interpolation=cv2.INTER_AREA)
    panel = np.ascontiguousarray((np.clip(panel, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8))
    draw_label(panel, label)
    return panel.astype(np.float32) / 255.0


def contact_sheet(ldr: np.ndarray, gt: np.ndarray, preds: dict[str, np.ndarray]) -> np.ndarray:
    """input | each prediction | ground truth, all HDRs aligned to gt, Reinhard-tone-mapped.

    ``gt`` is put in input-white units first; each prediction is scaled like in the metrics.
    """
    well = well_exposed_mask(ldr)
    gt_w = gt * align_scale(gt, srgb_to_linear(ldr), well)
    panels = [labelled_panel(ldr, "input")]
    for name, pred in preds.items():
        aligned = pred * align_scale(pred, gt_w, well)
        panels.append(labelled_panel(reinhard_simple(aligned), name))
    panels.append(labelled_panel(reinhard_simple(gt_w), "ground truth"))
    return np.concatenate(panels, axis=1)


def _means(rows: list[dict], methods: list[str]) -> dict[str, dict[str, float]]:
    """Each method's mean of each metric over the cases; an ``UNDEFINED_IN_SOME`` metric's
    over the cases that define it (NaN where none does). A NaN prediction (its PU21-PSNR
    NaN, as every metric) shows as NaN, not as a mean over its other cases."""
    means = {}
    for m in methods:
        sel = [r for r in rows if r["method"] == m]
        if sel:
            means[m] = {
                k: _mean([r[k] for r in sel if counts_in_mean(r, k)]) for k, _, _ in METRICS
            }
    return means


def counts_in_mean(row: dict, key: str, undefined=UNDEFINED_IN_SOME) -> bool:
    """Whether ``row`` counts in ``key``'s mean: the NaN of an ``undefined`` metric (the
    case has none to measure) is left out, unless the prediction itself is NaN (its
    PU21-PSNR is), which then shows as NaN rather than as a mean over the other cases."""
    return key not in undefined or not np.isnan(row[key]) or np.isnan(row["pu21_psnr"])


def _mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else float("nan")


def summary_markdown(
    means: dict[str, dict[str, float]],
    n_cases: int,
    dataset: str,
    missing: list[tuple[str, str]] = (),
) -> str:
    """The per-method means as a markdown table, then the files or cases ``missing`` from
    it, each with why (failed, or left out by the dataset's layout)."""
    head = "| method | " + " | ".join(title for _, title, _ in METRICS) + " |"
    cases = f"{n_cases} case{'' if n_cases == 1 else 's'}"
    cases += f"; {len(missing)} not scored" if missing else ""
    lines = [f"# Evaluation of `{dataset}` ({cases})", "", head]
    lines.append("|---" * (len(METRICS) + 1) + "|")
    for m, vals in means.items():
        cells = " | ".join(fmt.format(vals[k]) for k, _, fmt in METRICS)
        lines.append(f"| {m} | {cells} |")
    if missing:
        lines += ["", "Not in the means:", "", *(f"- {item}: {why}" for item, why in missing)]
    return "\n".join(lines) + "\n"


def _csv_text(rows: list[dict]) -> str:
    buf = io.StringIO()
    cols = ["case", "method", *(k for k, _, _ in METRICS), "scale"]
    writer = csv.DictWriter(buf, cols, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def _eval_case(
    pair,
    methods: list[str],
    net: Net | None,
    blend: bool = True,
    max_pixels: int = MAX_PIXELS,
    flip: bool | None = None,
    response: str = RESPONSE,
    sky_ceiling: float | None = SKY_CEILING,
    daylight_floor: float | None = None,
) -> tuple[list[dict], np.ndarray]:
    with warnings_naming(pair.ldr_path):  # a library's note names the file it is about
        ldr = read_ldr(pair.ldr_path, max_pixels)
        exposure = pair.exposure or read_exposure(pair.ldr_path)  # as its set lists it, or EXIF
    with warnings_naming(pair.hdr_path):
        gt = oriented_truth(ldr, read_hdr(pair.hdr_path, max_pixels), pair)
    valid = None if pair.region is None else pair.region.pixels(ldr.shape)
    rows, preds = [], {}
    for m in methods:
        with warnings_naming(pair.ldr_path):
            preds[m] = predict_hdr(
                ldr,
                net,
                m,
                blend=blend,
                flip=flip,
                response=response,
                exposure=exposure,
                sky_ceiling=sky_ceiling,
                daylight_floor=daylight_floor,
            )
        rows.append({"case": pair.name, "method": m, **hdr_metrics(preds[m], gt, ldr, valid=valid)})
    return rows, contact_sheet(ldr, gt, preds)


def oriented_truth(ldr: np.ndarray, gt: np.ndarray, pair) -> np.ndarray:
    """The ground truth ``gt`` turned or mirrored to lie on ``ldr`` where it is stored so
    (some SingleHDR pairs; ``orientation.find_orientation``, as ``data index`` does for
    training), with a warning. Raises ``InputError`` for a black one or one no turn fits."""
    if not gt.any():
        raise InputError(
            "ground truth is black (every pixel 0): no metric means anything", pair.hdr_path
        )
    try:
        op = find_orientation(ldr, gt).op
    except ValueError:
        size = f"input {ldr.shape[1]}x{ldr.shape[0]} but ground truth {gt.shape[1]}x{gt.shape[0]}"
        raise InputError(size, pair.ldr_path) from None
    if op == "identity":
        return gt
    warnings.warn(f"{pair.hdr_path}: stored turned from its input: scored after {op}", stacklevel=2)
    return apply_dihedral(gt, op)


def _check_methods(methods: list[str] | None, net: Net | None) -> list[str]:
    methods = list(dict.fromkeys(methods)) if methods else None  # each named once
    methods = methods or [*default_methods(), *(["model"] if net is not None else [])]
    _check_names(methods)
    if "model" in methods and net is None:
        raise HDRError("method 'model' needs a model (--model)")
    if "expandnet2018" in methods:  # its weights, before any case (a bad file failed each one)
        from mlx_hdr.infer.methods.expandnet2018 import load_expandnet

        load_expandnet()
    return methods


def _check_names(methods: list[str]) -> None:
    unknown = [m for m in methods if m not in METHODS and m != "model"]
    if unknown:
        raise UsageError(f"unknown method {unknown[0]!r}; choose from model, {', '.join(METHODS)}")


def net_for_methods(methods: list[str] | None, model: str | None = None) -> Net | None:
    """The network :func:`evaluate` needs for ``methods``, loaded from ``model``.

    With no methods given, the model joins the classical ones if it loads, and is left out
    (None) if it does not; asked for explicitly (``"model"`` in ``methods`` or a ``model``
    path), a load failure raises ``WeightsError``.
    """
    from mlx_hdr.infer.model_hub import load_net

    _check_names(methods or [])  # a misspelt method before a model is fetched
    if methods is not None and "model" not in methods:
        if model is not None:
            warnings.warn(f"--model {model} not used: --method does not name model", stacklevel=2)
        return None
    try:
        return load_net(model)[0]
    except WeightsError:
        if methods is not None or model is not None:
            raise
        return None


def evaluate(
    dataset,
    out,
    methods: list[str] | None = None,
    net: Net | None = None,
    on_error: Callable[[str, str], None] | None = None,
    progress: bool = True,
    blend: bool = True,
    max_pixels: int = MAX_PIXELS,
    flip: bool | None = None,
    response: str = RESPONSE,
    sky_ceiling: float | None = SKY_CEILING,
    daylight_floor: float | None = None,
    notes: list[str] | None = None,
) -> EvalReport:
    """Run ``methods`` on every paired case of ``dataset`` and write the report into ``out``
    (nothing where every case failed).

    Args:
        dataset: dataset folder (any layout of ``scan_dataset`` with LDR inputs).
        out: output folder (created).
        methods: names from ``METHODS`` and/or ``"model"``; default all classical ones, plus the
            model when ``net`` is given.
        net: the network for ``"model"``.
        on_error: called with ``(case, problem)`` for each case that could not be evaluated,
            and with ``(file, problem)`` for each input or ground truth without a partner.
        blend: for the model, keep the input where it is not clipped (``predict --blend``).
        max_pixels: larger inputs and ground truths are refused (decompression bombs).
        flip: for the model, average it over the photo and its mirror (``predict --flip``);
            None: where the photo runs in one pass (``predict_hdr``).
        response: for the model, how kept pixels are linearised (``predict --response``).
        sky_ceiling: for the model, the EXIF sky ceiling in cd/m^2 (``predict --sky-ceiling``);
            None: off.
        daylight_floor: for the model, the EXIF daylight floor in cd/m^2 (``predict
            --daylight-floor``); None (the default): off.
        notes: lines for summary.md (the settings the run was made with).

    The contact sheets of an earlier run into ``out`` (the cases its ``metrics.csv``
    lists) that this run has not scored are removed, so ``out/sheets`` shows this run's.
    """
    methods = _check_methods(methods, net)
    found = _scan(dataset)
    pairs = _paired(found, dataset)
    out = Path(out)
    check_writable([out])  # before any work
    out.mkdir(parents=True, exist_ok=True)
    report = EvalReport(left_out=[(str(path), why) for path, why in found.left_out])
    report.notes = [marked_note(folder, region) for folder, region in found.marked.items()]
    report.notes += notes or []
    for path in found.unpaired:
        why = found.why.get(path, "no input/ground-truth partner")
        record_failure(report, on_error, str(path), f"{why}; skipped")
    for pair in tqdm(pairs, desc="evaluate", unit="case", disable=not progress):
        try:
            rows, sheet = _eval_case(
                pair,
                methods,
                net,
                blend,
                max_pixels,
                flip,
                response,
                sky_ceiling,
                daylight_floor,
            )
        except HDRError as exc:
            record_failure(report, on_error, pair.name, str(exc))
            continue
        report.rows += rows
        _write_sheet(report, on_error, out / "sheets" / f"{pair.name}.png", pair.name, sheet)
    if report.rows:  # where every case failed, an earlier run's report is left as it was
        earlier = _reported_cases(out / "metrics.csv")  # before this run replaces it
        _write_report(report, out, methods, str(dataset))
        _drop_stale_sheets(out / "sheets", earlier, report.files)
    return report


def _paired(found, dataset) -> list:
    """The pairs of the scanned ``found`` that have their photo; ``InputError`` naming
    ``dataset`` and why where there is none."""
    pairs = [p for p in found.pairs if p.ldr_path is not None]
    if not pairs:
        known = [*found.left_out, *found.why.items()]
        why = f" ({known[0][0].name}: {known[0][1]})" if known else ""
        if found.layout in ("hdr-pool", "hdr-synth") and not found.unpaired:
            why = " (HDR images without their photos: for training and `data index`)"
        elif found.layout in ("hdr-pool", "hdr-synth"):  # photos beside them: not a layout
            why = f" (expected {PAIRED_LAYOUTS})"
        raise InputError(f"no LDR/HDR pairs found{why}", dataset)
    return pairs


def _scan(dataset):
    """``scan_dataset``'s :class:`Dataset` of ``dataset``; a folder in no layout is named
    with the paired layouts only (the scan's list names HDR-only ones, for training)."""
    try:
        return scan_dataset(dataset)
    except NoDataset:
        raise InputError(f"no LDR/HDR pairs found (expected {PAIRED_LAYOUTS})", dataset) from None


def _reported_cases(path: Path) -> set[str]:
    """The cases an earlier run's ``metrics.csv`` (``path``) lists; none where there is
    none, or it cannot be read."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            return {row["case"] for row in csv.DictReader(f) if row.get("case")}
    except (OSError, UnicodeDecodeError, csv.Error, KeyError):
        return set()


def _drop_stale_sheets(folder: Path, cases: set[str], written: list) -> None:
    """Remove the contact sheets in ``folder`` of an earlier run's ``cases`` that this run
    has not written (``written``: its files; a sheet it lost to a full disk goes too), other
    files there left alone; a name this run wrote in another case is kept (macOS: the
    same file)."""
    ours = {Path(f).name.casefold() for f in written}
    for case in cases:
        sheet = folder / f"{case}.png"
        if sheet.name.casefold() not in ours and sheet.parent == folder and sheet.is_file():
            sheet.unlink(missing_ok=True)


PAIRED_LAYOUTS = (
    "LDR_in/ + HDR_gt/ (HDR-Real, HDR-Eye), <case>/input.* + <case>/gt.* folders, "
    "or exposure-bracket sets (exposures.json)"
)


def marked_note(folder: Path, region) -> str:
    """A line for summary.md: the bracket set ``folder`` was scored on the pixels its marks
    (``data.scored.ScoredRegion``) leave."""
    parts = ["without its ghost box"] if region.ghost else []
    parts += ["only inside its image circle"] if region.circle else []
    return f"`{folder.name}` is scored {' and '.join(parts)}, as its exposures.json marks."


def _write_sheet(report: EvalReport, on_error, path: Path, case: str, sheet) -> None:
    """Write a contact sheet; one that cannot be written (a full disk) is a failure of
    ``case`` that loses the sheet, not the metrics."""
    try:
        path.parent.mkdir(exist_ok=True)
        report.files.append(write_ldr(path, sheet))
    except OSError as exc:  # the sheets folder cannot be made
        record_failure(report, on_error, case, os_error_line(exc))
    except HDRError as exc:
        record_failure(report, on_error, case, str(exc))


def _write_report(report: EvalReport, out: Path, methods: list[str], title: str) -> EvalReport:
    """Fill in the means and write metrics.csv and summary.md."""
    report.means = _means(report.rows, methods)
    scored = {r["case"] for r in report.rows}
    report.files.append(write_text_atomic(out / "metrics.csv", _csv_text(report.rows)))
    missing = [f for f in report.failed if f[0] not in scored]  # not a sheet it lost
    md = summary_markdown(report.means, len(scored), title, [*missing, *report.left_out])
    md += "".join(f"\n{note}\n" for note in report.notes)
    report.files.append(write_text_atomic(out / "summary.md", md))
    return report
