"""mlx-hdr's reading of an iPhone HEIC's HDR gain map against the reference implementation,
``apple-hdr-heic`` (MIT; Apple's published method; headroom from exiftool's MakerNote reading):

    pip install apple-hdr-heic          # and exiftool on the PATH
    python scripts/apple_gain_check.py photo.heic ...

For each file it prints the headroom both read, the largest difference between the two gain
factors (``hdr / sdr``: mlx-hdr's over the photo as ``read_ldr`` returns it, the reference's
over its Display P3 photo), and the median and 99th percentile of the relative luminance
difference between the two HDR renditions (mlx-hdr's in linear sRGB, the reference's Display P3
converted to it). The factor must agree to float precision; the renditions differ by the
Display P3 to sRGB conversion (ICC in 16 bit here, a 3x3 matrix there) and its gamut clip.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mlx_hdr.color import rgb_to_luminance, srgb_to_linear  # noqa: E402
from mlx_hdr.infer.recorded import recorded_hdr  # noqa: E402
from mlx_hdr.io.apple_gain import apple_gain, headroom_of  # noqa: E402
from mlx_hdr.io.image_io import read_ldr  # noqa: E402
from mlx_hdr.io.uhdr_input import recorded_gain  # noqa: E402

P3_Y = np.float32([0.2289746, 0.6917385, 0.0792869])  # Display P3 (D65) luminance weights


def reference(path: Path) -> tuple[float, np.ndarray, np.ndarray]:
    """apple-hdr-heic's headroom, gain factor (HxW) and HDR luminance (HxW)."""
    os.environ.setdefault("COLOUR_SCIENCE__FILTER_USAGE_WARNINGS", "True")
    from apple_hdr_heic import lib
    from apple_hdr_heic.metadata import AppleHDRMetadata

    headroom = AppleHDRMetadata.from_file(path).compute_headroom()
    hdr = lib.load_as_displayp3_linear(path)
    sdr, _ = lib.load_primary_and_aux(path, "urn:com:apple:photo:2020:aux:hdrgainmap")
    sdr_y = srgb_to_linear(sdr[..., :3]) @ P3_Y
    hdr_y = hdr @ P3_Y
    factor = np.where(sdr_y > 1e-3, hdr_y / np.maximum(sdr_y, 1e-6), np.nan)
    return headroom, factor, hdr_y


def check(path: Path) -> str:
    ref_headroom, ref_factor, ref_y = reference(path)
    ours = apple_gain(path)
    ours_y = rgb_to_luminance(recorded_hdr(read_ldr(path), recorded_gain(path)))
    factor_diff = float(np.nanmax(np.abs(ours - ref_factor)))
    lit = ref_y > 0.01
    rel = np.abs(ours_y[lit] / ref_y[lit] - 1.0)
    return (
        f"| {path.name} | {headroom_of(path):.6f} | {ref_headroom:.6f} | {factor_diff:.2e} | "
        f"{np.median(rel):.4f} | {np.percentile(rel, 99):.4f} |"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("files", nargs="+", type=Path, help="iPhone HEIC files with a gain map")
    args = ap.parse_args()
    try:
        import apple_hdr_heic  # noqa: F401
    except ImportError:
        sys.exit("error: the reference needs apple-hdr-heic: pip install apple-hdr-heic")
    print("| file | headroom | reference | factor max diff | rel. Y median | rel. Y p99 |")
    print("|---|---|---|---|---|---|")
    for path in args.files:
        print(check(path))


if __name__ == "__main__":
    main()
