"""The glibc malloc settings (mlx_hdr/backend/malloc.py, applied by ``backend.setup()``):
freed large blocks stay in the process."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"

# RSS growth (MiB) left after allocating, touching and freeing a 64 MiB block
PROBE = """
import numpy as np
from mlx_hdr import backend
from mlx_hdr.backend import malloc
backend.setup()

def rss_mib():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20

before = rss_mib()
a = np.ones(16 * 2**20, np.float32)
del a
print(malloc.tuned, round(rss_mib() - before))
"""


def probe(**env) -> tuple[str, int]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, **env},
    ).stdout.split()
    return out[0], int(out[1])


@pytest.mark.skipif(not GLIBC, reason="glibc-only setting")
def test_freed_blocks_are_kept_for_reuse():
    tuned, kept = probe()
    assert tuned == "True" and kept >= 60  # served from the heap, not unmapped on free


@pytest.mark.skipif(not GLIBC, reason="glibc-only setting")
def test_opt_out_keeps_glibc_defaults():
    tuned, kept = probe(MLX_HDR_MALLOC="0")
    assert tuned == "False" and kept < 8  # glibc's default: a 64 MiB block is mmapped
