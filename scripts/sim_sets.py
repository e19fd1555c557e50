"""Simulated validation sets for the validation scripts: photos of the held-out pool images
through the camera simulator (``train.pool.heldout_views``), clean sRGB renderings of them,
and simulated exposure brackets of held-out scenes (``train.pool.heldout_brackets``), each
as (ldr, hdr) cases, optionally with a simulated EXIF exposure (``bracket_sets.Case``)."""

from __future__ import annotations

from bracket_sets import simulated_case, usable

from mlx_hdr.data.simulate import CURVES, TABLE, SimConfig
from mlx_hdr.train.pool import heldout_brackets, heldout_views

POOL_VIEWS = 64  # on 24, PU21 moved 0.55 dB in 100 steps of lr 1e-4 (phase 10)
BRACKET_EVS = (-3.0, -2.0, -1.0, 0.0, 1.0)  # --sim-brackets: metered exposure offsets, stops


def pool_cases(
    folders: list[str],
    n: int = POOL_VIEWS,
    size: int = 384,
    metering: float = 0.5,
    curves: tuple[str, ...] = CURVES,
    exif: bool = False,
):
    """(ldr, hdr) for ``n`` simulated ``size``-px photos of the pools' held-out images, a
    ``metering`` share of them metered, through the response ``curves``
    (``train.pool.heldout_views``); ``exif``: each with its simulated exposure."""
    sim = SimConfig(metering_prob=metering, curves=curves)
    views = heldout_views(folders, n, size, sim=sim, exif=exif)
    return [simulated_case(*v) for v in views] if exif else views


def render_cases(folders: list[str], n: int, size: int = 384, metering: float = 0.5):
    """Like :func:`pool_cases`, but clean sRGB renderings (eval-public's recipe: exposure,
    clip, the sRGB curve, JPEG quality 90; no noise, roll-off or per-channel clipping): the
    inputs a rendered or exported image gives, where the sRGB curve is exact."""
    sim = SimConfig(
        metering_prob=metering,
        curves=("srgb",),
        noise_prob=0.0,
        shoulder_prob=0.0,
        channel_clip_prob=0.0,
        jpeg_quality=(90, 90),
    )
    return heldout_views(folders, n, size, sim=sim)


def sim_bracket_cases(
    folders: list[str], n: int, size: int = 384, response: str | None = None, exif=False
):
    """(cases, scenes): the frames of :func:`~mlx_hdr.train.pool.heldout_brackets` (``n``
    held-out scenes at ``BRACKET_EVS``) with 1-30% clipped pixels, as (ldr, hdr), and each
    frame's scene index. ``response``: a measured camera response file
    (:mod:`~mlx_hdr.data.camera_response`) every frame goes through instead of the
    simulator's curves, with no further highlight shoulder (the response has its own).
    ``exif``: each frame with its simulated exposure."""
    sim = None
    if response:
        sim = SimConfig(curves=(TABLE,), response_files=(response,), shoulder_prob=0.0)
    frames = heldout_brackets(folders, n, BRACKET_EVS, size, sim=sim, exif=exif)
    kept = [f for f in frames if usable(f[0])]
    cases = [simulated_case(f[0], f[1], f[3]) if exif else f[:2] for f in kept]
    return cases, [f[2] for f in kept]
