"""mlx-hdr: single-image LDR to HDR reconstruction in MLX.

Importing the package changes nothing process-wide; entry points that want MLX's CPU backend
fast call :func:`mlx_hdr.backend.setup` before anything imports ``mlx.core``.
"""

__version__ = "0.1.0"
