"""The training curves and sample sheets say what they show: axis names, a legend beside the
curves (not over them), column labels."""

from __future__ import annotations

import numpy as np
from PIL import Image

from mlx_hdr.train.plots import MARGIN, PANEL, _draw_panel, plot_curves, save_sample

BOX = (MARGIN, 22, PANEL[0] - 10, PANEL[1] - 22)  # the plot area of a panel


def history(epochs: int = 5) -> list[dict]:
    train = [{"kind": "train", "step": s, "loss": 1 / s, "l1": 0.5 / s} for s in range(1, 60)]
    val = [
        {"kind": "val", "epoch": e, "psnr": 10.0 + e, "ssim": 0.1 * e, "l1": 1 / e}
        for e in range(1, epochs + 1)
    ]
    return train + val


def test_curves_name_their_x_axis(tmp_path):
    # there was no step/epoch label: the x axis showed two bare numbers
    sheet = np.asarray(Image.open(plot_curves(history(), tmp_path / "c.png")).convert("L"))
    for col in (0, 1):
        for row in (0, 1):
            x0, y0 = col * PANEL[0], row * PANEL[1]
            # between the two tick labels, under the plot box: the axis name
            below = sheet[y0 + BOX[3] + 2 : y0 + BOX[3] + 18, x0 + 120 : x0 + 240]
            assert (below < 128).any(), (col, row)


def test_legend_does_not_cover_the_curve():
    # the legend sat in the top right of the plot box, where a rising PSNR curve ends
    rising = [(float(e), 10.0 + e) for e in range(1, 6)]
    named = np.asarray(_draw_panel("val PSNR", {"psnr": rising}))
    unnamed = np.asarray(_draw_panel("val PSNR", {"": rising}))
    changed = np.argwhere((named != unnamed).any(axis=-1))  # the legend's pixels
    assert len(changed)
    inside = (
        (changed[:, 1] > BOX[0])
        & (changed[:, 1] < BOX[2])
        & (changed[:, 0] > BOX[1])
        & (changed[:, 0] < BOX[3])
    )
    assert not inside.any()


def test_sample_sheet_columns_are_labelled(tmp_path):
    black = np.zeros((2, 96, 96, 3), np.float32)
    sheet = np.asarray(Image.open(save_sample(tmp_path / "s.png", black, black, black)))
    assert sheet.shape == (192, 288, 3)
    for col in range(3):  # input | prediction | target: a white label at the top of each
        assert (sheet[:30, col * 96 : col * 96 + 90] > 200).any(), col
    assert not sheet[30:].any()  # the rest is the black images
