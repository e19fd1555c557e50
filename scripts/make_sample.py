"""Make the bundled sample photo from a CC0 Poly Haven panorama of the training pool.

A perspective view facing the brightest region (the sun), photographed by the camera
simulator with an sRGB response so that ~6% of the pixels clip. Usage:

    python scripts/make_sample.py ../shared/data/hdr-pool/ph_blouberg_sunrise_2.hdr \
        -o mlx_hdr/assets/sample.jpg
"""

from __future__ import annotations

import argparse

import numpy as np

from mlx_hdr.color import linear_to_srgb, rgb_to_luminance
from mlx_hdr.data.panorama import equirect_to_perspective
from mlx_hdr.data.simulate import exposure_for_clip_fraction
from mlx_hdr.io.atomic import atomic_write
from mlx_hdr.io.image_io import read_hdr


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("panorama")
    ap.add_argument("-o", "--out", required=True)
    ap.add_argument("--clip", type=float, default=0.06)
    ap.add_argument("--yaw-offset", type=float, default=-20.0)
    ap.add_argument("--pitch", type=float, default=12.0)
    args = ap.parse_args()

    pano = read_hdr(args.panorama)
    y = rgb_to_luminance(pano)
    _, col = np.unravel_index(np.argmax(y), y.shape)
    yaw = (col + 0.5) / pano.shape[1] * 360.0 - 180.0 + args.yaw_offset
    view = equirect_to_perspective(pano, yaw, args.pitch, 75.0, (352, 512))
    scaled = view * exposure_for_clip_fraction(view, args.clip)
    u8 = (linear_to_srgb(scaled) * 255.0 + 0.5).astype(np.uint8)

    from PIL import Image

    with atomic_write(args.out) as tmp:
        Image.fromarray(u8).save(tmp, format="JPEG", quality=92)
    print(f"wrote {args.out}: yaw {yaw:.1f}, clipped {(scaled.max(-1) >= 1).mean():.3f}")


if __name__ == "__main__":
    main()
