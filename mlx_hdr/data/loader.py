"""Training batches with background prefetch, deterministic given a seed.

Two sources, both yielding ``(ldr, hdr)`` samples: display LDR in [0, 1] and the HDR scaled so
the LDR's clipping point is 1.0 (see docs/ARCHITECTURE.md "Value domains"), float32 HxWx3:

- :class:`PairSource`: kept pairs of a manifest (LDR files + HDR files), orientation fixed,
  exposure aligned with :func:`~mlx_hdr.data.preprocess.estimate_exposure`, augmented.
- :class:`PoolSource`: an HDR-only collection (e.g. ``hdr-pool``): panorama views or photo
  crops, then the camera simulator. Decoded HDRs are cached in memory.

Each sample's RNG is ``np.random.default_rng([seed, epoch, index])``, so batches do not
depend on thread timing. Batches are dicts of NHWC float32 numpy arrays:
``ldr``, ``hdr`` and ``mask`` (soft clip mask, N x H x W x 1).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mlx_hdr.color import CLIP_THRESHOLD, clip_mask
from mlx_hdr.data.datasets import Pair, scan_dataset
from mlx_hdr.data.manifest import Manifest, read_manifest
from mlx_hdr.data.orientation import apply_dihedral
from mlx_hdr.data.panorama import ViewConfig, random_crop, random_view
from mlx_hdr.data.preprocess import MAX_HDR_VALUE, augment_pair, estimate_exposure
from mlx_hdr.data.simulate import SimConfig, simulate_ldr
from mlx_hdr.image_io import read_hdr, read_ldr

VALIDATION_EPOCH = 2**31 - 1  # RNG stream reserved for the fixed validation set


def sample_rng(seed: int, *keys: int) -> np.random.Generator:
    """The RNG of one sample, ``default_rng([seed, *keys])``: a pure function of its keys,
    independent of the order (and thread) samples are made in.

    The loader keys samples by ``(epoch, index)``; training (``train.data``) by
    ``(stream, step, index)``.
    """
    return np.random.default_rng([seed, *keys])


class PairSource:
    """Samples from the kept pairs of a manifest (which must have LDR files)."""

    def __init__(self, manifest: Manifest | str, size: int = 256, scale=(0.5, 1.0)):
        self.manifest = manifest if isinstance(manifest, Manifest) else read_manifest(manifest)
        self.records = [r for r in self.manifest.kept() if r["ldr"] is not None]
        if not self.records:
            raise ValueError("manifest has no kept LDR/HDR pairs")
        self.size, self.scale = size, scale

    def __len__(self) -> int:
        return len(self.records)

    def load(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """The full-size pair ``i``: display LDR and exposure-aligned HDR."""
        rec = self.records[i]
        ldr = read_ldr(self.manifest.path(rec, "ldr"))
        hdr = read_hdr(self.manifest.path(rec, "hdr"))
        hdr = apply_dihedral(hdr, rec.get("orientation") or "identity")
        return ldr, hdr * np.float32(estimate_exposure(ldr, hdr))

    def sample(self, index: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Pair ``index % len(self)``, augmented with ``rng``: ``(ldr, hdr)``, float32
        ``size`` x ``size`` x 3 (LDR display in [0, 1], HDR exposure-aligned, >= 0)."""
        ldr, hdr = self.load(index % len(self))
        return augment_pair(ldr, hdr, rng, self.size, self.scale)


class PoolSource:
    """Simulated photos of an HDR pool: panorama views / photo crops + the camera simulator."""

    def __init__(
        self,
        pairs: list[Pair] | str | Path,
        size: int = 256,
        sim: SimConfig | None = None,
        view: ViewConfig | None = None,
        max_value: float | None = MAX_HDR_VALUE,
        tries: int = 5,
    ):
        self.pairs = scan_dataset(pairs).pairs if isinstance(pairs, (str, Path)) else list(pairs)
        if not self.pairs:
            raise ValueError("empty HDR pool")
        self.size, self.sim, self.view_cfg = size, sim or SimConfig(), view or ViewConfig()
        self.max_value, self.tries = max_value, max(1, tries)
        self._cache: dict[int, np.ndarray] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_manifest(cls, manifest: Manifest | str, **kwargs) -> PoolSource:
        """A pool of the manifest's kept records (their HDR files and ``kind``); ``kwargs``
        go to the constructor."""
        m = manifest if isinstance(manifest, Manifest) else read_manifest(manifest)
        pairs = [Pair(r["name"], None, m.path(r, "hdr"), r.get("kind")) for r in m.kept()]
        return cls(pairs, **kwargs)

    def __len__(self) -> int:
        return len(self.pairs)

    def hdr(self, i: int) -> np.ndarray:
        """Decoded HDR ``i``, cached (the pool is small: 36 images, ~230 MB as float32)."""
        with self._lock:
            img = self._cache.get(i)
        if img is None:
            img = read_hdr(self.pairs[i].hdr_path)
            with self._lock:
                img = self._cache.setdefault(i, img)
        return img

    def view(self, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
        """A random HDR crop: a perspective view of a panorama, a crop of a photo."""
        i = int(rng.integers(len(self)))
        img, size = self.hdr(i), (self.size, self.size)
        if self.pairs[i].kind == "panorama":
            crop, info = random_view(img, rng, size, self.view_cfg)
        else:
            crop, info = random_crop(img, rng, size, self.view_cfg)
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        return np.ascontiguousarray(crop), info | {"name": self.pairs[i].name}

    def sample_with_record(self, rng: np.random.Generator):
        """``(ldr, hdr, record)``; views whose exposed max exceeds ``max_value`` are redrawn
        (up to ``tries`` times, then clamped): the design's brightness filter, per sample."""
        for _ in range(self.tries):
            crop, info = self.view(rng)
            ldr, hdr, rec = simulate_ldr(crop, rng, self.sim)
            if self.max_value is None or hdr.max() <= self.max_value:
                break
        if self.max_value is not None:
            hdr = np.minimum(hdr, np.float32(self.max_value))
        return ldr, hdr, rec.to_dict() | info

    def sample(self, index: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """``(ldr, hdr)`` of :meth:`sample_with_record`, float32 ``size`` x ``size`` x 3.

        ``index`` is unused: which HDR is viewed is drawn from ``rng`` too.
        """
        ldr, hdr, _ = self.sample_with_record(rng)
        return ldr, hdr


@dataclass
class LoaderConfig:
    """Batching, prefetch and determinism settings."""

    batch_size: int = 8
    seed: int = 0
    epoch_length: int | None = None  # samples per epoch; None = len(source)
    shuffle: bool = True  # PairSource order is a per-epoch permutation
    workers: int = 2
    prefetch_batches: int = 2
    mask_threshold: float = CLIP_THRESHOLD
    progress: bool = False
    drop_last: bool = True


class Loader:
    """Iterate batches of ``source`` for one epoch at a time: ``for batch in loader.epoch(e)``."""

    def __init__(self, source, cfg: LoaderConfig | None = None):
        self.source, self.cfg = source, cfg or LoaderConfig()

    def __len__(self) -> int:
        n = self.cfg.epoch_length or len(self.source)
        b = self.cfg.batch_size
        return n // b if self.cfg.drop_last else -(-n // b)

    def _indices(self, epoch: int) -> np.ndarray:
        n = self.cfg.epoch_length or len(self.source)
        if self.cfg.shuffle:
            order = np.random.default_rng([self.cfg.seed, epoch]).permutation(n)
            return order % len(self.source) if n > len(self.source) else order
        return np.arange(n)

    def make_sample(self, epoch: int, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Sample ``index`` of ``epoch``: ``source.sample`` with its own
        :func:`sample_rng` ``(seed, epoch, index)``."""
        return self.source.sample(int(index), sample_rng(self.cfg.seed, epoch, int(index)))

    def _batch(self, samples: list) -> dict[str, np.ndarray]:
        ldr = np.stack([s[0] for s in samples]).astype(np.float32)
        hdr = np.stack([s[1] for s in samples]).astype(np.float32)
        return {"ldr": ldr, "hdr": hdr, "mask": clip_mask(ldr, self.cfg.mask_threshold)}

    def epoch(self, epoch: int = 0) -> Iterator[dict[str, np.ndarray]]:
        """Batches of one epoch, made in background threads ``prefetch_batches`` ahead."""
        idx, b = self._indices(epoch), self.cfg.batch_size
        batches = [idx[i : i + b] for i in range(0, len(idx), b)][: len(self)]
        it = self._prefetched(epoch, batches)
        if self.cfg.progress:
            from tqdm import tqdm

            it = tqdm(it, total=len(batches), desc=f"epoch {epoch}", unit="batch")
        yield from it

    def _prefetched(self, epoch: int, batches: list) -> Iterator[dict[str, np.ndarray]]:
        pool = ThreadPoolExecutor(max(1, self.cfg.workers), thread_name_prefix="mlx-hdr-data")
        pending: deque = deque()
        try:
            for ids in batches:
                pending.append([pool.submit(self.make_sample, epoch, i) for i in ids])
                if len(pending) > self.cfg.prefetch_batches:
                    yield self._batch([f.result() for f in pending.popleft()])
            while pending:
                yield self._batch([f.result() for f in pending.popleft()])
        finally:  # also when the consumer stops early: drop what is queued
            pool.shutdown(wait=True, cancel_futures=True)

    def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
        return self.epoch(0)


def validation_set(source, n: int, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """A fixed list of ``n`` (ldr, hdr) samples, the same for the same source and seed."""
    return [source.sample(i, sample_rng(seed, VALIDATION_EPOCH, i)) for i in range(n)]
