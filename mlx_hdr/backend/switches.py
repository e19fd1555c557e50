"""The backend's environment switches: each path is on unless its variable says off.

Imports no MLX (``backend.setup`` reads switches before ``mlx.core`` is loaded).
"""

from __future__ import annotations

import os

OFF = ("0", "false", "off", "no")  # case-insensitive
ON = ("1", "true", "on", "yes")


def setting(env: str) -> str:
    """The variable's value, stripped; ``"1"`` when unset or empty."""
    return os.environ.get(env, "").strip() or "1"


def switched_off(env: str) -> bool:
    """Whether environment variable ``env`` turns its path off (``0``, ``false``, ``off``,
    ``no``, any case)."""
    return setting(env).lower() in OFF
