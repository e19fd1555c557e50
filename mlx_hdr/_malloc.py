"""Keep freed memory in the process on Linux/glibc, so MLX's CPU ops stop page-faulting.

MLX's CPU backend allocates every intermediate array with ``malloc`` and keeps at most
32 MiB of freed buffers in its own cache (its default limit here). glibc serves large blocks
(from 128 KiB, adaptively up to 32 MiB) with a fresh ``mmap`` and unmaps them on ``free``,
and trims the heap top, so nearly every large intermediate costs page faults and kernel
page zeroing: a 512² forward of the hybrid model took 537k minor faults and ~1.5x its
compute time (``scripts/benchmark.py``, docs/BENCHMARKS.md). With ``mmap`` off for
``malloc`` (``M_MMAP_MAX = 0``) and heap trimming off (``M_TRIM_THRESHOLD = -1``, which
mallopt(3) documents as "disables trimming completely"), freed blocks are reused from the
heap instead. (A 2 GiB threshold, the largest positive ``int``, still trimmed during a
4 MP forward, whose peak is ~4 GB: 5.8 M page faults and 2.2x its time.)

The trade: the process keeps its peak heap until it exits (resident memory stays near the
peak working set), like MLX's own cache would with a higher limit (which was as fast but
held ~2x the memory). Set ``MLX_HDR_MALLOC=0`` to keep glibc's defaults.
"""

from __future__ import annotations

import ctypes
import os
import platform

M_TRIM_THRESHOLD = -1  # glibc <malloc.h>
M_MMAP_MAX = -4
TRIM_OFF = -1  # mallopt(3): "Setting M_TRIM_THRESHOLD to -1 disables trimming completely"

tuned = False


def tune_malloc() -> bool:
    """Apply the settings above once on Linux with glibc; return whether they are in force."""
    global tuned
    if tuned or os.environ.get("MLX_HDR_MALLOC", "1") == "0" or platform.system() != "Linux":
        return tuned
    if platform.libc_ver()[0] != "glibc":
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    tuned = bool(mallopt(M_MMAP_MAX, 0)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_OFF))
    return tuned
