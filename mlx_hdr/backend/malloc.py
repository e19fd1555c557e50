"""Keep freed memory in the process on Linux/glibc, so MLX's CPU ops stop page-faulting.

MLX's CPU backend allocates every intermediate array with ``malloc`` and keeps only a small
cache of freed buffers itself. glibc serves large blocks (from 128 KiB, adaptively up to
32 MiB) with a fresh ``mmap`` and unmaps them on ``free``, and trims the heap top, so nearly
every large intermediate costs page faults and kernel page zeroing. With ``mmap`` off for
``malloc`` (``M_MMAP_MAX = 0``) and heap trimming off (``M_TRIM_THRESHOLD = -1``, which
mallopt(3) documents as "disables trimming completely"), freed blocks are reused from the
heap instead. (The largest positive threshold, 2 GiB, still trims during a 4 MP forward,
whose peak is ~4 GB.)

The trade: the process keeps its peak heap until it exits (resident memory stays near the
peak working set). Process-wide, so only entry points call it (through
``mlx_hdr.backend.setup``); ``MLX_HDR_MALLOC=0`` keeps glibc's defaults.
"""

from __future__ import annotations

import ctypes
import platform

from mlx_hdr.backend.switches import switched_off

M_TRIM_THRESHOLD = -1  # glibc <malloc.h>
M_MMAP_MAX = -4
TRIM_OFF = -1  # mallopt(3): "Setting M_TRIM_THRESHOLD to -1 disables trimming completely"

tuned = False


def tune_malloc() -> bool:
    """Apply the settings above once on Linux with glibc; return whether they are in force."""
    global tuned
    if tuned or switched_off("MLX_HDR_MALLOC") or platform.system() != "Linux":
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
