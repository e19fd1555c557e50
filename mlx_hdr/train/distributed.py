"""Data parallelism through MLX's own engine (``mx.distributed``).

Start N processes with ``mlx.launch`` (e.g. ``mlx.launch -n 2 --backend ring -- mlx-hdr
train ...`` on one machine, or ``--hostfile hosts.json`` across machines). Each rank builds
the same model (same seed), reads its shard of every global batch (samples ``rank::size``)
and the gradients are averaged with ``all_sum`` (``mlx.nn.average_gradients``) inside the
step, so every rank applies the same update. Rank 0 alone writes logs and checkpoints.
"""

from __future__ import annotations

import mlx.core as mx


def init_group(backend: str = "any"):
    """The distributed group when launched by ``mlx.launch`` with size > 1, else None."""
    if not mx.distributed.is_available():
        return None
    group = mx.distributed.init(backend=backend)
    return group if group.size() > 1 else None


def rank_and_size(group) -> tuple[int, int]:
    """``(rank, size)`` of ``group``; ``(0, 1)`` for a single process (``group`` None)."""
    return (0, 1) if group is None else (group.rank(), group.size())
