"""Training batches from an HDR pool: random panorama views / photo crops, then the camera
simulator. Each sample is a pure function of (seed, step, index), so resuming replays data.

A fixed share of the pool's images (every ``holdout``-th file) is held out for validation.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mlx_hdr.errors import InputError
from mlx_hdr.train.data import sample_rng, stack

HDR_EXTENSIONS = (".hdr", ".exr", ".pfm")


def pool_files(root: Path) -> list[tuple[Path, str]]:
    """(file, kind) of an HDR pool folder; kind from MANIFEST.csv, else by 2:1 aspect."""
    if not root.is_dir():
        raise InputError("HDR pool folder not found", root)
    kinds = {}
    manifest = root / "MANIFEST.csv"
    if manifest.is_file():
        with open(manifest, newline="") as f:
            kinds = {row["file"]: row.get("kind", "") for row in csv.DictReader(f)}
    files = sorted(p for p in root.iterdir() if p.suffix.lower() in HDR_EXTENSIONS)
    if not files:
        raise InputError(f"no HDR files ({', '.join(HDR_EXTENSIONS)}) in the pool", root)
    return [(p, kinds.get(p.name, "")) for p in files]


@dataclass
class PoolBatches:
    """Batch source over an HDR pool folder (decoded images cached in memory)."""

    root: Path
    batch_size: int = 16
    crop: int = 224
    val_crop: int = 224
    seed: int = 0
    holdout: int = 9  # every 9th image is validation-only
    _cache: dict = field(default_factory=dict, repr=False)

    def __post_init__(self):
        self.root = Path(self.root)
        files = pool_files(self.root)
        self.val_files = files[:: self.holdout] if len(files) > 1 else files
        self.train_files = [f for f in files if f not in self.val_files] or files

    def image(self, path: Path) -> np.ndarray:
        if path not in self._cache:
            from mlx_hdr.image_io import read_hdr

            self._cache[path] = read_hdr(path)
        return self._cache[path]

    def sample(self, rng: np.random.Generator, files: list, size: int) -> dict[str, np.ndarray]:
        from mlx_hdr.data.panorama import random_crop, random_view
        from mlx_hdr.data.simulate import simulate_ldr

        path, kind = files[int(rng.integers(len(files)))]
        hdr = self.image(path)
        h, w = hdr.shape[:2]
        pano = kind == "panorama" or (not kind and abs(w - 2 * h) <= 2)
        view, _ = (random_view if pano else random_crop)(hdr, rng, (size, size))
        if rng.random() < 0.5:
            view = view[:, ::-1]
        ldr, hdr_scaled, _ = simulate_ldr(np.ascontiguousarray(view), rng)
        return {"ldr": ldr, "hdr": hdr_scaled}

    def batch(self, step: int, rank: int = 0, size: int = 1) -> dict[str, np.ndarray]:
        idx = range(rank, self.batch_size, size)
        rngs = [sample_rng(self.seed, step, i) for i in idx]
        return stack([self.sample(r, self.train_files, self.crop) for r in rngs])

    def validation(self, n: int) -> dict[str, np.ndarray]:
        rngs = [sample_rng(self.seed, 0, i, stream=1) for i in range(n)]
        return stack([self.sample(r, self.val_files, self.val_crop) for r in rngs])


def pool_source(cfg) -> PoolBatches:
    """The :class:`PoolBatches` for a :class:`TrainConfig` (``cfg.data`` = pool folder)."""
    return PoolBatches(
        Path(cfg.data),
        batch_size=cfg.batch_size,
        crop=cfg.crop,
        val_crop=cfg.val_crop,
        seed=cfg.seed,
    )
