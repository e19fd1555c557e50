"""Data parallelism: 2 processes over MLX's ring backend on localhost (``mlx.launch``).

The averaged update of two ranks, each on its shard, equals the single-process update on
the combined batch; the full trainer runs under the launcher with rank 0 writing outputs.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import mlx.core as mx
import mlx.optimizers as optim
import numpy as np
import pytest
from mlx.utils import tree_flatten
from test_hybrid import tiny_model

from mlx_hdr.train.data import ArrayBatches, synthetic_pairs
from mlx_hdr.train.step import make_train_step
from mlx_hdr.train.validation import prepare

TESTS = Path(__file__).resolve().parent
LAUNCH = Path(sys.executable).parent / "mlx.launch"

RANK_SCRIPT = """
import sys
sys.path.insert(0, {tests!r})
from mlx_hdr import backend
backend.setup()
import mlx.core as mx, numpy as np
from mlx.utils import tree_flatten
from mlx_hdr.train.distributed import init_group
from test_distributed import one_step, tiny_train

group = init_group("ring")
assert group is not None and group.size() == 2
rank = group.rank()
params, loss = one_step(group)
np.savez({out!r} + f"/step_{{rank}}.npz", loss=loss, **params)
result = tiny_train({out!r} + "/run", group)
final = {{k: np.array(v) for k, v in tree_flatten(result)}}
np.savez({out!r} + f"/train_{{rank}}.npz", **final)
"""


def data() -> ArrayBatches:
    ldr, hdr = synthetic_pairs(4, 80, seed=3)
    return ArrayBatches(ldr, hdr, batch_size=4, crop=64, seed=0)


def one_step(group=None) -> tuple[dict, float]:
    """One SGD step on this rank's shard (the whole batch without a group)."""
    model = tiny_model(seed=5)
    opt = optim.SGD(learning_rate=0.5)
    step = make_train_step(model, opt, lpips_weight=0.0, compile=False, group=group)
    rank, size = (0, 1) if group is None else (group.rank(), group.size())
    x, target, mask = prepare(data().batch(0, rank, size))
    loss, _, _ = step(x, target, mask)
    mx.eval(model.parameters(), loss)
    return {k: np.array(v) for k, v in tree_flatten(model.trainable_parameters())}, loss.item()


def tiny_train(run_dir: str, group):
    from test_hybrid import SMALL, TinyEncoder

    from mlx_hdr.train.config import TrainConfig
    from mlx_hdr.train.trainer import Trainer

    cfg = TrainConfig(
        run_dir=run_dir,
        encoder_weights="random",
        lpips_weight=0.0,
        batch_size=4,
        steps_per_epoch=2,
        epochs=1,
        val_size=2,
        compile=False,
        model=dict(decoder_channels=SMALL),
    )
    mx.random.seed(1)
    trainer = Trainer(cfg, data(), group=group, echo=None, encoder=TinyEncoder())
    trainer.run()
    return trainer.model.trainable_parameters()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def launched(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist")
    script = out / "rank.py"
    script.write_text(textwrap.dedent(RANK_SCRIPT.format(tests=str(TESTS), out=str(out))))
    cmd = [str(LAUNCH), "-n", "2", "--backend", "ring", "--starting-port", str(free_port())]
    cmd += [sys.executable, str(script)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return out


def test_averaged_update_equals_single_process_update(launched):
    single, loss = one_step()
    ranks = [np.load(launched / f"step_{r}.npz") for r in (0, 1)]
    for k, v in single.items():
        for r in ranks:
            np.testing.assert_allclose(r[k], v, atol=1e-5, err_msg=k)
    assert float(ranks[0]["loss"]) == pytest.approx(loss, abs=1e-5)


def test_trainer_under_launcher(launched):
    a, b = (np.load(launched / f"train_{r}.npz") for r in (0, 1))
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    run = launched / "run"
    assert (run / "checkpoints" / "last.safetensors").is_file()
    assert (run / "training_curves.png").is_file()
