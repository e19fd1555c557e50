"""Training plots drawn with Pillow (no matplotlib): loss/metric curves and sample strips."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from mlx_hdr.eval.labels import draw_label
from mlx_hdr.infer.tonemap import reinhard_simple
from mlx_hdr.io.atomic import atomic_write

PANEL = (360, 220)
MARGIN = 40
COLORS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40)]
SAMPLE_COLUMNS = ("input", "prediction", "target")


def _save_png(img: Image.Image, path: Path) -> None:
    with atomic_write(path) as tmp:
        img.save(tmp, format="PNG")


def _legend(d: ImageDraw.ImageDraw, names: list[str], right: int) -> None:
    """Series names in their colours, right-aligned on the title row (above the plot box,
    where they cannot hide a curve)."""
    x = right
    for k, name in reversed(list(enumerate(names))):
        x -= int(d.textlength(name)) + 8
        d.text((x, 5), name, fill=COLORS[k % len(COLORS)])


def _draw_panel(
    title: str, series: dict[str, list[tuple[float, float]]], xlabel: str = ""
) -> Image.Image:
    w, h = PANEL
    img = Image.new("RGB", PANEL, "white")
    d = ImageDraw.Draw(img)
    d.text((MARGIN, 5), title, fill="black")
    pts = [p for s in series.values() for p in s if _drawn(p)]
    box = (MARGIN, 22, w - 10, h - 22)
    d.rectangle(box, outline=(150, 150, 150))
    d.text(((box[0] + box[2] - d.textlength(xlabel)) / 2, box[3] + 4), xlabel, fill="black")
    _legend(d, list(series), box[2])
    if not pts:
        return img
    x0, x1 = min(p[0] for p in pts), max(p[0] for p in pts)
    y0, y1 = min(p[1] for p in pts), max(p[1] for p in pts)
    x1, y1 = (x1 if x1 > x0 else x0 + 1), (y1 if y1 > y0 else y0 + 1e-6)
    d.text((2, box[1]), f"{y1:.3g}", fill="black")
    d.text((2, box[3] - 10), f"{y0:.3g}", fill="black")
    d.text((box[0], box[3] + 4), f"{x0:g}", fill="black")
    d.text((box[2] - 40, box[3] + 4), f"{x1:g}", fill="black")

    def to_px(p):
        return (
            box[0] + (p[0] - x0) / (x1 - x0) * (box[2] - box[0]),
            box[3] - (p[1] - y0) / (y1 - y0) * (box[3] - box[1]),
        )

    for k, s in enumerate(series.values()):
        color = COLORS[k % len(COLORS)]
        xy = [to_px(p) for p in s if _drawn(p)]
        if len(xy) > 1:
            d.line(xy, fill=color, width=2)
        for x, y in xy if len(xy) < 30 else []:
            d.ellipse((x - 2, y - 2, x + 2, y + 2), fill=color)
    return img


def _drawn(point: tuple) -> bool:
    """Whether a (x, value) point has a value to draw (a log's null or NaN has none)."""
    return point[1] is not None and math.isfinite(point[1])


def plot_curves(history: list[dict], path) -> Path:
    """Write ``training_curves.png``: training losses vs step and validation metrics vs epoch.

    ``history``: the JSONL log records (``kind`` "train" with ``step``, ``loss``, ``l1``,
    optional ``lpips``; ``kind`` "val" with ``epoch``, ``psnr``, ``ssim``, ``l1``).
    """
    train = [r for r in history if r.get("kind") == "train"]
    val = [r for r in history if r.get("kind") == "val"]
    losses = {k: [(r["step"], r[k]) for r in train if k in r] for k in ("loss", "l1", "lpips")}
    panels = [
        _draw_panel("train loss", {k: v for k, v in losses.items() if v}, "step"),
        _draw_panel(
            "val PSNR (log domain, dB)", {"psnr": [(r["epoch"], r["psnr"]) for r in val]}, "epoch"
        ),
        _draw_panel("val SSIM", {"ssim": [(r["epoch"], r["ssim"]) for r in val]}, "epoch"),
        _draw_panel("val L1", {"l1": [(r["epoch"], r["l1"]) for r in val]}, "epoch"),
    ]
    sheet = Image.new("RGB", (2 * PANEL[0], 2 * PANEL[1]), "white")
    for i, p in enumerate(panels):
        sheet.paste(p, ((i % 2) * PANEL[0], (i // 2) * PANEL[1]))
    path = Path(path)
    _save_png(sheet, path)
    return path


def sample_strip(ldr: np.ndarray, pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Rows of input | prediction | target (HWC display [0, 1]) for NHWC batches.

    ``pred`` and ``target`` are scene-linear HDR (>= 0), tone-mapped with
    ``tonemap.reinhard_simple``.
    """
    rows = []
    for i in range(len(ldr)):
        p, t = reinhard_simple(pred[i]), reinhard_simple(target[i])
        rows.append(np.concatenate([ldr[i], p, t], axis=1))
    return np.concatenate(rows, axis=0)


def save_sample(path, ldr, pred, target) -> Path:
    """Write the :func:`sample_strip` of a batch as an 8-bit PNG (atomically), its columns
    labelled on the first row."""
    strip = sample_strip(ldr, pred, target)
    u8 = np.ascontiguousarray((np.clip(strip, 0, 1) * 255 + 0.5).astype(np.uint8))
    width = np.shape(ldr)[2]
    for i, label in enumerate(SAMPLE_COLUMNS):
        draw_label(u8, label, origin=(i * width + 6, 20))
    img = Image.fromarray(u8)
    path = Path(path)
    _save_png(img, path)
    return path
