"""Training batches from the data pipeline's sources (``mlx_hdr.data.sources``).

``cfg.data`` is a dataset folder (an HDR pool such as ``hdr-pool``, HDR-Synth, or paired
LDR/HDR layouts) or a manifest written by ``mlx-hdr data index``. HDR-only collections go
through :class:`~mlx_hdr.data.sources.PoolSource` (panorama views / photo crops + the camera
simulator), paired ones through :class:`~mlx_hdr.data.sources.PairSource`.

Each sample of a batch is ``source.sample(index, rng)`` with ``rng`` seeded by
(seed, step, index), so every batch is a pure function of the step (exact resume) and ranks
can make just their shard. Every ``holdout``-th image (of a manifest: every ``holdout``-th
scene, the photos that share one ground truth together) is kept out for validation.
"""

from __future__ import annotations

import itertools
import math
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from mlx_hdr.color import clip_mask
from mlx_hdr.data.simulate import SimConfig
from mlx_hdr.data.sources import sample_rng
from mlx_hdr.errors import InputError, UsageError
from mlx_hdr.io.image_io import HDR_SUFFIXES, LDR_SUFFIXES
from mlx_hdr.io.photo_meta import read_exposure
from mlx_hdr.train.data import TRAIN_STREAM, VAL_STREAM


@dataclass
class SourceBatches:
    """:class:`~mlx_hdr.train.data.BatchSource` over two ``data.sources`` (train, validation)."""

    train: Any  # has .sample(index, rng) -> (ldr, hdr)
    val: Any
    batch_size: int = 16
    seed: int = 0
    pair_stops: tuple[float, float] | None = None  # exposure pairs (PoolSource.sample_pair)
    exif: bool = False  # samples carry their photo's white (:meth:`_draw`): key "white"

    def _stack(self, samples) -> dict[str, np.ndarray]:
        ldr = np.stack([s[0] for s in samples]).astype(np.float32)
        hdr = np.stack([s[1] for s in samples]).astype(np.float32)
        out = {"ldr": ldr, "hdr": hdr, "clip_mask": clip_mask(ldr)}
        if self.exif:
            out["white"] = np.array([s[2] for s in samples], np.float32)
        return out

    def _draw(self, source, index: int, rng: np.random.Generator) -> tuple:
        """One sample of ``source``: ``sample``'s, and with ``exif`` the photo's white as
        the third item (a pool's ``sample_photo``, a pair's LDR file's EXIF)."""
        if not self.exif:
            return source.sample(index, rng)
        if hasattr(source, "sample_photo"):
            return source.sample_photo(index, rng)
        return (*source.sample(index, rng), exif_white(source.ldr_path(index)))

    def validation_key(self, n: int) -> dict:
        """What :meth:`validation` ``(n)`` draws from, to tell a change: the names of the
        images (a pool's) or pairs (a manifest's), whether it draws their EXIF white, and
        whether they go through the camera simulator."""
        simulated = hasattr(self.val, "sim")
        return {"names": self.val.drawn_names(n), "exif": self.exif, "simulated": simulated}

    def batch(self, step: int, rank: int = 0, size: int = 1) -> dict[str, np.ndarray]:
        """Samples ``rank, rank + size, ...`` of step ``step``'s batch from ``train`` (sample
        index ``step * batch_size + i``): NHWC float32 ``ldr``, ``hdr`` and ``clip_mask``.
        With ``pair_stops`` the shards are exposure pairs instead (:meth:`_pairs`)."""
        b = self.batch_size
        if self.pair_stops is not None:
            return self._stack(self._pairs(step, rank, size))
        rngs = {i: sample_rng(self.seed, TRAIN_STREAM, step, i) for i in range(rank, b, size)}
        return self._stack([self._draw(self.train, step * b + i, r) for i, r in rngs.items()])

    def _pairs(self, step: int, rank: int, size: int) -> list:
        """Exposure pairs ``rank, rank + size, ...`` of step ``step`` (samples ``2p`` and
        ``2p + 1`` are pair ``p``, one scene ``2 ** d`` times as long exposed in the second,
        ``|d|`` uniform in ``pair_stops``, either sign)."""
        samples = []
        for p in range(rank, self.batch_size // 2, size):
            rng = sample_rng(self.seed, TRAIN_STREAM, step, p)
            stops = float(rng.uniform(*self.pair_stops)) * (1.0 if rng.random() < 0.5 else -1.0)
            samples += self.train.sample_pair(rng, stops)
        return samples

    def validation(self, n: int) -> dict[str, np.ndarray]:
        """``n`` fixed samples of ``val`` (validation RNG stream), same keys as :meth:`batch`."""
        rngs = [sample_rng(self.seed, VAL_STREAM, 0, i) for i in range(n)]
        return self._stack([self._draw(self.val, i, r) for i, r in enumerate(rngs)])


def exif_white(path: Path) -> float:
    """log2 of the white, cd/m², that a photo's EXIF exposure gives
    (``io.photo_meta.read_exposure``), NaN where it has none."""
    exposure = read_exposure(path)
    return math.nan if exposure is None else exposure.white_log2()


HOLDOUT = 9  # every 9th pool image is validation


def heldout_views(
    pool, n: int, size: int = 384, seed: int = 123, sim=None, exif: bool = False
) -> list:
    """``n`` fixed simulated (ldr, hdr) photos of the pool's validation images.

    The model-selection set of ``scripts/validate_model.py``: the images ``mlx-hdr train``
    holds out, through the camera simulator (``sim``: a ``SimConfig``) with a fixed seed.
    ``exif``: (ldr, hdr, white) instead, every photo with its simulated EXIF white (log2
    cd/m², ``PoolSource.sample_photo``); the photos are the same.
    """
    if exif:
        sim = replace(sim or SimConfig(), exif_prob=1.0)
    source = _heldout_source(pool, size, sim)
    draw = source.sample_photo if exif else source.sample
    return [draw(i, sample_rng(seed, 0, i)) for i in range(n)]


def _heldout_source(pool, size: int, sim=None):
    """A :class:`~mlx_hdr.data.sources.PoolSource` over the pool(s)' held-out images."""
    from mlx_hdr.data.sources import PoolSource

    pools = [pool] if isinstance(pool, (str, Path)) else list(pool)
    _, val = split(readable(pool_pairs(pools), "validation"), HOLDOUT)  # training's split
    return PoolSource(val, size=size, sim=sim)


def heldout_brackets(
    pool,
    n: int,
    evs: tuple[float, ...],
    size: int = 384,
    seed: int = 321,
    sim=None,
    exif: bool = False,
) -> list[tuple]:
    """Simulated exposure brackets of ``n`` held-out scenes: each scene (a view of a held-out
    image) photographed at every metered exposure offset in ``evs`` (stops) by one camera:
    the same response curve and noise settings in every frame (the JPEG quality may differ
    between frames: it is drawn after the noise, whose draws depend on the light; the
    documented simulated-bracket figures were measured so).

    Returns ``(ldr, hdr, scene)`` per frame; ``hdr`` is on the frame's own scale (its white
    is 1.0), ``scene`` the scene's index. Within a scene only the exposure changes, so a
    model that reads how exposed a photo is gives the longer frames higher clipped gains.
    ``sim``: the camera's other settings (a ``SimConfig``; default: the simulator's own),
    without a highlight boost (``ValueError``: each frame's would follow its own exposure,
    not the scene's). ``exif``: ``(ldr, hdr, scene, white)`` instead, each frame with its
    EXIF white (log2 cd/m², ``PoolSource.photo_white`` with ``sim``'s scene luminance; one
    per scene).
    """
    from mlx_hdr.data.simulate import simulate_ldr

    sim = sim or SimConfig()
    if sim.boost_prob > 0:
        raise ValueError("simulated brackets take a sim without a highlight boost (boost_prob 0)")
    source = _heldout_source(pool, size, sim)
    metered = replace(sim, metering_prob=1.0, metered_clip=(0.0, 1.0))
    cameras = [replace(metered, metering_ev=(ev, ev)) for ev in evs]
    frames = []
    for i in range(n):
        view, info = source.view(sample_rng(seed, 0, i))
        for cfg in cameras:
            ldr, hdr, rec = simulate_ldr(view, sample_rng(seed, 1, i), cfg)
            if not exif:
                frames.append((ldr, hdr, i))
                continue
            white = source.record_white(info["index"], rec.to_dict(), sample_rng(seed, 2, i), hdr)
            frames.append((ldr, hdr, i, white))
    return frames


def split(items: list, holdout: int) -> tuple[list, list]:
    """(train, validation): every ``holdout``-th item is validation (all when only one,
    with a warning: then validation scores the training image)."""
    if len(items) < 2:
        if items:
            warnings.warn(
                "one training image: validation is scored on it too, so says nothing "
                "about other photos",
                stacklevel=2,
            )
        return items, items
    val = items[::holdout]
    return [x for i, x in enumerate(items) if i % holdout], val


def split_scenes(records: list[dict], holdout: int) -> tuple[list, list]:
    """:func:`split` of a manifest's records by scene: the records that share a ground truth
    (the frames of one exposure-bracket set, against its merge) are held out together, so
    validation never scores a scene training sees; the held-out records go scene by scene in
    turn, so the first ``val_size`` of them span as many scenes as they can. Each record its
    own scene: as :func:`split`."""
    scenes: dict[str, list[dict]] = {}
    for rec in records:
        scenes.setdefault(rec["hdr"], []).append(rec)
    if len(scenes) == 1 and len(records) > 1:
        warnings.warn(
            "one scene (every pair shares one ground truth): validation is scored on it too, "
            "so says nothing about other photos",
            stacklevel=2,
        )
        return records, records
    train, val = split(list(scenes.values()), holdout)
    rounds = itertools.zip_longest(*val)  # the first frame of each held-out scene, then ...
    return [r for group in train for r in group], [r for row in rounds for r in row if r]


def readable(pairs: list, use: str = "training") -> list:
    """The pairs whose HDR decodes and is not black; each other one is left out (of
    ``use``) with a warning naming it (as ``mlx-hdr data index`` drops it as unreadable or
    black)."""
    from mlx_hdr.io.image_io import read_hdr

    kept = []
    for pair in pairs:
        try:
            if not read_hdr(pair.hdr_path).any():
                raise InputError("0 in every pixel", pair.hdr_path)
        except InputError as exc:
            warnings.warn(f"{exc}; left out of {use}", stacklevel=2)
            continue
        kept.append(pair)
    return kept


def _pool_sources(pairs: list, cfg, holdout: int):
    from mlx_hdr.data.panorama import ViewConfig
    from mlx_hdr.data.sources import PoolSource

    kept = readable(pairs)
    if pairs and not kept:
        raise ValueError("no readable HDR image")
    train, val = split(kept, holdout)
    view = ViewConfig(highlight_views=cfg.highlight_views)  # validation keeps uniform views
    sim = cfg.sim_config()
    if cfg.train_only == "exposure" and sim.exif_prob == 0:  # its gradient would be 0
        raise ValueError("train_only 'exposure' learns from an EXIF white: set sim.exif_prob > 0")
    return (
        PoolSource(train, size=cfg.crop, sim=sim, view=view),
        PoolSource(val, size=cfg.val_crop, sim=sim),
    )


def _pair_sources(manifest, cfg, holdout: int):
    from mlx_hdr.data.sources import PairSource

    train = PairSource(manifest, size=cfg.crop, shuffle=cfg.seed)
    unused = [k for k in ("highlight_views", "sim") if getattr(cfg, k)]
    if unused:  # they shape simulated views, which a manifest of photos has none of
        warnings.warn(
            f"{' and '.join(unused)} act on the simulated views of an HDR pool; this manifest's "
            "pairs are photos, used as they are: not used",
            stacklevel=2,
        )
    for line in train.missing():  # found now, not steps into the run
        warnings.warn(f"{line}; left out of training", stacklevel=2)
    if not train.records:
        raise ValueError("none of the manifest's pairs has both its files")
    val = PairSource(manifest, size=cfg.val_crop)
    train.records, val.records = split_scenes(train.records, holdout)
    if cfg.train_only == "exposure" and not _any_exif(train):  # its gradient would be 0
        raise ValueError(
            "train_only 'exposure' learns from an EXIF white: none of the manifest's training "
            "photos has an EXIF exposure (time, f-number and ISO)"
        )
    return train, val


def _any_exif(source) -> bool:
    """Whether any of a :class:`PairSource`'s photos has an EXIF exposure (read until one
    has)."""
    paths = (source.manifest.path(rec, "ldr") for rec in source.records)
    return any(math.isfinite(exif_white(p)) for p in paths)


TRAIN_KINDS = (None, "panorama", "photo")  # "bracketed" sets are validation data (README)


def pool_pairs(folders: list[str | Path]) -> list:
    """The HDR-only images of several pool folders as one list, folder after folder (so
    :func:`split` holds out every ``holdout``-th image of the whole list, not of each
    folder); real exposure-bracket sets (kind ``bracketed``) are left out."""
    from mlx_hdr.data.datasets import scan_dataset

    pairs = []
    for folder in folders:
        found = scan_dataset(folder).pairs
        if any(p.ldr_path for p in found):
            raise InputError(
                "paired datasets train from a manifest: run `mlx-hdr data index`", folder
            )
        pairs += found
    return trainable(pairs)


def trainable(pairs: list) -> list:
    """The pairs of a kind that trains (``TRAIN_KINDS``): real exposure-bracket sets are
    validation data, whichever way the pool is named (a folder, a list, a manifest);
    ``ValueError`` where that leaves none of several."""
    kept = [p for p in pairs if p.kind in TRAIN_KINDS]
    if pairs and not kept:
        raise ValueError("holds only bracketed images (real bracket merges: validation data)")
    return kept


def pool_source(cfg, holdout: int = HOLDOUT) -> SourceBatches:
    """The batch source for a :class:`TrainConfig` (``cfg.data``: a folder or manifest, or
    a list of pool folders)."""
    from mlx_hdr.data.datasets import Pair, scan_dataset
    from mlx_hdr.data.manifest import read_manifest

    if not cfg.data:
        raise UsageError(
            "no training data: pass --data (a folder of HDR images, or a manifest from "
            "`mlx-hdr data index`), or a --config recipe that names it"
        )
    if isinstance(cfg.data, (list, tuple)):
        try:
            train, val = _pool_sources(pool_pairs(cfg.data), cfg, holdout)
        except ValueError as exc:
            raise InputError(str(exc), Path(cfg.data[0])) from None
        return _batches(train, val, cfg)
    path = Path(cfg.data)
    if path.is_file() and path.suffix.lower() in (*HDR_SUFFIXES, *LDR_SUFFIXES):
        raise InputError(
            "--data takes a folder of HDR images or a manifest (`mlx-hdr data index`), "
            "not one image",
            path,
        )
    try:
        if path.is_file():
            m = read_manifest(path)
            if any(r.get("ldr") for r in m.kept()):
                train, val = _pair_sources(m, cfg, holdout)
            else:
                pairs = [Pair(r["name"], None, m.path(r, "hdr"), r.get("kind")) for r in m.kept()]
                train, val = _pool_sources(trainable(pairs), cfg, holdout)
        else:
            pairs = scan_dataset(path).pairs
            if any(p.ldr_path for p in pairs):
                raise InputError(
                    "paired datasets train from a manifest: run `mlx-hdr data index`", path
                )
            train, val = _pool_sources(trainable(pairs), cfg, holdout)
    except ValueError as exc:  # e.g. an empty pool or manifest
        raise InputError(str(exc), path) from None
    return _batches(train, val, cfg)


def _batches(train, val, cfg) -> SourceBatches:
    """The :class:`SourceBatches` of a config: exposure pairs when ``cfg.pair_weight`` > 0."""
    pairs = tuple(cfg.pair_stops) if cfg.pair_weight > 0 else None
    if pairs is not None and not hasattr(train, "sample_pair"):
        raise UsageError(
            "exposure pairs (pair_weight > 0) are simulated: they need an HDR-only pool, "
            "not a manifest of LDR/HDR pairs"
        )
    exif = cfg.model.exposure_gain
    if exif and pairs is not None:
        raise UsageError(
            "exposure_gain trains on single photos with their EXIF white: set pair_weight to 0"
        )
    return SourceBatches(train, val, cfg.batch_size, cfg.seed, pairs, exif)
