"""The camera curve read from the network's output (``infer.response``) and where it is used."""

from __future__ import annotations

import numpy as np
import pytest

from mlx_hdr.color import srgb_to_linear, well_exposed_mask
from mlx_hdr.infer.calibrate import calibrate
from mlx_hdr.infer.pipeline import apply_gain_map
from mlx_hdr.infer.response import (
    FADE,
    GRID,
    MIN_SHARE,
    SHOULDER_KNEE,
    SHOULDER_STOPS,
    SHOULDER_TOP,
    fit_response,
    response_table,
    response_to_linear,
    shoulder_table,
)
from mlx_hdr.infer.targets import STOPS_FLOOR, hdr_to_stops

GRID_V = np.linspace(0.0, 1.0, GRID)


@pytest.fixture
def photo():
    """A 96x128 display image: a smooth ramp over every level, noise, a clipped corner."""
    rng = np.random.default_rng(3)
    ramp = np.linspace(0.0, 1.0, 128, dtype=np.float32)[None, :, None]
    img = np.broadcast_to(ramp, (96, 128, 3)) + rng.normal(0, 0.05, (96, 128, 3))
    img = np.clip(img, 0.0, 1.0).astype(np.float32)
    img[:16, :16] = 1.0
    return img


def _log_curve_error(lin: np.ndarray, want: np.ndarray, ldr: np.ndarray, band) -> float:
    """Spread (std) of log2(lin / want) over the values of ``ldr`` inside ``band``: 0 when
    the two curves differ by one factor there."""
    ok = (ldr >= band[0]) & (ldr <= band[1])
    d = np.log2((lin[ok] + STOPS_FLOOR) / (want[ok] + STOPS_FLOOR))
    return float(d.std())


def test_srgb_prediction_gives_the_srgb_curve(photo):
    table = fit_response(photo, srgb_to_linear(photo))
    assert table is not None and np.abs(table).max() < 1e-6
    np.testing.assert_allclose(response_to_linear(photo, table), srgb_to_linear(photo), atol=1e-6)


def test_recovers_a_camera_curve(photo):
    """A network output that linearises with gamma 2.6 instead of sRGB: the table follows it
    below the fade, to within 0.03 stops (sRGB itself is off by 0.1 stops rms there), and
    from the top of the fade up it is one factor (the sRGB curve, shifted)."""
    want = photo**2.6
    table = fit_response(photo, want)
    band = (0.05, FADE[0] - 0.05)
    assert _log_curve_error(srgb_to_linear(photo), want, photo, band) > 0.1
    assert _log_curve_error(response_to_linear(photo, table), want, photo, band) < 0.03
    assert np.ptp(table[GRID_V >= FADE[1]]) < 1e-6


def test_table_is_monotone_and_level(photo):
    """Even for a prediction that falls as the photo brightens, the linearisation never
    decreases with the display level, and it leaves the mean log level of the well-exposed
    pixels as sRGB had it."""
    table = fit_response(photo, srgb_to_linear(1.0 - photo))
    assert np.diff(response_to_linear(GRID_V, table)).min() > -1e-6  # flat parts: rounding
    well = well_exposed_mask(photo)
    lin = (response_to_linear(photo, table)[well], srgb_to_linear(photo)[well])
    assert abs(np.log2((lin[0] + STOPS_FLOOR) / (lin[1] + STOPS_FLOOR)).mean()) < 1e-4


def test_too_few_levels_keep_srgb():
    flat = np.full((32, 32, 3), 0.5, np.float32)
    assert fit_response(flat, srgb_to_linear(flat) * 2.0) is None
    np.testing.assert_array_equal(response_to_linear(flat, None), srgb_to_linear(flat))


def test_nearly_black_photo_keeps_srgb():
    """Below ``MIN_SHARE`` of its values in the band (a photo at a few codes above black
    with a lit window) there is no fit; at the share the fit returns."""
    dark = np.full((100, 100, 3), 1 / 255, np.float32)  # codes 1: below the band
    k = int(np.ceil(MIN_SHARE * 100))
    dark[:k] = np.linspace(0.1, 0.9, 100, dtype=np.float32)[None, :, None]  # in the band
    pred = dark**2.6
    assert fit_response(dark, pred) is not None
    dark[k - 1] = 1 / 255
    assert fit_response(dark, pred) is None


def test_calibrate_keeps_pixels_through_the_model_curve(photo):
    """With ``response="model"`` the blend keeps unclipped pixels as the curve read from
    the prediction linearises them; with ``"srgb"`` as sRGB does."""
    pred = photo**2.6
    target = hdr_to_stops(pred, photo)
    dark = photo.max(axis=-1) < 0.9
    hdr = calibrate(photo, target, kind="stops", response="model")
    decoded = calibrate(photo, target, kind="stops", blend=False)
    want = response_to_linear(photo, fit_response(photo, decoded))
    np.testing.assert_allclose(hdr[dark], want[dark], rtol=1e-5, atol=1e-6)
    hdr = calibrate(photo, target, kind="stops", response="srgb")
    np.testing.assert_allclose(hdr[dark], srgb_to_linear(photo)[dark], rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="response"):
        calibrate(photo, target, kind="stops", response="film")


def test_gain_map_linearises_with_the_table(photo):
    """A small reconstruction equal to the small photo through the table carries a gain of
    1: the full-size result is the full-size photo through the same table."""
    table = fit_response(photo, photo**2.6)
    small = photo[::2, ::2]
    out = apply_gain_map(photo, small, response_to_linear(small, table), response=table)
    np.testing.assert_allclose(out, response_to_linear(photo, table), rtol=1e-4, atol=1e-5)


def test_large_photo_fit_reads_every_channel():
    """Above ``MAX_VALUES`` the fit reads a stride of pixels, all three channels of each: a
    prediction one stop up in red alone (a third of the values) moves no bin's median."""
    rng = np.random.default_rng(1)
    photo = rng.uniform(0.0, 1.0, (512, 512, 3)).astype(np.float32)  # stride 3 over values
    pred = srgb_to_linear(photo)
    pred[..., 0] *= 2.0
    table = fit_response(photo, pred)
    assert np.ptp(table) < 0.05


def test_response_table_names_the_curve(photo):
    """``response_table``, used by both the one-pass blend and the gain map: the fitted
    table for ``"model"``, that plus the camera roll-off for ``"camera"`` (the roll-off
    alone where nothing is fitted), None (sRGB) for ``"srgb"``, an error for anything
    else."""
    pred = photo**2.6
    np.testing.assert_array_equal(response_table("model", photo, pred), fit_response(photo, pred))
    camera = response_table("camera", photo, pred)
    np.testing.assert_allclose(camera, fit_response(photo, pred) + shoulder_table(), atol=1e-7)
    flat = np.full((32, 32, 3), 0.5, np.float32)
    np.testing.assert_array_equal(response_table("camera", flat, flat), shoulder_table())
    assert response_table("srgb", photo, pred) is None
    with pytest.raises(ValueError, match="response"):
        response_table("film", photo, pred)


def test_shoulder_table_shape():
    """The camera roll-off: 0 up to the knee, rising as the square of the distance above it,
    held from ``SHOULDER_TOP`` to white."""
    table = shoulder_table()
    assert table.shape == (GRID,) and table.dtype == np.float32
    assert np.abs(table[GRID_V <= SHOULDER_KNEE]).max() == 0.0
    assert np.diff(table).min() >= 0.0
    top = SHOULDER_STOPS * ((SHOULDER_TOP - SHOULDER_KNEE) / (1.0 - SHOULDER_KNEE)) ** 2
    np.testing.assert_allclose(table[GRID_V >= SHOULDER_TOP], top, rtol=1e-6)
    v = 0.9
    want = SHOULDER_STOPS * ((v - SHOULDER_KNEE) / (1.0 - SHOULDER_KNEE)) ** 2
    np.testing.assert_allclose(np.interp(v, GRID_V, table), want, atol=1e-3)


def test_camera_response_lifts_kept_near_white_channels(photo):
    """With ``response="camera"`` (the default) the blend keeps a channel recorded near
    white brighter than ``"model"`` does, by the roll-off's stops, and dark ones as
    ``"model"`` keeps them."""
    pred = photo**2.6
    target = hdr_to_stops(pred, photo)
    cam = calibrate(photo, target, kind="stops", response="camera")
    mod = calibrate(photo, target, kind="stops", response="model")
    dark = photo.max(axis=-1) < SHOULDER_KNEE - 0.01
    np.testing.assert_allclose(cam[dark], mod[dark], rtol=1e-5, atol=1e-6)
    near = (photo > 0.9) & (photo < 0.94) & (photo.max(axis=-1, keepdims=True) < 0.94)
    lift = np.log2((cam[near] + STOPS_FLOOR) / (mod[near] + STOPS_FLOOR))
    want = np.interp(photo[near], np.linspace(0.0, 1.0, GRID), shoulder_table())
    np.testing.assert_allclose(lift, want, atol=5e-4)  # gains read linearly, in 16-bit steps
    assert want.min() > 0.1


def test_a_16_bit_gradient_keeps_its_steps_through_the_camera_table():
    """The table is read between its 256 levels: near white the camera roll-off's moves
    0.034 stops from one level to the next, which a 16-bit ramp had shown as steps."""
    ramp = np.linspace(0.80, 0.95, 4000, dtype=np.float32)[:, None, None].repeat(3, -1)
    lin = response_to_linear(ramp, shoulder_table())[:, 0, 0]
    assert np.abs(np.diff(np.log2(lin))).max() < 0.002  # stops; read at the nearest: 0.034
    levels = np.arange(256, dtype=np.float32) / 255  # 8-bit photos: the table's own values
    want = (srgb_to_linear(levels) + STOPS_FLOOR) * np.exp2(shoulder_table()) - STOPS_FLOOR
    np.testing.assert_allclose(response_to_linear(levels, shoulder_table()), want, rtol=1e-5)
    odd = np.float32([np.nan, -0.5, 1.0])  # NaN had been an IndexError; the table ends hold
    np.testing.assert_allclose(response_to_linear(odd, shoulder_table())[1:], want[[0, 255]])
    assert response_to_linear(levels, shoulder_table()).dtype == np.float32
