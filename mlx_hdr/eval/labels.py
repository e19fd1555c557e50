"""Text on contact sheets: a label readable on any picture (white, outlined in black)."""

from __future__ import annotations

import cv2
import numpy as np


def draw_label(img_u8: np.ndarray, label: str, origin: tuple[int, int] = (6, 20)) -> None:
    """Write ``label`` into the HxWx3 uint8 image ``img_u8`` (in place), its baseline
    starting at ``origin`` (x, y)."""
    font, (x, y) = cv2.FONT_HERSHEY_SIMPLEX, origin
    # a black outline from offset copies: a thicker stroke would also widen the glyph advance
    # and misalign it with the white text
    for dx, dy in ((-1, -1), (-1, 1), (1, -1), (1, 1)):
        cv2.putText(img_u8, label, (x + dx, y + dy), font, 0.55, (0, 0, 0), 1)
    cv2.putText(img_u8, label, (x, y), font, 0.55, (255, 255, 255), 1)
