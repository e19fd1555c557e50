"""mlx-hdr: single-image LDR to HDR reconstruction in MLX."""

from mlx_hdr._blas import preload_openblas
from mlx_hdr._malloc import tune_malloc

# Must run before anything imports mlx.core (see _blas.py).
preload_openblas()
tune_malloc()  # process-wide: glibc keeps freed blocks for MLX's CPU ops (see _malloc.py)

__version__ = "0.1.0"
