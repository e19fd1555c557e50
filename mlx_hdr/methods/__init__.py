"""Classical LDR -> HDR operators (no learned model), registered by author-year name.

Each maps an HxWx3 float display input in [0, 1] to an HxWx3 float32 scene-linear image >= 0
whose 1.0 is (about) the input's white.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from mlx_hdr.color import srgb_to_linear
from mlx_hdr.methods.akyuz2007 import akyuz2007
from mlx_hdr.methods.kovaleski2014 import kovaleski2014
from mlx_hdr.methods.masia2017 import masia2017


def linear(ldr: np.ndarray) -> np.ndarray:
    """The linearised input (sRGB EOTF), the baseline every method is compared with."""
    return srgb_to_linear(ldr)


METHODS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "linear": linear,
    "akyuz2007": akyuz2007,
    "masia2017": masia2017,
    "kovaleski2014": kovaleski2014,
}


def get_method(name: str) -> Callable[[np.ndarray], np.ndarray]:
    """The operator registered under ``name``; ValueError listing the choices otherwise."""
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; choose from {', '.join(METHODS)}")
    return METHODS[name]


__all__ = ["METHODS", "get_method", "linear", "akyuz2007", "masia2017", "kovaleski2014"]
