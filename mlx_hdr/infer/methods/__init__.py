"""Classical LDR -> HDR operators (no learned model), registered by author-year name.

Each maps an HxWx3 float display input in [0, 1] to an HxWx3 float32 scene-linear image >= 0
whose 1.0 is (about) the input's white. Those whose output is display-referred (Akyüz's and
Masia's put the brightest pixel at the display's peak, ExpandNet's spans [0, 1]) are
rescaled as registered, by the one factor that puts their well-exposed pixels on the
linearised input (:func:`on_input_white`, the factor the metrics align by). How far their
highlights then lie above 1.0 is their own: Akyüz's linear expansion leaves a photo with
black and white in it as it is, Masia's gamma lifts them where it is above 1 and lowers
them where it is below, ExpandNet's network lifts them.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np

from mlx_hdr.color import input_white_scale, srgb_to_linear
from mlx_hdr.infer.methods.akyuz2007 import akyuz2007
from mlx_hdr.infer.methods.kovaleski2014 import kovaleski2014
from mlx_hdr.infer.methods.masia2017 import masia2017


def linear(ldr: np.ndarray) -> np.ndarray:
    """The linearised input (sRGB EOTF), the baseline every method is compared with."""
    return srgb_to_linear(ldr)


def expandnet2018(ldr: np.ndarray) -> np.ndarray:
    """ExpandNet (Marnerides et al. 2018), a learned peer; weights from ``MLX_HDR_EXPANDNET``.

    Imported lazily: it loads MLX and the released PyTorch weights (torch-free reader).
    """
    from mlx_hdr.infer.methods.expandnet2018 import expandnet2018 as run

    return run(ldr)


def on_input_white(method: Callable[[np.ndarray], np.ndarray]):
    """``method`` times the global factor that puts its output on the linearised input
    (``color.input_white_scale``), so that its 1.0 is the input's white; scale-free metrics
    score it as before."""

    def scaled(ldr: np.ndarray) -> np.ndarray:
        hdr = method(ldr)
        k = input_white_scale(hdr, ldr)
        return (hdr * np.float32(k)).astype(np.float32, copy=False)

    scaled.__name__ = scaled.__qualname__ = method.__name__
    scaled.__doc__ = method.__doc__
    return scaled


METHODS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "linear": linear,
    "akyuz2007": on_input_white(akyuz2007),
    "masia2017": on_input_white(masia2017),
    "kovaleski2014": kovaleski2014,
    "expandnet2018": on_input_white(expandnet2018),
}


def default_methods() -> list[str]:
    """The methods an evaluation runs by default: ExpandNet only when its weights are set."""
    optional = {"expandnet2018": bool(os.environ.get("MLX_HDR_EXPANDNET"))}
    return [name for name in METHODS if optional.get(name, True)]


def get_method(name: str) -> Callable[[np.ndarray], np.ndarray]:
    """The operator registered under ``name``; ValueError listing the choices otherwise."""
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; choose from {', '.join(METHODS)}")
    return METHODS[name]


__all__ = [
    "METHODS",
    "default_methods",
    "get_method",
    "linear",
    "akyuz2007",
    "masia2017",
    "kovaleski2014",
    "expandnet2018",
]
