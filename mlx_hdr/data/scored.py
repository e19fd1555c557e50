"""The pixels of an exposure-bracket set's frames that metrics score.

A set may mark, in its ``exposures.json`` and in the frames' pixels, a ghost box
(``ghost_region_xyxy``: [x0, y0, x1, y1], where something moved between the frames) and a
circular fisheye's image circle (``image_circle``: [cx, cy, radius], outside which lies the
lens barrel, or ``true`` for the circle :func:`fisheye.find_circle` finds on the merge). The
photo and its truth keep every pixel; only what is scored is left out.
"""

from __future__ import annotations

import difflib
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mlx_hdr.data.fisheye import Circle, find_circle, inside
from mlx_hdr.errors import InputError
from mlx_hdr.io.image_io import read_hdr

MIN_SCORED = 0.01  # a set's marks leave at least this share of its frames' pixels scored
MARK_WORDS = {"ghost_region_xyxy": ("ghost", 4), "image_circle": ("circle", 3)}  # word, form
MARK_KEYS = tuple(MARK_WORDS)


class UnreadableMerge(InputError):
    """A set that marks pixels has a merged HDR that cannot be read (missing, corrupt)."""


@dataclass(frozen=True)
class ScoredRegion:
    """What a set's marks leave scored: not ``ghost`` (x0, y0, x1, y1) and, where given, only
    inside ``circle``; in the frames' pixels."""

    ghost: tuple[float, float, float, float] | None = None
    circle: Circle | None = None

    def pixels(self, shape: tuple[int, ...]) -> np.ndarray:
        """HxW bool for the frames' ``shape`` (H, W, ...): True where scored."""
        valid = np.ones(shape[:2], bool) if self.circle is None else inside(self.circle, shape)
        if self.ghost:
            x0, y0, x1, y1 = (max(int(v), 0) for v in self.ghost)
            valid[y0:y1, x0:x1] = False
        return valid


def scored_region(meta: dict, path: Path, hdr: Path) -> ScoredRegion | None:
    """The :class:`ScoredRegion` a bracket set's description ``meta`` (read from ``path``)
    marks on the frames of its merged ``hdr``, or None where it marks nothing (the merge is
    then not read): :func:`region_on` the merge; ``UnreadableMerge`` where it cannot be read."""
    if (marks := _marks(meta, path)) is None:
        return None
    try:
        image = read_hdr(hdr)
    except InputError as exc:
        raise UnreadableMerge(str(exc)) from None
    return _region(marks, path, image)


def _marks(meta: dict, path: Path) -> tuple | None:
    """(ghost, circle) as ``meta`` gives them, checked for their form, or None for no mark."""
    for key, value in meta.items():
        if mark := misspelt_mark(key, value):
            raise InputError(f"unknown key {key!r} (did you mean {mark!r}?)", path)
    ghost, circle = meta.get("ghost_region_xyxy"), meta.get("image_circle")
    if ghost is None and (circle is None or circle is False):
        return None
    if ghost is not None and not _box(ghost):
        raise InputError(
            f"ghost_region_xyxy {ghost!r} is not [x0, y0, x1, y1], x0 < x1, y0 < y1", path
        )
    if not (circle is None or isinstance(circle, bool) or _numbers(circle, 3) and circle[2] > 0):
        raise InputError(f"image_circle {circle!r} is not [cx, cy, radius] or true", path)
    return ghost, circle


def misspelt_mark(key: str, value) -> str | None:
    """The mark key (``MARK_KEYS``) that ``key`` with ``value`` seems meant for, or None:
    a key that nearly spells a mark's (``image_cirle``, ``Image-Circle``, ``ghost_region``)
    with a list or true/false, or one that names the mark's word (``ghost_box``,
    ``lens_circle``) with the mark's own form: 4 numbers for the box, 3 for the circle (or
    true/false under the word alone: ``circle``). A set's own notes (``ghost_region_note``:
    text; ``ghost_check``: a list of objects) are not marks."""
    if key in MARK_KEYS:
        return None
    k = re.sub(r"[^a-z]", "", key.lower())
    for mark, (word, n) in MARK_WORDS.items():
        near = difflib.SequenceMatcher(None, k, mark.replace("_", "")).ratio() >= 0.8
        named = word in k and _numbers(value, n) or k == word and isinstance(value, bool)
        if named or (near and isinstance(value, list | bool)):
            return mark
    return None


def region_on(meta: dict, path: Path, image: np.ndarray) -> ScoredRegion | None:
    """The :class:`ScoredRegion` ``meta`` (read from ``path``) marks on its merged HDR,
    already read: ``image``; None where it marks nothing. Raises ``InputError`` naming
    ``path`` for a malformed mark, a box that misses the frames, and marks that leave less
    than ``MIN_SCORED`` of the pixels scored."""
    marks = _marks(meta, path)
    return None if marks is None else _region(marks, path, image)


def _region(marks: tuple, path: Path, image: np.ndarray) -> ScoredRegion:
    """:func:`region_on` for the ``marks`` :func:`_marks` checked."""
    ghost, circle = marks
    h, w = image.shape[:2]
    if ghost is not None and not (ghost[0] < w and ghost[1] < h and ghost[2] > 0 and ghost[3] > 0):
        raise InputError(f"ghost_region_xyxy {ghost!r} lies outside the {w}x{h} frames", path)
    region = ScoredRegion(ghost and tuple(float(v) for v in ghost), _circle(circle, image, path))
    share = float(region.pixels(image.shape).mean())
    if share < MIN_SCORED:
        raise InputError(f"its marks leave {share:.1%} of the frames' pixels scored", path)
    return region


def _circle(circle, image: np.ndarray, path: Path) -> Circle | None:
    """The image circle an ``image_circle`` mark gives: its numbers, or found on ``image``."""
    if circle is not True:
        return None if circle is None or circle is False else Circle(*(float(v) for v in circle))
    try:
        return find_circle(image)
    except ValueError as exc:
        raise InputError(f"image_circle true: none found on the merged HDR ({exc})", path) from None


def _box(value) -> bool:
    """Whether ``value`` is [x0, y0, x1, y1] with x0 < x1 and y0 < y1."""
    return _numbers(value, 4) and value[0] < value[2] and value[1] < value[3]


def _numbers(value, n: int) -> bool:
    """Whether ``value`` is a list of ``n`` finite numbers (not booleans)."""
    ok = isinstance(value, list) and len(value) == n
    return ok and all(_finite(v) for v in value)


def _finite(v) -> bool:
    if isinstance(v, bool) or not isinstance(v, int | float):
        return False
    try:
        return math.isfinite(v)
    except OverflowError:  # an integer beyond any float
        return False
