"""Batch sources for training: every batch is a pure function of (seed, step, sample index).

A source has ``batch(step, rank=0, size=1) -> dict`` returning NHWC float32 numpy arrays
``ldr`` (display [0, 1]) and ``hdr`` (scene-linear, the LDR's clip point at 1.0), optionally
``clip_mask`` (N, H, W, 1), and ``validation(n) -> dict`` (a fixed set). Rank ``r`` of
``size`` gets samples ``r, r + size, ...`` of the global batch, so all ranks together see
exactly the single-process batch. Resuming at step k therefore replays the same data.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from mlx_hdr.data.sources import sample_rng

TRAIN_STREAM, VAL_STREAM = 0, 1  # first key of ``sample_rng``: training or validation samples


class BatchSource(Protocol):
    """What the trainer reads batches from (see the module docstring)."""

    batch_size: int

    def batch(self, step: int, rank: int = 0, size: int = 1) -> dict[str, np.ndarray]:
        """Samples ``rank, rank + size, ...`` of step ``step``'s global batch, NHWC float32."""
        ...

    def validation(self, n: int) -> dict[str, np.ndarray]:
        """The fixed validation set of ``n`` samples, NHWC float32."""
        ...


def stack(samples: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Stack per-sample HWC dicts into one batch dict of NHWC float32 arrays (same keys)."""
    return {k: np.stack([s[k] for s in samples]).astype(np.float32) for k in samples[0]}


@dataclass
class ArrayBatches:
    """Random crops (with flips) from in-memory (ldr, hdr) HWC pairs; for tests and small sets."""

    ldr: list[np.ndarray]
    hdr: list[np.ndarray]
    batch_size: int = 4
    crop: int = 64
    seed: int = 0

    def sample(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """``{"ldr", "hdr"}``: a random ``crop`` x ``crop`` window of a random pair (the same
        for both), flipped left-right with probability 1/2; views, not copies."""
        i = int(rng.integers(len(self.ldr)))
        h, w = self.ldr[i].shape[:2]
        y, x = int(rng.integers(h - self.crop + 1)), int(rng.integers(w - self.crop + 1))
        win = np.s_[y : y + self.crop, x : x + self.crop]
        ldr, hdr = self.ldr[i][win], self.hdr[i][win]
        if rng.random() < 0.5:
            ldr, hdr = ldr[:, ::-1], hdr[:, ::-1]
        return {"ldr": ldr, "hdr": hdr}

    def batch(self, step: int, rank: int = 0, size: int = 1) -> dict[str, np.ndarray]:
        """Samples ``rank, rank + size, ...`` of step ``step``'s batch of ``batch_size``."""
        idx = range(rank, self.batch_size, size)
        return stack([self.sample(sample_rng(self.seed, TRAIN_STREAM, step, i)) for i in idx])

    def validation(self, n: int) -> dict[str, np.ndarray]:
        """``n`` fixed samples from the validation RNG stream (not sharded by rank)."""
        return stack([self.sample(sample_rng(self.seed, VAL_STREAM, 0, i)) for i in range(n)])


def synthetic_pairs(n: int, size: int, seed: int = 0) -> tuple[list, list]:
    """Smooth random HDR images with bright spots and their clipped sRGB LDRs (for tests)."""
    from mlx_hdr.color import linear_to_srgb

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    ldrs, hdrs = [], []
    for _ in range(n):
        base = (
            0.2 + 0.5 * rng.random(3) * (0.5 + 0.5 * np.sin(6 * xx + rng.random() * 6))[..., None]
        )
        cy, cx = rng.random(2)
        spot = 8.0 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 0.01)[..., None]
        hdr = (base + spot).astype(np.float32)
        hdrs.append(hdr)
        ldrs.append(linear_to_srgb(hdr))
    return ldrs, hdrs


def prefetch(
    source: BatchSource, start: int, stop: int, rank: int = 0, size: int = 1, depth: int = 2
) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
    """Yield ``(step, batch)`` for start <= step < stop, computed ``depth`` ahead in a thread."""
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop_flag = threading.Event()

    def put(item) -> bool:
        """Queue ``item`` unless the consumer has gone; False when it has."""
        while not stop_flag.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def work():
        try:
            for step in range(start, stop):
                if not put((step, source.batch(step, rank, size))):
                    return
        except BaseException as exc:  # surface data errors in the training thread
            put(exc)
            return
        put(None)

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    try:
        while (item := q.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop_flag.set()
