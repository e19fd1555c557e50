"""The training samples: ``source.sample(index, rng) -> (ldr, hdr)``, deterministic given ``rng``.

Display LDR in [0, 1] and the HDR scaled so the LDR's clipping point is 1.0 (see
docs/ARCHITECTURE.md "Value domains"), float32 HxWx3:

- :class:`PairSource`: kept pairs of a manifest (LDR files + HDR files), orientation fixed,
  exposure aligned with :func:`~mlx_hdr.data.preprocess.estimate_exposure`, augmented.
- :class:`PoolSource`: an HDR-only collection (e.g. ``hdr-pool``): panorama views or photo
  crops, then the camera simulator. Decoded HDRs are cached in memory.

Batches, their seeds (:func:`sample_rng`) and prefetching are ``train.pool`` and
``train.data``'s.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np

from mlx_hdr.color import clipped_gain, rgb_to_luminance
from mlx_hdr.data.composite import add_window, dynamic_range
from mlx_hdr.data.datasets import Pair, pool_kind, scan_dataset
from mlx_hdr.data.manifest import Manifest, read_manifest
from mlx_hdr.data.orientation import apply_dihedral
from mlx_hdr.data.panorama import ViewConfig, random_crop, random_view
from mlx_hdr.data.preprocess import MAX_HDR_VALUE, augment_pair, estimate_exposure
from mlx_hdr.data.simulate import SimConfig, simulate_ldr
from mlx_hdr.io.image_io import read_hdr, read_ldr


def sample_rng(seed: int, *keys: int) -> np.random.Generator:
    """The RNG of one sample, ``default_rng([seed, *keys])``: a pure function of its keys,
    independent of the order (and thread) samples are made in.

    Training (``train.pool``) keys samples by ``(stream, step, index)``.
    """
    return np.random.default_rng([seed, *keys])


class PairSource:
    """Samples from the kept pairs of a manifest (which must have LDR files). With
    ``shuffle`` (a seed), sample index ``k`` is pair ``perm(k // n)[k % n]``: each pass over
    the ``n`` pairs in its own seeded order, still a pure function of ``k``; without it,
    pair ``k % n``."""

    def __init__(
        self,
        manifest: Manifest | str,
        size: int = 256,
        scale=(0.5, 1.0),
        shuffle: int | None = None,
    ):
        self.manifest = manifest if isinstance(manifest, Manifest) else read_manifest(manifest)
        self.records = [r for r in self.manifest.kept() if r["ldr"] is not None]
        if not self.records:
            raise ValueError("manifest has no kept LDR/HDR pairs")
        self.size, self.scale, self.shuffle = size, scale, shuffle

    def __len__(self) -> int:
        return len(self.records)

    def _record(self, index: int) -> int:
        """The pair that sample ``index`` takes (the class docstring)."""
        n = len(self.records)
        if self.shuffle is None:
            return index % n
        lap, k = divmod(index, n)
        return int(np.random.default_rng([self.shuffle, lap]).permutation(n)[k])

    def load(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """The full-size pair ``i``: display LDR and exposure-aligned HDR."""
        rec = self.records[i]
        ldr = read_ldr(self.manifest.path(rec, "ldr"))
        hdr = read_hdr(self.manifest.path(rec, "hdr"))
        hdr = apply_dihedral(hdr, rec.get("orientation") or "identity")
        return ldr, hdr * np.float32(estimate_exposure(ldr, hdr))

    def sample(self, index: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Sample ``index``'s pair (the class docstring), augmented with ``rng``: ``(ldr,
        hdr)``, float32 ``size`` x ``size`` x 3 (LDR display in [0, 1], HDR exposure-aligned,
        >= 0)."""
        ldr, hdr = self.load(self._record(index))
        return augment_pair(ldr, hdr, rng, self.size, self.scale)

    def drawn_names(self, n: int) -> list[str]:
        """The names of the pairs that samples ``0 .. n - 1`` take (:meth:`_record`)."""
        return [self.records[self._record(i)]["name"] for i in range(n)]

    def ldr_path(self, index: int) -> Path:
        """The LDR file of sample ``index``'s pair (:meth:`sample`'s)."""
        return self.manifest.path(self.records[self._record(index)], "ldr")

    def missing(self) -> list[str]:
        """Leave out the pairs whose LDR or HDR file is gone (e.g. moved since ``mlx-hdr
        data index``); a line per pair left out, naming the file."""
        kept, gone = [], []
        for rec in self.records:
            absent = [p for k in ("ldr", "hdr") if not (p := self.manifest.path(rec, k)).is_file()]
            if absent:
                gone.append(f"{absent[0]}: file not found")
            else:
                kept.append(rec)
        self.records = kept
        return gone


CACHE_BYTES = 4 << 30  # decoded pool images kept in memory (PoolSource.hdr)


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
        cache_bytes: int = CACHE_BYTES,
    ):
        self.pairs = scan_dataset(pairs).pairs if isinstance(pairs, (str, Path)) else list(pairs)
        if not self.pairs:
            raise ValueError("empty HDR pool")
        self.size, self.sim, self.view_cfg = size, sim or SimConfig(), view or ViewConfig()
        self.max_value, self.tries = max_value, max(1, tries)
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()  # least recently used first
        self.cache_bytes = cache_bytes
        self._refs: dict[int, float] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.pairs)

    def drawn_names(self, n: int) -> list[str]:
        """The names of the HDR images samples draw from: all of them, in the pool's order
        (each sample draws its image with its own ``rng``), whatever ``n``."""
        return [p.name for p in self.pairs]

    def hdr(self, i: int) -> np.ndarray:
        """Decoded HDR ``i``; the most recently used ones are kept, up to ``cache_bytes``
        (the shared pools, 62 images, hold about 0.5 GB as float32; a folder of 24 MP
        merges 0.3 GB each, so more are read again)."""
        with self._lock:
            img = self._cache.get(i)
            if img is not None:
                self._cache.move_to_end(i)
        if img is None:
            img = read_hdr(self.pairs[i].hdr_path)
            with self._lock:
                img = self._cache.setdefault(i, img)
                self._cache.move_to_end(i)
                while len(self._cache) > 1 and self._cached_bytes() > self.cache_bytes:
                    self._cache.popitem(last=False)
        return img

    def _cached_bytes(self) -> int:
        return sum(a.nbytes for a in self._cache.values())

    def reference(self, i: int) -> float:
        """HDR ``i``'s luminance at quantile ``sim.scene_quantile`` (its sky, windows and
        lamps), in its own units; cached."""
        with self._lock:
            ref = self._refs.get(i)
        if ref is None:
            y = rgb_to_luminance(self.hdr(i))
            ref = max(float(np.quantile(y, self.sim.scene_quantile)), 1e-12)
            with self._lock:
                self._refs[i] = ref
        return ref

    def view(self, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
        """A random HDR crop: a perspective view of a panorama (an image its pool calls one,
        or, of no stated kind, twice as wide as high: an equirectangular one), a crop of a
        photo."""
        i = int(rng.integers(len(self)))
        img, size = self.hdr(i), (self.size, self.size)
        if pool_kind(self.pairs[i].kind, *img.shape[:2]) == "panorama":
            crop, info = random_view(img, rng, size, self.view_cfg)
        else:
            crop, info = random_crop(img, rng, size, self.view_cfg)
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        return np.ascontiguousarray(crop), info | {"name": self.pairs[i].name, "index": i}

    def scene(self, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
        """A view, with probability ``sim.window_prob`` with a second view composited in as
        a bright window (``composite.add_window``; ``info["window"]``: its stops,
        ``info["window_frame"]``: its lit frame's, or None) when the view holds no bright
        light already (``sim.window_room_range``)."""
        crop, info = self.view(rng)
        cfg = self.sim
        if cfg.window_prob > 0 and rng.random() < cfg.window_prob:
            if dynamic_range(crop) > cfg.window_room_range:  # not a room: no window
                return crop, info
            outside, _ = self.view(rng)
            stops = float(rng.uniform(*cfg.window_stops))
            frame = None
            if cfg.window_frame_prob > 0 and rng.random() < cfg.window_frame_prob:
                frame = float(rng.uniform(*cfg.window_frame_stops))
            crop, info = (
                add_window(crop, outside, rng, stops, cfg.window_size, frame),
                info | {"window": stops, "window_frame": frame},
            )
        return crop, info

    def sample_with_record(self, rng: np.random.Generator):
        """``(ldr, hdr, record)``; views whose exposed max exceeds ``max_value`` are redrawn
        (up to ``tries`` times, then clamped): the original recipe's brightness filter, per
        sample. So are, with probability ``sim.gain_floor_prob``, views whose clipped pixels
        lie less than ``sim.gain_floor`` stops above white (``color.clipped_gain``)."""
        for _ in range(self.tries):
            crop, info = self.scene(rng)
            ldr, hdr, rec = simulate_ldr(crop, rng, self.sim)
            if self._accept(ldr, hdr, rng):
                break
        return ldr, self._clamp(hdr), rec.to_dict() | info

    def sample_pair(self, rng: np.random.Generator, stops: float) -> list[tuple]:
        """Two photos of one scene by one camera, the second exposed ``2 ** stops`` times as
        long: ``[(ldr, hdr), (ldr, hdr)]`` as :meth:`sample`. The first is drawn and
        filtered like :meth:`sample_with_record`'s; the second shares its view, curve,
        noise settings, clip levels and JPEG quality (``simulate_ldr``'s ``exposure_scale``
        and ``like``), so
        only how exposed the photo is tells them apart. The second is exposed ``2 **
        -stops`` times instead when it clips a share outside ``sim.metered_clip`` or the
        gain floor would redraw it (:meth:`_keep`), so both follow the single photos' mix."""
        for _ in range(self.tries):
            crop, _ = self.scene(rng)
            camera = int(rng.integers(2**63))
            ldr, hdr, first = simulate_ldr(crop, np.random.default_rng(camera), self.sim)
            if self._accept(ldr, hdr, rng):
                break
        low, high = self.sim.metered_clip
        for d in (stops, -stops):  # the other way when the first is not kept
            other, hdr_other, rec = simulate_ldr(
                crop, np.random.default_rng(camera), self.sim, 2.0**d, like=first
            )
            if low <= rec.clipped_fraction <= high and self._keep(other, hdr_other, rng):
                break
        return [(ldr, self._clamp(hdr)), (other, self._clamp(hdr_other))]

    def _accept(self, ldr: np.ndarray, hdr: np.ndarray, rng: np.random.Generator) -> bool:
        """Within the brightness filter and not redrawn by the gain floor (:meth:`_keep`)."""
        if self.max_value is not None and hdr.max() > self.max_value:
            return False
        return self._keep(ldr, hdr, rng)

    def _clamp(self, hdr: np.ndarray) -> np.ndarray:
        """``hdr`` clamped to ``max_value`` (when set)."""
        if self.max_value is None:
            return hdr
        return np.minimum(hdr, np.float32(self.max_value))

    def _keep(self, ldr: np.ndarray, hdr: np.ndarray, rng: np.random.Generator) -> bool:
        """False for a view the gain floor redraws (no random draw when it is off)."""
        if self.sim.gain_floor_prob <= 0.0:
            return True
        gain = clipped_gain(ldr, hdr)
        if not gain < self.sim.gain_floor:  # NaN (nothing clipped) passes
            return True
        return bool(rng.random() >= self.sim.gain_floor_prob)

    def sample_photo(self, index: int, rng: np.random.Generator) -> tuple:
        """``(ldr, hdr, white)``: :meth:`sample` and the photo's white as EXIF would give it,
        log2 cd/m², or NaN (no EXIF) with probability 1 - ``sim.exif_prob``.

        The pool's HDRs carry no absolute scale; each photo puts its scene's sky, windows
        and lamps (:meth:`photo_white`) at a luminance log-uniform in ``sim.scene_luminance``
        (daylight's; night scenes and studios get the same), so the white a photo's
        exposure gives says how far above it those lie. Drawn after the photo, so the
        photo is :meth:`sample`'s for the same ``rng``.
        """
        ldr, hdr, rec = self.sample_with_record(rng)
        if rng.random() >= self.sim.exif_prob:
            return ldr, hdr, math.nan
        return ldr, hdr, self.record_white(rec["index"], rec, rng, hdr)

    def record_white(self, i: int, rec: dict, rng: np.random.Generator, hdr: np.ndarray) -> float:
        """:meth:`photo_white` of a simulated photo of HDR ``i``: its record
        (``SimRecord.to_dict()``) and its ``hdr`` as ``simulate_ldr`` returns it, on the
        target's scale."""
        at_clip = rec["exposure"] / rec["shoulder_white"]  # the sensor's clip at 1.0
        scene = hdr / np.float32(rec["target_scale"] * rec["shoulder_white"])
        return self.photo_white(i, at_clip, rng, scene)

    def photo_white(
        self, i: int, exposure: float, rng: np.random.Generator, hdr: np.ndarray | None = None
    ) -> float:
        """log2 cd/m² of the white of a photo of HDR ``i`` exposed by ``exposure`` (the HDR
        times it reaches the sensor's clip at 1.0: ISO 12232's saturation, which an EXIF
        white follows from; ``SimRecord.exposure / shoulder_white``), its scene's lights put
        at a luminance drawn log-uniform in ``sim.scene_luminance``.

        The lights' level is the image's :meth:`reference`, or where the exposed scene the
        photo shows, ``hdr`` (HxWx3, scene-linear, the sensor's clip at 1.0), holds brighter
        ones (a composited window, lamps the simulator brightened) their
        ``sim.scene_quantile`` luminance: so a window put 6 stops above its room lies at
        daylight's level too.
        """
        ref = self.reference(i)
        if hdr is not None:
            y = rgb_to_luminance(np.asarray(hdr, np.float32))
            ref = max(ref, float(np.quantile(y, self.sim.scene_quantile)) / exposure)
        lo, hi = np.log(self.sim.scene_luminance)
        scale = math.exp(rng.uniform(lo, hi)) / ref
        return math.log2(scale / exposure)

    def sample(self, index: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """``(ldr, hdr)`` of :meth:`sample_with_record`, float32 ``size`` x ``size`` x 3.

        ``index`` is unused: which HDR is viewed is drawn from ``rng`` too.
        """
        ldr, hdr, _ = self.sample_with_record(rng)
        return ldr, hdr
