"""A camera simulator: scene-linear HDR -> a plausible 8-bit JPEG photo of it.

Used to train on HDR-only collections (as SingleHDR, Liu et al. 2020, does). The chain is
exposure -> a highlight boost (optional) -> lens glare (optional) -> sensor noise
(Poisson-Gaussian, linear) -> per-channel clipping (a sensor's channels saturate at
different levels once white balance is applied) -> a highlight shoulder (the tone curve
reaches white above the linear clip point, as camera JPEG engines do) -> camera response
curve (parametric, or a camera's measured response: ``camera_response``) -> 8-bit
quantisation -> JPEG. The HDR target is then put on the scale the
linearised photo has (one global factor over its well-exposed pixels, the alignment the
evaluation uses), so 1.0 is the input's white as inference defines it.
Everything is drawn from a ``np.random.Generator``, so a seed reproduces a sample exactly.
"""

from __future__ import annotations

import io
from dataclasses import asdict, dataclass

import cv2
import numpy as np
from PIL import Image

from mlx_hdr.color import (
    highlight_rolloff,
    input_white_scale,
    linear_to_srgb,
    rgb_to_luminance,
    srgb_to_linear,
)
from mlx_hdr.data.camera_response import load_response, table_curve
from mlx_hdr.data.sim_checks import check_sim_config

CURVES = ("srgb", "gamma", "eilertsen2017")
TABLE = "table"  # a measured camera response from SimConfig.response_files
CAMERA = "camera"  # sRGB with a camera JPEG's highlight roll-off (camera_curve)
MIDDLE_GREY = 0.18


@dataclass
class SimConfig:
    """Ranges the simulator samples from (uniformly unless stated)."""

    clip_fraction: tuple[float, float] = (0.01, 0.25)  # pixels with max(RGB) >= 1 after exposure
    curves: tuple[str, ...] = CURVES  # response curves, chosen uniformly; TABLE: one of ...
    response_files: tuple[str, ...] = ()  # ... these measured responses (camera_response)
    gamma: tuple[float, float] = (1.8, 2.6)  # "gamma": display = linear ** (1 / gamma)
    camera_rolloff: tuple[float, float] = (0.5, 1.5)  # CAMERA: stops at white over sRGB ...
    camera_knee: tuple[float, float] = (0.8, 0.9)  # ... rising as a square from this display level
    full_well: tuple[float, float] = (300.0, 20000.0)  # electrons at clipping, log-uniform
    read_noise: tuple[float, float] = (0.0, 0.004)  # Gaussian std, fraction of clipping level
    noise_prob: float = 0.8  # probability of adding sensor noise at all
    jpeg_quality: tuple[int, int] = (70, 100)  # inclusive; None disables JPEG
    jpeg_prob: float = 1.0
    channel_clip: tuple[float, float] = (0.85, 1.0)  # clip level of the two lower channels
    channel_clip_prob: float = 0.5
    shoulder_white: tuple[float, float] = (1.0, 4.0)  # extended-Reinhard white, log-uniform
    shoulder_prob: float = 0.5
    align_target: bool = True  # target on the linearised photo's scale (see module doc)
    metering_prob: float = 0.0  # probability of a metered exposure instead of a clip fraction
    metering_ev: tuple[float, float] = (-1.0, 1.5)  # offset from the metered exposure, stops
    metered_clip: tuple[float, float] = (0.005, 0.5)  # outside this clipped share: not used
    bracket_prob: float = 0.0  # else, probability of an exposure log-uniform over those that
    # clip a share within clip_fraction, as a bracket's frames are (bracket_exposure)
    boost_prob: float = 0.0  # probability of brightening the scene's highlights (boost_highlights)
    boost_power: tuple[float, float] = (1.0, 1.5)  # log-contrast exponent above the knee
    boost_knee: tuple[float, float] = (0.5, 1.0)  # knee, in units of the exposed clip point
    # (a pair's first photo's: the boost is the scene's)
    boost_cap: float = 1024.0  # boosted luminance stays below this (clip point 1), or its own
    glare_prob: float = 0.0  # probability of lens glare (add_glare)
    glare_amount: tuple[float, float] = (0.003, 0.03)  # scattered share of the light, log-uniform
    glare_sigma: tuple[float, float] = (0.02, 0.15)  # glare blur, fraction of the view's side
    glare_scales: int = 1  # Gaussians of sigma / 3^k sharing the glare: a lens's heavy tail
    window_prob: float = 0.0  # probability of a bright window composited in (data.composite)
    window_stops: tuple[float, float] = (2.0, 6.0)  # its log-average over the room's, stops
    window_size: tuple[float, float] = (0.2, 0.6)  # its share of the view's width
    window_frame_prob: float = 0.0  # probability of a window's frame lit by the daylight ...
    window_frame_stops: tuple[float, float] = (1.0, 2.5)  # ... this far above the room's average
    window_room_range: float = 3.0  # only into views whose 98th-percentile Y is <= this many
    # stops above their log-average (no sky or lamp already in view)
    lights_prob: float = 0.0  # probability of brightening the scene's lights (brighten_lights)
    lights_stops: tuple[float, float] = (0.5, 2.5)  # by this many stops, ...
    lights_knee: tuple[float, float] = (3.0, 5.0)  # ... above this many stops over the log average
    gain_floor: float = 0.0  # stops; views whose clipped pixels lie less far above white ...
    gain_floor_prob: float = 0.0  # ... are redrawn with this probability (clipped_gain)
    exif_prob: float = 0.0  # probability a pool photo carries its white in cd/m² (EXIF) ...
    scene_luminance: tuple[float, float] = (3000.0, 10000.0)  # ... its pool image's sky, windows
    scene_quantile: float = 0.998  # and lamps (this luminance quantile) at these cd/m², log-uniform

    def __post_init__(self):
        check_sim_config(self)
        unknown = sorted(set(self.curves) - {*CURVES, TABLE, CAMERA})
        if unknown or not self.curves:
            known = ", ".join((*CURVES, TABLE, CAMERA))
            raise ValueError(f"unknown camera curves {unknown or '(none)'} (choose from {known})")
        if TABLE in self.curves and not self.response_files:
            raise ValueError(f"the {TABLE!r} curve needs response_files")
        for path in self.response_files:
            load_response(str(path))  # a bad file fails here, not mid-run


@dataclass
class SimRecord:
    """The parameters one simulated photo was made with."""

    exposure: float  # the HDR was multiplied by this before clipping at shoulder_white
    curve: str
    curve_params: tuple[float, ...]
    full_well: float | None  # None: no noise
    read_noise: float
    jpeg_quality: int | None
    clipped_fraction: float  # measured: fraction of pixels with max(RGB) * exposure >= 1
    clip_levels: tuple[float, float, float] = (1.0, 1.0, 1.0)  # per-channel clip, linear
    shoulder_white: float = 1.0  # 1.0: no shoulder
    target_scale: float = 1.0  # the HDR target is hdr * exposure * target_scale
    boost: tuple[float, float] = (1.0, 1.0)  # (power, knee) of boost_highlights; power 1: none
    glare: tuple[float, float] = (0.0, 0.0)  # (amount, sigma in px) of add_glare; 0: none
    lights: tuple[float, float] = (0.0, 0.0)  # (stops, knee) of brighten_lights; 0 stops: none

    def to_dict(self) -> dict:
        """The fields as a plain dict (``dataclasses.asdict``)."""
        return asdict(self)


def exposure_for_clip_fraction(hdr: np.ndarray, fraction: float) -> float:
    """Scale s so that about ``fraction`` of the pixels have max(R, G, B) * s >= 1.

    s = 1 / quantile(max(RGB), 1 - fraction). Like the eval-public recipe, an image whose
    median luminance would land above 0.9 (low dynamic range) uses 1 / P97 instead, and an
    all-black image gets s = 1.
    """
    m = np.asarray(hdr, np.float32).max(axis=-1)
    q = float(np.quantile(m, 1.0 - fraction))
    if q <= 0:
        q = float(m.max())
    if q <= 0:
        return 1.0
    s = 1.0 / q
    if float(np.median(rgb_to_luminance(hdr))) * s > 0.9:
        s = 1.0 / max(float(np.quantile(m, 0.97)), 1e-12)
    return s


def metered_exposure(hdr: np.ndarray, ev: float = 0.0) -> float:
    """Scale s that puts the log-average luminance at middle grey (0.18) times 2**ev, as a
    camera's average metering does: how bright the clipped regions are then follows from
    the scene, not from a chosen clipped share."""
    y = rgb_to_luminance(np.maximum(np.asarray(hdr, np.float32), 0.0))
    log_avg = float(np.exp(np.mean(np.log(y + 1e-6))))
    return MIDDLE_GREY * 2.0**ev / max(log_avg, 1e-12)


def bracket_exposure(hdr: np.ndarray, clip: tuple[float, float], u: float) -> float:
    """The exposure a fraction ``u`` in [0, 1] of the way, in stops, from the one that clips
    ``clip[0]`` of the pixels to the one that clips ``clip[1]``
    (:func:`exposure_for_clip_fraction`).

    Drawn with ``u`` uniform, it picks among a bracket's frames: a scene whose clipped share
    stays small over many stops (a window, a lamp) is photographed across all of them, its
    clipped pixels nearer white the shorter the exposure, where a clipped share drawn
    uniformly lands in those stops seldom."""
    low, high = (exposure_for_clip_fraction(hdr, f) for f in clip)
    return low * (high / low) ** float(u)


def sample_exposure(hdr: np.ndarray, rng: np.random.Generator, cfg: SimConfig) -> float:
    """The exposure of one simulated photo: metered (``cfg.metering_prob``; kept when its
    clipped share lies in ``cfg.metered_clip``), else, with ``cfg.bracket_prob``, a bracket
    frame's (:func:`bracket_exposure` over ``cfg.clip_fraction``), else one that clips a share
    drawn from ``cfg.clip_fraction`` (:func:`exposure_for_clip_fraction`)."""
    if cfg.metering_prob > 0 and rng.random() < cfg.metering_prob:
        s = metered_exposure(hdr, float(rng.uniform(*cfg.metering_ev)))
        clipped = float((np.asarray(hdr).max(axis=-1) * s >= 1.0).mean())
        if cfg.metered_clip[0] <= clipped <= cfg.metered_clip[1]:
            return s
    if cfg.bracket_prob > 0 and rng.random() < cfg.bracket_prob:
        return bracket_exposure(hdr, cfg.clip_fraction, rng.random())
    return exposure_for_clip_fraction(hdr, float(rng.uniform(*cfg.clip_fraction)))


def brighten_lights(hdr: np.ndarray, stops: float, knee: float, ramp: float = 1.0) -> np.ndarray:
    """Make a scene's lights ``stops`` brighter against the rest of it, hue kept.

    A pixel whose luminance lies ``knee`` stops or more above the scene's log average (a
    window, a lamp, the sun; a sky seldom lies that far) is multiplied by 2**stops, one below
    ``knee`` not at all, with a ramp over ``ramp`` stops between. Unlike
    :func:`boost_highlights` it acts on the scene before the exposure, so the room keeps its
    look and metering sees the brighter light, as on a sunnier day (daylight outside varies
    by about 10k-100k lux). ``hdr`` scene-linear HxWx3 >= 0; returns float32 of that shape.
    """
    hdr = np.asarray(hdr, np.float32)
    log_y = np.log2(rgb_to_luminance(hdr) + 1e-6)
    ramp_in = np.clip((log_y - float(np.mean(log_y)) - knee) / ramp, 0.0, 1.0)
    return hdr * np.exp2(stops * ramp_in)[..., None].astype(np.float32)


def boost_highlights(hdr: np.ndarray, power: float, knee: float, cap: float = np.inf) -> np.ndarray:
    """Brighten everything above luminance ``knee``: Y -> knee (Y / knee) ** power, hue kept,
    but not above ``cap`` (a pixel already brighter than ``cap`` keeps its value).

    A log-contrast stretch of the highlights only (``power`` >= 1), so lamps, windows and
    sun-lit sky stand further above the rest of the scene: in the real bracket frames the
    clipped pixels lie a median 1.7 stops above white, in views of the pools 0.7
    (``scripts/sim_gain_stats.py``). ``hdr`` scene-linear HxWx3 >= 0; returns float32 of
    the same shape.
    """
    hdr = np.asarray(hdr, np.float32)
    if power <= 1.0:
        return hdr
    y = rgb_to_luminance(hdr)
    ratio = np.maximum(y, 1e-12) / knee
    gain = np.where(ratio > 1.0, ratio ** (power - 1.0), 1.0)
    gain = np.minimum(gain, np.maximum(cap / np.maximum(y, 1e-12), 1.0)).astype(np.float32)
    return (hdr * gain[..., None]).astype(np.float32)


def add_glare(hdr: np.ndarray, amount: float, sigma: float, scales: int = 1) -> np.ndarray:
    """Veiling glare: a share ``amount`` of the light scattered by a Gaussian of ``sigma`` px.

    (1 - amount) H + amount G_sigma * H: energy is kept, and a light spreads a haze in
    proportion to how bright it is, as lens flare does in real photos (a cue to how far a
    clipped light lies above white). With ``scales`` n > 1 the share is split equally over
    Gaussians of sigma, sigma / 3, ..., sigma / 3^(n-1): a lens's point spread falls off
    slowly, so a light far above white also bleeds into the pixels right beside it (a window's
    glazing bars). HxWx3 scene-linear >= 0 -> float32, same shape.
    """
    hdr = np.asarray(hdr, np.float32)
    if amount <= 0 or sigma <= 0:
        return hdr
    out = (1.0 - amount) * hdr
    for k in range(max(1, scales)):
        s = sigma / 3.0**k
        blur = cv2.GaussianBlur(hdr, (0, 0), sigmaX=s, borderType=cv2.BORDER_REFLECT)
        out += (amount / max(1, scales)) * blur
    return out.astype(np.float32)


def apply_curve(x: np.ndarray, curve: str, params: tuple[float, ...] = ()) -> np.ndarray:
    """Camera response: linear [0, 1] -> display [0, 1]; every curve maps 0 -> 0 and 1 -> 1.

    - ``srgb``: the sRGB OETF.
    - ``gamma``: x ** (1 / g), params = (g,).
    - ``eilertsen2017``: the S-shaped (in log exposure) film-like sigmoid of HDR-CNN
      (Eilertsen et al. 2017), (1 + s) x**n / (x**n + s), params = (n, s).
    - ``camera``: sRGB with a camera JPEG's highlight roll-off, params = (stops, knee)
      (:func:`camera_curve`).
    """
    x = np.clip(np.asarray(x, np.float32), 0.0, 1.0)
    if curve == "srgb":
        return linear_to_srgb(x)
    if curve == "gamma":
        return (x ** (1.0 / params[0])).astype(np.float32)
    if curve == "eilertsen2017":
        n, s = params
        xn = x**n
        return ((1.0 + s) * xn / (xn + s)).astype(np.float32)
    if curve == CAMERA:
        return camera_curve(x, *params)
    raise ValueError(f"unknown camera curve {curve!r} (choose from {(*CURVES, CAMERA)})")


def camera_curve(x: np.ndarray, stops: float, knee: float) -> np.ndarray:
    """Linear [0, 1] -> display [0, 1] through the sRGB curve bent over near white, as camera
    JPEG engines do: display level d holds srgb_to_linear(d) * 2**(stops * t**2) of light,
    t = (d - knee) / (1 - knee) above the knee (0 below), so the top codes spread over
    ``stops`` more than sRGB gives them and the clip lies that far above the sRGB white of
    the tones below the knee (``infer.response.shoulder_table`` is the inverse measurement
    on real cameras: 0.44 stops at display 0.95 from a knee at 0.85). Scaled so 1 -> 1."""
    d = np.linspace(0.0, 1.0, 1025, dtype=np.float32)
    light = srgb_to_linear(d) * np.exp2(highlight_rolloff(d, stops, knee))
    light /= light[-1]
    x = np.clip(np.asarray(x, np.float32), 0.0, 1.0)
    return np.interp(x, light, d).astype(np.float32)


def sample_curve(rng: np.random.Generator, cfg: SimConfig) -> tuple[str, tuple[float, ...]]:
    """Draw a curve name and its parameters."""
    curve = str(rng.choice(cfg.curves))
    if curve == "gamma":
        return curve, (float(rng.uniform(*cfg.gamma)),)
    if curve == "eilertsen2017":  # the paper's n ~ N(0.9, 0.1), s ~ N(0.6, 0.1), kept sane
        n = float(np.clip(rng.normal(0.9, 0.1), 0.6, 1.2))
        s = float(np.clip(rng.normal(0.6, 0.1), 0.3, 0.9))
        return curve, (n, s)
    if curve == TABLE:
        return curve, (float(rng.integers(len(cfg.response_files))),)
    if curve == CAMERA:
        return curve, (
            float(rng.uniform(*cfg.camera_rolloff)),
            float(rng.uniform(*cfg.camera_knee)),
        )
    return curve, ()


def encode(x: np.ndarray, curve: str, params: tuple[float, ...], cfg: SimConfig) -> np.ndarray:
    """:func:`apply_curve`, or for :data:`TABLE` the measured response ``params[0]`` of
    ``cfg.response_files`` (:func:`~mlx_hdr.data.camera_response.table_curve`)."""
    if curve == TABLE:
        return table_curve(x, load_response(str(cfg.response_files[int(params[0])])))
    return apply_curve(x, curve, params)


def add_sensor_noise(
    x: np.ndarray, rng: np.random.Generator, full_well: float, read_noise: float
) -> np.ndarray:
    """Poisson shot noise (``full_well`` electrons at 1.0) plus Gaussian read noise, linear."""
    electrons = rng.poisson(np.clip(x, 0.0, 4.0) * full_well)  # > 4x clipping: clipped anyway
    noisy = electrons.astype(np.float32) / full_well
    noisy += rng.normal(0.0, read_noise, x.shape).astype(np.float32)
    return np.where(x > 4.0, x, noisy).astype(np.float32)


def shoulder(x: np.ndarray, white: float) -> np.ndarray:
    """Highlight roll-off, linear [0, white] -> [0, 1]: extended Reinhard x (1 + x / w²) / (1 + x),
    which maps ``white`` to 1.0 (above it: clipped); ``white`` <= 1 is a plain clip at 1."""
    if white <= 1.0:
        return np.clip(x, 0.0, 1.0)
    x = np.clip(x, 0.0, white)
    y = x * (1.0 + x / white**2) / (1.0 + x)
    return np.clip(y, 0.0, 1.0).astype(np.float32)


def sample_clip_levels(rng: np.random.Generator, cfg: SimConfig) -> np.ndarray:
    """Per-channel linear clip levels: one channel at 1.0, the others in ``channel_clip``."""
    levels = np.ones(3, np.float32)
    if rng.random() < cfg.channel_clip_prob:
        top = int(rng.integers(3))
        others = [c for c in range(3) if c != top]
        levels[others] = rng.uniform(*cfg.channel_clip, size=2)
    return levels


def jpeg_round_trip(u8: np.ndarray, quality: int) -> np.ndarray:
    """Encode and decode an HxWx3 uint8 image as JPEG in memory (Pillow, 4:2:0)."""
    buf = io.BytesIO()
    Image.fromarray(u8).save(buf, format="JPEG", quality=int(quality))
    buf.seek(0)
    with Image.open(buf) as im:
        return np.asarray(im.convert("RGB"))


def simulate_ldr(
    hdr: np.ndarray,
    rng: np.random.Generator,
    cfg: SimConfig | None = None,
    exposure_scale: float = 1.0,
    like: SimRecord | None = None,
) -> tuple[np.ndarray, np.ndarray, SimRecord]:
    """Simulate a photo of a scene-linear HxWx3 HDR.

    ``exposure_scale`` multiplies the drawn exposure; every draw before the sensor noise is
    unchanged, so two calls with equally seeded ``rng`` photograph the scene with one camera
    (its curve, clip levels, noise settings) at two exposures (``PoolSource.sample_pair``).
    The noise takes a number of draws that depends on the light, so the JPEG step is
    repeated from ``like``, the first photo's record, instead of drawn.

    Returns ``(ldr, hdr_scaled, record)``: ``ldr`` display float32 HxWx3 in [0, 1] (8-bit
    values / 255); ``hdr_scaled`` = hdr * exposure * target_scale (float32, >= 0): with
    ``cfg.align_target`` (the default) on the scale of the LDR's sRGB linearisation, so that
    its clipping point is about 1.0 (the training target's domain); without it, the clip lies
    at the shoulder's white (``record.shoulder_white``, 1.0 without one); ``record`` the
    parameters used.
    """
    cfg = cfg or SimConfig()
    hdr = np.asarray(hdr, np.float32)
    if hdr.ndim != 3 or hdr.shape[-1] != 3:
        raise ValueError(f"simulate_ldr takes an HxWx3 HDR, not shape {hdr.shape}")
    if not np.isfinite(hdr).all():  # NaN reached the noise as "lam value too large"
        raise ValueError("the HDR holds NaN or inf (io.hdr_io.sanitize_hdr cleans them)")
    hdr = np.maximum(hdr, 0.0)
    lights = (0.0, 0.0)
    if cfg.lights_prob > 0 and rng.random() < cfg.lights_prob:
        lights = (float(rng.uniform(*cfg.lights_stops)), float(rng.uniform(*cfg.lights_knee)))
        hdr = brighten_lights(hdr, *lights)
    white = 1.0
    if rng.random() < cfg.shoulder_prob:
        white = float(np.exp(rng.uniform(*np.log(cfg.shoulder_white))))
    s = sample_exposure(hdr, rng, cfg) * white * float(exposure_scale)
    scaled = (hdr * s).astype(np.float32)
    boost = (1.0, 1.0)
    if cfg.boost_prob > 0 and rng.random() < cfg.boost_prob:
        boost = (float(rng.uniform(*cfg.boost_power)), float(rng.uniform(*cfg.boost_knee)))
        at = white * float(exposure_scale)  # the scene's knee and cap, exposed like it
        scaled = boost_highlights(scaled, boost[0], boost[1] * at, cfg.boost_cap * at)
    glare = (0.0, 0.0)
    if cfg.glare_prob > 0 and rng.random() < cfg.glare_prob:
        amount = float(np.exp(rng.uniform(*np.log(cfg.glare_amount))))
        glare = (amount, float(rng.uniform(*cfg.glare_sigma)) * max(scaled.shape[:2]))
        scaled = add_glare(scaled, *glare, cfg.glare_scales)
    clipped = float((scaled.max(axis=-1) >= white).mean())
    curve, params = sample_curve(rng, cfg)
    levels = sample_clip_levels(rng, cfg)
    full_well = read = None
    x = scaled
    if rng.random() < cfg.noise_prob:
        full_well = float(np.exp(rng.uniform(*np.log(cfg.full_well))))
        read = float(rng.uniform(*cfg.read_noise))
        x = add_sensor_noise(scaled / white, rng, full_well, read) * white
    x = shoulder(np.minimum(x, levels * white), white)
    u8 = (encode(x, curve, params, cfg) * 255.0 + 0.5).astype(np.uint8)
    quality = None
    if like is not None:
        quality = like.jpeg_quality
    elif cfg.jpeg_quality is not None and rng.random() < cfg.jpeg_prob:
        quality = int(rng.integers(cfg.jpeg_quality[0], cfg.jpeg_quality[1] + 1))
    if quality is not None:
        u8 = jpeg_round_trip(u8, quality)
    ldr = u8.astype(np.float32) / 255.0
    k = target_scale(ldr, scaled) if cfg.align_target else 1.0
    record = SimRecord(
        s,
        curve,
        params,
        full_well,
        read or 0.0,
        quality,
        clipped,
        tuple(map(float, levels)),
        white,
        k,
        boost,
        glare,
        lights,
    )
    return ldr, (scaled * np.float32(k)).astype(np.float32), record


def target_scale(ldr: np.ndarray, hdr: np.ndarray) -> float:
    """The factor that puts ``hdr`` on the scale of ``srgb_to_linear(ldr)``
    (``color.input_white_scale``), clamped to [1/64, 64]."""
    return float(np.clip(input_white_scale(hdr, ldr), 1.0 / 64.0, 64.0))
