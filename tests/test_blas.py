"""The OpenBLAS preload (mlx_hdr/backend/blas.py): loaded by ``backend.setup()`` when present,
same numbers as without it; ``import mlx_hdr`` alone loads nothing."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from mlx_hdr.backend.blas import CANDIDATES

HAVE_OPENBLAS = sys.platform.startswith("linux") and any(os.path.exists(p) for p in CANDIDATES)

PROBE = """
import sys
from mlx_hdr import backend
backend.setup()
import mlx.core as mx
from mlx_hdr.backend import blas
a = mx.random.normal((64, 96), key=mx.random.key(1))
w = mx.random.normal((16, 3, 3, 8), key=mx.random.key(2))
x = mx.random.normal((1, 12, 12, 8), key=mx.random.key(3))
y = mx.concatenate([(a @ a.T).reshape(-1), mx.conv2d(x, w, padding=1).reshape(-1)])
sys.stdout.buffer.write(str(blas.loaded).encode() + b"\\n" + bytes(memoryview(y)))
"""


def probe(**env) -> tuple[str, np.ndarray]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, check=True, env={**os.environ, **env}
    ).stdout
    name, data = out.split(b"\n", 1)
    return name.decode(), np.frombuffer(data, np.float32)


@pytest.mark.skipif(not HAVE_OPENBLAS, reason="no OpenBLAS installed (Linux fast path)")
def test_openblas_preloaded_and_numerically_equal():
    fast_lib, fast = probe()
    plain_lib, plain = probe(MLX_HDR_OPENBLAS="0")
    assert fast_lib.endswith("libopenblas.so.0") and plain_lib == "None"
    np.testing.assert_allclose(fast, plain, rtol=1e-4, atol=1e-4)
    assert probe(MLX_HDR_OPENBLAS="off")[0] == "None"  # an off word, not a library path
    assert probe(MLX_HDR_OPENBLAS="true")[0] == fast_lib  # an on word: the candidates


@pytest.mark.skipif(not HAVE_OPENBLAS, reason="no OpenBLAS installed (Linux fast path)")
def test_warns_when_mlx_was_imported_first():
    code = (
        "import mlx.core, warnings; warnings.simplefilter('error')\n"
        "from mlx_hdr import backend; backend.setup()"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode != 0 and "call setup() first" in proc.stderr


NO_SIDE_EFFECTS = """
import mlx_hdr, mlx_hdr.infer.pipeline, mlx_hdr.models.lpips, mlx_hdr.models.model_io
import mlx_hdr.train.trainer
from mlx_hdr.backend import blas, malloc
with open("/proc/self/maps") as f:
    maps = f.read()
print(blas.loaded, malloc.tuned, any(path in maps for path in blas.CANDIDATES))
"""


@pytest.mark.skipif(not HAVE_OPENBLAS, reason="no OpenBLAS installed (Linux fast path)")
def test_importing_the_package_changes_nothing_process_wide():
    """Without ``backend.setup()``, importing the library (MLX included) neither loads the
    system's OpenBLAS nor changes malloc's settings."""
    out = subprocess.run(
        [sys.executable, "-c", NO_SIDE_EFFECTS], capture_output=True, text=True, check=True
    ).stdout
    assert out.split() == ["None", "False", "False"]


STREAMS = """
from mlx_hdr import backend
backend.setup()
from mlx_hdr.backend import blas, streams
print(blas.loaded, blas.threads_limited(), streams.infer_streams() is not None)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the preload is Linux's")
def test_a_blas_that_is_not_openblas_or_not_there_splits_nothing():
    import _ctypes  # a shared library without OpenBLAS's thread setting

    for setting, said in ((_ctypes.__file__, ""), ("/no/such.so", "no such")):
        env = {**os.environ, "MLX_HDR_OPENBLAS": setting}
        run = subprocess.run([sys.executable, "-c", STREAMS], capture_output=True, env=env)
        assert run.stdout.decode().split()[1:] == ["False", "False"], run.stderr
        assert said in run.stderr.decode()
