"""Write a copy of ``tests/fixtures/iphone13pro_pug.heic`` with its MakerNote entry 29 renamed
48 (the fixture is left as it is): the third photo of the model card's "Real phone photos"
(``phone_renditions.py``).

The photo has no tag 48, so Apple's headroom formula gives it no headroom; with the rename,
the headroom is the formula's for that tag's value (3.03), as ``tests/test_apple_gain.py``
builds it::

    python scripts/pug_tag48.py pug48.heic
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

PUG = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "iphone13pro_pug.heic"
TAG_29 = b"\x00\x1d\x00\x0a\x00\x00\x00\x01"  # MakerNote entry: tag 29, signed rational, 1
TAG_48 = b"\x00\x30" + TAG_29[2:]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", type=Path, help="the HEIC to write")
    out = ap.parse_args().out
    data = PUG.read_bytes()
    if data.count(TAG_29) != 1:
        sys.exit(f"error: {PUG}: its MakerNote entry 29 is not where it was")
    from mlx_hdr.io.atomic import atomic_write

    with atomic_write(out) as tmp:
        tmp.write_bytes(data.replace(TAG_29, TAG_48))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
