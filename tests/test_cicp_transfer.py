"""CICP transfer characteristics of HEIC and AVIF photos tagged without an ICC profile
(mlx_hdr/io/heic.py: ``nclx_curve``, ``nclx_to_srgb``): each curve read as browsers read it
(Chromium's ``SkNamedTransferFnExt``), the photo's light re-encoded by the sRGB curve."""

from __future__ import annotations

import warnings

import imagecodecs
import numpy as np
import pytest
from PIL import Image
from test_heic import P3_NCLX, p3_by_lcms, photo, save_heic

from mlx_hdr.color import linear_to_srgb
from mlx_hdr.io.heic import CicpColours, bt709_to_linear, smpte240_to_linear
from mlx_hdr.io.image_io import read_ldr
from mlx_hdr.io.own_colours import display_p3_icc, own_photo

SRGB_NCLX = dict(P3_NCLX, color_primaries=1)


def bt709_oetf(light: np.ndarray) -> np.ndarray:
    """BT.709-6's camera curve, as the standard writes it."""
    return np.where(light < 0.018, 4.5 * light, 1.099 * light**0.45 - 0.099)


def skcms(v: np.ndarray, g: float, a: float, b: float, c: float, d: float) -> np.ndarray:
    """skcms' parametric curve: (a*v + b)**g from ``d`` up, c*v below."""
    return np.where(v >= d, (a * v + b) ** g, c * v)


def test_the_curves_match_the_standards_and_chromium():
    light = np.linspace(0.0, 1.0, 10001)
    # the standard's rounded constants (1.099, 0.018) against BT.2020's exact ones
    assert np.abs(bt709_to_linear(bt709_oetf(light)) - light).max() < 4e-4
    v = np.linspace(0.0, 1.0, 10001)
    rec709 = skcms(v, 2.222222222222, 0.909672415686, 0.090327584314, 0.222222222222, 0.0812429)
    st240 = skcms(v, 2.222222222222, 0.899626676224, 0.100373323776, 0.25, 0.091286342118)
    assert np.abs(bt709_to_linear(v) - rec709).max() < 1e-5
    assert np.abs(smpte240_to_linear(v) - st240).max() < 1e-5


@pytest.mark.parametrize(
    "transfer,curve",
    [(8, lambda v: v), (1, bt709_to_linear), (14, bt709_to_linear), (4, lambda v: v**2.2)],
)
def test_a_heic_tagged_by_its_transfer_reads_as_its_light(tmp_path, transfer, curve):
    rgb = photo()
    nclx = dict(SRGB_NCLX, transfer_characteristics=transfer)
    save_heic(tmp_path / "t.heic", rgb, nclx_profile=nclx)
    out, want = read_ldr(tmp_path / "t.heic"), linear_to_srgb(curve(rgb / 255.0))
    assert np.abs(out - want).max() < 1e-5
    assert np.abs(out - rgb / 255.0).max() > 0.02  # not read with the sRGB curve
    assert own_photo(tmp_path / "t.heic") is None  # sRGB primaries: read_ldr's values serve


def test_an_avif_tagged_linear_reads_as_its_light(tmp_path):
    rgb = photo()
    data = imagecodecs.avif_encode(rgb, 100, primaries=1, transfer=8, matrix=0)
    (tmp_path / "t.avif").write_bytes(data)
    out = read_ldr(tmp_path / "t.avif")
    stored = np.asarray(Image.open(tmp_path / "t.avif"), np.float32) / 255.0  # lossless
    np.testing.assert_allclose(out, linear_to_srgb(stored), atol=1e-5)
    assert np.abs(stored - rgb / 255.0).max() <= 1 / 255


def test_p3_with_the_bt709_curve_is_converted_by_both(tmp_path):
    """Display P3 primaries with the BT.709 curve: read as Little CMS converts a P3 profile
    with that curve; not taken for a Display P3 photo (whose curve is sRGB's)."""
    rgb = photo()
    save_heic(tmp_path / "p.heic", rgb, nclx_profile=dict(P3_NCLX, transfer_characteristics=1))
    out, ref = read_ldr(tmp_path / "p.heic"), p3_by_lcms(rgb, bt709_to_linear)
    inside = ref.max(-1) < 0.94  # colours well inside sRGB: no gamut fitting
    assert inside.mean() > 0.5 and np.abs(out - ref)[inside].max() <= 2 / 255
    assert display_p3_icc(tmp_path / "p.heic") is None
    own = own_photo(tmp_path / "p.heic")
    assert isinstance(own.source, CicpColours) and own.source.curve is bt709_to_linear


def test_an_unknown_transfer_is_read_as_srgb_and_said(tmp_path):
    rgb = photo()
    save_heic(tmp_path / "u.heic", rgb, nclx_profile=dict(SRGB_NCLX, transfer_characteristics=17))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = read_ldr(tmp_path / "u.heic")
    np.testing.assert_array_equal(out, rgb / np.float32(255.0))
    assert [str(w.message) for w in caught] == [
        f"{tmp_path / 'u.heic'}: CICP transfer 17 is read with the sRGB curve"
    ]
