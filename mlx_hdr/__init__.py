"""mlx-hdr: single-image LDR to HDR reconstruction in MLX."""

from mlx_hdr._blas import preload_openblas

# Must run before anything imports mlx.core (see _blas.py).
preload_openblas()

__version__ = "0.1.0"
