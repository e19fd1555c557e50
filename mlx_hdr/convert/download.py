"""Fetch the official PyTorch checkpoints (torchvision, lpips) into the cache, hash-checked."""

from __future__ import annotations

import hashlib
import http.client
import re
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from mlx_hdr.errors import WeightsError
from mlx_hdr.io.atomic import atomic_write
from mlx_hdr.models.model_io import weights_dir

TORCHVISION = "https://download.pytorch.org/models"
LPIPS_RAW = "https://github.com/richzhang/PerceptualSimilarity/raw/master/lpips/weights/v0.1"
# lpips' file has no hash in its name: this is the sha256 of vgg.pth as shipped in lpips 0.1.4.
LPIPS_VGG_SHA256 = "a78928a0af1e5f0fcb1f3b9e8f8c3a2a5a3de244d830ad5c1feddc79b8432868"


@dataclass(frozen=True)
class Source:
    """An official checkpoint: where it is and the sha256 (or hex prefix) it must have."""

    url: str
    sha256: str = ""

    @property
    def filename(self) -> str:
        return self.url.rsplit("/", 1)[-1]

    @property
    def expected_hash(self) -> str:
        """The full or prefix sha256; torchvision's names carry an 8-hex-digit prefix."""
        if self.sha256:
            return self.sha256
        match = re.search(r"-([0-9a-f]{8,})\.", self.filename)
        return match.group(1) if match else ""


# Per architecture: variant name -> source; the first variant is the default.
SOURCES: dict[str, dict[str, Source]] = {
    "mobilenet_v3_large": {
        "IMAGENET1K_V1": Source(f"{TORCHVISION}/mobilenet_v3_large-8738ca79.pth"),
        "IMAGENET1K_V2": Source(f"{TORCHVISION}/mobilenet_v3_large-5c1a4163.pth"),
    },
    "mobilenet_v2": {"IMAGENET1K_V1": Source(f"{TORCHVISION}/mobilenet_v2-b0353104.pth")},
    "vgg16": {"IMAGENET1K_V1": Source(f"{TORCHVISION}/vgg16-397923af.pth")},
    "lpips_vgg": {"v0.1": Source(f"{LPIPS_RAW}/vgg.pth", LPIPS_VGG_SHA256)},
}


def download_dir() -> Path:
    """Cache of downloaded PyTorch checkpoints: ``weights_dir()/torch``."""
    return weights_dir() / "torch"


def source_for(arch: str, variant: str | None = None) -> Source:
    """The official checkpoint of ``arch`` (``variant`` defaults to the first listed)."""
    variants = SOURCES.get(arch)
    if not variants:
        raise WeightsError(f"no download known for architecture {arch!r}")
    if variant is None:
        return next(iter(variants.values()))
    if variant not in variants:
        raise WeightsError(f"{arch} has no variant {variant!r} (known: {', '.join(variants)})")
    return variants[variant]


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def download_checkpoint(arch: str, variant: str | None = None, cache: Path | None = None) -> Path:
    """Download ``arch``'s official checkpoint once into ``cache``; return its path.

    The file is streamed to a temporary name, its sha256 checked against the expected
    (prefix) hash, then renamed. A cached file is re-verified. Raises a one-line
    ``WeightsError`` when offline, on an HTTP error, or on a hash mismatch.
    """
    source = source_for(arch, variant)
    dest = (cache or download_dir()) / source.filename
    if dest.is_file():
        _verify(dest, source)
        return dest
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise WeightsError(
            f"cannot make the download folder ({exc.strerror})", dest.parent
        ) from None
    try:
        # streamed to ``.<name>.<random>.tmp.part``, renamed only once the hash matches
        with atomic_write(dest, suffix=".part", parents=True) as tmp:
            with open(tmp, "wb") as out, urllib.request.urlopen(source.url, timeout=60) as resp:
                for block in iter(lambda: resp.read(1 << 20), b""):
                    out.write(block)
            _verify(tmp, source, shown=dest)
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:  # a cut body
        reason = getattr(exc, "reason", None) or exc
        raise WeightsError(
            f"cannot download {source.url} ({reason}); fetch it on a connected machine "
            f"and run `mlx-hdr convert {arch} FILE`",
            dest,
        ) from None
    return dest


def _verify(path: Path, source: Source, shown: Path | None = None) -> None:
    expected = source.expected_hash
    if expected and not sha256_file(path).startswith(expected):
        raise WeightsError(
            f"sha256 does not start with {expected} (corrupt download?)", shown or path
        )
