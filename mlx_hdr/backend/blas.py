"""Use a fast BLAS for MLX's CPU backend when one is installed (Linux).

MLX's Linux CPU wheel links a bundled single-threaded reference BLAS. Its ``cblas_sgemm`` is
resolved dynamically, so loading Debian's OpenBLAS with ``RTLD_GLOBAL`` *before* ``mlx.core``
is imported makes MLX use OpenBLAS (multi-threaded, vectorised) instead. Process-wide, so
only entry points call it (through ``mlx_hdr.backend.setup``). ``MLX_HDR_OPENBLAS=0`` opts
out; a path uses that library instead of the candidates below.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import platform
import sys

from mlx_hdr.backend.switches import ON, setting, switched_off

CANDIDATES = (
    "/usr/lib/x86_64-linux-gnu/openblas-pthread/libopenblas.so.0",
    "/usr/lib/aarch64-linux-gnu/openblas-pthread/libopenblas.so.0",
    "/usr/lib/x86_64-linux-gnu/libopenblas.so.0",
    "/usr/lib/aarch64-linux-gnu/libopenblas.so.0",
    "/usr/lib64/libopenblas.so.0",
)

loaded: str | None = None


def preload_openblas() -> str | None:
    """Load OpenBLAS globally on Linux if present; return its path or None.

    Does nothing on macOS (MLX uses Accelerate/Metal there) or once ``mlx.core`` is
    already imported (too late for symbol resolution: warns when OpenBLAS is installed).
    """
    global loaded
    if loaded or switched_off("MLX_HDR_OPENBLAS") or platform.system() != "Linux":
        return loaded
    if "mlx.core" in sys.modules:
        if any(os.path.exists(p) for p in CANDIDATES):
            import warnings

            warnings.warn(
                "mlx.core was imported before mlx_hdr.backend.setup(), so MLX keeps its slow "
                "bundled BLAS: call setup() first (or set MLX_HDR_OPENBLAS=0 to silence this)",
                stacklevel=3,
            )
        return loaded
    chosen = setting("MLX_HDR_OPENBLAS")
    default = chosen.lower() in ON
    paths = CANDIDATES if default else (chosen,)
    if not default and not os.path.exists(chosen):
        import warnings

        warnings.warn(
            f"MLX_HDR_OPENBLAS={chosen}: no such file (give 0, 1 or the path of an "
            "OpenBLAS library); MLX keeps its bundled BLAS",
            stacklevel=3,
        )
    for path in paths:
        if os.path.exists(path):
            try:
                ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)
            except OSError:
                continue
            loaded = path
            break
    return loaded


def _openblas():
    if loaded is None:
        return None
    lib = ctypes.CDLL(loaded)
    return lib if hasattr(lib, "openblas_set_num_threads") else None


def threads_limited() -> bool:
    """Whether :func:`blas_threads` can limit the preloaded BLAS (an OpenBLAS is loaded):
    work is split over CPU streams only then."""
    return _openblas() is not None


@contextlib.contextmanager
def blas_threads(n: int):
    """Run the block with the preloaded OpenBLAS limited to ``n`` threads (no-op without it).

    Used while work is split over CPU streams: the streams already keep the cores busy, and
    two multi-threaded GEMMs at once oversubscribe them.
    """
    lib = _openblas()
    if lib is None:
        yield
        return
    before = lib.openblas_get_num_threads()
    lib.openblas_set_num_threads(n)
    try:
        yield
    finally:
        lib.openblas_set_num_threads(before)
