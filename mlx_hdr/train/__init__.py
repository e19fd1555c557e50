"""Training of the hybrid model (``mlx-hdr train``).

``config`` (TrainConfig, recipes in ``configs/``), ``loss`` (L1 + LPIPS), ``step`` (the
compiled or eager update), ``checkpoint`` (atomic, resumable), ``data``/``pool`` (batches as
pure functions of (seed, step)), ``trainer`` (the loop, NaN guard, logs), ``plots``,
``distributed`` (``mlx.launch`` data parallelism), ``bench`` (timings).
"""
