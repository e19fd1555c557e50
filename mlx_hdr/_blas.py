"""Use a fast BLAS for MLX's CPU backend when one is installed.

MLX's Linux CPU wheel links a bundled single-threaded reference BLAS (~6 GFLOP/s here).
Its ``cblas_sgemm`` is resolved dynamically, so loading Debian's OpenBLAS with
``RTLD_GLOBAL`` *before* ``mlx.core`` is imported makes MLX use OpenBLAS instead
(~240 GFLOP/s on 2 cores). Set ``MLX_HDR_OPENBLAS=0`` to opt out, or to a path to use
another library.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import platform
import sys

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
    already imported (too late for symbol resolution).
    """
    global loaded
    setting = os.environ.get("MLX_HDR_OPENBLAS", "1")
    if loaded or setting == "0" or platform.system() != "Linux":
        return loaded
    if "mlx.core" in sys.modules:
        if any(os.path.exists(p) for p in CANDIDATES):
            import warnings

            warnings.warn(
                "mlx.core was imported before mlx_hdr, so MLX keeps its slow bundled BLAS: "
                "import mlx_hdr first (or set MLX_HDR_OPENBLAS=0 to silence this)",
                stacklevel=3,
            )
        return loaded
    paths = CANDIDATES if setting == "1" else (setting,)
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


@contextlib.contextmanager
def blas_threads(n: int):
    """Run the block with the preloaded OpenBLAS limited to ``n`` threads (no-op without it).

    Used while an eager training step is split over CPU streams: the streams already keep
    the cores busy, and two multi-threaded GEMMs at once oversubscribe them (measured:
    256²×4 step 5.2 s with 2 BLAS threads per stream, 4.5 s with 1, docs/BENCHMARKS.md).
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
