"""A real indoor exposure bracket for ``validate_model.py --brackets``: GEGL's test bracket
of a parliament chamber under a skylight (Nikon D40, f/8, ISO 800, 3 camera JPEGs at 0.4,
1/13 and 1/50 s, reduced to 144 x 220 px and stored as PNG with their EXIF; LGPL-3+), from
Debian's source archive of GEGL.

The frames are merged as ``mlx-hdr data brackets`` merges your own
(``mlx_hdr.data.brackets.write_bracket_set``: Debevec's response from the three frames, the
frames' EXIF exposure times); the 1/50 s frame clips almost nothing (0.01%), so the
skylight's level in the 1/13 s frame is measured. GEGL ships its own merge
(``parliament.hdr``), which does not agree with the frames' exposure times: pixels that
recorded the same code in different frames, scaled by the times, differ there by 2.2 stops
on average (in ours by 0.07), so it is not used.

    python scripts/fetch_gegl_brackets.py -o runs/brackets/gegl_parliament
    python scripts/validate_model.py --brackets runs/brackets/gegl_parliament -n 0 ...

Small and strongly tone-curved: one frame is scored (the 0.4 s frame clips three quarters
of the picture, above what the script scores).
"""

from __future__ import annotations

import json
import sys
import tarfile
import tempfile
from pathlib import Path

# ruff: noqa: E402  (imports after backend.setup(): OpenCV's Debevec fit follows the BLAS
# loaded, so the set is merged as `mlx-hdr data brackets`, which loads OpenBLAS, merges it)
from mlx_hdr import backend

backend.setup()
# isort: split
from mlx_hdr.data.brackets import write_bracket_set
from mlx_hdr.data.datasets import BRACKETS
from mlx_hdr.errors import HDRError

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fetch_hdrmerge_brackets import fetch_and_build  # noqa: E402

URL = "https://deb.debian.org/debian/pool/main/g/gegl/gegl_0.4.42.orig.tar.xz"
SHA256 = "aba83a0cbaa6c56edc29ea22f2e8172950a53b96daa51592083d59222bdde02d"
FRAMES = ("parliament_0.png", "parliament_1.png", "parliament_2.png")
FOLDER = "/tests/compositions/data/"
LICENSE = "LGPL-3+ (GEGL, Debian source package gegl 0.4.42, tests/compositions/data/)"


def extract_frames(archive: Path, dest: Path) -> list[Path]:
    """The ``FRAMES`` of the GEGL source archive, written into ``dest``."""
    out = []
    with tarfile.open(archive) as tar:
        for m in tar:
            name = m.name.rsplit("/", 1)[-1]
            if m.isfile() and FOLDER in m.name and name in FRAMES:
                (dest / name).write_bytes(tar.extractfile(m).read())
                out.append(dest / name)
    if len(out) != len(FRAMES):
        raise SystemExit(f"{archive}: missing {sorted(set(FRAMES) - {p.name for p in out})}")
    return sorted(out)


def build(out: Path, archive: Path) -> dict:
    """Merge the frames into the bracket set ``out``; returns its ``exposures.json``."""
    with tempfile.TemporaryDirectory() as tmp:
        meta = write_bracket_set(extract_frames(archive, Path(tmp)), out)
    meta |= {"license": LICENSE, "source": URL, "sha256": SHA256}
    meta["note"] = "Nikon D40, f/8, ISO 800, tripod; camera JPEGs reduced to 144 x 220 px"
    (out / BRACKETS).write_text(json.dumps(meta, indent=1) + "\n")
    return meta


def main() -> None:
    meta = fetch_and_build(__doc__, URL, SHA256, build)
    for f in meta["frames"]:
        print(f"{f['file']}: {f['exposure_time_s']:.4g} s, clipped {f['clipped']:.1%}")


if __name__ == "__main__":
    try:
        main()
    except (HDRError, OSError) as exc:  # no network, a missing archive, an existing set
        sys.exit(f"error: {exc}")
