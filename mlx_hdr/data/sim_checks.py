"""The camera simulator's settings checked up front (a recipe's typo failed mid-run)."""

from __future__ import annotations

import math
from dataclasses import fields
from os import PathLike

# settings in stops, which may lie below 0
SIGNED = {"metering_ev", "window_stops", "window_frame_stops", "lights_stops", "lights_knee"}
SIGNED |= {"gain_floor"}
BELOW_ONE = {"camera_knee"}  # a share that divides by 1 - itself
AT_LEAST_ONE = {"shoulder_white"}  # a white below 1 would leave nothing clipped
POSITIVE = {"gamma", "full_well", "shoulder_white", "boost_power", "boost_cap", "glare_sigma"}
POSITIVE |= {"window_size", "scene_luminance", "scene_quantile", "glare_amount", "boost_knee"}
FRACTIONS = {"clip_fraction", "metered_clip", "channel_clip", "window_size", "camera_knee"}
FRACTIONS |= {"scene_quantile", "glare_amount"}  # glare: the share of the light scattered


def check_sim_config(cfg) -> None:
    """``ValueError`` naming the first setting of a ``SimConfig`` that is not what its
    default is: a probability in [0, 1], a range [low, high] of finite numbers with
    low <= high (>= 0 unless signed, > 0 where it divides, <= 1 for a share, < 1 for the
    camera curve's knee, >= 1 for the shoulder's white), a finite
    number, a count >= 1, JPEG qualities in 1..100 or None, a bool."""
    for f in fields(cfg):
        value, default = getattr(cfg, f.name), f.default
        if f.name in ("curves", "response_files"):  # names and files: SimConfig reads them
            if not isinstance(value, (list, tuple)) or not all(
                isinstance(v, str | PathLike) for v in value
            ):
                raise ValueError(f"simulator setting {f.name} is a list of names, not {value!r}")
            continue
        if f.name == "jpeg_quality":  # whole numbers, 90.0 as well as 90
            whole = _range(value, (int, float)) and all(float(v).is_integer() for v in value)
            ok = value is None or whole and 1 <= value[0] <= value[1] <= 100
        elif isinstance(default, bool):
            ok = isinstance(value, bool)
        elif isinstance(default, int):
            ok = isinstance(value, int) and not isinstance(value, bool) and value >= 1
        elif isinstance(default, tuple):
            ok = _range(value, (int, float)) and value[0] <= value[1] and _bounded(f.name, value)
        else:
            ok = _number(value) and _bounded(f.name, (value, value))
            ok = ok and (not f.name.endswith("_prob") or value <= 1.0)
        if not ok:
            raise ValueError(
                f"simulator setting {f.name} cannot be {value!r} (default {default!r})"
            )


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _range(value, kind) -> bool:
    ok = isinstance(value, (list, tuple)) and len(value) == 2
    return ok and all(isinstance(v, kind) and _number(v) for v in value)


def _bounded(name: str, pair) -> bool:
    low, high = pair
    if name in POSITIVE and low <= 0:
        return False
    if name in FRACTIONS and high > 1 or name in BELOW_ONE and high >= 1:
        return False
    if name in AT_LEAST_ONE and low < 1:
        return False
    return name in SIGNED or low >= 0
